//! Commits pushed from the mirror to a real bare repository (file://), checked
//! with the git CLI.

mod common;

use common::{bare_remote, git, pilothouse, push_elsewhere, scaffold};
use pilothouse_gitops::{GitError, Mirror};

#[test]
fn a_commit_is_pushed_on_top_of_the_parent_and_moves_the_mirror() {
    let root = tempfile::tempdir().unwrap();
    let remote = bare_remote(root.path(), "desired.git");
    let url = format!("file://{}", remote.display());
    let mirror = Mirror::open(&root.path().join("mirror"), &url, "main").unwrap();
    let head = mirror.fetch().unwrap();
    assert!(
        !mirror
            .file_exists(&head.id, "clusters/aks-1/kustomization.yaml")
            .unwrap()
    );
    assert!(mirror.file_exists(&head.id, "overlays/aks").unwrap());

    let mut files = scaffold("aks-1");
    // an existing executable file keeps its mode when rewritten
    files.push(("run.sh".to_owned(), b"#!/bin/sh\nexit 0\n".to_vec()));
    let pushed = mirror
        .commit_and_push(
            &head.id,
            &files,
            "Scaffold cluster aks-1\n\nfrom the API",
            &pilothouse(),
        )
        .unwrap();

    assert_eq!(pushed.id, git(&remote, &["rev-parse", "main"]));
    assert_eq!(pushed.summary, "Scaffold cluster aks-1");
    assert_eq!(pushed.author, "Pilothouse <pilothouse@example.com>");
    assert_eq!(
        git(&remote, &["log", "--format=%H %an <%ae> %s", "main"]),
        format!(
            "{} Pilothouse <pilothouse@example.com> Scaffold cluster aks-1\n{} Ada Ops <ada@example.com> first desired state",
            pushed.id, head.id
        )
    );
    assert_eq!(
        git(&remote, &["show", "main:clusters/aks-1/cluster.yaml"]),
        "name: aks-1"
    );
    assert_eq!(
        git(&remote, &["show", "main:overlays/aks/kustomization.yaml"]),
        "resources: []",
        "files not given are kept"
    );
    assert!(git(&remote, &["ls-tree", "main", "run.sh"]).starts_with("100755 blob"));
    assert_eq!(mirror.head().unwrap(), Some(pushed.clone()));
    assert!(
        mirror
            .file_exists(&pushed.id, "clusters/aks-1/kustomization.yaml")
            .unwrap()
    );
    assert!(mirror.file_exists(&pushed.id, "clusters/aks-1").unwrap());

    // the same content again: nothing new is committed or pushed
    let again = mirror
        .commit_and_push(
            &pushed.id,
            &scaffold("aks-1"),
            "Scaffold again",
            &pilothouse(),
        )
        .unwrap();
    assert_eq!(again, pushed);
    assert_eq!(git(&remote, &["rev-parse", "main"]), pushed.id);
}

#[test]
fn a_push_based_on_a_stale_parent_is_rejected_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let remote = bare_remote(root.path(), "desired.git");
    let url = format!("file://{}", remote.display());
    let mirror = Mirror::open(&root.path().join("mirror"), &url, "main").unwrap();
    let stale = mirror.fetch().unwrap();
    let theirs = push_elsewhere(&remote, "someone else's change");

    // the mirror does not know their commit yet
    match mirror.commit_and_push(
        &stale.id,
        &scaffold("aks-1"),
        "Scaffold aks-1",
        &pilothouse(),
    ) {
        Err(GitError::PushRejected { branch, reason }) => {
            assert_eq!(branch, "main");
            assert!(reason.contains("fetch"), "{reason}");
        }
        other => panic!("expected a rejected push, got {other:?}"),
    }
    assert_eq!(mirror.head().unwrap(), Some(stale.clone()));
    assert_eq!(git(&remote, &["rev-parse", "main"]), theirs);

    // it knows their commit, and still bases the change on the old one
    let fetched = mirror.fetch().unwrap();
    assert_eq!(fetched.id, theirs);
    assert!(matches!(
        mirror.commit_and_push(
            &stale.id,
            &scaffold("aks-1"),
            "Scaffold aks-1",
            &pilothouse()
        ),
        Err(GitError::PushRejected { .. })
    ));
    assert_eq!(mirror.head().unwrap(), Some(fetched.clone()));
    assert_eq!(git(&remote, &["rev-parse", "main"]), theirs);

    // based on the fetched head it goes through
    let pushed = mirror
        .commit_and_push(
            &fetched.id,
            &scaffold("aks-1"),
            "Scaffold aks-1",
            &pilothouse(),
        )
        .unwrap();
    assert_eq!(git(&remote, &["rev-parse", "main^"]), theirs);
    assert_eq!(git(&remote, &["rev-parse", "main"]), pushed.id);
}

#[test]
fn bad_paths_and_parents_are_refused_before_anything_is_written() {
    let root = tempfile::tempdir().unwrap();
    let remote = bare_remote(root.path(), "desired.git");
    let mirror = Mirror::open(
        &root.path().join("mirror"),
        remote.to_str().unwrap(),
        "main",
    )
    .unwrap();
    let head = mirror.fetch().unwrap();
    let before = git(&remote, &["rev-parse", "main"]);
    for (path, expected) in [
        ("../x", "`..`"),
        ("clusters/../../x", "`..`"),
        (".git/hooks/post-update", "`.git`"),
        ("/etc/motd", "absolute"),
        ("clusters//x", "empty component"),
        (
            "overlays/aks/kustomization.yaml/x",
            "is a file in the parent revision",
        ),
        ("overlays", "is a directory in the parent revision"),
    ] {
        let files = vec![
            ("clusters/ok.yaml".to_owned(), b"ok\n".to_vec()),
            (path.to_owned(), b"x\n".to_vec()),
        ];
        match mirror.commit_and_push(&head.id, &files, "bad", &pilothouse()) {
            Err(GitError::InvalidPath {
                path: refused,
                reason,
            }) => {
                assert!(reason.contains(expected), "{path}: {reason}");
                assert!(path.starts_with(&refused), "{path}: {refused}");
            }
            other => panic!("{path}: expected InvalidPath, got {other:?}"),
        }
    }
    assert!(matches!(
        mirror.file_exists(&head.id, "../x"),
        Err(GitError::InvalidPath { .. })
    ));
    assert!(matches!(
        mirror.commit_and_push("0123456789abcdef", &scaffold("a"), "m", &pilothouse()),
        Err(GitError::RevisionNotFound(_))
    ));
    assert_eq!(git(&remote, &["rev-parse", "main"]), before);
    assert_eq!(mirror.head().unwrap(), Some(head));
}

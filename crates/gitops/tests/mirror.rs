//! The mirror against real repositories made with the git CLI.

use std::path::Path;
use std::process::Command;

use pilothouse_gitops::{GitError, Mirror};

fn git(repo: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env("GIT_AUTHOR_NAME", "Ada Ops")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada Ops")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .output()
        .expect("the git CLI must be installed");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A source repository on branch `main` with one commit.
fn source() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(dir.path().join("overlays/aks")).unwrap();
    std::fs::write(
        dir.path().join("overlays/aks/kustomization.yaml"),
        "resources: []\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("run.sh"), "#!/bin/sh\n").unwrap();
    git(dir.path(), &["add", "."]);
    git(dir.path(), &["update-index", "--chmod=+x", "run.sh"]);
    git(
        dir.path(),
        &["commit", "-q", "-m", "first desired state\n\nwith a body"],
    );
    dir
}

#[test]
fn fetch_follows_new_commits_and_records_their_revision() {
    let source = source();
    let data = tempfile::tempdir().unwrap();
    let url = format!("file://{}", source.path().display());
    let mirror = Mirror::open(&data.path().join("mirror"), &url, "main").unwrap();
    assert_eq!(mirror.head().unwrap(), None);

    let first = mirror.fetch().unwrap();
    assert_eq!(first.id, git(source.path(), &["rev-parse", "HEAD"]));
    assert_eq!(first.author, "Ada Ops <ada@example.com>");
    assert_eq!(first.summary, "first desired state");
    assert_eq!(
        first.time.to_string(),
        git(source.path(), &["log", "-1", "--format=%ct"])
    );

    std::fs::write(
        source.path().join("overlays/aks/kustomization.yaml"),
        "resources: [a.yaml]\n",
    )
    .unwrap();
    git(source.path(), &["commit", "-q", "-am", "second"]);
    // reopening the mirror finds what was fetched before
    let mirror = Mirror::open(&data.path().join("mirror"), &url, "main").unwrap();
    assert_eq!(mirror.head().unwrap().as_ref(), Some(&first));
    let second = mirror.fetch().unwrap();
    assert_ne!(second.id, first.id);
    assert_eq!(second.summary, "second");
    // fetching again with nothing new is harmless
    assert_eq!(mirror.fetch().unwrap(), second);

    // a force-push that rewrites history is followed
    git(source.path(), &["reset", "-q", "--hard", &first.id]);
    git(
        source.path(),
        &["commit", "-q", "--allow-empty", "-m", "rewritten"],
    );
    let rewritten = mirror.fetch().unwrap();
    assert_eq!(rewritten.summary, "rewritten");
    // older revisions stay readable by id
    assert_eq!(mirror.revision(&second.id).unwrap(), second);
}

#[test]
fn checkout_writes_the_tree_of_a_revision() {
    let source = source();
    let data = tempfile::tempdir().unwrap();
    let mirror = Mirror::open(
        &data.path().join("mirror"),
        source.path().to_str().unwrap(),
        "main",
    )
    .unwrap();
    let revision = mirror.fetch().unwrap();
    let dest = data.path().join("checkout");
    mirror.checkout(&revision.id, &dest).unwrap();
    assert_eq!(
        std::fs::read_to_string(dest.join("overlays/aks/kustomization.yaml")).unwrap(),
        "resources: []\n"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dest.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "executable bit kept");
    }
    // the destination must be fresh: nothing is overwritten
    assert!(matches!(
        mirror.checkout(&revision.id, &dest),
        Err(GitError::Io { .. })
    ));
}

#[test]
fn missing_branches_revisions_and_remotes_are_clear_errors() {
    let source = source();
    let data = tempfile::tempdir().unwrap();
    let mirror = Mirror::open(
        &data.path().join("m1"),
        source.path().to_str().unwrap(),
        "release",
    )
    .unwrap();
    match mirror.fetch() {
        Err(error) => assert!(error.to_string().contains("release"), "{error}"),
        Ok(revision) => panic!("fetched {revision:?} from a branch that does not exist"),
    }
    let mirror = Mirror::open(
        &data.path().join("m2"),
        source.path().to_str().unwrap(),
        "main",
    )
    .unwrap();
    mirror.fetch().unwrap();
    for missing in [
        "0123456789abcdef",
        "not a revision",
        "main~50",
        "no-such-branch",
    ] {
        let found = mirror.revision(missing);
        assert!(
            matches!(found, Err(GitError::RevisionNotFound(_))),
            "{missing}: {found:?}"
        );
    }
    let nowhere = data.path().join("no-such-repo");
    let mirror = Mirror::open(&data.path().join("m3"), nowhere.to_str().unwrap(), "main").unwrap();
    let error = mirror.fetch().unwrap_err();
    assert!(error.to_string().contains("no-such-repo"), "{error}");
}

#[test]
fn a_submodule_is_refused_not_skipped() {
    let inner = source();
    let source = source();
    git(
        source.path(),
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            inner.path().to_str().unwrap(),
            "vendor/inner",
        ],
    );
    git(source.path(), &["commit", "-q", "-m", "add a submodule"]);
    let data = tempfile::tempdir().unwrap();
    let mirror = Mirror::open(
        &data.path().join("mirror"),
        source.path().to_str().unwrap(),
        "main",
    )
    .unwrap();
    let revision = mirror.fetch().unwrap();
    match mirror.checkout(&revision.id, &data.path().join("checkout")) {
        Err(GitError::Unsupported { path, what }) => {
            assert_eq!(path, "vendor/inner");
            assert!(what.contains("submodule"));
        }
        other => panic!("expected the submodule to be refused, got {other:?}"),
    }
}

#[cfg(unix)]
#[test]
fn symlinks_that_leave_the_checkout_are_refused() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.yaml"), "kind: Secret\n").unwrap();
    let checkout = |name: &str, link: &str, target: &Path| {
        let source = source();
        std::fs::create_dir_all(source.path().join("manifests")).unwrap();
        if name == "chained" {
            // each link alone looks harmless: `here` is `.`, and `up` goes
            // through it to the parent of the root
            symlink(".", source.path().join("here")).unwrap();
        }
        symlink(target, source.path().join(link)).unwrap();
        git(source.path(), &["add", "-A"]);
        git(source.path(), &["commit", "-q", "-m", name]);
        let data = tempfile::tempdir().unwrap();
        let mirror = Mirror::open(
            &data.path().join("mirror"),
            source.path().to_str().unwrap(),
            "main",
        )
        .unwrap();
        let revision = mirror.fetch().unwrap();
        let dest = data.path().join("checkout");
        let result = mirror.checkout(&revision.id, &dest);
        (result, dest.exists(), data, source)
    };
    for (name, link, target) in [
        (
            "absolute",
            "manifests/kustomization.yaml",
            outside.path().join("secret.yaml"),
        ),
        (
            "climbing",
            "manifests/kustomization.yaml",
            Path::new("../../../../../../../../etc/hostname").to_path_buf(),
        ),
        ("chained", "up", Path::new("here/..").to_path_buf()),
        (
            "dangling",
            "manifests/gone.yaml",
            Path::new("nothing-here.yaml").to_path_buf(),
        ),
    ] {
        let (result, left, _data, _source) = checkout(name, link, &target);
        match result {
            Err(GitError::Unsupported { path, what }) => {
                assert_eq!(path, link, "{name}");
                assert!(what.contains("symbolic link"), "{name}: {what}");
            }
            other => panic!("{name}: expected the link to be refused, got {other:?}"),
        }
        assert!(!left, "{name}: nothing of the checkout is left");
    }
    // a link that stays inside is kept
    let (result, _, _data, _source) = checkout(
        "inside",
        "manifests/kustomization.yaml",
        Path::new("../overlays/aks/kustomization.yaml"),
    );
    let dest = result.expect("a link inside the checkout is fine");
    assert_eq!(
        std::fs::read_to_string(dest.join("manifests/kustomization.yaml")).unwrap(),
        "resources: []\n"
    );
}

//! Repositories made with the git CLI, for the tests that fetch and push.

use std::path::{Path, PathBuf};
use std::process::Command;

use pilothouse_gitops::CommitAuthor;

/// Runs the git CLI in `dir` and returns its trimmed standard output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Ada Ops")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada Ops")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .output()
        .expect("the git CLI must be installed (apt-get install git)");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Makes the bare repository `root/name` whose branch `main` holds one
/// commit (`overlays/aks/kustomization.yaml` and an executable `run.sh`), and
/// lets it receive pushes over smart HTTP too.
pub fn bare_remote(root: &Path, name: &str) -> PathBuf {
    let work = tempfile::tempdir().unwrap();
    git(work.path(), &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(work.path().join("overlays/aks")).unwrap();
    std::fs::write(
        work.path().join("overlays/aks/kustomization.yaml"),
        "resources: []\n",
    )
    .unwrap();
    std::fs::write(work.path().join("run.sh"), "#!/bin/sh\n").unwrap();
    git(work.path(), &["add", "."]);
    git(work.path(), &["update-index", "--chmod=+x", "run.sh"]);
    git(work.path(), &["commit", "-q", "-m", "first desired state"]);
    let remote = root.join(name);
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            work.path().to_str().unwrap(),
            remote.to_str().unwrap(),
        ],
    );
    git(&remote, &["config", "http.receivepack", "true"]);
    remote
}

/// Someone else pushes a commit to `main` of `remote` with the git CLI;
/// returns its id.
pub fn push_elsewhere(remote: &Path, message: &str) -> String {
    let work = tempfile::tempdir().unwrap();
    let clone = work.path().join("clone");
    git(
        work.path(),
        &[
            "clone",
            "-q",
            remote.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    git(&clone, &["commit", "-q", "--allow-empty", "-m", message]);
    git(&clone, &["push", "-q", "origin", "main"]);
    git(&clone, &["rev-parse", "HEAD"])
}

/// The author of the commits Pilothouse makes in the tests.
pub fn pilothouse() -> CommitAuthor {
    CommitAuthor {
        name: "Pilothouse".to_owned(),
        email: "pilothouse@example.com".to_owned(),
    }
}

/// The files that scaffold cluster `name`'s overlay.
pub fn scaffold(name: &str) -> Vec<(String, Vec<u8>)> {
    vec![
        (
            format!("clusters/{name}/kustomization.yaml"),
            b"resources:\n  - ../../overlays/aks\n".to_vec(),
        ),
        (
            format!("clusters/{name}/cluster.yaml"),
            format!("name: {name}\n").into_bytes(),
        ),
    ]
}

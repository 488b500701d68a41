//! Fetch and push over HTTPS with a token, against a real smart-HTTP server
//! (`git http-backend` behind hyper and rustls) whose certificate comes from
//! a test CA.

#[path = "../common/mod.rs"]
mod common;
mod server;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{bare_remote, git, pilothouse, push_elsewhere, scaffold};
use pilothouse_gitops::{GitError, Mirror, RemoteOptions, RepoCredentials};
use server::{HttpsGitServer, TestCa};

const TOKEN: &str = "ghp_right-token";

fn token(token: &str) -> RepoCredentials {
    RepoCredentials::Token {
        username: None,
        token: token.to_owned(),
    }
}

fn options(credentials: RepoCredentials, ca: Option<&TestCa>) -> RemoteOptions {
    RemoteOptions {
        credentials,
        ca_certificate: ca.map(TestCa::pem),
        timeout: Duration::from_secs(20),
    }
}

/// A repository served over HTTPS for `x-access-token` with [`TOKEN`], with a
/// certificate for 127.0.0.1.
struct Served {
    _root: tempfile::TempDir,
    remote: std::path::PathBuf,
    ca: TestCa,
    server: HttpsGitServer,
}

impl Served {
    fn start() -> Self {
        Self::start_for(&["127.0.0.1"])
    }

    fn start_for(names: &[&str]) -> Self {
        let root = tempfile::tempdir().unwrap();
        let remote = bare_remote(root.path(), "desired.git");
        let ca = TestCa::new("Pilothouse test CA");
        let server = HttpsGitServer::start(root.path(), &ca, names, "x-access-token", TOKEN);
        Self {
            _root: root,
            remote,
            ca,
            server,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/desired.git", self.server.port)
    }

    fn mirror(&self, dir: &Path, options: RemoteOptions) -> Mirror {
        Mirror::open_with(dir, &self.url(), "main", options).unwrap()
    }
}

#[test]
fn fetch_with_the_right_token_through_the_pinned_ca() {
    let served = Served::start();
    let data = tempfile::tempdir().unwrap();
    let mirror = served.mirror(data.path(), options(token(TOKEN), Some(&served.ca)));
    let head = mirror.fetch().unwrap();
    assert_eq!(head.id, git(&served.remote, &["rev-parse", "main"]));
    // a second fetch after a change
    let theirs = push_elsewhere(&served.remote, "second");
    assert_eq!(mirror.fetch().unwrap().id, theirs);
    assert!(format!("{mirror:?}").contains(&served.url()));
    assert!(!format!("{mirror:?}").contains(TOKEN));
}

#[test]
fn a_wrong_or_missing_token_fails_once_and_clearly() {
    let served = Served::start();
    let data = tempfile::tempdir().unwrap();
    let wrong = "ghp_wrong-token";
    let mirror = served.mirror(
        &data.path().join("m1"),
        options(token(wrong), Some(&served.ca)),
    );
    let started = Instant::now();
    match mirror.fetch() {
        Err(error @ GitError::AuthenticationFailed { .. }) => {
            let text = error.to_string();
            assert!(text.contains("rejected the credentials"), "{text}");
            assert!(
                !text.contains(wrong) && !format!("{error:?}").contains(wrong),
                "{text}"
            );
        }
        other => panic!("expected an authentication failure, got {other:?}"),
    }
    // the first request goes without credentials, the second with the wrong
    // token; then libgit2 is stopped instead of asking again and again
    assert_eq!(served.server.refused(), 2);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(mirror.head().unwrap(), None);

    let mirror = served.mirror(
        &data.path().join("m2"),
        options(RepoCredentials::None, Some(&served.ca)),
    );
    match mirror.fetch() {
        Err(GitError::AuthenticationFailed { reason, .. }) => {
            assert!(reason.contains("none are configured"), "{reason}")
        }
        other => panic!("expected an authentication failure, got {other:?}"),
    }
}

#[test]
fn push_over_https_and_a_hook_refusal() {
    let served = Served::start();
    let data = tempfile::tempdir().unwrap();
    let mirror = served.mirror(data.path(), options(token(TOKEN), Some(&served.ca)));
    let head = mirror.fetch().unwrap();
    let pushed = mirror
        .commit_and_push(
            &head.id,
            &scaffold("aks-1"),
            "Scaffold aks-1",
            &pilothouse(),
        )
        .unwrap();
    assert_eq!(
        git(&served.remote, &["log", "-1", "--format=%H %s", "main"]),
        format!("{} Scaffold aks-1", pushed.id)
    );

    // the server's pre-receive hook refuses the next push
    let hook = served.remote.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'changes go through review' >&2\nexit 1\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    match mirror.commit_and_push(
        &pushed.id,
        &scaffold("aks-2"),
        "Scaffold aks-2",
        &pilothouse(),
    ) {
        Err(GitError::PushRejected { branch, reason }) => {
            assert_eq!(branch, "main");
            assert!(reason.contains("pre-receive hook declined"), "{reason}");
            assert!(reason.contains("changes go through review"), "{reason}");
        }
        other => panic!("expected the hook to refuse the push, got {other:?}"),
    }
    assert_eq!(git(&served.remote, &["rev-parse", "main"]), pushed.id);
    assert_eq!(mirror.head().unwrap(), Some(pushed));
}

#[test]
fn a_certificate_outside_the_system_roots_is_refused_without_a_pinned_ca() {
    let served = Served::start();
    let data = tempfile::tempdir().unwrap();
    let mirror = served.mirror(data.path(), options(token(TOKEN), None));
    match mirror.fetch() {
        Err(GitError::Tls { host, reason }) => {
            assert_eq!(host, "127.0.0.1");
            assert!(reason.contains("ca_certificate"), "{reason}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    // nothing was asked of the server beyond the handshake
    assert_eq!(served.server.refused(), 0);
}

#[test]
fn the_pinned_ca_must_have_issued_the_certificate_for_this_host_name() {
    let data = tempfile::tempdir().unwrap();
    // a certificate for another name, from the right CA
    let served = Served::start_for(&["git.example.test"]);
    let mirror = served.mirror(
        &data.path().join("m1"),
        options(token(TOKEN), Some(&served.ca)),
    );
    match mirror.fetch() {
        Err(GitError::Tls { host, reason }) => {
            assert_eq!(host, "127.0.0.1");
            assert!(
                reason.contains("not valid for the host name `127.0.0.1`"),
                "{reason}"
            );
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    // the right name, from another CA
    let served = Served::start();
    let other_ca = TestCa::new("Another CA");
    let mirror = served.mirror(
        &data.path().join("m2"),
        options(token(TOKEN), Some(&other_ca)),
    );
    match mirror.fetch() {
        Err(GitError::Tls { reason, .. }) => {
            assert!(
                reason.contains("not issued by the configured CA"),
                "{reason}"
            )
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert_eq!(served.server.refused(), 0);
}

#[test]
fn a_server_that_never_answers_times_out() {
    // the kernel completes the connection; nobody ever reads or writes
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "https://127.0.0.1:{}/desired.git",
        silent.local_addr().unwrap().port()
    );
    let data = tempfile::tempdir().unwrap();
    let options = RemoteOptions {
        credentials: token(TOKEN),
        ca_certificate: None,
        timeout: Duration::from_millis(500),
    };
    let mirror = Mirror::open_with(data.path(), &url, "main", options).unwrap();
    let started = Instant::now();
    match mirror.fetch() {
        Err(GitError::Timeout { after, .. }) => assert_eq!(after, Duration::from_millis(500)),
        other => panic!("expected a time-out, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

//! Fetch and push over SSH with a private key and a pinned host key, against
//! a real SSH server (russh) that runs `git upload-pack` and `git
//! receive-pack`.

#[path = "../common/mod.rs"]
mod common;
mod server;

use std::path::PathBuf;
use std::time::Duration;

use common::{bare_remote, git, pilothouse, push_elsewhere, scaffold};
use pilothouse_gitops::{GitError, Mirror, RemoteOptions, RepoCredentials};
use russh::keys::PrivateKey;
use server::{SshGitServer, ed25519, known_hosts_line, openssh_text};

/// A repository served over SSH with host key 1 to client key 2.
struct Served {
    _root: tempfile::TempDir,
    remote: PathBuf,
    host_key: PrivateKey,
    client_key: PrivateKey,
    server: SshGitServer,
}

impl Served {
    fn start() -> Self {
        let root = tempfile::tempdir().unwrap();
        let remote = bare_remote(root.path(), "desired.git");
        let host_key = ed25519(1);
        let client_key = ed25519(2);
        let server = SshGitServer::start(
            root.path(),
            host_key.clone(),
            client_key.public_key().clone(),
        );
        Self {
            _root: root,
            remote,
            host_key,
            client_key,
            server,
        }
    }

    fn url(&self) -> String {
        format!("ssh://git@127.0.0.1:{}/desired.git", self.server.port)
    }

    fn options(&self, client_key: &PrivateKey, host_key: &PrivateKey) -> RemoteOptions {
        RemoteOptions {
            credentials: RepoCredentials::SshKey {
                private_key: openssh_text(client_key),
                passphrase: None,
                known_hosts: format!(
                    "# pinned for the test\n{}\n",
                    known_hosts_line(host_key, self.server.port)
                ),
            },
            ca_certificate: None,
            timeout: Duration::from_secs(20),
        }
    }

    fn mirror(&self, dir: &std::path::Path, options: RemoteOptions) -> Mirror {
        Mirror::open_with(dir, &self.url(), "main", options).unwrap()
    }
}

#[test]
fn fetch_with_the_right_key_and_host_key() {
    let served = Served::start();
    let data = tempfile::tempdir().unwrap();
    let mirror = served.mirror(
        data.path(),
        served.options(&served.client_key, &served.host_key),
    );
    let head = mirror.fetch().unwrap();
    assert_eq!(head.id, git(&served.remote, &["rev-parse", "main"]));
    let theirs = push_elsewhere(&served.remote, "second");
    assert_eq!(mirror.fetch().unwrap().id, theirs);
    assert_eq!(served.server.logins(), 2);
    let shown = format!("{mirror:?}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}

#[test]
fn a_key_the_server_does_not_know_fails_once_and_clearly() {
    let served = Served::start();
    let data = tempfile::tempdir().unwrap();
    let stranger = ed25519(3);
    let mirror = served.mirror(data.path(), served.options(&stranger, &served.host_key));
    match mirror.fetch() {
        Err(error @ GitError::AuthenticationFailed { .. }) => {
            let text = format!("{error} {error:?}");
            assert!(text.contains("rejected the credentials"), "{text}");
            assert!(!text.contains("PRIVATE KEY"), "{text}");
        }
        other => panic!("expected an authentication failure, got {other:?}"),
    }
    assert_eq!(served.server.logins(), 0);
    assert!(
        (1..=2).contains(&served.server.refused_keys()),
        "the key is offered once (and maybe checked once), not again and again: {}",
        served.server.refused_keys()
    );
    assert_eq!(mirror.head().unwrap(), None);
}

#[test]
fn an_unknown_host_key_is_refused_before_logging_in() {
    let served = Served::start();
    let data = tempfile::tempdir().unwrap();
    // known_hosts pins another key for this host and port
    let impostor = ed25519(4);
    let mirror = served.mirror(data.path(), served.options(&served.client_key, &impostor));
    match mirror.fetch() {
        Err(GitError::HostKey { host, reason }) => {
            assert_eq!(host, format!("[127.0.0.1]:{}", served.server.port));
            let fingerprint = served
                .host_key
                .public_key()
                .fingerprint(Default::default())
                .to_string();
            assert!(
                reason.contains(&fingerprint),
                "{reason} should name {fingerprint}"
            );
            assert!(reason.contains("does not list"), "{reason}");
        }
        other => panic!("expected the host key to be refused, got {other:?}"),
    }
    assert_eq!(
        served.server.logins(),
        0,
        "no credentials went to the impostor"
    );
    assert_eq!(served.server.refused_keys(), 0);
    assert_eq!(served.server.commands(), 0);
    assert_eq!(mirror.head().unwrap(), None, "nothing fetched");
}

#[test]
fn push_over_ssh() {
    let served = Served::start();
    let data = tempfile::tempdir().unwrap();
    let mirror = served.mirror(
        data.path(),
        served.options(&served.client_key, &served.host_key),
    );
    let head = mirror.fetch().unwrap();
    let pushed = mirror
        .commit_and_push(
            &head.id,
            &scaffold("gke-1"),
            "Scaffold gke-1",
            &pilothouse(),
        )
        .unwrap();
    assert_eq!(
        git(&served.remote, &["log", "-1", "--format=%H %an %s", "main"]),
        format!("{} Pilothouse Scaffold gke-1", pushed.id)
    );
    assert_eq!(
        git(
            &served.remote,
            &["show", "main:clusters/gke-1/cluster.yaml"]
        ),
        "name: gke-1"
    );
    assert_eq!(mirror.head().unwrap(), Some(pushed));
}

#[test]
fn a_key_with_a_passphrase() {
    let served = Served::start();
    let data = tempfile::tempdir().unwrap();
    // encrypt the client key the way an operator would, with ssh-keygen
    let key_file = data.path().join("id_ed25519");
    std::fs::write(&key_file, openssh_text(&served.client_key)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-p", "-P", "", "-N", "correct horse", "-f"])
        .arg(&key_file)
        .status()
        .expect("ssh-keygen must be installed (apt-get install openssh-client)");
    assert!(status.success());
    let encrypted = std::fs::read_to_string(&key_file).unwrap();
    let options = |passphrase: Option<&str>| {
        let mut options = served.options(&served.client_key, &served.host_key);
        if let RepoCredentials::SshKey {
            private_key,
            passphrase: slot,
            ..
        } = &mut options.credentials
        {
            *private_key = encrypted.clone();
            *slot = passphrase.map(str::to_owned);
        }
        options
    };

    let mirror = served.mirror(&data.path().join("m1"), options(Some("correct horse")));
    assert_eq!(
        mirror.fetch().unwrap().id,
        git(&served.remote, &["rev-parse", "main"])
    );

    let mirror = served.mirror(&data.path().join("m2"), options(Some("wrong")));
    match mirror.fetch() {
        Err(error @ GitError::AuthenticationFailed { .. }) => {
            let text = format!("{error} {error:?}");
            assert!(
                !text.contains("wrong\"") && !text.contains("PRIVATE KEY"),
                "{text}"
            );
        }
        other => panic!("expected an authentication failure, got {other:?}"),
    }
    assert_eq!(served.server.logins(), 1);
}

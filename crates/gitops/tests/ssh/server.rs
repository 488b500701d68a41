//! A real SSH Git server for the tests: russh on 127.0.0.1 that lets one
//! public key in as `git` and runs `git upload-pack` / `git receive-pack` for
//! the repositories under a root, piping the channel both ways.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, Server as _, Session};
use russh::{Channel, ChannelId};

/// An Ed25519 key made from a fixed seed, so the tests are deterministic.
pub fn ed25519(seed: u8) -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
}

/// The key in OpenSSH private key text, as an operator would paste it.
pub fn openssh_text(key: &PrivateKey) -> String {
    key.to_openssh(LineEnding::LF).unwrap().to_string()
}

/// The `known_hosts` line for `key` served on 127.0.0.1:`port`.
pub fn known_hosts_line(key: &PrivateKey, port: u16) -> String {
    format!(
        "[127.0.0.1]:{port} {}",
        key.public_key().to_openssh().unwrap()
    )
}

#[derive(Default)]
struct Counters {
    accepted: AtomicUsize,
    refused: AtomicUsize,
    commands: AtomicUsize,
}

/// The running server; dropping it stops it.
pub struct SshGitServer {
    /// The port on 127.0.0.1.
    pub port: u16,
    counters: Arc<Counters>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl SshGitServer {
    /// Serves the repositories under `root` with `host_key`, to `git`
    /// authenticating with `authorized`.
    pub fn start(root: &Path, host_key: PrivateKey, authorized: PublicKey) -> Self {
        let config = Arc::new(russh::server::Config {
            keys: vec![host_key],
            auth_rejection_time: Duration::from_millis(5),
            auth_rejection_time_initial: Some(Duration::ZERO),
            inactivity_timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        });
        let counters = Arc::new(Counters::default());
        let mut server = GitSsh {
            root: root.to_owned(),
            authorized,
            counters: Arc::clone(&counters),
            channels: HashMap::new(),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        runtime.spawn(async move {
            let _ = server.run_on_socket(config, &listener).await;
        });
        Self {
            port,
            counters,
            runtime: Some(runtime),
        }
    }

    /// How many clients logged in.
    pub fn logins(&self) -> usize {
        self.counters.accepted.load(Ordering::SeqCst)
    }

    /// How many public keys were refused.
    pub fn refused_keys(&self) -> usize {
        self.counters.refused.load(Ordering::SeqCst)
    }

    /// How many git commands ran.
    pub fn commands(&self) -> usize {
        self.counters.commands.load(Ordering::SeqCst)
    }
}

impl Drop for SshGitServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

struct GitSsh {
    root: PathBuf,
    authorized: PublicKey,
    counters: Arc<Counters>,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl russh::server::Server for GitSsh {
    type Handler = GitSsh;

    fn new_client(&mut self, _: Option<std::net::SocketAddr>) -> GitSsh {
        GitSsh {
            root: self.root.clone(),
            authorized: self.authorized.clone(),
            counters: Arc::clone(&self.counters),
            channels: HashMap::new(),
        }
    }
}

impl GitSsh {
    fn check(&self, user: &str, key: &PublicKey) -> Auth {
        if user == "git" && key.key_data() == self.authorized.key_data() {
            Auth::Accept
        } else {
            self.counters.refused.fetch_add(1, Ordering::SeqCst);
            Auth::reject()
        }
    }

    /// `git-upload-pack '/desired.git'` → (`upload-pack`, root/desired.git).
    fn parse(&self, command: &str) -> Option<(&'static str, PathBuf)> {
        let (program, argument) = command.split_once(' ')?;
        let program = match program {
            "git-upload-pack" => "upload-pack",
            "git-receive-pack" => "receive-pack",
            _ => return None,
        };
        let path = argument.trim_matches('\'').trim_start_matches('/');
        if path.split('/').any(|part| part == ".." || part.is_empty()) {
            return None;
        }
        Some((program, self.root.join(path)))
    }
}

impl russh::server::Handler for GitSsh {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self.check(user, offer.public_key))
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let verdict = self.check(user, key.public_key);
        if verdict == Auth::Accept {
            self.counters.accepted.fetch_add(1, Ordering::SeqCst);
        }
        Ok(verdict)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(
        &mut self,
        id: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data).into_owned();
        let (Some((program, repo)), Some(channel)) =
            (self.parse(&command), self.channels.remove(&id))
        else {
            return session.channel_failure(id);
        };
        self.counters.commands.fetch_add(1, Ordering::SeqCst);
        session.channel_success(id)?;
        tokio::spawn(run_git(channel, program, repo));
        Ok(())
    }
}

/// Runs `git <program> <repo>` with the channel as its standard input and
/// output (standard error goes as extended data), then sends its exit status
/// and closes the channel.
async fn run_git(channel: Channel<Msg>, program: &'static str, repo: PathBuf) {
    use tokio::io::AsyncWriteExt as _;

    let mut child = tokio::process::Command::new("git")
        .arg(program)
        .arg(&repo)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the git CLI must be installed (apt-get install git)");
    let (mut input, output) = channel.split();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let feed = tokio::spawn(async move {
        let mut reader = input.make_reader();
        let _ = tokio::io::copy(&mut reader, &mut stdin).await;
        // dropping stdin closes it: the client is done sending
    });
    let mut out = output.make_writer();
    let mut err = output.make_writer_ext(Some(1));
    let _ = tokio::join!(
        async {
            let _ = tokio::io::copy(&mut stdout, &mut out).await;
            let _ = out.flush().await;
        },
        async {
            let _ = tokio::io::copy(&mut stderr, &mut err).await;
            let _ = err.flush().await;
        },
    );
    let code = match child.wait().await {
        Ok(status) => status.code().unwrap_or(255) as u32,
        Err(_) => 255,
    };
    let _ = output.exit_status(code).await;
    let _ = output.eof().await;
    let _ = output.close().await;
    feed.abort();
}

//! Remotes: which URLs are accepted and with which credentials, the trust an
//! HTTPS or SSH server must earn (a pinned CA, `known_hosts`), and running one
//! network operation (fetch or push) with its callbacks under a deadline.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use git2::{CertificateCheckStatus, Cred, CredentialType, ErrorClass, ErrorCode, RemoteCallbacks};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use serde::{Deserialize, Serialize};

use crate::GitError;
use crate::known_hosts::{KnownHosts, Verdict, fingerprint, host_name};

/// How Pilothouse authenticates to a remote. Stored sealed by the caller;
/// its `Debug` never shows a secret.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RepoCredentials {
    /// No credentials: a local path, `file://`, or a public HTTP(S) remote.
    #[default]
    None,
    /// An access token sent with HTTP Basic authentication over HTTPS.
    Token {
        /// The user name to send; `x-access-token` when absent (GitHub's
        /// convention; GitLab and Gitea accept any name with a token).
        #[serde(default)]
        username: Option<String>,
        /// The token, sent as the password.
        token: String,
    },
    /// An SSH private key, and the server host keys to trust.
    SshKey {
        /// The private key, in OpenSSH (`BEGIN OPENSSH PRIVATE KEY`) or PEM text.
        private_key: String,
        /// The key's passphrase, if it is encrypted.
        #[serde(default)]
        passphrase: Option<String>,
        /// `known_hosts` lines for the server (e.g. `ssh-keyscan` output
        /// checked out of band); a host key they do not list is refused.
        known_hosts: String,
    },
}

impl std::fmt::Debug for RepoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Token { username, .. } => f
                .debug_struct("Token")
                .field("username", username)
                .field("token", &"<redacted>")
                .finish(),
            Self::SshKey {
                passphrase,
                known_hosts,
                ..
            } => f
                .debug_struct("SshKey")
                .field("private_key", &"<redacted>")
                .field("passphrase", &passphrase.as_ref().map(|_| "<redacted>"))
                .field(
                    "known_hosts",
                    &format_args!("<{} lines>", known_hosts.lines().count()),
                )
                .finish(),
        }
    }
}

/// How to reach a remote: credentials, the CA to trust and a time limit.
#[derive(Clone)]
pub struct RemoteOptions {
    /// How to authenticate.
    pub credentials: RepoCredentials,
    /// A PEM CA certificate (or several) to trust for HTTPS *instead of* the
    /// system roots: the server's certificate must be issued by it and be
    /// valid for the host name. `None` keeps libgit2's check against the
    /// system roots.
    pub ca_certificate: Option<String>,
    /// The longest one fetch or push may take, connection included.
    pub timeout: Duration,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            credentials: RepoCredentials::None,
            ca_certificate: None,
            timeout: Duration::from_secs(60),
        }
    }
}

impl std::fmt::Debug for RemoteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteOptions")
            .field("credentials", &self.credentials)
            .field(
                "ca_certificate",
                &self.ca_certificate.as_ref().map(|_| "<PEM>"),
            )
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What kind of remote a URL names, as accepted by [`validate_remote_url`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteKind {
    /// An absolute path on this machine.
    LocalPath,
    /// A `file://` URL.
    File,
    /// Plain `http://`: accepted only without credentials.
    Http {
        /// The host name or address (IPv6 without brackets).
        host: String,
        /// The port, 80 unless given.
        port: u16,
    },
    /// `https://`.
    Https {
        /// The host name or address (IPv6 without brackets).
        host: String,
        /// The port, 443 unless given.
        port: u16,
    },
    /// `ssh://user@host[:port]/path` or scp-like `user@host:path`.
    Ssh {
        /// The user to log in as (e.g. `git`).
        user: String,
        /// The host name or address (IPv6 without brackets).
        host: String,
        /// The port, 22 unless given.
        port: u16,
    },
}

/// Classifies `url` and checks that `credentials` fit it. Refused, each with
/// its reason: relative paths, `git://`, unknown schemes, a password, query or
/// fragment in the URL (credentials come through [`RepoCredentials`] only),
/// `http://` with a token (it would travel in plaintext), a token with SSH, an
/// SSH key with HTTP(S), credentials with a local repository, SSH without a
/// key, and an SSH key whose `known_hosts` has no line for the host.
pub fn validate_remote_url(
    url: &str,
    credentials: &RepoCredentials,
) -> Result<RemoteKind, GitError> {
    let refuse = |reason: String| GitError::InvalidRemote {
        url_redacted: redact_url(url),
        reason,
    };
    let kind = classify(url).map_err(refuse)?;
    check_credentials(&kind, credentials).map_err(refuse)?;
    Ok(kind)
}

fn classify(url: &str) -> Result<RemoteKind, String> {
    if url.is_empty() {
        return Err("the URL is empty".to_owned());
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the URL contains whitespace or control characters".to_owned());
    }
    if let Some((scheme, _)) = url.split_once("://") {
        // URL parsers disagree on these (`\` is a `/` to one, part of the
        // user name to another): the host judged must be the host reached
        if let Some(odd) = url.chars().find(|c| {
            !c.is_ascii_graphic()
                || matches!(c, '\\' | '"' | '<' | '>' | '^' | '`' | '{' | '|' | '}')
        }) {
            return Err(format!(
                "the URL holds `{}`, which URLs do not allow unescaped",
                odd.escape_default()
            ));
        }
        return classify_url(&scheme.to_ascii_lowercase(), url);
    }
    if url.starts_with('/') {
        return Ok(RemoteKind::LocalPath);
    }
    classify_scp_like(url)
}

fn classify_url(scheme: &str, url: &str) -> Result<RemoteKind, String> {
    match scheme {
        "git" => {
            return Err(
                "git:// is neither authenticated nor encrypted: use https or ssh".to_owned(),
            );
        }
        "file" | "http" | "https" | "ssh" => {}
        other => {
            return Err(format!(
                "the scheme `{other}` is not supported: use https://, ssh://, user@host:path, file:// or an absolute path"
            ));
        }
    }
    let parsed = url::Url::parse(url).map_err(|error| format!("not a valid URL: {error}"))?;
    if parsed.password().is_some() {
        return Err(
            "the URL embeds a password: give credentials through RepoCredentials instead"
                .to_owned(),
        );
    }
    if matches!(scheme, "http" | "https") && !parsed.username().is_empty() {
        // a token is often given as the user name; it would be stored,
        // shown and logged with the URL
        return Err(
            "the URL names a user: give the user name and token through the credentials instead"
                .to_owned(),
        );
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("a query string or fragment is not supported in a remote URL".to_owned());
    }
    let host = || -> Result<String, String> {
        match parsed.host() {
            Some(url::Host::Ipv6(address)) => Ok(address.to_string()),
            Some(host) => Ok(host.to_string()),
            None => Err("the URL names no host".to_owned()),
        }
    };
    let port = parsed.port_or_known_default();
    match scheme {
        "file" => {
            if !matches!(parsed.host_str(), None | Some("") | Some("localhost")) {
                return Err("a file:// URL names no other host than localhost".to_owned());
            }
            Ok(RemoteKind::File)
        }
        "http" => {
            let host = host()?;
            if !is_loopback_host(&host) {
                return Err(
                    "plain http:// is neither authenticated nor encrypted: use https (http is \
                     accepted only to a loopback host)"
                        .to_owned(),
                );
            }
            Ok(RemoteKind::Http {
                host,
                port: port.unwrap_or(80),
            })
        }
        "https" => Ok(RemoteKind::Https {
            host: host()?,
            port: port.unwrap_or(443),
        }),
        _ => {
            if parsed.username().is_empty() {
                return Err("an ssh URL names its user, as in ssh://git@host/path".to_owned());
            }
            if parsed.path().len() <= 1 {
                return Err("the ssh URL names no repository path".to_owned());
            }
            Ok(RemoteKind::Ssh {
                user: parsed.username().to_owned(),
                host: host()?,
                port: port.unwrap_or(22),
            })
        }
    }
}

/// Whether a host names this machine: `localhost`, 127.0.0.0/8 or `::1`.
fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

/// The origin credentials are bound to: `scheme://host:port` of an HTTP(S)
/// or SSH remote (scp-like addresses are `ssh://`), `local` for a path or
/// `file://` URL. Credentials sealed for one origin are never sent to
/// another: a repository URL that changes its origin needs new ones.
pub fn remote_origin(kind: &RemoteKind) -> String {
    let bracketed = |host: &str| match host.contains(':') {
        true => format!("[{}]", host.to_ascii_lowercase()),
        false => host.to_ascii_lowercase(),
    };
    match kind {
        RemoteKind::LocalPath | RemoteKind::File => "local".to_owned(),
        RemoteKind::Http { host, port } => format!("http://{}:{port}", bracketed(host)),
        RemoteKind::Https { host, port } => format!("https://{}:{port}", bracketed(host)),
        RemoteKind::Ssh { host, port, .. } => format!("ssh://{}:{port}", bracketed(host)),
    }
}

/// The origin ([`remote_origin`]) of a remote URL, judged on the URL alone
/// (whatever the credentials); an error for a URL that
/// [`validate_remote_url`] refuses with any credentials.
pub fn url_origin(url: &str) -> Result<String, GitError> {
    classify(url)
        .map(|kind| remote_origin(&kind))
        .map_err(|reason| GitError::InvalidRemote {
            url_redacted: redact_url(url),
            reason,
        })
}

/// `user@host:path`, git's rule: a colon before any slash.
fn classify_scp_like(url: &str) -> Result<RemoteKind, String> {
    let colon = url.find(':');
    let slash = url.find('/');
    let scp_like = match (colon, slash) {
        (Some(colon), Some(slash)) => colon < slash,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if !scp_like {
        return Err("a relative path: use an absolute path or a URL".to_owned());
    }
    let Some((user, rest)) = url.split_once('@') else {
        return Err("an scp-like address names its user, as in git@host:path".to_owned());
    };
    if user.contains(':') {
        return Err(
            "the address embeds a password: give credentials through RepoCredentials instead"
                .to_owned(),
        );
    }
    if user.is_empty() || user.contains('/') {
        return Err("an scp-like address names its user, as in git@host:path".to_owned());
    }
    let (host, path) = match rest.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or("an unclosed `[` in the host")?;
            let path = after
                .strip_prefix(':')
                .ok_or("expected `:` and a path after the host")?;
            (host, path)
        }
        None => rest
            .split_once(':')
            .ok_or("expected `:` and a path after the host")?,
    };
    if host.is_empty() || host.contains('/') {
        return Err("the address names no host".to_owned());
    }
    if path.is_empty() {
        return Err("the address names no repository path".to_owned());
    }
    Ok(RemoteKind::Ssh {
        user: user.to_owned(),
        host: host.to_owned(),
        port: 22,
    })
}

fn check_credentials(kind: &RemoteKind, credentials: &RepoCredentials) -> Result<(), String> {
    match (kind, credentials) {
        (RemoteKind::LocalPath | RemoteKind::File, RepoCredentials::None) => Ok(()),
        (RemoteKind::LocalPath | RemoteKind::File, _) => {
            Err("credentials are only used with https and ssh remotes".to_owned())
        }
        (RemoteKind::Http { .. }, RepoCredentials::None) => Ok(()),
        (RemoteKind::Http { .. }, RepoCredentials::Token { .. }) => {
            Err("http:// would send the token in plaintext: use https".to_owned())
        }
        (RemoteKind::Http { .. } | RemoteKind::Https { .. }, RepoCredentials::SshKey { .. }) => {
            Err(
                "an SSH key needs an ssh remote (ssh://user@host/path or user@host:path)"
                    .to_owned(),
            )
        }
        (RemoteKind::Https { .. }, RepoCredentials::None) => Ok(()),
        (RemoteKind::Https { .. }, RepoCredentials::Token { username, token }) => {
            if token.is_empty() {
                return Err("the token is empty".to_owned());
            }
            if username.as_deref().is_some_and(|name| name.contains(':')) {
                return Err("the user name of a token contains `:`".to_owned());
            }
            Ok(())
        }
        (RemoteKind::Ssh { .. }, RepoCredentials::None) => {
            Err("an ssh remote needs an SSH key and the server's known_hosts lines".to_owned())
        }
        (RemoteKind::Ssh { .. }, RepoCredentials::Token { .. }) => Err(
            "a token cannot be used with ssh: use an SSH key, or an https URL with the token"
                .to_owned(),
        ),
        (
            RemoteKind::Ssh { host, port, .. },
            RepoCredentials::SshKey {
                private_key,
                known_hosts,
                ..
            },
        ) => {
            if !(private_key.contains("-----BEGIN ") && private_key.contains("PRIVATE KEY-----")) {
                return Err(
                    "the SSH private key is not OpenSSH or PEM text (-----BEGIN ... PRIVATE KEY-----)"
                        .to_owned(),
                );
            }
            let parsed =
                KnownHosts::parse(known_hosts).map_err(|reason| format!("known_hosts {reason}"))?;
            if !parsed.knows_host(host, *port) {
                return Err(format!(
                    "known_hosts has no line for `{}`: the server's host key must be pinned",
                    host_name(host, *port)
                ));
            }
            Ok(())
        }
    }
}

/// `url` fit for errors and logs: no password, no query, and for HTTP(S) no
/// user name either (a token is sometimes given as the user name).
pub fn redact_url(url: &str) -> String {
    let (prefix, rest) = match url.find("://") {
        Some(at) => url.split_at(at + 3),
        None => ("", url),
    };
    let web = prefix.to_ascii_lowercase().starts_with("http");
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, mut tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let (userinfo, host) = authority.split_at(at);
            let userinfo = match userinfo.split_once(':') {
                _ if web => "<redacted>".to_owned(),
                Some((user, _)) => format!("{user}:<redacted>"),
                None => userinfo.to_owned(),
            };
            format!("{userinfo}{host}")
        }
        None => authority.to_owned(),
    };
    let mut redacted_tail = String::new();
    if !prefix.is_empty()
        && let Some(at) = tail.find(['?', '#'])
    {
        redacted_tail = format!("{}?<redacted>", &tail[..at]);
        tail = "";
    }
    format!("{prefix}{authority}{tail}{redacted_tail}")
}

/// A remote with its parsed trust settings, shared with the thread that runs
/// a network operation.
pub(crate) struct Connection {
    pub(crate) url: String,
    pub(crate) url_redacted: String,
    pub(crate) kind: RemoteKind,
    credentials: RepoCredentials,
    ca: Option<Vec<TrustAnchor<'static>>>,
    known_hosts: KnownHosts,
    timeout: Duration,
}

impl Connection {
    pub(crate) fn new(url: &str, options: RemoteOptions) -> Result<Self, GitError> {
        let kind = validate_remote_url(url, &options.credentials)?;
        let refuse = |reason: String| GitError::InvalidRemote {
            url_redacted: redact_url(url),
            reason,
        };
        let ca = match &options.ca_certificate {
            None => None,
            Some(_) if !matches!(kind, RemoteKind::Https { .. }) => {
                return Err(refuse(
                    "a CA certificate only applies to an https remote".to_owned(),
                ));
            }
            Some(pem) => Some(trust_anchors(pem).map_err(refuse)?),
        };
        let known_hosts = match &options.credentials {
            RepoCredentials::SshKey { known_hosts, .. } => KnownHosts::parse(known_hosts)
                .map_err(|reason| refuse(format!("known_hosts {reason}")))?,
            _ => KnownHosts::default(),
        };
        Ok(Self {
            url: url.to_owned(),
            url_redacted: redact_url(url),
            kind,
            credentials: options.credentials,
            ca,
            known_hosts,
            timeout: options.timeout,
        })
    }

    /// Runs `operation` against a fresh remote handle on a thread of its own,
    /// and waits at most the timeout for it. On time-out the operation is told
    /// to stop at its next callback and [`GitError::Timeout`] is returned at
    /// once; libgit2 offers no per-operation socket time-out, so a server that
    /// goes silent leaves that thread blocked until the connection drops.
    pub(crate) fn run<T: Send + 'static>(
        self: &Arc<Self>,
        repo_path: PathBuf,
        context: String,
        operation: impl FnOnce(
            &mut git2::Remote<'_>,
            RemoteCallbacks<'static>,
        ) -> Result<T, git2::Error>
        + Send
        + 'static,
    ) -> Result<(T, Arc<Operation>), GitError> {
        let state = Arc::new(Operation {
            connection: Arc::clone(self),
            deadline: Instant::now() + self.timeout,
            cancelled: AtomicBool::new(false),
            credential_requests: AtomicUsize::new(0),
            failure: Mutex::new(None),
            push_rejections: Mutex::new(Vec::new()),
            messages: Mutex::new(String::new()),
        });
        let (sender, receiver) = mpsc::sync_channel(1);
        let worker_state = Arc::clone(&state);
        let url = self.url.clone();
        std::thread::Builder::new()
            .name("gitops-remote".to_owned())
            .spawn(move || {
                let outcome = git2::Repository::open_bare(&repo_path).and_then(|repo| {
                    let mut remote = repo.remote_anonymous(&url)?;
                    operation(&mut remote, worker_state.callbacks())
                });
                let _ = sender.send(outcome);
            })
            .map_err(|source| GitError::Io {
                context: "starting the thread for a remote operation".to_owned(),
                source,
            })?;
        match receiver.recv_timeout(self.timeout) {
            Ok(Ok(value)) => Ok((value, state)),
            Ok(Err(error)) => Err(state
                .take_failure()
                .unwrap_or_else(|| self.error_for(context, error))),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                state.cancelled.store(true, Ordering::SeqCst);
                Err(GitError::Timeout {
                    url_redacted: self.url_redacted.clone(),
                    after: self.timeout,
                })
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(GitError::Io {
                context,
                source: std::io::Error::other("the remote operation's thread panicked"),
            }),
        }
    }

    fn host(&self) -> &str {
        match &self.kind {
            RemoteKind::Http { host, .. }
            | RemoteKind::Https { host, .. }
            | RemoteKind::Ssh { host, .. } => host,
            RemoteKind::LocalPath | RemoteKind::File => "localhost",
        }
    }

    fn error_for(&self, context: String, error: git2::Error) -> GitError {
        if error.code() == ErrorCode::Auth
            || (error.class() == ErrorClass::Ssh
                && error.message().starts_with("failed to authenticate"))
        {
            let mut reason = error.message().to_owned();
            if reason.contains("private key") {
                reason.push_str(
                    " (the key cannot be read: a wrong or missing passphrase, or a format libssh2 does not support)",
                );
            }
            return GitError::AuthenticationFailed {
                url_redacted: self.url_redacted.clone(),
                reason,
            };
        }
        if error.code() == ErrorCode::Certificate || error.class() == ErrorClass::Ssl {
            let reason = match self.ca {
                Some(_) => error.message().to_owned(),
                None => format!(
                    "{} (checked against the system's CA roots; set ca_certificate for a private CA)",
                    error.message()
                ),
            };
            return GitError::Tls {
                host: self.host().to_owned(),
                reason,
            };
        }
        GitError::Git {
            context,
            source: error,
        }
    }
}

fn trust_anchors(pem: &str) -> Result<Vec<TrustAnchor<'static>>, String> {
    let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("the CA certificate is not valid PEM: {error}"))?;
    if certificates.is_empty() {
        return Err("the CA certificate holds no PEM CERTIFICATE block".to_owned());
    }
    certificates
        .iter()
        .map(|der| {
            webpki::anchor_from_trusted_cert(der)
                .map(|anchor| anchor.to_owned())
                .map_err(|error| format!("the CA certificate cannot be read: {error}"))
        })
        .collect()
}

fn check_server_certificate(
    anchors: &[TrustAnchor<'_>],
    leaf: &[u8],
    host: &str,
) -> Result<(), String> {
    let leaf = CertificateDer::from(leaf);
    let certificate = webpki::EndEntityCert::try_from(&leaf)
        .map_err(|error| format!("the server's certificate cannot be read: {error}"))?;
    certificate
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            anchors,
            &[],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|error| match error {
            webpki::Error::UnknownIssuer => {
                "it is not issued by the configured CA certificate".to_owned()
            }
            webpki::Error::CertExpired { .. } => "it has expired".to_owned(),
            webpki::Error::CertNotValidYet { .. } => "it is not valid yet".to_owned(),
            other => format!("it does not verify against the configured CA: {other}"),
        })?;
    let name =
        ServerName::try_from(host).map_err(|_| format!("`{host}` is not a valid server name"))?;
    certificate
        .verify_is_valid_for_subject_name(&name)
        .map_err(|_| format!("it is not valid for the host name `{host}`"))
}

/// The shared state of one fetch or push: why it failed, if a callback knows
/// better than libgit2, and the per-ref verdicts of a push.
pub(crate) struct Operation {
    connection: Arc<Connection>,
    deadline: Instant,
    cancelled: AtomicBool,
    credential_requests: AtomicUsize,
    failure: Mutex<Option<GitError>>,
    push_rejections: Mutex<Vec<(String, String)>>,
    messages: Mutex<String>,
}

/// How much of the server's messages is kept for an error.
const MESSAGES_KEPT: usize = 4096;

impl Operation {
    /// The last lines the server sent on the side band (a hook's output,
    /// say), without progress counters; at most five.
    pub(crate) fn remote_messages(&self) -> Vec<String> {
        let Ok(messages) = self.messages.lock() else {
            return Vec::new();
        };
        let lines: Vec<String> = messages
            .split(['\n', '\r'])
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.contains("% ("))
            .map(str::to_owned)
            .collect();
        lines[lines.len().saturating_sub(5)..].to_vec()
    }

    fn record_message(&self, text: &[u8]) {
        if let Ok(mut messages) = self.messages.lock() {
            messages.push_str(&String::from_utf8_lossy(text));
            if messages.len() > MESSAGES_KEPT {
                let mut cut = messages.len() - MESSAGES_KEPT;
                while !messages.is_char_boundary(cut) {
                    cut += 1;
                }
                messages.drain(..cut);
            }
        }
    }

    /// The refs the server refused in a push, with its reasons.
    pub(crate) fn push_rejections(&self) -> Vec<(String, String)> {
        self.push_rejections
            .lock()
            .map(|rejections| rejections.clone())
            .unwrap_or_default()
    }

    fn take_failure(&self) -> Option<GitError> {
        self.failure.lock().ok()?.take()
    }

    /// Records the first failure and hands libgit2 an error to stop with.
    fn fail(&self, error: GitError) -> git2::Error {
        let message = error.to_string();
        if let Ok(mut failure) = self.failure.lock()
            && failure.is_none()
        {
            *failure = Some(error);
        }
        git2::Error::from_str(&message)
    }

    fn stopped(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst) || Instant::now() > self.deadline
    }

    fn stop_if_late(&self) -> Result<(), git2::Error> {
        match self.stopped() {
            false => Ok(()),
            true => Err(self.fail(GitError::Timeout {
                url_redacted: self.connection.url_redacted.clone(),
                after: self.connection.timeout,
            })),
        }
    }

    fn callbacks(self: &Arc<Self>) -> RemoteCallbacks<'static> {
        let mut callbacks = RemoteCallbacks::new();
        let state = Arc::clone(self);
        callbacks.credentials(move |_url, user_from_url, allowed| {
            state.credentials(user_from_url, allowed)
        });
        let state = Arc::clone(self);
        callbacks.certificate_check(move |certificate, host| {
            state.stop_if_late()?;
            state.certificate_check(certificate, host)
        });
        let state = Arc::clone(self);
        callbacks.transfer_progress(move |_| !state.stopped());
        let state = Arc::clone(self);
        callbacks.sideband_progress(move |text| {
            state.record_message(text);
            !state.stopped()
        });
        let state = Arc::clone(self);
        callbacks.push_update_reference(move |reference, status| {
            if let Some(reason) = status
                && let Ok(mut rejections) = state.push_rejections.lock()
            {
                rejections.push((reference.to_owned(), reason.to_owned()));
            }
            Ok(())
        });
        let state = Arc::clone(self);
        callbacks.push_negotiation(move |_| state.stop_if_late());
        callbacks
    }

    /// Hands out the configured credentials once; a second request means the
    /// server refused them, and libgit2 would otherwise ask forever.
    fn credentials(
        &self,
        user_from_url: Option<&str>,
        allowed: CredentialType,
    ) -> Result<Cred, git2::Error> {
        self.stop_if_late()?;
        let connection = &self.connection;
        let ssh_user = match &connection.kind {
            RemoteKind::Ssh { user, .. } => user.as_str(),
            _ => "git",
        };
        if allowed == CredentialType::USERNAME {
            return Cred::username(user_from_url.unwrap_or(ssh_user));
        }
        let refused = |reason: &str| {
            self.fail(GitError::AuthenticationFailed {
                url_redacted: connection.url_redacted.clone(),
                reason: reason.to_owned(),
            })
        };
        if self.credential_requests.fetch_add(1, Ordering::SeqCst) > 0 {
            return Err(refused("the server rejected the credentials"));
        }
        match &connection.credentials {
            RepoCredentials::None => Err(refused(
                "the server asks for credentials and none are configured",
            )),
            RepoCredentials::Token { username, token } => {
                if !allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
                    return Err(refused("the server does not accept a user name and token"));
                }
                let username = username
                    .as_deref()
                    .or(user_from_url)
                    .unwrap_or("x-access-token");
                Cred::userpass_plaintext(username, token)
            }
            RepoCredentials::SshKey {
                private_key,
                passphrase,
                ..
            } => {
                if !allowed.contains(CredentialType::SSH_MEMORY) {
                    return Err(refused(
                        "the server does not accept public key authentication",
                    ));
                }
                Cred::ssh_key_from_memory(
                    user_from_url.unwrap_or(ssh_user),
                    None,
                    private_key,
                    passphrase.as_deref(),
                )
            }
        }
    }

    fn certificate_check(
        &self,
        certificate: &git2::cert::Cert<'_>,
        host: &str,
    ) -> Result<CertificateCheckStatus, git2::Error> {
        let connection = &self.connection;
        if let Some(host_key) = certificate.as_hostkey() {
            let RemoteKind::Ssh { host, port, .. } = &connection.kind else {
                return Err(self.fail(GitError::HostKey {
                    host: host.to_owned(),
                    reason: "an SSH host key from a remote that is not ssh".to_owned(),
                }));
            };
            let Some(key) = host_key.hostkey() else {
                return Err(self.fail(GitError::HostKey {
                    host: host_name(host, *port),
                    reason: "libgit2 did not hand over the raw host key to check".to_owned(),
                }));
            };
            let key_type = host_key
                .hostkey_type()
                .map(|kind| kind.name())
                .unwrap_or("unknown type");
            let presented = format!("{key_type} key {}", fingerprint(key));
            let reason = match connection.known_hosts.check(host, *port, key) {
                Verdict::Trusted => return Ok(CertificateCheckStatus::CertificateOk),
                Verdict::UnknownHost => {
                    format!(
                        "the server presented the {presented}, and known_hosts has no line for this host"
                    )
                }
                Verdict::Mismatch(types) => format!(
                    "the server presented the {presented}, which known_hosts does not list for this host (it lists {}): the host key changed, or another server answers",
                    types.join(", ")
                ),
                Verdict::Revoked => format!(
                    "the server presented the {presented}, which known_hosts marks @revoked"
                ),
            };
            return Err(self.fail(GitError::HostKey {
                host: host_name(host, *port),
                reason,
            }));
        }
        if let Some(x509) = certificate.as_x509() {
            let Some(anchors) = &connection.ca else {
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            return match check_server_certificate(anchors, x509.data(), host) {
                Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
                Err(reason) => Err(self.fail(GitError::Tls {
                    host: host.to_owned(),
                    reason,
                })),
            };
        }
        Err(self.fail(GitError::Tls {
            host: host.to_owned(),
            reason: "the server's certificate is of a kind that cannot be checked".to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: &str = "[127.0.0.1]:2222,git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIETYjLvEN+D0Mgky27E7mimF+7dEYWY/qLV1sMzt0Sa6";
    const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-key-material\n-----END OPENSSH PRIVATE KEY-----\n";

    fn token() -> RepoCredentials {
        RepoCredentials::Token {
            username: None,
            token: "ghp_secret".to_owned(),
        }
    }

    fn ssh_key() -> RepoCredentials {
        RepoCredentials::SshKey {
            private_key: KEY.to_owned(),
            passphrase: Some("hunter2".to_owned()),
            known_hosts: KNOWN.to_owned(),
        }
    }

    fn ssh(user: &str, host: &str, port: u16) -> RemoteKind {
        RemoteKind::Ssh {
            user: user.to_owned(),
            host: host.to_owned(),
            port,
        }
    }

    fn check(url: &str, credentials: &RepoCredentials, expected: Result<RemoteKind, &str>) {
        match (validate_remote_url(url, credentials), expected) {
            (Ok(kind), Ok(expected)) => assert_eq!(kind, expected, "{url}"),
            (
                Err(GitError::InvalidRemote {
                    reason,
                    url_redacted,
                }),
                Err(expected),
            ) => {
                assert!(reason.contains(expected), "{url}: {reason}");
                for secret in ["ghp_secret", "hunter2", "secret-key-material", "pa55w0rd"] {
                    assert!(!url_redacted.contains(secret), "{url_redacted}");
                    assert!(!reason.contains(secret), "{reason}");
                }
            }
            (outcome, expected) => panic!("{url}: got {outcome:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn remote_urls_are_classified() {
        let none = RepoCredentials::None;
        let https = |host: &str, port| RemoteKind::Https {
            host: host.to_owned(),
            port,
        };
        check("/srv/git/desired.git", &none, Ok(RemoteKind::LocalPath));
        check("file:///srv/git/desired.git", &none, Ok(RemoteKind::File));
        check(
            "https://github.com/acme/desired.git",
            &none,
            Ok(https("github.com", 443)),
        );
        check(
            "https://github.com/acme/desired.git",
            &token(),
            Ok(https("github.com", 443)),
        );
        check(
            "HTTPS://git.example.com:8443/d.git",
            &token(),
            Ok(https("git.example.com", 8443)),
        );
        check("https://[::1]:8443/d.git", &none, Ok(https("::1", 8443)));
        check(
            "http://127.0.0.1:8080/d.git",
            &none,
            Ok(RemoteKind::Http {
                host: "127.0.0.1".to_owned(),
                port: 8080,
            }),
        );
        check(
            "http://localhost/d.git",
            &none,
            Ok(RemoteKind::Http {
                host: "localhost".to_owned(),
                port: 80,
            }),
        );
        check(
            "ssh://git@127.0.0.1:2222/repo.git",
            &ssh_key(),
            Ok(ssh("git", "127.0.0.1", 2222)),
        );
        check(
            "git@git.example.com:acme/desired.git",
            &ssh_key(),
            Ok(ssh("git", "git.example.com", 22)),
        );
        check(
            "ssh://git@git.example.com/acme/d.git",
            &ssh_key(),
            Ok(ssh("git", "git.example.com", 22)),
        );
    }

    #[test]
    fn unsafe_or_unclear_remotes_are_refused() {
        let none = RepoCredentials::None;
        check("", &none, Err("empty"));
        check("desired", &none, Err("relative path"));
        check("./desired", &none, Err("relative path"));
        check("../repos/desired.git", &none, Err("relative path"));
        check(" /srv/git", &none, Err("whitespace"));
        check(
            "git://github.com/acme/d.git",
            &none,
            Err("git:// is neither authenticated"),
        );
        check("ftp://example.com/d.git", &none, Err("the scheme `ftp`"));
        check("http://127.0.0.1/d.git", &token(), Err("plaintext"));
        check(
            "https://github.com\\@evil.example/a/d.git",
            &token(),
            Err("which URLs do not allow"),
        );
        check(
            "https://github.com/a|b.git",
            &none,
            Err("which URLs do not allow"),
        );
        check(
            "http://mirror.internal/d.git",
            &none,
            Err("only to a loopback host"),
        );
        check(
            "http://10.0.0.7/d.git",
            &none,
            Err("only to a loopback host"),
        );
        check(
            "https://ghp_secret@github.com/acme/d.git",
            &none,
            Err("names a user"),
        );
        check(
            "https://bot@github.com/acme/d.git",
            &token(),
            Err("names a user"),
        );
        check(
            "https://bot:pa55w0rd@github.com/acme/d.git",
            &none,
            Err("embeds a password"),
        );
        check(
            "https://bot:pa55w0rd@github.com/acme/d.git",
            &token(),
            Err("embeds a password"),
        );
        check(
            "https://github.com/d.git?private_token=pa55w0rd",
            &none,
            Err("query string"),
        );
        check(
            "ssh://git:pa55w0rd@git.example.com/d.git",
            &ssh_key(),
            Err("embeds a password"),
        );
        check(
            "git:pa55w0rd@git.example.com:d.git",
            &ssh_key(),
            Err("embeds a password"),
        );
        check(
            "git.example.com:acme/d.git",
            &ssh_key(),
            Err("names its user"),
        );
        check(
            "ssh://git.example.com/acme/d.git",
            &ssh_key(),
            Err("names its user"),
        );
        check(
            "git@git.example.com:d.git",
            &token(),
            Err("a token cannot be used with ssh"),
        );
        check("git@git.example.com:d.git", &none, Err("needs an SSH key"));
        check(
            "https://github.com/acme/d.git",
            &ssh_key(),
            Err("needs an ssh remote"),
        );
        check(
            "/srv/git/d.git",
            &token(),
            Err("only used with https and ssh"),
        );
        check(
            "file:///srv/git/d.git",
            &ssh_key(),
            Err("only used with https and ssh"),
        );
        check(
            "file://otherhost/srv/git/d.git",
            &none,
            Err("no other host"),
        );
        check(
            "git@other.example.com:d.git",
            &ssh_key(),
            Err("known_hosts has no line for `other.example.com`"),
        );
        check(
            "ssh://git@127.0.0.1/d.git",
            &ssh_key(),
            Err("known_hosts has no line for `127.0.0.1`"),
        );
        let bad_key = RepoCredentials::SshKey {
            private_key: "hunter2".to_owned(),
            passphrase: None,
            known_hosts: KNOWN.to_owned(),
        };
        check(
            "git@git.example.com:d.git",
            &bad_key,
            Err("not OpenSSH or PEM"),
        );
        let bad_known_hosts = RepoCredentials::SshKey {
            private_key: KEY.to_owned(),
            passphrase: None,
            known_hosts: "git.example.com ssh-ed25519".to_owned(),
        };
        check(
            "git@git.example.com:d.git",
            &bad_known_hosts,
            Err("known_hosts line 1: no key"),
        );
        let empty_token = RepoCredentials::Token {
            username: None,
            token: String::new(),
        };
        check(
            "https://github.com/a/d.git",
            &empty_token,
            Err("the token is empty"),
        );
    }

    #[test]
    fn credentials_are_bound_to_scheme_host_and_port() {
        let origin = |url: &str, credentials: &RepoCredentials| {
            remote_origin(&validate_remote_url(url, credentials).expect(url))
        };
        let none = RepoCredentials::None;
        for (url, credentials, expected) in [
            (
                "https://GitHub.com/a/d.git",
                &token(),
                "https://github.com:443",
            ),
            (
                "https://github.com:443/b/e.git",
                &none,
                "https://github.com:443",
            ),
            (
                "https://github.com:8443/a/d.git",
                &none,
                "https://github.com:8443",
            ),
            ("https://[::1]:8443/d.git", &none, "https://[::1]:8443"),
            ("http://127.0.0.1/d.git", &none, "http://127.0.0.1:80"),
            (
                "git@git.example.com:a/d.git",
                &ssh_key(),
                "ssh://git.example.com:22",
            ),
            (
                "ssh://git@127.0.0.1:2222/repo.git",
                &ssh_key(),
                "ssh://127.0.0.1:2222",
            ),
            ("/srv/git/d.git", &none, "local"),
            ("file:///srv/git/d.git", &none, "local"),
        ] {
            assert_eq!(origin(url, credentials), expected, "{url}");
        }
    }

    #[test]
    fn urls_are_redacted() {
        for (url, expected) in [
            ("/srv/git/d.git", "/srv/git/d.git"),
            ("https://github.com/a/d.git", "https://github.com/a/d.git"),
            (
                "https://bot:pa55w0rd@github.com/a/d.git",
                "https://<redacted>@github.com/a/d.git",
            ),
            (
                "https://ghp_token@github.com/a/d.git",
                "https://<redacted>@github.com/a/d.git",
            ),
            (
                "https://github.com/a/d.git?token=pa55w0rd#x",
                "https://github.com/a/d.git?<redacted>",
            ),
            (
                "ssh://git:pa55w0rd@host:2222/d.git",
                "ssh://git:<redacted>@host:2222/d.git",
            ),
            ("ssh://git@host:2222/d.git", "ssh://git@host:2222/d.git"),
            ("git@host:acme/d.git", "git@host:acme/d.git"),
            (
                "git:pa55w0rd@host:acme/d.git",
                "git:<redacted>@host:acme/d.git",
            ),
        ] {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let options = RemoteOptions {
            credentials: ssh_key(),
            ca_certificate: Some("-----BEGIN CERTIFICATE-----".to_owned()),
            ..RemoteOptions::default()
        };
        for shown in [
            format!("{:?}", token()),
            format!("{options:?}"),
            format!("{:#?}", ssh_key()),
        ] {
            for secret in ["ghp_secret", "hunter2", "secret-key-material"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
        assert_eq!(
            format!("{:?}", token()),
            r#"Token { username: None, token: "<redacted>" }"#
        );
    }

    #[test]
    fn credentials_are_json_tagged_by_kind() {
        for (credentials, json) in [
            (RepoCredentials::None, r#"{"kind":"none"}"#),
            (
                token(),
                r#"{"kind":"token","username":null,"token":"ghp_secret"}"#,
            ),
            (
                ssh_key(),
                &format!(
                    r#"{{"kind":"ssh_key","private_key":{},"passphrase":"hunter2","known_hosts":{}}}"#,
                    serde_json::to_string(KEY).unwrap(),
                    serde_json::to_string(KNOWN).unwrap()
                ) as &str,
            ),
        ] {
            assert_eq!(serde_json::to_string(&credentials).unwrap(), json);
            let back: RepoCredentials = serde_json::from_str(json).unwrap();
            assert_eq!(serde_json::to_string(&back).unwrap(), json);
        }
        // optional fields may be left out
        let short: RepoCredentials =
            serde_json::from_str(r#"{"kind":"token","token":"t"}"#).unwrap();
        assert!(matches!(
            short,
            RepoCredentials::Token { username: None, .. }
        ));
    }

    #[test]
    fn a_ca_certificate_must_be_pem_and_only_for_https() {
        let options = |ca: &str| RemoteOptions {
            ca_certificate: Some(ca.to_owned()),
            ..RemoteOptions::default()
        };
        for (url, ca, expected) in [
            (
                "https://git.example.com/d.git",
                "not pem",
                "holds no PEM CERTIFICATE",
            ),
            (
                "/srv/git/d.git",
                "not pem",
                "only applies to an https remote",
            ),
        ] {
            match Connection::new(url, options(ca)) {
                Err(GitError::InvalidRemote { reason, .. }) => {
                    assert!(reason.contains(expected), "{reason}")
                }
                Err(other) => panic!("{url}: {other}"),
                Ok(_) => panic!("{url}: accepted {ca:?}"),
            }
        }
    }
}

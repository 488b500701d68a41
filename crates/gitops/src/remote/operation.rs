//! Running one network operation (fetch or push) against a remote: on a
//! thread of its own, under a deadline, with the callbacks that hand out the
//! credentials once, check the server's trust, collect the server's messages
//! and a push's per-ref verdicts, and turn libgit2's errors into ours.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use git2::{CertificateCheckStatus, Cred, CredentialType, ErrorClass, ErrorCode, RemoteCallbacks};

use super::trust::ServerTrust;
use super::{RemoteKind, RemoteOptions, RepoCredentials, redact_url, validate_remote_url};
use crate::GitError;

/// A remote with its parsed trust settings, shared with the thread that runs
/// a network operation.
pub(crate) struct Connection {
    pub(crate) url: String,
    pub(crate) url_redacted: String,
    pub(crate) kind: RemoteKind,
    credentials: RepoCredentials,
    trust: ServerTrust,
    timeout: Duration,
}

impl Connection {
    pub(crate) fn new(url: &str, options: RemoteOptions) -> Result<Self, GitError> {
        let kind = validate_remote_url(url, &options.credentials)?;
        let trust =
            ServerTrust::new(&kind, &options).map_err(|reason| GitError::InvalidRemote {
                url_redacted: redact_url(url),
                reason,
            })?;
        Ok(Self {
            url: url.to_owned(),
            url_redacted: redact_url(url),
            kind,
            credentials: options.credentials,
            trust,
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
            let reason = match self.trust.pins_ca() {
                true => error.message().to_owned(),
                false => format!(
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
        let messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        let lines: Vec<String> = messages
            .split(['\n', '\r'])
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.contains("% ("))
            .map(str::to_owned)
            .collect();
        lines[lines.len().saturating_sub(5)..].to_vec()
    }

    fn record_message(&self, text: &[u8]) {
        let mut messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        messages.push_str(&String::from_utf8_lossy(text));
        if messages.len() > MESSAGES_KEPT {
            let mut cut = messages.len() - MESSAGES_KEPT;
            while !messages.is_char_boundary(cut) {
                cut += 1;
            }
            messages.drain(..cut);
        }
    }

    /// The refs the server refused in a push, with its reasons.
    pub(crate) fn push_rejections(&self) -> Vec<(String, String)> {
        // a poisoned lock still holds every rejection recorded: none is lost
        self.push_rejections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn take_failure(&self) -> Option<GitError> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Records the first failure and hands libgit2 an error to stop with.
    fn fail(&self, error: GitError) -> git2::Error {
        let message = error.to_string();
        let mut failure = self.failure.lock().unwrap_or_else(PoisonError::into_inner);
        if failure.is_none() {
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
            if let Some(reason) = status {
                state
                    .push_rejections
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((reference.to_owned(), reason.to_owned()));
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
        connection
            .trust
            .check(&connection.kind, certificate, host)
            .map_err(|error| self.fail(error))
    }
}

//! What the caller hands in to reach a remote: the credentials, the CA to
//! trust and a time limit. Neither `Debug` shows a secret.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::fixture::{KEY, KNOWN, ssh_key, token};

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
}

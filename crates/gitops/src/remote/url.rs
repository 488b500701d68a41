//! Which remote URLs are accepted and with which credentials: classifying a
//! URL ([`RemoteKind`]), the credentials that fit it, the origin credentials
//! are bound to, and the URL as errors and logs may show it.

use super::RepoCredentials;
use crate::GitError;
use crate::known_hosts::{KnownHosts, host_name};

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
    let parsed = ::url::Url::parse(url).map_err(|error| format!("not a valid URL: {error}"))?;
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
            Some(::url::Host::Ipv6(address)) => Ok(address.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::fixture::{KEY, KNOWN, ssh_key, token};

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
}

//! Remotes: which URLs are accepted and with which credentials ([`url`]), the
//! trust an HTTPS or SSH server must earn — a pinned CA, `known_hosts`
//! ([`trust`]) — and running one network operation (fetch or push) with its
//! callbacks under a deadline ([`operation`]). What the caller hands in is in
//! [`options`].

mod operation;
mod options;
mod trust;
mod url;

#[cfg(test)]
mod fixture;

pub(crate) use self::operation::Connection;
pub use self::options::{RemoteOptions, RepoCredentials};
pub use self::url::{RemoteKind, redact_url, remote_origin, url_origin, validate_remote_url};

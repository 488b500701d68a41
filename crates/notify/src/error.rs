//! The crate's errors: a receiver's configuration that cannot be used
//! ([`NotifyError`]) and a delivery that did not happen ([`DeliveryError`]).
//!
//! Neither ever carries a webhook URL's path or query, a header's value, an
//! HMAC secret or a password: endpoints appear as `scheme://host:port` only.
//! Nor does a [`DeliveryError`] carry what an HTTP receiver answered beyond
//! its status and `Retry-After`: the body is never read, so a receiver
//! pointed at an internal service cannot turn the delivery log into a way
//! to read that service.

use std::net::IpAddr;
use std::time::Duration;

use crate::destination::{ALLOW_HINT, describe};

/// What is wrong with a [`ReceiverConfig`](crate::ReceiverConfig).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotifyError {
    /// A field of the configuration has a value that cannot be used.
    #[error("receiver config: `{field}` {reason}")]
    InvalidField {
        /// The field, as named in the JSON form (`url`, `to[1]`,
        /// `headers.X-Token`).
        field: String,
        /// What is wrong with it; never the value of a secret.
        reason: String,
    },
}

impl NotifyError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Why a notification was not delivered.
///
/// [`is_retryable`](Self::is_retryable) tells whether trying again later may
/// succeed; [`retry_after`](Self::retry_after) is the receiver's own hint.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// The receiver's configuration is invalid: permanent until it is fixed.
    #[error(transparent)]
    InvalidConfig(#[from] NotifyError),

    /// The HTTP client could not be set up (for example, no CA certificates
    /// were found on the system). Returned by
    /// [`Deliverer::new`](crate::Deliverer::new) only.
    #[error("cannot set up the HTTP client: {reason}")]
    Setup {
        /// What failed.
        reason: String,
    },

    /// The receiver could not be reached, or did not answer in time:
    /// connection refused, name resolution, TLS handshake, timeout, or a
    /// connection that broke mid-request. Retryable.
    #[error("{receiver} receiver at {endpoint}: {failure}")]
    Transport {
        /// The kind of receiver (`slack`, `webhook`; `email` when the SMTP
        /// server's name did not resolve).
        receiver: &'static str,
        /// `scheme://host:port` of the receiver (`host:port` for email).
        endpoint: String,
        /// What went wrong, in a word or two.
        failure: TransportFailure,
        /// The HTTP client's or the name lookup's error (it never holds the
        /// URL's path); none for a timeout.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// The receiver's host is, or resolves to, an address that the
    /// [`DestinationPolicy`](crate::DestinationPolicy) refuses (loopback,
    /// private, link-local, metadata…); nothing was sent. Checked for every
    /// new connection, so a name that later resolves elsewhere is caught
    /// too. Permanent until the receiver or the policy changes.
    #[error(
        "{receiver} receiver at {endpoint}: refused to connect to {address}, {}; {ALLOW_HINT}",
        describe(*.address)
    )]
    DestinationRefused {
        /// The kind of receiver (`slack`, `webhook`, `email`).
        receiver: &'static str,
        /// `scheme://host:port` of the receiver (`host:port` for email).
        endpoint: String,
        /// The refused address: the host itself, or one it resolved to.
        address: IpAddr,
    },

    /// The receiver answered with a status other than success. Retryable for
    /// 408, 429 and 5xx; permanent for the rest, including redirects (3xx),
    /// which are not followed. Nothing of the response body is kept.
    #[error(
        "{receiver} receiver at {endpoint} answered HTTP {status} ({}{})",
        status_phrase(*.status),
        retry_after_text(*.retry_after)
    )]
    HttpStatus {
        /// The kind of receiver (`slack`, `webhook`).
        receiver: &'static str,
        /// `scheme://host:port` of the receiver.
        endpoint: String,
        /// The HTTP status code.
        status: u16,
        /// The receiver's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },

    /// The email could not be put together (an address or header that the
    /// message builder refused). Permanent.
    #[error("cannot build the email: {0}")]
    Email(#[source] lettre::error::Error),

    /// The SMTP exchange failed: the server refused (a 4xx reply is
    /// retryable, 5xx permanent), or the connection, TLS or a timeout failed
    /// (retryable).
    #[error("SMTP server {endpoint}: {failure}")]
    Smtp {
        /// `host:port` of the SMTP server.
        endpoint: String,
        /// What went wrong, with the reply code if the server sent one.
        failure: String,
        /// Whether trying again later may succeed.
        retryable: bool,
        /// The SMTP client's error (carries no credentials).
        #[source]
        source: lettre::transport::smtp::Error,
    },
}

/// Why a receiver could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    /// No connection could be made (refused, unreachable, name not
    /// resolved, TLS handshake failed).
    Connect,
    /// The receiver did not answer within the timeout.
    Timeout,
    /// The request failed after the connection was made.
    Request,
}

impl std::fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Connect => "cannot connect",
            Self::Timeout => "timed out",
            Self::Request => "request failed",
        })
    }
}

/// A fixed phrase for a status that is not success.
fn status_phrase(status: u16) -> &'static str {
    match status {
        300..=399 => "redirects are not followed",
        400..=499 => "client error",
        500..=599 => "server error",
        _ => "not a success",
    }
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!("; retry after {} s", d.as_secs()),
        None => String::new(),
    }
}

impl DeliveryError {
    /// Whether the same delivery may succeed if tried again later.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::InvalidConfig(_)
            | Self::Setup { .. }
            | Self::DestinationRefused { .. }
            | Self::Email(_) => false,
            Self::Transport { .. } => true,
            Self::HttpStatus { status, .. } => {
                matches!(status, 408 | 429) || (500..600).contains(status)
            }
            Self::Smtp { retryable, .. } => *retryable,
        }
    }

    /// How long the receiver asked to wait before the next try
    /// (`Retry-After`), if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::HttpStatus { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

//! Delivery of incident notifications to receivers.
//!
//! This crate owns four things:
//! - [`ReceiverConfig`]: where notifications go (a Slack incoming webhook, a
//!   generic JSON webhook, or email over SMTP), its checks
//!   ([`ReceiverConfig::validate`]) and a description safe to show
//!   ([`ReceiverConfig::summary`]);
//! - [`DestinationPolicy`]: which network addresses receivers may be
//!   reached at — public ones, plus the non-public ranges the operator
//!   allows — and [`check_destination`], the check of a receiver's host
//!   against it when the receiver is created;
//! - [`Payload`]: what one notification says, as a stable, versioned JSON
//!   document — the body of a generic webhook and what an outbox stores —
//!   and its readable renderings ([`Payload::title`],
//!   [`Payload::slack_text`], [`Payload::text_body`]);
//! - [`Deliverer`]: one attempt at delivering a payload to a receiver, with
//!   an idempotency key, answering `Ok` or a [`DeliveryError`] that says
//!   whether to retry ([`DeliveryError::is_retryable`], [`backoff`]).
//!
//! It does the network I/O of a delivery and nothing else: it holds no
//! state between deliveries, does not retry, schedule, group or deduplicate
//! (the caller's outbox does, with the key), and writes no SQL.
//!
//! Secrets — a Slack URL (it carries a token), a webhook URL's path and
//! query, header values, the HMAC secret, the SMTP password — leave the
//! crate only on the wire to their receiver: never in [`Debug`] output, in
//! [`ReceiverConfig::summary`], or in an error. Plain HTTP and SMTP without
//! TLS carrying a password are allowed only to loopback hosts.
//!
//! A receiver must not become a way to reach what this process can reach
//! and its users cannot (server-side request forgery): cloud metadata
//! services (169.254.169.254, fd00:ec2::254, 100.100.100.200), internal
//! services on private networks, this host itself. So the [`Deliverer`]
//! resolves every receiver host itself and connects only when the
//! [`DestinationPolicy`] in [`DelivererOptions::destinations`] allows every
//! address the name resolves to — checked at each connection, so a name
//! that resolves elsewhere after the receiver was created (DNS rebinding)
//! is still refused ([`DeliveryError::DestinationRefused`]). By default
//! only public addresses are allowed; the operator allows more with
//! `serve --allow-receiver-network CIDR`. Redirects are never followed,
//! and nothing of an HTTP answer but its status and `Retry-After` is read
//! or kept: the body never reaches an error or the delivery log.
//!
//! TLS is rustls on the *ring* provider (the one the rest of the workspace
//! uses), with certificates checked against the system's roots plus any in
//! [`DelivererOptions::extra_root_certs`]; no process-wide provider is
//! installed.
//!
//! ```no_run
//! use std::collections::BTreeMap;
//!
//! use pilothouse_notify::{
//!     Deliverer, DelivererOptions, DestinationPolicy, Payload, ReceiverConfig, check_destination,
//! };
//!
//! # async fn example() -> Result<(), pilothouse_notify::DeliveryError> {
//! let config: ReceiverConfig = serde_json::from_str(
//!     r#"{"kind": "webhook", "url": "https://hooks.example.com/pilothouse"}"#,
//! )
//! .expect("valid JSON");
//! config.validate()?;
//! check_destination(&config, &DestinationPolicy::default()).await?;
//! let payload = Payload::new("ops", "cluster=aks", BTreeMap::new(), false, Vec::new());
//! let deliverer = Deliverer::new(DelivererOptions::default())?;
//! match deliverer.deliver(&config, &payload, "outbox-42").await {
//!     Ok(()) => {}
//!     Err(e) if e.is_retryable() => { /* try again after backoff(attempt) */ }
//!     Err(e) => return Err(e),
//! }
//! # Ok(())
//! # }
//! ```

mod config;
mod deliver;
mod destination;
mod error;
mod payload;
mod text;

use std::time::Duration;

pub use config::{ReceiverConfig, SmtpTls};
pub use deliver::{Deliverer, DelivererOptions, SIGNATURE_HEADER};
pub use destination::{DestinationPolicy, check_destination};
pub use error::{DeliveryError, NotifyError, TransportFailure};
/// An IP network in CIDR notation (`10.20.0.0/16`, `fd12::/16`), as
/// [`DestinationPolicy::new`] takes; parse one with [`str::parse`].
pub use ipnet::IpNet;
pub use payload::{
    IncidentStatus, IncidentSummary, MAX_INCIDENTS, NotificationStatus, PAYLOAD_VERSION, Payload,
};

/// The first wait before retrying a failed delivery.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(5);

/// The longest wait between tries.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10 * 60);

/// How long to wait before the next try after `attempt` failed tries
/// (counting from 0): 5 s, 10 s, 20 s … doubling up to 10 minutes. No
/// jitter: the caller adds some if it wants. A receiver's own
/// [`DeliveryError::retry_after`] should win when it is longer.
pub fn backoff(attempt: u32) -> Duration {
    pilothouse_types::Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX).delay(attempt.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        let secs: Vec<u64> = (0..9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 320, 600, 600]);
        assert_eq!(backoff(31), BACKOFF_MAX);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}

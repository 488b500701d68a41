//! Receivers: where notifications go, their checks, and what of them may be
//! shown.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use http::{HeaderName, HeaderValue};
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};
use url::{Host, Url};

use crate::NotifyError;

/// Where notifications go. The JSON form is tagged by `kind`:
///
/// ```json
/// {"kind": "slack", "url": "https://hooks.slack.com/services/…", "channel": "#ops"}
/// {"kind": "webhook", "url": "https://example.com/hook", "headers": {"Authorization": "Bearer …"}, "hmac_secret": "…"}
/// {"kind": "email", "smtp_host": "smtp.example.com", "smtp_port": 587, "tls": "starttls",
///  "username": "alerts", "password": "…", "from": "Pilothouse <alerts@example.com>", "to": ["ops@example.com"]}
/// ```
///
/// This serialized form holds secrets and is meant for storage only; show
/// [`summary`](Self::summary) instead. [`Debug`] prints no secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ReceiverConfig {
    /// A Slack incoming webhook (the URL carries the token).
    Slack {
        /// The webhook URL.
        url: String,
        /// Overrides the webhook's channel (older webhooks only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
        /// Overrides the webhook's user name (older webhooks only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
    },
    /// A generic webhook: the [`Payload`](crate::Payload) JSON is POSTed.
    Webhook {
        /// The URL to POST to.
        url: String,
        /// Extra request headers (for example `Authorization`); their values
        /// are secrets.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
        /// When set, the body is signed with HMAC-SHA256 under this secret
        /// (see [`SIGNATURE_HEADER`](crate::SIGNATURE_HEADER)).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hmac_secret: Option<String>,
    },
    /// Email over SMTP, as text/plain.
    Email {
        /// The SMTP server's host name or IP address.
        smtp_host: String,
        /// The SMTP server's port (587 for STARTTLS, 465 for TLS, 25).
        smtp_port: u16,
        /// How the connection is secured.
        tls: SmtpTls,
        /// User name for SMTP authentication; given with `password`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        /// Password for SMTP authentication; given with `username`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// The sender, `alerts@example.com` or `Name <alerts@example.com>`.
        from: String,
        /// The recipients, at least one.
        to: Vec<String>,
    },
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text; with credentials only to a loopback host.
    None,
    /// Plain connection upgraded with STARTTLS, which is required.
    Starttls,
    /// TLS from the first byte (implicit TLS, usually port 465).
    Tls,
}

impl SmtpTls {
    fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Starttls => "starttls",
            Self::Tls => "tls",
        }
    }
}

/// Headers the deliverer sets itself; a receiver may not set them.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "host",
    "connection",
    "user-agent",
    "idempotency-key",
    crate::deliver::SIGNATURE_HEADER,
];

impl ReceiverConfig {
    /// The kind of receiver, as in the JSON tag: `slack`, `webhook` or
    /// `email`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Slack { .. } => "slack",
            Self::Webhook { .. } => "webhook",
            Self::Email { .. } => "email",
        }
    }

    /// Checks that the receiver can be used; the error names the field.
    ///
    /// URLs must be `https`, or plain `http` to a loopback host
    /// (127.0.0.0/8, `::1`, `localhost`), and carry no user name or
    /// password. Header names and values must be valid and not be ones the
    /// deliverer sets. Email addresses must parse, there must be at least
    /// one recipient, user name and password go together, and a password
    /// is sent without TLS only to a loopback host.
    ///
    /// This looks at the configuration only and resolves no name; whether
    /// the host may be reached at all is for [`check_destination`] (when
    /// the receiver is created) and the [`Deliverer`] (at every
    /// connection) to say, under a [`DestinationPolicy`].
    ///
    /// [`check_destination`]: crate::check_destination
    /// [`Deliverer`]: crate::Deliverer
    /// [`DestinationPolicy`]: crate::DestinationPolicy
    pub fn validate(&self) -> Result<(), NotifyError> {
        match self {
            Self::Slack {
                url,
                channel,
                username,
            } => {
                check_url("url", url)?;
                non_empty_if_set("channel", channel.as_deref())?;
                non_empty_if_set("username", username.as_deref())?;
            }
            Self::Webhook {
                url,
                headers,
                hmac_secret,
            } => {
                check_url("url", url)?;
                for (name, value) in headers {
                    check_header(name, value)?;
                }
                if hmac_secret.as_deref().is_some_and(str::is_empty) {
                    return Err(NotifyError::invalid(
                        "hmac_secret",
                        "is empty (leave it out to send unsigned requests)",
                    ));
                }
            }
            Self::Email {
                smtp_host,
                smtp_port,
                tls,
                username,
                password,
                from,
                to,
            } => {
                let host = parse_smtp_host(smtp_host)?;
                if *smtp_port == 0 {
                    return Err(NotifyError::invalid("smtp_port", "must not be 0"));
                }
                match (username, password) {
                    (Some(_), None) => {
                        return Err(NotifyError::invalid(
                            "password",
                            "is missing (a username is given)",
                        ));
                    }
                    (None, Some(_)) => {
                        return Err(NotifyError::invalid(
                            "username",
                            "is missing (a password is given)",
                        ));
                    }
                    (Some(u), Some(_)) if u.is_empty() => {
                        return Err(NotifyError::invalid("username", "is empty"));
                    }
                    _ => {}
                }
                if *tls == SmtpTls::None && password.is_some() && !is_loopback(&host) {
                    return Err(NotifyError::invalid(
                        "password",
                        "would be sent in clear text: with tls \"none\", credentials are \
                         allowed only to a loopback host (127.0.0.0/8, ::1, localhost); \
                         use \"starttls\" or \"tls\"",
                    ));
                }
                parse_mailbox("from", from)?;
                if to.is_empty() {
                    return Err(NotifyError::invalid("to", "needs at least one recipient"));
                }
                for (i, address) in to.iter().enumerate() {
                    parse_mailbox(&format!("to[{i}]"), address)?;
                }
            }
        }
        Ok(())
    }

    /// A description of the receiver without secrets, for the API: the kind,
    /// a URL's scheme, host and port only (never its path or query), header
    /// names without values, whether requests are signed; for email the
    /// server, TLS mode, sender, recipients and whether it authenticates.
    pub fn summary(&self) -> serde_json::Value {
        match self {
            Self::Slack {
                url,
                channel,
                username,
            } => serde_json::json!({
                "kind": "slack",
                "endpoint": endpoint_of(url),
                "channel": channel,
                "username": username,
            }),
            Self::Webhook {
                url,
                headers,
                hmac_secret,
            } => serde_json::json!({
                "kind": "webhook",
                "endpoint": endpoint_of(url),
                "header_names": headers.keys().collect::<Vec<_>>(),
                "signed": hmac_secret.is_some(),
            }),
            Self::Email {
                smtp_host,
                smtp_port,
                tls,
                username,
                from,
                to,
                ..
            } => serde_json::json!({
                "kind": "email",
                "smtp_host": smtp_host,
                "smtp_port": smtp_port,
                "tls": tls.as_str(),
                "authenticated": username.is_some(),
                "from": from,
                "to": to,
            }),
        }
    }
}

impl fmt::Debug for ReceiverConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Slack {
                url,
                channel,
                username,
            } => f
                .debug_struct("Slack")
                .field("url", &Redacted(&redacted_url(url)))
                .field("channel", channel)
                .field("username", username)
                .finish(),
            Self::Webhook {
                url,
                headers,
                hmac_secret,
            } => f
                .debug_struct("Webhook")
                .field("url", &Redacted(&redacted_url(url)))
                .field("headers", &HeaderNames(headers))
                .field(
                    "hmac_secret",
                    &hmac_secret.as_ref().map(|_| Redacted("***")),
                )
                .finish(),
            Self::Email {
                smtp_host,
                smtp_port,
                tls,
                username,
                password,
                from,
                to,
            } => f
                .debug_struct("Email")
                .field("smtp_host", smtp_host)
                .field("smtp_port", smtp_port)
                .field("tls", tls)
                .field("username", username)
                .field("password", &password.as_ref().map(|_| Redacted("***")))
                .field("from", from)
                .field("to", to)
                .finish(),
        }
    }
}

/// Prints its text without quotes.
struct Redacted<'a>(&'a str);

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Prints a header map with its values masked.
struct HeaderNames<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for HeaderNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, Redacted("***"))))
            .finish()
    }
}

/// `scheme://host:port` of a URL, or a placeholder when it does not parse.
pub(crate) fn endpoint_of(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(url) => endpoint(&url),
        Err(_) => "<invalid URL>".to_owned(),
    }
}

/// `scheme://host:port` of a parsed URL.
pub(crate) fn endpoint(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// The endpoint with a marker where the path and query were.
fn redacted_url(raw: &str) -> String {
    format!("{}/***", endpoint_of(raw))
}

/// Parses and checks a receiver URL.
pub(crate) fn check_url(field: &str, raw: &str) -> Result<Url, NotifyError> {
    let url =
        Url::parse(raw).map_err(|e| NotifyError::invalid(field, format!("is not a URL ({e})")))?;
    let Some(host) = url.host() else {
        return Err(NotifyError::invalid(field, "has no host"));
    };
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&host) => {}
        "http" => {
            return Err(NotifyError::invalid(
                field,
                "must use https; plain http is allowed only to a loopback host \
                 (127.0.0.0/8, ::1, localhost)",
            ));
        }
        _ => return Err(NotifyError::invalid(field, "must be an https URL")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(NotifyError::invalid(
            field,
            "must not carry a user name or password; put credentials in a header",
        ));
    }
    Ok(url)
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn parse_smtp_host(raw: &str) -> Result<Host<&str>, NotifyError> {
    if raw.is_empty() {
        return Err(NotifyError::invalid("smtp_host", "is empty"));
    }
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Ok(match ip {
            IpAddr::V4(ip) => Host::Ipv4(ip),
            IpAddr::V6(ip) => Host::Ipv6(ip),
        });
    }
    match Host::parse(raw) {
        Ok(Host::Domain(_)) => Ok(Host::Domain(raw)),
        Ok(Host::Ipv4(ip)) => Ok(Host::Ipv4(ip)),
        Ok(Host::Ipv6(ip)) => Ok(Host::Ipv6(ip)),
        Err(e) => Err(NotifyError::invalid(
            "smtp_host",
            format!("is not a host name or IP address ({e})"),
        )),
    }
}

pub(crate) fn parse_mailbox(field: &str, raw: &str) -> Result<Mailbox, NotifyError> {
    raw.parse::<Mailbox>()
        .map_err(|e| NotifyError::invalid(field, format!("is not an email address: `{raw}` ({e})")))
}

fn check_header(name: &str, value: &str) -> Result<(), NotifyError> {
    let field = format!("headers.{name}");
    let parsed = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| NotifyError::invalid(&field, "is not a valid header name"))?;
    if RESERVED_HEADERS.contains(&parsed.as_str()) {
        return Err(NotifyError::invalid(
            &field,
            "is set by the deliverer and cannot be overridden",
        ));
    }
    HeaderValue::from_str(value).map_err(|_| {
        NotifyError::invalid(
            &field,
            "has a value that is not a valid header value (visible ASCII, no line breaks)",
        )
    })?;
    Ok(())
}

fn non_empty_if_set(field: &str, value: Option<&str>) -> Result<(), NotifyError> {
    if value.is_some_and(str::is_empty) {
        return Err(NotifyError::invalid(
            field,
            "is empty (leave it out instead)",
        ));
    }
    Ok(())
}

//! One delivery attempt of a payload to a receiver.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use ring::hmac;
use rustls::pki_types::CertificateDer;
use url::Url;

use crate::config::{check_url, endpoint, parse_mailbox};
use crate::destination::{CheckedResolver, Unreachable, literal_ip, refused_address, resolve};
use crate::{
    DeliveryError, DestinationPolicy, NotifyError, Payload, ReceiverConfig, SmtpTls,
    TransportFailure,
};

/// The header carrying a webhook body's signature when the receiver has an
/// `hmac_secret`: `sha256=` and the lowercase hex HMAC-SHA256 of the exact
/// body bytes under the secret.
pub const SIGNATURE_HEADER: &str = "x-pilothouse-signature-256";

/// The header carrying the delivery's idempotency key on webhook requests.
const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// Longest idempotency key.
const MAX_KEY_LEN: usize = 200;
/// What webhook and Slack requests say they come from.
const USER_AGENT_VALUE: &str = concat!("pilothouse/", env!("CARGO_PKG_VERSION"));

type HttpClient = Client<HttpsConnector<HttpConnector<CheckedResolver>>, Full<Bytes>>;

/// How a [`Deliverer`] connects.
#[derive(Debug, Clone)]
pub struct DelivererOptions {
    /// Longest wait for a connection (TCP and TLS) to an HTTP receiver.
    pub connect_timeout: Duration,
    /// Longest a whole HTTP request may take; for SMTP, longest each step
    /// (connect, each command) may take.
    pub timeout: Duration,
    /// CA certificates to trust besides the system's (a private CA).
    pub extra_root_certs: Vec<CertificateDer<'static>>,
    /// The name this host gives in SMTP `EHLO`; by default the address
    /// literal `[127.0.0.1]`.
    pub smtp_hello_name: Option<String>,
    /// Which addresses receivers may be reached at; by default public
    /// addresses only. Checked for every address a receiver's host
    /// resolves to, each time a connection is made.
    pub destinations: DestinationPolicy,
}

impl Default for DelivererOptions {
    /// 5 s to connect, 10 s in all, system roots only, public addresses
    /// only.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            extra_root_certs: Vec::new(),
            smtp_hello_name: None,
            destinations: DestinationPolicy::default(),
        }
    }
}

/// Delivers payloads to receivers, one attempt per call. Holds one HTTP
/// client (and its connection pool) and nothing else between calls; cheap
/// to share behind an `Arc`.
#[derive(Clone)]
pub struct Deliverer {
    http: HttpClient,
    options: DelivererOptions,
}

impl std::fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deliverer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Deliverer {
    /// Sets up the HTTP client: HTTP/1.1, rustls on ring with the system's
    /// roots and the extra ones, names resolved by this crate and checked
    /// against [`DelivererOptions::destinations`]. Fails when no CA
    /// certificate can be loaded.
    pub fn new(options: DelivererOptions) -> Result<Deliverer, DeliveryError> {
        let setup = |reason: String| DeliveryError::Setup { reason };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = if options.extra_root_certs.is_empty() {
            rustls_platform_verifier::Verifier::new(provider.clone())
        } else {
            rustls_platform_verifier::Verifier::new_with_extra_roots(
                options.extra_root_certs.iter().cloned(),
                provider.clone(),
            )
        }
        .map_err(|e| setup(format!("cannot load CA certificates: {e}")))?;
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| setup(e.to_string()))?
            .dangerous() // a verifier of our choosing, not a weaker one
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        let mut connector =
            HttpConnector::new_with_resolver(CheckedResolver::new(options.destinations.clone()));
        connector.enforce_http(false);
        connector.set_connect_timeout(Some(options.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let http = Client::builder(TokioExecutor::new()).build(connector);
        Ok(Deliverer { http, options })
    }

    /// Delivers `payload` to the receiver once. `key` identifies this
    /// notification (an outbox id): a retry of the same notification passes
    /// the same key, sent as `Idempotency-Key` to webhooks and in the
    /// email's `Message-ID`. It must be 1–200 visible ASCII characters.
    ///
    /// - Slack: POST `{"text", "channel"?, "username"?}` (see
    ///   [`Payload::slack_text`]).
    /// - Webhook: POST the payload JSON with the configured headers,
    ///   `Idempotency-Key`, and [`SIGNATURE_HEADER`] when signed.
    /// - Email: a text/plain message (subject [`Payload::title`], body
    ///   [`Payload::text_body`]) to every recipient over one SMTP session.
    ///
    /// Any 2xx answer is success; redirects (3xx) are not followed and are
    /// an error. The response body is not read. HTTP requests carry
    /// `User-Agent: pilothouse/<version>`; the whole exchange (resolve,
    /// connect, send, read the answer's head) is bounded by
    /// [`DelivererOptions::timeout`].
    ///
    /// Before anything is sent, the receiver's host is checked against
    /// [`DelivererOptions::destinations`]: an IP address as written, a
    /// name with every address it resolves to when the connection is made
    /// (the SMTP client then connects to the checked address, and TLS still
    /// verifies the certificate against the name). A refused address is
    /// [`DeliveryError::DestinationRefused`].
    pub async fn deliver(
        &self,
        config: &ReceiverConfig,
        payload: &Payload,
        key: &str,
    ) -> Result<(), DeliveryError> {
        config.validate()?;
        check_key(key)?;
        match config {
            ReceiverConfig::Slack {
                url,
                channel,
                username,
            } => {
                let url = check_url("url", url)?;
                let mut body = serde_json::Map::new();
                body.insert("text".into(), payload.slack_text().into());
                if let Some(channel) = channel {
                    body.insert("channel".into(), channel.as_str().into());
                }
                if let Some(username) = username {
                    body.insert("username".into(), username.as_str().into());
                }
                let body = serde_json::to_vec(&body).expect("a JSON map serializes");
                self.post(config, &url, HeaderMap::new(), body).await
            }
            ReceiverConfig::Webhook {
                url,
                headers,
                hmac_secret,
            } => {
                let url = check_url("url", url)?;
                let body = serde_json::to_vec(payload).expect("a payload serializes");
                let mut header_map = HeaderMap::new();
                for (name, value) in headers {
                    // validated above
                    let name = HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| NotifyError::invalid(format!("headers.{name}"), "invalid"))?;
                    let mut value = HeaderValue::from_str(value)
                        .map_err(|_| NotifyError::invalid(format!("headers.{name}"), "invalid"))?;
                    value.set_sensitive(true);
                    header_map.append(name, value);
                }
                header_map.insert(
                    IDEMPOTENCY_HEADER,
                    HeaderValue::from_str(key).expect("checked key"),
                );
                if let Some(secret) = hmac_secret {
                    let signature = format!("sha256={}", hmac_sha256_hex(secret, &body));
                    header_map.insert(
                        SIGNATURE_HEADER,
                        HeaderValue::from_str(&signature).expect("hex is a header value"),
                    );
                }
                self.post(config, &url, header_map, body).await
            }
            ReceiverConfig::Email {
                smtp_host,
                smtp_port,
                tls,
                username,
                password,
                from,
                to,
            } => {
                let message = email(payload, key, from, to)?;
                let endpoint = format!("{smtp_host}:{smtp_port}");
                let address = self.smtp_address(smtp_host, *smtp_port, &endpoint).await?;
                // connect to the checked address; TLS below verifies the
                // certificate against `smtp_host`
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.to_string())
                        .port(*smtp_port)
                        .timeout(Some(self.options.timeout));
                builder = match tls {
                    SmtpTls::None => builder.tls(Tls::None),
                    SmtpTls::Starttls => {
                        builder.tls(Tls::Required(self.smtp_tls(smtp_host, &endpoint)?))
                    }
                    SmtpTls::Tls => builder.tls(Tls::Wrapper(self.smtp_tls(smtp_host, &endpoint)?)),
                };
                if let (Some(username), Some(password)) = (username, password) {
                    builder =
                        builder.credentials(Credentials::new(username.clone(), password.clone()));
                }
                if let Some(name) = &self.options.smtp_hello_name {
                    builder = builder.hello_name(ClientId::Domain(name.clone()));
                }
                builder
                    .build()
                    .send(message)
                    .await
                    .map(drop)
                    .map_err(|e| smtp_error(endpoint, e))
            }
        }
    }

    /// POSTs a JSON body and reads the answer's head, all within the
    /// timeout.
    async fn post(
        &self,
        config: &ReceiverConfig,
        url: &Url,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<(), DeliveryError> {
        let receiver = config.kind();
        let endpoint = endpoint(url);
        let uri: http::Uri = url
            .as_str()
            .parse()
            .map_err(|_| NotifyError::invalid("url", "is not a valid HTTP URI"))?;
        // the connector does not resolve an IP literal, so the resolver
        // never sees it: check it here
        if let Some(address) = uri.host().and_then(literal_ip)
            && !self.options.destinations.allows(address)
        {
            return Err(DeliveryError::DestinationRefused {
                receiver,
                endpoint,
                address,
            });
        }
        let mut request = Request::post(uri)
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| NotifyError::invalid("url", "is not a valid HTTP URI"))?;
        let request_headers = request.headers_mut();
        request_headers.extend(headers);
        request_headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request_headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));

        // the body is dropped unread: nothing a receiver says is kept
        let exchange = async {
            Ok::<_, hyper_util::client::legacy::Error>(
                self.http.request(request).await?.into_parts().0,
            )
        };
        let transport = |failure, source| DeliveryError::Transport {
            receiver,
            endpoint: endpoint.clone(),
            failure,
            source,
        };
        let parts = match tokio::time::timeout(self.options.timeout, exchange).await {
            Err(_elapsed) => return Err(transport(TransportFailure::Timeout, None)),
            Ok(Err(e)) => {
                if let Some(address) = refused_address(&e) {
                    return Err(DeliveryError::DestinationRefused {
                        receiver,
                        endpoint,
                        address,
                    });
                }
                let failure = if e.is_connect() {
                    TransportFailure::Connect
                } else {
                    TransportFailure::Request
                };
                return Err(transport(failure, Some(Box::new(e))));
            }
            Ok(Ok(parts)) => parts,
        };
        if parts.status.is_success() {
            return Ok(());
        }
        let retry_after = parts
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        Err(DeliveryError::HttpStatus {
            receiver,
            endpoint,
            status: parts.status.as_u16(),
            retry_after,
        })
    }

    /// The address to reach an SMTP server at: `host` itself when it is an
    /// IP address, else the first address it resolves to, when the policy
    /// allows every one of them.
    async fn smtp_address(
        &self,
        host: &str,
        port: u16,
        endpoint: &str,
    ) -> Result<IpAddr, DeliveryError> {
        let transport = |failure, source| DeliveryError::Transport {
            receiver: "email",
            endpoint: endpoint.to_owned(),
            failure,
            source,
        };
        let resolved = tokio::time::timeout(
            self.options.timeout,
            resolve(host, port, &self.options.destinations),
        )
        .await;
        match resolved {
            Err(_elapsed) => Err(transport(TransportFailure::Timeout, None)),
            Ok(Err(Unreachable::Lookup(e))) => {
                Err(transport(TransportFailure::Connect, Some(Box::new(e))))
            }
            Ok(Err(Unreachable::Refused(address))) => Err(DeliveryError::DestinationRefused {
                receiver: "email",
                endpoint: endpoint.to_owned(),
                address,
            }),
            // `resolve` answers at least one address or an error
            Ok(Ok(addresses)) => Ok(addresses[0].ip()),
        }
    }

    /// TLS parameters for an SMTP server: rustls on ring, system roots and
    /// the extra ones.
    fn smtp_tls(&self, host: &str, endpoint: &str) -> Result<TlsParameters, DeliveryError> {
        let mut builder = TlsParameters::builder(host.to_owned());
        for cert in &self.options.extra_root_certs {
            let cert =
                Certificate::from_der(cert.to_vec()).map_err(|e| smtp_setup_error(endpoint, e))?;
            builder = builder.add_root_certificate(cert);
        }
        builder
            .build_rustls()
            .map_err(|e| smtp_setup_error(endpoint, e))
    }
}

/// `Retry-After` as seconds or an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

fn smtp_setup_error(endpoint: &str, e: lettre::transport::smtp::Error) -> DeliveryError {
    DeliveryError::Smtp {
        endpoint: endpoint.to_owned(),
        failure: "cannot set up TLS".to_owned(),
        retryable: false,
        source: e,
    }
}

fn smtp_error(endpoint: String, e: lettre::transport::smtp::Error) -> DeliveryError {
    let code = e.status().map(|c| c.to_string());
    let (failure, retryable) = if e.is_permanent() {
        (format!("refused ({})", code.unwrap_or_default()), false)
    } else if e.is_transient() {
        (
            format!("temporarily refused ({})", code.unwrap_or_default()),
            true,
        )
    } else if e.is_timeout() {
        ("timed out".to_owned(), true)
    } else if e.is_tls() {
        ("TLS failed".to_owned(), true)
    } else if e.is_response() {
        ("unexpected reply (not an SMTP server?)".to_owned(), false)
    } else if e.is_client() {
        ("client error".to_owned(), false)
    } else {
        ("cannot connect".to_owned(), true)
    };
    DeliveryError::Smtp {
        endpoint,
        failure,
        retryable,
        source: e,
    }
}

fn check_key(key: &str) -> Result<(), NotifyError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(NotifyError::invalid(
            "idempotency key",
            format!("must be 1–{MAX_KEY_LEN} visible ASCII characters"),
        ));
    }
    Ok(())
}

/// The email for a payload.
fn email(
    payload: &Payload,
    key: &str,
    from: &str,
    to: &[String],
) -> Result<Message, DeliveryError> {
    let from = parse_mailbox("from", from)?;
    let mut builder = Message::builder()
        .message_id(Some(message_id(key, &from)))
        .from(from)
        .subject(payload.title())
        .header(ContentType::TEXT_PLAIN);
    for (i, address) in to.iter().enumerate() {
        builder = builder.to(parse_mailbox(&format!("to[{i}]"), address)?);
    }
    let body = Body::new_with_encoding(
        payload.text_body(),
        ContentTransferEncoding::QuotedPrintable,
    )
    .unwrap_or_else(Body::new);
    builder.body(body).map_err(DeliveryError::Email)
}

/// `<pilothouse.KEY@DOMAIN>`, the key's characters other than letters,
/// digits, `-` and `_` written as `=XX`, the domain the sender's: the same
/// key always gives the same id, so a receiving server can drop a repeat.
pub(crate) fn message_id(key: &str, from: &Mailbox) -> String {
    let mut local = String::from("pilothouse.");
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            local.push(char::from(b));
        } else {
            local.push_str(&format!("={b:02X}"));
        }
    }
    format!("<{local}@{}>", from.email.domain())
}

/// Lowercase hex HMAC-SHA256 of `body` under `secret`.
fn hmac_sha256_hex(secret: &str, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, body);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_or_date() {
        assert_eq!(parse_retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
        let wait = parse_retry_after(&later).expect("a date parses");
        assert!(wait > Duration::from_secs(3500), "{wait:?}");
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn message_id_is_derived_from_the_key() {
        let from: Mailbox = "Pilothouse <alerts@example.com>".parse().expect("address");
        assert_eq!(
            message_id("outbox-42", &from),
            "<pilothouse.outbox-42@example.com>"
        );
        assert_eq!(
            message_id("a.b@c", &from),
            "<pilothouse.a=2Eb=40c@example.com>"
        );
    }

    #[test]
    fn hmac_matches_a_known_vector() {
        // RFC 4231 test case 2
        assert_eq!(
            hmac_sha256_hex("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn keys_must_be_visible_ascii() {
        assert!(check_key("outbox-42").is_ok());
        assert!(check_key("").is_err());
        assert!(check_key("a b").is_err());
        assert!(check_key("é").is_err());
        assert!(check_key(&"k".repeat(201)).is_err());
    }
}

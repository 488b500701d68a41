//! Real receivers on 127.0.0.1 for the tests: an HTTP server (axum) that
//! records requests and answers as told, an SMTP server speaking enough of
//! RFC 5321 for a client (with STARTTLS, implicit TLS and AUTH PLAIN), and a
//! test CA for their certificates.

use std::collections::BTreeMap;
use std::error::Error;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use pilothouse_notify::{
    DelivererOptions, DestinationPolicy, IncidentStatus, IncidentSummary, Payload,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWrite, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;

/// A policy allowing the non-public `ranges` (CIDR) besides public
/// addresses.
pub fn allowing(ranges: &[&str]) -> DestinationPolicy {
    DestinationPolicy::new(
        ranges
            .iter()
            .map(|range| range.parse().expect("a CIDR"))
            .collect(),
    )
}

/// Options for a deliverer that may reach the test receivers: loopback
/// (127.0.0.0/8, and `::1` where `localhost` also resolves to it) is
/// allowed besides public addresses.
pub fn loopback_options() -> DelivererOptions {
    DelivererOptions {
        destinations: allowing(&["127.0.0.0/8", "::1/128"]),
        ..DelivererOptions::default()
    }
}

/// A group of two open OOM kills and a resolved one in cluster `aks`.
pub fn payload() -> Payload {
    let incident = |id: i64, workload: &str, status: IncidentStatus| IncidentSummary {
        id,
        status,
        cluster: "aks".into(),
        namespace: Some("shop".into()),
        workload_kind: "Deployment".into(),
        workload: workload.into(),
        container: Some("app".into()),
        reason: "OOMKilled".into(),
        severity: "warning".into(),
        count: 3,
        reopen_count: 0,
        first_seen_at: 1_700_000_000_000,
        last_seen_at: 1_700_000_600_000 - id,
        resolved_at: (status == IncidentStatus::Resolved).then_some(1_700_000_700_000),
        exit_code: Some(137),
        message: Some(format!("container {workload} used more than its limit")),
        image: Some(format!("registry.example/{workload}:1.2")),
        revision: Some("3f2a9c".into()),
        pods: vec![format!("{workload}-6d9f-x2")],
        nodes: vec!["node-1".into()],
    };
    let labels: BTreeMap<String, String> = [("cluster", "aks"), ("reason", "OOMKilled")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Payload::new(
        "ops",
        "cluster=aks,reason=OOMKilled",
        labels,
        false,
        vec![
            incident(1, "cart", IncidentStatus::Open),
            incident(2, "checkout", IncidentStatus::Open),
            incident(3, "search", IncidentStatus::Resolved),
        ],
    )
}

/// An error's message, its sources' and its `Debug` form, for checks that
/// nothing secret leaks.
pub fn error_text(error: &(dyn Error + 'static)) -> String {
    let mut text = format!("{error:?}\n{error}");
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(&format!("\n{e}"));
        source = e.source();
    }
    text
}

/// Asserts that none of `secrets` occurs in `text`.
pub fn assert_no_secrets(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} leaked in:\n{text}");
    }
}

/// A free port on 127.0.0.1 that nothing listens on.
pub async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address").port()
}

// ---------------------------------------------------------------- TCP

/// A TCP listener that counts the connections it accepts, answering each
/// with one `HTTP/1.1 200 OK`; stops when dropped.
pub struct CountingListener {
    /// Where it listens.
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingListener {
    /// Starts one on `ip` (127.0.0.1, 127.0.0.2 …) and a free port.
    pub async fn start(ip: [u8; 4]) -> Self {
        let listener = TcpListener::bind((IpAddr::from(ip), 0))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let _ = answer_one(tcp).await;
                });
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }

    /// How many connections were made before this call. Makes one itself
    /// and waits for its answer first: connections are accepted in order,
    /// so any earlier one has been counted by then.
    pub async fn connections(&self) -> usize {
        let probe = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("probe connects");
        let mut probe = BufReader::new(probe);
        probe
            .get_mut()
            .write_all(b"GET /probe HTTP/1.1\r\nhost: probe\r\n\r\n")
            .await
            .expect("probe sends");
        let mut status = String::new();
        probe.read_line(&mut status).await.expect("probe reads");
        assert!(status.starts_with("HTTP/1.1 200"), "{status:?}");
        self.accepted.load(Ordering::SeqCst) - 1
    }
}

impl Drop for CountingListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------- HTTP

/// A request the HTTP receiver got.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The method.
    pub method: Method,
    /// Path and query.
    pub uri: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Recorded {
    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }
}

/// What the HTTP receiver answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: String,
    /// How long to wait before answering.
    pub delay: Duration,
}

impl Reply {
    /// `status` with `body`, at once.
    pub fn new(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_owned(),
            delay: Duration::ZERO,
        }
    }
}

struct HttpState {
    requests: Mutex<Vec<Recorded>>,
    reply: Reply,
}

/// An HTTP/1.1 server on 127.0.0.1 that records every request and gives
/// every one the same reply; stops when dropped.
pub struct HttpReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<HttpState>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpReceiver {
    /// Starts one.
    pub async fn start(reply: Reply) -> Self {
        let state = Arc::new(HttpState {
            requests: Mutex::new(Vec::new()),
            reply,
        });
        let router = axum::Router::new()
            .fallback(record)
            .with_state(Arc::clone(&state));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let task = tokio::spawn(async move {
            axum::serve(listener, router).await.expect("serve");
        });
        Self { addr, state, task }
    }

    /// `http://127.0.0.1:PORT` and `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().expect("lock").clone()
    }
}

impl Drop for HttpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(state): State<Arc<HttpState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    state.requests.lock().expect("lock").push(Recorded {
        method,
        uri: uri.to_string(),
        headers,
        body,
    });
    let reply = state.reply.clone();
    tokio::time::sleep(reply.delay).await;
    let mut headers = HeaderMap::new();
    for (name, value) in reply.headers {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).expect("header value"),
        );
    }
    let status = StatusCode::from_u16(reply.status).expect("status");
    (status, headers, reply.body).into_response()
}

// ---------------------------------------------------------------- TLS

/// A test certificate authority and a server certificate it issued for
/// `localhost` and 127.0.0.1.
pub struct TestCa {
    /// The CA certificate, to trust.
    pub root: CertificateDer<'static>,
    /// A TLS acceptor presenting the server certificate.
    pub acceptor: TlsAcceptor,
}

impl TestCa {
    /// A fresh CA and server certificate.
    pub fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, "pilothouse notify test CA");
        let issuer =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA");

        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().expect("key");
        let certificate = params.signed_by(&key, &issuer).expect("certificate");

        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
        Self {
            root: issuer.der().clone(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }
}

/// An HTTPS server on 127.0.0.1 that answers every request `200 ok` and
/// records each request's head and body as text; stops when dropped.
pub struct HttpsReceiver {
    /// The port.
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpsReceiver {
    /// Starts one presenting `ca`'s server certificate.
    pub async fn start(ca: &TestCa) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let acceptor = ca.acceptor.clone();
        let recorded = Arc::clone(&requests);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    // a client that refuses the certificate just goes away
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    if let Ok(request) = answer_one(tls).await {
                        recorded.lock().expect("lock").push(request);
                    }
                });
            }
        });
        Self {
            port,
            requests,
            task,
        }
    }

    /// The requests so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Drop for HttpsReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 request (head and `Content-Length` body) and answers
/// `200 ok`, closing the connection.
async fn answer_one<S: AsyncRead + AsyncWrite + Unpin>(stream: S) -> std::io::Result<String> {
    let mut reader = BufReader::new(stream);
    let mut request = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
        request.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    tokio::io::AsyncReadExt::read_exact(&mut reader, &mut body).await?;
    request.push_str(&String::from_utf8_lossy(&body));
    let stream = reader.get_mut();
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        .await?;
    stream.shutdown().await?;
    Ok(request)
}

// ---------------------------------------------------------------- SMTP

/// A message the SMTP server accepted.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    /// The name given in EHLO.
    pub ehlo: String,
    /// Whether the session was encrypted when the message came.
    pub encrypted: bool,
    /// `authzid\0user\0password` from AUTH PLAIN.
    pub auth: Option<String>,
    /// The MAIL FROM address.
    pub from: String,
    /// The RCPT TO addresses.
    pub to: Vec<String>,
    /// The message as sent (dot-stuffing undone), CRLF line ends.
    pub data: String,
}

impl Mail {
    /// The body after the header, quoted-printable decoded.
    pub fn body(&self) -> String {
        let (_, body) = self
            .data
            .split_once("\r\n\r\n")
            .expect("a header and a body");
        decode_quoted_printable(body)
    }

    /// A header's value (unfolded), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.data.split_once("\r\n\r\n")?;
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.split("\r\n").find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

/// How the SMTP server secures its sessions.
#[derive(Clone)]
pub enum SmtpSecurity {
    /// Plain text, no STARTTLS offered.
    Plain,
    /// STARTTLS offered.
    StartTls(TlsAcceptor),
    /// TLS from the first byte.
    Implicit(TlsAcceptor),
}

/// An SMTP server on 127.0.0.1 that answers RCPT TO with a given reply
/// and records accepted messages; stops when dropped.
pub struct SmtpServer {
    /// The port.
    pub port: u16,
    mails: Arc<Mutex<Vec<Mail>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpServer {
    /// Starts one; `rcpt_reply` is the reply line to every RCPT TO
    /// (`250 ok`, `550 5.1.1 no such user`).
    pub async fn start(security: SmtpSecurity, rcpt_reply: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&mails);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let security = security.clone();
                let mails = Arc::clone(&recorded);
                tokio::spawn(async move {
                    let _ = serve_smtp(tcp, security, rcpt_reply, mails).await;
                });
            }
        });
        Self { port, mails, task }
    }

    /// The accepted messages so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_smtp(
    tcp: tokio::net::TcpStream,
    security: SmtpSecurity,
    rcpt_reply: &'static str,
    mails: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    match security {
        SmtpSecurity::Plain => {
            session(tcp, true, false, false, rcpt_reply, &mails).await?;
        }
        SmtpSecurity::Implicit(acceptor) => {
            let tls = acceptor.accept(tcp).await?;
            session(tls, true, false, true, rcpt_reply, &mails).await?;
        }
        SmtpSecurity::StartTls(acceptor) => {
            if let Some(tcp) = session(tcp, true, true, false, rcpt_reply, &mails).await? {
                let tls = acceptor.accept(tcp).await?;
                session(tls, false, false, true, rcpt_reply, &mails).await?;
            }
        }
    }
    Ok(())
}

/// One SMTP session; returns the stream when the client asked for STARTTLS.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    greet: bool,
    offer_starttls: bool,
    encrypted: bool,
    rcpt_reply: &str,
    mails: &Mutex<Vec<Mail>>,
) -> std::io::Result<Option<S>> {
    let mut stream = BufReader::new(stream);
    if greet {
        stream.get_mut().write_all(b"220 test ESMTP\r\n").await?;
    }
    let mut mail = Mail {
        encrypted,
        ..Mail::default()
    };
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end();
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO ") || upper.starts_with("HELO ") {
            mail.ehlo = line[5..].to_owned();
            let starttls = if offer_starttls {
                "250-STARTTLS\r\n"
            } else {
                ""
            };
            format!("250-test\r\n{starttls}250-AUTH PLAIN\r\n250 8BITMIME\r\n")
        } else if upper == "STARTTLS" && offer_starttls {
            stream.get_mut().write_all(b"220 go ahead\r\n").await?;
            return Ok(Some(stream.into_inner()));
        } else if let Some(encoded) = upper.strip_prefix("AUTH PLAIN ").map(|_| &line[11..]) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .expect("base64");
            mail.auth = Some(String::from_utf8(decoded).expect("UTF-8"));
            "235 2.7.0 authenticated\r\n".to_owned()
        } else if upper.starts_with("MAIL FROM:") {
            mail.from = address(&line[10..]);
            "250 ok\r\n".to_owned()
        } else if upper.starts_with("RCPT TO:") {
            if rcpt_reply.starts_with('2') {
                mail.to.push(address(&line[8..]));
            }
            format!("{rcpt_reply}\r\n")
        } else if upper == "DATA" {
            stream.get_mut().write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            loop {
                let mut line = String::new();
                if stream.read_line(&mut line).await? == 0 {
                    return Ok(None);
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            // the CRLF before "." belongs to the end-of-data marker
            mail.data = data.strip_suffix("\r\n").unwrap_or(&data).to_owned();
            mails.lock().expect("lock").push(mail.clone());
            "250 queued\r\n".to_owned()
        } else if upper == "RSET" || upper == "NOOP" {
            "250 ok\r\n".to_owned()
        } else if upper == "QUIT" {
            stream.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(None);
        } else {
            "502 not implemented\r\n".to_owned()
        };
        stream.get_mut().write_all(reply.as_bytes()).await?;
    }
}

/// `<a@b> SIZE=1` → `a@b`.
fn address(argument: &str) -> String {
    let argument = argument.trim();
    let end = argument.find('>').unwrap_or(argument.len());
    argument[..end].trim_start_matches('<').to_owned()
}

/// Undoes quoted-printable: soft line breaks and `=XX`.
fn decode_quoted_printable(text: &str) -> String {
    let text = text.replace("=\r\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8 body")
}

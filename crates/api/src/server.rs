//! Serving the router on a TCP listener, over plain HTTP or TLS, with the
//! limits a service on the network needs: a client must finish its request
//! headers within a time limit (slowloris), a connection that carries
//! nothing for a while is closed, and only so many connections are open at
//! once (more wait in the listen backlog until one closes).

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::HttpMetrics;

/// How connections are served.
#[derive(Clone)]
pub struct ServerOptions {
    /// Longest a client may take to send a request's headers: from the
    /// moment it connects (the TLS handshake included), and on a kept-alive
    /// connection from the first byte of each further request.
    pub header_read_timeout: Duration,
    /// A connection that neither sends nor receives a byte for this long is
    /// closed: a kept-alive connection between requests, or a request in
    /// flight (keep it above the request timeout). Longer than the 90 s
    /// clients such as reqwest keep idle connections, so that they drop
    /// theirs first.
    pub idle_timeout: Duration,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// Serve HTTPS with this certificate instead of plain HTTP.
    pub tls: Option<ServerTls>,
    /// After the shutdown signal, how long requests in flight may take.
    pub shutdown_grace: Duration,
}

impl Default for ServerOptions {
    /// 10 s for headers, 120 s idle, 1024 connections, plain HTTP, 10 s grace.
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_connections: 1024,
            tls: None,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerOptions")
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("tls", &self.tls.is_some())
            .field("shutdown_grace", &self.shutdown_grace)
            .finish()
    }
}

/// A TLS certificate chain and key to serve HTTPS with (rustls on ring,
/// TLS 1.2 and 1.3, HTTP/1.1).
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
}

/// Why the TLS certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// The certificate file has no PEM certificate, or cannot be read.
    #[error("cannot read certificates from {path}: {reason}")]
    Certificate {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The key file has no PEM private key, or cannot be read.
    #[error("cannot read a private key from {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The key does not fit the certificate, or rustls refused them.
    #[error("the certificate and key cannot be used together: {0}")]
    Config(#[source] rustls::Error),
}

impl ServerTls {
    /// Reads a PEM certificate chain (the server's certificate first) and
    /// its PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsSetupError> {
        let certificate_error = |reason: String| TlsSetupError::Certificate {
            path: cert.display().to_string(),
            reason,
        };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .map_err(|e| certificate_error(e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| certificate_error(e.to_string()))?;
        if chain.is_empty() {
            return Err(certificate_error("no CERTIFICATE block".to_owned()));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Key {
            path: key.display().to_string(),
            reason: e.to_string(),
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsSetupError::Config)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(TlsSetupError::Config)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets
/// requests in flight finish (within [`ServerOptions::shutdown_grace`]).
/// Open connections are counted in `metrics`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    metrics: Arc<HttpMetrics>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // e.g. out of file descriptors: wait instead of spinning
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let router = router.clone();
        let options = options.clone();
        let metrics = Arc::clone(&metrics);
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            metrics.connection_opened();
            let outcome = connection(tcp, router, &options, stop).await;
            metrics.connection_closed();
            drop(permit);
            if let Err(reason) = outcome {
                tracing::debug!(%peer, reason, "connection closed");
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // every connection holds a slot: all slots back means all closed
    let all = u32::try_from(options.max_connections.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(options.shutdown_grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open {:?} after the shutdown signal",
            options.shutdown_grace
        );
    }
    Ok(())
}

/// One connection: the TLS handshake if any, then HTTP/1.1 until the client
/// closes, a limit is hit, or the service stops.
async fn connection(
    tcp: tokio::net::TcpStream,
    router: Router,
    options: &ServerOptions,
    stop: watch::Receiver<bool>,
) -> Result<(), &'static str> {
    let activity = Activity::new();
    let io = Tracked {
        inner: tcp,
        activity: Arc::clone(&activity),
    };
    match &options.tls {
        None => http(io, router, options, &activity, stop).await,
        Some(tls) => {
            let handshake = tls.acceptor.accept(io);
            let tls_stream = tokio::time::timeout(options.header_read_timeout, handshake)
                .await
                .map_err(|_| "the TLS handshake timed out")?
                .map_err(|_| "the TLS handshake failed")?;
            http(tls_stream, router, options, &activity, stop).await
        }
    }
}

async fn http<S>(
    io: S,
    router: Router,
    options: &ServerOptions,
    activity: &Arc<Activity>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), &'static str>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tracker = Arc::clone(activity);
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        // the headers are in: the request is the handler's now
        let done = RequestInFlight::start(Arc::clone(&tracker));
        let answer = router.clone().oneshot(request);
        async move {
            let answer = answer.await;
            drop(done);
            answer
        }
    });
    // hyper's own header timeout would also close kept-alive connections
    // between requests; the watchdog below tells the two apart
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.header_read_timeout(None).keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let mut stopping = *stop.borrow();
    if stopping {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        let wait = activity.next_deadline(options);
        tokio::select! {
            result = connection.as_mut() => {
                return result.map_err(|_| "the connection failed");
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep(wait) => {
                if let Some(reason) = activity.expired(options) {
                    return Err(reason);
                }
            }
        }
    }
}

/// What a connection is doing, for its time limits: when it last carried a
/// byte, whether a request's headers are awaited (since the connection
/// opened, or since the first byte after the last answer) and how many
/// requests its handlers hold.
struct Activity {
    /// Milliseconds since [`epoch`] of the last byte read or written.
    last_ms: AtomicU64,
    /// Milliseconds since [`epoch`] since which headers are awaited; 0: none.
    awaiting_since_ms: AtomicU64,
    /// Requests whose headers are in and whose answer is not.
    in_flight: AtomicU64,
}

/// A process-wide instant that activity times count from.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    // never 0: 0 means "not awaiting"
    u64::try_from(epoch().elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Activity {
    fn new() -> Arc<Self> {
        let now = now_ms();
        Arc::new(Self {
            last_ms: AtomicU64::new(now),
            // a new connection owes its first request's headers
            awaiting_since_ms: AtomicU64::new(now),
            in_flight: AtomicU64::new(0),
        })
    }

    fn read(&self) {
        let now = now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            // the first byte of a new request starts its header clock
            let _ = self.awaiting_since_ms.compare_exchange(
                0,
                now,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn wrote(&self) {
        self.last_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Why the connection must close now, if it must.
    fn expired(&self, options: &ServerOptions) -> Option<&'static str> {
        let now = now_ms();
        let awaiting = self.awaiting_since_ms.load(Ordering::Relaxed);
        if awaiting != 0
            && Duration::from_millis(now.saturating_sub(awaiting)) >= options.header_read_timeout
        {
            return Some("request headers took too long");
        }
        let idle = Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)));
        (idle >= options.idle_timeout).then_some("idle for too long")
    }

    /// How long until a limit may be reached.
    fn next_deadline(&self, options: &ServerOptions) -> Duration {
        let now = now_ms();
        let idle = Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)));
        let mut wait = options.idle_timeout.saturating_sub(idle);
        let awaiting = self.awaiting_since_ms.load(Ordering::Relaxed);
        if awaiting != 0 {
            let waited = Duration::from_millis(now.saturating_sub(awaiting));
            wait = wait.min(options.header_read_timeout.saturating_sub(waited));
        }
        // re-read at least now and then: a request may start meanwhile
        wait.min(Duration::from_millis(250))
    }
}

/// A request between its headers and its answer (ends on drop).
struct RequestInFlight(Arc<Activity>);

impl RequestInFlight {
    fn start(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.awaiting_since_ms.store(0, Ordering::Relaxed);
        Self(activity)
    }
}

impl Drop for RequestInFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that records when bytes pass.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.wrote();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

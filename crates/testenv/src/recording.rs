//! A hostile party's server for security tests: an HTTP or HTTPS listener on
//! a loopback address of the test's choosing (`127.0.0.2`, …) that answers
//! every request with a fixed status and body and records what it was sent
//! — above all, any credentials (`Authorization` headers) that reached it.
//!
//! For HTTPS it has a certificate authority of its own, as an attacker would:
//! [`RecordingServer::ca_pem`] is what an uploaded kubeconfig or Git remote
//! would name as the CA to trust.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{ServerConfig, crypto};

use crate::TestEnvError;

/// One request as the server got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Every header, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The body, lossily decoded.
    pub body: String,
}

impl RecordedRequest {
    /// The value of a header, if it was sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// The running server; stops when dropped.
pub struct RecordingServer {
    addr: SocketAddr,
    tls: bool,
    ca_pem: String,
    requests: Arc<Mutex<Vec<RecordedRequest>>>,
    connections: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        // may be dropped inside a test's runtime: do not block on it
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl RecordingServer {
    /// Listens on a free port of `ip` (a loopback address), over HTTPS with
    /// a certificate for `ip` from its own CA when `tls`, and answers
    /// every request with `status` and `body` (as `application/json`; a 401
    /// asks for Basic credentials, as a Git server does).
    pub fn start(ip: &str, tls: bool, status: u16, body: &str) -> Result<Self, TestEnvError> {
        let ip: IpAddr = ip.parse().map_err(|_| {
            TestEnvError::io("parsing the recording server's address")(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("`{ip}` is not an IP address"),
            ))
        })?;
        let (ca_pem, acceptor) = if tls {
            let (ca, config) = tls_config(ip)?;
            (ca, Some(TlsAcceptor::from(Arc::new(config))))
        } else {
            (String::new(), None)
        };
        let listener = std::net::TcpListener::bind((ip, 0))
            .map_err(TestEnvError::io("binding the recording server"))?;
        let addr = listener
            .local_addr()
            .map_err(TestEnvError::io("binding the recording server"))?;
        listener
            .set_nonblocking(true)
            .map_err(TestEnvError::io("binding the recording server"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("testenv-recording")
            .enable_all()
            .build()
            .map_err(TestEnvError::io("starting the recording server"))?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(TestEnvError::io("starting the recording server"))?
        };
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        let body = Bytes::from(body.to_owned());
        let (recorded, counted) = (Arc::clone(&requests), Arc::clone(&connections));
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                counted.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let recorded = Arc::clone(&recorded);
                let body = body.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let recorded = Arc::clone(&recorded);
                        let body = body.clone();
                        async move {
                            record(request, &recorded).await;
                            let mut response = Response::builder()
                                .status(status)
                                .header("content-type", "application/json");
                            if status == StatusCode::UNAUTHORIZED {
                                // what makes Git clients send their credentials
                                response =
                                    response.header("www-authenticate", "Basic realm=\"git\"");
                            }
                            let response =
                                response.body(Full::new(body)).expect("a valid response");
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(acceptor) => {
                            if let Ok(tls) = acceptor.accept(tcp).await {
                                let _ = http.serve_connection(TokioIo::new(tls), service).await;
                            }
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Ok(Self {
            addr,
            tls,
            ca_pem,
            requests,
            connections,
            runtime: Some(runtime),
        })
    }

    /// `https://IP:PORT` (or `http://`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PEM certificate of its own CA (empty without TLS).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The requests received so far that carried credentials (an
    /// `Authorization` header).
    pub fn credentials_seen(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter_map(|request| request.header("authorization").map(str::to_owned))
            .collect()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn record(request: Request<Incoming>, recorded: &Mutex<Vec<RecordedRequest>>) {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let entry = RecordedRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    recorded
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(entry);
}

/// A CA of its own and a server certificate for `ip` issued by it.
fn tls_config(ip: IpAddr) -> Result<(String, ServerConfig), TestEnvError> {
    let certificate = |ip: IpAddr| -> Result<(String, Vec<u8>, Vec<u8>), rcgen::Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "a hostile test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![ip.to_string()])?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params
            .distinguished_name
            .push(DnType::CommonName, ip.to_string());
        let cert = params.signed_by(&key, &issuer)?;
        Ok((ca_cert.pem(), cert.der().to_vec(), key.serialize_der()))
    };
    let (ca_pem, cert, key) = certificate(ip).map_err(TestEnvError::Certificate)?;
    let config = ServerConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(TestEnvError::tls("choosing TLS versions"))?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .map_err(TestEnvError::tls(
            "loading the recording server's certificate",
        ))?;
    Ok((ca_pem, config))
}

//! The kubelet's log endpoint, faked: an HTTPS server on 127.0.0.1 that answers
//! `GET /containerLogs/{namespace}/{pod}/{container}` as a kubelet does, from
//! texts tests set with [`TestCluster::set_container_logs`](crate::TestCluster::set_container_logs).
//!
//! The apiserver reaches it for `pods/{pod}/log` through the node a pod is bound
//! to: fake nodes advertise `InternalIP 127.0.0.1` and this server's port as
//! their kubelet endpoint. TLS is verified both ways against the cluster's test
//! CA: the apiserver checks the serving certificate (`--kubelet-certificate-authority`)
//! and the server accepts only clients with a certificate from that CA
//! (`--kubelet-client-certificate`).
//!
//! The server runs on a runtime of its own, so a test that blocks its own thread
//! (e.g. on `kubectl logs`) still gets an answer, and a cluster outlives the
//! runtime it was started on.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig, crypto};

use crate::TestEnvError;
use crate::pki::Pki;

/// `(namespace, pod, container, previous)`.
type LogKey = (String, String, String, bool);

/// The log texts tests set, by container instance.
type LogTexts = Mutex<HashMap<LogKey, Arc<str>>>;

/// The running server; stops when dropped.
pub(crate) struct ContainerLogServer {
    port: u16,
    texts: Arc<LogTexts>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl ContainerLogServer {
    /// Listens on a free port of 127.0.0.1 with the kubelet certificate from `pki`.
    pub fn start(pki: &Pki) -> Result<Self, TestEnvError> {
        let acceptor = TlsAcceptor::from(Arc::new(tls_config(pki)?));
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(TestEnvError::io("binding the fake kubelet's log server"))?;
        let port = listener
            .local_addr()
            .map_err(TestEnvError::io("binding the fake kubelet's log server"))?
            .port();
        listener
            .set_nonblocking(true)
            .map_err(TestEnvError::io("binding the fake kubelet's log server"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("testenv-kubelet-logs")
            .enable_all()
            .build()
            .map_err(TestEnvError::io("starting the fake kubelet's log server"))?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(TestEnvError::io("starting the fake kubelet's log server"))?
        };
        let texts = Arc::new(LogTexts::default());
        let served = Arc::clone(&texts);
        runtime.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    // e.g. out of file descriptors: wait instead of spinning
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let acceptor = acceptor.clone();
                let texts = Arc::clone(&served);
                tokio::spawn(async move {
                    // a client without a certificate from the test CA just goes away
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |request| {
                        let response = respond(&request, &texts);
                        async move { Ok::<_, Infallible>(response) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self {
            port,
            texts,
            runtime: Some(runtime),
        })
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Sets (replaces) the log text of a container instance.
    pub fn set(&self, namespace: &str, pod: &str, container: &str, previous: bool, text: &str) {
        let key = (
            namespace.to_owned(),
            pod.to_owned(),
            container.to_owned(),
            previous,
        );
        self.texts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, Arc::from(text));
    }
}

impl Drop for ContainerLogServer {
    fn drop(&mut self) {
        // dropping a runtime blocks, which panics inside the test's own runtime
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn tls_config(pki: &Pki) -> Result<ServerConfig, TestEnvError> {
    let provider = Arc::new(crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.ca_cert_der.clone()))
        .map_err(TestEnvError::tls("trusting the test CA"))?;
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(TestEnvError::tls(
            "building the client-certificate verifier",
        ))?;
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TestEnvError::tls("choosing TLS versions"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(pki.kubelet_serving_cert_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                pki.kubelet_serving_key_der.clone(),
            )),
        )
        .map_err(TestEnvError::tls("loading the kubelet serving certificate"))
}

/// Answers one request as the kubelet's `/containerLogs` handler would.
fn respond(request: &Request<Incoming>, texts: &LogTexts) -> Response<Full<Bytes>> {
    let path = request.uri().path().trim_start_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    let ["containerLogs", namespace, pod, container] = segments.as_slice() else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("404 page not found: /{path}"),
        );
    };
    let query = LogQuery::parse(request.uri().query().unwrap_or(""));
    let key = (
        (*namespace).to_owned(),
        (*pod).to_owned(),
        (*container).to_owned(),
        query.previous,
    );
    let text = texts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
        .cloned();
    match text {
        Some(text) => plain(
            StatusCode::OK,
            select(&text, query.tail_lines, query.limit_bytes).to_vec(),
        ),
        // The kubelet answers 400 with the runtime's message when the container
        // has no (previous) instance; the apiserver passes a 400's text on to the
        // client but replaces a 404's with a generic one.
        None if query.previous => plain(
            StatusCode::BAD_REQUEST,
            format!(
                "previous terminated container \"{container}\" in pod \"{pod}\" not found \
                 (testenv: no logs set for {namespace}/{pod}/{container}; \
                 use TestCluster::set_container_logs)"
            ),
        ),
        None => plain(
            StatusCode::BAD_REQUEST,
            format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: \
                 ContainerCreating (testenv: no logs set for {namespace}/{pod}/{container}; \
                 use TestCluster::set_container_logs)"
            ),
        ),
    }
}

fn plain(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The query parameters the apiserver forwards that this server honours
/// (`follow`, `timestamps`, `sinceSeconds`, `sinceTime` and `stream` are ignored).
#[derive(Debug, Default, PartialEq)]
struct LogQuery {
    previous: bool,
    tail_lines: Option<usize>,
    limit_bytes: Option<usize>,
}

impl LogQuery {
    fn parse(query: &str) -> Self {
        let mut parsed = Self::default();
        for (key, value) in query.split('&').filter_map(|pair| pair.split_once('=')) {
            match key {
                "previous" => parsed.previous = value == "true" || value == "1",
                // a negative count means everything, as in the kubelet
                "tailLines" => parsed.tail_lines = value.parse().ok(),
                "limitBytes" => parsed.limit_bytes = value.parse().ok(),
                _ => {}
            }
        }
        parsed
    }
}

/// The last `tail_lines` lines of `text` (all when `None`), then at most
/// `limit_bytes` bytes of those, as the kubelet cuts them.
fn select(text: &str, tail_lines: Option<usize>, limit_bytes: Option<usize>) -> &[u8] {
    let tail = match tail_lines {
        None => text,
        Some(lines) => {
            let starts: Vec<usize> = text
                .split_inclusive('\n')
                .scan(0, |offset, line| {
                    let start = *offset;
                    *offset += line.len();
                    Some(start)
                })
                .collect();
            starts
                .len()
                .checked_sub(lines)
                .map_or(text, |first| starts.get(first).map_or("", |&s| &text[s..]))
        }
    };
    let bytes = tail.as_bytes();
    &bytes[..limit_bytes.map_or(bytes.len(), |limit| limit.min(bytes.len()))]
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls::ClientConfig;
    use tokio_rustls::rustls::pki_types::ServerName;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;

    use super::*;

    /// A GET over TLS trusting the test CA, with the apiserver's kubelet client
    /// certificate or none; the raw HTTP/1.1 response.
    async fn get(pki: &Pki, port: u16, client_cert: bool, path: &str) -> std::io::Result<String> {
        let provider = Arc::new(crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from(pki.ca_cert_der.clone()))
            .unwrap();
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = if client_cert {
            let chain =
                vec![CertificateDer::from_pem_slice(pki.kubelet_client_cert.as_bytes()).unwrap()];
            let key = PrivateKeyDer::from_pem_slice(pki.kubelet_client_key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        } else {
            builder.with_no_client_auth()
        };
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await?;
        tls.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut response = String::new();
        tls.read_to_string(&mut response).await?;
        Ok(response)
    }

    #[tokio::test]
    async fn only_clients_with_a_certificate_from_the_test_ca_are_answered() {
        let pki = Pki::generate("unit").unwrap();
        let server = ContainerLogServer::start(&pki).unwrap();
        server.set("apps", "web-1", "web", false, "one\ntwo\n");
        let path = "/containerLogs/apps/web-1/web?tailLines=1";
        let answer = get(&pki, server.port(), true, path).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\ntwo\n"), "{answer}");
        let unset = get(&pki, server.port(), true, "/containerLogs/apps/web-1/other")
            .await
            .unwrap();
        assert!(unset.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{unset}");
        let refused = get(&pki, server.port(), false, path).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.to_string().contains("CertificateRequired")),
            "{refused:?}"
        );
    }

    #[test]
    fn select_takes_the_last_lines_then_caps_the_bytes() {
        #[track_caller]
        fn check(text: &str, tail: Option<usize>, limit: Option<usize>, expected: &str) {
            assert_eq!(
                String::from_utf8_lossy(select(text, tail, limit)),
                expected,
                "tail {tail:?}, limit {limit:?}"
            );
        }
        check("a\nb\nc\n", None, None, "a\nb\nc\n");
        check("a\nb\nc\n", Some(2), None, "b\nc\n");
        check("a\nb\nc\n", Some(3), None, "a\nb\nc\n");
        check("a\nb\nc\n", Some(10), None, "a\nb\nc\n");
        check("a\nb\nc\n", Some(0), None, "");
        // an unterminated last line is a line
        check("a\nb\nc", Some(1), None, "c");
        check("a\nb\nc", Some(2), None, "b\nc");
        check("a\nb\nc\n", None, Some(3), "a\nb");
        check("a\nb\nc\n", Some(2), Some(3), "b\nc");
        check("a\nb\nc\n", Some(2), Some(100), "b\nc\n");
        check("", Some(5), Some(5), "");
    }

    #[test]
    fn the_query_the_apiserver_forwards_is_understood() {
        #[track_caller]
        fn check(query: &str, expected: LogQuery) {
            assert_eq!(LogQuery::parse(query), expected, "{query}");
        }
        check("", LogQuery::default());
        check(
            "limitBytes=100&previous=true&tailLines=50",
            LogQuery {
                previous: true,
                tail_lines: Some(50),
                limit_bytes: Some(100),
            },
        );
        check(
            "follow=true&tailLines=-1&timestamps=true",
            LogQuery::default(),
        );
    }
}

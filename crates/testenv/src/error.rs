//! The testenv error type.

use std::path::PathBuf;

/// Everything that can go wrong while starting, driving or stopping a test cluster.
#[derive(Debug, thiserror::Error)]
pub enum TestEnvError {
    /// A control-plane binary is not installed where the harness looks for it.
    #[error(
        "test cluster binary `{name}` not found at {}: run `scripts/install-test-binaries.sh` \
         (builds kube-apiserver and etcd from Go modules; needs Go) or set PILOTHOUSE_TESTENV_BIN \
         to a directory that holds them",
        path.display()
    )]
    MissingBinary {
        /// The binary's file name.
        name: &'static str,
        /// Where it was expected.
        path: PathBuf,
    },
    /// A file-system or process operation failed.
    #[error("{context}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Generating certificates or keys failed.
    #[error("generating test certificates")]
    Certificate(#[source] rcgen::Error),
    /// A control-plane process exited while the harness waited for it.
    #[error(
        "{process} of cluster `{cluster}` exited early ({status}); its log ends with:\n{log_tail}"
    )]
    ProcessExited {
        /// The cluster's name.
        cluster: String,
        /// Which process (etcd, kube-apiserver, …).
        process: &'static str,
        /// How it exited.
        status: String,
        /// The last lines it logged.
        log_tail: String,
    },
    /// A process or object did not become ready in time.
    #[error("timed out after {seconds}s waiting for {what}; log tail:\n{log_tail}")]
    Timeout {
        /// What the harness waited for.
        what: String,
        /// How long it waited.
        seconds: u64,
        /// The last lines of the relevant log, if any.
        log_tail: String,
    },
    /// Setting up TLS for the fake kubelet's log server failed.
    #[error("setting up TLS for the fake kubelet's log server: {context}")]
    Tls {
        /// What the harness was doing.
        context: &'static str,
        /// The TLS library's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Loading the generated kubeconfig into a client failed.
    #[error("loading the generated kubeconfig")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    /// A call to the test cluster's API server failed.
    #[error("kubernetes API call failed: {context}")]
    Kube {
        /// What the harness was doing.
        context: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl TestEnvError {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    pub(crate) fn tls<E>(context: &'static str) -> impl FnOnce(E) -> Self
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        move |source| Self::Tls {
            context,
            source: source.into(),
        }
    }

    pub(crate) fn kube(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let context = context.into();
        move |source| Self::Kube { context, source }
    }
}

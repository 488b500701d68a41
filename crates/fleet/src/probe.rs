//! kube clients for validated kubeconfigs, and connectivity probes.

use std::error::Error as _;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Node};
use kube::api::{Api, ListParams};
use kube::client::AuthError;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use pilothouse_types::Cloud;

use crate::cloud::detect_cloud;
use crate::kubeconfig::{self, KubeconfigPolicy, ValidatedKubeconfig};

/// Longest message kept from a cluster's or a library's error text.
const MAX_MESSAGE: usize = 300;
/// How many nodes a probe reads for their provider IDs.
const NODE_SAMPLE: u32 = 20;

/// What a connectivity check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The API server's `gitVersion`, e.g. `v1.35.4`.
    pub kubernetes_version: String,
    /// `spec.providerID` of up to 20 nodes (empty when listing nodes is forbidden
    /// or nodes carry none).
    pub provider_ids: Vec<String>,
    /// The cloud [`detect_cloud`] sees in the server URL, exec plugin and provider IDs.
    pub detected_cloud: Option<Cloud>,
}

/// Why a cluster could not be reached or used. Messages are safe to show to
/// users: they never hold tokens, keys, certificates, or what an exec plugin
/// printed.
///
/// kube's errors are deliberately not kept as `#[source]`: a failed exec plugin
/// comes back with the plugin's full command line, environment and output,
/// where secrets live, and a source chain is what loggers print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The cluster did not answer in time.
    #[error("the cluster did not answer within {after:?}")]
    Timeout {
        /// The time limit that passed.
        after: Duration,
    },
    /// No connection could be made (refused, DNS, TLS handshake, reset, …).
    #[error("cannot reach the cluster: {message}")]
    Unreachable {
        /// What failed.
        message: String,
    },
    /// The cluster rejected the credentials (HTTP 401).
    #[error("the cluster rejected the credentials (401 Unauthorized)")]
    Unauthorized,
    /// The credentials are valid but may not list namespaces (HTTP 403).
    #[error("the credentials lack permissions: {message}")]
    Forbidden {
        /// The API server's explanation.
        message: String,
    },
    /// The kubeconfig cannot be turned into a working client (bad certificate
    /// data, an exec plugin that fails or is missing, …).
    #[error("cannot use the kubeconfig: {message}")]
    Config {
        /// What is wrong.
        message: String,
    },
    /// The server answered with an unexpected error.
    #[error("the cluster answered with an error: {message}")]
    Api {
        /// The status and the server's explanation.
        message: String,
    },
}

/// Builds a client for a validated kubeconfig with connect, read and write
/// timeouts of `timeout` each (a read timeout cuts idle watches too: long-lived
/// watchers want a client built with a longer one).
///
/// The kubeconfig is checked again before use, so a hand-built
/// [`ValidatedKubeconfig`] cannot smuggle in file paths. When the user runs an
/// exec plugin, the plugin runs here, on the blocking pool, bounded by `timeout`
/// (a plugin that hangs past it is left to finish on its own: kube cannot kill it).
pub async fn client_for(
    kubeconfig: &ValidatedKubeconfig,
    timeout: Duration,
) -> Result<Client, ProbeError> {
    build_client(kubeconfig, timeout, timeout).await
}

/// A client for long-running watches: connects within `timeout` but waits
/// up to `read_timeout` between two reads (longer than a watch request stays
/// open without events).
pub async fn watch_client_for(
    kubeconfig: &ValidatedKubeconfig,
    timeout: Duration,
    read_timeout: Duration,
) -> Result<Client, ProbeError> {
    build_client(kubeconfig, timeout, read_timeout).await
}

async fn build_client(
    kubeconfig: &ValidatedKubeconfig,
    timeout: Duration,
    read_timeout: Duration,
) -> Result<Client, ProbeError> {
    // checked again: the plugin runs only for the server its pattern allows
    let policy = KubeconfigPolicy {
        allowed_exec_commands: kubeconfig.exec_command.iter().cloned().collect(),
        exec_server_patterns: kubeconfig.exec_server_pattern.iter().cloned().collect(),
    };
    let (_, document) = kubeconfig::validate(
        &kubeconfig.minimized_yaml,
        Some(&kubeconfig.context),
        &policy,
    )
    .map_err(|error| ProbeError::Config {
        message: error.to_string(),
    })?;
    let parsed: Kubeconfig = serde_json::from_value(document).map_err(|_| ProbeError::Config {
        message: "the kubeconfig does not match the kubeconfig schema".into(),
    })?;
    let options = KubeConfigOptions {
        context: Some(kubeconfig.context.clone()),
        ..KubeConfigOptions::default()
    };
    let mut config = Config::from_custom_kubeconfig(parsed, &options)
        .await
        .map_err(|error| ProbeError::Config {
            // kube's kubeconfig errors name fields and names, not data
            message: shorten(&error.to_string()),
        })?;
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(read_timeout);
    config.write_timeout = Some(timeout);

    // Building the client runs the exec plugin, if any, synchronously.
    let build = tokio::task::spawn_blocking(move || Client::try_from(config));
    let exec = kubeconfig.exec_command.as_deref();
    match tokio::time::timeout(timeout, build).await {
        Err(_) => Err(ProbeError::Timeout { after: timeout }),
        Ok(Err(_)) => Err(ProbeError::Config {
            message: "building the client failed".into(),
        }),
        Ok(Ok(Err(error))) => Err(classify(error, exec, timeout)),
        Ok(Ok(Ok(client))) => Ok(client),
    }
}

/// Connects with an overall timeout: `GET /version`, a cheap authenticated list
/// (namespaces, `limit=1`: a 401 means the credentials are rejected, a 403 that
/// they are too weak), then nodes (`limit=20`) for their provider IDs (a 403
/// there is not an error).
pub async fn probe(
    kubeconfig: &ValidatedKubeconfig,
    timeout: Duration,
) -> Result<Probe, ProbeError> {
    let result = tokio::time::timeout(timeout, probe_within(kubeconfig, timeout))
        .await
        .unwrap_or(Err(ProbeError::Timeout { after: timeout }));
    match &result {
        Ok(found) => tracing::debug!(
            context = %kubeconfig.context,
            server = %kubeconfig.server_url,
            version = %found.kubernetes_version,
            cloud = ?found.detected_cloud,
            "probed cluster"
        ),
        Err(error) => tracing::debug!(
            context = %kubeconfig.context,
            server = %kubeconfig.server_url,
            %error,
            "cluster probe failed"
        ),
    }
    result
}

async fn probe_within(
    kubeconfig: &ValidatedKubeconfig,
    timeout: Duration,
) -> Result<Probe, ProbeError> {
    let exec = kubeconfig.exec_command.as_deref();
    let client = client_for(kubeconfig, timeout).await?;
    let version = client
        .apiserver_version()
        .await
        .map_err(|e| classify(e, exec, timeout))?;
    Api::<Namespace>::all(client.clone())
        .list_metadata(&ListParams::default().limit(1))
        .await
        .map_err(|e| classify(e, exec, timeout))?;
    let provider_ids = match Api::<Node>::all(client)
        .list(&ListParams::default().limit(NODE_SAMPLE))
        .await
    {
        Ok(nodes) => nodes
            .items
            .into_iter()
            .filter_map(|node| node.spec?.provider_id)
            .filter(|id| !id.is_empty())
            .collect(),
        Err(kube::Error::Api(status)) if status.code == 403 => Vec::new(),
        Err(error) => return Err(classify(error, exec, timeout)),
    };
    let detected_cloud = detect_cloud(&kubeconfig.server_url, exec, &provider_ids);
    Ok(Probe {
        kubernetes_version: version.git_version,
        provider_ids,
        detected_cloud,
    })
}

/// Turns a kube error into a [`ProbeError`] whose message is safe to show.
fn classify(error: kube::Error, exec: Option<&str>, timeout: Duration) -> ProbeError {
    match error {
        kube::Error::Api(status) => {
            // kube makes up a Status when the body is not one (an HTML page from
            // whatever answered): do not echo such a body
            let from_kubernetes = status.reason != "Failed to parse error data";
            match status.code {
                401 => ProbeError::Unauthorized,
                403 if from_kubernetes => ProbeError::Forbidden {
                    message: shorten(&status.message),
                },
                code if from_kubernetes => ProbeError::Api {
                    message: shorten(&format!("HTTP {code}: {}", status.message)),
                },
                code => ProbeError::Api {
                    message: format!(
                        "HTTP {code} from something that does not speak the Kubernetes API"
                    ),
                },
            }
        }
        kube::Error::Auth(auth) => credentials_error(&auth, exec),
        kube::Error::RustlsTls(_) => ProbeError::Config {
            message: "the certificate authority, client certificate or client key cannot be used"
                .into(),
        },
        kube::Error::InferKubeconfig(error) => ProbeError::Config {
            message: shorten(&error.to_string()),
        },
        kube::Error::SerdeError(_) | kube::Error::FromUtf8(_) => ProbeError::Api {
            message: "the answer is not what a Kubernetes API server sends".into(),
        },
        kube::Error::HttpError(_) | kube::Error::BuildRequest(_) => ProbeError::Config {
            message: "a request could not be built from the kubeconfig (e.g. an impersonation \
                      value that is not a valid header)"
                .into(),
        },
        other => {
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&other);
            while let Some(error) = source {
                if let Some(auth) = error.downcast_ref::<AuthError>() {
                    return credentials_error(auth, exec);
                }
                if error
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
                {
                    return ProbeError::Timeout { after: timeout };
                }
                source = error.source();
            }
            ProbeError::Unreachable {
                message: chain_message(&other),
            }
        }
    }
}

/// A safe message for a failure to obtain credentials. The AuthError's own
/// text is never used: it holds the plugin's command line, environment and output.
fn credentials_error(error: &AuthError, exec: Option<&str>) -> ProbeError {
    let plugin = exec.unwrap_or("exec");
    let message = match error {
        AuthError::AuthExecStart(io) => {
            format!("cannot start the exec credential plugin `{plugin}`: {io}")
        }
        AuthError::AuthExecRun { out, .. } => {
            format!(
                "the exec credential plugin `{plugin}` failed ({})",
                out.status
            )
        }
        AuthError::InvalidBearerToken(_) => "the token is not a valid HTTP header value".into(),
        _ if exec.is_some() => {
            format!("the exec credential plugin `{plugin}` gave no usable credentials")
        }
        _ => "the credentials cannot be used".into(),
    };
    ProbeError::Config { message }
}

/// The messages of an error's causes, outermost first, without repeats: e.g.
/// `client error (Connect): tcp connect error: Connection refused (os error 111)`.
pub(crate) fn chain_message(error: &kube::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        parts.push(error.to_string());
    }
    shorten(&parts.join(": "))
}

fn shorten(text: &str) -> String {
    shorten_to(text, MAX_MESSAGE)
}

/// `text` trimmed and cut to `max` characters (an ellipsis marks a cut).
pub(crate) fn shorten_to(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max).collect();
        short.push('…');
        short
    }
}

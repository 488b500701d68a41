//! Validation of untrusted kubeconfigs.
//!
//! An uploaded kubeconfig is read as plain YAML data (never with kube's own
//! loader, which follows file paths), the chosen context, its cluster and its
//! user are checked field by field against an allow-list, and what is kept is
//! written out again as a minimal kubeconfig. Every later use of the credentials
//! goes through that minimal document, so nothing that was refused here can
//! reach kube.
//!
//! Decisions (the API surfaces each refusal as a 4xx naming the field):
//! - Path-valued fields are refused: `certificate-authority`,
//!   `client-certificate`, `client-key`, `tokenFile`, an exec `command` holding a
//!   `/`, and exec arguments that look like paths or are path-valued flags.
//! - `insecure-skip-tls-verify: true` is refused: the service holds credentials
//!   of many clusters and would hand them to anyone on the network path.
//!   `false` is accepted and dropped.
//! - `proxy-url` is refused: it would route credentials through a host of the
//!   uploader's choosing, and this build of kube has no proxy support anyway.
//! - `username`/`password` (basic auth, gone since Kubernetes 1.19) and the
//!   legacy `auth-provider` are refused.
//! - The server must be an `https://` URL without user info or query.
//! - Exec plugins: the command must be a bare name on the allow-list; for the
//!   known plugins the subcommand is pinned and comes first (`aws eks
//!   get-token` after known global options only, `aws-iam-authenticator
//!   token`, `kubelogin get-token`), every option before it known as a flag
//!   or as taking a value, so an allow-listed general-purpose CLI cannot run
//!   arbitrary actions with the service's cloud identity; the cluster's server
//!   must match one of the operator's endpoint patterns for the plugin
//!   ([`ExecServerPattern`]), so the token the plugin issues never goes to a
//!   server of the uploader's choosing; only a short list of environment
//!   variables may be set (no `PATH`,
//!   `LD_*`, `*_FILE`, …); `interactiveMode` is forced to `Never` (a service has
//!   no terminal, and kube inherits stdin/stderr otherwise).
//! - Unknown fields are refused inside the chosen context, cluster and user and
//!   at the top level. Entries of other contexts are only checked for shape:
//!   they are dropped, so a stale `auth-provider` user elsewhere in a personal
//!   kubeconfig does not block registering a good context.
//! - Impersonation (`as`, `as-groups`, …), `tls-server-name`,
//!   `disable-compression`, `namespace` and `extensions` are kept.
//! - Embedded `*-data` fields must be base64 of PEM; line breaks inside the
//!   base64 (accepted by kubectl, not by kube) are removed.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::yaml;

mod exec;

pub use exec::{DEFAULT_EXEC_SERVER_PATTERNS, ExecServerPattern};

/// Largest kubeconfig accepted, in bytes.
pub const MAX_KUBECONFIG_BYTES: usize = 1024 * 1024;

/// The exec credential plugins allowed by [`KubeconfigPolicy::default`].
pub const DEFAULT_EXEC_COMMANDS: [&str; 4] = [
    "aws",
    "aws-iam-authenticator",
    "gke-gcloud-auth-plugin",
    "kubelogin",
];

/// Environment variables an exec plugin entry may set. Anything else could
/// point the plugin at files on the server, another binary or library
/// (`PATH`, `LD_PRELOAD`, `*_FILE`, `GOOGLE_APPLICATION_CREDENTIALS`, …) or a
/// proxy, so it is refused.
pub const ALLOWED_EXEC_ENV: [&str; 14] = [
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_STS_REGIONAL_ENDPOINTS",
    "AAD_LOGIN_METHOD",
    "AAD_SERVICE_PRINCIPAL_CLIENT_ID",
    "AAD_SERVICE_PRINCIPAL_CLIENT_SECRET",
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_ENVIRONMENT",
    "USE_GKE_GCLOUD_AUTH_PLUGIN",
    "CLOUDSDK_CORE_PROJECT",
    "CLOUDSDK_CONTAINER_USE_APPLICATION_DEFAULT_CREDENTIALS",
];

/// Which exec credential plugins an uploaded kubeconfig may use, and with
/// which servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigPolicy {
    /// Bare command names (no `/`), e.g. `aws`. A command holding a `/` is
    /// refused even when listed here.
    pub allowed_exec_commands: Vec<String>,
    /// The servers each plugin may hand its credentials to. A plugin with no
    /// pattern here is never run.
    pub exec_server_patterns: Vec<ExecServerPattern>,
}

impl Default for KubeconfigPolicy {
    /// `aws`, `aws-iam-authenticator`, `gke-gcloud-auth-plugin` and
    /// `kubelogin`, each with its cloud's endpoints
    /// ([`DEFAULT_EXEC_SERVER_PATTERNS`]).
    fn default() -> Self {
        Self {
            allowed_exec_commands: DEFAULT_EXEC_COMMANDS.map(str::to_owned).to_vec(),
            exec_server_patterns: ExecServerPattern::defaults(),
        }
    }
}

impl KubeconfigPolicy {
    /// The policy with `patterns` in place of the built-in patterns of every
    /// plugin they name (other plugins keep theirs).
    pub fn with_exec_server_patterns(mut self, patterns: Vec<ExecServerPattern>) -> Self {
        self.exec_server_patterns
            .retain(|kept| patterns.iter().all(|given| given.plugin != kept.plugin));
        self.exec_server_patterns.extend(patterns);
        self
    }

    fn allows(&self, command: &str) -> bool {
        !command.contains(['/', '\\']) && self.allowed_exec_commands.iter().any(|c| c == command)
    }

    /// The first of the plugin's patterns the server matches.
    fn server_pattern(&self, plugin: &str, server: &str) -> Option<&ExecServerPattern> {
        self.exec_server_patterns
            .iter()
            .find(|rule| rule.plugin == plugin && rule.matches(server))
    }

    fn patterns_of(&self, plugin: &str) -> Vec<String> {
        self.exec_server_patterns
            .iter()
            .filter(|rule| rule.plugin == plugin)
            .map(|rule| rule.pattern().to_owned())
            .collect()
    }
}

/// A kubeconfig that passed [`validate_kubeconfig`].
///
/// To use stored credentials again, run the decrypted `minimized_yaml` through
/// [`validate_kubeconfig`] with the current policy (its `current-context` is
/// set): that also applies policy changes made since it was stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ValidatedKubeconfig {
    /// The chosen context.
    pub context: String,
    /// The server URL of the context's cluster.
    pub server_url: String,
    /// The exec credential plugin the user runs, if any.
    pub exec_command: Option<String>,
    /// The operator's endpoint pattern that lets the plugin talk to this
    /// server (with `exec_command`).
    pub exec_server_pattern: Option<ExecServerPattern>,
    /// A kubeconfig holding only the chosen context, its cluster and its user,
    /// with current-context set — what the store encrypts. Holds secrets.
    pub minimized_yaml: String,
}

impl fmt::Debug for ValidatedKubeconfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatedKubeconfig")
            .field("context", &self.context)
            .field("server_url", &self.server_url)
            .field("exec_command", &self.exec_command)
            .field("exec_server_pattern", &self.exec_server_pattern)
            .field("minimized_yaml", &"<redacted>")
            .finish()
    }
}

/// Why an uploaded kubeconfig is refused. Each variant names the offending
/// field, e.g. `users[admin].user.client-key`; messages never quote values
/// other than names and commands.
///
/// The YAML parser's own error is deliberately not kept as a `#[source]`: its
/// message can quote the document, which holds credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeconfigError {
    /// Not YAML, not a single document, too large, or not shaped like a kubeconfig.
    #[error("not a usable kubeconfig: {message}")]
    Parse {
        /// What is wrong (never quotes the document).
        message: String,
    },
    /// A field names a file on the server; uploaded kubeconfigs must embed data.
    #[error(
        "`{field}` refers to a file; an uploaded kubeconfig must embed its data \
         (the `-data` fields or a token) instead of naming files on the server"
    )]
    FileReference {
        /// The offending field.
        field: String,
    },
    /// The exec credential plugin is not on the allow-list (or is a path).
    #[error(
        "`{field}`: exec credential plugin `{command}` is not allowed (only bare command \
         names on the operator's allow-list are accepted)"
    )]
    ExecNotAllowed {
        /// The offending field (`users[…].user.exec.command`).
        field: String,
        /// The command as written (shortened if long).
        command: String,
    },
    /// An allowed exec plugin is asked to do something else than issuing a token.
    #[error("`{field}`: exec credential plugin `{command}` may only run as `{expected}`")]
    ExecArguments {
        /// The offending field (`users[…].user.exec.args`).
        field: String,
        /// The plugin.
        command: String,
        /// The only accepted form.
        expected: &'static str,
    },
    /// The cluster's server does not match any of the operator's endpoint
    /// patterns for the user's exec plugin: the token it issues would go to a
    /// server of the uploader's choosing.
    #[error(
        "`{field}`: the exec credential plugin `{command}` may only be used with servers \
         matching {} (the operator's --exec-server-pattern); this server does not match",
        patterns_text(.patterns)
    )]
    ExecServerNotAllowed {
        /// The offending field (`clusters[…].cluster.server`).
        field: String,
        /// The plugin.
        command: String,
        /// The operator's patterns for the plugin.
        patterns: Vec<String>,
    },
    /// The legacy `auth-provider` mechanism is refused.
    #[error(
        "`{field}`: legacy auth-provider plugins are not supported; use an exec credential \
         plugin (kubelogin, gke-gcloud-auth-plugin, aws) or a token"
    )]
    AuthProvider {
        /// The offending field (`users[…].user.auth-provider`).
        field: String,
    },
    /// No context was given and the kubeconfig has no current-context.
    #[error("no context was given and the kubeconfig has no current-context")]
    MissingContext,
    /// The requested context is not in the kubeconfig.
    #[error("context `{context}` is not in the kubeconfig")]
    UnknownContext {
        /// The context asked for.
        context: String,
    },
    /// The context names a cluster that is not in the kubeconfig.
    #[error("`{field}` names cluster `{name}`, which is not in the kubeconfig")]
    MissingCluster {
        /// The field naming it (`contexts[…].context.cluster`).
        field: String,
        /// The missing cluster's name.
        name: String,
    },
    /// The context names a user that is not in the kubeconfig.
    #[error("`{field}` names user `{name}`, which is not in the kubeconfig")]
    MissingUser {
        /// The field naming it (`contexts[…].context.user`).
        field: String,
        /// The missing user's name.
        name: String,
    },
    /// The cluster has no server URL.
    #[error("`{field}` is missing: the cluster has no server URL")]
    MissingServer {
        /// The missing field (`clusters[…].cluster.server`).
        field: String,
    },
    /// A field that uploaded kubeconfigs may not use (see the module docs for why).
    #[error("`{field}` is not accepted in an uploaded kubeconfig: {}", unsupported_reason(.field))]
    UnsupportedField {
        /// The offending field.
        field: String,
    },
    /// A field whose value is malformed (wrong type, bad base64, plain `http://`, …).
    #[error("`{field}` {reason}")]
    InvalidField {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl KubeconfigError {
    /// The offending field, as a path into the kubeconfig
    /// (`users[admin].user.client-key`); `None` when the document as a whole is wrong.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Parse { .. } => None,
            Self::MissingContext => Some("current-context"),
            Self::UnknownContext { .. } => Some("contexts"),
            Self::FileReference { field }
            | Self::ExecNotAllowed { field, .. }
            | Self::ExecArguments { field, .. }
            | Self::ExecServerNotAllowed { field, .. }
            | Self::AuthProvider { field }
            | Self::MissingCluster { field, .. }
            | Self::MissingUser { field, .. }
            | Self::MissingServer { field }
            | Self::UnsupportedField { field }
            | Self::InvalidField { field, .. } => Some(field),
        }
    }
}

fn patterns_text(patterns: &[String]) -> String {
    match patterns {
        [] => "no pattern at all".to_owned(),
        patterns => patterns.join(", "),
    }
}

fn unsupported_reason(field: &str) -> String {
    let last = field.rsplit('.').next().unwrap_or(field);
    match last {
        "insecure-skip-tls-verify" => "turning off TLS verification would hand the credentials \
                                       to anyone on the network path; give certificate-authority-data instead"
            .into(),
        "proxy-url" => "proxies are not supported for registered clusters".into(),
        "username" | "password" => "basic authentication was removed in Kubernetes 1.19; use a \
                                    token, a client certificate or an exec plugin"
            .into(),
        _ if field.contains(".exec.env[") => format!(
            "exec plugins may only set these environment variables: {}",
            ALLOWED_EXEC_ENV.join(", ")
        ),
        _ => "unknown field (not part of the kubeconfig format accepted here)".into(),
    }
}

/// Validates an untrusted kubeconfig (YAML text) and picks the context (the
/// given one, else current-context).
pub fn validate_kubeconfig(
    yaml: &str,
    context: Option<&str>,
    policy: &KubeconfigPolicy,
) -> Result<ValidatedKubeconfig, KubeconfigError> {
    validate(yaml, context, policy).map(|(validated, _)| validated)
}

/// [`validate_kubeconfig`], also returning the minimized document as a value.
pub(crate) fn validate(
    text: &str,
    context: Option<&str>,
    policy: &KubeconfigPolicy,
) -> Result<(ValidatedKubeconfig, Value), KubeconfigError> {
    if text.len() > MAX_KUBECONFIG_BYTES {
        return Err(parse_error(format!(
            "it is larger than {} MiB",
            MAX_KUBECONFIG_BYTES / (1024 * 1024)
        )));
    }
    let document = yaml::parse_document(text).map_err(|e| parse_error(e.to_string()))?;
    let Value::Object(top) = document else {
        return Err(parse_error(
            "a kubeconfig is a YAML mapping with clusters, users and contexts".into(),
        ));
    };
    for (key, value) in &top {
        match key.as_str() {
            "clusters" | "users" | "contexts" | "current-context" | "preferences"
            | "extensions" => {}
            "kind" if value.is_null() || value == "Config" => {}
            "apiVersion" if value.is_null() || value == "v1" => {}
            "kind" => return Err(parse_error("its kind is not `Config`".into())),
            "apiVersion" => return Err(parse_error("its apiVersion is not `v1`".into())),
            _ => {
                return Err(KubeconfigError::UnsupportedField { field: key.clone() });
            }
        }
    }
    let clusters = named_list(&top, "clusters")?;
    let users = named_list(&top, "users")?;
    let contexts = named_list(&top, "contexts")?;

    let context_name = match context.filter(|c| !c.is_empty()) {
        Some(name) => name.to_owned(),
        None => match string_at(&top, "current-context", "current-context")? {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => return Err(KubeconfigError::MissingContext),
        },
    };
    let context_entry = find(&contexts, "contexts", &context_name)?.ok_or_else(|| {
        KubeconfigError::UnknownContext {
            context: context_name.clone(),
        }
    })?;
    let CheckedContext {
        kept: context_out,
        cluster: cluster_name,
        user: user_name,
    } = check_context(&context_name, context_entry)?;

    let cluster_field = format!("contexts[{context_name}].context.cluster");
    let cluster_entry = find(&clusters, "clusters", &cluster_name)?.ok_or_else(|| {
        KubeconfigError::MissingCluster {
            field: cluster_field,
            name: cluster_name.clone(),
        }
    })?;
    let (cluster_out, server_url) = check_cluster(&cluster_name, cluster_entry)?;

    let mut users_out = Vec::new();
    let mut exec_command = None;
    if let Some(user_name) = &user_name {
        let user_field = format!("contexts[{context_name}].context.user");
        let user_entry =
            find(&users, "users", user_name)?.ok_or_else(|| KubeconfigError::MissingUser {
                field: user_field,
                name: user_name.clone(),
            })?;
        let (user_out, command) = check_user(user_name, user_entry, policy)?;
        exec_command = command;
        users_out.push(json!({"name": user_name, "user": user_out}));
    }
    let exec_server_pattern = match &exec_command {
        None => None,
        Some(command) => Some(
            policy
                .server_pattern(command, &server_url)
                .cloned()
                .ok_or_else(|| KubeconfigError::ExecServerNotAllowed {
                    field: format!("clusters[{cluster_name}].cluster.server"),
                    command: command.clone(),
                    patterns: policy.patterns_of(command),
                })?,
        ),
    };

    let minimized = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster_out}],
        "users": users_out,
        "contexts": [{"name": context_name, "context": context_out}],
        "current-context": context_name,
    });
    // kube reads exactly this document later: make sure it can, now
    if serde_json::from_value::<kube::config::Kubeconfig>(minimized.clone()).is_err() {
        return Err(parse_error(
            "the chosen context does not match the kubeconfig schema".into(),
        ));
    }
    let validated = ValidatedKubeconfig {
        context: context_name,
        server_url,
        exec_command,
        exec_server_pattern,
        minimized_yaml: yaml::to_string(&minimized),
    };
    Ok((validated, minimized))
}

fn parse_error(message: String) -> KubeconfigError {
    KubeconfigError::Parse { message }
}

fn invalid(field: impl Into<String>, reason: &'static str) -> KubeconfigError {
    KubeconfigError::InvalidField {
        field: field.into(),
        reason,
    }
}

fn unsupported(field: impl Into<String>) -> KubeconfigError {
    KubeconfigError::UnsupportedField {
        field: field.into(),
    }
}

/// One entry of `clusters`, `users` or `contexts`: its name and the whole entry.
struct Named<'a> {
    name: &'a str,
    entry: &'a Map<String, Value>,
}

/// Reads a list of named entries, checking only their shape.
fn named_list<'a>(
    top: &'a Map<String, Value>,
    list: &str,
) -> Result<Vec<Named<'a>>, KubeconfigError> {
    let items = match top.get(list) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid(list, "must be a list")),
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| match item {
            Value::Object(entry) => match entry.get("name") {
                Some(Value::String(name)) => Ok(Named { name, entry }),
                _ => Err(invalid(format!("{list}[{index}].name"), "must be a string")),
            },
            _ => Err(invalid(
                format!("{list}[{index}]"),
                "must be a mapping with a name",
            )),
        })
        .collect()
}

/// The entry of that name; an error if the name appears more than once (which
/// one a client would pick differs between implementations).
fn find<'a>(
    entries: &[Named<'a>],
    list: &str,
    name: &str,
) -> Result<Option<&'a Map<String, Value>>, KubeconfigError> {
    let mut found = entries.iter().filter(|named| named.name == name);
    match (found.next(), found.next()) {
        (Some(named), None) => Ok(Some(named.entry)),
        (None, _) => Ok(None),
        (Some(_), Some(_)) => Err(invalid(format!("{list}[{name}]"), "appears more than once")),
    }
}

/// The payload of a named entry (`cluster`, `user`, `context`), refusing any
/// other key beside `name`.
fn payload(
    entry: &Map<String, Value>,
    prefix: &str,
    key: &str,
) -> Result<Map<String, Value>, KubeconfigError> {
    for other in entry.keys() {
        if other != "name" && other != key {
            return Err(unsupported(format!("{prefix}.{other}")));
        }
    }
    match entry.get(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err(invalid(format!("{prefix}.{key}"), "must be a mapping")),
    }
}

fn string_at<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a str>, KubeconfigError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

fn expect_string<'a>(value: &'a Value, field: &str) -> Result<&'a str, KubeconfigError> {
    value
        .as_str()
        .ok_or_else(|| invalid(field, "must be a string"))
}

fn expect_bool(value: &Value, field: &str) -> Result<bool, KubeconfigError> {
    value
        .as_bool()
        .ok_or_else(|| invalid(field, "must be true or false"))
}

fn expect_list<'a>(value: &'a Value, field: &str) -> Result<&'a Vec<Value>, KubeconfigError> {
    value
        .as_array()
        .ok_or_else(|| invalid(field, "must be a list"))
}

/// `extensions`: a list of `{name, extension}` entries, kept as they are.
fn check_extensions(value: &Value, field: &str) -> Result<Value, KubeconfigError> {
    for (index, item) in expect_list(value, field)?.iter().enumerate() {
        let item_field = format!("{field}[{index}]");
        let Value::Object(entry) = item else {
            return Err(invalid(
                item_field,
                "must be a mapping with name and extension",
            ));
        };
        string_at(entry, "name", &format!("{item_field}.name"))?
            .ok_or_else(|| invalid(format!("{item_field}.name"), "is required"))?;
        if let Some(other) = entry.keys().find(|k| *k != "name" && *k != "extension") {
            return Err(unsupported(format!("{item_field}.{other}")));
        }
    }
    Ok(value.clone())
}

fn expect_strings(value: &Value, field: &str) -> Result<Vec<String>, KubeconfigError> {
    expect_list(value, field)?
        .iter()
        .enumerate()
        .map(|(i, item)| expect_string(item, &format!("{field}[{i}]")).map(str::to_owned))
        .collect()
}

/// The chosen context as checked: what is kept, and the names it points at.
struct CheckedContext {
    kept: Map<String, Value>,
    cluster: String,
    user: Option<String>,
}

/// Checks the chosen context.
fn check_context(
    name: &str,
    entry: &Map<String, Value>,
) -> Result<CheckedContext, KubeconfigError> {
    let prefix = format!("contexts[{name}]");
    let context = payload(entry, &prefix, "context")?;
    let at = |key: &str| format!("{prefix}.context.{key}");
    let mut out = Map::new();
    let mut cluster = None;
    let mut user = None;
    for (key, value) in &context {
        if value.is_null() {
            continue;
        }
        let field = at(key);
        match key.as_str() {
            "cluster" => cluster = Some(expect_string(value, &field)?.to_owned()),
            "user" => user = Some(expect_string(value, &field)?.to_owned()),
            "namespace" => {
                out.insert(key.clone(), json!(expect_string(value, &field)?));
            }
            "extensions" => {
                out.insert(key.clone(), check_extensions(value, &field)?);
            }
            _ => return Err(unsupported(field)),
        }
    }
    let cluster = cluster
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid(at("cluster"), "is required"))?;
    let user = user.filter(|u| !u.is_empty());
    let mut kept = Map::new();
    kept.insert("cluster".into(), json!(cluster));
    if let Some(user) = &user {
        kept.insert("user".into(), json!(user));
    }
    kept.extend(out);
    Ok(CheckedContext {
        kept,
        cluster,
        user,
    })
}

/// Checks the chosen cluster: returns what is kept and the server URL.
fn check_cluster(
    name: &str,
    entry: &Map<String, Value>,
) -> Result<(Map<String, Value>, String), KubeconfigError> {
    let prefix = format!("clusters[{name}]");
    let cluster = payload(entry, &prefix, "cluster")?;
    let at = |key: &str| format!("{prefix}.cluster.{key}");
    let mut out = Map::new();
    let mut server = None;
    for (key, value) in &cluster {
        if value.is_null() {
            continue;
        }
        let field = at(key);
        match key.as_str() {
            "server" => server = Some(check_server(expect_string(value, &field)?, &field)?),
            "certificate-authority-data" => {
                let data = pem_data(value, &field, Pem::Certificates)?;
                out.insert(key.clone(), json!(data));
            }
            "certificate-authority" => return Err(KubeconfigError::FileReference { field }),
            "tls-server-name" => {
                out.insert(key.clone(), json!(expect_string(value, &field)?));
            }
            "disable-compression" => {
                out.insert(key.clone(), json!(expect_bool(value, &field)?));
            }
            "insecure-skip-tls-verify" => {
                if expect_bool(value, &field)? {
                    return Err(unsupported(field));
                }
            }
            "extensions" => {
                out.insert(key.clone(), check_extensions(value, &field)?);
            }
            _ => return Err(unsupported(field)),
        }
    }
    let server = server.ok_or_else(|| KubeconfigError::MissingServer {
        field: at("server"),
    })?;
    let mut kept = Map::new();
    kept.insert("server".into(), json!(server));
    kept.extend(out);
    Ok((kept, server))
}

fn check_server(url: &str, field: &str) -> Result<String, KubeconfigError> {
    let url = url.trim();
    if url.is_empty() {
        return Err(KubeconfigError::MissingServer {
            field: field.to_owned(),
        });
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|_| invalid(field, "is not a valid URL"))?;
    if uri.scheme_str() != Some("https") {
        return Err(invalid(
            field,
            "must be an https:// URL (credentials are never sent in clear text)",
        ));
    }
    let Some(authority) = uri.authority() else {
        return Err(invalid(field, "is not a valid URL"));
    };
    if authority.as_str().contains('@') {
        return Err(invalid(field, "must not carry a user name or password"));
    }
    if authority.host().is_empty() {
        return Err(invalid(field, "is not a valid URL"));
    }
    if uri.query().is_some() {
        return Err(invalid(field, "must not carry a query string"));
    }
    Ok(url.to_owned())
}

#[derive(Clone, Copy)]
enum Pem {
    Certificates,
    PrivateKey,
}

/// Checks that a `*-data` field is base64 of PEM and returns it without line breaks.
fn pem_data(value: &Value, field: &str, kind: Pem) -> Result<String, KubeconfigError> {
    let text = expect_string(value, field)?;
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let reason = match kind {
        Pem::Certificates => "must be base64-encoded PEM certificates",
        Pem::PrivateKey => "must be a base64-encoded PEM private key",
    };
    let decoded = BASE64
        .decode(&compact)
        .map_err(|_| invalid(field, reason))?;
    let contains = |needle: &[u8]| decoded.windows(needle.len()).any(|w| w == needle);
    let ok = match kind {
        Pem::Certificates => contains(b"-----BEGIN CERTIFICATE-----"),
        Pem::PrivateKey => contains(b"-----BEGIN ") && contains(b"PRIVATE KEY-----"),
    };
    if ok {
        Ok(compact)
    } else {
        Err(invalid(field, reason))
    }
}

/// Checks the chosen user: returns what is kept and the exec command, if any.
fn check_user(
    name: &str,
    entry: &Map<String, Value>,
    policy: &KubeconfigPolicy,
) -> Result<(Map<String, Value>, Option<String>), KubeconfigError> {
    let prefix = format!("users[{name}]");
    let user = payload(entry, &prefix, "user")?;
    let base = format!("{prefix}.user");
    let at = |key: &str| format!("{base}.{key}");
    let mut out = Map::new();
    let mut exec_command = None;
    for (key, value) in &user {
        if value.is_null() {
            continue;
        }
        let field = at(key);
        match key.as_str() {
            "token" => {
                let token = expect_string(value, &field)?.trim();
                if token.is_empty() {
                    return Err(invalid(field, "is empty"));
                }
                if !token.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(invalid(
                        field,
                        "must be printable ASCII without spaces (an HTTP header value)",
                    ));
                }
                out.insert(key.clone(), json!(token));
            }
            "client-certificate-data" => {
                let data = pem_data(value, &field, Pem::Certificates)?;
                out.insert(key.clone(), json!(data));
            }
            "client-key-data" => {
                let data = pem_data(value, &field, Pem::PrivateKey)?;
                out.insert(key.clone(), json!(data));
            }
            "client-certificate" | "client-key" | "tokenFile" => {
                return Err(KubeconfigError::FileReference { field });
            }
            "auth-provider" => return Err(KubeconfigError::AuthProvider { field }),
            "username" | "password" => return Err(unsupported(field)),
            "exec" => {
                let (exec, command) = check_exec(&base, value, policy)?;
                out.insert(key.clone(), Value::Object(exec));
                exec_command = Some(command);
            }
            "as" | "as-uid" => {
                out.insert(key.clone(), json!(expect_string(value, &field)?));
            }
            "as-groups" => {
                out.insert(key.clone(), json!(expect_strings(value, &field)?));
            }
            "as-user-extra" => {
                let Value::Object(extra) = value else {
                    return Err(invalid(field, "must be a mapping"));
                };
                for (extra_key, values) in extra {
                    expect_strings(values, &format!("{field}.{extra_key}"))?;
                }
                out.insert(key.clone(), value.clone());
            }
            "extensions" => {
                out.insert(key.clone(), check_extensions(value, &field)?);
            }
            _ => return Err(unsupported(field)),
        }
    }
    match (
        out.contains_key("client-certificate-data"),
        out.contains_key("client-key-data"),
    ) {
        (true, false) => {
            return Err(invalid(
                at("client-key-data"),
                "is required with client-certificate-data",
            ));
        }
        (false, true) => {
            return Err(invalid(
                at("client-certificate-data"),
                "is required with client-key-data",
            ));
        }
        _ => {}
    }
    Ok((out, exec_command))
}

/// Whether an exec argument names a file on the server.
fn is_path_argument(arg: &str) -> bool {
    let (flag, value) = match arg.split_once('=') {
        Some((flag, value)) if arg.starts_with('-') => (flag, value),
        _ if arg.starts_with('-') => (arg, ""),
        _ => ("", arg),
    };
    let flag = flag.trim_start_matches('-').to_ascii_lowercase();
    let path_flag = flag.starts_with("cli-input")
        || flag.split(['-', '_']).any(|word| {
            matches!(
                word,
                "file" | "dir" | "path" | "certificate" | "bundle" | "cache" | "kubeconfig"
            )
        });
    let path_value = value.starts_with(['/', '~', '\\'])
        || value.starts_with("./")
        || value.starts_with("../")
        || value == "."
        || value == ".."
        || value.to_ascii_lowercase().starts_with("file:")
        || value.to_ascii_lowercase().starts_with("fileb:");
    path_flag || path_value
}

fn check_exec(
    base: &str,
    value: &Value,
    policy: &KubeconfigPolicy,
) -> Result<(Map<String, Value>, String), KubeconfigError> {
    let prefix = format!("{base}.exec");
    let at = |key: &str| format!("{prefix}.{key}");
    let Value::Object(exec) = value else {
        return Err(invalid(prefix, "must be a mapping"));
    };
    let command = string_at(exec, "command", &at("command"))?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| invalid(at("command"), "is required"))?;
    if !policy.allows(command) {
        return Err(KubeconfigError::ExecNotAllowed {
            field: at("command"),
            command: shorten(command, 100),
        });
    }
    let mut api_version = None;
    let mut args = Vec::new();
    let mut env = Vec::new();
    let mut provide_cluster_info = None;
    for (key, value) in exec {
        if value.is_null() {
            continue;
        }
        let field = at(key);
        match key.as_str() {
            "command" => {}
            "apiVersion" => {
                let version = expect_string(value, &field)?;
                if !matches!(
                    version,
                    "client.authentication.k8s.io/v1" | "client.authentication.k8s.io/v1beta1"
                ) {
                    return Err(invalid(
                        field,
                        "must be client.authentication.k8s.io/v1 or client.authentication.k8s.io/v1beta1",
                    ));
                }
                api_version = Some(version.to_owned());
            }
            "args" => {
                args = expect_strings(value, &field)?;
                if let Some(index) = args.iter().position(|arg| is_path_argument(arg)) {
                    return Err(KubeconfigError::FileReference {
                        field: format!("{field}[{index}]"),
                    });
                }
            }
            "env" => {
                for (index, item) in expect_list(value, &field)?.iter().enumerate() {
                    let item_field = format!("{field}[{index}]");
                    let Value::Object(pair) = item else {
                        return Err(invalid(item_field, "must be a mapping with name and value"));
                    };
                    if let Some(other) = pair.keys().find(|k| *k != "name" && *k != "value") {
                        return Err(unsupported(format!("{item_field}.{other}")));
                    }
                    let name = string_at(pair, "name", &format!("{item_field}.name"))?
                        .ok_or_else(|| invalid(format!("{item_field}.name"), "is required"))?;
                    let value = string_at(pair, "value", &format!("{item_field}.value"))?
                        .unwrap_or_default();
                    if !ALLOWED_EXEC_ENV.contains(&name) {
                        return Err(unsupported(format!("{item_field}.name")));
                    }
                    env.push(json!({"name": name, "value": value}));
                }
            }
            "provideClusterInfo" => provide_cluster_info = Some(expect_bool(value, &field)?),
            "interactiveMode" => {
                let mode = expect_string(value, &field)?;
                if !matches!(mode, "Never" | "IfAvailable" | "Always") {
                    return Err(invalid(field, "must be Never, IfAvailable or Always"));
                }
            }
            "installHint" => {
                expect_string(value, &field)?;
            }
            _ => return Err(unsupported(field)),
        }
    }
    let api_version = api_version.ok_or_else(|| invalid(at("apiVersion"), "is required"))?;
    if let Err(expected) = exec::check_arguments(command, &args) {
        return Err(KubeconfigError::ExecArguments {
            field: at("args"),
            command: command.to_owned(),
            expected,
        });
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), json!(api_version));
    out.insert("command".into(), json!(command));
    if !args.is_empty() {
        out.insert("args".into(), json!(args));
    }
    if !env.is_empty() {
        out.insert("env".into(), Value::Array(env));
    }
    if let Some(provide) = provide_cluster_info {
        out.insert("provideClusterInfo".into(), json!(provide));
    }
    out.insert("interactiveMode".into(), json!("Never"));
    Ok((out, command.to_owned()))
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token that must never show up in errors or Debug output.
    const TOKEN: &str = "s3cr3t-token-0123456789";

    fn pem(label: &str) -> String {
        BASE64.encode(format!(
            "-----BEGIN {label}-----\nMIIBfakefakefake\n-----END {label}-----\n"
        ))
    }

    fn ca() -> String {
        pem("CERTIFICATE")
    }

    /// A kubeconfig with one context `prod` → cluster `prod`, user `admin`;
    /// `cluster` and `user` are the lines (indented by four) of their payloads.
    fn config(cluster: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster:\n{cluster}users:\n\
             - name: admin\n  user:\n{user}contexts:\n- name: prod\n  context:\n    cluster: prod\n\
             \x20   user: admin\ncurrent-context: prod\n"
        )
    }

    fn server_and_ca() -> String {
        format!(
            "    server: https://prod.example.com:6443\n    certificate-authority-data: {}\n",
            ca()
        )
    }

    fn with_user(user: &str) -> String {
        config(&server_and_ca(), user)
    }

    fn token_user() -> String {
        format!("    token: {TOKEN}\n")
    }

    fn with_cluster(cluster_extra: &str) -> String {
        config(
            &format!("{}{cluster_extra}", server_and_ca()),
            &token_user(),
        )
    }

    fn exec_user(command: &str, args: &[&str], extra: &str) -> String {
        let args = args
            .iter()
            .map(|a| format!("      - \"{a}\"\n"))
            .collect::<String>();
        format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: \"{command}\"\n      args:\n{args}{extra}"
        )
    }

    const PROD: &str = "https://prod.example.com:6443";

    /// The default policy, with every default plugin also allowed to talk
    /// to [`PROD`].
    fn test_policy() -> KubeconfigPolicy {
        let mut policy = KubeconfigPolicy::default();
        for plugin in DEFAULT_EXEC_COMMANDS {
            policy
                .exec_server_patterns
                .push(ExecServerPattern::new(plugin, PROD).unwrap());
        }
        policy
    }

    enum Want {
        Accepted {
            context: &'static str,
            server: &'static str,
            exec: Option<&'static str>,
        },
        Refused(KubeconfigError, Option<String>),
    }

    fn accepted(exec: Option<&'static str>) -> Want {
        Want::Accepted {
            context: "prod",
            server: PROD,
            exec,
        }
    }

    fn check(input: (&str, Option<&str>), expected: Want) {
        let (yaml, context) = input;
        let result = validate_kubeconfig(yaml, context, &test_policy());
        match (result, expected) {
            (
                Ok(validated),
                Want::Accepted {
                    context,
                    server,
                    exec,
                },
            ) => {
                assert_eq!(
                    (
                        validated.context.as_str(),
                        validated.server_url.as_str(),
                        validated.exec_command.as_deref()
                    ),
                    (context, server, exec),
                    "{yaml}"
                );
                // what is stored validates again to the same result
                let again = validate_kubeconfig(&validated.minimized_yaml, None, &test_policy())
                    .expect("the minimized kubeconfig validates");
                assert_eq!(again, validated, "{}", validated.minimized_yaml);
            }
            (Err(error), Want::Refused(want, field)) => {
                assert_eq!(error, want, "{yaml}");
                assert_eq!(error.field(), field.as_deref(), "{error}");
                for shown in [error.to_string(), format!("{error:?}")] {
                    assert!(!shown.contains(TOKEN), "{shown}");
                    assert!(!shown.contains(&ca()), "{shown}");
                }
            }
            (Ok(validated), Want::Refused(want, _)) => {
                panic!("accepted {validated:?}, expected {want:?}\n{yaml}")
            }
            (Err(error), Want::Accepted { .. }) => panic!("refused: {error}\n{yaml}"),
        }
    }

    fn file_reference(field: &str) -> Want {
        Want::Refused(
            KubeconfigError::FileReference {
                field: field.into(),
            },
            Some(field.into()),
        )
    }

    fn unsupported_field(field: &str) -> Want {
        Want::Refused(
            KubeconfigError::UnsupportedField {
                field: field.into(),
            },
            Some(field.into()),
        )
    }

    fn invalid_field(field: &str, reason: &'static str) -> Want {
        Want::Refused(
            KubeconfigError::InvalidField {
                field: field.into(),
                reason,
            },
            Some(field.into()),
        )
    }

    fn parse_error(message: &str) -> Want {
        Want::Refused(
            KubeconfigError::Parse {
                message: message.into(),
            },
            None,
        )
    }

    #[test]
    fn file_references_are_refused() {
        check(
            (
                &config(
                    "    server: https://prod.example.com:6443\n    certificate-authority: /etc/kubernetes/ca.crt\n",
                    &token_user(),
                ),
                None,
            ),
            file_reference("clusters[prod].cluster.certificate-authority"),
        );
        check(
            (
                &with_user(&format!(
                    "    client-certificate: admin.crt\n    client-key-data: {}\n",
                    pem("PRIVATE KEY")
                )),
                None,
            ),
            file_reference("users[admin].user.client-certificate"),
        );
        check(
            (
                &with_user(&format!(
                    "    client-certificate-data: {}\n    client-key: /home/me/.kube/admin.key\n",
                    ca()
                )),
                None,
            ),
            file_reference("users[admin].user.client-key"),
        );
        check(
            (
                &with_user("    tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token\n"),
                None,
            ),
            file_reference("users[admin].user.tokenFile"),
        );
        check(
            (
                &with_user(&exec_user(
                    "aws",
                    &["--ca-bundle", "/etc/ssl/evil.pem", "eks", "get-token"],
                    "",
                )),
                None,
            ),
            file_reference("users[admin].user.exec.args[0]"),
        );
        check(
            (
                &with_user(&exec_user(
                    "kubelogin",
                    &["get-token", "--token-cache-dir=cache"],
                    "",
                )),
                None,
            ),
            file_reference("users[admin].user.exec.args[1]"),
        );
        check(
            (
                &with_user(&exec_user(
                    "aws",
                    &["eks", "get-token", "--cli-input-json", "file://x.json"],
                    "",
                )),
                None,
            ),
            file_reference("users[admin].user.exec.args[2]"),
        );
    }

    #[test]
    fn exec_plugins_off_the_allow_list_are_refused() {
        let not_allowed = |command: &str| {
            Want::Refused(
                KubeconfigError::ExecNotAllowed {
                    field: "users[admin].user.exec.command".into(),
                    command: command.into(),
                },
                Some("users[admin].user.exec.command".into()),
            )
        };
        check(
            (
                &with_user(&exec_user("curl", &["https://evil.example.com"], "")),
                None,
            ),
            not_allowed("curl"),
        );
        check(
            (&with_user(&exec_user("/tmp/evil", &[], "")), None),
            not_allowed("/tmp/evil"),
        );
        check(
            (
                &with_user(&exec_user("./aws", &["eks", "get-token"], "")),
                None,
            ),
            not_allowed("./aws"),
        );
        check(
            (
                &with_user(&exec_user("aws", &["s3", "cp", "s3://bucket/x", "-"], "")),
                None,
            ),
            Want::Refused(
                KubeconfigError::ExecArguments {
                    field: "users[admin].user.exec.args".into(),
                    command: "aws".into(),
                    expected: "aws [--region R] [--profile P] … eks get-token …",
                },
                Some("users[admin].user.exec.args".into()),
            ),
        );
        check(
            (
                &with_user(&exec_user("kubelogin", &["convert-kubeconfig"], "")),
                None,
            ),
            Want::Refused(
                KubeconfigError::ExecArguments {
                    field: "users[admin].user.exec.args".into(),
                    command: "kubelogin".into(),
                    expected: "kubelogin get-token …",
                },
                Some("users[admin].user.exec.args".into()),
            ),
        );
        check(
            (
                &with_user(&exec_user(
                    "aws",
                    &["eks", "get-token"],
                    "      env:\n      - name: LD_PRELOAD\n        value: /tmp/x.so\n",
                )),
                None,
            ),
            unsupported_field("users[admin].user.exec.env[0].name"),
        );
        check(
            (
                &with_user(&exec_user(
                    "gke-gcloud-auth-plugin",
                    &[],
                    "      env:\n      - name: PATH\n        value: /tmp\n",
                )),
                None,
            ),
            unsupported_field("users[admin].user.exec.env[0].name"),
        );
        check(
            (
                &with_user("    exec:\n      command: aws\n      args: [eks, get-token]\n"),
                None,
            ),
            invalid_field("users[admin].user.exec.apiVersion", "is required"),
        );
    }

    #[test]
    fn exec_plugins_only_talk_to_their_clouds_endpoints() {
        let defaults = KubeconfigPolicy::default();
        let user_of = |command: &str| match command {
            "aws" => exec_user("aws", &["eks", "get-token", "--cluster-name", "victim"], ""),
            "kubelogin" => exec_user("kubelogin", &["get-token", "--server-id", "any"], ""),
            other => exec_user(other, &[], ""),
        };
        let at = |server: &str, command: &str| {
            config(
                &format!(
                    "    server: {server}\n    certificate-authority-data: {}\n",
                    ca()
                ),
                &user_of(command),
            )
        };
        for (server, command, ok) in [
            ("https://evil.example.com", "aws", false),
            ("https://127.0.0.1:6443", "aws", false),
            ("https://10.0.0.1", "gke-gcloud-auth-plugin", false),
            ("https://evil.example.com", "kubelogin", false),
            ("https://a1b2.gr7.us-east-1.eks.amazonaws.com", "aws", true),
            (
                "https://a1b2.gr7.us-east-1.eks.amazonaws.com",
                "kubelogin",
                false,
            ),
            (
                "https://prod-dns-1.hcp.westeurope.azmk8s.io:443",
                "kubelogin",
                true,
            ),
            (
                "https://gke-0123.us-central1.gke.goog",
                "gke-gcloud-auth-plugin",
                true,
            ),
        ] {
            let result = validate_kubeconfig(&at(server, command), None, &defaults);
            match result {
                Ok(validated) => {
                    assert!(ok, "{command} at {server} was accepted");
                    assert_eq!(validated.exec_command.as_deref(), Some(command));
                    assert!(validated.exec_server_pattern.is_some());
                }
                Err(error) => {
                    assert!(!ok, "{command} at {server}: {error}");
                    assert_eq!(error.field(), Some("clusters[prod].cluster.server"));
                    assert!(
                        matches!(&error, KubeconfigError::ExecServerNotAllowed { command: c, .. } if c == command),
                        "{error}"
                    );
                    assert!(
                        error.to_string().contains("--exec-server-pattern"),
                        "{error}"
                    );
                }
            }
        }
        // an operator lists an IP endpoint for one plugin; its built-in
        // patterns are replaced, the other plugins keep theirs
        let policy = KubeconfigPolicy::default().with_exec_server_patterns(vec![
            "gke-gcloud-auth-plugin=https://10.0.0.1".parse().unwrap(),
        ]);
        let stored = validate_kubeconfig(
            &at("https://10.0.0.1", "gke-gcloud-auth-plugin"),
            None,
            &policy,
        )
        .expect("listed by the operator");
        assert!(
            validate_kubeconfig(
                &at(
                    "https://gke-0123.us-central1.gke.goog",
                    "gke-gcloud-auth-plugin"
                ),
                None,
                &policy
            )
            .is_err()
        );
        assert!(
            validate_kubeconfig(
                &at("https://a1b2.gr7.us-east-1.eks.amazonaws.com", "aws"),
                None,
                &policy
            )
            .is_ok()
        );
        // stored credentials are checked again under today's policy
        let error = validate_kubeconfig(&stored.minimized_yaml, None, &defaults).unwrap_err();
        assert!(
            matches!(error, KubeconfigError::ExecServerNotAllowed { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_path_command_is_refused_even_when_listed() {
        let policy = KubeconfigPolicy {
            allowed_exec_commands: vec!["/usr/bin/aws".into()],
            exec_server_patterns: vec![
                ExecServerPattern::new("/usr/bin/aws", PROD)
                    .unwrap_or_else(|_| ExecServerPattern::new("aws", PROD).unwrap()),
            ],
        };
        let yaml = with_user(&exec_user("/usr/bin/aws", &["eks", "get-token"], ""));
        let error = validate_kubeconfig(&yaml, None, &policy).unwrap_err();
        assert_eq!(
            error,
            KubeconfigError::ExecNotAllowed {
                field: "users[admin].user.exec.command".into(),
                command: "/usr/bin/aws".into()
            }
        );
    }

    #[test]
    fn an_operator_can_allow_another_plugin() {
        let policy = KubeconfigPolicy {
            allowed_exec_commands: vec!["my-sso-helper".into()],
            exec_server_patterns: vec![ExecServerPattern::new("my-sso-helper", PROD).unwrap()],
        };
        let yaml = with_user(&exec_user("my-sso-helper", &["login", "--quiet"], ""));
        let validated = validate_kubeconfig(&yaml, None, &policy).unwrap();
        assert_eq!(validated.exec_command.as_deref(), Some("my-sso-helper"));
        let error = validate_kubeconfig(
            &with_user(&exec_user("aws", &["eks", "get-token"], "")),
            None,
            &policy,
        )
        .unwrap_err();
        assert!(
            matches!(error, KubeconfigError::ExecNotAllowed { .. }),
            "{error}"
        );
    }

    #[test]
    fn risky_or_legacy_fields_are_refused() {
        check(
            (
                &with_user(
                    "    auth-provider:\n      name: gcp\n      config:\n        cmd-path: /usr/bin/gcloud\n",
                ),
                None,
            ),
            Want::Refused(
                KubeconfigError::AuthProvider {
                    field: "users[admin].user.auth-provider".into(),
                },
                Some("users[admin].user.auth-provider".into()),
            ),
        );
        check(
            (&with_cluster("    insecure-skip-tls-verify: true\n"), None),
            unsupported_field("clusters[prod].cluster.insecure-skip-tls-verify"),
        );
        check(
            (
                &with_cluster("    proxy-url: http://proxy.internal:3128\n"),
                None,
            ),
            unsupported_field("clusters[prod].cluster.proxy-url"),
        );
        check(
            (
                &with_user("    username: admin\n    password: hunter2\n"),
                None,
            ),
            unsupported_field("users[admin].user.username"),
        );
        check(
            (&with_cluster("    certificate-authority-dta: x\n"), None),
            unsupported_field("clusters[prod].cluster.certificate-authority-dta"),
        );
        check(
            (&format!("{}\nmystery: 1\n", with_user(&token_user())), None),
            unsupported_field("mystery"),
        );
    }

    #[test]
    fn contexts_clusters_users_and_servers_must_resolve() {
        let no_current = with_user(&token_user()).replace("current-context: prod\n", "");
        check(
            (&no_current, None),
            Want::Refused(
                KubeconfigError::MissingContext,
                Some("current-context".into()),
            ),
        );
        check(
            (&with_user(&token_user()), Some("staging")),
            Want::Refused(
                KubeconfigError::UnknownContext {
                    context: "staging".into(),
                },
                Some("contexts".into()),
            ),
        );
        check(
            (
                &with_user(&token_user()).replace("    cluster: prod\n", "    cluster: gone\n"),
                None,
            ),
            Want::Refused(
                KubeconfigError::MissingCluster {
                    field: "contexts[prod].context.cluster".into(),
                    name: "gone".into(),
                },
                Some("contexts[prod].context.cluster".into()),
            ),
        );
        check(
            (
                &with_user(&token_user()).replace("    user: admin\n", "    user: nobody\n"),
                None,
            ),
            Want::Refused(
                KubeconfigError::MissingUser {
                    field: "contexts[prod].context.user".into(),
                    name: "nobody".into(),
                },
                Some("contexts[prod].context.user".into()),
            ),
        );
        check(
            (
                &config(
                    &format!("    certificate-authority-data: {}\n", ca()),
                    &token_user(),
                ),
                None,
            ),
            Want::Refused(
                KubeconfigError::MissingServer {
                    field: "clusters[prod].cluster.server".into(),
                },
                Some("clusters[prod].cluster.server".into()),
            ),
        );
        check(
            (
                &with_user(&token_user()).replace("https://prod", "http://prod"),
                None,
            ),
            invalid_field(
                "clusters[prod].cluster.server",
                "must be an https:// URL (credentials are never sent in clear text)",
            ),
        );
        check(
            (
                &with_user(&token_user()).replace("https://prod", "https://me:pw@prod"),
                None,
            ),
            invalid_field(
                "clusters[prod].cluster.server",
                "must not carry a user name or password",
            ),
        );
        let twice = with_user(&token_user()).replace(
            "users:\n",
            "- name: prod\n  cluster:\n    server: https://other.example.com\nusers:\n",
        );
        check(
            (&twice, None),
            invalid_field("clusters[prod]", "appears more than once"),
        );
    }

    #[test]
    fn malformed_values_are_refused_without_echoing_them() {
        check(
            (
                &config(
                    "    server: https://prod.example.com:6443\n    certificate-authority-data: s3cr3t-token-0123456789\n",
                    &token_user(),
                ),
                None,
            ),
            invalid_field(
                "clusters[prod].cluster.certificate-authority-data",
                "must be base64-encoded PEM certificates",
            ),
        );
        check(
            (
                &with_user(&format!("    client-certificate-data: {}\n", ca())),
                None,
            ),
            invalid_field(
                "users[admin].user.client-key-data",
                "is required with client-certificate-data",
            ),
        );
        check(
            (&with_user(&format!("    token: [{TOKEN}]\n")), None),
            invalid_field("users[admin].user.token", "must be a string"),
        );
        check(
            (
                &with_user(&format!("    token: \"{TOKEN} with spaces\"\n")),
                None,
            ),
            invalid_field(
                "users[admin].user.token",
                "must be printable ASCII without spaces (an HTTP header value)",
            ),
        );
    }

    #[test]
    fn malformed_extensions_are_refused() {
        check(
            (
                &with_cluster("    extensions:\n    - extension: {}\n"),
                None,
            ),
            invalid_field("clusters[prod].cluster.extensions[0].name", "is required"),
        );
        check(
            (&with_cluster("    extensions: {a: b}\n"), None),
            invalid_field("clusters[prod].cluster.extensions", "must be a list"),
        );
    }

    #[test]
    fn documents_that_are_not_kubeconfigs_are_refused() {
        check(
            (
                &format!("users:\n- name: admin\n  user:\n    token: {TOKEN}\n  - broken: ["),
                None,
            ),
            parse_error(
                "not valid YAML: while parsing a block mapping, did not find expected key (line 5, column 5)",
            ),
        );
        check(
            ("just a string\n", None),
            parse_error("a kubeconfig is a YAML mapping with clusters, users and contexts"),
        );
        check(
            ("apiVersion: v1\nkind: Secret\n", None),
            parse_error("its kind is not `Config`"),
        );
        check(
            (
                &format!(
                    "{}---\n{}",
                    with_user(&token_user()),
                    with_user(&token_user())
                ),
                None,
            ),
            parse_error("a kubeconfig is one YAML document, found several (line 18, column 1)"),
        );
        let aliased = with_user(&format!("    token: &t {TOKEN}\n    as: *t\n"));
        let error = validate_kubeconfig(&aliased, None, &test_policy()).unwrap_err();
        assert!(
            matches!(&error, KubeconfigError::Parse { message } if message.contains("aliases")),
            "{error}"
        );
        let huge = format!(
            "{}# {}\n",
            with_user(&token_user()),
            "x".repeat(MAX_KUBECONFIG_BYTES)
        );
        check((&huge, None), parse_error("it is larger than 1 MiB"));
    }

    #[test]
    fn usable_kubeconfigs_are_accepted() {
        // x509: embedded certificate and key
        check(
            (
                &with_user(&format!(
                    "    client-certificate-data: {}\n    client-key-data: {}\n",
                    ca(),
                    pem("EC PRIVATE KEY")
                )),
                None,
            ),
            accepted(None),
        );
        check((&with_user(&token_user()), None), accepted(None));
        check(
            (
                &with_user(&exec_user(
                    "aws",
                    &[
                        "--region",
                        "eu-west-1",
                        "eks",
                        "get-token",
                        "--cluster-name",
                        "prod",
                        "--role-arn",
                        "arn:aws:iam::123456789012:role/pilothouse",
                        "--output",
                        "json",
                    ],
                    "      env:\n      - name: AWS_PROFILE\n        value: prod\n      interactiveMode: IfAvailable\n      provideClusterInfo: false\n",
                )),
                None,
            ),
            accepted(Some("aws")),
        );
        check(
            (
                &with_user(&exec_user(
                    "kubelogin",
                    &[
                        "get-token",
                        "--login",
                        "azurecli",
                        "--server-id",
                        "6dae42f8-4368-4678-94ff-3960e28e3630",
                    ],
                    "",
                )),
                None,
            ),
            accepted(Some("kubelogin")),
        );
        check(
            (
                &with_user(&exec_user(
                    "gke-gcloud-auth-plugin",
                    &[],
                    "      installHint: install it\n      provideClusterInfo: true\n",
                )),
                None,
            ),
            accepted(Some("gke-gcloud-auth-plugin")),
        );
        check(
            (
                &with_user(&exec_user(
                    "aws-iam-authenticator",
                    &["token", "-i", "prod"],
                    "",
                )),
                None,
            ),
            accepted(Some("aws-iam-authenticator")),
        );
        // insecure-skip-tls-verify: false, tls-server-name, impersonation, nulls
        check(
            (
                &config(
                    &format!(
                        "{}    insecure-skip-tls-verify: false\n    tls-server-name: kubernetes\n    proxy-url:\n",
                        server_and_ca()
                    ),
                    &format!(
                        "{}    as: deployer\n    as-groups: [ops]\n    client-key:\n",
                        token_user()
                    ),
                ),
                None,
            ),
            accepted(None),
        );
        // extensions, as minikube writes them
        check(
            (
                &with_cluster(
                    "    extensions:\n    - name: cluster_info\n      extension:\n        \
                     provider: minikube.sigs.k8s.io\n        version: v1.32.0\n",
                ),
                None,
            ),
            accepted(None),
        );
        // anonymous: a context without a user
        check(
            (
                &with_user(&token_user()).replace("    user: admin\n", ""),
                None,
            ),
            accepted(None),
        );
    }

    #[test]
    fn the_chosen_context_is_kept_alone() {
        let yaml = format!(
            "apiVersion: v1\nkind: Config\npreferences: {{}}\nclusters:\n\
             - name: prod\n  cluster:\n    server: {PROD}\n    certificate-authority-data: {ca}\n\
             - name: staging\n  cluster:\n    server: https://staging.example.com\n    certificate-authority: /etc/ca.crt\n\
             - name: lab\n  cluster:\n    server: https://lab.example.com\n    certificate-authority-data: {ca}\n\
             users:\n\
             - name: admin\n  user:\n    token: {TOKEN}\n\
             - name: old\n  user:\n    auth-provider: {{name: oidc}}\n\
             - name: lab-user\n  user:\n    token: lab-token-42\n\
             contexts:\n\
             - name: prod\n  context: {{cluster: prod, user: admin}}\n\
             - name: staging\n  context: {{cluster: staging, user: old}}\n\
             - name: lab\n  context: {{cluster: lab, user: lab-user, namespace: team-a}}\n\
             current-context: prod\n",
            ca = ca()
        );
        // the other contexts' refused fields do not matter
        check(
            (&yaml, Some("lab")),
            Want::Accepted {
                context: "lab",
                server: "https://lab.example.com",
                exec: None,
            },
        );
        check((&yaml, None), accepted(None));
        let lab = validate_kubeconfig(&yaml, Some("lab"), &test_policy()).unwrap();
        assert!(
            !lab.minimized_yaml.contains(TOKEN),
            "{}",
            lab.minimized_yaml
        );
        assert!(
            !lab.minimized_yaml.contains("prod"),
            "{}",
            lab.minimized_yaml
        );
        let document = yaml::parse_document(&lab.minimized_yaml).unwrap();
        assert_eq!(
            document,
            json!({
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "lab", "cluster": {"server": "https://lab.example.com", "certificate-authority-data": ca()}}],
                "users": [{"name": "lab-user", "user": {"token": "lab-token-42"}}],
                "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab-user", "namespace": "team-a"}}],
                "current-context": "lab",
            })
        );
        // and kube's own loader reads it
        let parsed = kube::config::Kubeconfig::from_yaml(&lab.minimized_yaml).unwrap();
        assert_eq!(parsed.current_context.as_deref(), Some("lab"));
        assert_eq!(parsed.clusters.len(), 1);
        assert_eq!(parsed.auth_infos.len(), 1);
    }

    #[test]
    fn exec_plugins_are_forced_non_interactive_and_wrapped_base64_is_joined() {
        let wrapped = {
            let data = ca();
            let (a, b) = data.split_at(20);
            format!("|\n      {a}\n      {b}")
        };
        let yaml = config(
            &format!("    server: {PROD}\n    certificate-authority-data: {wrapped}\n"),
            &exec_user(
                "aws",
                &["eks", "get-token"],
                "      interactiveMode: Always\n",
            ),
        );
        let validated = validate_kubeconfig(&yaml, None, &test_policy()).unwrap();
        let document = yaml::parse_document(&validated.minimized_yaml).unwrap();
        assert_eq!(
            document["users"][0]["user"]["exec"]["interactiveMode"],
            "Never"
        );
        assert_eq!(
            document["clusters"][0]["cluster"]["certificate-authority-data"],
            ca()
        );
    }

    #[test]
    fn debug_output_hides_the_credentials() {
        let validated =
            validate_kubeconfig(&with_user(&token_user()), None, &test_policy()).unwrap();
        assert!(validated.minimized_yaml.contains(TOKEN));
        let debug = format!("{validated:?}");
        assert!(!debug.contains(TOKEN), "{debug}");
        assert!(debug.contains("prod.example.com"), "{debug}");
    }

    #[test]
    fn every_refusal_names_a_reason() {
        for error in [
            KubeconfigError::UnsupportedField {
                field: "clusters[a].cluster.proxy-url".into(),
            },
            KubeconfigError::UnsupportedField {
                field: "users[a].user.exec.env[0].name".into(),
            },
        ] {
            let text = error.to_string();
            assert!(text.contains(error.field().unwrap()), "{text}");
            assert!(!text.ends_with(": "), "{text}");
        }
        assert!(
            KubeconfigError::UnsupportedField {
                field: "users[a].user.exec.env[0].name".into()
            }
            .to_string()
            .contains("AWS_PROFILE")
        );
    }
}

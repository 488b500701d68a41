//! `/api/v1/clusters`: register, list, read, change, remove and re-check clusters.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use pilothouse_fleet::{KubeconfigError, ProbeError};
use pilothouse_store::{
    CheckRecord, Cloud, CloudSource, Cluster, ClusterQuery, ClusterSync, ClusterUpdate, NewCluster,
    SyncMode, cluster_credentials_context,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiQuery, Problem, page_limit};
use crate::{ApiError, ApiJson, AppState};

/// A registered cluster as the API shows it. Credentials are never part of it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterView {
    /// Unique name (a DNS-1123 label).
    pub name: String,
    /// `aks`, `gke`, `eks` or `other`.
    pub cloud: String,
    /// Where the cloud came from: `declared`, `detected` or `default`.
    pub cloud_source: String,
    /// The API server URL.
    pub server_url: String,
    /// The kubeconfig context used.
    pub context: String,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// The server's Kubernetes version at the last successful check.
    pub kubernetes_version: Option<String>,
    /// `unknown`, `reachable` or `unreachable`.
    pub reachability: String,
    /// The last check's error, when unreachable.
    pub last_error: Option<String>,
    /// When the cluster was last checked (RFC 3339).
    pub last_check_at: Option<String>,
    /// When the next background check is due (RFC 3339).
    pub next_check_at: Option<String>,
    /// Failed checks in a row.
    pub consecutive_failures: u32,
    /// Registration time (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// `manual`, `auto` or `self_heal`.
    pub sync_mode: String,
    /// The state of its syncs and its health.
    pub sync: ClusterSyncView,
    /// The commit that added `gitops/clusters/<name>/`, when registered
    /// with `scaffold: true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaffold_revision: Option<String>,
    /// Incident detection settings of this cluster, added to the
    /// service-wide ones (see `PatchCluster::incidents`).
    #[schema(value_type = Option<Object>)]
    pub incidents: Option<serde_json::Value>,
    /// How Pilothouse's watches of the cluster stand (on
    /// `GET /api/v1/clusters/{name}` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<ClusterWatchView>,
}

/// How the monitor's watches of one cluster stand. What it reports has been
/// processed: the incidents it changed are written.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ClusterWatchView {
    /// `running`, or `not_started` when no client could be built for the
    /// cluster (see `error`; retried).
    pub state: String,
    /// Why the watches could not start.
    pub error: Option<String>,
    /// The cluster's incident settings the running watches apply (they
    /// restart when the settings change).
    #[schema(value_type = Option<Object>)]
    pub incidents: Option<serde_json::Value>,
    /// Each watched kind: `pods`, `nodes`, `warning_events`.
    pub kinds: BTreeMap<String, KindWatchView>,
}

/// How the watch of one kind stands.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KindWatchView {
    /// `listing` (no full list since the watch started or the cluster came
    /// back), `watching`, `unreachable` or `refused` (credentials too weak).
    pub state: String,
    /// Whether a full list has been processed since the watch started.
    pub listed: bool,
    /// Full lists processed (a watch lists again after its version expired
    /// or after an outage).
    pub lists: u64,
    /// The highest resourceVersion among the objects processed: every
    /// change the cluster made up to it has been applied to incidents and
    /// written. Compare it as a number with an object's own version to know
    /// the watch has seen that object.
    pub resource_version: Option<String>,
    /// Events processed.
    pub events: u64,
    /// When the last event was processed (RFC 3339).
    pub last_event_at: Option<String>,
    /// Why the kind is unreachable or refused.
    pub message: Option<String>,
}

/// A cluster's sync state.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterSyncView {
    /// `never`, `succeeded` or `failed`: the last finished sync.
    pub status: String,
    /// The revision of the last successful sync: the one in force.
    pub revision: Option<String>,
    /// The revision the last finished sync worked on, succeeded or not.
    pub last_revision: Option<String>,
    /// The last finished sync (`/syncs/{id}`).
    pub last_sync_id: Option<i64>,
    /// When it finished (RFC 3339).
    pub last_sync_at: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Failed syncs in a row.
    pub failures: u32,
    /// When a failed sync is retried (RFC 3339).
    pub next_sync_at: Option<String>,
    /// `healthy`, `progressing`, `degraded`, `missing` or `unknown`: the
    /// worst of its objects.
    pub health: String,
    /// When health was last assessed (RFC 3339).
    pub health_checked_at: Option<String>,
}

impl From<ClusterSync> for ClusterSyncView {
    fn from(sync: ClusterSync) -> Self {
        Self {
            status: sync.status.to_string(),
            revision: sync.revision,
            last_revision: sync.last_revision,
            last_sync_id: sync.last_sync_id,
            last_sync_at: sync.last_sync_at.map(rfc3339),
            error: sync.error,
            failures: sync.failures,
            next_sync_at: sync.next_sync_at.map(rfc3339),
            health: sync.health.to_string(),
            health_checked_at: sync.health_checked_at.map(rfc3339),
        }
    }
}

impl From<Cluster> for ClusterView {
    fn from(cluster: Cluster) -> Self {
        Self {
            cloud: cluster.cloud.to_string(),
            cloud_source: cluster.cloud_source.as_str().to_owned(),
            reachability: cluster.reachability.as_str().to_owned(),
            last_check_at: cluster.last_check_at.map(rfc3339),
            next_check_at: cluster.next_check_at.map(rfc3339),
            created_at: rfc3339(cluster.created_at),
            updated_at: rfc3339(cluster.updated_at),
            name: cluster.name,
            server_url: cluster.server_url,
            context: cluster.context,
            labels: cluster.labels,
            kubernetes_version: cluster.kubernetes_version,
            last_error: cluster.last_error,
            consecutive_failures: cluster.consecutive_failures,
            sync_mode: cluster.sync.mode.to_string(),
            sync: cluster.sync.into(),
            scaffold_revision: None,
            incidents: cluster.incident_settings,
            watch: None,
        }
    }
}

/// Body of `POST /api/v1/clusters`. `Debug` leaves the kubeconfig out.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterCluster {
    /// Unique name, a DNS-1123 label (lowercase alphanumerics and `-`, at most 63).
    pub name: String,
    /// The kubeconfig, as YAML text. Untrusted: file references, legacy
    /// auth-providers and exec plugins outside the allow-list are refused.
    pub kubeconfig: String,
    /// The context to use; default: the kubeconfig's current-context.
    pub context: Option<String>,
    /// `aks`, `gke`, `eks` or `other`; detected when absent.
    pub cloud: Option<String>,
    /// Labels for filtering and routing.
    pub labels: Option<BTreeMap<String, String>>,
    /// `manual`, `auto` (default: sync every new revision) or `self_heal`
    /// (also re-apply when live objects change).
    pub sync_mode: Option<String>,
    /// Commit `gitops/clusters/<name>/kustomization.yaml` (building on the
    /// cloud's overlay) to the desired-state repository and push it before
    /// registering. A rejected push registers nothing.
    pub scaffold: Option<bool>,
}

impl std::fmt::Debug for RegisterCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterCluster")
            .field("name", &self.name)
            .field("kubeconfig", &"<redacted>")
            .field("context", &self.context)
            .field("cloud", &self.cloud)
            .field("labels", &self.labels)
            .field("sync_mode", &self.sync_mode)
            .field("scaffold", &self.scaffold)
            .finish()
    }
}

/// Body of `PATCH /api/v1/clusters/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCluster {
    /// Replaces all labels when present.
    pub labels: Option<BTreeMap<String, String>>,
    /// Changes the cloud.
    pub cloud: Option<String>,
    /// Changes the sync mode: `manual`, `auto` or `self_heal`.
    pub sync_mode: Option<String>,
    /// Replaces the cluster's incident detection settings, added to the
    /// service-wide ones: `{"exclude_namespaces": [..], "exclude_pod_names":
    /// [regex, ..], "exclude_containers": [..], "exclude_reasons":
    /// ["Restarted", ..], "pending_threshold_ms": 600000}`; `{}` removes them.
    #[schema(value_type = Option<Object>)]
    pub incidents: Option<serde_json::Value>,
}

/// Query of `GET /api/v1/clusters`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListClusters {
    /// Only clusters on this cloud.
    pub cloud: Option<String>,
    /// Only clusters with all these labels: `key=value[,key=value…]`.
    #[serde(rename = "labelSelector")]
    #[param(rename = "labelSelector")]
    pub label_selector: Option<String>,
    /// Page size, 1–500 (default 100).
    pub limit: Option<u32>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

/// A page of clusters.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterList {
    /// The clusters, by name.
    pub items: Vec<ClusterView>,
    /// Cursor for the next page (`after=`), absent on the last page.
    pub next: Option<String>,
}

/// Register a cluster: validate its kubeconfig, connect, detect the cloud, store it encrypted.
#[utoipa::path(post, path = "/api/v1/clusters", operation_id = "registerCluster", tag = "clusters",
    request_body = RegisterCluster,
    responses(
        (status = 201, description = "Registered", body = ClusterView),
        (status = 400, description = "Malformed or refused kubeconfig", body = Problem),
        (status = 409, description = "Name taken, or the scaffold push was rejected", body = Problem),
        (status = 422, description = "Cannot connect with these credentials", body = Problem),
        (status = 502, description = "The Git remote failed during the scaffold push", body = Problem),
    ))]
pub async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RegisterCluster>,
) -> Result<Response, ApiError> {
    check_name(&body.name)?;
    let labels = body.labels.unwrap_or_default();
    check_labels(&labels)?;
    let declared = body.cloud.as_deref().map(parse_cloud).transpose()?;
    let sync_mode = body
        .sync_mode
        .as_deref()
        .map(parse_sync_mode)
        .transpose()?
        .unwrap_or(SyncMode::Auto);
    if state.store.get_cluster(&body.name).await?.is_some() {
        return Err(ApiError::Conflict(format!(
            "a cluster named `{}` is already registered",
            body.name
        )));
    }
    let kubeconfig = pilothouse_fleet::validate_kubeconfig(
        &body.kubeconfig,
        body.context.as_deref(),
        &state.kubeconfig_policy,
    )
    .map_err(kubeconfig_error)?;
    let probe = pilothouse_fleet::probe(&kubeconfig, state.checks.timeout)
        .await
        .map_err(|error| probe_error(&error, &kubeconfig.server_url))?;
    let (cloud, cloud_source) = match (declared, probe.detected_cloud) {
        (Some(cloud), _) => (cloud, CloudSource::Declared),
        (None, Some(cloud)) => (cloud, CloudSource::Detected),
        (None, None) => (Cloud::Other, CloudSource::Default),
    };
    // Pushed before anything is stored: a refused push registers nothing.
    let scaffolded = match body.scaffold {
        Some(true) => Some(
            state
                .gitops
                .scaffold(body.name.clone(), cloud.to_string())
                .await?,
        ),
        _ => None,
    };
    let now = now_ms();
    let credentials = state.master_key.seal(
        kubeconfig.minimized_yaml.as_bytes(),
        &cluster_credentials_context(&body.name),
    )?;
    let cluster = state
        .store
        .insert_cluster(&NewCluster {
            name: body.name.clone(),
            cloud,
            cloud_source,
            server_url: kubeconfig.server_url.clone(),
            context: kubeconfig.context.clone(),
            labels,
            kubernetes_version: Some(probe.kubernetes_version.clone()),
            credentials,
            check: Some(CheckRecord {
                reachable: true,
                kubernetes_version: Some(probe.kubernetes_version),
                error: None,
                checked_at: now,
                next_check_at: now
                    + i64::try_from(state.checks.interval.as_millis()).unwrap_or(i64::MAX),
                consecutive_failures: 0,
            }),
            sync_mode,
        })
        .await?;
    tracing::info!(cluster = %cluster.name, cloud = %cluster.cloud, "cluster registered");
    state.incidents.clusters_changed();
    if sync_mode != SyncMode::Manual {
        // its first sync: the worker picks it up at once
        state.gitops.sync_queued();
    }
    let location = format!("/api/v1/clusters/{}", cluster.name);
    let mut view = ClusterView::from(cluster);
    view.scaffold_revision = scaffolded.map(|s| s.revision);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        ApiJson(view),
    )
        .into_response())
}

/// List clusters, filtered by cloud and labels, paginated by name.
#[utoipa::path(get, path = "/api/v1/clusters", operation_id = "listClusters", tag = "clusters", params(ListClusters),
    responses((status = 200, description = "A page of clusters", body = ClusterList),
              (status = 400, description = "Bad filter", body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListClusters>,
) -> Result<ApiJson<ClusterList>, ApiError> {
    let cloud = query.cloud.as_deref().map(parse_cloud).transpose()?;
    let labels = match query.label_selector.as_deref() {
        Some(selector) => parse_selector(selector)?,
        None => Vec::new(),
    };
    let limit = page_limit(query.limit, ClusterQuery::DEFAULT_LIMIT)?;
    let page = state
        .store
        .list_clusters(&ClusterQuery {
            cloud,
            labels,
            after: query.after,
            limit,
        })
        .await?;
    Ok(ApiJson(ClusterList {
        items: page.items.into_iter().map(ClusterView::from).collect(),
        next: page.next,
    }))
}

/// One cluster.
#[utoipa::path(get, path = "/api/v1/clusters/{name}", operation_id = "getCluster", tag = "clusters",
    params(("name" = String, Path, description = "Cluster name")),
    responses((status = 200, description = "The cluster", body = ClusterView),
              (status = 404, description = "No such cluster", body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<ApiJson<ClusterView>, ApiError> {
    let cluster = existing(&state, &name).await?;
    let mut view = ClusterView::from(cluster);
    view.watch = state.incidents.watch_state(&name);
    Ok(ApiJson(view))
}

/// Change a cluster's labels, cloud or sync mode.
#[utoipa::path(patch, path = "/api/v1/clusters/{name}", operation_id = "patchCluster", tag = "clusters",
    params(("name" = String, Path, description = "Cluster name")),
    request_body = PatchCluster,
    responses((status = 200, description = "The changed cluster", body = ClusterView),
              (status = 400, description = "Bad change", body = Problem),
              (status = 404, description = "No such cluster", body = Problem)))]
pub async fn patch(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<PatchCluster>,
) -> Result<ApiJson<ClusterView>, ApiError> {
    if let Some(labels) = &body.labels {
        check_labels(labels)?;
    }
    let cloud = body.cloud.as_deref().map(parse_cloud).transpose()?;
    let sync_mode = body.sync_mode.as_deref().map(parse_sync_mode).transpose()?;
    let incident_settings = body.incidents.map(check_incident_settings).transpose()?;
    let update = ClusterUpdate {
        labels: body.labels,
        cloud,
        sync_mode,
        incident_settings,
    };
    let cluster = state
        .store
        .update_cluster(&name, &update)
        .await?
        .ok_or_else(|| not_found(&name))?;
    Ok(ApiJson(cluster.into()))
}

/// Remove a cluster and its stored credentials.
#[utoipa::path(delete, path = "/api/v1/clusters/{name}", operation_id = "deleteCluster", tag = "clusters",
    params(("name" = String, Path, description = "Cluster name")),
    responses((status = 204, description = "Removed"),
              (status = 404, description = "No such cluster", body = Problem)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_cluster(&name).await? {
        tracing::info!(cluster = %name, "cluster removed");
        state.incidents.clusters_changed();
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&name))
    }
}

/// Re-test connectivity now; the result is recorded and returned.
#[utoipa::path(post, path = "/api/v1/clusters/{name}/check", operation_id = "checkCluster", tag = "clusters",
    params(("name" = String, Path, description = "Cluster name")),
    responses((status = 200, description = "The cluster after the check", body = ClusterView),
              (status = 404, description = "No such cluster", body = Problem)))]
pub async fn check(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<ApiJson<ClusterView>, ApiError> {
    let cluster = existing(&state, &name).await?;
    let cluster = state
        .checker
        .check_now(cluster)
        .await
        .map_err(ApiError::internal)?;
    Ok(ApiJson(cluster.into()))
}

/// What the API asks of the connectivity checker. The binary implements it;
/// the handler only calls it.
pub trait ClusterChecks: Send + Sync + 'static {
    /// Checks `cluster` now with its stored credentials and records the
    /// outcome (reachable or not); resolves with the cluster as recorded, or
    /// with why nothing could be recorded.
    fn check_now(&self, cluster: Cluster) -> crate::BoxFuture<Result<Cluster, String>>;
}

/// The named cluster, or a 404 problem.
pub(crate) async fn existing(state: &AppState, name: &str) -> Result<Cluster, ApiError> {
    state
        .store
        .get_cluster(name)
        .await?
        .ok_or_else(|| not_found(name))
}

/// Checks incident settings (unknown fields, bad patterns or reasons are
/// refused, naming the problem); `{}` becomes "no settings".
fn check_incident_settings(settings: serde_json::Value) -> Result<serde_json::Value, ApiError> {
    let config: pilothouse_incidents::DetectConfig = serde_json::from_value(settings.clone())
        .map_err(|error| ApiError::bad_field("incidents", error.to_string()))?;
    if config.pending_threshold_ms.is_some_and(|ms| ms < 0) {
        return Err(ApiError::bad_field(
            "incidents",
            "pending_threshold_ms must not be negative",
        ));
    }
    if config == pilothouse_incidents::DetectConfig::default() {
        return Ok(serde_json::Value::Null);
    }
    Ok(settings)
}

pub(crate) fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("no cluster named `{name}`"))
}

/// A DNS-1123 label: 1–63 lowercase alphanumerics or `-`, starting and ending alphanumeric.
pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_field(
            "name",
            format!(
                "`{name}` is not a DNS-1123 label (lowercase letters, digits and '-', at most 63, alphanumeric at both ends)"
            ),
        ))
    }
}

/// Kubernetes label syntax: `[prefix/]name` keys and values of at most 63 characters.
fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let segment = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
            && s.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric)
    };
    for (key, value) in labels {
        let (prefix, name) = key
            .rsplit_once('/')
            .map_or((None, key.as_str()), |(p, n)| (Some(p), n));
        let prefix_ok =
            prefix.is_none_or(|p| !p.is_empty() && p.len() <= 253 && p.split('.').all(segment));
        if !prefix_ok || !segment(name) {
            return Err(ApiError::bad_field(
                &format!("labels.{key}"),
                format!("`{key}` is not a valid label key"),
            ));
        }
        if !value.is_empty() && !segment(value) {
            return Err(ApiError::bad_field(
                &format!("labels.{key}"),
                format!("`{value}` is not a valid label value"),
            ));
        }
    }
    Ok(())
}

fn parse_cloud(text: &str) -> Result<Cloud, ApiError> {
    text.parse()
        .map_err(|error: pilothouse_store::UnknownCloud| {
            ApiError::bad_field("cloud", error.to_string())
        })
}

fn parse_sync_mode(text: &str) -> Result<SyncMode, ApiError> {
    text.parse()
        .map_err(|error: String| ApiError::bad_field("sync_mode", error))
}

/// `k=v,k2=v2` into pairs.
fn parse_selector(selector: &str) -> Result<Vec<(String, String)>, ApiError> {
    selector
        .split(',')
        .map(|term| {
            term.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| {
                    ApiError::bad_field("labelSelector", format!("`{term}` is not `key=value`"))
                })
        })
        .collect()
}

fn kubeconfig_error(error: KubeconfigError) -> ApiError {
    let field = Some(match error.field() {
        Some(field) => format!("kubeconfig: {field}"),
        None => "kubeconfig".to_owned(),
    });
    ApiError::BadRequest {
        detail: error.to_string(),
        field,
    }
}

/// A failed registration probe as the caller sees it. Whatever did not
/// answer as a Kubernetes API server (refused, timed out, reset, TLS failed,
/// another protocol) gets one answer, so registration cannot be used to
/// scan ports; the details go to the log.
fn probe_error(error: &ProbeError, server: &str) -> ApiError {
    let detail = match error {
        ProbeError::Timeout { .. } | ProbeError::Unreachable { .. } | ProbeError::Api { .. } => {
            tracing::info!(server, %error, "registration refused: the cluster could not be reached");
            "cannot reach a Kubernetes API server at the kubeconfig's server with these \
             credentials (nothing there answered as one; the service log has the details)"
                .to_owned()
        }
        other => format!("cannot use the cluster with these credentials: {other}"),
    };
    ApiError::Unprocessable {
        detail,
        field: Some("kubeconfig".to_owned()),
    }
}

pub(crate) use pilothouse_types::{now_ms, rfc3339};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_dns_labels() {
        for ok in ["a", "prod-1", "x".repeat(63).as_str()] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Prod",
            "-a",
            "a-",
            "a_b",
            "a.b",
            "x".repeat(64).as_str(),
        ] {
            assert!(
                matches!(check_name(bad), Err(ApiError::BadRequest { field: Some(f), .. }) if f == "name"),
                "{bad}"
            );
        }
    }

    #[test]
    fn labels_follow_kubernetes_syntax() {
        let check = |key: &str, value: &str| {
            check_labels(&BTreeMap::from([(key.to_owned(), value.to_owned())])).is_ok()
        };
        assert!(check("env", "prod"));
        assert!(check("app.kubernetes.io/name", "grafana"));
        assert!(check("team", ""));
        assert!(!check("bad key", "x"));
        assert!(!check("env", "no spaces"));
        assert!(!check("/name", "x"));
    }

    #[test]
    fn selectors_parse_into_pairs() {
        assert_eq!(
            parse_selector("env=prod, team=infra").unwrap(),
            vec![
                ("env".into(), "prod".into()),
                ("team".into(), "infra".into())
            ]
        );
        assert!(parse_selector("env").is_err());
        assert!(parse_selector("=x").is_err());
    }
}

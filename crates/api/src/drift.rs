//! Drift over HTTP: the latest report of a cluster and its history, scans on
//! demand, the fleet summary, and the ignore rules.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use pilothouse_store::{
    ClusterDrift, DriftCounts, DriftEpisode, DriftObjectRecord, DriftReport, IgnoreRuleRecord,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::clusters::{existing, rfc3339};
use crate::error::{ApiQuery, Problem, page_limit};
use crate::{ApiError, ApiJson, AppState};

/// A drift report: how a cluster compared with Git at a scan.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftReportView {
    /// Increasing id.
    pub id: i64,
    /// The cluster.
    pub cluster: String,
    /// `in_sync`, `drifted` or `unknown` (the scan could not tell; see `error`).
    pub status: String,
    /// `schedule`, `sync` or `manual`: why the first scan with this result ran.
    pub trigger: String,
    /// The Git revision compared.
    pub revision: Option<String>,
    /// Why the scan could not tell.
    pub error: Option<String>,
    /// Objects per state.
    pub counts: DriftCountsView,
    /// When the first scan with this result started (RFC 3339).
    pub started_at: String,
    /// When the last scan with this same result finished (RFC 3339).
    pub last_seen_at: String,
    /// How many scans found this result.
    pub scans: u32,
    /// The objects not in sync (absent in history listings).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub objects: Option<Vec<DriftObjectView>>,
}

/// Objects per drift state.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftCountsView {
    /// As Git says.
    pub in_sync: u32,
    /// Some fields differ.
    pub modified: u32,
    /// Not on the cluster.
    pub missing: u32,
    /// On the cluster, gone from Git.
    pub extra: u32,
    /// Could not be compared.
    pub unknown: u32,
}

impl From<DriftCounts> for DriftCountsView {
    fn from(counts: DriftCounts) -> Self {
        Self {
            in_sync: counts.in_sync,
            modified: counts.modified,
            missing: counts.missing,
            extra: counts.extra,
            unknown: counts.unknown,
        }
    }
}

/// A differing field.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldDiffView {
    /// JSON pointer of the field.
    pub path: String,
    /// Its live value (absent: not set live). Secret values are masked.
    #[schema(value_type = Object)]
    pub live: Option<serde_json::Value>,
    /// The value Git wants (absent: not in Git). Secret values are masked.
    #[schema(value_type = Object)]
    pub desired: Option<serde_json::Value>,
}

/// An object that is not in sync.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftObjectView {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace (absent for cluster-scoped objects).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// `modified`, `missing`, `extra` or `unknown`.
    pub state: String,
    /// The differing fields.
    pub diffs: Vec<FieldDiffView>,
    /// Why it could not be compared.
    pub message: Option<String>,
    /// A unified diff, live against desired (secrets masked).
    pub unified: String,
    /// Since when it has been in this state (RFC 3339).
    pub since: Option<String>,
}

impl From<DriftObjectRecord> for DriftObjectView {
    fn from(object: DriftObjectRecord) -> Self {
        Self {
            api_version: object.api_version,
            kind: object.kind,
            namespace: object.namespace,
            name: object.name,
            state: object.state.to_string(),
            diffs: object
                .diffs
                .into_iter()
                .map(|d| FieldDiffView {
                    path: d.path,
                    live: d.live,
                    desired: d.desired,
                })
                .collect(),
            message: object.message,
            unified: object.unified,
            since: object.since.map(rfc3339),
        }
    }
}

impl DriftReportView {
    fn new(report: DriftReport, with_objects: bool) -> Self {
        Self {
            id: report.id,
            cluster: report.cluster,
            status: report.status.to_string(),
            trigger: report.trigger.to_string(),
            revision: report.revision,
            error: report.error,
            counts: report.counts.into(),
            started_at: rfc3339(report.started_at),
            last_seen_at: rfc3339(report.last_seen_at),
            scans: report.scans,
            objects: with_objects.then(|| report.objects.into_iter().map(Into::into).collect()),
        }
    }
}

/// When one object drifted and recovered.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftEpisodeView {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace (absent for cluster-scoped objects).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// The drift state it was in.
    pub state: String,
    /// When the drift was first seen (RFC 3339).
    pub started_at: String,
    /// When it was first seen gone (RFC 3339); absent while it lasts.
    pub ended_at: Option<String>,
}

impl From<DriftEpisode> for DriftEpisodeView {
    fn from(episode: DriftEpisode) -> Self {
        Self {
            api_version: episode.api_version,
            kind: episode.kind,
            namespace: episode.namespace,
            name: episode.name,
            state: episode.state.to_string(),
            started_at: rfc3339(episode.started_at),
            ended_at: episode.ended_at.map(rfc3339),
        }
    }
}

/// A cluster's drift history.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftHistory {
    /// Distinct scan results, newest first (without objects).
    pub reports: Vec<DriftReportView>,
    /// When objects drifted and recovered, newest first.
    pub episodes: Vec<DriftEpisodeView>,
}

/// One cluster in the fleet summary.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterDriftView {
    /// The cluster.
    pub cluster: String,
    /// `in_sync`, `drifted`, `unknown`, or absent when never scanned.
    pub status: Option<String>,
    /// Objects per state in its latest report.
    pub counts: DriftCountsView,
    /// When it was last scanned (RFC 3339).
    pub last_scan_at: Option<String>,
    /// When its oldest unresolved drift started (RFC 3339).
    pub oldest_drift_since: Option<String>,
}

impl From<ClusterDrift> for ClusterDriftView {
    fn from(drift: ClusterDrift) -> Self {
        Self {
            cluster: drift.cluster,
            status: drift.status.map(|s| s.to_string()),
            counts: drift.counts.into(),
            last_scan_at: drift.last_scan_at.map(rfc3339),
            oldest_drift_since: drift.oldest_drift_since.map(rfc3339),
        }
    }
}

/// The fleet's drift.
#[derive(Debug, Serialize, ToSchema)]
pub struct DriftSummaryView {
    /// Clusters whose latest report says `drifted`.
    pub drifted_clusters: u32,
    /// Clusters whose latest report says `unknown`.
    pub unknown_clusters: u32,
    /// Every cluster, by name.
    pub clusters: Vec<ClusterDriftView>,
}

/// An ignore rule.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IgnoreRuleView {
    /// Id (assigned; ignored when creating).
    #[serde(default)]
    pub id: i64,
    /// The cluster it applies to; absent: every cluster.
    pub cluster: Option<String>,
    /// API group (`""` core, `*` any; default `*`).
    #[serde(default = "any")]
    pub api_group: String,
    /// Kind (`*` any; default `*`).
    #[serde(default = "any")]
    pub kind: String,
    /// Namespace; absent: any.
    pub namespace: Option<String>,
    /// Name; `*` is a wildcard (default `*`).
    #[serde(default = "any")]
    pub name: String,
    /// A JSON pointer to ignore, with what is under it (`*` matches one
    /// segment)…
    pub pointer: Option<String>,
    /// …or: ignore the fields this field manager owns.
    pub managed_by: Option<String>,
}

fn any() -> String {
    "*".to_owned()
}

impl From<IgnoreRuleRecord> for IgnoreRuleView {
    fn from(rule: IgnoreRuleRecord) -> Self {
        Self {
            id: rule.id,
            cluster: rule.cluster,
            api_group: rule.api_group,
            kind: rule.kind,
            namespace: rule.namespace,
            name: rule.name,
            pointer: rule.pointer,
            managed_by: rule.managed_by,
        }
    }
}

/// Query of `GET /api/v1/clusters/{name}/drift/history`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Page size, 1–500 (default 50).
    pub limit: Option<u32>,
    /// Only reports older than this id.
    pub before: Option<i64>,
}

/// The latest drift report of a cluster, with every object not in sync.
#[utoipa::path(get, path = "/api/v1/clusters/{name}/drift", operation_id = "getDrift", tag = "drift",
    params(("name" = String, Path, description = "Cluster name")),
    responses((status = 200, description = "The latest report", body = DriftReportView),
              (status = 404, description = "No such cluster, or never scanned", body = Problem)))]
pub async fn latest(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<ApiJson<DriftReportView>, ApiError> {
    existing(&state, &name).await?;
    let report = state.store.latest_drift_report(&name).await?.ok_or_else(|| {
        ApiError::NotFound(format!(
            "cluster `{name}` was never scanned for drift (POST /api/v1/clusters/{name}/drift/scan)"
        ))
    })?;
    Ok(ApiJson(DriftReportView::new(report, true)))
}

/// Scan the cluster for drift now and answer its report.
#[utoipa::path(post, path = "/api/v1/clusters/{name}/drift/scan", operation_id = "scanDrift", tag = "drift",
    params(("name" = String, Path, description = "Cluster name")),
    responses((status = 200, description = "The report after the scan", body = DriftReportView),
              (status = 404, description = "No such cluster", body = Problem),
              (status = 503, description = "The scan did not finish in time", body = Problem)))]
pub async fn scan(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<ApiJson<DriftReportView>, ApiError> {
    existing(&state, &name).await?;
    state
        .gitops
        .scan_drift(name.clone())
        .await
        .map_err(ApiError::Unavailable)?;
    let report = state
        .store
        .latest_drift_report(&name)
        .await?
        .ok_or_else(|| ApiError::internal("a finished scan left no report"))?;
    Ok(ApiJson(DriftReportView::new(report, true)))
}

/// A cluster's distinct drift results and when objects drifted and recovered.
#[utoipa::path(get, path = "/api/v1/clusters/{name}/drift/history", operation_id = "driftHistory", tag = "drift",
    params(("name" = String, Path, description = "Cluster name"), HistoryQuery),
    responses((status = 200, description = "History", body = DriftHistory),
              (status = 400, description = "Bad query", body = Problem),
              (status = 404, description = "No such cluster", body = Problem)))]
pub async fn history(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<ApiJson<DriftHistory>, ApiError> {
    let limit = page_limit(query.limit, 50)?;
    existing(&state, &name).await?;
    let reports = state
        .store
        .drift_history(&name, query.before, limit)
        .await?;
    let episodes = state.store.drift_episodes(&name, limit).await?;
    Ok(ApiJson(DriftHistory {
        reports: reports
            .into_iter()
            .map(|r| DriftReportView::new(r, false))
            .collect(),
        episodes: episodes.into_iter().map(Into::into).collect(),
    }))
}

/// Drift across the fleet: every cluster's latest result.
#[utoipa::path(get, path = "/api/v1/drift", operation_id = "driftSummary", tag = "drift",
    responses((status = 200, description = "The fleet's drift", body = DriftSummaryView)))]
pub async fn summary(State(state): State<AppState>) -> Result<ApiJson<DriftSummaryView>, ApiError> {
    let clusters = state.store.drift_summary().await?;
    let count = |status: pilothouse_store::ScanStatus| {
        clusters.iter().filter(|c| c.status == Some(status)).count() as u32
    };
    Ok(ApiJson(DriftSummaryView {
        drifted_clusters: count(pilothouse_store::ScanStatus::Drifted),
        unknown_clusters: count(pilothouse_store::ScanStatus::Unknown),
        clusters: clusters.into_iter().map(Into::into).collect(),
    }))
}

/// Every ignore rule.
#[utoipa::path(get, path = "/api/v1/drift/ignore-rules", operation_id = "listIgnoreRules", tag = "drift",
    responses((status = 200, description = "Rules", body = [IgnoreRuleView])))]
pub async fn list_rules(
    State(state): State<AppState>,
) -> Result<ApiJson<Vec<IgnoreRuleView>>, ApiError> {
    let rules = state.store.ignore_rules(None).await?;
    Ok(ApiJson(rules.into_iter().map(Into::into).collect()))
}

/// Add an ignore rule: a JSON pointer, or the fields a field manager owns,
/// for the objects it targets.
#[utoipa::path(post, path = "/api/v1/drift/ignore-rules", operation_id = "addIgnoreRule", tag = "drift",
    request_body = IgnoreRuleView,
    responses((status = 201, description = "Added", body = IgnoreRuleView),
              (status = 400, description = "Bad rule", body = Problem),
              (status = 404, description = "No such cluster", body = Problem)))]
pub async fn add_rule(
    State(state): State<AppState>,
    ApiJson(rule): ApiJson<IgnoreRuleView>,
) -> Result<(StatusCode, ApiJson<IgnoreRuleView>), ApiError> {
    let what = match (&rule.pointer, &rule.managed_by) {
        (Some(pointer), None) => pilothouse_drift::Ignore::Pointer(pointer.clone()),
        (None, Some(manager)) => pilothouse_drift::Ignore::ManagedBy(manager.clone()),
        _ => {
            return Err(ApiError::bad_field(
                "pointer",
                "give exactly one of `pointer` and `managed_by`",
            ));
        }
    };
    let field = if rule.pointer.is_some() {
        "pointer"
    } else {
        "managed_by"
    };
    pilothouse_drift::IgnoreRule {
        target: pilothouse_drift::Target::any(),
        what,
    }
    .validate()
    .map_err(|error| ApiError::bad_field(field, error.to_string()))?;
    for (field, value) in [("kind", &rule.kind), ("name", &rule.name)] {
        if value.is_empty() {
            return Err(ApiError::bad_field(
                field,
                format!("`{field}` must not be empty (use `*` for any)"),
            ));
        }
    }
    let added = state
        .store
        .add_ignore_rule(&IgnoreRuleRecord {
            id: 0,
            cluster: rule.cluster,
            api_group: rule.api_group,
            kind: rule.kind,
            namespace: rule.namespace,
            name: rule.name,
            pointer: rule.pointer,
            managed_by: rule.managed_by,
        })
        .await?;
    Ok((StatusCode::CREATED, ApiJson(added.into())))
}

/// Delete an ignore rule.
#[utoipa::path(delete, path = "/api/v1/drift/ignore-rules/{id}", operation_id = "deleteIgnoreRule", tag = "drift",
    params(("id" = i64, Path, description = "Rule id")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such rule", body = Problem)))]
pub async fn delete_rule(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if state.store.delete_ignore_rule(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no ignore rule {id}")))
    }
}

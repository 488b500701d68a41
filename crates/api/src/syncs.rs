//! `/api/v1/clusters/{name}/sync`, `/syncs` and `/resources`: ask for a
//! sync, read the history of syncs with their per-object results, and the
//! objects Pilothouse owns on a cluster with their health.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use pilothouse_store::{
    InventoryRecord, SyncCounts, SyncObjectRecord, SyncQuery, SyncRecord, SyncTrigger,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::clusters::{existing, not_found, rfc3339};
use crate::error::{ApiQuery, Problem, page_limit};
use crate::{ApiError, ApiJson, AppState};

/// One sync of a cluster.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncView {
    /// Increasing id.
    pub id: i64,
    /// The cluster.
    pub cluster: String,
    /// `manual`, `auto`, `self_heal` or `retry`.
    pub trigger: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: String,
    /// The Git revision synced (known once it started).
    pub revision: Option<String>,
    /// Why it failed (a render error, the objects that failed, …).
    pub error: Option<String>,
    /// The cluster's health when it finished.
    pub health: Option<String>,
    /// When it was queued (RFC 3339).
    pub queued_at: String,
    /// When it started (RFC 3339).
    pub started_at: Option<String>,
    /// When it finished (RFC 3339).
    pub finished_at: Option<String>,
    /// Objects per action.
    pub counts: SyncCountsView,
}

/// How many objects ended in each action.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncCountsView {
    /// Created.
    pub created: u32,
    /// Changed.
    pub configured: u32,
    /// Already as desired.
    pub unchanged: u32,
    /// Deleted: gone from Git.
    pub pruned: u32,
    /// Gone from Git but kept (`pilothouse.dev/prune: disabled`, or
    /// recreated by someone else).
    pub prune_skipped: u32,
    /// Refused by the API server, or the call failed.
    pub failed: u32,
}

impl From<SyncCounts> for SyncCountsView {
    fn from(counts: SyncCounts) -> Self {
        Self {
            created: counts.created,
            configured: counts.configured,
            unchanged: counts.unchanged,
            pruned: counts.pruned,
            prune_skipped: counts.prune_skipped,
            failed: counts.failed,
        }
    }
}

impl From<SyncRecord> for SyncView {
    fn from(sync: SyncRecord) -> Self {
        Self {
            id: sync.id,
            cluster: sync.cluster,
            trigger: sync.trigger.to_string(),
            status: sync.status.to_string(),
            revision: sync.revision,
            error: sync.error,
            health: sync.health.map(|h| h.to_string()),
            queued_at: rfc3339(sync.queued_at),
            started_at: sync.started_at.map(rfc3339),
            finished_at: sync.finished_at.map(rfc3339),
            counts: sync.counts.into(),
        }
    }
}

/// A sync with what it did to each object.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncDetail {
    /// The sync.
    #[serde(flatten)]
    pub sync: SyncView,
    /// Per object, in apply order, then prunes.
    pub objects: Vec<SyncObjectView>,
}

/// What a sync did to one object.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncObjectView {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace (absent for cluster-scoped objects).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// `created`, `configured`, `unchanged`, `pruned`, `prune_skipped` or `failed`.
    pub action: String,
    /// The API server's message on failure, or why a prune was skipped.
    pub message: Option<String>,
    /// `healthy`, `progressing`, `degraded`, `missing` or `unknown`.
    pub health: Option<String>,
    /// Why it is not healthy.
    pub health_message: Option<String>,
}

impl From<SyncObjectRecord> for SyncObjectView {
    fn from(object: SyncObjectRecord) -> Self {
        Self {
            api_version: object.api_version,
            kind: object.kind,
            namespace: object.namespace,
            name: object.name,
            action: object.action.to_string(),
            message: object.message,
            health: object.health.map(|h| h.to_string()),
            health_message: object.health_message,
        }
    }
}

/// An object Pilothouse applied to a cluster and owns.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceView {
    /// `apiVersion` it was applied with.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace (absent for cluster-scoped objects).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Its last assessed health.
    pub health: Option<String>,
    /// Why it is not healthy.
    pub health_message: Option<String>,
}

impl From<InventoryRecord> for ResourceView {
    fn from(entry: InventoryRecord) -> Self {
        Self {
            api_version: entry.api_version,
            kind: entry.kind,
            namespace: entry.namespace,
            name: entry.name,
            health: entry.health.map(|h| h.to_string()),
            health_message: entry.health_message,
        }
    }
}

/// Query of `GET /api/v1/clusters/{name}/syncs`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSyncs {
    /// Page size, 1–500 (default 50).
    pub limit: Option<u32>,
    /// Only syncs older than this id (the last id of the previous page).
    pub before: Option<i64>,
}

/// Queue a sync of the cluster now, whatever its mode. If one is already
/// queued, that one is returned.
#[utoipa::path(post, path = "/api/v1/clusters/{name}/sync", operation_id = "syncCluster", tag = "syncs",
    params(("name" = String, Path, description = "Cluster name")),
    responses((status = 202, description = "Queued; follow Location", body = SyncView),
              (status = 404, description = "No such cluster", body = Problem)))]
pub async fn sync(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let sync = state
        .store
        .queue_sync(&name, SyncTrigger::Manual)
        .await?
        .ok_or_else(|| not_found(&name))?;
    state.gitops.sync_queued();
    let location = format!("/api/v1/clusters/{name}/syncs/{}", sync.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        ApiJson(SyncView::from(sync)),
    )
        .into_response())
}

/// The cluster's syncs, newest first.
#[utoipa::path(get, path = "/api/v1/clusters/{name}/syncs", operation_id = "listSyncs", tag = "syncs",
    params(("name" = String, Path, description = "Cluster name"), ListSyncs),
    responses((status = 200, description = "Syncs", body = [SyncView]),
              (status = 400, description = "Bad query", body = Problem),
              (status = 404, description = "No such cluster", body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<ListSyncs>,
) -> Result<ApiJson<Vec<SyncView>>, ApiError> {
    let limit = page_limit(query.limit, 50)?;
    existing(&state, &name).await?;
    let syncs = state
        .store
        .list_syncs(
            &name,
            &SyncQuery {
                before: query.before,
                limit,
            },
        )
        .await?;
    Ok(ApiJson(syncs.into_iter().map(SyncView::from).collect()))
}

/// One sync with its per-object results.
#[utoipa::path(get, path = "/api/v1/clusters/{name}/syncs/{id}", operation_id = "getSync", tag = "syncs",
    params(("name" = String, Path, description = "Cluster name"), ("id" = i64, Path, description = "Sync id")),
    responses((status = 200, description = "The sync", body = SyncDetail),
              (status = 404, description = "No such cluster or sync", body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    Path((name, id)): Path<(String, i64)>,
) -> Result<ApiJson<SyncDetail>, ApiError> {
    let (sync, objects) = state
        .store
        .get_sync(&name, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("cluster `{name}` has no sync {id}")))?;
    Ok(ApiJson(SyncDetail {
        sync: sync.into(),
        objects: objects.into_iter().map(SyncObjectView::from).collect(),
    }))
}

/// The objects Pilothouse applied to the cluster and owns, in apply order,
/// with their last assessed health.
#[utoipa::path(get, path = "/api/v1/clusters/{name}/resources", operation_id = "listResources", tag = "syncs",
    params(("name" = String, Path, description = "Cluster name")),
    responses((status = 200, description = "Owned objects", body = [ResourceView]),
              (status = 404, description = "No such cluster", body = Problem)))]
pub async fn resources(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<ApiJson<Vec<ResourceView>>, ApiError> {
    existing(&state, &name).await?;
    let inventory = state.store.inventory(&name).await?;
    Ok(ApiJson(
        inventory.into_iter().map(ResourceView::from).collect(),
    ))
}

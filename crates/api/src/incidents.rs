//! `/api/v1/incidents`: pod and node incidents across the fleet, filtered
//! and paged; one incident with the logs and events captured at its first
//! occurrence; acknowledging one.

use std::collections::BTreeSet;

use axum::Extension;
use axum::extract::{Path, State};
use pilothouse_store::{ApiToken, IncidentQuery, IncidentRecord, IncidentStatus};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::clusters::rfc3339;
use crate::error::{ApiQuery, Problem, page_limit};
use crate::{ApiError, ApiJson, AppState};

/// What the API asks of the incident monitor. The binary implements it;
/// handlers only call it.
pub trait IncidentControl: Send + Sync + 'static {
    /// Receivers, routes or silences changed: reload them now.
    fn notifications_changed(&self);
    /// A cluster was registered or removed: start or stop its watch now.
    fn clusters_changed(&self);
    /// How the watches of `cluster` stand, when the monitor runs them.
    fn watch_state(&self, cluster: &str) -> Option<crate::ClusterWatchView> {
        let _ = cluster;
        None
    }
    /// Stored notification entries the notifier could not read.
    fn unreadable_notification_entries(&self) -> UnreadableEntries {
        UnreadableEntries::default()
    }
}

/// Counts of stored notification entries the notifier could not read at its
/// last reload (each is also logged, and routes and silences carry their
/// `error` in the API).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnreadableEntries {
    /// Routes: they route nothing.
    pub routes: u64,
    /// Silences: they mute nothing.
    pub silences: u64,
    /// Notification groups restored at start: they start anew.
    pub groups: u64,
}

/// An incident: one group of failures (cluster, namespace, owning workload,
/// container, reason).
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentView {
    /// Id.
    pub id: i64,
    /// The cluster.
    pub cluster: String,
    /// The namespace (absent for node incidents).
    pub namespace: Option<String>,
    /// Kind of the owning workload (`Deployment`, `CronJob`, `Node`, …).
    pub workload_kind: String,
    /// Name of the owning workload.
    pub workload: String,
    /// The container, when it is about one.
    pub container: Option<String>,
    /// `CrashLoopBackOff`, `OOMKilled`, `ImagePullBackOff`, `Error`, …
    pub reason: String,
    /// `warning` or `critical`.
    pub severity: String,
    /// `open`, `resolved`, or `unknown` (its cluster is unreachable).
    pub status: String,
    /// Occurrences (crashes, restarts, failed pods) so far.
    pub count: u64,
    /// Times it came back after being resolved.
    pub reopen_count: u32,
    /// The pods it was seen in.
    pub pods: BTreeSet<String>,
    /// The nodes it was seen on.
    pub nodes: BTreeSet<String>,
    /// First occurrence (RFC 3339).
    pub first_seen: String,
    /// Latest occurrence (RFC 3339).
    pub last_seen: String,
    /// When it was resolved (RFC 3339).
    pub resolved_at: Option<String>,
    /// The last non-zero exit code.
    pub exit_code: Option<i32>,
    /// The last message.
    pub message: Option<String>,
    /// The container image.
    pub image: Option<String>,
    /// The Git revision last synced to the cluster when it opened.
    pub revision: Option<String>,
    /// When it was acknowledged (RFC 3339).
    pub acked_at: Option<String>,
    /// Who acknowledged it (the token's name).
    pub acked_by: Option<String>,
    /// The silence that muted its notifications, if one did.
    pub silenced_by: Option<i64>,
}

impl From<&IncidentRecord> for IncidentView {
    fn from(record: &IncidentRecord) -> Self {
        let incident = &record.incident;
        Self {
            id: record.id,
            cluster: incident.cluster.clone(),
            namespace: incident.namespace.clone(),
            workload_kind: incident.workload_kind.clone(),
            workload: incident.workload_name.clone(),
            container: incident.container.clone(),
            reason: incident.reason.clone(),
            severity: incident.severity.as_str().to_owned(),
            status: incident.status.as_str().to_owned(),
            count: incident.count,
            reopen_count: incident.reopen_count,
            pods: incident.pods.clone(),
            nodes: incident.nodes.clone(),
            first_seen: rfc3339(incident.first_seen_at),
            last_seen: rfc3339(incident.last_seen_at),
            resolved_at: incident.resolved_at.map(rfc3339),
            exit_code: incident.last_exit_code,
            message: incident.message.clone(),
            image: incident.image.clone(),
            revision: incident.revision.clone(),
            acked_at: record.acked_at.map(rfc3339),
            acked_by: record.acked_by.clone(),
            silenced_by: record.silenced_by,
        }
    }
}

/// One incident with what was captured at its first occurrence.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentDetail {
    /// The incident.
    #[serde(flatten)]
    pub incident: IncidentView,
    /// The container's last log lines (of the previous instance when it had
    /// restarted), at most 64 KiB; absent until captured.
    pub logs: Option<String>,
    /// The pod's recent events (type, reason, message, count, last_seen,
    /// source), oldest first; absent until captured.
    #[schema(value_type = Option<Vec<Object>>)]
    pub events: Option<serde_json::Value>,
}

/// A page of incidents.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentPage {
    /// Latest occurrence first.
    pub incidents: Vec<IncidentView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next: Option<String>,
}

/// Filters of `GET /api/v1/incidents`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListIncidents {
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this workload (by name).
    pub workload: Option<String>,
    /// Only this reason (e.g. `OOMKilled`).
    pub reason: Option<String>,
    /// Only `open`, `resolved` or `unknown` incidents.
    pub status: Option<String>,
    /// Only incidents last seen at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only incidents last seen before this time (RFC 3339).
    pub until: Option<String>,
    /// Page size, 1–500 (default 50).
    pub limit: Option<u32>,
    /// The `next` of the previous page.
    pub after: Option<String>,
}

/// Incidents across the fleet, latest occurrence first.
#[utoipa::path(get, path = "/api/v1/incidents", operation_id = "listIncidents", tag = "incidents",
    params(ListIncidents),
    responses((status = 200, description = "A page of incidents", body = IncidentPage),
              (status = 400, description = "Bad filter", body = Problem)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListIncidents>,
) -> Result<ApiJson<IncidentPage>, ApiError> {
    let limit = page_limit(query.limit, 50)?;
    let status = query
        .status
        .as_deref()
        .map(|status| {
            status.parse::<IncidentStatus>().map_err(|_| {
                ApiError::bad_field("status", "status must be `open`, `resolved` or `unknown`")
            })
        })
        .transpose()?;
    let after = query.after.as_deref().map(parse_cursor).transpose()?;
    let filter = IncidentQuery {
        cluster: query.cluster,
        namespace: query.namespace,
        workload: query.workload,
        reason: query.reason,
        status,
        since: query
            .since
            .as_deref()
            .map(|t| timestamp("since", t))
            .transpose()?,
        until: query
            .until
            .as_deref()
            .map(|t| timestamp("until", t))
            .transpose()?,
        after,
        limit,
    };
    let records = state.store.list_incidents(&filter).await?;
    let next = (records.len() == limit as usize)
        .then(|| records.last())
        .flatten()
        .map(|last| format!("{}.{}", last.incident.last_seen_at, last.id));
    Ok(ApiJson(IncidentPage {
        incidents: records.iter().map(IncidentView::from).collect(),
        next,
    }))
}

/// One incident, with the logs and events captured at its first occurrence.
#[utoipa::path(get, path = "/api/v1/incidents/{id}", operation_id = "getIncident", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    responses((status = 200, description = "The incident", body = IncidentDetail),
              (status = 404, description = "No such incident", body = Problem)))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<ApiJson<IncidentDetail>, ApiError> {
    let record = state
        .store
        .get_incident(id)
        .await?
        .ok_or_else(|| missing(id))?;
    Ok(ApiJson(detail(record)))
}

/// Acknowledge an incident: someone is on it. Acknowledging again keeps the
/// first acknowledgement.
#[utoipa::path(post, path = "/api/v1/incidents/{id}/ack", operation_id = "ackIncident", tag = "incidents",
    params(("id" = i64, Path, description = "Incident id")),
    responses((status = 200, description = "The acknowledged incident", body = IncidentDetail),
              (status = 404, description = "No such incident", body = Problem)))]
pub async fn ack(
    State(state): State<AppState>,
    Extension(token): Extension<ApiToken>,
    Path(id): Path<i64>,
) -> Result<ApiJson<IncidentDetail>, ApiError> {
    let record = state
        .store
        .get_incident(id)
        .await?
        .ok_or_else(|| missing(id))?;
    if record.acked_at.is_none() && !state.store.ack_incident(id, &token.name).await? {
        return Err(missing(id));
    }
    let record = state
        .store
        .get_incident(id)
        .await?
        .ok_or_else(|| missing(id))?;
    Ok(ApiJson(detail(record)))
}

fn detail(record: IncidentRecord) -> IncidentDetail {
    IncidentDetail {
        incident: IncidentView::from(&record),
        logs: record.logs,
        events: record.events,
    }
}

fn missing(id: i64) -> ApiError {
    ApiError::NotFound(format!("incident {id}"))
}

/// `<last_seen_ms>.<id>`, as written into `next`.
fn parse_cursor(cursor: &str) -> Result<(i64, i64), ApiError> {
    cursor
        .split_once('.')
        .and_then(|(seen, id)| Some((seen.parse().ok()?, id.parse().ok()?)))
        .ok_or_else(|| ApiError::bad_field("after", "after must be the `next` of a previous page"))
}

/// An RFC 3339 time as unix milliseconds.
pub(crate) fn timestamp(field: &str, text: &str) -> Result<i64, ApiError> {
    text.parse::<jiff::Timestamp>()
        .map(jiff::Timestamp::as_millisecond)
        .map_err(|_| {
            ApiError::bad_field(
                field,
                format!("{field} must be an RFC 3339 time such as 2026-11-23T10:00:00Z"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_and_times_are_checked() {
        assert_eq!(
            parse_cursor("1700000000000.42").ok(),
            Some((1_700_000_000_000, 42))
        );
        assert!(parse_cursor("42").is_err());
        assert!(parse_cursor("a.b").is_err());
        assert_eq!(
            timestamp("since", "2026-11-23T00:00:00Z").ok(),
            Some(1_795_392_000_000)
        );
        assert!(timestamp("since", "yesterday").is_err());
    }
}

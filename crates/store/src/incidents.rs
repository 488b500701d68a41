//! Pod and node incidents: one row per group, written in batches (one
//! transaction for many changes, so a storm of pod updates costs few
//! commits), queried with filters, acknowledged, and purged after retention.

use sqlx::{QueryBuilder, Sqlite};

use crate::decode;
use crate::store::now_ms;
use crate::{Store, StoreError};
use pilothouse_types::{IncidentStatus, IncidentWrite};

/// A stored incident: its group's state and what only the store knows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IncidentRecord {
    /// Id.
    pub id: i64,
    /// The group's state as last written.
    #[serde(flatten)]
    pub incident: IncidentWrite,
    /// The container's last log lines, captured at the first occurrence
    /// (only in [`Store::get_incident`]).
    pub logs: Option<String>,
    /// The pod's recent events, captured at the first occurrence (only in
    /// [`Store::get_incident`]).
    pub events: Option<serde_json::Value>,
    /// When it was acknowledged (unix ms).
    pub acked_at: Option<i64>,
    /// Who acknowledged it.
    pub acked_by: Option<String>,
    /// The silence it is muted by, if any
    /// ([`Store::set_incident_silences`]).
    pub silenced_by: Option<i64>,
}

/// Which incidents to list, newest occurrence first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentQuery {
    /// Only this cluster.
    pub cluster: Option<String>,
    /// Only this namespace.
    pub namespace: Option<String>,
    /// Only this workload name.
    pub workload: Option<String>,
    /// Only this reason.
    pub reason: Option<String>,
    /// Only this status.
    pub status: Option<IncidentStatus>,
    /// Only incidents last seen at or after this time (unix ms).
    pub since: Option<i64>,
    /// Only incidents last seen before this time (unix ms).
    pub until: Option<i64>,
    /// Keyset cursor: the `(last_seen_at, id)` of the previous page's last
    /// incident.
    pub after: Option<(i64, i64)>,
    /// Page size, clamped to 1–500.
    pub limit: u32,
}

/// Columns of an [`IncidentRow`] (`i`: the incident, `c`: its cluster):
/// everything but the captured logs and events. A macro so queries stay
/// `&'static str`.
macro_rules! incident_columns {
    () => {
        "i.id, c.name AS cluster, i.namespace, i.workload_kind, i.workload_name, i.container, i.reason, \
         i.severity, i.status, i.count, i.reopen_count, i.first_seen_at, i.last_seen_at, \
         i.resolved_at, i.last_exit_code, i.message, i.image, i.revision, i.pods, i.nodes, \
         i.acked_at, i.acked_by, i.silenced_by"
    };
}

impl Store {
    /// Writes a batch of incident states in one transaction, inserting new
    /// groups and updating known ones (the revision of the first write is
    /// kept). Returns each write's incident id, in order. A write for a
    /// cluster that is not registered (any more) is skipped: its id is `None`.
    pub async fn write_incidents(
        &self,
        writes: &[IncidentWrite],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let mut ids = Vec::with_capacity(writes.len());
        for write in writes {
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO incidents (cluster_id, namespace, workload_kind, workload_name, \
                     container, reason, severity, status, count, reopen_count, first_seen_at, \
                     last_seen_at, resolved_at, last_exit_code, message, image, revision, pods, \
                     nodes, updated_at) \
                 SELECT id, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? \
                 FROM clusters WHERE name = ? \
                 ON CONFLICT (cluster_id, namespace, workload_kind, workload_name, container, reason) \
                 DO UPDATE SET severity = excluded.severity, status = excluded.status, \
                     count = excluded.count, reopen_count = excluded.reopen_count, \
                     first_seen_at = MIN(first_seen_at, excluded.first_seen_at), \
                     last_seen_at = excluded.last_seen_at, resolved_at = excluded.resolved_at, \
                     last_exit_code = COALESCE(excluded.last_exit_code, last_exit_code), \
                     message = COALESCE(excluded.message, message), \
                     image = COALESCE(excluded.image, image), \
                     revision = COALESCE(revision, excluded.revision), \
                     pods = excluded.pods, nodes = excluded.nodes, \
                     updated_at = excluded.updated_at \
                 RETURNING id",
            )
            .bind(write.namespace.as_deref().unwrap_or(""))
            .bind(&write.workload_kind)
            .bind(&write.workload_name)
            .bind(write.container.as_deref().unwrap_or(""))
            .bind(&write.reason)
            .bind(write.severity.as_str())
            .bind(write.status.as_str())
            .bind(i64::try_from(write.count).unwrap_or(i64::MAX))
            .bind(i64::from(write.reopen_count))
            .bind(write.first_seen_at)
            .bind(write.last_seen_at)
            .bind(write.resolved_at)
            .bind(write.last_exit_code)
            .bind(&write.message)
            .bind(&write.image)
            .bind(&write.revision)
            .bind(serde_json::to_string(&write.pods).expect("names serialise"))
            .bind(serde_json::to_string(&write.nodes).expect("names serialise"))
            .bind(now)
            .bind(&write.cluster)
            .fetch_optional(&mut *tx)
            .await?;
            ids.push(id);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Stores what was captured at an incident's first occurrence: the
    /// container's last log lines and the pod's recent events. A capture
    /// already stored is kept (`false`).
    pub async fn capture_incident(
        &self,
        id: i64,
        logs: &str,
        events: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE incidents SET logs = ?, events = ? WHERE id = ? AND logs IS NULL AND events IS NULL",
        )
        .bind(logs)
        .bind(events.to_string())
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// One incident with its captured logs and events.
    pub async fn get_incident(&self, id: i64) -> Result<Option<IncidentRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            incident_columns!(),
            ", i.logs, i.events FROM incidents i JOIN clusters c ON c.id = i.cluster_id WHERE i.id = ?"
        );
        let row = sqlx::query_as::<_, CapturedIncidentRow>(sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(IncidentRecord::try_from).transpose()
    }

    /// A page of incidents matching `query`, latest occurrence first.
    pub async fn list_incidents(
        &self,
        query: &IncidentQuery,
    ) -> Result<Vec<IncidentRecord>, StoreError> {
        let mut sql = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            incident_columns!(),
            " FROM incidents i JOIN clusters c ON c.id = i.cluster_id WHERE 1"
        ));
        if let Some(cluster) = &query.cluster {
            sql.push(" AND c.name = ").push_bind(cluster);
        }
        if let Some(namespace) = &query.namespace {
            sql.push(" AND i.namespace = ").push_bind(namespace);
        }
        if let Some(workload) = &query.workload {
            sql.push(" AND i.workload_name = ").push_bind(workload);
        }
        if let Some(reason) = &query.reason {
            sql.push(" AND i.reason = ").push_bind(reason);
        }
        if let Some(status) = query.status {
            sql.push(" AND i.status = ").push_bind(status.as_str());
        }
        if let Some(since) = query.since {
            sql.push(" AND i.last_seen_at >= ").push_bind(since);
        }
        if let Some(until) = query.until {
            sql.push(" AND i.last_seen_at < ").push_bind(until);
        }
        if let Some((last_seen, id)) = query.after {
            sql.push(" AND (i.last_seen_at < ")
                .push_bind(last_seen)
                .push(" OR (i.last_seen_at = ")
                .push_bind(last_seen)
                .push(" AND i.id < ")
                .push_bind(id)
                .push("))");
        }
        sql.push(" ORDER BY i.last_seen_at DESC, i.id DESC LIMIT ")
            .push_bind(i64::from(query.limit.clamp(1, 500)));
        let rows = sql
            .build_query_as::<IncidentRow>()
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(IncidentRecord::try_from).collect()
    }

    /// Acknowledges an incident; `false` if there is none with this id.
    pub async fn ack_incident(&self, id: i64, by: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("UPDATE incidents SET acked_at = ?, acked_by = ? WHERE id = ?")
            .bind(now_ms())
            .bind(by)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes resolved incidents resolved before `cutoff` (unix ms).
    /// Returns how many.
    pub async fn purge_incidents(&self, cutoff: i64) -> Result<u64, StoreError> {
        let result =
            sqlx::query("DELETE FROM incidents WHERE status = 'resolved' AND resolved_at < ?")
                .bind(cutoff)
                .execute(&self.writer)
                .await?;
        Ok(result.rows_affected())
    }

    /// Marks which silence mutes each incident (`None`: none), in one
    /// transaction. Incidents that do not exist (any more) are skipped;
    /// returns how many were found. A silence that does not exist is
    /// [`StoreError::NotFound`] and nothing is changed.
    pub async fn set_incident_silences(
        &self,
        silences: &[(i64, Option<i64>)],
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let found = mark_silenced(&mut tx, silences).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// The incidents with these ids (without logs and events), in id order;
    /// ids that do not exist are skipped.
    pub async fn incidents_by_ids(&self, ids: &[i64]) -> Result<Vec<IncidentRecord>, StoreError> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut incidents = Vec::with_capacity(ids.len());
        // Well below SQLite's limit on bound parameters.
        for chunk in ids.chunks(500) {
            let mut sql = QueryBuilder::<Sqlite>::new(concat!(
                "SELECT ",
                incident_columns!(),
                " FROM incidents i JOIN clusters c ON c.id = i.cluster_id WHERE i.id IN ("
            ));
            let mut list = sql.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            sql.push(") ORDER BY i.id");
            let rows = sql
                .build_query_as::<IncidentRow>()
                .fetch_all(&self.reader)
                .await?;
            for row in rows {
                incidents.push(row.try_into()?);
            }
        }
        Ok(incidents)
    }

    /// A page of the incidents in any of `statuses` (without logs and
    /// events), in id order: those with an id above `after`, at most
    /// `limit`. To read them all (e.g. every open and unknown incident at
    /// startup), continue after the last id until a page comes back
    /// shorter than `limit`.
    pub async fn list_incidents_with_status(
        &self,
        statuses: &[IncidentStatus],
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<IncidentRecord>, StoreError> {
        if statuses.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = QueryBuilder::<Sqlite>::new(concat!(
            "SELECT ",
            incident_columns!(),
            " FROM incidents i JOIN clusters c ON c.id = i.cluster_id WHERE i.status IN ("
        ));
        let mut list = sql.separated(", ");
        for status in statuses {
            list.push_bind(status.as_str());
        }
        sql.push(") AND i.id > ")
            .push_bind(after.unwrap_or(i64::MIN))
            .push(" ORDER BY i.id LIMIT ")
            .push_bind(i64::from(limit.max(1)));
        let rows = sql
            .build_query_as::<IncidentRow>()
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(IncidentRecord::try_from).collect()
    }

    /// Open incidents per cluster and reason (for metrics), by cluster.
    pub async fn count_open_incidents(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct CountRow {
            cluster: String,
            reason: String,
            incidents: i64,
        }
        let rows = sqlx::query_as::<_, CountRow>(
            "SELECT c.name AS cluster, i.reason, COUNT(*) AS incidents \
             FROM incidents i JOIN clusters c ON c.id = i.cluster_id \
             WHERE i.status = 'open' GROUP BY c.name, i.reason ORDER BY c.name, i.reason",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|row| {
                let count = decode::number(row.incidents, "COUNT(incidents)")?;
                Ok((row.cluster, row.reason, count))
            })
            .collect()
    }
}

/// A row of `incidents` as [`incident_columns!`] selects it.
#[derive(sqlx::FromRow)]
struct IncidentRow {
    id: i64,
    cluster: String,
    namespace: String,
    workload_kind: String,
    workload_name: String,
    container: String,
    reason: String,
    severity: String,
    status: String,
    count: i64,
    reopen_count: i64,
    first_seen_at: i64,
    last_seen_at: i64,
    resolved_at: Option<i64>,
    last_exit_code: Option<i32>,
    message: Option<String>,
    image: Option<String>,
    revision: Option<String>,
    pods: String,
    nodes: String,
    acked_at: Option<i64>,
    acked_by: Option<String>,
    silenced_by: Option<i64>,
}

impl TryFrom<IncidentRow> for IncidentRecord {
    type Error = StoreError;

    fn try_from(row: IncidentRow) -> Result<IncidentRecord, StoreError> {
        Ok(IncidentRecord {
            id: row.id,
            incident: IncidentWrite {
                cluster: row.cluster,
                namespace: decode::namespace(row.namespace),
                workload_kind: row.workload_kind,
                workload_name: row.workload_name,
                // '' when the incident is not about one container.
                container: (!row.container.is_empty()).then_some(row.container),
                reason: row.reason,
                severity: decode::text(&row.severity, "incidents.severity")?,
                status: decode::text(&row.status, "incidents.status")?,
                count: decode::number(row.count, "incidents.count")?,
                reopen_count: decode::number(row.reopen_count, "incidents.reopen_count")?,
                first_seen_at: row.first_seen_at,
                last_seen_at: row.last_seen_at,
                resolved_at: row.resolved_at,
                last_exit_code: row.last_exit_code,
                message: row.message,
                image: row.image,
                revision: row.revision,
                pods: decode::json(&row.pods, "incidents.pods")?,
                nodes: decode::json(&row.nodes, "incidents.nodes")?,
            },
            acked_at: row.acked_at,
            acked_by: row.acked_by,
            silenced_by: row.silenced_by,
            logs: None,
            events: None,
        })
    }
}

/// An incident with what was captured at its first occurrence
/// ([`Store::get_incident`]).
#[derive(sqlx::FromRow)]
struct CapturedIncidentRow {
    #[sqlx(flatten)]
    incident: IncidentRow,
    logs: Option<String>,
    events: Option<String>,
}

impl TryFrom<CapturedIncidentRow> for IncidentRecord {
    type Error = StoreError;

    fn try_from(row: CapturedIncidentRow) -> Result<IncidentRecord, StoreError> {
        Ok(IncidentRecord {
            logs: row.logs,
            events: decode::optional_json(row.events.as_deref(), "incidents.events")?,
            ..row.incident.try_into()?
        })
    }
}

/// Marks incidents as muted by a silence (or not) within a transaction;
/// unknown incidents are skipped, an unknown silence is
/// [`StoreError::NotFound`]. Returns how many incidents were found.
pub(crate) async fn mark_silenced(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    silences: &[(i64, Option<i64>)],
) -> Result<u64, StoreError> {
    let mut found = 0;
    for &(incident, silence) in silences {
        let result = sqlx::query("UPDATE incidents SET silenced_by = ? WHERE id = ?")
            .bind(silence)
            .bind(incident)
            .execute(&mut **tx)
            .await
            .map_err(|e| match (&e, silence) {
                (sqlx::Error::Database(db), Some(silence)) if db.is_foreign_key_violation() => {
                    StoreError::NotFound {
                        what: format!("silence {silence}"),
                    }
                }
                _ => StoreError::Database(e),
            })?;
        found += result.rows_affected();
    }
    Ok(found)
}

#[cfg(test)]
mod tests;

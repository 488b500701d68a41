//! Syncs: the queue of syncs to run, their per-object results, each
//! cluster's sync state and health, and the inventory of what Pilothouse
//! applied to each cluster (the set prune works from).

use std::collections::BTreeMap;

use sqlx::{QueryBuilder, Sqlite};

use crate::decode;
use crate::store::now_ms;
use pilothouse_types::{Health, ObjectAction};

use crate::text_enum::text_enum;
use crate::{Store, StoreError};

/// `SELECT` of a [`SyncRow`] (`s`: syncs, `c`: clusters) with its counts
/// (a JSON object of action to count, `NULL` without objects). A macro so
/// queries stay `&'static str`.
macro_rules! sync_select {
    () => {
        "SELECT s.id, c.name AS cluster, s.trigger, s.status, s.revision, s.error, s.health, \
             s.queued_at, s.started_at, s.finished_at, \
             (SELECT json_group_object(action, n) FROM \
                 (SELECT action, COUNT(*) AS n FROM sync_objects o \
                  WHERE o.sync_id = s.id GROUP BY action)) AS counts \
         FROM syncs s JOIN clusters c ON c.id = s.cluster_id"
    };
}

text_enum! {
    /// How a cluster follows Git.
    pub enum SyncMode ("sync mode") {
        /// Only when asked (`POST /clusters/{name}/sync`).
        Manual = "manual",
        /// On every new revision.
        Auto = "auto",
        /// On every new revision, and whenever the live objects moved away
        /// from what was applied.
        SelfHeal = "self_heal",
    }
}

text_enum! {
    /// Why a sync ran.
    pub enum SyncTrigger ("sync trigger") {
        /// Someone asked for it.
        Manual = "manual",
        /// A new revision, for a cluster in auto or self-heal mode.
        Auto = "auto",
        /// Live objects changed under a cluster in self-heal mode.
        SelfHeal = "self_heal",
        /// A failed sync is tried again after its backoff.
        Retry = "retry",
    }
}

text_enum! {
    /// Where a sync is.
    pub enum SyncStatus ("sync status") {
        /// Waiting to run.
        Queued = "queued",
        /// Running now.
        Running = "running",
        /// Every object applied (and pruned).
        Succeeded = "succeeded",
        /// Rendering failed, or some object could not be applied.
        Failed = "failed",
    }
}

text_enum! {
    /// The outcome of a cluster's last finished sync.
    pub enum ClusterSyncStatus ("cluster sync status") {
        /// Never synced.
        Never = "never",
        /// The last sync succeeded.
        Succeeded = "succeeded",
        /// The last sync failed; the last good revision stays in force.
        Failed = "failed",
    }
}

/// A cluster's sync mode and the state of its syncs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterSync {
    /// How it follows Git.
    pub mode: SyncMode,
    /// The outcome of the last finished sync.
    pub status: ClusterSyncStatus,
    /// The revision of the last successful sync: the one in force.
    pub revision: Option<String>,
    /// The revision the last finished sync worked on, succeeded or not.
    pub last_revision: Option<String>,
    /// The last finished sync.
    pub last_sync_id: Option<i64>,
    /// When the last sync finished (unix ms).
    pub last_sync_at: Option<i64>,
    /// Why the last sync failed.
    pub error: Option<String>,
    /// Failed syncs in a row.
    pub failures: u32,
    /// When a failed sync is retried (unix ms).
    pub next_sync_at: Option<i64>,
    /// The worst health of the cluster's objects.
    pub health: Health,
    /// When health was last assessed (unix ms).
    pub health_checked_at: Option<i64>,
}

/// How many objects of a sync ended in each action.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncCounts {
    /// Created.
    pub created: u32,
    /// Configured.
    pub configured: u32,
    /// Unchanged.
    pub unchanged: u32,
    /// Pruned.
    pub pruned: u32,
    /// Kept although gone from Git.
    pub prune_skipped: u32,
    /// Failed.
    pub failed: u32,
}

/// One sync of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncRecord {
    /// Increasing id.
    pub id: i64,
    /// The cluster's name.
    pub cluster: String,
    /// Why it ran.
    pub trigger: SyncTrigger,
    /// Where it is.
    pub status: SyncStatus,
    /// The revision synced (known once it started).
    pub revision: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The cluster's health when it finished.
    pub health: Option<Health>,
    /// When it was queued (unix ms).
    pub queued_at: i64,
    /// When it started (unix ms).
    pub started_at: Option<i64>,
    /// When it finished (unix ms).
    pub finished_at: Option<i64>,
    /// Objects per action.
    pub counts: SyncCounts,
}

/// What a sync did to one object.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SyncObjectRecord {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// What was done.
    pub action: ObjectAction,
    /// The API server's message on failure, or why a prune was skipped.
    pub message: Option<String>,
    /// Its health after the sync.
    pub health: Option<Health>,
    /// Why it is not healthy.
    pub health_message: Option<String>,
}

/// An object Pilothouse applied to a cluster and owns.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InventoryRecord {
    /// API group (`""` for the core group).
    pub api_group: String,
    /// `kind`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// The `apiVersion` it was applied with.
    pub api_version: String,
    /// SHA-256 of the applied manifest.
    pub manifest_sha256: String,
    /// The `resourceVersion` after the apply.
    pub resource_version: String,
    /// Its `uid`.
    pub uid: String,
    /// Its last assessed health.
    pub health: Option<Health>,
    /// Why it is not healthy.
    pub health_message: Option<String>,
}

/// How a sync ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    /// `true`: succeeded; the revision becomes the cluster's synced revision.
    pub succeeded: bool,
    /// The revision that was synced (or tried).
    pub revision: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// The cluster's health afterwards (`None`: not assessed, e.g. render
    /// failed; the cluster keeps its health).
    pub health: Option<Health>,
    /// Per-object results.
    pub objects: Vec<SyncObjectRecord>,
    /// The cluster's new inventory; `None` keeps the current one.
    pub inventory: Option<Vec<InventoryRecord>>,
    /// When to retry, for a failed sync (unix ms).
    pub retry_at: Option<i64>,
}

/// Which syncs of a cluster to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncQuery {
    /// Only syncs with a smaller id (the previous page's last id).
    pub before: Option<i64>,
    /// Page size, clamped to `1..=500`.
    pub limit: u32,
}

impl Store {
    /// Queues a sync of `cluster`. A cluster has at most one queued sync:
    /// when one is already waiting it is returned instead (so repeated
    /// requests and replayed webhooks add nothing). `None` if there is no
    /// such cluster.
    ///
    /// One transaction: a worker cannot take the queued sync between the
    /// insert and the read. Should one have taken it before (the insert
    /// then finds the cluster's queue slot free again and queues a new one),
    /// the answer is still the queued sync; the running one is answered
    /// only when nothing is queued.
    pub async fn queue_sync(
        &self,
        cluster: &str,
        trigger: SyncTrigger,
    ) -> Result<Option<SyncRecord>, StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO syncs (cluster_id, trigger, status, queued_at) \
             SELECT id, ?, 'queued', ? FROM clusters WHERE name = ? \
             ON CONFLICT DO NOTHING",
        )
        .bind(trigger.as_str())
        .bind(now_ms())
        .bind(cluster)
        .execute(&mut *tx)
        .await?;
        let sql = concat!(
            sync_select!(),
            " WHERE c.name = ? AND s.status IN ('queued', 'running') \
             ORDER BY s.status = 'queued' DESC, s.id DESC LIMIT 1"
        );
        let row = sqlx::query_as::<_, SyncRow>(sql)
            .bind(cluster)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        row.map(SyncRecord::try_from).transpose()
    }

    /// Queued syncs, oldest first.
    pub async fn queued_syncs(&self, limit: u32) -> Result<Vec<SyncRecord>, StoreError> {
        let sql = concat!(
            sync_select!(),
            " WHERE s.status = 'queued' ORDER BY s.id LIMIT ?"
        );
        let rows = sqlx::query_as::<_, SyncRow>(sql)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(SyncRecord::try_from).collect()
    }

    /// Marks a queued sync as running on `revision`. `false` if it is not
    /// queued any more (another worker took it, or its cluster is gone).
    pub async fn start_sync(&self, id: i64, revision: Option<&str>) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE syncs SET status = 'running', started_at = ?, revision = ? \
             WHERE id = ? AND status = 'queued'",
        )
        .bind(now_ms())
        .bind(revision)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Finishes a running sync in one transaction: its status and objects,
    /// the cluster's inventory (when given), and the cluster's sync state
    /// (synced revision on success, failures and retry time on failure,
    /// health).
    pub async fn finish_sync(&self, id: i64, result: &SyncResult) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        let now = now_ms();
        let status = if result.succeeded {
            SyncStatus::Succeeded
        } else {
            SyncStatus::Failed
        };
        let cluster_id: Option<i64> = sqlx::query_scalar(
            "UPDATE syncs SET status = ?, revision = COALESCE(?, revision), error = ?, \
                 health = ?, finished_at = ? \
             WHERE id = ? AND status = 'running' RETURNING cluster_id",
        )
        .bind(status.as_str())
        .bind(&result.revision)
        .bind(&result.error)
        .bind(result.health.map(Health::as_str))
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(cluster_id) = cluster_id else {
            return Err(StoreError::NotFound {
                what: format!("running sync {id}"),
            });
        };
        for chunk in result.objects.chunks(100).enumerate() {
            let (chunk_index, objects) = chunk;
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO sync_objects (sync_id, position, api_version, kind, namespace, \
                     name, action, message, health, health_message) ",
            );
            insert.push_values(objects.iter().enumerate(), |mut row, (i, object)| {
                row.push_bind(id)
                    .push_bind((chunk_index * 100 + i) as i64)
                    .push_bind(&object.api_version)
                    .push_bind(&object.kind)
                    .push_bind(object.namespace.as_deref().unwrap_or(""))
                    .push_bind(&object.name)
                    .push_bind(object.action.as_str())
                    .push_bind(&object.message)
                    .push_bind(object.health.map(Health::as_str))
                    .push_bind(&object.health_message);
            });
            insert.build().execute(&mut *tx).await?;
        }
        if let Some(inventory) = &result.inventory {
            write_inventory(&mut tx, cluster_id, inventory).await?;
        }
        sqlx::query(
            "UPDATE clusters SET \
                 sync_status = ?1, \
                 synced_revision = CASE WHEN ?1 = 'succeeded' THEN COALESCE(?2, synced_revision) \
                                        ELSE synced_revision END, \
                 last_sync_revision = COALESCE(?2, last_sync_revision), \
                 last_sync_id = ?3, last_sync_at = ?4, sync_error = ?5, \
                 sync_failures = CASE WHEN ?1 = 'succeeded' THEN 0 ELSE sync_failures + 1 END, \
                 next_sync_at = ?6, \
                 health = COALESCE(?7, health), \
                 health_checked_at = CASE WHEN ?7 IS NULL THEN health_checked_at ELSE ?4 END \
             WHERE id = ?8",
        )
        .bind(status.as_str())
        .bind(&result.revision)
        .bind(id)
        .bind(now)
        .bind(&result.error)
        .bind(result.retry_at)
        .bind(result.health.map(Health::as_str))
        .bind(cluster_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces the inventory of `cluster` outside a sync (a self-heal check
    /// that found nothing to change still learns new resource versions).
    pub async fn replace_inventory(
        &self,
        cluster: &str,
        inventory: &[InventoryRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        let cluster_id: Option<i64> = sqlx::query_scalar("SELECT id FROM clusters WHERE name = ?")
            .bind(cluster)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(cluster_id) = cluster_id else {
            return Err(StoreError::NotFound {
                what: format!("cluster `{cluster}`"),
            });
        };
        write_inventory(&mut tx, cluster_id, inventory).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks syncs left running by a stopped service as failed, so they
    /// are retried. Returns how many there were.
    pub async fn fail_interrupted_syncs(&self) -> Result<u64, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let clusters: Vec<i64> = sqlx::query_scalar(
            "UPDATE syncs SET status = 'failed', finished_at = ?, \
                 error = 'interrupted: the service stopped during the sync' \
             WHERE status = 'running' RETURNING cluster_id",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for cluster in &clusters {
            sqlx::query("UPDATE clusters SET next_sync_at = ? WHERE id = ?")
                .bind(now)
                .bind(cluster)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(clusters.len() as u64)
    }

    /// One sync of `cluster`, with its per-object results in order.
    pub async fn get_sync(
        &self,
        cluster: &str,
        id: i64,
    ) -> Result<Option<(SyncRecord, Vec<SyncObjectRecord>)>, StoreError> {
        let sql = concat!(sync_select!(), " WHERE c.name = ? AND s.id = ?");
        let Some(row) = sqlx::query_as::<_, SyncRow>(sql)
            .bind(cluster)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
        else {
            return Ok(None);
        };
        let record = SyncRecord::try_from(row)?;
        let rows = sqlx::query_as::<_, SyncObjectRow>(
            "SELECT api_version, kind, namespace, name, action, message, health, health_message \
             FROM sync_objects WHERE sync_id = ? ORDER BY position",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        let objects = rows
            .into_iter()
            .map(SyncObjectRecord::try_from)
            .collect::<Result<_, StoreError>>()?;
        Ok(Some((record, objects)))
    }

    /// Syncs of `cluster`, newest first.
    pub async fn list_syncs(
        &self,
        cluster: &str,
        query: &SyncQuery,
    ) -> Result<Vec<SyncRecord>, StoreError> {
        let sql = concat!(
            sync_select!(),
            " WHERE c.name = ? AND (? IS NULL OR s.id < ?) ORDER BY s.id DESC LIMIT ?"
        );
        let rows = sqlx::query_as::<_, SyncRow>(sql)
            .bind(cluster)
            .bind(query.before)
            .bind(query.before)
            .bind(i64::from(query.limit.clamp(1, 500)))
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(SyncRecord::try_from).collect()
    }

    /// The objects Pilothouse owns on `cluster`, in apply order.
    pub async fn inventory(&self, cluster: &str) -> Result<Vec<InventoryRecord>, StoreError> {
        let rows = sqlx::query_as::<_, InventoryRow>(
            "SELECT i.api_group, i.kind, i.namespace, i.name, i.api_version, \
                 i.manifest_sha256, i.resource_version, i.uid, i.health, i.health_message \
             FROM inventory i JOIN clusters c ON c.id = i.cluster_id \
             WHERE c.name = ? ORDER BY i.position",
        )
        .bind(cluster)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(InventoryRecord::try_from).collect()
    }

    /// Records a fresh health assessment of `cluster`: each inventory
    /// object's health (matched by group, kind, namespace and name; objects
    /// not in the inventory are ignored) and the cluster's.
    pub async fn record_health(
        &self,
        cluster: &str,
        health: Health,
        objects: &[InventoryRecord],
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        let cluster_id: Option<i64> = sqlx::query_scalar(
            "UPDATE clusters SET health = ?, health_checked_at = ? WHERE name = ? RETURNING id",
        )
        .bind(health.as_str())
        .bind(now_ms())
        .bind(cluster)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(cluster_id) = cluster_id else {
            return Err(StoreError::NotFound {
                what: format!("cluster `{cluster}`"),
            });
        };
        for object in objects {
            sqlx::query(
                "UPDATE inventory SET health = ?, health_message = ? \
                 WHERE cluster_id = ? AND api_group = ? AND kind = ? AND namespace = ? AND name = ?",
            )
            .bind(object.health.map(Health::as_str))
            .bind(&object.health_message)
            .bind(cluster_id)
            .bind(&object.api_group)
            .bind(&object.kind)
            .bind(object.namespace.as_deref().unwrap_or(""))
            .bind(&object.name)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Replaces a cluster's inventory inside a transaction.
async fn write_inventory(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    cluster_id: i64,
    inventory: &[InventoryRecord],
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM inventory WHERE cluster_id = ?")
        .bind(cluster_id)
        .execute(&mut **tx)
        .await?;
    for (chunk_index, entries) in inventory.chunks(100).enumerate() {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO inventory (cluster_id, api_group, kind, namespace, name, \
                 api_version, manifest_sha256, resource_version, uid, health, \
                 health_message, position) ",
        );
        insert.push_values(entries.iter().enumerate(), |mut row, (i, entry)| {
            row.push_bind(cluster_id)
                .push_bind(&entry.api_group)
                .push_bind(&entry.kind)
                .push_bind(entry.namespace.as_deref().unwrap_or(""))
                .push_bind(&entry.name)
                .push_bind(&entry.api_version)
                .push_bind(&entry.manifest_sha256)
                .push_bind(&entry.resource_version)
                .push_bind(&entry.uid)
                .push_bind(entry.health.map(Health::as_str))
                .push_bind(&entry.health_message)
                .push_bind((chunk_index * 100 + i) as i64);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// A row of `syncs` as [`sync_select!`] selects it.
#[derive(sqlx::FromRow)]
struct SyncRow {
    id: i64,
    cluster: String,
    trigger: String,
    status: String,
    revision: Option<String>,
    error: Option<String>,
    health: Option<String>,
    queued_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    counts: Option<String>,
}

impl TryFrom<SyncRow> for SyncRecord {
    type Error = StoreError;

    fn try_from(row: SyncRow) -> Result<SyncRecord, StoreError> {
        const COUNTS: &str = "sync_objects.action";
        let by_action: BTreeMap<String, u32> =
            decode::optional_json(row.counts.as_deref(), COUNTS)?.unwrap_or_default();
        let mut counts = SyncCounts::default();
        // Every action is counted somewhere: one this version does not know
        // is refused rather than left out of the totals.
        for (action, n) in by_action {
            let slot = match decode::text(&action, COUNTS)? {
                ObjectAction::Created => &mut counts.created,
                ObjectAction::Configured => &mut counts.configured,
                ObjectAction::Unchanged => &mut counts.unchanged,
                ObjectAction::Pruned => &mut counts.pruned,
                ObjectAction::PruneSkipped => &mut counts.prune_skipped,
                ObjectAction::Failed => &mut counts.failed,
            };
            *slot = n;
        }
        Ok(SyncRecord {
            id: row.id,
            cluster: row.cluster,
            trigger: decode::text(&row.trigger, "syncs.trigger")?,
            status: decode::text(&row.status, "syncs.status")?,
            revision: row.revision,
            error: row.error,
            health: decode::optional_text(row.health.as_deref(), "syncs.health")?,
            queued_at: row.queued_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            counts,
        })
    }
}

/// A row of `sync_objects`.
#[derive(sqlx::FromRow)]
struct SyncObjectRow {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    action: String,
    message: Option<String>,
    health: Option<String>,
    health_message: Option<String>,
}

impl TryFrom<SyncObjectRow> for SyncObjectRecord {
    type Error = StoreError;

    fn try_from(row: SyncObjectRow) -> Result<SyncObjectRecord, StoreError> {
        Ok(SyncObjectRecord {
            api_version: row.api_version,
            kind: row.kind,
            namespace: decode::namespace(row.namespace),
            name: row.name,
            action: decode::text(&row.action, "sync_objects.action")?,
            message: row.message,
            health: decode::optional_text(row.health.as_deref(), "sync_objects.health")?,
            health_message: row.health_message,
        })
    }
}

/// A row of `inventory`.
#[derive(sqlx::FromRow)]
struct InventoryRow {
    api_group: String,
    kind: String,
    namespace: String,
    name: String,
    api_version: String,
    manifest_sha256: String,
    resource_version: String,
    uid: String,
    health: Option<String>,
    health_message: Option<String>,
}

impl TryFrom<InventoryRow> for InventoryRecord {
    type Error = StoreError;

    fn try_from(row: InventoryRow) -> Result<InventoryRecord, StoreError> {
        Ok(InventoryRecord {
            api_group: row.api_group,
            kind: row.kind,
            namespace: decode::namespace(row.namespace),
            name: row.name,
            api_version: row.api_version,
            manifest_sha256: row.manifest_sha256,
            resource_version: row.resource_version,
            uid: row.uid,
            health: decode::optional_text(row.health.as_deref(), "inventory.health")?,
            health_message: row.health_message,
        })
    }
}

#[cfg(test)]
mod tests;

//! The cluster registry: registered clusters, their sealed credentials and
//! the results of connectivity checks.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::{QueryBuilder, Sqlite};

use crate::decode::{self, SealedRow};
use crate::store::now_ms;
use crate::{Cloud, ClusterSync, SealedSecret, Store, StoreError, SyncMode};

/// Columns of `clusters` that make a [`ClusterRow`] (read by name, in any
/// order). A macro so queries stay `&'static str`.
macro_rules! cluster_columns {
    () => {
        "name, cloud, cloud_source, server_url, context, labels, kubernetes_version, \
         reachability, last_error, last_check_at, next_check_at, consecutive_failures, \
         created_at, updated_at, sync_mode, sync_status, synced_revision, last_sync_id, \
         last_sync_at, sync_error, sync_failures, next_sync_at, health, health_checked_at, \
         last_sync_revision, incident_settings"
    };
}

/// The context a cluster's credentials are sealed with (bound as associated
/// data): `cluster:NAME`. Seal with it before [`Store::insert_cluster`] and
/// open [`Store::cluster_credentials`] with it.
pub fn cluster_credentials_context(name: &str) -> String {
    format!("cluster:{name}")
}

/// How a cluster's cloud was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloudSource {
    /// Given by the user at registration (or later by an update).
    Declared,
    /// Detected from the server URL, the exec plugin or the nodes.
    Detected,
    /// Nothing was declared or detected: [`Cloud::Other`].
    Default,
}

impl CloudSource {
    /// The lowercase name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            CloudSource::Declared => "declared",
            CloudSource::Detected => "detected",
            CloudSource::Default => "default",
        }
    }
}

impl fmt::Display for CloudSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CloudSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            CloudSource::Declared,
            CloudSource::Detected,
            CloudSource::Default,
        ]
        .into_iter()
        .find(|source| source.as_str() == s)
        .ok_or_else(|| format!("unknown cloud source `{s}`"))
    }
}

/// Whether the last connectivity check reached the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    /// Never checked.
    Unknown,
    /// The last check got the server version.
    Reachable,
    /// The last check failed.
    Unreachable,
}

impl Reachability {
    /// Every value, in a stable order.
    pub const ALL: [Reachability; 3] = [
        Reachability::Unknown,
        Reachability::Reachable,
        Reachability::Unreachable,
    ];

    /// The lowercase name used in the API, metrics and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Reachable => "reachable",
            Reachability::Unreachable => "unreachable",
        }
    }
}

impl fmt::Display for Reachability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reachability {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reachability::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown reachability `{s}`"))
    }
}

/// A cluster to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCluster {
    /// Unique name (validated by the caller).
    pub name: String,
    /// The cloud it runs on.
    pub cloud: Cloud,
    /// How `cloud` was decided.
    pub cloud_source: CloudSource,
    /// The API server URL from the kubeconfig.
    pub server_url: String,
    /// The kubeconfig context used.
    pub context: String,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Server version, if known; a `check` with a version takes precedence.
    pub kubernetes_version: Option<String>,
    /// The kubeconfig, sealed with the master key under
    /// [`cluster_credentials_context`].
    pub credentials: SealedSecret,
    /// The connectivity check made at registration, if any. Without one the
    /// cluster is `Unknown` and due for a check at once.
    pub check: Option<CheckRecord>,
    /// How it follows Git.
    pub sync_mode: SyncMode,
}

/// A registered cluster. It deliberately has no credentials: those are read
/// only through [`Store::cluster_credentials`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Unique name.
    pub name: String,
    /// The cloud it runs on.
    pub cloud: Cloud,
    /// How `cloud` was decided.
    pub cloud_source: CloudSource,
    /// The API server URL.
    pub server_url: String,
    /// The kubeconfig context used.
    pub context: String,
    /// User labels.
    pub labels: BTreeMap<String, String>,
    /// Server version from the last successful check (kept while unreachable).
    pub kubernetes_version: Option<String>,
    /// Result of the last connectivity check.
    pub reachability: Reachability,
    /// Error of the last check, if it failed.
    pub last_error: Option<String>,
    /// When it was last checked (unix ms).
    pub last_check_at: Option<i64>,
    /// When it is due for the next check (unix ms); `None`: due now.
    pub next_check_at: Option<i64>,
    /// Failed checks in a row (drives the backoff).
    pub consecutive_failures: u32,
    /// When it was registered (unix ms).
    pub created_at: i64,
    /// When its registration (labels, cloud) last changed (unix ms); checks
    /// do not change it.
    pub updated_at: i64,
    /// Its sync mode and the state of its syncs.
    pub sync: ClusterSync,
    /// Its incident detection settings, merged over the service-wide ones.
    pub incident_settings: Option<serde_json::Value>,
}

/// Which clusters to list, one page at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterQuery {
    /// Only clusters on this cloud.
    pub cloud: Option<Cloud>,
    /// Only clusters having all of these labels with these values.
    pub labels: Vec<(String, String)>,
    /// Keyset cursor: only clusters whose name sorts after this one
    /// ([`ClusterPage::next`] of the previous page).
    pub after: Option<String>,
    /// Page size, clamped to `1..=ClusterQuery::MAX_LIMIT`.
    pub limit: u32,
}

impl ClusterQuery {
    /// The largest page.
    pub const MAX_LIMIT: u32 = 500;
    /// The page size of [`ClusterQuery::default`].
    pub const DEFAULT_LIMIT: u32 = 100;
}

impl Default for ClusterQuery {
    /// All clusters, first page of [`ClusterQuery::DEFAULT_LIMIT`].
    fn default() -> Self {
        ClusterQuery {
            cloud: None,
            labels: Vec::new(),
            after: None,
            limit: ClusterQuery::DEFAULT_LIMIT,
        }
    }
}

/// One page of clusters in name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterPage {
    /// The clusters of this page.
    pub items: Vec<Cluster>,
    /// Cursor for the next page ([`ClusterQuery::after`]); `None` on the last.
    pub next: Option<String>,
}

/// A change to a cluster's registration; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterUpdate {
    /// Replaces all labels when given.
    pub labels: Option<BTreeMap<String, String>>,
    /// Sets the cloud; its source becomes [`CloudSource::Declared`].
    pub cloud: Option<Cloud>,
    /// Sets the sync mode.
    pub sync_mode: Option<SyncMode>,
    /// Replaces the cluster's incident detection settings (a JSON object,
    /// validated by the caller); `Some(Value::Null)` removes them.
    pub incident_settings: Option<serde_json::Value>,
}

/// The result of one connectivity check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    /// Whether the server version could be read.
    pub reachable: bool,
    /// The server version, when reachable. `None` keeps the last known one.
    pub kubernetes_version: Option<String>,
    /// What failed, when unreachable (never contains secrets).
    pub error: Option<String>,
    /// When the check ran (unix ms).
    pub checked_at: i64,
    /// When the next check is due (unix ms), after backoff.
    pub next_check_at: i64,
    /// Failed checks in a row, including this one.
    pub consecutive_failures: u32,
}

impl CheckRecord {
    fn reachability(&self) -> Reachability {
        if self.reachable {
            Reachability::Reachable
        } else {
            Reachability::Unreachable
        }
    }
}

impl Store {
    /// Registers a cluster. A cluster of the same name is
    /// [`StoreError::Conflict`].
    pub async fn insert_cluster(&self, new: &NewCluster) -> Result<Cluster, StoreError> {
        let now = now_ms();
        let check = new.check.as_ref();
        let version = check
            .and_then(|c| c.kubernetes_version.as_ref())
            .or(new.kubernetes_version.as_ref());
        let sql = concat!(
            "INSERT INTO clusters (name, cloud, cloud_source, server_url, context, labels, \
                 kubernetes_version, credentials_key_id, credentials_nonce, \
                 credentials_ciphertext, reachability, last_error, last_check_at, \
                 next_check_at, consecutive_failures, created_at, updated_at, sync_mode) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             RETURNING ",
            cluster_columns!()
        );
        let row = sqlx::query_as::<_, ClusterRow>(sql)
            .bind(&new.name)
            .bind(new.cloud.as_str())
            .bind(new.cloud_source.as_str())
            .bind(&new.server_url)
            .bind(&new.context)
            .bind(labels_json(&new.labels))
            .bind(version)
            .bind(&new.credentials.key_id)
            .bind(&new.credentials.nonce)
            .bind(&new.credentials.ciphertext)
            .bind(
                check
                    .map_or(Reachability::Unknown, CheckRecord::reachability)
                    .as_str(),
            )
            .bind(check.and_then(|c| c.error.as_ref()))
            .bind(check.map(|c| c.checked_at))
            .bind(check.map(|c| c.next_check_at))
            .bind(check.map_or(0, |c| i64::from(c.consecutive_failures)))
            .bind(now)
            .bind(now)
            .bind(new.sync_mode.as_str())
            .fetch_one(&self.writer)
            .await
            .map_err(|e| StoreError::from_write(e, || format!("cluster `{}`", new.name)))?;
        row.try_into()
    }

    /// The cluster of this name, if registered.
    pub async fn get_cluster(&self, name: &str) -> Result<Option<Cluster>, StoreError> {
        let sql = concat!(
            "SELECT ",
            cluster_columns!(),
            " FROM clusters WHERE name = ?"
        );
        let row = sqlx::query_as::<_, ClusterRow>(sql)
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        row.map(Cluster::try_from).transpose()
    }

    /// Every registered cluster, in name order (read page by page).
    pub async fn all_clusters(&self) -> Result<Vec<Cluster>, StoreError> {
        let mut clusters = Vec::new();
        let mut query = ClusterQuery {
            limit: ClusterQuery::MAX_LIMIT,
            ..ClusterQuery::default()
        };
        loop {
            let page = self.list_clusters(&query).await?;
            clusters.extend(page.items);
            match page.next {
                Some(next) => query.after = Some(next),
                None => return Ok(clusters),
            }
        }
    }

    /// One page of the clusters matching `query`, in name order.
    pub async fn list_clusters(&self, query: &ClusterQuery) -> Result<ClusterPage, StoreError> {
        let limit = query.limit.clamp(1, ClusterQuery::MAX_LIMIT);
        let mut sql = list_query(query, limit);
        let rows = sql
            .build_query_as::<ClusterRow>()
            .fetch_all(&self.reader)
            .await?;

        let mut items = rows
            .into_iter()
            .map(Cluster::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|c| c.name.clone())
        } else {
            None
        };
        Ok(ClusterPage { items, next })
    }

    /// Changes a cluster's registration; `None` if there is no such cluster.
    /// Setting the cloud makes its source [`CloudSource::Declared`].
    pub async fn update_cluster(
        &self,
        name: &str,
        update: &ClusterUpdate,
    ) -> Result<Option<Cluster>, StoreError> {
        if update.labels.is_none()
            && update.cloud.is_none()
            && update.sync_mode.is_none()
            && update.incident_settings.is_none()
        {
            return self.get_cluster(name).await;
        }
        let sql = concat!(
            "UPDATE clusters SET \
                 labels = COALESCE(?1, labels), \
                 cloud = COALESCE(?2, cloud), \
                 cloud_source = CASE WHEN ?2 IS NULL THEN cloud_source ELSE 'declared' END, \
                 sync_mode = COALESCE(?5, sync_mode), \
                 incident_settings = CASE WHEN ?6 THEN ?7 ELSE incident_settings END, \
                 updated_at = ?3 \
             WHERE name = ?4 \
             RETURNING ",
            cluster_columns!()
        );
        let row = sqlx::query_as::<_, ClusterRow>(sql)
            .bind(update.labels.as_ref().map(labels_json))
            .bind(update.cloud.map(Cloud::as_str))
            .bind(now_ms())
            .bind(name)
            .bind(update.sync_mode.map(SyncMode::as_str))
            .bind(update.incident_settings.is_some())
            .bind(
                update
                    .incident_settings
                    .as_ref()
                    .filter(|settings| !settings.is_null())
                    .map(serde_json::Value::to_string),
            )
            .fetch_optional(&self.writer)
            .await?;
        row.map(Cluster::try_from).transpose()
    }

    /// Unregisters a cluster; `false` if there was none of this name.
    pub async fn delete_cluster(&self, name: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM clusters WHERE name = ?")
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// The sealed kubeconfig of a cluster, to be opened with the master key
    /// and [`cluster_credentials_context`].
    pub async fn cluster_credentials(
        &self,
        name: &str,
    ) -> Result<Option<SealedSecret>, StoreError> {
        let row = sqlx::query_as::<_, SealedRow>(
            "SELECT credentials_key_id AS key_id, credentials_nonce AS nonce, \
                 credentials_ciphertext AS ciphertext \
             FROM clusters WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(SealedSecret::from))
    }

    /// Replaces a cluster's sealed kubeconfig (e.g. after key rotation or a
    /// credentials update). [`StoreError::NotFound`] if there is no such
    /// cluster.
    pub async fn set_cluster_credentials(
        &self,
        name: &str,
        credentials: &SealedSecret,
    ) -> Result<(), StoreError> {
        let result = sqlx::query(
            "UPDATE clusters SET credentials_key_id = ?, credentials_nonce = ?, \
                 credentials_ciphertext = ?, updated_at = ? \
             WHERE name = ?",
        )
        .bind(&credentials.key_id)
        .bind(&credentials.nonce)
        .bind(&credentials.ciphertext)
        .bind(now_ms())
        .bind(name)
        .execute(&self.writer)
        .await?;
        found(result.rows_affected(), name)
    }

    /// Records the result of a connectivity check: reachability, server
    /// version (kept when the check has none), error, check time, next check
    /// time and failures in a row. [`StoreError::NotFound`] if there is no
    /// such cluster (e.g. it was deleted while being checked).
    pub async fn record_check(&self, name: &str, check: &CheckRecord) -> Result<(), StoreError> {
        let result = sqlx::query(
            "UPDATE clusters SET \
                 reachability = ?, \
                 kubernetes_version = COALESCE(?, kubernetes_version), \
                 last_error = ?, \
                 last_check_at = ?, \
                 next_check_at = ?, \
                 consecutive_failures = ? \
             WHERE name = ?",
        )
        .bind(check.reachability().as_str())
        .bind(&check.kubernetes_version)
        .bind(&check.error)
        .bind(check.checked_at)
        .bind(check.next_check_at)
        .bind(i64::from(check.consecutive_failures))
        .bind(name)
        .execute(&self.writer)
        .await?;
        found(result.rows_affected(), name)
    }

    /// Up to `limit` clusters due for a connectivity check at `now_ms`
    /// (never checked, or `next_check_at <= now_ms`): never-checked first,
    /// then the most overdue.
    pub async fn clusters_due_for_check(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> Result<Vec<Cluster>, StoreError> {
        let sql = concat!(
            "SELECT ",
            cluster_columns!(),
            " FROM clusters \
             WHERE next_check_at IS NULL OR next_check_at <= ? \
             ORDER BY next_check_at, name LIMIT ?"
        );
        let rows = sqlx::query_as::<_, ClusterRow>(sql)
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(Cluster::try_from).collect()
    }

    /// The number of clusters in each [`Reachability`], every value present
    /// (zero included), in the order of [`Reachability::ALL`].
    pub async fn count_clusters_by_reachability(
        &self,
    ) -> Result<Vec<(Reachability, u64)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct CountRow {
            reachability: String,
            clusters: i64,
        }
        let rows = sqlx::query_as::<_, CountRow>(
            "SELECT reachability, COUNT(*) AS clusters FROM clusters GROUP BY reachability",
        )
        .fetch_all(&self.reader)
        .await?;
        let mut counts = Reachability::ALL.map(|r| (r, 0u64));
        for row in rows {
            let reachability: Reachability =
                decode::text(&row.reachability, "clusters.reachability")?;
            let count = decode::number(row.clusters, "COUNT(clusters)")?;
            if let Some(slot) = counts.iter_mut().find(|(r, _)| *r == reachability) {
                slot.1 = count;
            }
        }
        Ok(counts.to_vec())
    }
}

/// The query behind [`Store::list_clusters`]: clusters matching `query`, in
/// name order, at most `limit + 1` (the extra row tells whether there is a
/// next page).
pub(crate) fn list_query(query: &ClusterQuery, limit: u32) -> QueryBuilder<Sqlite> {
    let mut sql = QueryBuilder::<Sqlite>::new(concat!(
        "SELECT ",
        cluster_columns!(),
        " FROM clusters WHERE 1"
    ));
    if let Some(after) = &query.after {
        sql.push(" AND name > ").push_bind(after);
    }
    if let Some(cloud) = query.cloud {
        sql.push(" AND cloud = ").push_bind(cloud.as_str());
    }
    // json_each yields the keys as plain text, so keys with dots, slashes
    // or quotes need no JSON-path escaping.
    for (key, value) in &query.labels {
        sql.push(
            " AND EXISTS (SELECT 1 FROM json_each(clusters.labels) AS label WHERE label.key = ",
        )
        .push_bind(key)
        .push(" AND label.value = ")
        .push_bind(value)
        .push(")");
    }
    sql.push(" ORDER BY name LIMIT ")
        .push_bind(i64::from(limit) + 1);
    sql
}

fn found(rows_affected: u64, name: &str) -> Result<(), StoreError> {
    if rows_affected == 0 {
        Err(StoreError::NotFound {
            what: format!("cluster `{name}`"),
        })
    } else {
        Ok(())
    }
}

fn labels_json(labels: &BTreeMap<String, String>) -> String {
    serde_json::to_string(labels).expect("a map of strings always serialises")
}

/// A row of `clusters` as [`cluster_columns!`] selects it.
#[derive(sqlx::FromRow)]
struct ClusterRow {
    name: String,
    cloud: String,
    cloud_source: String,
    server_url: String,
    context: String,
    labels: String,
    kubernetes_version: Option<String>,
    reachability: String,
    last_error: Option<String>,
    last_check_at: Option<i64>,
    next_check_at: Option<i64>,
    consecutive_failures: i64,
    created_at: i64,
    updated_at: i64,
    sync_mode: String,
    sync_status: String,
    synced_revision: Option<String>,
    last_sync_id: Option<i64>,
    last_sync_at: Option<i64>,
    sync_error: Option<String>,
    sync_failures: i64,
    next_sync_at: Option<i64>,
    health: String,
    health_checked_at: Option<i64>,
    last_sync_revision: Option<String>,
    incident_settings: Option<String>,
}

impl TryFrom<ClusterRow> for Cluster {
    type Error = StoreError;

    fn try_from(row: ClusterRow) -> Result<Cluster, StoreError> {
        Ok(Cluster {
            name: row.name,
            cloud: decode::text(&row.cloud, "clusters.cloud")?,
            cloud_source: decode::text(&row.cloud_source, "clusters.cloud_source")?,
            server_url: row.server_url,
            context: row.context,
            labels: decode::json(&row.labels, "clusters.labels")?,
            kubernetes_version: row.kubernetes_version,
            reachability: decode::text(&row.reachability, "clusters.reachability")?,
            last_error: row.last_error,
            last_check_at: row.last_check_at,
            next_check_at: row.next_check_at,
            consecutive_failures: decode::number(
                row.consecutive_failures,
                "clusters.consecutive_failures",
            )?,
            created_at: row.created_at,
            updated_at: row.updated_at,
            sync: ClusterSync {
                mode: decode::text(&row.sync_mode, "clusters.sync_mode")?,
                status: decode::text(&row.sync_status, "clusters.sync_status")?,
                revision: row.synced_revision,
                last_sync_id: row.last_sync_id,
                last_sync_at: row.last_sync_at,
                error: row.sync_error,
                failures: decode::number(row.sync_failures, "clusters.sync_failures")?,
                next_sync_at: row.next_sync_at,
                health: decode::text(&row.health, "clusters.health")?,
                health_checked_at: row.health_checked_at,
                last_revision: row.last_sync_revision,
            },
            incident_settings: decode::optional_json(
                row.incident_settings.as_deref(),
                "clusters.incident_settings",
            )?,
        })
    }
}

#[cfg(test)]
mod tests;

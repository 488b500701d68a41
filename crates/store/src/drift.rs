//! Drift reports: scan results per cluster (one row per distinct result, a
//! repeat only moves `last_seen_at`), the drifted objects with their field
//! diffs, when each object's drift started and ended, and the ignore rules.

use std::collections::{BTreeMap, HashSet};

use ring::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};
use sqlx::{Sqlite, Transaction};

use crate::crypto::hex;
use crate::decode;
use crate::store::now_ms;
use crate::text_enum::text_enum;
use crate::{Store, StoreError};

text_enum! {
    /// How one object compares with Git.
    pub enum DriftState ("drift state") {
        /// As Git says.
        InSync = "in_sync",
        /// Some fields differ.
        Modified = "modified",
        /// Not on the cluster.
        Missing = "missing",
        /// On the cluster and in the inventory, gone from Git.
        Extra = "extra",
        /// Could not be compared.
        Unknown = "unknown",
    }
}

text_enum! {
    /// The result of one scan of a cluster.
    pub enum ScanStatus ("scan status") {
        /// Every object as Git says.
        InSync = "in_sync",
        /// Some object differs, is missing or extra.
        Drifted = "drifted",
        /// The scan could not tell (the cluster did not answer, nothing
        /// was ever synced, the revision does not render).
        Unknown = "unknown",
    }
}

text_enum! {
    /// Why a scan ran.
    pub enum ScanTrigger ("scan trigger") {
        /// The periodic scan.
        Schedule = "schedule",
        /// Right after a sync.
        Sync = "sync",
        /// Someone asked.
        Manual = "manual",
    }
}

/// A differing field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDiffRecord {
    /// JSON pointer of the field.
    pub path: String,
    /// Its live value (`None`: absent live); secret values are masked.
    pub live: Option<serde_json::Value>,
    /// The value Git wants (`None`: absent in Git); secret values are masked.
    pub desired: Option<serde_json::Value>,
}

/// An object of a scan that is not in sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftObjectRecord {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// How it differs.
    pub state: DriftState,
    /// The differing fields (for `modified`).
    pub diffs: Vec<FieldDiffRecord>,
    /// Why it could not be compared (for `unknown`).
    pub message: Option<String>,
    /// A readable unified diff, live against desired (secrets masked);
    /// empty when there is none to show.
    pub unified: String,
    /// Since when it has been in this state (unix ms); filled when read.
    pub since: Option<i64>,
}

/// Objects per state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftCounts {
    /// In sync.
    pub in_sync: u32,
    /// Modified.
    pub modified: u32,
    /// Missing.
    pub missing: u32,
    /// Extra.
    pub extra: u32,
    /// Not comparable.
    pub unknown: u32,
}

/// A finished scan, to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDriftReport {
    /// Why it ran.
    pub trigger: ScanTrigger,
    /// Its result.
    pub status: ScanStatus,
    /// The revision compared.
    pub revision: Option<String>,
    /// Why it could not tell.
    pub error: Option<String>,
    /// Objects per state (in-sync objects are only counted).
    pub counts: DriftCounts,
    /// The objects not in sync, in a stable order.
    pub objects: Vec<DriftObjectRecord>,
    /// When the scan started (unix ms).
    pub started_at: i64,
}

/// A recorded scan result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Increasing id.
    pub id: i64,
    /// The cluster's name.
    pub cluster: String,
    /// Why the first scan with this result ran.
    pub trigger: ScanTrigger,
    /// The result.
    pub status: ScanStatus,
    /// The revision compared.
    pub revision: Option<String>,
    /// Why the scan could not tell.
    pub error: Option<String>,
    /// Objects per state.
    pub counts: DriftCounts,
    /// When the first scan with this result started (unix ms).
    pub started_at: i64,
    /// When it finished (unix ms).
    pub finished_at: i64,
    /// When the last scan with this same result finished (unix ms).
    pub last_seen_at: i64,
    /// How many scans found this result.
    pub scans: u32,
    /// The objects not in sync (empty in history listings).
    pub objects: Vec<DriftObjectRecord>,
}

/// One stretch of time an object was drifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftEpisode {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// The state it was in.
    pub state: DriftState,
    /// When the drift was first seen (unix ms).
    pub started_at: i64,
    /// When it was first seen gone (unix ms); `None`: still drifted.
    pub ended_at: Option<i64>,
}

/// One cluster's line of the fleet summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDrift {
    /// The cluster's name.
    pub cluster: String,
    /// Its latest report, if it was ever scanned.
    pub status: Option<ScanStatus>,
    /// Objects per state in the latest report.
    pub counts: DriftCounts,
    /// When the latest scan finished (unix ms).
    pub last_scan_at: Option<i64>,
    /// When its oldest unresolved drift started (unix ms).
    pub oldest_drift_since: Option<i64>,
    /// How long its latest scan took (ms).
    pub last_scan_duration_ms: Option<i64>,
}

/// A rule that keeps some fields out of drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IgnoreRuleRecord {
    /// Id (for deletion); ignored on insert.
    pub id: i64,
    /// The cluster it applies to; `None`: every cluster.
    pub cluster: Option<String>,
    /// API group (`""` core, `*` any).
    pub api_group: String,
    /// Kind (`*` any).
    pub kind: String,
    /// Namespace; `None`: any.
    pub namespace: Option<String>,
    /// Name; `*` is a wildcard.
    pub name: String,
    /// A JSON pointer to ignore (with what is under it)…
    pub pointer: Option<String>,
    /// …or the fields this field manager owns.
    pub managed_by: Option<String>,
}

/// Columns of a [`ReportRow`] (`r`: the report, `c`: its cluster). A macro
/// so queries stay `&'static str`.
macro_rules! report_select {
    () => {
        "SELECT r.id, c.name AS cluster, r.trigger, r.status, r.revision, r.error, r.in_sync, r.modified, \
             r.missing, r.extra, r.unknown, r.started_at, r.finished_at, r.last_seen_at, r.scans \
         FROM drift_reports r JOIN clusters c ON c.id = r.cluster_id"
    };
}

impl Store {
    /// Records a scan of `cluster`. When its result equals the latest
    /// report's, that report's `last_seen_at` and scan count move and no row
    /// is added; otherwise a new report is stored. Either way the objects'
    /// drift episodes are brought up to date (an `unknown` scan leaves them
    /// as they are: it saw nothing). Returns the report in force and whether
    /// it is new.
    pub async fn record_drift_report(
        &self,
        cluster: &str,
        report: &NewDriftReport,
    ) -> Result<(DriftReport, bool), StoreError> {
        let fingerprint = fingerprint(report);
        let now = now_ms();
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
        #[derive(sqlx::FromRow)]
        struct LatestRow {
            id: i64,
            fingerprint: String,
        }
        let latest = sqlx::query_as::<_, LatestRow>(
            "SELECT id, fingerprint FROM drift_reports WHERE cluster_id = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(cluster_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (id, new) = match latest {
            Some(LatestRow {
                id,
                fingerprint: previous,
            }) if previous == fingerprint => {
                sqlx::query(
                    "UPDATE drift_reports SET last_seen_at = ?, scans = scans + 1, \
                         last_duration_ms = ? WHERE id = ?",
                )
                .bind(now)
                .bind((now - report.started_at).max(0))
                .bind(id)
                .execute(&mut *tx)
                .await?;
                (id, false)
            }
            _ => (
                insert_report(&mut tx, cluster_id, report, &fingerprint, now).await?,
                true,
            ),
        };
        if report.status != ScanStatus::Unknown {
            update_episodes(&mut tx, cluster_id, &report.objects, now).await?;
        }
        tx.commit().await?;
        let report = self
            .drift_report(cluster, id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("drift report {id}"),
            })?;
        Ok((report, new))
    }

    /// The latest report of `cluster`, with its objects and since when each
    /// has drifted.
    pub async fn latest_drift_report(
        &self,
        cluster: &str,
    ) -> Result<Option<DriftReport>, StoreError> {
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(r.id) FROM drift_reports r JOIN clusters c ON c.id = r.cluster_id \
             WHERE c.name = ?",
        )
        .bind(cluster)
        .fetch_one(&self.reader)
        .await?;
        match id {
            Some(id) => self.drift_report(cluster, id).await,
            None => Ok(None),
        }
    }

    /// One report of `cluster` with its objects.
    pub async fn drift_report(
        &self,
        cluster: &str,
        id: i64,
    ) -> Result<Option<DriftReport>, StoreError> {
        let sql = concat!(report_select!(), " WHERE c.name = ? AND r.id = ?");
        let Some(row) = sqlx::query_as::<_, ReportRow>(sql)
            .bind(cluster)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
        else {
            return Ok(None);
        };
        let mut report = DriftReport::try_from(row)?;
        let rows = sqlx::query_as::<_, DriftObjectRow>(
            "SELECT o.api_version, o.kind, o.namespace, o.name, o.state, o.diffs, o.message, o.unified, \
                 (SELECT e.started_at FROM drift_episodes e JOIN drift_reports r ON r.id = o.report_id \
                  WHERE e.cluster_id = r.cluster_id AND e.kind = o.kind AND e.namespace = o.namespace \
                    AND e.name = o.name AND e.api_version = o.api_version AND e.state = o.state \
                    AND e.started_at <= r.last_seen_at \
                  ORDER BY e.id DESC LIMIT 1) AS since \
             FROM drift_objects o WHERE o.report_id = ? ORDER BY o.position",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        report.objects = rows
            .into_iter()
            .map(DriftObjectRecord::try_from)
            .collect::<Result<_, StoreError>>()?;
        Ok(Some(report))
    }

    /// Reports of `cluster`, newest first, without their objects.
    pub async fn drift_history(
        &self,
        cluster: &str,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<DriftReport>, StoreError> {
        let sql = concat!(
            report_select!(),
            " WHERE c.name = ? AND (? IS NULL OR r.id < ?) ORDER BY r.id DESC LIMIT ?"
        );
        let rows = sqlx::query_as::<_, ReportRow>(sql)
            .bind(cluster)
            .bind(before)
            .bind(before)
            .bind(i64::from(limit.clamp(1, 500)))
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(DriftReport::try_from).collect()
    }

    /// When objects of `cluster` drifted and recovered, newest first.
    pub async fn drift_episodes(
        &self,
        cluster: &str,
        limit: u32,
    ) -> Result<Vec<DriftEpisode>, StoreError> {
        let rows = sqlx::query_as::<_, EpisodeRow>(
            "SELECT e.api_version, e.kind, e.namespace, e.name, e.state, e.started_at, e.ended_at \
             FROM drift_episodes e JOIN clusters c ON c.id = e.cluster_id \
             WHERE c.name = ? ORDER BY e.id DESC LIMIT ?",
        )
        .bind(cluster)
        .bind(i64::from(limit.clamp(1, 500)))
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(DriftEpisode::try_from).collect()
    }

    /// Every cluster's latest scan result and oldest unresolved drift, by name.
    pub async fn drift_summary(&self) -> Result<Vec<ClusterDrift>, StoreError> {
        // Counts are 0 for a cluster never scanned (no report to join).
        let rows = sqlx::query_as::<_, SummaryRow>(
            "SELECT c.name AS cluster, r.status, COALESCE(r.in_sync, 0) AS in_sync, \
                 COALESCE(r.modified, 0) AS modified, COALESCE(r.missing, 0) AS missing, \
                 COALESCE(r.extra, 0) AS extra, COALESCE(r.unknown, 0) AS unknown, \
                 r.last_seen_at AS last_scan_at, \
                 (SELECT MIN(e.started_at) FROM drift_episodes e \
                  WHERE e.cluster_id = c.id AND e.ended_at IS NULL) AS oldest_drift_since, \
                 r.last_duration_ms AS last_scan_duration_ms \
             FROM clusters c \
             LEFT JOIN drift_reports r ON r.id = \
                 (SELECT MAX(id) FROM drift_reports WHERE cluster_id = c.id) \
             ORDER BY c.name",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(ClusterDrift::try_from).collect()
    }

    /// Adds an ignore rule; `rule.cluster` must name a registered cluster
    /// when given. Returns it with its id.
    pub async fn add_ignore_rule(
        &self,
        rule: &IgnoreRuleRecord,
    ) -> Result<IgnoreRuleRecord, StoreError> {
        let cluster_id: Option<i64> = match &rule.cluster {
            None => None,
            Some(name) => Some(
                sqlx::query_scalar("SELECT id FROM clusters WHERE name = ?")
                    .bind(name)
                    .fetch_optional(&self.reader)
                    .await?
                    .ok_or_else(|| StoreError::NotFound {
                        what: format!("cluster `{name}`"),
                    })?,
            ),
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO drift_ignore_rules (cluster_id, api_group, kind, namespace, name, \
                 pointer, managed_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(cluster_id)
        .bind(&rule.api_group)
        .bind(&rule.kind)
        .bind(&rule.namespace)
        .bind(&rule.name)
        .bind(&rule.pointer)
        .bind(&rule.managed_by)
        .bind(now_ms())
        .fetch_one(&self.writer)
        .await?;
        Ok(IgnoreRuleRecord { id, ..rule.clone() })
    }

    /// The rules that apply to `cluster` (its own and the global ones), or
    /// with `None` every rule.
    pub async fn ignore_rules(
        &self,
        cluster: Option<&str>,
    ) -> Result<Vec<IgnoreRuleRecord>, StoreError> {
        let rows = sqlx::query_as::<_, IgnoreRuleRow>(
            "SELECT r.id, c.name AS cluster, r.api_group, r.kind, r.namespace, r.name, r.pointer, \
                 r.managed_by \
             FROM drift_ignore_rules r LEFT JOIN clusters c ON c.id = r.cluster_id \
             WHERE ?1 IS NULL OR r.cluster_id IS NULL OR c.name = ?1 ORDER BY r.id",
        )
        .bind(cluster)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(IgnoreRuleRecord::from).collect())
    }

    /// Deletes an ignore rule; `false` if there was none with this id.
    pub async fn delete_ignore_rule(&self, id: i64) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM drift_ignore_rules WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected() > 0)
    }
}

async fn insert_report(
    tx: &mut Transaction<'_, Sqlite>,
    cluster_id: i64,
    report: &NewDriftReport,
    fingerprint: &str,
    now: i64,
) -> Result<i64, StoreError> {
    let counts = &report.counts;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO drift_reports (cluster_id, trigger, status, revision, error, in_sync, \
             modified, missing, extra, unknown, fingerprint, started_at, finished_at, last_seen_at, \
             last_duration_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(cluster_id)
    .bind(report.trigger.as_str())
    .bind(report.status.as_str())
    .bind(&report.revision)
    .bind(&report.error)
    .bind(i64::from(counts.in_sync))
    .bind(i64::from(counts.modified))
    .bind(i64::from(counts.missing))
    .bind(i64::from(counts.extra))
    .bind(i64::from(counts.unknown))
    .bind(fingerprint)
    .bind(report.started_at)
    .bind(now)
    .bind(now)
    .bind((now - report.started_at).max(0))
    .fetch_one(&mut **tx)
    .await?;
    for (position, object) in report.objects.iter().enumerate() {
        sqlx::query(
            "INSERT INTO drift_objects (report_id, position, api_version, kind, namespace, name, \
                 state, diffs, message, unified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(position as i64)
        .bind(&object.api_version)
        .bind(&object.kind)
        .bind(object.namespace.as_deref().unwrap_or(""))
        .bind(&object.name)
        .bind(object.state.as_str())
        .bind(serde_json::to_string(&object.diffs).expect("diffs serialise"))
        .bind(&object.message)
        .bind(&object.unified)
        .execute(&mut **tx)
        .await?;
    }
    Ok(id)
}

/// Opens an episode for each drifted object without an open one in the same
/// state (closing one in another state), and closes the open episodes of
/// objects no longer drifted.
async fn update_episodes(
    tx: &mut Transaction<'_, Sqlite>,
    cluster_id: i64,
    objects: &[DriftObjectRecord],
    now: i64,
) -> Result<(), StoreError> {
    /// An open episode, by the object's key as stored (`''`: no namespace).
    #[derive(sqlx::FromRow)]
    struct OpenEpisodeRow {
        id: i64,
        api_version: String,
        kind: String,
        namespace: String,
        name: String,
        state: String,
    }
    let open = sqlx::query_as::<_, OpenEpisodeRow>(
        "SELECT id, api_version, kind, namespace, name, state FROM drift_episodes \
         WHERE cluster_id = ? AND ended_at IS NULL",
    )
    .bind(cluster_id)
    .fetch_all(&mut **tx)
    .await?;
    let drifted: BTreeMap<(&str, &str, &str, &str), &str> = objects
        .iter()
        .filter(|o| o.state != DriftState::InSync)
        .map(|o| {
            (
                (
                    o.api_version.as_str(),
                    o.kind.as_str(),
                    o.namespace.as_deref().unwrap_or(""),
                    o.name.as_str(),
                ),
                o.state.as_str(),
            )
        })
        .collect();
    let mut still_open = HashSet::new();
    for episode in &open {
        let key = (
            episode.api_version.as_str(),
            episode.kind.as_str(),
            episode.namespace.as_str(),
            episode.name.as_str(),
        );
        if drifted.get(&key) == Some(&episode.state.as_str()) {
            still_open.insert(key);
        } else {
            sqlx::query("UPDATE drift_episodes SET ended_at = ? WHERE id = ?")
                .bind(now)
                .bind(episode.id)
                .execute(&mut **tx)
                .await?;
        }
    }
    for (key, state) in &drifted {
        if still_open.contains(key) {
            continue;
        }
        let (api_version, kind, namespace, name) = key;
        sqlx::query(
            "INSERT INTO drift_episodes (cluster_id, api_version, kind, namespace, name, state, \
                 started_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(cluster_id)
        .bind(api_version)
        .bind(kind)
        .bind(namespace)
        .bind(name)
        .bind(state)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// SHA-256 over what makes two scan results the same.
fn fingerprint(report: &NewDriftReport) -> String {
    let canonical = serde_json::json!({
        "status": report.status,
        "revision": report.revision,
        "error": report.error,
        "counts": report.counts,
        "objects": report.objects.iter().map(|o| serde_json::json!([
            o.api_version, o.kind, o.namespace, o.name, o.state, o.diffs, o.message,
        ])).collect::<Vec<_>>(),
    });
    hex(digest(&SHA256, canonical.to_string().as_bytes()).as_ref())
}

/// Five count columns: in sync, modified, missing, extra, unknown.
#[derive(sqlx::FromRow)]
struct CountsRow {
    in_sync: i64,
    modified: i64,
    missing: i64,
    extra: i64,
    unknown: i64,
}

impl TryFrom<CountsRow> for DriftCounts {
    type Error = StoreError;

    fn try_from(row: CountsRow) -> Result<DriftCounts, StoreError> {
        Ok(DriftCounts {
            in_sync: decode::number(row.in_sync, "drift_reports.in_sync")?,
            modified: decode::number(row.modified, "drift_reports.modified")?,
            missing: decode::number(row.missing, "drift_reports.missing")?,
            extra: decode::number(row.extra, "drift_reports.extra")?,
            unknown: decode::number(row.unknown, "drift_reports.unknown")?,
        })
    }
}

/// A row of `drift_reports` as [`report_select!`] selects it.
#[derive(sqlx::FromRow)]
struct ReportRow {
    id: i64,
    cluster: String,
    trigger: String,
    status: String,
    revision: Option<String>,
    error: Option<String>,
    #[sqlx(flatten)]
    counts: CountsRow,
    started_at: i64,
    finished_at: i64,
    last_seen_at: i64,
    scans: i64,
}

impl TryFrom<ReportRow> for DriftReport {
    type Error = StoreError;

    fn try_from(row: ReportRow) -> Result<DriftReport, StoreError> {
        Ok(DriftReport {
            id: row.id,
            cluster: row.cluster,
            trigger: decode::text(&row.trigger, "drift_reports.trigger")?,
            status: decode::text(&row.status, "drift_reports.status")?,
            revision: row.revision,
            error: row.error,
            counts: row.counts.try_into()?,
            started_at: row.started_at,
            finished_at: row.finished_at,
            last_seen_at: row.last_seen_at,
            scans: decode::number(row.scans, "drift_reports.scans")?,
            objects: Vec::new(),
        })
    }
}

/// A row of `drift_objects`, with since when its drift has lasted.
#[derive(sqlx::FromRow)]
struct DriftObjectRow {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    state: String,
    diffs: String,
    message: Option<String>,
    unified: String,
    since: Option<i64>,
}

impl TryFrom<DriftObjectRow> for DriftObjectRecord {
    type Error = StoreError;

    fn try_from(row: DriftObjectRow) -> Result<DriftObjectRecord, StoreError> {
        Ok(DriftObjectRecord {
            api_version: row.api_version,
            kind: row.kind,
            namespace: decode::namespace(row.namespace),
            name: row.name,
            state: decode::text(&row.state, "drift_objects.state")?,
            diffs: decode::json(&row.diffs, "drift_objects.diffs")?,
            message: row.message,
            unified: row.unified,
            since: row.since,
        })
    }
}

/// A row of `drift_episodes`.
#[derive(sqlx::FromRow)]
struct EpisodeRow {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
    state: String,
    started_at: i64,
    ended_at: Option<i64>,
}

impl TryFrom<EpisodeRow> for DriftEpisode {
    type Error = StoreError;

    fn try_from(row: EpisodeRow) -> Result<DriftEpisode, StoreError> {
        Ok(DriftEpisode {
            api_version: row.api_version,
            kind: row.kind,
            namespace: decode::namespace(row.namespace),
            name: row.name,
            state: decode::text(&row.state, "drift_episodes.state")?,
            started_at: row.started_at,
            ended_at: row.ended_at,
        })
    }
}

/// A cluster's line of [`Store::drift_summary`].
#[derive(sqlx::FromRow)]
struct SummaryRow {
    cluster: String,
    status: Option<String>,
    #[sqlx(flatten)]
    counts: CountsRow,
    last_scan_at: Option<i64>,
    oldest_drift_since: Option<i64>,
    last_scan_duration_ms: Option<i64>,
}

impl TryFrom<SummaryRow> for ClusterDrift {
    type Error = StoreError;

    fn try_from(row: SummaryRow) -> Result<ClusterDrift, StoreError> {
        Ok(ClusterDrift {
            cluster: row.cluster,
            status: decode::optional_text(row.status.as_deref(), "drift_reports.status")?,
            counts: row.counts.try_into()?,
            last_scan_at: row.last_scan_at,
            oldest_drift_since: row.oldest_drift_since,
            last_scan_duration_ms: row.last_scan_duration_ms,
        })
    }
}

/// A row of `drift_ignore_rules` with its cluster's name.
#[derive(sqlx::FromRow)]
struct IgnoreRuleRow {
    id: i64,
    cluster: Option<String>,
    api_group: String,
    kind: String,
    namespace: Option<String>,
    name: String,
    pointer: Option<String>,
    managed_by: Option<String>,
}

impl From<IgnoreRuleRow> for IgnoreRuleRecord {
    fn from(row: IgnoreRuleRow) -> IgnoreRuleRecord {
        IgnoreRuleRecord {
            id: row.id,
            cluster: row.cluster,
            api_group: row.api_group,
            kind: row.kind,
            namespace: row.namespace,
            name: row.name,
            pointer: row.pointer,
            managed_by: row.managed_by,
        }
    }
}

#[cfg(test)]
mod tests;

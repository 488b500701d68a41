//! Drift scans: on a jittered schedule per cluster, after each sync, and on
//! demand. A scan renders the cluster's desired state at the head revision
//! (as a sync would), asks `fleet` what each object would become and what
//! it is, compares them with `drift`, and records the report.
//!
//! Results are reused between scans for objects whose desired content and
//! live resourceVersion did not change (and while the ignore rules are the
//! same), so a repeat scan of an unchanged cluster costs a few list calls.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use pilothouse_drift::{Ignore, IgnoreRule, ObjectDrift, ObjectRef, Target};
use pilothouse_fleet::{
    InventoryEntry, ObjectKey, Observation, Observed, PreviousObservation, SyncError,
};
use pilothouse_store::{
    Cluster, DriftCounts, DriftObjectRecord, DriftReport, DriftState, FieldDiffRecord,
    IgnoreRuleRecord, NewDriftReport, ScanStatus, ScanTrigger,
};
use tokio::sync::watch;

use super::syncer::{inventory_entry, render_cluster};
use super::{Controller, now_ms, stopped};

/// What the last scan found for one object, reusable while neither side
/// changes.
#[derive(Debug, Clone)]
pub(super) struct CachedObject {
    manifest_sha256: String,
    live_resource_version: Option<String>,
    drift: ObjectDrift,
    unified: String,
}

/// The last scan's per-object results of one cluster.
#[derive(Debug, Default)]
pub(super) struct ScanCache {
    /// The ignore rules the results were computed with.
    rules: Vec<IgnoreRule>,
    objects: HashMap<ObjectKey, CachedObject>,
}

impl Controller {
    /// Scans each synced cluster every scan interval (with up to 10% jitter
    /// so clusters spread out), bounded by the sync concurrency.
    pub(super) async fn scan_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut next_scan: HashMap<String, Instant> = HashMap::new();
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.settings.tick) => {}
                () = stopped(&mut stop) => return,
            }
            let clusters = match self.all_clusters().await {
                Ok(clusters) => clusters,
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), "listing clusters for drift failed");
                    continue;
                }
            };
            let now = Instant::now();
            for cluster in clusters {
                if cluster.sync.revision.is_none() {
                    continue;
                }
                let due = next_scan.get(&cluster.name).is_none_or(|at| *at <= now);
                if !due {
                    continue;
                }
                next_scan.insert(
                    cluster.name.clone(),
                    now + pilothouse_types::jittered(self.settings.drift_interval, 0.1),
                );
                let controller = Arc::clone(&self);
                tokio::spawn(async move {
                    let _permit = controller.slots.acquire().await;
                    if let Err(error) = controller.scan(&cluster.name, ScanTrigger::Schedule).await
                    {
                        tracing::warn!(cluster = %cluster.name, error = %format!("{error:#}"), "drift scan failed");
                    }
                });
            }
            let registered: HashSet<String> = next_scan.keys().cloned().collect();
            for name in registered {
                if self.store.get_cluster(&name).await.ok().flatten().is_none() {
                    next_scan.remove(&name);
                    self.scan_caches.lock().await.remove(&name);
                }
            }
        }
    }

    /// Scans `name` now and records the report (one scan per cluster at a
    /// time). An unreachable cluster, a revision that does not render or a
    /// cluster never synced gives an `unknown` report with the reason.
    pub(super) async fn scan(
        &self,
        name: &str,
        trigger: ScanTrigger,
    ) -> anyhow::Result<DriftReport> {
        let lock = {
            let mut locks = self.scan_locks.lock().await;
            Arc::clone(locks.entry(name.to_owned()).or_default())
        };
        let _one_at_a_time = lock.lock().await;
        let started_at = now_ms();
        let began = Instant::now();
        let cluster = self
            .store
            .get_cluster(name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("cluster `{name}` is not registered"))?;
        let report = match self.compare(&cluster).await {
            Ok(report) => report,
            Err(unknown) => NewDriftReport {
                trigger,
                status: ScanStatus::Unknown,
                revision: unknown.revision,
                error: Some(unknown.message),
                counts: DriftCounts::default(),
                objects: Vec::new(),
                started_at,
            },
        };
        let report = NewDriftReport {
            trigger,
            started_at,
            ..report
        };
        let (recorded, new) = self.store.record_drift_report(name, &report).await?;
        // Self-heal acts on what the scan found: put back what was changed
        // or deleted by hand.
        if cluster.sync.mode == pilothouse_store::SyncMode::SelfHeal
            && (recorded.counts.modified > 0 || recorded.counts.missing > 0)
            && trigger != ScanTrigger::Sync
        {
            self.store
                .queue_sync(name, pilothouse_store::SyncTrigger::SelfHeal)
                .await?;
            self.queue_changed.notify_one();
        }
        tracing::debug!(
            cluster = name, status = %recorded.status, new, drifted = recorded.objects.len(),
            elapsed_ms = began.elapsed().as_millis() as u64, "drift scan"
        );
        Ok(recorded)
    }

    async fn compare(&self, cluster: &Cluster) -> Result<NewDriftReport, Unknown> {
        let repository = self
            .store
            .get_repository()
            .await
            .map_err(Unknown::from_error(None))?
            .ok_or_else(|| Unknown::new(None, "no desired-state repository is configured"))?;
        let revision = repository.head_revision.clone().ok_or_else(|| {
            Unknown::new(None, "the desired-state repository was not fetched yet")
        })?;
        let rev = Some(revision.clone());
        let checkout = self
            .checkout(&repository, &revision)
            .await
            .map_err(Unknown::from_error(rev.clone()))?;
        let sub_path = repository.settings.path.clone();
        let (cluster_name, cloud) = (cluster.name.clone(), cluster.cloud.as_str().to_owned());
        let restrictions = self.settings.load_restrictions;
        let desired = tokio::task::spawn_blocking(move || {
            render_cluster(&checkout, &sub_path, &cluster_name, &cloud, restrictions)
        })
        .await
        .map_err(Unknown::from_error(rev.clone()))?
        .map_err(|error| {
            Unknown::new(
                rev.clone(),
                &format!("the revision does not render: {error}"),
            )
        })?;
        let rules = self
            .rules_for(&cluster.name)
            .await
            .map_err(Unknown::from_error(rev.clone()))?;
        let inventory: Vec<InventoryEntry> = self
            .store
            .inventory(&cluster.name)
            .await
            .map_err(Unknown::from_error(rev.clone()))?
            .into_iter()
            .map(inventory_entry)
            .collect();
        let desired_keys: HashSet<ObjectKey> = desired.iter().filter_map(ObjectKey::of).collect();
        let extra: Vec<InventoryEntry> = inventory
            .into_iter()
            .filter(|entry| !desired_keys.contains(&entry.key))
            .collect();
        let previous: Vec<PreviousObservation> = {
            let caches = self.scan_caches.lock().await;
            match caches.get(&cluster.name) {
                Some(cache) if cache.rules == rules => cache
                    .objects
                    .iter()
                    .map(|(key, cached)| PreviousObservation {
                        key: key.clone(),
                        manifest_sha256: cached.manifest_sha256.clone(),
                        live_resource_version: cached.live_resource_version.clone(),
                    })
                    .collect(),
                _ => Vec::new(),
            }
        };
        let client = self
            .client(cluster)
            .await
            .map_err(Unknown::from_error(rev.clone()))?;
        let (observations, extras) =
            pilothouse_fleet::observe(&client, desired, &extra, &previous, &self.sync_options())
                .await
                .map_err(|error: SyncError| Unknown::new(rev.clone(), &error.to_string()))?;

        let mut caches = self.scan_caches.lock().await;
        let old = caches
            .remove(&cluster.name)
            .filter(|cache| cache.rules == rules);
        let mut cache = ScanCache {
            rules: rules.clone(),
            objects: HashMap::new(),
        };
        let mut results: Vec<(ObjectDrift, String)> = Vec::new();
        for observation in observations {
            let Observation {
                key,
                api_version,
                manifest_sha256,
                live_resource_version,
                state,
            } = observation;
            let (drift, unified) = match state {
                Observed::Fresh { would_be, live } => match live {
                    Some(live) => {
                        let drift = pilothouse_drift::compare(&would_be, &live, &rules);
                        let unified = if drift.state.is_drift() {
                            pilothouse_drift::unified_diff(&would_be, &live)
                        } else {
                            String::new()
                        };
                        (drift, unified)
                    }
                    None => (pilothouse_drift::missing(&would_be), String::new()),
                },
                Observed::Reused => match old.as_ref().and_then(|c| c.objects.get(&key)) {
                    Some(cached) => (cached.drift.clone(), cached.unified.clone()),
                    None => continue,
                },
                Observed::Failed { message } => {
                    let mut drift = pilothouse_drift::unknown(object_ref(&key, &api_version));
                    drift.message = Some(message);
                    (drift, String::new())
                }
            };
            if drift.state != pilothouse_drift::DriftState::Unknown {
                cache.objects.insert(
                    key,
                    CachedObject {
                        manifest_sha256,
                        live_resource_version,
                        drift: drift.clone(),
                        unified: unified.clone(),
                    },
                );
            }
            results.push((drift, unified));
        }
        for extra in extras {
            let object = object_ref(&extra.key, &extra.api_version);
            match extra.live {
                Ok(Some(_)) => results.push((pilothouse_drift::extra(object), String::new())),
                // gone from the cluster too: nothing to report
                Ok(None) => {}
                Err(message) => {
                    let mut drift = pilothouse_drift::unknown(object);
                    drift.message = Some(message);
                    results.push((drift, String::new()));
                }
            }
        }
        caches.insert(cluster.name.clone(), cache);
        drop(caches);

        let mut counts = DriftCounts::default();
        let mut objects = Vec::new();
        for (drift, unified) in results {
            let state = store_state(drift.state);
            match state {
                DriftState::InSync => counts.in_sync += 1,
                DriftState::Modified => counts.modified += 1,
                DriftState::Missing => counts.missing += 1,
                DriftState::Extra => counts.extra += 1,
                DriftState::Unknown => counts.unknown += 1,
            }
            if state == DriftState::InSync {
                continue;
            }
            objects.push(DriftObjectRecord {
                api_version: drift.object.api_version,
                kind: drift.object.kind,
                namespace: drift.object.namespace,
                name: drift.object.name,
                state,
                diffs: drift
                    .diffs
                    .into_iter()
                    .map(|d| FieldDiffRecord {
                        path: d.path,
                        live: d.live,
                        desired: d.desired,
                    })
                    .collect(),
                message: drift.message,
                unified,
                since: None,
            });
        }
        let status = if counts.unknown > 0 && objects.len() == counts.unknown as usize {
            ScanStatus::Unknown
        } else if objects.is_empty() {
            ScanStatus::InSync
        } else {
            ScanStatus::Drifted
        };
        Ok(NewDriftReport {
            trigger: ScanTrigger::Schedule,
            status,
            revision: rev,
            error: None,
            counts,
            objects,
            started_at: 0,
        })
    }

    /// The ignore rules for `cluster` (its own and the global ones), as the
    /// comparison takes them.
    async fn rules_for(&self, cluster: &str) -> anyhow::Result<Vec<IgnoreRule>> {
        Ok(self
            .store
            .ignore_rules(Some(cluster))
            .await?
            .into_iter()
            .map(ignore_rule)
            .collect())
    }
}

/// Why a scan could not tell.
struct Unknown {
    revision: Option<String>,
    message: String,
}

impl Unknown {
    fn new(revision: Option<String>, message: &str) -> Self {
        Self {
            revision,
            message: message.to_owned(),
        }
    }

    fn from_error<E: std::fmt::Display>(revision: Option<String>) -> impl FnOnce(E) -> Unknown {
        move |error| Unknown {
            revision,
            message: error.to_string(),
        }
    }
}

fn ignore_rule(record: IgnoreRuleRecord) -> IgnoreRule {
    IgnoreRule {
        target: Target {
            group: record.api_group,
            kind: record.kind,
            namespace: record.namespace,
            name: record.name,
        },
        what: match (record.pointer, record.managed_by) {
            (Some(pointer), _) => Ignore::Pointer(pointer),
            (None, Some(manager)) => Ignore::ManagedBy(manager),
            (None, None) => Ignore::Pointer(String::from("/-invalid")),
        },
    }
}

fn object_ref(key: &ObjectKey, api_version: &str) -> ObjectRef {
    ObjectRef {
        api_version: api_version.to_owned(),
        kind: key.kind.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
    }
}

fn store_state(state: pilothouse_drift::DriftState) -> DriftState {
    match state {
        pilothouse_drift::DriftState::InSync => DriftState::InSync,
        pilothouse_drift::DriftState::Modified => DriftState::Modified,
        pilothouse_drift::DriftState::Missing => DriftState::Missing,
        pilothouse_drift::DriftState::Extra => DriftState::Extra,
        pilothouse_drift::DriftState::Unknown => DriftState::Unknown,
    }
}

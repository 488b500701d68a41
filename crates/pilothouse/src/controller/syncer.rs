//! Scheduling and running syncs: which clusters need one (a new revision, a
//! due retry, live changes under self-heal), running queued syncs with
//! bounded concurrency and one at a time per cluster, and re-assessing
//! health until it settles.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use pilothouse_fleet::{InventoryEntry, ObjectKey, SyncOptions, SyncOutcome};
use pilothouse_render::{CloudProfiles, LoadRestrictions, RenderOptions};
use pilothouse_store::{
    Cluster, ClusterSyncStatus, Health, InventoryRecord, ObjectAction, ScanTrigger, SyncMode,
    SyncObjectRecord, SyncRecord, SyncResult, SyncTrigger,
};
use pilothouse_types::Backoff;
use serde_json::Value;
use tokio::sync::watch;

use super::{Controller, millis, now_ms, stopped};

impl Controller {
    /// Every tick (or when woken): queue the syncs that are due, then start
    /// the queued ones whose cluster is not syncing already.
    pub(super) async fn schedule(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        match self.store.fail_interrupted_syncs().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                syncs = n,
                "syncs interrupted by the last stop are marked failed and will be retried"
            ),
            Err(error) => tracing::error!(%error, "cannot recover interrupted syncs"),
        }
        let mut self_heal_checked: HashMap<String, Instant> = HashMap::new();
        loop {
            if let Err(error) = self.queue_due(&mut self_heal_checked).await {
                tracing::error!(error = %format!("{error:#}"), "scheduling syncs failed");
            }
            if let Err(error) = self.start_queued().await {
                tracing::error!(error = %format!("{error:#}"), "starting syncs failed");
            }
            tokio::select! {
                () = tokio::time::sleep(self.settings.tick) => {}
                () = self.queue_changed.notified() => {}
                () = stopped(&mut stop) => return,
            }
        }
    }

    /// Queues auto-syncs for clusters in auto or self-heal mode that have not
    /// tried the head revision yet, retries for those whose last sync failed
    /// and whose backoff is over, and starts self-heal checks.
    async fn queue_due(
        self: &Arc<Self>,
        self_heal_checked: &mut HashMap<String, Instant>,
    ) -> anyhow::Result<()> {
        let Some(repository) = self.store.get_repository().await? else {
            return Ok(());
        };
        let Some(head) = repository.head_revision else {
            return Ok(());
        };
        let now = now_ms();
        for cluster in self.all_clusters().await? {
            let sync = &cluster.sync;
            if sync.mode == SyncMode::Manual {
                continue;
            }
            let trigger = if sync.last_revision.as_deref() != Some(head.as_str()) {
                Some(SyncTrigger::Auto)
            } else if sync.status == ClusterSyncStatus::Failed
                && sync.next_sync_at.is_some_and(|at| at <= now)
            {
                Some(SyncTrigger::Retry)
            } else {
                None
            };
            if let Some(trigger) = trigger {
                // The list was read before a sync may have finished; decide
                // again on the cluster as it is now that none runs.
                if !self.is_running(&cluster.name)
                    && let Some(current) = self.store.get_cluster(&cluster.name).await?
                    && current.sync.last_revision == cluster.sync.last_revision
                    && current.sync.status == cluster.sync.status
                    && !self.is_running(&cluster.name)
                {
                    self.store.queue_sync(&cluster.name, trigger).await?;
                }
                continue;
            }
            let heal_due = sync.mode == SyncMode::SelfHeal
                && sync.status == ClusterSyncStatus::Succeeded
                && self_heal_checked
                    .get(&cluster.name)
                    .is_none_or(|at| at.elapsed() >= self.settings.self_heal_interval);
            if heal_due && self.claim(&cluster.name) {
                self_heal_checked.insert(cluster.name.clone(), Instant::now());
                let controller = Arc::clone(self);
                tokio::spawn(async move {
                    let name = cluster.name.clone();
                    // a check takes a sync slot: checks never crowd out syncs
                    // beyond the configured concurrency
                    let _permit = controller.slots.acquire().await;
                    if let Err(error) = controller.self_heal(&cluster).await {
                        tracing::warn!(cluster = %name, error = %format!("{error:#}"), "self-heal check failed");
                    }
                    controller.release(&name);
                });
            }
        }
        Ok(())
    }

    /// Starts queued syncs, oldest first, one per cluster at a time.
    async fn start_queued(self: &Arc<Self>) -> anyhow::Result<()> {
        for record in self.store.queued_syncs(500).await? {
            if !self.claim(&record.cluster) {
                continue;
            }
            let controller = Arc::clone(self);
            tokio::spawn(async move {
                let cluster = record.cluster.clone();
                let _permit = controller.slots.acquire().await;
                controller.run_sync(record).await;
                controller.release(&cluster);
                controller.queue_changed.notify_one();
            });
        }
        Ok(())
    }

    /// Runs one queued sync to its end and records it.
    async fn run_sync(&self, record: SyncRecord) {
        // A sync asked for right after start may come before the first
        // fetch: fetch now rather than fail.
        if let Ok(Some(repository)) = self.store.get_repository().await
            && repository.head_revision.is_none()
            && let Err(error) = self.fetch().await
        {
            tracing::warn!(error = %format!("{error:#}"), "fetching before a sync failed");
        }
        let repository = match self.store.get_repository().await {
            Ok(Some(repository)) => repository,
            Ok(None) => {
                self.fail_before_start(&record, "no desired-state repository is configured")
                    .await;
                return;
            }
            Err(error) => {
                tracing::error!(%error, "reading the repository failed");
                return;
            }
        };
        let Some(head) = repository.head_revision.clone() else {
            let message = match &repository.last_fetch_error {
                Some(error) => format!("the desired-state repository was never fetched: {error}"),
                None => "the desired-state repository has not been fetched yet".to_owned(),
            };
            self.fail_before_start(&record, &message).await;
            return;
        };
        match self.store.start_sync(record.id, Some(&head)).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => {
                tracing::error!(%error, sync = record.id, "cannot start the sync");
                return;
            }
        }
        let started = Instant::now();
        tracing::info!(cluster = %record.cluster, sync = record.id, revision = %head, trigger = %record.trigger, "sync started");
        let result = match tokio::time::timeout(
            self.settings.sync_timeout,
            self.sync_cluster(&record.cluster, &repository, &head),
        )
        .await
        {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => {
                self.failure(&record.cluster, Some(&head), format!("{error:#}"))
                    .await
            }
            Err(_) => {
                let message = format!(
                    "the sync took longer than {}s and was stopped",
                    self.settings.sync_timeout.as_secs()
                );
                self.failure(&record.cluster, Some(&head), message).await
            }
        };
        let status = if result.succeeded {
            "succeeded"
        } else {
            "failed"
        };
        tracing::info!(
            cluster = %record.cluster, sync = record.id, status, error = result.error.as_deref().unwrap_or(""),
            elapsed_ms = started.elapsed().as_millis() as u64, "sync finished"
        );
        if let Err(error) = self.store.finish_sync(record.id, &result).await {
            tracing::error!(%error, sync = record.id, "cannot record the sync");
            return;
        }
        // what the cluster looks like now, compared with Git
        if let Err(error) = self.scan(&record.cluster, ScanTrigger::Sync).await {
            tracing::warn!(cluster = %record.cluster, error = %format!("{error:#}"), "drift scan after the sync failed");
        }
    }

    /// Renders the cluster's desired state at `revision` and applies it.
    async fn sync_cluster(
        &self,
        name: &str,
        repository: &pilothouse_store::Repository,
        revision: &str,
    ) -> anyhow::Result<SyncResult> {
        let cluster = self
            .store
            .get_cluster(name)
            .await?
            .with_context(|| format!("cluster `{name}` is no longer registered"))?;
        let checkout = self.checkout(repository, revision).await?;
        let sub_path = repository.settings.path.clone();
        let cluster_name = cluster.name.clone();
        let cloud = cluster.cloud.as_str().to_owned();
        let restrictions = self.settings.load_restrictions;
        let rendered = tokio::task::spawn_blocking(move || {
            render_cluster(&checkout, &sub_path, &cluster_name, &cloud, restrictions)
        })
        .await?;
        let desired = match rendered {
            Ok(objects) => objects,
            Err(error) => {
                let message = format!("revision {} does not render: {error}", short(revision));
                return Ok(self.failure(name, Some(revision), message).await);
            }
        };
        let client = self.client(&cluster).await?;
        let previous: Vec<InventoryEntry> = self
            .store
            .inventory(name)
            .await?
            .into_iter()
            .map(inventory_entry)
            .collect();
        let outcome =
            match pilothouse_fleet::sync(&client, desired, &previous, &self.sync_options()).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    return Ok(self.failure(name, Some(revision), error.to_string()).await);
                }
            };
        let mut result = sync_result(outcome, revision);
        if !result.succeeded {
            result.retry_at = Some(self.retry_at(&cluster));
        }
        Ok(result)
    }

    /// Self-heal: applies the last synced revision again when live objects
    /// moved away from what was applied. The sync engine's fast path reads
    /// one metadata list per kind and applies only what changed, so a check
    /// that finds nothing costs a few list calls and records no sync.
    async fn self_heal(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let Some(revision) = cluster.sync.revision.clone() else {
            return Ok(());
        };
        let Some(repository) = self.store.get_repository().await? else {
            return Ok(());
        };
        let checkout = self.checkout(&repository, &revision).await?;
        let sub_path = repository.settings.path.clone();
        let (name, cloud) = (cluster.name.clone(), cluster.cloud.as_str().to_owned());
        let restrictions = self.settings.load_restrictions;
        let desired = tokio::task::spawn_blocking(move || {
            render_cluster(&checkout, &sub_path, &name, &cloud, restrictions)
        })
        .await?
        .map_err(anyhow::Error::msg)?;
        let client = self.client(cluster).await?;
        let previous: Vec<InventoryEntry> = self
            .store
            .inventory(&cluster.name)
            .await?
            .into_iter()
            .map(inventory_entry)
            .collect();
        let outcome =
            pilothouse_fleet::sync(&client, desired, &previous, &self.sync_options()).await?;
        let changed = outcome
            .objects
            .iter()
            .any(|object| object.action != ObjectAction::Unchanged);
        let result = sync_result(outcome, &revision);
        if !changed {
            if let Some(inventory) = &result.inventory {
                self.store
                    .replace_inventory(&cluster.name, inventory)
                    .await?;
            }
            return Ok(());
        }
        // Something had drifted and was put back: that is a sync, recorded.
        let Some(record) = self
            .store
            .queue_sync(&cluster.name, SyncTrigger::SelfHeal)
            .await?
        else {
            return Ok(());
        };
        if record.trigger == SyncTrigger::SelfHeal
            && self.store.start_sync(record.id, Some(&revision)).await?
        {
            tracing::info!(cluster = %cluster.name, sync = record.id, "self-heal re-applied drifted objects");
            self.store.finish_sync(record.id, &result).await?;
        }
        Ok(())
    }

    /// Every health interval: re-assess clusters that are not healthy yet
    /// (and healthy ones ten times less often).
    pub(super) async fn assess(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.settings.health_interval) => {}
                () = stopped(&mut stop) => return,
            }
            let clusters = match self.all_clusters().await {
                Ok(clusters) => clusters,
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), "listing clusters for health failed");
                    continue;
                }
            };
            let now = now_ms();
            let slow = millis(self.settings.health_interval) * 10;
            // assessed concurrently, as many at once as syncs may run: one
            // unreachable cluster never holds up the others
            let limit = Arc::new(tokio::sync::Semaphore::new(
                self.settings.concurrency.max(1),
            ));
            let mut running = tokio::task::JoinSet::new();
            for cluster in clusters {
                let due = cluster.sync.status != ClusterSyncStatus::Never
                    && (cluster.sync.health != Health::Healthy
                        || cluster
                            .sync
                            .health_checked_at
                            .is_none_or(|at| now - at >= slow));
                if !due || !self.claim(&cluster.name) {
                    continue;
                }
                let controller = Arc::clone(&self);
                let limit = Arc::clone(&limit);
                running.spawn(async move {
                    let _permit = limit.acquire().await;
                    let outcome = tokio::time::timeout(
                        controller.settings.call_timeout * 2,
                        controller.assess_cluster(&cluster),
                    )
                    .await;
                    controller.release(&cluster.name);
                    match outcome {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => {
                            tracing::debug!(cluster = %cluster.name, error = %format!("{error:#}"), "health assessment failed");
                        }
                        Err(_) => {
                            tracing::debug!(cluster = %cluster.name, "health assessment timed out");
                        }
                    }
                });
            }
            while running.join_next().await.is_some() {}
        }
    }

    async fn assess_cluster(&self, cluster: &Cluster) -> anyhow::Result<()> {
        let inventory = self.store.inventory(&cluster.name).await?;
        let entries: Vec<InventoryEntry> = inventory.iter().cloned().map(inventory_entry).collect();
        let client = self.client(cluster).await?;
        let healths =
            pilothouse_fleet::assess_health(&client, &entries, &self.sync_options()).await?;
        let by_key: HashMap<&ObjectKey, &pilothouse_fleet::ObjectHealth> =
            healths.iter().map(|h| (&h.key, h)).collect();
        let mut updated = inventory.clone();
        for (record, entry) in updated.iter_mut().zip(&entries) {
            if let Some(health) = by_key.get(&entry.key) {
                record.health = Some(health.health);
                record.health_message = health.message.clone();
            }
        }
        let overall = Health::worst(healths.iter().map(|h| h.health));
        self.store
            .record_health(&cluster.name, overall, &updated)
            .await?;
        Ok(())
    }

    /// A kube client for `cluster` from its sealed kubeconfig.
    pub(super) async fn client(&self, cluster: &Cluster) -> anyhow::Result<kube::Client> {
        let kubeconfig =
            crate::credentials::stored_kubeconfig(&self.store, &self.key, &self.policy, cluster)
                .await?;
        Ok(pilothouse_fleet::client_for(&kubeconfig, self.settings.call_timeout).await?)
    }

    pub(super) fn sync_options(&self) -> SyncOptions {
        SyncOptions {
            call_timeout: self.settings.call_timeout,
            ..SyncOptions::default()
        }
    }

    /// A failed sync: nothing applied, inventory kept, retried after backoff.
    async fn failure(&self, cluster: &str, revision: Option<&str>, error: String) -> SyncResult {
        let retry_at = match self.store.get_cluster(cluster).await {
            Ok(Some(cluster)) => self.retry_at(&cluster),
            _ => now_ms() + millis(self.settings.base_backoff),
        };
        SyncResult {
            succeeded: false,
            revision: revision.map(str::to_owned),
            error: Some(error),
            health: None,
            objects: Vec::new(),
            inventory: None,
            retry_at: Some(retry_at),
        }
    }

    /// Records a sync that could not even start (no repository, no head).
    async fn fail_before_start(&self, record: &SyncRecord, message: &str) {
        if let Ok(true) = self.store.start_sync(record.id, None).await {
            let result = self
                .failure(&record.cluster, None, message.to_owned())
                .await;
            if let Err(error) = self.store.finish_sync(record.id, &result).await {
                tracing::error!(%error, sync = record.id, "cannot record the sync");
            }
        }
    }

    /// When to retry after this cluster's next failure: the base backoff,
    /// doubling with each failure in a row, capped, with jitter.
    fn retry_at(&self, cluster: &Cluster) -> i64 {
        let backoff = Backoff::new(self.settings.base_backoff, self.settings.max_backoff);
        now_ms() + millis(backoff.jittered_delay(cluster.sync.failures.saturating_add(1)))
    }

    pub(super) async fn all_clusters(&self) -> anyhow::Result<Vec<Cluster>> {
        Ok(self.store.all_clusters().await?)
    }

    fn is_running(&self, cluster: &str) -> bool {
        self.running.lock().expect("running set").contains(cluster)
    }

    /// Marks `cluster` busy; `false` when it already is.
    fn claim(&self, cluster: &str) -> bool {
        self.running
            .lock()
            .expect("running set")
            .insert(cluster.to_owned())
    }

    fn release(&self, cluster: &str) {
        self.running.lock().expect("running set").remove(cluster);
    }
}

/// Renders a cluster's desired state: `gitops/clusters/<name>/` if it
/// exists, else `overlays/<cloud>/`, then the cloud's profile from
/// `gitops/clouds.yaml` (or the built-in one). Errors name files relative to
/// the repository.
pub(super) fn render_cluster(
    checkout: &Path,
    sub_path: &str,
    name: &str,
    cloud: &str,
    load_restrictions: LoadRestrictions,
) -> Result<Vec<Value>, String> {
    let root = &checkout.join(sub_path);
    let cluster_dir = root.join("gitops/clusters").join(name);
    let render_cloud: Option<pilothouse_render::Cloud> = cloud.parse().ok();
    let dir = if cluster_dir.is_dir() {
        cluster_dir
    } else {
        match render_cloud {
            Some(c) if root.join("overlays").join(c.as_str()).is_dir() => {
                root.join("overlays").join(c.as_str())
            }
            _ => {
                return Err(format!(
                    "neither gitops/clusters/{name}/ nor overlays/{cloud}/ exists in the repository"
                ));
            }
        }
    };
    // a commit must not make the service read files outside the checkout
    let mut options = RenderOptions {
        confine_to: Some(checkout.to_owned()),
        load_restrictions,
        ..RenderOptions::default()
    };
    if let Some(cloud) = render_cloud {
        let clouds = root.join("gitops/clouds.yaml");
        let profiles = if clouds.is_file() {
            CloudProfiles::load(&clouds).map_err(|e| relative(&e.to_string(), root))?
        } else {
            CloudProfiles::default()
        };
        options.cloud_profile = Some(profiles.get(cloud).clone());
    }
    pilothouse_render::render_dir(&dir, &options).map_err(|e| relative(&e.to_string(), root))
}

/// `message` with the checkout's absolute path taken out.
fn relative(message: &str, root: &Path) -> String {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    message.replace(&format!("{}/", root.display()), "")
}

fn short(revision: &str) -> &str {
    &revision[..revision.len().min(12)]
}

pub(super) fn inventory_entry(record: InventoryRecord) -> InventoryEntry {
    InventoryEntry {
        key: ObjectKey {
            group: record.api_group,
            kind: record.kind,
            namespace: record.namespace,
            name: record.name,
        },
        api_version: record.api_version,
        manifest_sha256: record.manifest_sha256,
        resource_version: record.resource_version,
        uid: record.uid,
    }
}

/// The store's record of a finished engine run.
fn sync_result(outcome: SyncOutcome, revision: &str) -> SyncResult {
    let health_by_key: HashMap<&ObjectKey, (Option<Health>, Option<&String>)> = outcome
        .objects
        .iter()
        .map(|o| (&o.key, (o.health, o.health_message.as_ref())))
        .collect();
    let inventory = outcome
        .inventory
        .iter()
        .map(|entry| {
            let (health, message) = health_by_key
                .get(&entry.key)
                .copied()
                .unwrap_or((None, None));
            InventoryRecord {
                api_group: entry.key.group.clone(),
                kind: entry.key.kind.clone(),
                namespace: entry.key.namespace.clone(),
                name: entry.key.name.clone(),
                api_version: entry.api_version.clone(),
                manifest_sha256: entry.manifest_sha256.clone(),
                resource_version: entry.resource_version.clone(),
                uid: entry.uid.clone(),
                health,
                health_message: message.cloned(),
            }
        })
        .collect();
    let failed = outcome
        .objects
        .iter()
        .filter(|o| o.action == ObjectAction::Failed)
        .count();
    let error = if outcome.succeeded {
        None
    } else {
        let mut text = format!("{failed} object(s) failed");
        if let Some(first) = outcome
            .objects
            .iter()
            .find(|o| o.action == ObjectAction::Failed)
        {
            text.push_str(&format!(
                "; first: {} {}",
                first.key,
                first.message.as_deref().unwrap_or("")
            ));
        }
        if let Some(message) = &outcome.message {
            text.push_str(&format!("; {message}"));
        }
        Some(text)
    };
    let objects = outcome
        .objects
        .into_iter()
        .map(|object| SyncObjectRecord {
            api_version: object.api_version,
            kind: object.key.kind,
            namespace: object.key.namespace,
            name: object.key.name,
            action: object.action,
            message: object.message,
            health: object.health,
            health_message: object.health_message,
        })
        .collect();
    SyncResult {
        succeeded: outcome.succeeded,
        revision: Some(revision.to_owned()),
        error,
        health: Some(outcome.health),
        objects,
        inventory: Some(inventory),
        retry_at: None,
    }
}

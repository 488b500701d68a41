//! The pod-error monitor `serve` runs: one watch per registered cluster
//! (Pods, Nodes, Warning Events) feeding that cluster's detector and
//! incident book, one writer batching every change into SQLite, captures of
//! logs and events at first occurrences, the notification dispatcher and its
//! delivery worker, and the retention purge.
//!
//! It joins `fleet` (watches, logs), `incidents` (detection, grouping,
//! routing), `notify` (delivery) and `store`. The API reaches it only
//! through [`pilothouse_api::IncidentControl`].

mod cluster;
mod notify;
mod progress;
mod writer;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use pilothouse_fleet::{KubeconfigPolicy, WatchOptions};
use pilothouse_incidents::DetectConfig;
use pilothouse_store::{Cluster, MasterKey, Store};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use crate::tasks::{millis, now_ms, stopped};

/// How the monitor behaves; `serve` fills it from its flags.
#[derive(Debug, Clone)]
pub struct MonitorSettings {
    /// What is detected and what is ignored.
    pub detect: DetectConfig,
    /// How long a workload must be healthy before its incident resolves.
    pub hold_down: Duration,
    /// Resolved incidents and finished deliveries older than this are
    /// purged.
    pub retention: Duration,
    /// How watches resume and back off.
    pub watch: WatchOptions,
    /// Time limit of connecting, and of each log or event read.
    pub call_timeout: Duration,
    /// How often time-based rules run (pending pods, hold-downs).
    pub tick: Duration,
    /// How often the set of registered clusters is looked at.
    pub supervise_interval: Duration,
    /// The longest wait between two tries of a failed delivery.
    pub delivery_retry_max: Duration,
    /// The loopback, private or link-local ranges receivers may be reached
    /// at (public addresses always).
    pub receiver_destinations: pilothouse_notify::DestinationPolicy,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self {
            detect: DetectConfig::default(),
            hold_down: Duration::from_millis(
                u64::try_from(pilothouse_incidents::DEFAULT_HOLD_DOWN_MS).unwrap_or(120_000),
            ),
            retention: Duration::from_secs(30 * 24 * 3600),
            watch: WatchOptions::default(),
            call_timeout: Duration::from_secs(10),
            tick: Duration::from_secs(1),
            supervise_interval: Duration::from_secs(5),
            delivery_retry_max: pilothouse_notify::BACKOFF_MAX,
            receiver_destinations: pilothouse_notify::DestinationPolicy::default(),
        }
    }
}

/// Shared by the monitor's tasks and the API's handle.
pub struct Monitor {
    store: Store,
    key: Arc<MasterKey>,
    policy: Arc<KubeconfigPolicy>,
    settings: MonitorSettings,
    /// Into the single writer.
    writer: mpsc::Sender<writer::WriterMessage>,
    /// Wakes the dispatcher: routes, receivers or silences changed.
    notifications_changed: Notify,
    /// Wakes the delivery worker: something was enqueued.
    outbox_changed: Notify,
    /// Wakes the supervisor: a cluster was registered or removed.
    clusters_changed: Notify,
    /// How far each cluster's watches have got.
    watch_states: Arc<progress::WatchStates>,
    /// Stored notification entries the notifier could not read.
    unreadable: UnreadableCounts,
}

/// See [`pilothouse_api::UnreadableEntries`]: routes and silences are
/// counted at each reload, groups at start.
#[derive(Default)]
struct UnreadableCounts {
    routes: AtomicU64,
    silences: AtomicU64,
    groups: AtomicU64,
}

impl UnreadableCounts {
    fn get(&self) -> pilothouse_api::UnreadableEntries {
        pilothouse_api::UnreadableEntries {
            routes: self.routes.load(Ordering::Relaxed),
            silences: self.silences.load(Ordering::Relaxed),
            groups: self.groups.load(Ordering::Relaxed),
        }
    }

    /// What the last reload of routes and silences could not read.
    fn reloaded(&self, routes: u64, silences: u64) {
        self.routes.store(routes, Ordering::Relaxed);
        self.silences.store(silences, Ordering::Relaxed);
    }

    /// A stored notification group could not be restored.
    fn group_unreadable(&self) {
        self.groups.fetch_add(1, Ordering::Relaxed);
    }
}

impl Monitor {
    /// Starts the monitor's tasks; they stop when `stop` turns true.
    pub fn spawn(
        store: Store,
        key: Arc<MasterKey>,
        policy: Arc<KubeconfigPolicy>,
        settings: MonitorSettings,
        stop: watch::Receiver<bool>,
    ) -> (Arc<Self>, Vec<JoinHandle<()>>) {
        let (requests, received) = mpsc::channel(16 * 1024);
        let (written, incidents) = mpsc::unbounded_channel();
        let watch_states = Arc::new(progress::WatchStates::default());
        let monitor = Arc::new(Self {
            store: store.clone(),
            key,
            policy,
            settings: settings.clone(),
            writer: requests,
            notifications_changed: Notify::new(),
            outbox_changed: Notify::new(),
            clusters_changed: Notify::new(),
            watch_states: Arc::clone(&watch_states),
            unreadable: UnreadableCounts::default(),
        });
        let tasks = vec![
            tokio::spawn(writer::run(
                store,
                received,
                written,
                watch_states,
                settings.call_timeout,
                stop.clone(),
            )),
            tokio::spawn(Arc::clone(&monitor).supervise(stop.clone())),
            tokio::spawn(Arc::clone(&monitor).purge(stop.clone())),
            tokio::spawn(Arc::clone(&monitor).dispatch(incidents, stop.clone())),
            tokio::spawn(Arc::clone(&monitor).deliver(stop)),
        ];
        (monitor, tasks)
    }

    /// Keeps one watch running per registered cluster: starts watches of new
    /// clusters, stops those of removed ones, restarts those whose
    /// credentials changed, and retries clusters whose client could not be
    /// built.
    async fn supervise(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut running: HashMap<String, Running> = HashMap::new();
        loop {
            match self.store.all_clusters().await {
                Ok(clusters) => {
                    let names: std::collections::HashSet<&str> =
                        clusters.iter().map(|c| c.name.as_str()).collect();
                    running.retain(|name, (_, task, stop)| {
                        let keep = names.contains(name.as_str()) && !task.is_finished();
                        if !keep {
                            let _ = stop.send(true);
                            task.abort();
                            self.watch_states.stopped(name);
                        }
                        keep
                    });
                    for cluster in clusters {
                        let changed = running
                            .get(&cluster.name)
                            .is_some_and(|(version, _, _)| *version != registration(&cluster));
                        if changed && let Some((_, task, stop)) = running.remove(&cluster.name) {
                            let _ = stop.send(true);
                            task.abort();
                        }
                        if running.contains_key(&cluster.name) {
                            continue;
                        }
                        match self.start_watch(&cluster).await {
                            Ok((task, stop)) => {
                                running.insert(
                                    cluster.name.clone(),
                                    (registration(&cluster), task, stop),
                                );
                            }
                            Err(error) => {
                                let error = format!("{error:#}");
                                tracing::warn!(cluster = %cluster.name, %error, "cannot watch the cluster yet");
                                self.watch_states.not_started(&cluster.name, error);
                            }
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "listing clusters failed"),
            }
            tokio::select! {
                () = stopped(&mut stop) => break,
                () = tokio::time::sleep(self.settings.supervise_interval) => {}
                () = self.clusters_changed.notified() => {}
            }
        }
        for (_, (_, task, stop)) in running {
            let _ = stop.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }

    async fn start_watch(
        self: &Arc<Self>,
        cluster: &Cluster,
    ) -> anyhow::Result<(JoinHandle<()>, watch::Sender<bool>)> {
        let kubeconfig =
            crate::credentials::stored_kubeconfig(&self.store, &self.key, &self.policy, cluster)
                .await?;
        // Reads may wait for a whole watch request, plus some slack.
        let read_timeout = self.settings.watch.watch_timeout + Duration::from_secs(30);
        let client = pilothouse_fleet::watch_client_for(
            &kubeconfig,
            self.settings.call_timeout,
            read_timeout,
        )
        .await?;
        let detect = match &cluster.incident_settings {
            None => self.settings.detect.clone(),
            Some(settings) => {
                let own: DetectConfig = serde_json::from_value(settings.clone())
                    .context("the cluster's incident settings are unreadable")?;
                self.settings.detect.merged(&own)
            }
        };
        let watch =
            cluster::ClusterWatch::new(Arc::clone(self), cluster.name.clone(), client, detect)
                .await?;
        let (stop, stopped) = watch::channel(false);
        self.watch_states
            .started(&cluster.name, cluster.incident_settings.clone());
        Ok((tokio::spawn(watch.run(stopped)), stop))
    }

    /// Purges resolved incidents and finished deliveries past the retention,
    /// hourly.
    async fn purge(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            let cutoff = now_ms() - millis(self.settings.retention);
            match self.store.purge_incidents(cutoff).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "purged resolved incidents"),
                Err(error) => tracing::warn!(%error, "purging incidents failed"),
            }
            if let Err(error) = self.store.purge_deliveries(cutoff).await {
                tracing::warn!(%error, "purging deliveries failed");
            }
            tokio::select! {
                () = stopped(&mut stop) => break,
                () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
        }
    }
}

/// The API's handle on the monitor.
pub struct MonitorHandle(pub Arc<Monitor>);

impl pilothouse_api::IncidentControl for MonitorHandle {
    fn notifications_changed(&self) {
        self.0.notifications_changed.notify_one();
    }

    fn clusters_changed(&self) {
        self.0.clusters_changed.notify_one();
    }

    fn watch_state(&self, cluster: &str) -> Option<pilothouse_api::ClusterWatchView> {
        self.0.watch_states.get(cluster)
    }

    fn unreadable_notification_entries(&self) -> pilothouse_api::UnreadableEntries {
        self.0.unreadable.get()
    }
}

/// A cluster's running watch: its registration, task and stop switch.
type Running = (Registration, JoinHandle<()>, watch::Sender<bool>);

/// See [`registration`].
type Registration = (i64, String, Option<String>);

/// What a cluster's watch depends on: it is restarted when this changes
/// (re-registered with a new kubeconfig, other incident settings), not for
/// labels or a sync mode.
fn registration(cluster: &Cluster) -> Registration {
    (
        cluster.created_at,
        cluster.context.clone(),
        cluster
            .incident_settings
            .as_ref()
            .map(serde_json::Value::to_string),
    )
}

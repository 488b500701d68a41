//! The GitOps controller `serve` runs: it follows the desired-state
//! repository (polling with jitter, and on webhook), turns new revisions and
//! requests into queued syncs, runs them cluster by cluster, retries failures
//! with backoff, re-assesses health until everything is healthy, scans for
//! drift, and commits cluster overlays for the API.
//!
//! It is the one place that joins `gitops` (the mirror), `render` (desired
//! objects), `fleet` (apply, prune, health) and `store` (what happened). The
//! API reaches it only through [`pilothouse_api::GitOpsControl`].

mod drift;
mod repo;
mod syncer;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pilothouse_api::{BoxFuture, GitOpsControl, ScaffoldError, Scaffolded};
use pilothouse_fleet::KubeconfigPolicy;
use pilothouse_store::{MasterKey, Store};
use tokio::sync::{Notify, Semaphore, watch};

use crate::tasks::{millis, now_ms, stopped};

/// How the controller behaves; `serve` fills it from its flags.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// Where mirrors and checkouts live (`DATA/git`).
    pub git_dir: PathBuf,
    /// Clusters synced at once.
    pub concurrency: usize,
    /// Time limit of one whole sync.
    pub sync_timeout: Duration,
    /// Time limit of each call to a cluster.
    pub call_timeout: Duration,
    /// Time limit of one fetch or push.
    pub git_timeout: Duration,
    /// First retry delay after a failed sync; doubles up to `max_backoff`.
    pub base_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// How often clusters in self-heal mode are compared with what was
    /// applied.
    pub self_heal_interval: Duration,
    /// How often a cluster that is not healthy yet is re-assessed (healthy
    /// ones every ten times this).
    pub health_interval: Duration,
    /// How often each cluster is scanned for drift (jitter of up to 10% is
    /// added); clusters are also scanned after each sync and on demand.
    pub drift_interval: Duration,
    /// Whether kustomizations of the desired-state repository may read
    /// files outside their own directory (never outside the checkout).
    pub load_restrictions: pilothouse_render::LoadRestrictions,
    /// How often the scheduler looks at the fleet.
    pub tick: Duration,
}

impl Default for ControllerSettings {
    fn default() -> Self {
        Self {
            git_dir: PathBuf::from(".pilothouse/git"),
            concurrency: 4,
            sync_timeout: Duration::from_secs(600),
            call_timeout: Duration::from_secs(30),
            git_timeout: Duration::from_secs(60),
            base_backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(300),
            self_heal_interval: Duration::from_secs(30),
            health_interval: Duration::from_secs(10),
            drift_interval: Duration::from_secs(300),
            load_restrictions: pilothouse_render::LoadRestrictions::RootOnly,
            tick: Duration::from_secs(1),
        }
    }
}

/// Shared by the controller's tasks and the API's [`GitOpsControl`] handle.
pub struct Controller {
    store: Store,
    key: Arc<MasterKey>,
    policy: Arc<KubeconfigPolicy>,
    settings: ControllerSettings,
    /// Serialises every use of the mirror (fetch, checkout, push).
    mirror_lock: tokio::sync::Mutex<()>,
    /// Wakes the poller: fetch now.
    fetch_wanted: Notify,
    /// Wakes the scheduler: look at the queue now.
    queue_changed: Notify,
    /// Clusters with a sync running now.
    running: Mutex<HashSet<String>>,
    /// Bounds the syncs (and drift scans) running at once.
    slots: Semaphore,
    /// Per cluster: the last drift scan's results, reused while unchanged.
    scan_caches: tokio::sync::Mutex<HashMap<String, drift::ScanCache>>,
    /// Per cluster: one drift scan at a time.
    scan_locks: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Controller {
    /// A controller; nothing runs until [`Controller::spawn`].
    pub fn new(
        store: Store,
        key: Arc<MasterKey>,
        policy: Arc<KubeconfigPolicy>,
        settings: ControllerSettings,
    ) -> Arc<Self> {
        let slots = Semaphore::new(settings.concurrency.max(1));
        Arc::new(Self {
            store,
            key,
            policy,
            settings,
            mirror_lock: tokio::sync::Mutex::new(()),
            fetch_wanted: Notify::new(),
            queue_changed: Notify::new(),
            running: Mutex::new(HashSet::new()),
            slots,
            scan_caches: tokio::sync::Mutex::new(HashMap::new()),
            scan_locks: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Starts the poller, the scheduler and the health assessor; they stop
    /// when `stop` turns true.
    pub fn spawn(
        self: &Arc<Self>,
        stop: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        vec![
            tokio::spawn(Arc::clone(self).poll(stop.clone())),
            tokio::spawn(Arc::clone(self).schedule(stop.clone())),
            tokio::spawn(Arc::clone(self).assess(stop.clone())),
            tokio::spawn(Arc::clone(self).scan_loop(stop)),
        ]
    }
}

/// The API's handle on the controller.
pub struct ControlHandle(pub Arc<Controller>);

impl GitOpsControl for ControlHandle {
    fn fetch_now(&self) {
        self.0.fetch_wanted.notify_one();
    }

    fn sync_queued(&self) {
        self.0.queue_changed.notify_one();
    }

    fn scaffold(
        &self,
        cluster: String,
        cloud: String,
    ) -> BoxFuture<Result<Scaffolded, ScaffoldError>> {
        let controller = Arc::clone(&self.0);
        Box::pin(async move { controller.scaffold(&cluster, &cloud).await })
    }

    fn scan_drift(&self, cluster: String) -> BoxFuture<Result<(), String>> {
        let controller = Arc::clone(&self.0);
        Box::pin(async move {
            controller
                .scan(&cluster, pilothouse_store::ScanTrigger::Manual)
                .await
                .map(drop)
                .map_err(|error| format!("{error:#}"))
        })
    }
}

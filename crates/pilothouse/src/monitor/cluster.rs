//! One cluster's watch: Pods, Nodes and Warning Events in, incident changes
//! out. The detector and the book live here, owned by this task alone.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

use pilothouse_fleet::{WatchEvent, WatchedKind, event_summary, name_of};
use pilothouse_incidents::{
    Change, ChangeKind, DetectConfig, Detector, Finding, Healthy, Incident, IncidentBook,
    IncidentStatus, Observation,
};
use pilothouse_store::{IncidentQuery, IncidentRecord};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::writer::{Capture, WriteRequest, WriterMessage};
use super::{Monitor, now_ms};

/// Warning events kept per pod, newest last.
const EVENTS_PER_POD: usize = 10;
/// Pods whose warning events are kept (the oldest pod is forgotten first).
const EVENT_PODS: usize = 2000;

/// The state of one cluster's watch.
pub(super) struct ClusterWatch {
    monitor: Arc<Monitor>,
    cluster: String,
    client: kube::Client,
    detector: Detector,
    book: IncidentBook,
    /// Pods and nodes seen (namespace, name), to find deletions at relists.
    pods: HashSet<(String, String)>,
    nodes: HashSet<String>,
    /// Kinds whose watch reports the cluster unreachable.
    unreachable: HashSet<WatchedKind>,
    /// Until the first pod list is done after start: findings of incidents
    /// restored from the store for pods they already name are not counted
    /// again (they were counted before the restart).
    first_pod_list: bool,
    /// The same for node findings, until the first node list.
    first_node_list: bool,
    /// Changes made while restoring, written when the watch starts.
    startup: Vec<Change>,
    /// Recent warning events by pod (namespace, name).
    events: BTreeMap<(String, String), VecDeque<Value>>,
    event_order: VecDeque<(String, String)>,
    /// The revision last synced to the cluster, refreshed now and then.
    revision: Option<String>,
    /// What the watches reported and this task processed.
    progress: super::progress::Progress,
}

impl ClusterWatch {
    /// A watch for `cluster` with its incidents restored from the store.
    pub(super) async fn new(
        monitor: Arc<Monitor>,
        cluster: String,
        client: kube::Client,
        detect: DetectConfig,
    ) -> anyhow::Result<Self> {
        // A watch of this cluster that just stopped may have changes queued:
        // read the store once they are written.
        let (done, written) = tokio::sync::oneshot::channel();
        if monitor
            .writer
            .send(WriterMessage::Barrier(done))
            .await
            .is_ok()
        {
            let _ = written.await;
        }
        let mut book = IncidentBook::new(super::millis(monitor.settings.hold_down));
        for record in stored_incidents(&monitor, &cluster).await? {
            if let Some(incident) = Incident::from_write(&record.incident) {
                book.restore(incident);
            }
        }
        // Incidents left unknown (the cluster was unreachable when
        // Pilothouse stopped) stay unknown, and open ones turn unknown too,
        // until the first list answers.
        let startup = if book
            .incidents()
            .any(|incident| incident.status == IncidentStatus::Unknown)
        {
            book.cluster_unreachable()
        } else {
            Vec::new()
        };
        let revision = monitor
            .store
            .get_cluster(&cluster)
            .await?
            .and_then(|c| c.sync.revision);
        Ok(Self {
            detector: Detector::new(detect),
            monitor,
            cluster,
            client,
            book,
            pods: HashSet::new(),
            nodes: HashSet::new(),
            unreachable: HashSet::new(),
            first_pod_list: true,
            first_node_list: true,
            startup,
            events: BTreeMap::new(),
            event_order: VecDeque::new(),
            revision,
            progress: super::progress::Progress::default(),
        })
    }

    /// Runs until `stop` turns true or the watches end.
    pub(super) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let (sender, mut events) = mpsc::channel(1024);
        let mut watches = Vec::new();
        for kind in WatchedKind::ALL {
            watches.push(tokio::spawn(pilothouse_fleet::watch(
                self.client.clone(),
                kind,
                self.monitor.settings.watch.clone(),
                sender.clone(),
            )));
        }
        drop(sender);
        let startup = std::mem::take(&mut self.startup);
        self.emit(startup, None).await;
        let mut tick = tokio::time::interval(self.monitor.settings.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refresh = tokio::time::interval(std::time::Duration::from_secs(30));
        let mut forget = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tokio::select! {
                () = super::stopped(&mut stop) => break,
                event = events.recv() => match event {
                    Some(event) => {
                        self.progress.processed(&event, now_ms());
                        self.handle(event).await;
                        // published when caught up, not for every event
                        if events.is_empty() {
                            self.publish_progress().await;
                        }
                    }
                    None => break,
                },
                _ = tick.tick() => self.tick().await,
                _ = refresh.tick() => self.refresh_revision().await,
                _ = forget.tick() => {
                    // as the store purges them
                    let cutoff = now_ms() - super::millis(self.monitor.settings.retention);
                    self.book.forget_resolved_before(cutoff);
                }
            }
        }
        for task in watches {
            task.abort();
        }
    }

    /// Hands the progress to the writer, which publishes it once the
    /// changes sent before it are written.
    async fn publish_progress(&self) {
        let message = WriterMessage::Progress(self.cluster.clone(), self.progress.snapshot());
        let _ = self.monitor.writer.send(message).await;
    }

    async fn refresh_revision(&mut self) {
        if let Ok(Some(cluster)) = self.monitor.store.get_cluster(&self.cluster).await {
            self.revision = cluster.sync.revision;
        }
    }

    async fn tick(&mut self) {
        let now = now_ms();
        let mut changes = Vec::new();
        for observation in self.detector.tick(now) {
            changes.extend(self.book.observe(&observation));
        }
        changes.extend(self.book.tick(now));
        self.emit(changes, None).await;
    }

    async fn handle(&mut self, event: WatchEvent) {
        let now = now_ms();
        match event {
            WatchEvent::Applied {
                kind: WatchedKind::Pod,
                object,
            } => {
                self.pods.insert(name_of(&object));
                let observations = self.detector.pod(&object, now);
                self.observe(observations, Some(&object)).await;
            }
            WatchEvent::Deleted {
                kind: WatchedKind::Pod,
                object,
            } => {
                let (namespace, name) = name_of(&object);
                self.pods.remove(&(namespace.clone(), name.clone()));
                let observations = self.detector.pod_deleted(&namespace, &name, now);
                self.observe(observations, None).await;
            }
            WatchEvent::Listed {
                kind: WatchedKind::Pod,
                present,
            } => {
                let gone: Vec<(String, String)> = self.pods.difference(&present).cloned().collect();
                let mut observations = Vec::new();
                for (namespace, name) in gone {
                    self.pods.remove(&(namespace.clone(), name.clone()));
                    observations.extend(self.detector.pod_deleted(&namespace, &name, now));
                }
                if std::mem::take(&mut self.first_pod_list) {
                    // Restored incidents whose workload has no pod any more
                    // (deleted while Pilothouse was down) can resolve.
                    let gone: Vec<Observation> = self
                        .book
                        .incidents()
                        .filter(|incident| incident.status != IncidentStatus::Resolved)
                        .filter_map(|incident| {
                            let namespace = incident.key.namespace.as_deref()?;
                            (!self.detector.has_pods(namespace, &incident.key.workload)).then(
                                || {
                                    Observation::Healthy(Healthy {
                                        namespace: Some(namespace.to_owned()),
                                        workload: incident.key.workload.clone(),
                                        reasons: None,
                                        pod: None,
                                        at_ms: now,
                                    })
                                },
                            )
                        })
                        .collect();
                    observations.extend(gone);
                }
                self.observe(observations, None).await;
                if !self.book.is_reachable() && self.unreachable.is_empty() {
                    self.reachable_again(now).await;
                }
            }
            WatchEvent::Applied {
                kind: WatchedKind::Node,
                object,
            } => {
                self.nodes.insert(name_of(&object).1);
                let observations = self.detector.node(&object, now);
                self.observe(observations, None).await;
            }
            WatchEvent::Deleted {
                kind: WatchedKind::Node,
                object,
            } => {
                let name = name_of(&object).1;
                self.nodes.remove(&name);
                let observations = self.detector.node_deleted(&name, now);
                self.observe(observations, None).await;
            }
            WatchEvent::Listed {
                kind: WatchedKind::Node,
                present,
            } => {
                let present: HashSet<String> = present.into_iter().map(|(_, n)| n).collect();
                let gone: Vec<String> = self.nodes.difference(&present).cloned().collect();
                let mut observations = Vec::new();
                for name in gone {
                    self.nodes.remove(&name);
                    observations.extend(self.detector.node_deleted(&name, now));
                }
                self.first_node_list = false;
                self.observe(observations, None).await;
            }
            WatchEvent::Applied {
                kind: WatchedKind::WarningEvent,
                object,
            } => self.remember_event(&object),
            WatchEvent::Deleted {
                kind: WatchedKind::WarningEvent,
                ..
            }
            | WatchEvent::Listed {
                kind: WatchedKind::WarningEvent,
                ..
            } => {}
            WatchEvent::Unreachable { kind, message } => {
                tracing::warn!(cluster = %self.cluster, watch = kind.plural(), %message, "cluster unreachable");
                let was_reachable = self.unreachable.is_empty();
                self.unreachable.insert(kind);
                if was_reachable {
                    let changes = self.book.cluster_unreachable();
                    self.emit(changes, None).await;
                }
            }
            WatchEvent::Refused { kind, message } => {
                tracing::warn!(cluster = %self.cluster, watch = kind.plural(), %message, "the cluster refuses this watch; its credentials may be too weak");
            }
            WatchEvent::Reachable { kind } => {
                if self.unreachable.remove(&kind) && self.unreachable.is_empty() {
                    tracing::info!(cluster = %self.cluster, "cluster reachable again");
                    self.reachable_again(now).await;
                }
            }
        }
    }

    /// Every watch answers again: unknown incidents are open again, and
    /// what the watches that came back first reported healthy (while the
    /// incidents were still unknown) starts their hold-downs now.
    async fn reachable_again(&mut self, now: i64) {
        let mut changes = self.book.cluster_reachable();
        for observation in self.detector.healthy_now(now) {
            changes.extend(self.book.observe(&observation));
        }
        self.emit(changes, None).await;
    }

    /// Applies observations to the book and passes on the changes.
    async fn observe(&mut self, observations: Vec<Observation>, pod: Option<&Value>) {
        let mut changes = Vec::new();
        for observation in observations {
            if let Observation::Finding(finding) = &observation
                && self.already_counted(finding)
            {
                continue;
            }
            changes.extend(self.book.observe(&observation));
        }
        self.emit(changes, pod).await;
    }

    /// Whether a finding is a failure counted before Pilothouse restarted:
    /// until the first list of pods (nodes), a restored unresolved incident
    /// that already names the finding's pod (node).
    fn already_counted(&self, finding: &Finding) -> bool {
        let named = |incident: &Incident| match (&finding.pod, &finding.node) {
            (Some(pod), _) => self.first_pod_list && incident.pods.contains(pod),
            (None, Some(node)) => self.first_node_list && incident.nodes.contains(node),
            (None, None) => false,
        };
        self.book
            .get(&finding.key)
            .is_some_and(|incident| incident.status != IncidentStatus::Resolved && named(incident))
    }

    async fn emit(&mut self, changes: Vec<Change>, pod: Option<&Value>) {
        for change in changes {
            let capture = match (change.kind, pod) {
                (ChangeKind::Opened, Some(pod)) => self.capture_for(&change.incident, pod),
                _ => None,
            };
            let write = change
                .incident
                .to_write(&self.cluster, self.revision.clone());
            let request = WriterMessage::Write(Box::new(WriteRequest { write, capture }));
            if self.monitor.writer.send(request).await.is_err() {
                return;
            }
        }
    }

    /// What to capture at an incident's first occurrence in `pod`: the
    /// container's log (the previous instance when it restarted) and the
    /// pod's events.
    fn capture_for(&self, incident: &Incident, pod: &Value) -> Option<Capture> {
        let (namespace, name) = name_of(pod);
        if !incident.pods.contains(&name) {
            return None;
        }
        let container = incident.key.container.clone();
        let restarted = container.as_deref().is_some_and(|container| {
            ["containerStatuses", "initContainerStatuses"]
                .iter()
                .filter_map(|field| pod["status"][field].as_array())
                .flatten()
                .any(|status| {
                    status["name"] == container
                        && (status["restartCount"].as_i64().unwrap_or(0) > 0
                            || status["lastState"]["terminated"].is_object())
                })
        });
        let warnings = self
            .events
            .get(&(namespace.clone(), name.clone()))
            .map(|events| events.iter().cloned().collect())
            .unwrap_or_default();
        Some(Capture {
            client: self.client.clone(),
            namespace,
            pod: name,
            container,
            previous: restarted,
            warnings,
        })
    }

    fn remember_event(&mut self, event: &Value) {
        let involved = &event["involvedObject"];
        if involved["kind"] != "Pod" {
            return;
        }
        let key = (
            involved["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            involved["name"].as_str().unwrap_or_default().to_owned(),
        );
        let summary = event_summary(event);
        let entry = self.events.entry(key.clone()).or_insert_with(|| {
            self.event_order.push_back(key.clone());
            VecDeque::new()
        });
        // An event updated in place (its count grew) replaces its older copy.
        entry.retain(|kept| {
            kept["reason"] != summary["reason"] || kept["message"] != summary["message"]
        });
        entry.push_back(summary);
        while entry.len() > EVENTS_PER_POD {
            entry.pop_front();
        }
        while self.event_order.len() > EVENT_PODS {
            if let Some(oldest) = self.event_order.pop_front() {
                self.events.remove(&oldest);
            }
        }
    }
}

/// Every incident of a cluster in the store, resolved ones too (a relapse
/// reopens them).
async fn stored_incidents(monitor: &Monitor, cluster: &str) -> anyhow::Result<Vec<IncidentRecord>> {
    let mut all = Vec::new();
    let mut query = IncidentQuery {
        cluster: Some(cluster.to_owned()),
        limit: 500,
        ..IncidentQuery::default()
    };
    loop {
        let page = monitor.store.list_incidents(&query).await?;
        let Some(last) = page.last() else { break };
        query.after = Some((last.incident.last_seen_at, last.id));
        let full = page.len() == 500;
        all.extend(page);
        if !full {
            break;
        }
    }
    Ok(all)
}

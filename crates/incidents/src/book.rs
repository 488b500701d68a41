//! Grouping findings into incidents, and their life cycle.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::{Finding, Healthy, IncidentKey, Observation};

/// At most this many pods (and nodes) are named in an incident; the count
/// goes on.
pub const MAX_NAMES: usize = 100;

/// How long an incident must stay healthy before it resolves: two minutes.
pub const DEFAULT_HOLD_DOWN_MS: i64 = 2 * 60 * 1000;

pub use pilothouse_types::IncidentStatus;
use pilothouse_types::IncidentWrite;

/// One incident: every finding with the same key, across pods and restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// What it is about.
    pub key: IncidentKey,
    /// Where it stands.
    pub status: IncidentStatus,
    /// The sum of the findings' occurrences, over the incident's whole life
    /// (reopening does not reset it).
    pub count: u64,
    /// The pods it was seen in (the first [`MAX_NAMES`]).
    pub pods: BTreeSet<String>,
    /// The nodes it was seen on (the first [`MAX_NAMES`]).
    pub nodes: BTreeSet<String>,
    /// The first finding's time.
    pub first_seen_ms: i64,
    /// The last finding's time.
    pub last_seen_ms: i64,
    /// The last exit code a finding carried.
    pub last_exit_code: Option<i32>,
    /// The last message a finding carried.
    pub message: Option<String>,
    /// The last image a finding carried.
    pub image: Option<String>,
    /// How often it relapsed after being resolved.
    pub reopen_count: u32,
    /// Since when it is healthy (the hold-down runs), if it is.
    pub healthy_since_ms: Option<i64>,
    /// When it was last resolved, while resolved.
    pub resolved_at_ms: Option<i64>,
}

impl Incident {
    /// The incident's whole state on `cluster`, as the store keeps it and
    /// the API and notifications read it; `revision` is the Git revision
    /// last synced to the cluster.
    pub fn to_write(&self, cluster: &str, revision: Option<String>) -> IncidentWrite {
        let key = &self.key;
        IncidentWrite {
            cluster: cluster.to_owned(),
            namespace: key.namespace.clone(),
            workload_kind: key.workload.kind.clone(),
            workload_name: key.workload.name.clone(),
            container: key.container.clone(),
            reason: key.reason.as_str().to_owned(),
            severity: key.reason.severity(),
            status: self.status,
            count: self.count,
            reopen_count: self.reopen_count,
            first_seen_at: self.first_seen_ms,
            last_seen_at: self.last_seen_ms,
            resolved_at: self.resolved_at_ms,
            last_exit_code: self.last_exit_code,
            message: self.message.clone(),
            image: self.image.clone(),
            pods: self.pods.clone(),
            nodes: self.nodes.clone(),
            revision,
        }
    }

    /// The book's form of a stored incident; `None` for a reason this
    /// version does not know.
    pub fn from_write(stored: &IncidentWrite) -> Option<Incident> {
        let reason = stored.reason.parse::<crate::Reason>().ok()?;
        Some(Incident {
            key: IncidentKey {
                namespace: stored.namespace.clone(),
                workload: crate::Workload::new(
                    stored.workload_kind.clone(),
                    stored.workload_name.clone(),
                ),
                container: stored.container.clone(),
                reason,
            },
            status: stored.status,
            count: stored.count,
            pods: stored.pods.clone(),
            nodes: stored.nodes.clone(),
            first_seen_ms: stored.first_seen_at,
            last_seen_ms: stored.last_seen_at,
            last_exit_code: stored.last_exit_code,
            message: stored.message.clone(),
            image: stored.image.clone(),
            reopen_count: stored.reopen_count,
            healthy_since_ms: None,
            resolved_at_ms: stored.resolved_at,
        })
    }
}

/// What happened to an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new incident.
    Opened,
    /// More occurrences of an open (or unknown) incident.
    Updated,
    /// Healthy for the hold-down.
    Resolved,
    /// A relapse of a resolved incident.
    Reopened,
    /// The cluster became unreachable while it was open.
    Unknown,
    /// The cluster is reachable again; it is open again.
    Known,
}

/// A change to persist and maybe notify about, with the incident as it is
/// after the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The incident after it.
    pub incident: Incident,
}

/// The incidents of one cluster, in memory: applies findings and healthy
/// signals, resolves after the hold-down, and knows whether the cluster is
/// reachable. Resolved incidents are kept so that a relapse reopens them.
#[derive(Debug, Clone)]
pub struct IncidentBook {
    hold_down_ms: i64,
    reachable: bool,
    incidents: BTreeMap<IncidentKey, Incident>,
}

impl Default for IncidentBook {
    /// An empty book with [`DEFAULT_HOLD_DOWN_MS`].
    fn default() -> Self {
        IncidentBook::new(DEFAULT_HOLD_DOWN_MS)
    }
}

impl IncidentBook {
    /// An empty book for a reachable cluster.
    pub fn new(hold_down_ms: i64) -> Self {
        IncidentBook {
            hold_down_ms,
            reachable: true,
            incidents: BTreeMap::new(),
        }
    }

    /// Puts back an incident persisted earlier (replacing one with the same
    /// key).
    pub fn restore(&mut self, incident: Incident) {
        self.incidents.insert(incident.key.clone(), incident);
    }

    /// The incident with this key.
    pub fn get(&self, key: &IncidentKey) -> Option<&Incident> {
        self.incidents.get(key)
    }

    /// Every incident, resolved ones too, in key order.
    pub fn incidents(&self) -> impl Iterator<Item = &Incident> {
        self.incidents.values()
    }

    /// Whether the cluster is reachable (see [`Self::cluster_unreachable`]).
    pub fn is_reachable(&self) -> bool {
        self.reachable
    }

    /// Applies an observation: a finding always changes an incident; a
    /// healthy signal only starts hold-downs.
    pub fn observe(&mut self, observation: &Observation) -> Option<Change> {
        match observation {
            Observation::Finding(finding) => Some(self.apply(finding)),
            Observation::Healthy(healthy) => {
                self.observe_healthy(healthy);
                None
            }
        }
    }

    /// Adds a finding to the incident with its key: opens it, updates it,
    /// or reopens it when resolved. Any hold-down is cancelled. An
    /// [`IncidentStatus::Unknown`] incident stays unknown (updated).
    pub fn apply(&mut self, finding: &Finding) -> Change {
        let (kind, incident) = match self.incidents.get_mut(&finding.key) {
            None => {
                let incident = Incident {
                    key: finding.key.clone(),
                    status: IncidentStatus::Open,
                    count: 0,
                    pods: BTreeSet::new(),
                    nodes: BTreeSet::new(),
                    first_seen_ms: finding.at_ms,
                    last_seen_ms: finding.at_ms,
                    last_exit_code: None,
                    message: None,
                    image: None,
                    reopen_count: 0,
                    healthy_since_ms: None,
                    resolved_at_ms: None,
                };
                let incident = self
                    .incidents
                    .entry(finding.key.clone())
                    .or_insert(incident);
                (ChangeKind::Opened, incident)
            }
            Some(incident) if incident.status == IncidentStatus::Resolved => {
                incident.status = IncidentStatus::Open;
                incident.reopen_count += 1;
                incident.resolved_at_ms = None;
                (ChangeKind::Reopened, incident)
            }
            Some(incident) => (ChangeKind::Updated, incident),
        };
        incident.count = incident
            .count
            .saturating_add(u64::from(finding.occurrences));
        // bounded: a crash-looping Job or a long-lived Deployment goes
        // through many pods; the first ones tell the story, the count the rest
        if incident.pods.len() < MAX_NAMES {
            incident.pods.extend(finding.pod.clone());
        }
        if incident.nodes.len() < MAX_NAMES {
            incident.nodes.extend(finding.node.clone());
        }
        incident.first_seen_ms = incident.first_seen_ms.min(finding.at_ms);
        incident.last_seen_ms = incident.last_seen_ms.max(finding.at_ms);
        incident.last_exit_code = finding.exit_code.or(incident.last_exit_code);
        incident.message = finding.message.clone().or(incident.message.take());
        incident.image = finding.image.clone().or(incident.image.take());
        incident.healthy_since_ms = None;
        Change {
            kind,
            incident: incident.clone(),
        }
    }

    /// Starts the hold-down of an open incident (if not running already):
    /// it resolves at the first [`Self::tick`] at least the hold-down later,
    /// unless a finding comes first. Returns whether the incident is open.
    pub fn healthy(&mut self, key: &IncidentKey, now_ms: i64) -> bool {
        match self.incidents.get_mut(key) {
            Some(incident) if incident.status == IncidentStatus::Open => {
                incident.healthy_since_ms.get_or_insert(now_ms);
                true
            }
            _ => false,
        }
    }

    /// Starts the hold-down of every open incident the signal covers (see
    /// [`Healthy::covers`]).
    pub fn observe_healthy(&mut self, healthy: &Healthy) {
        for incident in self.incidents.values_mut() {
            if incident.status == IncidentStatus::Open && healthy.covers(&incident.key) {
                incident.healthy_since_ms.get_or_insert(healthy.at_ms);
            }
        }
    }

    /// Resolves the open incidents healthy for at least the hold-down.
    /// Nothing resolves while the cluster is unreachable.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Change> {
        if !self.reachable {
            return Vec::new();
        }
        let mut changes = Vec::new();
        for incident in self.incidents.values_mut() {
            if incident.status == IncidentStatus::Open
                && incident
                    .healthy_since_ms
                    .is_some_and(|since| now_ms - since >= self.hold_down_ms)
            {
                incident.status = IncidentStatus::Resolved;
                incident.healthy_since_ms = None;
                incident.resolved_at_ms = Some(now_ms);
                changes.push(Change {
                    kind: ChangeKind::Resolved,
                    incident: incident.clone(),
                });
            }
        }
        changes
    }

    /// Forgets incidents resolved before `cutoff_ms` (the store purges them
    /// after its retention; a relapse later is a new incident). Returns how
    /// many.
    pub fn forget_resolved_before(&mut self, cutoff_ms: i64) -> usize {
        let before = self.incidents.len();
        self.incidents.retain(|_, incident| {
            incident.status != IncidentStatus::Resolved
                || incident.resolved_at_ms.is_none_or(|at| at >= cutoff_ms)
        });
        before - self.incidents.len()
    }

    /// The cluster cannot be watched: open incidents become unknown (their
    /// hold-downs are cancelled) and nothing resolves until
    /// [`Self::cluster_reachable`].
    pub fn cluster_unreachable(&mut self) -> Vec<Change> {
        self.reachable = false;
        self.transition(
            IncidentStatus::Open,
            IncidentStatus::Unknown,
            ChangeKind::Unknown,
        )
    }

    /// The cluster can be watched again: unknown incidents are open again
    /// (they resolve only after fresh healthy signals and a full hold-down).
    pub fn cluster_reachable(&mut self) -> Vec<Change> {
        self.reachable = true;
        self.transition(
            IncidentStatus::Unknown,
            IncidentStatus::Open,
            ChangeKind::Known,
        )
    }

    fn transition(
        &mut self,
        from: IncidentStatus,
        to: IncidentStatus,
        kind: ChangeKind,
    ) -> Vec<Change> {
        self.incidents
            .values_mut()
            .filter(|incident| incident.status == from)
            .map(|incident| {
                incident.status = to;
                incident.healthy_since_ms = None;
                Change {
                    kind,
                    incident: incident.clone(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::detect::tests::{MINUTE, T0, app, healthy_web, node, terminated, waiting, web};
    use crate::{DetectConfig, Detector, Reason, Workload};

    enum Step {
        Pod(Value, i64),
        Node(Value, i64),
        Healthy(IncidentKey, i64),
        Tick(i64),
        Unreachable,
        Reachable,
        /// Every incident in the book.
        Incidents,
    }

    fn summary(kind: Option<ChangeKind>, incident: &Incident) -> String {
        let key = &incident.key;
        let container = key
            .container
            .as_ref()
            .map(|c| format!("/{c}"))
            .unwrap_or_default();
        let pods: Vec<&str> = incident.pods.iter().map(String::as_str).collect();
        let kind = kind.map(|kind| format!("{kind:?} ")).unwrap_or_default();
        format!(
            "{kind}{} {}/{}{container} {:?} count={} pods={} reopen={}",
            key.reason,
            key.workload.kind,
            key.workload.name,
            incident.status,
            incident.count,
            pods.join(","),
            incident.reopen_count
        )
    }

    fn check(scenario: &str, steps: Vec<(Step, &[&str])>) {
        let mut detector = Detector::new(DetectConfig::default());
        let mut book = IncidentBook::default();
        for (i, (step, expected)) in steps.into_iter().enumerate() {
            let feed = |book: &mut IncidentBook, observations: Vec<Observation>| -> Vec<Change> {
                observations
                    .iter()
                    .filter_map(|o| book.observe(o))
                    .collect()
            };
            let changes = match step {
                Step::Pod(pod, now) => feed(&mut book, detector.pod(&pod, now)),
                Step::Node(node, now) => feed(&mut book, detector.node(&node, now)),
                Step::Healthy(key, now) => {
                    book.healthy(&key, now);
                    Vec::new()
                }
                Step::Tick(now) => {
                    let mut changes = feed(&mut book, detector.tick(now));
                    changes.extend(book.tick(now));
                    changes
                }
                Step::Unreachable => book.cluster_unreachable(),
                Step::Reachable => book.cluster_reachable(),
                Step::Incidents => {
                    let got: Vec<String> = book
                        .incidents()
                        .map(|incident| summary(None, incident))
                        .collect();
                    assert_eq!(got, expected, "{scenario}, step {i}");
                    continue;
                }
            };
            let got: Vec<String> = changes
                .iter()
                .map(|c| summary(Some(c.kind), &c.incident))
                .collect();
            assert_eq!(got, expected, "{scenario}, step {i}");
        }
    }

    fn oom(name: &str) -> Value {
        web(
            name,
            app(0, terminated("OOMKilled", 137, 1), Value::Null, false),
        )
    }

    fn crashed(run: u32) -> Value {
        web(
            "web-1",
            app(
                i64::from(run) - 1,
                terminated("Error", 1, run),
                Value::Null,
                false,
            ),
        )
    }

    fn recovered(run: u32) -> Value {
        healthy_web("web-1", i64::from(run), terminated("Error", 1, run))
    }

    #[test]
    fn incidents() {
        check(
            "three OOMKilled replicas of one Deployment are one incident",
            vec![
                (
                    Step::Pod(oom("web-a"), T0),
                    &["Opened OOMKilled Deployment/web/app Open count=1 pods=web-a reopen=0"],
                ),
                (
                    Step::Pod(oom("web-b"), T0 + 1),
                    &[
                        "Updated OOMKilled Deployment/web/app Open count=2 pods=web-a,web-b reopen=0",
                    ],
                ),
                (
                    Step::Pod(oom("web-c"), T0 + 2),
                    &[
                        "Updated OOMKilled Deployment/web/app Open count=3 pods=web-a,web-b,web-c reopen=0",
                    ],
                ),
                (Step::Pod(oom("web-c"), T0 + 3), &[]),
                (
                    Step::Incidents,
                    &["OOMKilled Deployment/web/app Open count=3 pods=web-a,web-b,web-c reopen=0"],
                ),
            ],
        );
        check(
            "flapping: resolved after the hold-down, a relapse reopens the same incident",
            vec![
                (
                    Step::Pod(crashed(1), T0),
                    &["Opened Error Deployment/web/app Open count=1 pods=web-1 reopen=0"],
                ),
                (Step::Pod(recovered(1), T0 + MINUTE), &[]),
                (Step::Tick(T0 + 2 * MINUTE), &[]),
                (
                    Step::Tick(T0 + 3 * MINUTE),
                    &["Resolved Error Deployment/web/app Resolved count=1 pods=web-1 reopen=0"],
                ),
                (Step::Tick(T0 + 4 * MINUTE), &[]),
                (
                    Step::Pod(crashed(2), T0 + 5 * MINUTE),
                    &["Reopened Error Deployment/web/app Open count=2 pods=web-1 reopen=1"],
                ),
                (
                    Step::Incidents,
                    &["Error Deployment/web/app Open count=2 pods=web-1 reopen=1"],
                ),
            ],
        );
        check(
            "a finding during the hold-down cancels it",
            vec![
                (
                    Step::Pod(crashed(1), T0),
                    &["Opened Error Deployment/web/app Open count=1 pods=web-1 reopen=0"],
                ),
                (Step::Pod(recovered(1), T0 + MINUTE), &[]),
                (
                    Step::Pod(crashed(2), T0 + 2 * MINUTE),
                    &["Updated Error Deployment/web/app Open count=2 pods=web-1 reopen=0"],
                ),
                (Step::Tick(T0 + 3 * MINUTE), &[]),
                (Step::Pod(recovered(2), T0 + 4 * MINUTE), &[]),
                (
                    Step::Tick(T0 + 6 * MINUTE),
                    &["Resolved Error Deployment/web/app Resolved count=2 pods=web-1 reopen=0"],
                ),
            ],
        );
        check(
            "unreachable: unknown, never resolved, open again when reachable",
            vec![
                (
                    Step::Pod(crashed(1), T0),
                    &["Opened Error Deployment/web/app Open count=1 pods=web-1 reopen=0"],
                ),
                (Step::Pod(recovered(1), T0 + MINUTE), &[]),
                (
                    Step::Unreachable,
                    &["Unknown Error Deployment/web/app Unknown count=1 pods=web-1 reopen=0"],
                ),
                (Step::Tick(T0 + 60 * MINUTE), &[]),
                (Step::Healthy(key(), T0 + 60 * MINUTE), &[]),
                (Step::Tick(T0 + 70 * MINUTE), &[]),
                (
                    Step::Incidents,
                    &["Error Deployment/web/app Unknown count=1 pods=web-1 reopen=0"],
                ),
                (
                    Step::Reachable,
                    &["Known Error Deployment/web/app Open count=1 pods=web-1 reopen=0"],
                ),
                (Step::Tick(T0 + 80 * MINUTE), &[]),
                (Step::Pod(recovered(1), T0 + 81 * MINUTE), &[]),
                (
                    Step::Tick(T0 + 83 * MINUTE),
                    &["Resolved Error Deployment/web/app Resolved count=1 pods=web-1 reopen=0"],
                ),
            ],
        );
        check(
            "healthy by key; other incidents of the workload stay open",
            vec![
                (
                    Step::Pod(
                        web(
                            "web-1",
                            app(0, waiting("ImagePullBackOff"), Value::Null, false),
                        ),
                        T0,
                    ),
                    &[
                        "Opened ImagePullBackOff Deployment/web/app Open count=1 pods=web-1 reopen=0",
                    ],
                ),
                (
                    Step::Pod(crashed(1), T0 + 1),
                    &["Opened Error Deployment/web/app Open count=1 pods=web-1 reopen=0"],
                ),
                (Step::Healthy(key(), T0 + 2), &[]),
                (
                    Step::Tick(T0 + 2 + 2 * MINUTE),
                    &["Resolved Error Deployment/web/app Resolved count=1 pods=web-1 reopen=0"],
                ),
                (
                    Step::Incidents,
                    &[
                        "ImagePullBackOff Deployment/web/app Open count=1 pods=web-1 reopen=0",
                        "Error Deployment/web/app Resolved count=1 pods=web-1 reopen=0",
                    ],
                ),
            ],
        );
        check(
            "node incidents resolve per condition",
            vec![
                (
                    Step::Node(node(&[("Ready", "False"), ("DiskPressure", "True")]), T0),
                    &[
                        "Opened NodeNotReady Node/node-1 Open count=1 pods= reopen=0",
                        "Opened DiskPressure Node/node-1 Open count=1 pods= reopen=0",
                    ],
                ),
                (
                    Step::Node(
                        node(&[("Ready", "True"), ("DiskPressure", "True")]),
                        T0 + MINUTE,
                    ),
                    &[],
                ),
                (
                    Step::Tick(T0 + 3 * MINUTE),
                    &["Resolved NodeNotReady Node/node-1 Resolved count=1 pods= reopen=0"],
                ),
                (
                    Step::Pod(healthy_web("web-1", 0, Value::Null), T0 + 4 * MINUTE),
                    &[],
                ),
                (Step::Tick(T0 + 10 * MINUTE), &[]),
            ],
        );
    }

    fn key() -> IncidentKey {
        IncidentKey {
            namespace: Some("shop".into()),
            workload: Workload::new("Deployment", "web"),
            container: Some("app".into()),
            reason: Reason::Error,
        }
    }

    #[test]
    fn an_incident_names_at_most_max_names_pods_and_counts_them_all() {
        let mut book = IncidentBook::default();
        for n in 0..150 {
            book.apply(&Finding {
                key: key(),
                pod: Some(format!("web-{n:03}")),
                node: Some(format!("node-{n:03}")),
                container: Some("app".into()),
                exit_code: Some(1),
                message: None,
                image: None,
                occurrences: 1,
                at_ms: T0 + n,
            });
        }
        let incident = book.get(&key()).expect("incident");
        assert_eq!(incident.count, 150);
        assert_eq!(incident.pods.len(), MAX_NAMES);
        assert_eq!(incident.nodes.len(), MAX_NAMES);
        assert!(incident.pods.contains("web-000") && !incident.pods.contains("web-149"));
    }

    #[test]
    fn incidents_keep_the_last_details_and_restore() {
        let mut detector = Detector::new(DetectConfig::default());
        let mut book = IncidentBook::new(1000);
        let pod = web(
            "web-1",
            app(0, terminated("Error", 3, 1), Value::Null, false),
        );
        let change = detector
            .pod(&pod, T0)
            .iter()
            .find_map(|o| book.observe(o))
            .expect("change");
        let incident = change.incident;
        assert_eq!((incident.first_seen_ms, incident.last_seen_ms), (T0, T0));
        assert_eq!(incident.last_exit_code, Some(3));
        assert_eq!(incident.image.as_deref(), Some("registry.example/web:1.2"));
        assert_eq!(incident.nodes.iter().collect::<Vec<_>>(), ["node-1"]);
        assert_eq!(incident.key.reason.severity(), crate::Severity::Warning);
        let json = serde_json::to_value(&incident).expect("serialize");
        assert_eq!(json["key"]["reason"], "Error");
        assert_eq!(json["status"], "open");

        let mut restored = IncidentBook::default();
        restored.restore(serde_json::from_value(json).expect("deserialize"));
        assert_eq!(restored.get(&incident.key), Some(&incident));
        assert!(restored.is_reachable());
        assert!(restored.healthy(&incident.key, T0));
        assert_eq!(restored.tick(T0 + DEFAULT_HOLD_DOWN_MS - 1), []);
        assert_eq!(restored.tick(T0 + DEFAULT_HOLD_DOWN_MS).len(), 1);
        assert!(!restored.healthy(&incident.key, T0));

        // resolved ones are forgotten after the retention, open ones never
        assert_eq!(
            restored.forget_resolved_before(T0 + DEFAULT_HOLD_DOWN_MS),
            0
        );
        assert_eq!(
            restored.forget_resolved_before(T0 + DEFAULT_HOLD_DOWN_MS + 1),
            1
        );
        assert_eq!(restored.get(&incident.key), None);
        assert_eq!(book.forget_resolved_before(i64::MAX), 0);
        assert!(book.get(&incident.key).is_some());
    }
}

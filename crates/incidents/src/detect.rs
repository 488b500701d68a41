//! Detection: pod and node objects in, findings and healthy signals out.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::parse_rfc3339_ms;
use crate::{DetectConfig, IncidentKey, Reason, Workload, workload_of};

/// One new occurrence of trouble: a state transition into a failing state,
/// or a growth of a container's restart count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Where it is grouped.
    pub key: IncidentKey,
    /// The pod's name; `None` for node findings.
    pub pod: Option<String>,
    /// The node the pod runs on, or the node of a node finding.
    pub node: Option<String>,
    /// The container (or init container); `None` for pod and node findings.
    pub container: Option<String>,
    /// The exit code of the termination behind the finding, if any.
    pub exit_code: Option<i32>,
    /// What Kubernetes says about it (the state's or condition's message,
    /// else its reason text).
    pub message: Option<String>,
    /// The container's image.
    pub image: Option<String>,
    /// How many occurrences: the restart delta, or 1 for a transition.
    pub occurrences: u32,
    /// When it was seen (the `now_ms` passed in).
    pub at_ms: i64,
}

/// A workload (or node) observed healthy: the incidents it matches may
/// resolve after the hold-down. Healthy signals are level-triggered (sent
/// on every healthy update); findings are edge-triggered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthy {
    /// The namespace; `None` for a node.
    pub namespace: Option<String>,
    /// The workload, or `Node`/name.
    pub workload: Workload,
    /// The reasons that are healthy; `None` for every reason.
    pub reasons: Option<BTreeSet<Reason>>,
    /// The healthy pod the signal comes from, if one.
    pub pod: Option<String>,
    /// When (the `now_ms` passed in).
    pub at_ms: i64,
}

impl Healthy {
    /// Whether an incident with this key is healthy by this signal.
    pub fn covers(&self, key: &IncidentKey) -> bool {
        key.namespace == self.namespace
            && key.workload == self.workload
            && self
                .reasons
                .as_ref()
                .is_none_or(|reasons| reasons.contains(&key.reason))
    }
}

/// What the detector reports for the [`IncidentBook`](crate::IncidentBook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observation {
    /// New trouble.
    Finding(Finding),
    /// A workload or node healthy again.
    Healthy(Healthy),
}

/// Detection state for one cluster: remembers what it has seen of each pod
/// (by uid) and node, so that an object seen again unchanged, relisted
/// after a watch restart, or replayed reports nothing new.
///
/// Rules, per container (init containers alike):
/// - A *failing state* is a `waiting` state with a reason of
///   [`Reason::CrashLoopBackOff`] … [`Reason::RunContainerError`], or a
///   `terminated` state that is a failure: reason `OOMKilled`
///   ([`Reason::OomKilled`]), or any non-zero exit code ([`Reason::Error`]),
///   except exit 137 or 143 while the pod has a `deletionTimestamp`
///   (a graceful-shutdown kill). Exit code 0 is never a failure.
/// - A finding is emitted when the container enters a failing state it was
///   not in at the previous update (occurrences 1), or when its
///   `restartCount` grew since the last update (occurrences = the delta;
///   reason = the current failing state, else the `lastState` termination's,
///   else [`Reason::Restarted`]; a restart after an exit 0 is not reported).
///   A termination already reported from `state.terminated` is not counted
///   again when the restart moves it to `lastState`.
/// - The first sight of a container sets its baseline: earlier restarts and
///   `lastState` are history and not reported, a current failing state is.
///
/// Per pod: Succeeded pods are never reported; a Failed pod is reported
/// once, as [`Reason::Evicted`] (its containers are then not looked at) or,
/// when no container shows a failed termination, [`Reason::PodFailed`]; a
/// Pending pod whose `PodScheduled` condition is `False`/`Unschedulable`
/// since longer than the threshold (from the condition's
/// `lastTransitionTime`, else from when the detector first saw it) is
/// reported once as [`Reason::Unschedulable`].
///
/// *Healthy* for a pod means: Succeeded, or Running, not being deleted, and
/// every (not excluded) container ready with no failing state. A
/// [`Healthy`] signal for the workload is emitted on each update of a
/// healthy pod, and when a pod is deleted, provided no other known pod of the
/// workload is failing (failing state or unschedulable; Failed pods are
/// terminal and do not hold their workload back). A node is healthy for
/// each of its conditions that is fine.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    config: DetectConfig,
    /// Pods by uid.
    pods: BTreeMap<String, PodMemory>,
    /// Uid by namespace and name.
    uids: BTreeMap<(String, String), String>,
    /// Health of each pod (by uid) per namespace and workload.
    workloads: BTreeMap<(String, Workload), BTreeMap<String, Health>>,
    /// Active node reasons by node name.
    nodes: BTreeMap<String, BTreeSet<Reason>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Healthy,
    Failing,
    Neither,
}

#[derive(Debug, Clone)]
struct PodMemory {
    namespace: String,
    name: String,
    workload: Workload,
    node: Option<String>,
    containers: BTreeMap<String, ContainerMemory>,
    /// Since when the pod is Pending and unschedulable, and the message.
    unschedulable: Option<(i64, Option<String>)>,
    unschedulable_reported: bool,
    failed_reported: bool,
}

#[derive(Debug, Clone)]
struct ContainerMemory {
    restarts: i64,
    failing: Option<Reason>,
    /// The termination (`containerID|finishedAt`) reported from
    /// `state.terminated`, not to be counted again from `lastState`.
    counted_termination: Option<String>,
}

struct Termination {
    failure: Option<Reason>,
    exit_code: Option<i32>,
    message: Option<String>,
    id: String,
}

fn termination(terminated: &Value, deleting: bool) -> Termination {
    let exit_code = terminated["exitCode"]
        .as_i64()
        .and_then(|code| i32::try_from(code).ok());
    let reason = terminated["reason"].as_str();
    let failure = if reason == Some("OOMKilled") {
        Some(Reason::OomKilled)
    } else if deleting && matches!(exit_code, Some(137 | 143)) {
        None
    } else if exit_code.is_some_and(|code| code != 0)
        || (exit_code.is_none() && reason == Some("Error"))
    {
        Some(Reason::Error)
    } else {
        None
    };
    Termination {
        failure,
        exit_code,
        message: text(&terminated["message"]).or_else(|| reason.map(str::to_owned)),
        id: format!(
            "{}|{}",
            terminated["containerID"].as_str().unwrap_or_default(),
            terminated["finishedAt"].as_str().unwrap_or_default()
        ),
    }
}

fn text(value: &Value) -> Option<String> {
    value
        .as_str()
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// What one container status amounts to.
struct ContainerReport {
    reason: Reason,
    occurrences: u32,
    exit_code: Option<i32>,
    message: Option<String>,
}

/// Compares a container status with what was remembered of it; returns the
/// report (if any) and what to remember now.
fn container(
    status: &Value,
    memory: Option<&ContainerMemory>,
    deleting: bool,
) -> (Option<ContainerReport>, ContainerMemory) {
    let restarts = status["restartCount"].as_i64().unwrap_or(0);
    let waiting = &status["state"]["waiting"];
    let waiting_reason = waiting["reason"].as_str().and_then(Reason::of_waiting);
    let current = status["state"]["terminated"]
        .as_object()
        .map(|_| termination(&status["state"]["terminated"], deleting));
    let last = status["lastState"]["terminated"]
        .as_object()
        .map(|_| termination(&status["lastState"]["terminated"], deleting));
    let failing = waiting_reason.or(current.as_ref().and_then(|t| t.failure));

    let mut next = ContainerMemory {
        restarts,
        failing,
        counted_termination: memory.and_then(|m| m.counted_termination.clone()),
    };
    let (mut delta, entered) = match memory {
        None => (0, failing.is_some()),
        Some(memory) => (
            (restarts - memory.restarts).max(0),
            failing.is_some() && failing != memory.failing,
        ),
    };
    if delta > 0
        && last
            .as_ref()
            .is_some_and(|last| next.counted_termination.as_deref() == Some(&last.id))
    {
        delta -= 1;
        next.counted_termination = None;
    }
    if delta == 0 && !entered {
        return (None, next);
    }
    let (reason, exit_code, message) = if let Some(reason) = waiting_reason {
        (
            reason,
            last.as_ref().and_then(|t| t.exit_code),
            text(&waiting["message"]).or_else(|| last.as_ref().and_then(|t| t.message.clone())),
        )
    } else if let Some(current) = current.as_ref().filter(|t| t.failure.is_some()) {
        next.counted_termination = Some(current.id.clone());
        (
            current.failure.unwrap_or(Reason::Error),
            current.exit_code,
            current.message.clone(),
        )
    } else {
        match &last {
            Some(Termination {
                failure: Some(reason),
                exit_code,
                message,
                ..
            }) => (*reason, *exit_code, message.clone()),
            Some(_) => return (None, next),
            None => (Reason::Restarted, None, None),
        }
    };
    let report = ContainerReport {
        reason,
        occurrences: u32::try_from(delta.max(1)).unwrap_or(u32::MAX),
        exit_code,
        message,
    };
    (Some(report), next)
}

impl Detector {
    /// A detector with nothing seen yet.
    pub fn new(config: DetectConfig) -> Self {
        Detector {
            config,
            ..Detector::default()
        }
    }

    /// The configuration in effect.
    pub fn config(&self) -> &DetectConfig {
        &self.config
    }

    /// Takes a pod as the API returns it (from a watch event or a list) and
    /// reports what is new since the last update of the same pod.
    pub fn pod(&mut self, pod: &Value, now_ms: i64) -> Vec<Observation> {
        let metadata = &pod["metadata"];
        let namespace = metadata["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let name = metadata["name"].as_str().unwrap_or_default().to_owned();
        if self.config.excludes_pod(&namespace, &name) {
            return Vec::new();
        }
        let uid = metadata["uid"]
            .as_str()
            .map_or_else(|| format!("{namespace}/{name}"), str::to_owned);
        if let Some(old) = self
            .uids
            .insert((namespace.clone(), name.clone()), uid.clone())
            && old != uid
        {
            self.forget(&old);
        }
        let status = &pod["status"];
        let phase = status["phase"].as_str().unwrap_or_default();
        let deleting = !metadata["deletionTimestamp"].is_null();
        let evicted = phase == "Failed" && status["reason"].as_str() == Some("Evicted");
        let mut memory = self.pods.remove(&uid).unwrap_or_else(|| PodMemory {
            namespace: namespace.clone(),
            name: name.clone(),
            workload: workload_of(pod),
            node: None,
            containers: BTreeMap::new(),
            unschedulable: None,
            unschedulable_reported: false,
            failed_reported: false,
        });
        memory.node = text(&pod["spec"]["nodeName"]);
        let mut out = Vec::new();
        let mut failing = false;
        let mut failed_termination = false;
        let mut all_ready = true;
        let mut any_container = false;

        if phase != "Succeeded" && !evicted {
            let images: BTreeMap<&str, &str> = ["initContainers", "containers"]
                .iter()
                .flat_map(|list| pod["spec"][list].as_array().into_iter().flatten())
                .filter_map(|c| Some((c["name"].as_str()?, c["image"].as_str()?)))
                .collect();
            for (list, init) in [
                ("initContainerStatuses", true),
                ("containerStatuses", false),
            ] {
                for status in status[list].as_array().into_iter().flatten() {
                    let Some(container_name) = status["name"].as_str() else {
                        continue;
                    };
                    if self.config.excludes_container(container_name) {
                        continue;
                    }
                    let (report, next) =
                        container(status, memory.containers.get(container_name), deleting);
                    failing |= next.failing.is_some();
                    failed_termination |=
                        status["state"]["terminated"].as_object().is_some_and(|_| {
                            termination(&status["state"]["terminated"], deleting)
                                .failure
                                .is_some()
                        });
                    if !init {
                        any_container = true;
                        all_ready &=
                            status["ready"].as_bool() == Some(true) && next.failing.is_none();
                    }
                    memory.containers.insert(container_name.to_owned(), next);
                    if let Some(report) = report {
                        let image = text(&status["image"]).or_else(|| {
                            images.get(container_name).map(|image| (*image).to_owned())
                        });
                        self.push(
                            &mut out,
                            &memory,
                            Some(container_name),
                            report.reason,
                            report.occurrences,
                            report.exit_code,
                            report.message,
                            image,
                            now_ms,
                        );
                    }
                }
            }
        }

        if phase == "Failed" && !memory.failed_reported {
            memory.failed_reported = true;
            let message = text(&status["message"]).or_else(|| text(&status["reason"]));
            if evicted {
                self.push(
                    &mut out,
                    &memory,
                    None,
                    Reason::Evicted,
                    1,
                    None,
                    message,
                    None,
                    now_ms,
                );
            } else if !failed_termination {
                self.push(
                    &mut out,
                    &memory,
                    None,
                    Reason::PodFailed,
                    1,
                    None,
                    message,
                    None,
                    now_ms,
                );
            }
        }

        let unschedulable = (phase == "Pending")
            .then(|| {
                status["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|c| {
                        c["type"] == "PodScheduled"
                            && c["status"] == "False"
                            && c["reason"] == "Unschedulable"
                    })
            })
            .flatten();
        match unschedulable {
            Some(condition) => {
                failing = true;
                let since = memory.unschedulable.as_ref().map_or_else(
                    || {
                        condition["lastTransitionTime"]
                            .as_str()
                            .and_then(parse_rfc3339_ms)
                            .unwrap_or(now_ms)
                    },
                    |(since, _)| *since,
                );
                memory.unschedulable = Some((since, text(&condition["message"])));
            }
            None => {
                memory.unschedulable = None;
                memory.unschedulable_reported = false;
            }
        }
        self.pending(&mut out, &mut memory, now_ms);

        let health = if phase == "Succeeded" {
            Health::Healthy
        } else if phase == "Failed" || deleting {
            Health::Neither
        } else if failing {
            Health::Failing
        } else if phase == "Running" && any_container && all_ready {
            Health::Healthy
        } else {
            Health::Neither
        };
        let group = (memory.namespace.clone(), memory.workload.clone());
        let pods = self.workloads.entry(group.clone()).or_default();
        pods.insert(uid.clone(), health);
        if health == Health::Healthy && !pods.values().any(|h| *h == Health::Failing) {
            out.push(Observation::Healthy(Healthy {
                namespace: Some(group.0),
                workload: group.1,
                reasons: None,
                pod: Some(name),
                at_ms: now_ms,
            }));
        }
        self.pods.insert(uid, memory);
        out
    }

    /// Forgets a deleted pod. When the deleted pod was not healthy and the
    /// workload has a healthy pod left and no failing one — or no pod left
    /// at all (the workload was deleted, or a one-off pod is gone) —
    /// reports the workload healthy; a replacement pod that fails again
    /// interrupts the hold-down.
    pub fn pod_deleted(&mut self, namespace: &str, name: &str, now_ms: i64) -> Vec<Observation> {
        let Some(uid) = self.uids.remove(&(namespace.to_owned(), name.to_owned())) else {
            return Vec::new();
        };
        let Some((group, health)) = self.forget(&uid) else {
            return Vec::new();
        };
        let pods = self.workloads.get(&group);
        let healthy = pods.is_none_or(|pods| {
            pods.values().any(|h| *h == Health::Healthy)
                && !pods.values().any(|h| *h == Health::Failing)
        });
        if health == Health::Healthy || !healthy {
            return Vec::new();
        }
        vec![Observation::Healthy(Healthy {
            namespace: Some(group.0),
            workload: group.1,
            reasons: None,
            pod: None,
            at_ms: now_ms,
        })]
    }

    /// The healthy signals of what is healthy now, as last seen: every
    /// workload with a healthy pod and no failing one, every node for the
    /// reasons it does not have. For a book whose incidents were unknown
    /// while the cluster could not be watched: signals that arrived in the
    /// meantime (a watch that came back before the others) were not
    /// applied to them.
    pub fn healthy_now(&self, now_ms: i64) -> Vec<Observation> {
        let workloads = self.workloads.iter().filter(|(_, pods)| {
            pods.values().any(|h| *h == Health::Healthy)
                && !pods.values().any(|h| *h == Health::Failing)
        });
        let mut out: Vec<Observation> = workloads
            .map(|((namespace, workload), _)| {
                Observation::Healthy(Healthy {
                    namespace: Some(namespace.clone()),
                    workload: workload.clone(),
                    reasons: None,
                    pod: None,
                    at_ms: now_ms,
                })
            })
            .collect();
        for (name, active) in &self.nodes {
            out.push(Observation::Healthy(Healthy {
                namespace: None,
                workload: Workload::new("Node", name.clone()),
                reasons: Some(
                    Reason::NODE
                        .into_iter()
                        .filter(|reason| !active.contains(reason))
                        .collect(),
                ),
                pod: None,
                at_ms: now_ms,
            }));
        }
        out
    }

    /// Whether any pod of this workload is known (seen and not deleted).
    pub fn has_pods(&self, namespace: &str, workload: &Workload) -> bool {
        self.workloads
            .contains_key(&(namespace.to_owned(), workload.clone()))
    }

    /// Takes a node as the API returns it: reports each of `Ready=False`,
    /// `Ready=Unknown`, `MemoryPressure=True`, `DiskPressure=True`,
    /// `PIDPressure=True` when it starts, and the node healthy for the
    /// others.
    pub fn node(&mut self, node: &Value, now_ms: i64) -> Vec<Observation> {
        let name = node["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut active = BTreeMap::new();
        for condition in node["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let reason = match (condition["type"].as_str(), condition["status"].as_str()) {
                (Some("Ready"), Some("False")) => Reason::NodeNotReady,
                (Some("Ready"), Some("Unknown")) => Reason::NodeUnknown,
                (Some("MemoryPressure"), Some("True")) => Reason::MemoryPressure,
                (Some("DiskPressure"), Some("True")) => Reason::DiskPressure,
                (Some("PIDPressure"), Some("True")) => Reason::PidPressure,
                _ => continue,
            };
            active.insert(
                reason,
                text(&condition["message"]).or_else(|| text(&condition["reason"])),
            );
        }
        let before = self
            .nodes
            .insert(name.clone(), active.keys().copied().collect())
            .unwrap_or_default();
        let workload = Workload::new("Node", name.clone());
        let mut out: Vec<Observation> = active
            .into_iter()
            .filter(|(reason, _)| !before.contains(reason) && !self.config.excludes_reason(*reason))
            .map(|(reason, message)| {
                Observation::Finding(Finding {
                    key: IncidentKey {
                        namespace: None,
                        workload: workload.clone(),
                        container: None,
                        reason,
                    },
                    pod: None,
                    node: Some(name.clone()),
                    container: None,
                    exit_code: None,
                    message,
                    image: None,
                    occurrences: 1,
                    at_ms: now_ms,
                })
            })
            .collect();
        let fine: BTreeSet<Reason> = Reason::NODE
            .into_iter()
            .filter(|reason| !self.nodes[&name].contains(reason))
            .collect();
        out.push(Observation::Healthy(Healthy {
            namespace: None,
            workload,
            reasons: Some(fine),
            pod: None,
            at_ms: now_ms,
        }));
        out
    }

    /// Forgets a deleted node and reports it healthy for every reason (its
    /// incidents can resolve).
    pub fn node_deleted(&mut self, name: &str, now_ms: i64) -> Vec<Observation> {
        self.nodes.remove(name);
        vec![Observation::Healthy(Healthy {
            namespace: None,
            workload: Workload::new("Node", name),
            reasons: None,
            pod: None,
            at_ms: now_ms,
        })]
    }

    /// Reports what time alone makes an incident: pods Pending and
    /// unschedulable for longer than the threshold, once per pod.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Observation> {
        let mut out = Vec::new();
        let uids: Vec<String> = self
            .pods
            .iter()
            .filter(|(_, pod)| pod.unschedulable.is_some() && !pod.unschedulable_reported)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in uids {
            if let Some(mut memory) = self.pods.remove(&uid) {
                self.pending(&mut out, &mut memory, now_ms);
                self.pods.insert(uid, memory);
            }
        }
        out
    }

    fn pending(&self, out: &mut Vec<Observation>, memory: &mut PodMemory, now_ms: i64) {
        if let Some((since, message)) = &memory.unschedulable
            && !memory.unschedulable_reported
            && now_ms - since >= self.config.pending_threshold()
        {
            let message = message.clone();
            memory.unschedulable_reported = true;
            self.push(
                out,
                memory,
                None,
                Reason::Unschedulable,
                1,
                None,
                message,
                None,
                now_ms,
            );
        }
    }

    /// Drops a pod's memory; returns its workload group and last health.
    fn forget(&mut self, uid: &str) -> Option<((String, Workload), Health)> {
        let memory = self.pods.remove(uid)?;
        let group = (memory.namespace, memory.workload);
        let pods = self.workloads.get_mut(&group)?;
        let health = pods.remove(uid)?;
        if pods.is_empty() {
            self.workloads.remove(&group);
        }
        Some((group, health))
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &self,
        out: &mut Vec<Observation>,
        pod: &PodMemory,
        container: Option<&str>,
        reason: Reason,
        occurrences: u32,
        exit_code: Option<i32>,
        message: Option<String>,
        image: Option<String>,
        now_ms: i64,
    ) {
        if self.config.excludes_reason(reason) {
            return;
        }
        out.push(Observation::Finding(Finding {
            key: IncidentKey {
                namespace: Some(pod.namespace.clone()),
                workload: pod.workload.clone(),
                container: container.map(str::to_owned),
                reason,
            },
            pod: Some(pod.name.clone()),
            node: pod.node.clone(),
            container: container.map(str::to_owned),
            exit_code,
            message,
            image,
            occurrences,
            at_ms: now_ms,
        }));
    }
}

#[cfg(test)]
pub(crate) mod tests;

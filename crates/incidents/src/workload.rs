//! Which workload owns a pod.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The object that owns pods and that incidents are grouped by: a
/// Deployment, StatefulSet, DaemonSet, CronJob, Job, ReplicaSet, another
/// controller's kind, a bare `Pod`, or a `Node` for node incidents.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Workload {
    /// The kind, e.g. `Deployment`.
    pub kind: String,
    /// The name, e.g. `web`.
    pub name: String,
}

impl Workload {
    /// A workload of the given kind and name.
    pub fn new(kind: impl Into<String>, name: impl Into<String>) -> Self {
        Workload {
            kind: kind.into(),
            name: name.into(),
        }
    }
}

/// The workload that owns a pod, from its `ownerReferences` (the one with
/// `controller: true`, else the first):
/// - a ReplicaSet named `<deployment>-<pod-template-hash>` (the hash from
///   the pod's `pod-template-hash` label) → that `Deployment`; other
///   ReplicaSets stay `ReplicaSet`;
/// - a Job → its `CronJob` when the heuristic below holds, else `Job`;
/// - a `Node` owner (a static pod's mirror) → the `Pod` itself;
/// - any other owner (StatefulSet, DaemonSet, custom controllers) → itself;
/// - no owner → `Pod`/its name.
///
/// The CronJob heuristic (the Job does not name its CronJob in the pod, and
/// this crate looks at the pod alone): the Job name is `<cronjob>-<digits>`
/// with at least 8 digits — the CronJob controller appends the scheduled
/// time in minutes since the epoch, 8 digits since 1989 — and the pod
/// carries the Job controller's labels (`batch.kubernetes.io/job-name` or
/// `job-name` equal to the Job name, or `batch.kubernetes.io/controller-uid`
/// or `controller-uid`). A hand-made Job named like `backup-20240501` is
/// mistaken for one of CronJob `backup`.
pub fn workload_of(pod: &Value) -> Workload {
    let metadata = &pod["metadata"];
    let pod_name = metadata["name"].as_str().unwrap_or_default();
    let owners = metadata["ownerReferences"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let owner = owners
        .iter()
        .find(|owner| owner["controller"].as_bool() == Some(true))
        .or_else(|| owners.first());
    let Some((kind, name)) =
        owner.and_then(|owner| Some((owner["kind"].as_str()?, owner["name"].as_str()?)))
    else {
        return Workload::new("Pod", pod_name);
    };
    let label = |key: &str| metadata["labels"][key].as_str();
    match kind {
        "ReplicaSet" => match label("pod-template-hash")
            .and_then(|hash| name.strip_suffix(hash)?.strip_suffix('-'))
            .filter(|deployment| !deployment.is_empty())
        {
            Some(deployment) => Workload::new("Deployment", deployment),
            None => Workload::new("ReplicaSet", name),
        },
        "Job" => {
            let job_labels = [label("batch.kubernetes.io/job-name"), label("job-name")]
                .contains(&Some(name))
                || label("batch.kubernetes.io/controller-uid").is_some()
                || label("controller-uid").is_some();
            match name.rsplit_once('-') {
                Some((cronjob, digits))
                    if job_labels
                        && !cronjob.is_empty()
                        && digits.len() >= 8
                        && digits.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    Workload::new("CronJob", cronjob)
                }
                _ => Workload::new("Job", name),
            }
        }
        "Node" => Workload::new("Pod", pod_name),
        _ => Workload::new(kind, name),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(owner: Option<(&str, &str)>, labels: Value) -> Value {
        let owners = owner.map_or(json!([]), |(kind, name)| {
            json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": "u", "controller": true}])
        });
        json!({"metadata": {"name": "p-1", "namespace": "shop", "labels": labels, "ownerReferences": owners}})
    }

    fn check(pod: Value, expected: (&str, &str)) {
        assert_eq!(
            workload_of(&pod),
            Workload::new(expected.0, expected.1),
            "{pod}"
        );
    }

    #[test]
    fn owners() {
        let hash = json!({"pod-template-hash": "7d4b9c8f6d"});
        let job = |name: &str| json!({"batch.kubernetes.io/job-name": name, "batch.kubernetes.io/controller-uid": "u"});
        for (input, expected) in [
            (
                pod(Some(("ReplicaSet", "web-7d4b9c8f6d")), hash.clone()),
                ("Deployment", "web"),
            ),
            (
                pod(Some(("ReplicaSet", "my-web-app-7d4b9c8f6d")), hash.clone()),
                ("Deployment", "my-web-app"),
            ),
            (
                pod(Some(("ReplicaSet", "web-7d4b9c8f6d")), json!({})),
                ("ReplicaSet", "web-7d4b9c8f6d"),
            ),
            (
                pod(Some(("ReplicaSet", "standalone")), hash.clone()),
                ("ReplicaSet", "standalone"),
            ),
            (
                pod(Some(("Job", "backup-28573920")), job("backup-28573920")),
                ("CronJob", "backup"),
            ),
            (
                pod(
                    Some(("Job", "db-backup-28573920")),
                    json!({"job-name": "db-backup-28573920"}),
                ),
                ("CronJob", "db-backup"),
            ),
            (
                pod(Some(("Job", "backup-28573920")), json!({})),
                ("Job", "backup-28573920"),
            ),
            (
                pod(Some(("Job", "migrate-2")), job("migrate-2")),
                ("Job", "migrate-2"),
            ),
            (
                pod(Some(("Job", "migrate")), job("migrate")),
                ("Job", "migrate"),
            ),
            (
                pod(Some(("StatefulSet", "db")), json!({})),
                ("StatefulSet", "db"),
            ),
            (
                pod(Some(("DaemonSet", "agent")), json!({})),
                ("DaemonSet", "agent"),
            ),
            (pod(Some(("Node", "node-1")), json!({})), ("Pod", "p-1")),
            (
                pod(Some(("Rollout", "canary")), json!({})),
                ("Rollout", "canary"),
            ),
            (pod(None, json!({})), ("Pod", "p-1")),
        ] {
            check(input, expected);
        }
        // Without `controller: true`, the first owner counts.
        check(
            json!({"metadata": {"name": "p", "ownerReferences": [{"kind": "StatefulSet", "name": "a"}, {"kind": "DaemonSet", "name": "b"}]}}),
            ("StatefulSet", "a"),
        );
    }
}

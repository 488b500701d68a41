//! Health of one live object, judged from its status alone (pure).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::manifest::group_of;

pub use pilothouse_types::Health;

/// What health rules need to know about the cluster beyond the object itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthContext {
    /// Names of the StorageClasses whose `volumeBindingMode` is
    /// `WaitForFirstConsumer`: their claims stay Pending, rightly, until a pod
    /// uses them.
    pub wait_for_first_consumer: BTreeSet<String>,
}

/// Whether [`object_health`] looks at the status of objects of this kind
/// (for the others, being there is being healthy).
pub(super) fn judged_by_status(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet")
            | ("", "PersistentVolumeClaim")
            | ("batch", "Job")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
    )
}

/// The health of a live object (as a GET or an apply returns it, status
/// included) and why it is not healthy.
///
/// - Deployment: the rollout is observed (`status.observedGeneration` ≥
///   `metadata.generation`), every replica is updated and available and no
///   old one is left; a `Progressing` condition with reason
///   `ProgressDeadlineExceeded` is `Degraded`.
/// - StatefulSet: observed, every replica ready, and for `RollingUpdate` the
///   update revision rolled out (beyond the partition, if any).
/// - DaemonSet: observed, every scheduled pod updated and available.
/// - PersistentVolumeClaim: `Bound`; `Pending` on a `WaitForFirstConsumer`
///   class is healthy too; `Lost` is `Degraded`.
/// - Job: condition `Complete` is healthy, `Failed` is `Degraded`.
/// - CustomResourceDefinition: condition `Established`; `NamesAccepted=False`
///   is `Degraded`.
/// - Any object being deleted is `Progressing`; any other object is healthy.
pub fn object_health(object: &Value, context: &HealthContext) -> (Health, Option<String>) {
    if object
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return (Health::Progressing, Some("being deleted".into()));
    }
    let group = group_of(text(object, "/apiVersion").unwrap_or(""));
    let kind = text(object, "/kind").unwrap_or("");
    match (group, kind) {
        ("apps", "Deployment") => deployment(object),
        ("apps", "StatefulSet") => stateful_set(object),
        ("apps", "DaemonSet") => daemon_set(object),
        ("", "PersistentVolumeClaim") => claim(object, context),
        ("batch", "Job") => job(object),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => definition(object),
        _ => (Health::Healthy, None),
    }
}

fn text<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

fn number(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

fn progressing(message: String) -> (Health, Option<String>) {
    (Health::Progressing, Some(message))
}

/// The condition of `type` in `status.conditions`, if any.
fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn condition_is<'a>(object: &'a Value, kind: &str, status: &str) -> Option<&'a Value> {
    condition(object, kind).filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
}

fn condition_message(condition: &Value, fallback: &str) -> String {
    condition
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .or_else(|| condition.get("reason").and_then(Value::as_str))
        .unwrap_or(fallback)
        .to_owned()
}

/// `Some(progressing)` while the controller has not seen the latest spec.
fn unobserved(object: &Value) -> Option<(Health, Option<String>)> {
    let generation = number(object, "/metadata/generation").unwrap_or(0);
    let observed = number(object, "/status/observedGeneration").unwrap_or(0);
    (observed < generation).then(|| {
        progressing(format!(
            "waiting for the controller to observe generation {generation} (observed {observed})"
        ))
    })
}

fn deployment(object: &Value) -> (Health, Option<String>) {
    if let Some(unobserved) = unobserved(object) {
        return unobserved;
    }
    if let Some(stuck) = condition(object, "Progressing")
        .filter(|c| c.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded"))
    {
        return (
            Health::Degraded,
            Some(condition_message(stuck, "progress deadline exceeded")),
        );
    }
    let replicas = number(object, "/spec/replicas").unwrap_or(1);
    let total = number(object, "/status/replicas").unwrap_or(0);
    let updated = number(object, "/status/updatedReplicas").unwrap_or(0);
    let available = number(object, "/status/availableReplicas").unwrap_or(0);
    if updated < replicas {
        return progressing(format!("{updated} of {replicas} replicas updated"));
    }
    if total > updated {
        return progressing(format!(
            "{} old replicas pending termination",
            total - updated
        ));
    }
    if available < replicas {
        return progressing(format!(
            "{available} of {replicas} updated replicas available"
        ));
    }
    (Health::Healthy, None)
}

fn stateful_set(object: &Value) -> (Health, Option<String>) {
    if let Some(unobserved) = unobserved(object) {
        return unobserved;
    }
    let replicas = number(object, "/spec/replicas").unwrap_or(1);
    let ready = number(object, "/status/readyReplicas").unwrap_or(0);
    if ready < replicas {
        return progressing(format!("{ready} of {replicas} replicas ready"));
    }
    let strategy = text(object, "/spec/updateStrategy/type").unwrap_or("RollingUpdate");
    if strategy == "RollingUpdate" {
        let updated = number(object, "/status/updatedReplicas").unwrap_or(0);
        let partition = number(object, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
        if partition > 0 {
            let wanted = (replicas - partition).max(0);
            if updated < wanted {
                return progressing(format!(
                    "{updated} of {wanted} replicas above partition {partition} updated"
                ));
            }
        } else if text(object, "/status/updateRevision") != text(object, "/status/currentRevision")
            && updated < replicas
        {
            return progressing(format!(
                "rolling update: {updated} of {replicas} replicas updated"
            ));
        }
    }
    (Health::Healthy, None)
}

fn daemon_set(object: &Value) -> (Health, Option<String>) {
    if let Some(unobserved) = unobserved(object) {
        return unobserved;
    }
    let desired = number(object, "/status/desiredNumberScheduled").unwrap_or(0);
    let updated = number(object, "/status/updatedNumberScheduled").unwrap_or(0);
    let available = number(object, "/status/numberAvailable").unwrap_or(0);
    let on_delete = text(object, "/spec/updateStrategy/type") == Some("OnDelete");
    if !on_delete && updated < desired {
        return progressing(format!("{updated} of {desired} pods updated"));
    }
    if available < desired {
        return progressing(format!("{available} of {desired} pods available"));
    }
    (Health::Healthy, None)
}

fn claim(object: &Value, context: &HealthContext) -> (Health, Option<String>) {
    match text(object, "/status/phase") {
        Some("Bound") => (Health::Healthy, None),
        Some("Lost") => (
            Health::Degraded,
            Some("the claim lost its volume".to_owned()),
        ),
        phase => {
            let class = text(object, "/spec/storageClassName");
            if phase.is_none_or(|p| p == "Pending")
                && class.is_some_and(|c| context.wait_for_first_consumer.contains(c))
            {
                (
                    Health::Healthy,
                    Some("waiting for the first consumer before binding".to_owned()),
                )
            } else {
                progressing(format!("phase {}", phase.unwrap_or("Pending")))
            }
        }
    }
}

fn job(object: &Value) -> (Health, Option<String>) {
    if condition_is(object, "Complete", "True").is_some() {
        return (Health::Healthy, None);
    }
    if let Some(failed) = condition_is(object, "Failed", "True") {
        return (Health::Degraded, Some(condition_message(failed, "failed")));
    }
    if object.pointer("/spec/suspend") == Some(&Value::Bool(true)) {
        return progressing("suspended".to_owned());
    }
    let active = number(object, "/status/active").unwrap_or(0);
    let succeeded = number(object, "/status/succeeded").unwrap_or(0);
    progressing(format!("running: {active} active, {succeeded} succeeded"))
}

fn definition(object: &Value) -> (Health, Option<String>) {
    if condition_is(object, "Established", "True").is_some() {
        return (Health::Healthy, None);
    }
    if let Some(refused) = condition_is(object, "NamesAccepted", "False") {
        return (
            Health::Degraded,
            Some(condition_message(refused, "names not accepted")),
        );
    }
    progressing("not established yet".to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(input: Value, expected: (Health, Option<&str>)) {
        let context = HealthContext {
            wait_for_first_consumer: BTreeSet::from(["local-wffc".to_owned()]),
        };
        let (health, message) = object_health(&input, &context);
        assert_eq!((health, message.as_deref()), expected, "for {input:#}");
    }

    fn deployment(spec_replicas: Option<i64>, status: Value) -> Value {
        let mut object = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "generation": 2},
            "spec": {}, "status": status,
        });
        if let Some(replicas) = spec_replicas {
            object["spec"]["replicas"] = json!(replicas);
        }
        object
    }

    #[test]
    fn deployments() {
        let healthy = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3});
        check(deployment(Some(3), healthy), (Health::Healthy, None));
        check(
            deployment(None, json!({})),
            (
                Health::Progressing,
                Some("waiting for the controller to observe generation 2 (observed 0)"),
            ),
        );
        check(
            deployment(
                None,
                json!({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}),
            ),
            (Health::Healthy, None),
        );
        check(
            deployment(
                Some(3),
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 3}),
            ),
            (Health::Progressing, Some("2 of 3 replicas updated")),
        );
        check(
            deployment(
                Some(3),
                json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3}),
            ),
            (
                Health::Progressing,
                Some("1 old replicas pending termination"),
            ),
        );
        check(
            deployment(
                Some(3),
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
            ),
            (
                Health::Progressing,
                Some("2 of 3 updated replicas available"),
            ),
        );
        check(
            deployment(
                Some(3),
                json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 1,
                        "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                                        "message": "ReplicaSet \"web-1\" has timed out progressing."}]}),
            ),
            (
                Health::Degraded,
                Some("ReplicaSet \"web-1\" has timed out progressing."),
            ),
        );
        check(
            deployment(Some(0), json!({"observedGeneration": 2})),
            (Health::Healthy, None),
        );
    }

    fn stateful_set(strategy: Value, status: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "shop", "generation": 1},
            "spec": {"replicas": 3, "updateStrategy": strategy}, "status": status,
        })
    }

    #[test]
    fn stateful_sets() {
        let rolling = json!({"type": "RollingUpdate"});
        check(
            stateful_set(
                rolling.clone(),
                json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 3,
                        "currentRevision": "db-1", "updateRevision": "db-1"}),
            ),
            (Health::Healthy, None),
        );
        check(
            stateful_set(
                rolling.clone(),
                json!({"observedGeneration": 1, "readyReplicas": 2}),
            ),
            (Health::Progressing, Some("2 of 3 replicas ready")),
        );
        check(
            stateful_set(
                rolling,
                json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1,
                        "currentRevision": "db-1", "updateRevision": "db-2"}),
            ),
            (
                Health::Progressing,
                Some("rolling update: 1 of 3 replicas updated"),
            ),
        );
        check(
            stateful_set(
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}),
                json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 1,
                        "currentRevision": "db-1", "updateRevision": "db-2"}),
            ),
            (Health::Healthy, None),
        );
        check(
            stateful_set(
                json!({"type": "OnDelete"}),
                json!({"observedGeneration": 1, "readyReplicas": 3, "updatedReplicas": 0,
                        "currentRevision": "db-1", "updateRevision": "db-2"}),
            ),
            (Health::Healthy, None),
        );
    }

    #[test]
    fn daemon_sets() {
        let daemon_set = |status: Value| {
            json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                   "metadata": {"name": "agent", "generation": 1}, "spec": {}, "status": status})
        };
        check(
            daemon_set(
                json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2}),
            ),
            (Health::Healthy, None),
        );
        check(
            daemon_set(
                json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 1, "numberAvailable": 2}),
            ),
            (Health::Progressing, Some("1 of 2 pods updated")),
        );
        check(
            daemon_set(
                json!({"observedGeneration": 1, "desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 0}),
            ),
            (Health::Progressing, Some("0 of 2 pods available")),
        );
    }

    #[test]
    fn claims() {
        let claim = |class: &str, phase: &str| {
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                   "spec": {"storageClassName": class}, "status": {"phase": phase}})
        };
        check(claim("standard", "Bound"), (Health::Healthy, None));
        check(
            claim("local-wffc", "Pending"),
            (
                Health::Healthy,
                Some("waiting for the first consumer before binding"),
            ),
        );
        check(
            claim("standard", "Pending"),
            (Health::Progressing, Some("phase Pending")),
        );
        check(
            claim("standard", "Lost"),
            (Health::Degraded, Some("the claim lost its volume")),
        );
    }

    #[test]
    fn jobs_and_definitions() {
        let job = |conditions: Value| {
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate"},
                   "spec": {}, "status": {"active": 1, "conditions": conditions}})
        };
        check(
            job(json!([{"type": "Complete", "status": "True"}])),
            (Health::Healthy, None),
        );
        check(
            job(
                json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                         "message": "Job has reached the specified backoff limit"}]),
            ),
            (
                Health::Degraded,
                Some("Job has reached the specified backoff limit"),
            ),
        );
        check(
            job(json!([])),
            (Health::Progressing, Some("running: 1 active, 0 succeeded")),
        );
        let crd = |conditions: Value| {
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "widgets.example.com"}, "status": {"conditions": conditions}})
        };
        check(
            crd(json!([{"type": "Established", "status": "True"}])),
            (Health::Healthy, None),
        );
        check(
            crd(
                json!([{"type": "NamesAccepted", "status": "False", "reason": "ListKindConflict"}]),
            ),
            (Health::Degraded, Some("ListKindConflict")),
        );
        check(
            crd(json!([])),
            (Health::Progressing, Some("not established yet")),
        );
    }

    #[test]
    fn other_kinds_are_healthy_unless_being_deleted() {
        check(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}),
            (Health::Healthy, None),
        );
        check(
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "n", "deletionTimestamp": "2026-01-01T00:00:00Z"}}),
            (Health::Progressing, Some("being deleted")),
        );
        // a custom kind named like a built-in one is not judged like it
        check(
            json!({"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "d", "generation": 5}}),
            (Health::Healthy, None),
        );
    }

    #[test]
    fn the_worst_health_wins_and_names_round_trip() {
        assert_eq!(
            Health::worst([Health::Healthy, Health::Degraded, Health::Missing]),
            Health::Degraded
        );
        assert_eq!(
            Health::worst([Health::Progressing, Health::Unknown]),
            Health::Unknown
        );
        assert_eq!(Health::worst([]), Health::Healthy);
    }
}

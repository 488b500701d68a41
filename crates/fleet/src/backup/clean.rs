//! What an export keeps of the live objects it lists, and how it cleans them
//! for re-creation on another cluster. Pure: values in, values out.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::sync::ObjectKey;

/// `(group, kind)` never exported: made and remade by the cluster itself,
/// tied to one cluster (its nodes, volumes, certificates, API registrations),
/// or requests rather than objects. Kinds without the `list` or `create`
/// verb (TokenReviews, SubjectAccessReviews, ComponentStatus, metrics, …) are
/// left out by discovery already; they are named here too.
const SKIPPED_KINDS: &[(&str, &str)] = &[
    ("", "Event"),
    ("events.k8s.io", "Event"),
    ("", "Endpoints"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("coordination.k8s.io", "Lease"),
    ("coordination.k8s.io", "LeaseCandidate"),
    ("", "ComponentStatus"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "Binding"),
    ("apps", "ControllerRevision"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("apiregistration.k8s.io", "APIService"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "CSIStorageCapacity"),
    ("internal.apiserver.k8s.io", "StorageVersion"),
];

/// Groups none of whose kinds are exported: reviews and metrics.
const SKIPPED_GROUPS: &[&str] = &[
    "authentication.k8s.io",
    "authorization.k8s.io",
    "metrics.k8s.io",
];

/// Namespaces an export of "every namespace" leaves out: they belong to the
/// cluster and its cloud, not to the workloads. Naming one exports it.
pub(super) const SYSTEM_NAMESPACES: &[&str] = &["kube-system", "kube-public", "kube-node-lease"];

/// Annotations the cluster's controllers (or client-side `kubectl apply`)
/// write: never part of what is re-created.
const DROPPED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deprecated.daemonset.template.generation",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
];

/// Finalizers the cluster's own controllers add and remove; other finalizers
/// (those of someone's operator) are kept.
const DROPPED_FINALIZERS: &[&str] = &[
    "kubernetes.io/pvc-protection",
    "kubernetes.io/pv-protection",
    "foregroundDeletion",
    "orphan",
    "customresourcecleanup.apiextensions.k8s.io",
    "service.kubernetes.io/load-balancer-cleanup",
    "batch.kubernetes.io/job-tracking",
];

/// Labels the Job controller derives for the selector it generates.
const JOB_LABELS: &[&str] = &[
    "controller-uid",
    "batch.kubernetes.io/controller-uid",
    "job-name",
    "batch.kubernetes.io/job-name",
];

/// The label the API server puts on every Namespace, with its name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Whether objects of this kind are left out of every export.
pub(super) fn kind_skipped(group: &str, kind: &str) -> bool {
    SKIPPED_GROUPS.contains(&group) || SKIPPED_KINDS.contains(&(group, kind))
}

/// Why a listed object is left out of an export, if it is.
pub(super) fn left_out(object: &Value) -> Option<&'static str> {
    let text = |pointer: &str| object.pointer(pointer).and_then(Value::as_str);
    if object.pointer("/metadata/deletionTimestamp").is_some() {
        return Some("being deleted");
    }
    let controlled = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|owners| {
            owners
                .iter()
                .any(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        });
    if controlled {
        return Some("its controller re-creates it");
    }
    let core = text("/apiVersion") == Some("v1");
    match (core, text("/kind")) {
        (true, Some("ConfigMap")) if text("/metadata/name") == Some("kube-root-ca.crt") => {
            Some("every namespace gets it from the cluster")
        }
        (true, Some("Secret")) if text("/type") == Some("kubernetes.io/service-account-token") => {
            Some("a token the cluster issues")
        }
        (true, Some("Service"))
            if text("/metadata/namespace") == Some("default")
                && text("/metadata/name") == Some("kubernetes") =>
        {
            Some("the API server's own Service")
        }
        _ => None,
    }
}

/// Cleans a live object for re-creation: what the API server or controllers
/// set (identity, versions, timestamps, managed fields, owners, status,
/// allocated addresses and ports, bindings to nodes and volumes) goes; what a
/// user wrote stays.
pub(super) fn clean(object: &mut Value) {
    let Some(key) = ObjectKey::of(object) else {
        return;
    };
    // decided while managedFields still tell who set what
    if key.group.is_empty() && key.kind == "Service" {
        clean_service(object);
    }
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        clean_metadata(metadata);
    }
    if let Some(fields) = object.as_object_mut() {
        fields.remove("status");
    }
    match (key.group.as_str(), key.kind.as_str()) {
        ("", "Namespace") => {
            remove(object, "/spec", "finalizers");
            remove_if_empty(object, "", "spec");
            remove(object, "/metadata/labels", NAMESPACE_NAME_LABEL);
            remove_if_empty(object, "/metadata", "labels");
        }
        ("", "PersistentVolumeClaim") => remove(object, "/spec", "volumeName"),
        ("", "Pod") => remove(object, "/spec", "nodeName"),
        ("batch", "Job") => clean_job(object),
        ("apps", "StatefulSet") => {
            if let Some(templates) = object
                .pointer_mut("/spec/volumeClaimTemplates")
                .and_then(Value::as_array_mut)
            {
                for template in templates.iter_mut().filter_map(Value::as_object_mut) {
                    template.remove("status");
                }
            }
        }
        // the aggregation controller fills the rules in
        ("rbac.authorization.k8s.io", "ClusterRole") if object.get("aggregationRule").is_some() => {
            remove(object, "", "rules");
        }
        _ => {}
    }
    drop_empty_creation_timestamps(object);
}

fn clean_metadata(metadata: &mut Map<String, Value>) {
    for field in [
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "ownerReferences",
        "selfLink",
    ] {
        metadata.remove(field);
    }
    if let Some(annotations) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        for annotation in DROPPED_ANNOTATIONS {
            annotations.remove(*annotation);
        }
    }
    if let Some(finalizers) = metadata.get_mut("finalizers").and_then(Value::as_array_mut) {
        finalizers.retain(|f| !f.as_str().is_some_and(|f| DROPPED_FINALIZERS.contains(&f)));
    }
    for field in ["annotations", "labels", "finalizers"] {
        let empty = match metadata.get(field) {
            Some(Value::Object(map)) => map.is_empty(),
            Some(Value::Array(items)) => items.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if empty {
            metadata.remove(field);
        }
    }
}

/// A Service's allocations: cluster IPs (unless headless), node ports nobody
/// asked for, and the IP families the cluster defaulted.
///
/// A node port is kept only when a field manager owns it (some `managedFields`
/// entry lists `f:nodePort` for that port, or `f:healthCheckNodePort`): then a
/// client wrote it. A port the API server allocated is owned by no manager, and
/// the target cluster allocates a new one. Without managedFields, every node
/// port counts as allocated.
fn clean_service(object: &mut Value) {
    let (chosen_ports, chosen_health_port) = chosen_node_ports(object);
    let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    let single_stack = spec
        .get("ipFamilyPolicy")
        .and_then(Value::as_str)
        .is_none_or(|policy| policy == "SingleStack");
    if single_stack {
        spec.remove("ipFamilyPolicy");
        spec.remove("ipFamilies");
    }
    if !chosen_health_port {
        spec.remove("healthCheckNodePort");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            let id = port_id(port.get("port"), port.get("protocol"));
            if !id.is_some_and(|id| chosen_ports.contains(&id)) {
                port.remove("nodePort");
            }
        }
    }
}

/// `(port, protocol)` of the ports whose node port a manager owns, and whether
/// one owns the health check node port.
fn chosen_node_ports(object: &Value) -> (BTreeSet<(i64, String)>, bool) {
    let mut ports = BTreeSet::new();
    let mut health = false;
    let entries = object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for spec in entries.filter_map(|entry| entry.pointer("/fieldsV1/f:spec")) {
        health |= spec.get("f:healthCheckNodePort").is_some();
        let Some(listed) = spec.get("f:ports").and_then(Value::as_object) else {
            continue;
        };
        for (item, fields) in listed {
            let Some(item) = item.strip_prefix("k:") else {
                continue;
            };
            if fields.get("f:nodePort").is_none() {
                continue;
            }
            if let Ok(id) = serde_json::from_str::<Value>(item)
                && let Some(id) = port_id(id.get("port"), id.get("protocol"))
            {
                ports.insert(id);
            }
        }
    }
    (ports, health)
}

fn port_id(port: Option<&Value>, protocol: Option<&Value>) -> Option<(i64, String)> {
    let protocol = protocol.and_then(Value::as_str).unwrap_or("TCP");
    Some((port?.as_i64()?, protocol.to_owned()))
}

/// A Job without a manual selector gets its selector and the labels it
/// selects on from the API server, with the Job's uid in them.
fn clean_job(object: &mut Value) {
    if object
        .pointer("/spec/manualSelector")
        .and_then(Value::as_bool)
        == Some(true)
    {
        return;
    }
    remove(object, "/spec", "selector");
    if let Some(labels) = object
        .pointer_mut("/spec/template/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        for label in JOB_LABELS {
            labels.remove(*label);
        }
    }
    remove_if_empty(object, "/spec/template/metadata", "labels");
}

/// Removes `creationTimestamp: null` from every nested `metadata` (pod
/// templates, claim templates): serialisation noise.
fn drop_empty_creation_timestamps(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(metadata)) = map.get_mut("metadata")
                && metadata.get("creationTimestamp") == Some(&Value::Null)
            {
                metadata.remove("creationTimestamp");
            }
            map.values_mut().for_each(drop_empty_creation_timestamps);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_empty_creation_timestamps),
        _ => {}
    }
}

fn remove(object: &mut Value, pointer: &str, field: &str) {
    if let Some(map) = object.pointer_mut(pointer).and_then(Value::as_object_mut) {
        map.remove(field);
    }
}

fn remove_if_empty(object: &mut Value, pointer: &str, field: &str) {
    if let Some(map) = object.pointer_mut(pointer).and_then(Value::as_object_mut)
        && map
            .get(field)
            .is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
    {
        map.remove(field);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(live: Value, expected: Value) {
        let mut cleaned = live;
        clean(&mut cleaned);
        assert_eq!(cleaned, expected);
    }

    #[test]
    fn what_the_server_sets_goes_and_what_a_user_wrote_stays() {
        check(
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "c", "namespace": "n", "uid": "u", "resourceVersion": "7",
                                "generation": 1, "creationTimestamp": "2025-01-01T00:00:00Z",
                                "managedFields": [{"manager": "kubectl"}], "selfLink": "/x",
                                "ownerReferences": [{"kind": "Thing", "name": "t"}],
                                "labels": {"app": "c"},
                                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}",
                                                "note": "kept"},
                                "finalizers": ["example.com/cleanup", "orphan"]},
                   "data": {"k": "v"}, "status": {"x": 1}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "c", "namespace": "n", "labels": {"app": "c"},
                                "annotations": {"note": "kept"},
                                "finalizers": ["example.com/cleanup"]},
                   "data": {"k": "v"}}),
        );
        check(
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "d", "namespace": "n",
                                "annotations": {"deployment.kubernetes.io/revision": "3"}},
                   "spec": {"template": {"metadata": {"creationTimestamp": null, "labels": {"a": "b"}}}},
                   "status": {"replicas": 1}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                   "metadata": {"name": "d", "namespace": "n"},
                   "spec": {"template": {"metadata": {"labels": {"a": "b"}}}}}),
        );
    }

    #[test]
    fn services_lose_their_allocations_but_keep_chosen_node_ports() {
        let managed = json!([{"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:spec": {
        "f:ports": {
            "k:{\"port\":80,\"protocol\":\"TCP\"}": {".": {}, "f:nodePort": {}, "f:port": {}},
            "k:{\"port\":443,\"protocol\":\"TCP\"}": {".": {}, "f:port": {}},
        }}}}]);
        check(
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "s", "namespace": "n", "managedFields": managed},
                   "spec": {"type": "NodePort", "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"],
                            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080},
                                      {"port": 443, "protocol": "TCP", "nodePort": 31443}]},
                   "status": {"loadBalancer": {}}}),
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "s", "namespace": "n"},
                   "spec": {"type": "NodePort",
                            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080},
                                      {"port": 443, "protocol": "TCP"}]}}),
        );
        check(
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "h", "namespace": "n"},
                   "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ipFamilies": ["IPv4", "IPv6"],
                            "ipFamilyPolicy": "RequireDualStack", "type": "LoadBalancer",
                            "healthCheckNodePort": 32000, "ports": [{"port": 53, "protocol": "UDP",
                            "nodePort": 30053}]}}),
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "h", "namespace": "n"},
                   "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ipFamilies": ["IPv4", "IPv6"],
                            "ipFamilyPolicy": "RequireDualStack", "type": "LoadBalancer",
                            "ports": [{"port": 53, "protocol": "UDP"}]}}),
        );
    }

    #[test]
    fn claims_pods_namespaces_jobs_and_roles_lose_what_the_cluster_decided() {
        check(
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": "p", "namespace": "n", "finalizers": ["kubernetes.io/pvc-protection"],
                                "annotations": {"pv.kubernetes.io/bind-completed": "yes",
                                                "pv.kubernetes.io/bound-by-controller": "yes",
                                                "volume.beta.kubernetes.io/storage-provisioner": "x",
                                                "volume.kubernetes.io/storage-provisioner": "x",
                                                "volume.kubernetes.io/selected-node": "node-1"}},
                   "spec": {"storageClassName": "fast", "volumeName": "pvc-123",
                            "accessModes": ["ReadWriteOnce"]},
                   "status": {"phase": "Bound"}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": "p", "namespace": "n"},
                   "spec": {"storageClassName": "fast", "accessModes": ["ReadWriteOnce"]}}),
        );
        check(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
                   "spec": {"nodeName": "node-1", "containers": []}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "n"},
                   "spec": {"containers": []}}),
        );
        check(
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "n", "labels": {"kubernetes.io/metadata.name": "n"}},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}),
        );
        check(
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "n"},
                   "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
                            "template": {"metadata": {"labels": {"batch.kubernetes.io/controller-uid": "u",
                                "controller-uid": "u", "job-name": "j", "batch.kubernetes.io/job-name": "j"}},
                                         "spec": {}}}}),
            json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "n"},
                   "spec": {"template": {"metadata": {}, "spec": {}}}}),
        );
        check(
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s", "namespace": "n"},
                   "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data", "creationTimestamp": null},
                             "spec": {"storageClassName": "fast"}, "status": {"phase": "Pending"}}]}}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s", "namespace": "n"},
                   "spec": {"volumeClaimTemplates": [{"metadata": {"name": "data"},
                             "spec": {"storageClassName": "fast"}}]}}),
        );
        check(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "monitoring"},
                   "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]},
                   "rules": [{"verbs": ["get"]}]}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": "monitoring"},
                   "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}}),
        );
    }

    #[test]
    fn objects_the_cluster_makes_again_are_left_out() {
        let cases = [
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"}}),
                Some("every namespace gets it from the cluster"),
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}}),
                None,
            ),
            (
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t"},
                    "type": "kubernetes.io/service-account-token"}),
                Some("a token the cluster issues"),
            ),
            (
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "t"}, "type": "Opaque"}),
                None,
            ),
            (
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes",
                    "namespace": "default"}}),
                Some("the API server's own Service"),
            ),
            (
                json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes",
                    "namespace": "shop"}}),
                None,
            ),
            (
                json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r",
                    "ownerReferences": [{"kind": "Deployment", "name": "d", "controller": true}]}}),
                Some("its controller re-creates it"),
            ),
            (
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c",
                    "ownerReferences": [{"kind": "Thing", "name": "t"}]}}),
                None,
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p",
                    "deletionTimestamp": "2025-01-01T00:00:00Z"}}),
                Some("being deleted"),
            ),
        ];
        for (object, expected) in cases {
            assert_eq!(left_out(&object), expected, "{object}");
        }
        assert!(kind_skipped("events.k8s.io", "Event"));
        assert!(kind_skipped(
            "authorization.k8s.io",
            "LocalSubjectAccessReview"
        ));
        assert!(kind_skipped("", "Endpoints"));
        assert!(!kind_skipped("", "Pod"));
        assert!(!kind_skipped("example.com", "Event"));
    }
}

//! How a restore fits exported objects to the target cluster before anything
//! is sent: namespaces renamed, storage classes swapped, and the storage
//! classes the result needs. Pure: values in, values out.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::SkippedObject;
use crate::sync::ObjectKey;

/// The annotation that named a claim's class before `storageClassName`.
const BETA_CLASS_ANNOTATION: &str = "volume.beta.kubernetes.io/storage-class";
/// The label the API server puts on every Namespace, with its name.
const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Rewrites the objects with the maps; returns them with the positions of
/// those to leave out (StorageClasses the storage class map replaces) and why.
pub(super) fn rewrite(
    objects: &mut [Value],
    namespace_map: &BTreeMap<String, String>,
    storage_class_map: &BTreeMap<String, String>,
) -> BTreeMap<usize, SkippedObject> {
    let mut skipped = BTreeMap::new();
    for (index, object) in objects.iter_mut().enumerate() {
        rename_namespaces(object, namespace_map);
        swap_storage_classes(object, storage_class_map);
        if let Some(key) = ObjectKey::of(object)
            && key.group == "storage.k8s.io"
            && key.kind == "StorageClass"
            && let Some(replacement) = storage_class_map.get(&key.name)
            && *replacement != key.name
        {
            let reason = format!("replaced by storage class {replacement} (storage class map)");
            skipped.insert(index, SkippedObject { key, reason });
        }
    }
    skipped
}

fn rename_namespaces(object: &mut Value, map: &BTreeMap<String, String>) {
    if map.is_empty() {
        return;
    }
    let mapped = |value: Option<&mut Value>| {
        if let Some(value) = value
            && let Some(new) = value.as_str().and_then(|old| map.get(old))
        {
            *value = Value::from(new.as_str());
        }
    };
    mapped(object.pointer_mut("/metadata/namespace"));
    let Some(key) = ObjectKey::of(object) else {
        return;
    };
    match (key.group.as_str(), key.kind.as_str()) {
        ("", "Namespace") => {
            mapped(object.pointer_mut("/metadata/name"));
            if let Some(name) = object.pointer("/metadata/name").cloned()
                && let Some(label) = object
                    .pointer_mut("/metadata/labels")
                    .and_then(Value::as_object_mut)
                    .and_then(|labels| labels.get_mut(NAMESPACE_NAME_LABEL))
            {
                *label = name;
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let subjects = object
                .get_mut("subjects")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten();
            for subject in subjects {
                if subject.get("kind").and_then(Value::as_str) == Some("ServiceAccount") {
                    mapped(subject.get_mut("namespace"));
                }
            }
        }
        _ => {}
    }
}

/// The claims' classes of an object: a PersistentVolumeClaim's, or those of a
/// StatefulSet's volumeClaimTemplates.
fn claims_mut(object: &mut Value) -> Vec<&mut Value> {
    let Some(key) = ObjectKey::of(object) else {
        return Vec::new();
    };
    match (key.group.as_str(), key.kind.as_str()) {
        ("", "PersistentVolumeClaim") => vec![object],
        ("apps", "StatefulSet") => object
            .pointer_mut("/spec/volumeClaimTemplates")
            .and_then(Value::as_array_mut)
            .map(|templates| templates.iter_mut().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn swap_storage_classes(object: &mut Value, map: &BTreeMap<String, String>) {
    if map.is_empty() {
        return;
    }
    for claim in claims_mut(object) {
        for pointer in [
            "/spec/storageClassName".to_owned(),
            format!(
                "/metadata/annotations/{}",
                BETA_CLASS_ANNOTATION.replace('/', "~1")
            ),
        ] {
            if let Some(class) = claim.pointer_mut(&pointer)
                && let Some(new) = class.as_str().and_then(|old| map.get(old))
            {
                *class = Value::from(new.as_str());
            }
        }
    }
}

/// The storage classes the objects' claims name (an empty name is none: a
/// claim bound by hand), and the StorageClasses among the objects.
pub(super) fn storage_classes(objects: &[Value]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut used = BTreeSet::new();
    let mut made = BTreeSet::new();
    for object in objects {
        let Some(key) = ObjectKey::of(object) else {
            continue;
        };
        if key.group == "storage.k8s.io" && key.kind == "StorageClass" {
            made.insert(key.name);
            continue;
        }
        let templates = object
            .pointer("/spec/volumeClaimTemplates")
            .and_then(Value::as_array);
        let claims: Vec<&Value> = match (key.group.as_str(), key.kind.as_str()) {
            ("", "PersistentVolumeClaim") => vec![object],
            ("apps", "StatefulSet") => templates.into_iter().flatten().collect(),
            _ => continue,
        };
        for claim in claims {
            let class = claim
                .pointer("/spec/storageClassName")
                .or_else(|| {
                    claim
                        .pointer("/metadata/annotations")
                        .and_then(|a| a.get(BETA_CLASS_ANNOTATION))
                })
                .and_then(Value::as_str)
                .filter(|class| !class.is_empty());
            used.extend(class.map(str::to_owned));
        }
    }
    (used, made)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    /// Rewrites one object with `old→new` for both maps; the result, or why it
    /// is skipped.
    fn check(object: Value, expected: Result<Value, &str>) {
        let mut objects = [object];
        let skipped = rewrite(
            &mut objects,
            &map(&[("shop", "store")]),
            &map(&[("managed-premium", "gp2"), ("same", "same")]),
        );
        let [object] = objects;
        match skipped.get(&0) {
            Some(skipped) => assert_eq!(Err(skipped.reason.as_str()), expected),
            None => assert_eq!(Ok(object), expected),
        }
    }

    #[test]
    fn namespaces_are_renamed_wherever_they_name_the_object_or_a_service_account() {
        check(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}}),
            Ok(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "store"}}),
            ),
        );
        check(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "other"}}),
            Ok(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "other"}}),
            ),
        );
        check(
            json!({"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": "shop", "labels": {"kubernetes.io/metadata.name": "shop", "team": "a"}}}),
            Ok(json!({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": {"name": "store", "labels": {"kubernetes.io/metadata.name": "store", "team": "a"}}})),
        );
        check(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "shop"},
                   "subjects": [{"kind": "ServiceAccount", "name": "shop", "namespace": "shop"},
                                {"kind": "Group", "name": "shop"},
                                {"kind": "ServiceAccount", "name": "x", "namespace": "other"}]}),
            Ok(
                json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                      "metadata": {"name": "b"}, "roleRef": {"kind": "ClusterRole", "name": "shop"},
                      "subjects": [{"kind": "ServiceAccount", "name": "shop", "namespace": "store"},
                                   {"kind": "Group", "name": "shop"},
                                   {"kind": "ServiceAccount", "name": "x", "namespace": "other"}]}),
            ),
        );
    }

    #[test]
    fn claims_and_claim_templates_get_the_mapped_class_and_replaced_classes_are_skipped() {
        check(
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": "p", "namespace": "shop"},
                   "spec": {"storageClassName": "managed-premium"}}),
            Ok(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                      "metadata": {"name": "p", "namespace": "store"},
                      "spec": {"storageClassName": "gp2"}})),
        );
        check(
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s", "namespace": "n"},
                   "spec": {"volumeClaimTemplates": [
                       {"metadata": {"name": "a"}, "spec": {"storageClassName": "managed-premium"}},
                       {"metadata": {"name": "b", "annotations": {BETA_CLASS_ANNOTATION: "managed-premium"}},
                        "spec": {}},
                       {"metadata": {"name": "c"}, "spec": {"storageClassName": "other"}}]}}),
            Ok(
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s", "namespace": "n"},
                      "spec": {"volumeClaimTemplates": [
                          {"metadata": {"name": "a"}, "spec": {"storageClassName": "gp2"}},
                          {"metadata": {"name": "b", "annotations": {BETA_CLASS_ANNOTATION: "gp2"}},
                           "spec": {}},
                          {"metadata": {"name": "c"}, "spec": {"storageClassName": "other"}}]}}),
            ),
        );
        check(
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                   "metadata": {"name": "managed-premium"}, "provisioner": "disk.csi.azure.com"}),
            Err("replaced by storage class gp2 (storage class map)"),
        );
        check(
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                   "metadata": {"name": "same"}, "provisioner": "x"}),
            Ok(
                json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                      "metadata": {"name": "same"}, "provisioner": "x"}),
            ),
        );
    }

    #[test]
    fn the_classes_claims_use_and_the_classes_a_restore_makes() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "a"},
                   "spec": {"storageClassName": "gp2"}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "b"},
                   "spec": {"storageClassName": ""}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "c"}, "spec": {}}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
                   "spec": {"volumeClaimTemplates": [{"spec": {"storageClassName": "fast"}}]}}),
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}}),
        ];
        let (used, made) = storage_classes(&objects);
        assert_eq!(used, ["fast".to_owned(), "gp2".to_owned()].into());
        assert_eq!(made, ["fast".to_owned()].into());
    }
}

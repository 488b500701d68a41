//! Choosing what of an archive to restore: the objects of some namespaces
//! with the cluster-scoped objects they need, and the volume claims a
//! restore must find storage classes for. Values in, values out.

use std::collections::BTreeSet;

use serde_json::Value;

use super::SkippedObject;
use crate::sync::ObjectKey;

/// Namespaces asked for that the archive holds no objects in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the archive holds no objects in namespace(s) {} (it has: {})",
    missing.join(", "),
    held.join(", ")
)]
pub struct NotInArchive {
    /// The namespaces asked for and not held.
    pub missing: Vec<String>,
    /// The namespaces the archive holds.
    pub held: Vec<String>,
}

/// Objects of the given namespaces, with the cluster-scoped objects they
/// need: their Namespaces, the CustomResourceDefinitions of their custom
/// resources, the StorageClasses their claims name, the ClusterRoleBindings
/// of their ServiceAccounts and the ClusterRoles bound inside them or by
/// those bindings. Every other cluster-scoped object is left out and listed
/// as skipped. All objects when no namespace is given. A namespace the
/// archive does not hold is an error.
pub fn only_namespaces(
    objects: Vec<Value>,
    namespaces: &[String],
) -> Result<(Vec<Value>, Vec<SkippedObject>), NotInArchive> {
    if namespaces.is_empty() {
        return Ok((objects, Vec::new()));
    }
    let held: BTreeSet<&str> = objects
        .iter()
        .filter_map(|object| object["metadata"]["namespace"].as_str())
        .collect();
    let missing: Vec<&str> = namespaces
        .iter()
        .map(String::as_str)
        .filter(|namespace| !held.contains(namespace))
        .collect();
    if !missing.is_empty() {
        return Err(NotInArchive {
            missing: missing.iter().map(|n| (*n).to_owned()).collect(),
            held: held.iter().map(|n| (*n).to_owned()).collect(),
        });
    }
    let wanted: BTreeSet<&str> = namespaces.iter().map(String::as_str).collect();
    let group_of = |object: &Value| {
        object["apiVersion"]
            .as_str()
            .and_then(|version| version.rsplit_once('/'))
            .map_or("", |(group, _)| group)
            .to_owned()
    };
    let kind_of = |object: &Value| object["kind"].as_str().unwrap_or_default().to_owned();
    let in_wanted = |object: &Value| {
        object["metadata"]["namespace"]
            .as_str()
            .is_some_and(|namespace| wanted.contains(namespace))
    };
    // what the chosen namespaces' objects need
    let mut custom_kinds = BTreeSet::new();
    let mut classes = BTreeSet::new();
    let mut cluster_roles = BTreeSet::new();
    for object in objects.iter().filter(|object| in_wanted(object)) {
        let (group, kind) = (group_of(object), kind_of(object));
        custom_kinds.insert((group.clone(), kind.clone()));
        match (group.as_str(), kind.as_str()) {
            ("", "PersistentVolumeClaim") => {
                classes.extend(
                    object["spec"]["storageClassName"]
                        .as_str()
                        .map(str::to_owned),
                );
                classes.extend(
                    object["metadata"]["annotations"]["volume.beta.kubernetes.io/storage-class"]
                        .as_str()
                        .map(str::to_owned),
                );
            }
            ("apps", "StatefulSet") => {
                for template in object["spec"]["volumeClaimTemplates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    classes.extend(
                        template["spec"]["storageClassName"]
                            .as_str()
                            .map(str::to_owned),
                    );
                }
            }
            ("rbac.authorization.k8s.io", "RoleBinding")
                if object["roleRef"]["kind"] == "ClusterRole" =>
            {
                cluster_roles.extend(object["roleRef"]["name"].as_str().map(str::to_owned));
            }
            _ => {}
        }
    }
    let binds_wanted_account = |object: &Value| {
        object["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|subject| {
                subject["kind"] == "ServiceAccount"
                    && subject["namespace"]
                        .as_str()
                        .is_some_and(|namespace| wanted.contains(namespace))
            })
    };
    for object in &objects {
        if object["metadata"]["namespace"].is_null()
            && group_of(object) == "rbac.authorization.k8s.io"
            && kind_of(object) == "ClusterRoleBinding"
            && binds_wanted_account(object)
        {
            cluster_roles.extend(object["roleRef"]["name"].as_str().map(str::to_owned));
        }
    }
    let needed = |object: &Value| -> bool {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        match (group_of(object).as_str(), kind_of(object).as_str()) {
            ("", "Namespace") => wanted.contains(name),
            ("apiextensions.k8s.io", "CustomResourceDefinition") => {
                let group = object["spec"]["group"].as_str().unwrap_or_default();
                let kind = object["spec"]["names"]["kind"].as_str().unwrap_or_default();
                custom_kinds.contains(&(group.to_owned(), kind.to_owned()))
            }
            ("storage.k8s.io", "StorageClass") => classes.contains(name),
            ("rbac.authorization.k8s.io", "ClusterRole") => cluster_roles.contains(name),
            ("rbac.authorization.k8s.io", "ClusterRoleBinding") => binds_wanted_account(object),
            _ => false,
        }
    };
    let mut kept = Vec::new();
    let mut skipped = Vec::new();
    let reason = format!(
        "cluster-scoped, and not needed by namespace(s) {}",
        namespaces.join(", ")
    );
    for object in objects {
        match object["metadata"]["namespace"].as_str() {
            Some(_) if in_wanted(&object) => kept.push(object),
            Some(_) => {}
            None if needed(&object) => kept.push(object),
            None => {
                if let Some(key) = ObjectKey::of(&object) {
                    skipped.push(SkippedObject {
                        key,
                        reason: reason.clone(),
                    });
                }
            }
        }
    }
    Ok((kept, skipped))
}

/// The PersistentVolumeClaims (and StatefulSet claim templates) among the
/// objects, with their storage classes.
pub fn volume_claims(objects: &[Value]) -> Vec<(String, Option<String>)> {
    let mut claims = Vec::new();
    for object in objects {
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        match object["kind"].as_str() {
            Some("PersistentVolumeClaim") => claims.push((
                format!("{namespace}/{name}"),
                object["spec"]["storageClassName"]
                    .as_str()
                    .map(str::to_owned),
            )),
            Some("StatefulSet") => {
                for template in object["spec"]["volumeClaimTemplates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    claims.push((
                        format!(
                            "{namespace}/{}-{name}-* (StatefulSet {name})",
                            template["metadata"]["name"].as_str().unwrap_or_default()
                        ),
                        template["spec"]["storageClassName"]
                            .as_str()
                            .map(str::to_owned),
                    ));
                }
            }
            _ => {}
        }
    }
    claims
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_namespace_comes_with_what_it_needs_and_nothing_else() {
        let rbac = "rbac.authorization.k8s.io/v1";
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "shop"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b", "namespace": "other"}}),
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop"},
                   "spec": {"storageClassName": "fast"}}),
            json!({"apiVersion": "shop.example.com/v1", "kind": "Cart", "metadata": {"name": "c", "namespace": "shop"}}),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "carts.shop.example.com"}, "spec": {"group": "shop.example.com", "names": {"kind": "Cart"}}}),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "dashboards.obs.example.com"}, "spec": {"group": "obs.example.com", "names": {"kind": "Dashboard"}}}),
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"}}),
            json!({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "gp2"}}),
            json!({"apiVersion": rbac, "kind": "RoleBinding", "metadata": {"name": "view", "namespace": "shop"},
                   "roleRef": {"kind": "ClusterRole", "name": "viewer"}, "subjects": []}),
            json!({"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": "viewer"}}),
            json!({"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": "shop-operator"}}),
            json!({"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": "shop-operator"},
                   "roleRef": {"kind": "ClusterRole", "name": "shop-operator"},
                   "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": "shop"}]}),
            json!({"apiVersion": rbac, "kind": "ClusterRole", "metadata": {"name": "prometheus"}}),
            json!({"apiVersion": rbac, "kind": "ClusterRoleBinding", "metadata": {"name": "prometheus"},
                   "roleRef": {"kind": "ClusterRole", "name": "prometheus"},
                   "subjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}]}),
            json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"}}),
        ];
        let (kept, skipped) = only_namespaces(objects.clone(), &["shop".to_owned()]).unwrap();
        assert!(only_namespaces(objects, &["nope".to_owned()]).is_err());
        let names: Vec<&str> = kept
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "shop",
                "a",
                "data",
                "c",
                "carts.shop.example.com",
                "fast",
                "view",
                "viewer",
                "shop-operator",
                "shop-operator"
            ]
        );
        let skipped: Vec<String> = skipped.iter().map(|s| s.key.to_string()).collect();
        assert_eq!(skipped.len(), 6, "{skipped:?}");
        for name in [
            "Namespace other",
            "dashboards.obs.example.com",
            "gp2",
            "ClusterRole prometheus",
            "ClusterRoleBinding prometheus",
            "high",
        ] {
            assert!(
                skipped.iter().any(|s| s.contains(name)),
                "{name}: {skipped:?}"
            );
        }
    }

    #[test]
    fn claims_and_claim_templates_are_listed_with_their_classes() {
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": "data", "namespace": "shop"}, "spec": {"storageClassName": "fast"}}),
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": "shop"},
                   "spec": {"volumeClaimTemplates": [{"metadata": {"name": "pg"}, "spec": {}}]}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "shop"}}),
        ];
        assert_eq!(
            volume_claims(&objects),
            [
                ("shop/data".to_owned(), Some("fast".to_owned())),
                ("shop/pg-db-* (StatefulSet db)".to_owned(), None),
            ]
        );
    }
}

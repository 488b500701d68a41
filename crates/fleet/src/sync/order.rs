//! The order objects are applied in (and pruned in, reversed): the well-known
//! install order of kinds, with kinds it does not know last.

use super::ObjectKey;

/// `(group, kind)` in install order: what others depend on comes first.
const INSTALL_ORDER: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("", "ResourceQuota"),
    ("", "LimitRange"),
    ("policy", "PodDisruptionBudget"),
    ("", "ServiceAccount"),
    ("", "Secret"),
    ("", "ConfigMap"),
    ("storage.k8s.io", "StorageClass"),
    ("", "PersistentVolume"),
    ("", "PersistentVolumeClaim"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("", "Service"),
    ("apps", "DaemonSet"),
    ("", "Pod"),
    ("", "ReplicationController"),
    ("apps", "ReplicaSet"),
    ("apps", "Deployment"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("apps", "StatefulSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "Ingress"),
    ("apiregistration.k8s.io", "APIService"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
];

/// The tier of a kind: its place in the install order. Every kind the order
/// does not name (custom resources, …) shares the last tier.
pub(super) fn tier(group: &str, kind: &str) -> usize {
    INSTALL_ORDER
        .iter()
        .position(|&(g, k)| g == group && k == kind)
        .unwrap_or(INSTALL_ORDER.len())
}

/// Whether objects of this kind are applied first, before discovery of the
/// rest: Namespaces (everything namespaced needs one) and
/// CustomResourceDefinitions (their custom resources need them established).
pub(super) fn is_foundation(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("", "Namespace") | ("apiextensions.k8s.io", "CustomResourceDefinition")
    )
}

/// Sort key of an object in apply order: tier, then kind and group (which only
/// differ within the last tier), then namespace and name.
pub(super) fn apply_order(key: &ObjectKey) -> (usize, &str, &str, Option<&str>, &str) {
    (
        tier(&key.group, &key.kind),
        &key.kind,
        &key.group,
        key.namespace.as_deref(),
        &key.name,
    )
}

/// Sort key of an object in the order a whole sync applies it: foundation kinds
/// (Namespaces, CustomResourceDefinitions) first, then the rest, each part in
/// [`apply_order`].
pub(crate) fn sync_order(key: &ObjectKey) -> (bool, (usize, &str, &str, Option<&str>, &str)) {
    (!is_foundation(&key.group, &key.kind), apply_order(key))
}

/// Splits objects sorted in apply order into runs of one tier each.
pub(super) fn tiers<T>(items: Vec<T>, key: impl Fn(&T) -> &ObjectKey) -> Vec<Vec<T>> {
    let mut runs: Vec<Vec<T>> = Vec::new();
    let mut current_tier = None;
    for item in items {
        let this = {
            let key = key(&item);
            tier(&key.group, &key.kind)
        };
        if current_tier != Some(this) {
            runs.push(Vec::new());
            current_tier = Some(this);
        }
        if let Some(run) = runs.last_mut() {
            run.push(item);
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        }
    }

    fn check(input: &[ObjectKey], expected: &[&str]) {
        let mut sorted = input.to_vec();
        sorted.sort_by(|a, b| apply_order(a).cmp(&apply_order(b)));
        let names: Vec<String> = sorted.iter().map(ToString::to_string).collect();
        assert_eq!(names, expected);
    }

    #[test]
    fn kinds_sort_in_install_order_with_unknown_kinds_last() {
        check(
            &[
                key("example.com", "Widget", Some("b"), "w"),
                key("apps", "Deployment", Some("b"), "web"),
                key("", "Service", Some("a"), "web"),
                key("", "ConfigMap", Some("b"), "z"),
                key("", "ConfigMap", Some("a"), "z"),
                key(
                    "apiextensions.k8s.io",
                    "CustomResourceDefinition",
                    None,
                    "w",
                ),
                key("", "Namespace", None, "b"),
                key("example.com", "Gadget", Some("a"), "g"),
                key(
                    "admissionregistration.k8s.io",
                    "ValidatingWebhookConfiguration",
                    None,
                    "v",
                ),
            ],
            &[
                "Namespace b",
                "ConfigMap a/z",
                "ConfigMap b/z",
                "apiextensions.k8s.io/CustomResourceDefinition w",
                "Service a/web",
                "apps/Deployment b/web",
                "admissionregistration.k8s.io/ValidatingWebhookConfiguration v",
                "example.com/Gadget a/g",
                "example.com/Widget b/w",
            ],
        );
    }

    #[test]
    fn a_sync_applies_foundation_kinds_first() {
        let mut keys = [
            key("", "ConfigMap", Some("a"), "c"),
            key("example.com", "Widget", Some("a"), "w"),
            key(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                None,
                "w",
            ),
            key("", "ServiceAccount", Some("a"), "s"),
            key("", "Namespace", None, "a"),
        ];
        keys.sort_by(|a, b| sync_order(a).cmp(&sync_order(b)));
        let names: Vec<String> = keys.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            [
                "Namespace a",
                "apiextensions.k8s.io/CustomResourceDefinition w",
                "ServiceAccount a/s",
                "ConfigMap a/c",
                "example.com/Widget a/w",
            ]
        );
    }

    #[test]
    fn a_custom_kind_named_like_a_builtin_one_is_unknown() {
        check(
            &[
                key("serving.knative.dev", "Service", Some("a"), "s"),
                key("", "Service", Some("a"), "s"),
                key("apps", "Deployment", Some("a"), "d"),
            ],
            &[
                "Service a/s",
                "apps/Deployment a/d",
                "serving.knative.dev/Service a/s",
            ],
        );
    }

    #[test]
    fn tiers_split_runs_of_one_kind_and_pool_unknown_kinds() {
        let keys = vec![
            key("", "Namespace", None, "a"),
            key("", "Namespace", None, "b"),
            key("", "ConfigMap", Some("a"), "c"),
            key("example.com", "Gadget", Some("a"), "g"),
            key("example.com", "Widget", Some("a"), "w"),
        ];
        let runs = tiers(keys, |k| k);
        let sizes: Vec<usize> = runs.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1, 2]);
    }
}

//! What kustomize knows about Kubernetes kinds: which are cluster-scoped, the
//! order it writes kinds in, and the list merge keys strategic merge uses.
//!
//! kustomize v5 embeds the OpenAPI document of Kubernetes 1.21; only the
//! group/version/kind pairs served by a 1.21 API server (alpha versions
//! excluded) have a schema. Everything else (custom resources, kinds or
//! fields added after 1.21) is merged without list keys: lists are replaced.

/// Kinds served in Kubernetes 1.21 that are cluster-scoped, by group/version.
const CLUSTER_SCOPED: &[(&str, &[&str], &[&str])] = &[
    (
        "",
        &["v1"],
        &["ComponentStatus", "Namespace", "Node", "PersistentVolume"],
    ),
    (
        "admissionregistration.k8s.io",
        &["v1", "v1beta1"],
        &[
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ],
    ),
    (
        "apiextensions.k8s.io",
        &["v1", "v1beta1"],
        &["CustomResourceDefinition"],
    ),
    (
        "apiregistration.k8s.io",
        &["v1", "v1beta1"],
        &["APIService"],
    ),
    (
        "certificates.k8s.io",
        &["v1", "v1beta1"],
        &["CertificateSigningRequest"],
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        &["v1beta1"],
        &["FlowSchema", "PriorityLevelConfiguration"],
    ),
    ("networking.k8s.io", &["v1", "v1beta1"], &["IngressClass"]),
    ("node.k8s.io", &["v1", "v1beta1"], &["RuntimeClass"]),
    ("policy", &["v1beta1"], &["PodSecurityPolicy"]),
    (
        "rbac.authorization.k8s.io",
        &["v1", "v1beta1"],
        &["ClusterRole", "ClusterRoleBinding"],
    ),
    ("scheduling.k8s.io", &["v1", "v1beta1"], &["PriorityClass"]),
    (
        "storage.k8s.io",
        &["v1", "v1beta1"],
        &["CSIDriver", "CSINode", "StorageClass", "VolumeAttachment"],
    ),
];

/// Kinds with a schema in Kubernetes 1.21, by group and versions.
const KNOWN: &[(&str, &[&str], &[&str])] = &[
    (
        "",
        &["v1"],
        &[
            "Binding",
            "ComponentStatus",
            "ConfigMap",
            "Endpoints",
            "Event",
            "LimitRange",
            "Namespace",
            "Node",
            "PersistentVolume",
            "PersistentVolumeClaim",
            "Pod",
            "PodTemplate",
            "ReplicationController",
            "ResourceQuota",
            "Secret",
            "Service",
            "ServiceAccount",
        ],
    ),
    (
        "admissionregistration.k8s.io",
        &["v1", "v1beta1"],
        &[
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        ],
    ),
    (
        "apiextensions.k8s.io",
        &["v1", "v1beta1"],
        &["CustomResourceDefinition"],
    ),
    (
        "apiregistration.k8s.io",
        &["v1", "v1beta1"],
        &["APIService"],
    ),
    (
        "apps",
        &["v1"],
        &[
            "ControllerRevision",
            "DaemonSet",
            "Deployment",
            "ReplicaSet",
            "StatefulSet",
        ],
    ),
    (
        "authentication.k8s.io",
        &["v1", "v1beta1"],
        &["TokenReview"],
    ),
    (
        "authorization.k8s.io",
        &["v1", "v1beta1"],
        &[
            "LocalSubjectAccessReview",
            "SelfSubjectAccessReview",
            "SelfSubjectRulesReview",
            "SubjectAccessReview",
        ],
    ),
    (
        "autoscaling",
        &["v1"],
        &["HorizontalPodAutoscaler", "Scale"],
    ),
    (
        "autoscaling",
        &["v2beta1", "v2beta2"],
        &["HorizontalPodAutoscaler"],
    ),
    ("batch", &["v1"], &["CronJob", "Job"]),
    ("batch", &["v1beta1"], &["CronJob"]),
    (
        "certificates.k8s.io",
        &["v1", "v1beta1"],
        &["CertificateSigningRequest"],
    ),
    ("coordination.k8s.io", &["v1", "v1beta1"], &["Lease"]),
    ("discovery.k8s.io", &["v1", "v1beta1"], &["EndpointSlice"]),
    ("events.k8s.io", &["v1", "v1beta1"], &["Event"]),
    ("extensions", &["v1beta1"], &["Ingress"]),
    (
        "flowcontrol.apiserver.k8s.io",
        &["v1beta1"],
        &["FlowSchema", "PriorityLevelConfiguration"],
    ),
    (
        "networking.k8s.io",
        &["v1"],
        &["Ingress", "IngressClass", "NetworkPolicy"],
    ),
    (
        "networking.k8s.io",
        &["v1beta1"],
        &["Ingress", "IngressClass"],
    ),
    ("node.k8s.io", &["v1", "v1beta1"], &["RuntimeClass"]),
    ("policy", &["v1"], &["PodDisruptionBudget"]),
    (
        "policy",
        &["v1beta1"],
        &["Eviction", "PodDisruptionBudget", "PodSecurityPolicy"],
    ),
    (
        "rbac.authorization.k8s.io",
        &["v1", "v1beta1"],
        &["ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"],
    ),
    ("scheduling.k8s.io", &["v1", "v1beta1"], &["PriorityClass"]),
    (
        "storage.k8s.io",
        &["v1"],
        &["CSIDriver", "CSINode", "StorageClass", "VolumeAttachment"],
    ),
    (
        "storage.k8s.io",
        &["v1beta1"],
        &[
            "CSIDriver",
            "CSINode",
            "CSIStorageCapacity",
            "StorageClass",
            "VolumeAttachment",
        ],
    ),
];

fn in_table(table: &[(&str, &[&str], &[&str])], group: &str, version: &str, kind: &str) -> bool {
    table
        .iter()
        .any(|(g, vs, ks)| *g == group && vs.contains(&version) && ks.contains(&kind))
}

/// Whether kustomize treats this kind as cluster-scoped (it needs the exact
/// group and version; unknown kinds count as namespaced).
pub(crate) fn is_cluster_scoped(group: &str, version: &str, kind: &str) -> bool {
    in_table(CLUSTER_SCOPED, group, version, kind)
}

/// The rank of a kind in kustomize's legacy output order.
pub(crate) fn legacy_kind_rank(kind: &str) -> i32 {
    const FIRST: &[&str] = &[
        "Namespace",
        "ResourceQuota",
        "StorageClass",
        "CustomResourceDefinition",
        "ServiceAccount",
        "PodSecurityPolicy",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "ConfigMap",
        "Secret",
        "Endpoints",
        "Service",
        "LimitRange",
        "PriorityClass",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Deployment",
        "StatefulSet",
        "CronJob",
        "PodDisruptionBudget",
    ];
    const LAST: &[&str] = &[
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ];
    if let Some(i) = FIRST.iter().position(|k| *k == kind) {
        return i as i32 - FIRST.len() as i32;
    }
    if let Some(i) = LAST.iter().position(|k| *k == kind) {
        return 1 + i as i32;
    }
    0
}

/// A node of the schema: the type of a value at some path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    /// No schema: lists below are replaced.
    Unknown,
    /// A known object with no list of interest below.
    Opaque,
    /// The root of a known kind.
    Root(Root),
    ObjectMeta,
    PodTemplateSpec,
    PodSpec,
    Container,
    JobTemplateSpec,
    JobSpec,
    WorkloadSpec,
    CronJobSpec,
    ServiceSpec,
}

/// Which known kind a root is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    Plain,
    Pod,
    PodTemplate,
    Workload,
    CronJob,
    Service,
    ServiceAccount,
    Webhooks,
}

/// How strategic merge treats a list field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListKind {
    /// Replaced by the patch's list.
    Replace,
    /// Elements merged by the values of these keys (the first is the merge
    /// key; the others are the list-map keys the schema adds).
    Keyed(&'static [&'static str]),
    /// A list of scalars merged as a set.
    Primitive,
}

/// The schema root for a kind, or `Unknown` when kustomize has none.
pub(crate) fn root(group: &str, version: &str, kind: &str) -> Ty {
    if !in_table(KNOWN, group, version, kind) {
        return Ty::Unknown;
    }
    let root = match kind {
        "Pod" => Root::Pod,
        "PodTemplate" => Root::PodTemplate,
        "ReplicationController"
        | "Deployment"
        | "StatefulSet"
        | "DaemonSet"
        | "ReplicaSet"
        | "Job" => Root::Workload,
        "CronJob" => Root::CronJob,
        "Service" => Root::Service,
        "ServiceAccount" => Root::ServiceAccount,
        "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => Root::Webhooks,
        _ => Root::Plain,
    };
    Ty::Root(root)
}

/// The type of a map field.
pub(crate) fn field(ty: Ty, name: &str) -> Ty {
    match (ty, name) {
        (Ty::Unknown, _) => Ty::Unknown,
        (Ty::Root(_), "metadata") => Ty::ObjectMeta,
        (Ty::Root(Root::Pod), "spec") => Ty::PodSpec,
        (Ty::Root(Root::PodTemplate), "template") => Ty::PodTemplateSpec,
        (Ty::Root(Root::Workload), "spec") => Ty::WorkloadSpec,
        (Ty::Root(Root::CronJob), "spec") => Ty::CronJobSpec,
        (Ty::Root(Root::Service), "spec") => Ty::ServiceSpec,
        (Ty::WorkloadSpec, "template") => Ty::PodTemplateSpec,
        (Ty::CronJobSpec, "jobTemplate") => Ty::JobTemplateSpec,
        (Ty::JobTemplateSpec, "metadata") => Ty::ObjectMeta,
        (Ty::JobTemplateSpec, "spec") => Ty::JobSpec,
        (Ty::JobSpec, "template") => Ty::PodTemplateSpec,
        (Ty::PodTemplateSpec, "metadata") => Ty::ObjectMeta,
        (Ty::PodTemplateSpec, "spec") => Ty::PodSpec,
        _ => Ty::Opaque,
    }
}

/// How a list field merges, and the type of its elements.
pub(crate) fn list(ty: Ty, name: &str) -> (ListKind, Ty) {
    match (ty, name) {
        (Ty::Unknown, _) => (ListKind::Replace, Ty::Unknown),
        (Ty::ObjectMeta, "finalizers") => (ListKind::Primitive, Ty::Opaque),
        (Ty::ObjectMeta, "ownerReferences") => (ListKind::Keyed(&["uid"]), Ty::Opaque),
        (Ty::PodSpec, "containers" | "initContainers" | "ephemeralContainers") => {
            (ListKind::Keyed(&["name"]), Ty::Container)
        }
        (Ty::PodSpec, "volumes" | "imagePullSecrets") => (ListKind::Keyed(&["name"]), Ty::Opaque),
        (Ty::PodSpec, "hostAliases") => (ListKind::Keyed(&["ip"]), Ty::Opaque),
        (Ty::PodSpec, "topologySpreadConstraints") => (
            ListKind::Keyed(&["topologyKey", "whenUnsatisfiable"]),
            Ty::Opaque,
        ),
        (Ty::Container, "ports") => (ListKind::Keyed(&["containerPort", "protocol"]), Ty::Opaque),
        (Ty::Container, "env") => (ListKind::Keyed(&["name"]), Ty::Opaque),
        (Ty::Container, "volumeMounts") => (ListKind::Keyed(&["mountPath"]), Ty::Opaque),
        (Ty::Container, "volumeDevices") => (ListKind::Keyed(&["devicePath"]), Ty::Opaque),
        (Ty::ServiceSpec, "ports") => (ListKind::Keyed(&["port", "protocol"]), Ty::Opaque),
        (Ty::Root(Root::ServiceAccount), "secrets") => (ListKind::Keyed(&["name"]), Ty::Opaque),
        (Ty::Root(Root::Webhooks), "webhooks") => (ListKind::Keyed(&["name"]), Ty::Opaque),
        _ => (ListKind::Replace, Ty::Opaque),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_needs_exact_version() {
        assert!(is_cluster_scoped(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole"
        ));
        assert!(!is_cluster_scoped(
            "rbac.authorization.k8s.io",
            "v1alpha1",
            "ClusterRole"
        ));
        assert!(!is_cluster_scoped("x.io", "v1", "Namespace"));
        assert!(is_cluster_scoped("", "v1", "Namespace"));
    }

    #[test]
    fn legacy_ranks() {
        assert!(legacy_kind_rank("Namespace") < legacy_kind_rank("Deployment"));
        assert_eq!(legacy_kind_rank("Foo"), 0);
        assert!(legacy_kind_rank("ValidatingWebhookConfiguration") > 0);
    }
}

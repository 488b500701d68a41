//! Field specs: where in which kinds a transformer writes. The tables are
//! kustomize's default transformer configuration.

use serde_json::Value;

use crate::resource::{Gvk, Resource, split_path, visit_path};

/// A path in objects of the selected kinds.
#[derive(Debug, Clone)]
pub(crate) struct FieldSpec {
    pub gvk: Gvk,
    pub path: Vec<String>,
    pub create: bool,
}

impl FieldSpec {
    pub fn new(group: &str, version: &str, kind: &str, path: &str, create: bool) -> Self {
        FieldSpec {
            gvk: Gvk {
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
            },
            path: split_path(path),
            create,
        }
    }

    pub fn selects(&self, gvk: &Gvk) -> bool {
        gvk.is_selected_by(&self.gvk)
    }

    /// [`FieldSpec::selects`] for a resource's current kind, without
    /// building its [`Gvk`].
    pub fn selects_resource(&self, res: &Resource) -> bool {
        let api_version = res.api_version();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let g = &self.gvk;
        (g.group.is_empty() || g.group == group)
            && (g.version.is_empty() || g.version == version)
            && (g.kind.is_empty() || g.kind == res.kind())
    }

    /// Calls `f` on every node this spec reaches in `res` (when it selects
    /// the resource's kind).
    pub fn apply<E>(
        &self,
        res: &mut Resource,
        f: &mut dyn FnMut(&mut Value) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.selects_resource(res) {
            return Ok(());
        }
        let mut root = Value::Object(std::mem::take(&mut res.obj));
        let outcome = visit_path(&mut root, &self.path, self.create, f);
        if let Value::Object(map) = root {
            res.obj = map;
        }
        outcome
    }
}

fn fs(group: &str, version: &str, kind: &str, path: &str, create: bool) -> FieldSpec {
    FieldSpec::new(group, version, kind, path, create)
}

/// `metadata/labels` plus the pod template labels of workloads.
pub(crate) fn metadata_labels() -> Vec<FieldSpec> {
    let mut specs = vec![fs("", "", "", "metadata/labels", true)];
    specs.extend(template_labels());
    specs
}

/// The pod template labels of workloads (what `includeTemplates` adds).
pub(crate) fn template_labels() -> Vec<FieldSpec> {
    vec![
        fs(
            "",
            "v1",
            "ReplicationController",
            "spec/template/metadata/labels",
            true,
        ),
        fs("", "", "Deployment", "spec/template/metadata/labels", true),
        fs("", "", "ReplicaSet", "spec/template/metadata/labels", true),
        fs("", "", "DaemonSet", "spec/template/metadata/labels", true),
        fs(
            "apps",
            "",
            "StatefulSet",
            "spec/template/metadata/labels",
            true,
        ),
        fs(
            "apps",
            "",
            "StatefulSet",
            "spec/volumeClaimTemplates[]/metadata/labels",
            true,
        ),
        fs("batch", "", "Job", "spec/template/metadata/labels", true),
        fs(
            "batch",
            "",
            "CronJob",
            "spec/jobTemplate/metadata/labels",
            true,
        ),
        fs(
            "batch",
            "",
            "CronJob",
            "spec/jobTemplate/spec/template/metadata/labels",
            true,
        ),
    ]
}

/// Everything `commonLabels` (and `includeSelectors`) writes: labels,
/// templates and selectors.
pub(crate) fn common_labels() -> Vec<FieldSpec> {
    const AFFINITY: [&str; 5] = [
        "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
    ];
    let mut specs = vec![
        fs("", "v1", "Service", "spec/selector", true),
        fs("", "v1", "ReplicationController", "spec/selector", true),
        fs("", "", "Deployment", "spec/selector/matchLabels", true),
    ];
    for path in AFFINITY {
        specs.push(fs("apps", "", "Deployment", path, false));
    }
    specs.push(fs("", "", "ReplicaSet", "spec/selector/matchLabels", true));
    specs.push(fs("", "", "DaemonSet", "spec/selector/matchLabels", true));
    specs.push(fs(
        "apps",
        "",
        "StatefulSet",
        "spec/selector/matchLabels",
        true,
    ));
    for path in AFFINITY {
        specs.push(fs("apps", "", "StatefulSet", path, false));
    }
    specs.extend([
        fs("batch", "", "Job", "spec/selector/matchLabels", false),
        fs(
            "batch",
            "",
            "CronJob",
            "spec/jobTemplate/spec/selector/matchLabels",
            false,
        ),
        fs(
            "policy",
            "",
            "PodDisruptionBudget",
            "spec/selector/matchLabels",
            false,
        ),
        fs(
            "networking.k8s.io",
            "",
            "NetworkPolicy",
            "spec/podSelector/matchLabels",
            false,
        ),
        fs(
            "networking.k8s.io",
            "",
            "NetworkPolicy",
            "spec/ingress/from/podSelector/matchLabels",
            false,
        ),
        fs(
            "networking.k8s.io",
            "",
            "NetworkPolicy",
            "spec/egress/to/podSelector/matchLabels",
            false,
        ),
    ]);
    specs.extend(metadata_labels());
    specs
}

/// Everything `commonAnnotations` writes.
pub(crate) fn common_annotations() -> Vec<FieldSpec> {
    vec![
        fs("", "", "", "metadata/annotations", true),
        fs(
            "",
            "v1",
            "ReplicationController",
            "spec/template/metadata/annotations",
            true,
        ),
        fs(
            "",
            "",
            "Deployment",
            "spec/template/metadata/annotations",
            true,
        ),
        fs(
            "",
            "",
            "ReplicaSet",
            "spec/template/metadata/annotations",
            true,
        ),
        fs(
            "",
            "",
            "DaemonSet",
            "spec/template/metadata/annotations",
            true,
        ),
        fs(
            "",
            "",
            "StatefulSet",
            "spec/template/metadata/annotations",
            true,
        ),
        fs(
            "batch",
            "",
            "Job",
            "spec/template/metadata/annotations",
            true,
        ),
        fs(
            "batch",
            "",
            "CronJob",
            "spec/jobTemplate/metadata/annotations",
            true,
        ),
        fs(
            "batch",
            "",
            "CronJob",
            "spec/jobTemplate/spec/template/metadata/annotations",
            true,
        ),
    ]
}

/// Where `replicas` writes.
pub(crate) fn replicas() -> Vec<FieldSpec> {
    [
        "Deployment",
        "ReplicationController",
        "ReplicaSet",
        "StatefulSet",
    ]
    .into_iter()
    .map(|kind| fs("", "", kind, "spec/replicas", true))
    .collect()
}

/// Where `images` looks for container images (besides any `containers` and
/// `initContainers` list found anywhere).
pub(crate) fn images() -> Vec<FieldSpec> {
    vec![
        fs("", "", "", "spec/containers[]/image", true),
        fs("", "", "", "spec/initContainers[]/image", true),
        fs("", "", "", "spec/volumes[]/image/reference", true),
        fs("", "", "", "spec/template/spec/containers[]/image", true),
        fs(
            "",
            "",
            "",
            "spec/template/spec/initContainers[]/image",
            true,
        ),
        fs(
            "",
            "",
            "",
            "spec/template/spec/volumes[]/image/reference",
            true,
        ),
    ]
}

/// Namespace fields besides `metadata/namespace`.
pub(crate) fn namespace_extra() -> Vec<FieldSpec> {
    vec![
        fs(
            "apiregistration.k8s.io",
            "",
            "APIService",
            "spec/service/namespace",
            true,
        ),
        fs(
            "apiextensions.k8s.io",
            "",
            "CustomResourceDefinition",
            "spec/conversion/webhook/clientConfig/service/namespace",
            false,
        ),
    ]
}

/// A back reference: resources of kind `target` are referred to by name at
/// the `referrers` paths.
#[derive(Debug, Clone)]
pub(crate) struct NameBackRef {
    pub target: Gvk,
    pub referrers: Vec<FieldSpec>,
}

/// kustomize's name reference table, as kustomize v5.5 (the one `kubectl`
/// 1.32 embeds) has it: ValidatingAdmissionPolicyBinding's `policyName`,
/// no HTTPRoute backends yet.
pub(crate) fn name_references() -> Vec<NameBackRef> {
    const POD_KINDS: [(&str, &str); 7] = [
        ("Deployment", "spec/template/spec"),
        ("ReplicaSet", "spec/template/spec"),
        ("DaemonSet", "spec/template/spec"),
        ("StatefulSet", "spec/template/spec"),
        ("Job", "spec/template/spec"),
        ("CronJob", "spec/jobTemplate/spec/template/spec"),
        ("PodTemplate", "template/spec"),
    ];
    let gvk = |group: &str, version: &str, kind: &str| Gvk {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
    };
    let mut refs = Vec::new();

    for scale_target in [
        "Deployment",
        "ReplicationController",
        "ReplicaSet",
        "StatefulSet",
    ] {
        refs.push(NameBackRef {
            target: gvk("", "", scale_target),
            referrers: vec![fs(
                "",
                "",
                "HorizontalPodAutoscaler",
                "spec/scaleTargetRef/name",
                false,
            )],
        });
    }

    // ConfigMap
    let mut cm = Vec::new();
    let cm_paths = [
        "volumes/configMap/name",
        "containers/env/valueFrom/configMapKeyRef/name",
        "initContainers/env/valueFrom/configMapKeyRef/name",
        "containers/envFrom/configMapRef/name",
        "initContainers/envFrom/configMapRef/name",
        "volumes/projected/sources/configMap/name",
    ];
    for p in cm_paths {
        cm.push(fs("", "v1", "Pod", &format!("spec/{p}"), false));
    }
    for (kind, prefix) in POD_KINDS {
        for p in cm_paths {
            cm.push(fs("", "", kind, &format!("{prefix}/{p}"), false));
        }
    }
    cm.push(fs("", "", "Node", "spec/configSource/configMap", false));
    cm.push(fs("", "", "Role", "rules/resourceNames", false));
    cm.push(fs("", "", "ClusterRole", "rules/resourceNames", false));
    cm.push(fs(
        "",
        "",
        "Ingress",
        "metadata/annotations/nginx.ingress.kubernetes.io\\/fastcgi-params-configmap",
        false,
    ));
    refs.push(NameBackRef {
        target: gvk("", "v1", "ConfigMap"),
        referrers: cm,
    });

    // Secret
    let mut secret = Vec::new();
    let secret_paths = [
        "volumes/secret/secretName",
        "containers/env/valueFrom/secretKeyRef/name",
        "initContainers/env/valueFrom/secretKeyRef/name",
        "containers/envFrom/secretRef/name",
        "initContainers/envFrom/secretRef/name",
        "imagePullSecrets/name",
        "volumes/projected/sources/secret/name",
    ];
    for p in secret_paths {
        secret.push(fs("", "v1", "Pod", &format!("spec/{p}"), false));
    }
    for (kind, prefix) in POD_KINDS {
        for p in secret_paths {
            secret.push(fs("", "", kind, &format!("{prefix}/{p}"), false));
        }
    }
    secret.extend([
        fs("", "", "Ingress", "spec/tls/secretName", false),
        fs(
            "",
            "",
            "Ingress",
            "metadata/annotations/ingress.kubernetes.io\\/auth-secret",
            false,
        ),
        fs(
            "",
            "",
            "Ingress",
            "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-secret",
            false,
        ),
        fs(
            "",
            "",
            "Ingress",
            "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-tls-secret",
            false,
        ),
        fs("", "", "ServiceAccount", "imagePullSecrets/name", false),
        fs("", "", "StorageClass", "parameters/secretName", false),
        fs("", "", "StorageClass", "parameters/adminSecretName", false),
        fs("", "", "StorageClass", "parameters/userSecretName", false),
        fs("", "", "StorageClass", "parameters/secretRef", false),
        fs("", "", "Role", "rules/resourceNames", false),
        fs("", "", "ClusterRole", "rules/resourceNames", false),
        fs(
            "serving.knative.dev",
            "v1",
            "Service",
            "spec/template/spec/containers/env/valueFrom/secretKeyRef/name",
            false,
        ),
        fs(
            "",
            "",
            "PersistentVolume",
            "spec/azureFile/secretName",
            false,
        ),
    ]);
    refs.push(NameBackRef {
        target: gvk("", "v1", "Secret"),
        referrers: secret,
    });

    refs.push(NameBackRef {
        target: gvk("", "v1", "Service"),
        referrers: vec![
            fs("apps", "", "StatefulSet", "spec/serviceName", false),
            fs(
                "",
                "",
                "Ingress",
                "spec/rules/http/paths/backend/serviceName",
                false,
            ),
            fs("", "", "Ingress", "spec/backend/serviceName", false),
            fs(
                "",
                "",
                "Ingress",
                "spec/rules/http/paths/backend/service/name",
                false,
            ),
            fs("", "", "Ingress", "spec/defaultBackend/service/name", false),
            fs(
                "apiregistration.k8s.io",
                "",
                "APIService",
                "spec/service/name",
                false,
            ),
            fs(
                "admissionregistration.k8s.io",
                "",
                "ValidatingWebhookConfiguration",
                "webhooks/clientConfig/service",
                false,
            ),
            fs(
                "admissionregistration.k8s.io",
                "",
                "MutatingWebhookConfiguration",
                "webhooks/clientConfig/service",
                false,
            ),
        ],
    });

    refs.push(NameBackRef {
        target: gvk("rbac.authorization.k8s.io", "", "Role"),
        referrers: vec![fs(
            "rbac.authorization.k8s.io",
            "",
            "RoleBinding",
            "roleRef/name",
            false,
        )],
    });
    refs.push(NameBackRef {
        target: gvk("rbac.authorization.k8s.io", "", "ClusterRole"),
        referrers: vec![
            fs(
                "rbac.authorization.k8s.io",
                "",
                "RoleBinding",
                "roleRef/name",
                false,
            ),
            fs(
                "rbac.authorization.k8s.io",
                "",
                "ClusterRoleBinding",
                "roleRef/name",
                false,
            ),
        ],
    });

    let mut sa = vec![
        fs(
            "rbac.authorization.k8s.io",
            "",
            "RoleBinding",
            "subjects",
            false,
        ),
        fs(
            "rbac.authorization.k8s.io",
            "",
            "ClusterRoleBinding",
            "subjects",
            false,
        ),
        fs("", "", "Pod", "spec/serviceAccountName", false),
    ];
    let workload_spec = [
        ("StatefulSet", "spec/template/spec"),
        ("Deployment", "spec/template/spec"),
        ("ReplicationController", "spec/template/spec"),
        ("CronJob", "spec/jobTemplate/spec/template/spec"),
        ("Job", "spec/template/spec"),
        ("DaemonSet", "spec/template/spec"),
    ];
    for (kind, prefix) in workload_spec {
        sa.push(fs(
            "",
            "",
            kind,
            &format!("{prefix}/serviceAccountName"),
            false,
        ));
    }
    refs.push(NameBackRef {
        target: gvk("", "v1", "ServiceAccount"),
        referrers: sa,
    });

    let mut pvc = vec![fs(
        "",
        "",
        "Pod",
        "spec/volumes/persistentVolumeClaim/claimName",
        false,
    )];
    for (kind, prefix) in workload_spec {
        pvc.push(fs(
            "",
            "",
            kind,
            &format!("{prefix}/volumes/persistentVolumeClaim/claimName"),
            false,
        ));
    }
    refs.push(NameBackRef {
        target: gvk("", "v1", "PersistentVolumeClaim"),
        referrers: pvc,
    });

    refs.push(NameBackRef {
        target: gvk("", "v1", "PersistentVolume"),
        referrers: vec![
            fs("", "", "PersistentVolumeClaim", "spec/volumeName", false),
            fs("", "", "ClusterRole", "rules/resourceNames", false),
        ],
    });

    refs.push(NameBackRef {
        target: gvk("storage.k8s.io", "v1", "StorageClass"),
        referrers: vec![
            fs("", "", "PersistentVolume", "spec/storageClassName", false),
            fs(
                "",
                "",
                "PersistentVolumeClaim",
                "spec/storageClassName",
                false,
            ),
            fs(
                "",
                "",
                "StatefulSet",
                "spec/volumeClaimTemplates/spec/storageClassName",
                false,
            ),
        ],
    });

    let mut pc = vec![fs("", "", "Pod", "spec/priorityClassName", false)];
    for (kind, prefix) in workload_spec {
        pc.push(fs(
            "",
            "",
            kind,
            &format!("{prefix}/priorityClassName"),
            false,
        ));
    }
    refs.push(NameBackRef {
        target: gvk("scheduling.k8s.io", "v1", "PriorityClass"),
        referrers: pc,
    });

    refs.push(NameBackRef {
        target: gvk(
            "admissionregistration.k8s.io",
            "",
            "ValidatingAdmissionPolicy",
        ),
        referrers: vec![fs(
            "admissionregistration.k8s.io",
            "",
            "ValidatingAdmissionPolicyBinding",
            "spec/policyName",
            false,
        )],
    });

    refs.push(NameBackRef {
        target: gvk("networking.k8s.io/v1", "v1", "IngressClass"),
        referrers: vec![fs("", "", "Ingress", "spec/ingressClassName", false)],
    });
    refs
}

/// Where `$(VAR)` references are substituted (kustomize's default
/// `varReference`).
pub(crate) fn var_references() -> Vec<FieldSpec> {
    const CONTAINER_FIELDS: [&str; 4] = ["args", "command", "env/value", "volumeMounts/mountPath"];
    let mut specs = Vec::new();
    let pod_specs = [
        ("CronJob", "spec/jobTemplate/spec/template/spec"),
        ("DaemonSet", "spec/template/spec"),
        ("Deployment", "spec/template/spec"),
        ("Job", "spec/template/spec"),
        ("Pod", "spec"),
        ("ReplicaSet", "spec/template/spec"),
        ("StatefulSet", "spec/template/spec"),
    ];
    for (kind, prefix) in pod_specs {
        for list in ["containers", "initContainers"] {
            for field in CONTAINER_FIELDS {
                specs.push(fs("", "", kind, &format!("{prefix}/{list}/{field}"), false));
            }
        }
        if kind == "StatefulSet" {
            specs.push(fs(
                "",
                "",
                kind,
                "spec/volumeClaimTemplates/spec/nfs/server",
                false,
            ));
        } else {
            specs.push(fs(
                "",
                "",
                kind,
                &format!("{prefix}/volumes/nfs/server"),
                false,
            ));
        }
    }
    specs.extend([
        fs("", "", "Ingress", "spec/rules/host", false),
        fs("", "", "Ingress", "spec/tls/hosts", false),
        fs("", "", "Ingress", "spec/tls/secretName", false),
        fs("", "", "Service", "spec/ports/port", false),
        fs("", "", "Service", "spec/ports/targetPort", false),
        fs("", "", "PersistentVolume", "spec/nfs/server", false),
        fs("", "", "", "metadata/labels", false),
        fs("", "", "", "metadata/annotations", false),
    ]);
    specs
}

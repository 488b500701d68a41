//! [`export`]: the live objects of chosen namespaces and the cluster-scoped
//! objects they need, cleaned for re-creation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use futures::{FutureExt as _, StreamExt as _, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::discovery::ApiResource;
use serde_json::Value;

use super::clean::{SYSTEM_NAMESPACES, clean, kind_skipped, left_out};
use super::{ExportError, ExportOptions, ExportedObjects, Unreadable};
use crate::sync::{
    CallError, Calls, NAMESPACED_LISTS, ObjectKey, Resolved, SyncOptions, sync_order,
};

/// Label of the ClusterRoles and ClusterRoleBindings every cluster makes itself.
const BOOTSTRAPPING_LABEL: &str = "kubernetes.io/bootstrapping";

/// Exports the live objects of the chosen namespaces, and the cluster-scoped
/// objects they need, cleaned so that they can be re-created on another
/// cluster (see [`restore`](super::restore())).
///
/// **What.** Every namespaced kind that discovery shows with the `list` and
/// `create` verbs, at its group's preferred version (or the first version
/// that serves it), except kinds the cluster makes and remakes itself or that
/// belong to one cluster: Events, Endpoints, EndpointSlices, Leases,
/// ControllerRevisions, CSIStorageCapacities, reviews, metrics. Secrets only
/// with [`ExportOptions::include_secrets`]: otherwise they are not even read.
/// Left out as well: objects with a controller owner reference (ReplicaSets,
/// Pods of workloads, Jobs of CronJobs: their owner re-creates them), the
/// `kube-root-ca.crt` ConfigMaps, service account token Secrets, the API
/// server's own `default/kubernetes` Service and objects being deleted. [`ExportOptions::namespaces`] `None` means every namespace
/// but `kube-system`, `kube-public` and `kube-node-lease`.
///
/// **Cluster-scoped objects they need.** The chosen Namespaces themselves; the
/// CustomResourceDefinitions of exported custom resources; the StorageClasses
/// exported claims and StatefulSet claim templates name; the ClusterRoles
/// exported RoleBindings refer to; the ClusterRoleBindings that bind an
/// exported ServiceAccount, with their ClusterRoles. RBAC objects every cluster
/// makes itself (labelled `kubernetes.io/bootstrapping`, or named `system:…`)
/// are not exported.
///
/// **Cleaning.** Identity, versions and timestamps (`uid`,
/// `resourceVersion`, `generation`, `creationTimestamp`, `deletionTimestamp`),
/// `managedFields`, `ownerReferences`, `selfLink`, `status`, the client-side
/// apply annotation, controllers' annotations and finalizers go; so do a
/// Service's cluster IPs (unless headless) and the node ports the API server
/// allocated — a node port is kept only when a field manager owns it, that is
/// a client asked for it — and its IP families when single-stack (the target
/// cluster's default); a Pod's `nodeName`; a claim's `volumeName` and binding
/// annotations; a Job's generated selector and labels.
///
/// **Result.** Objects in the order a restore applies them (Namespaces,
/// CustomResourceDefinitions, then the install order), with a count per kind.
/// A kind or group that cannot be read (forbidden, an aggregated API that is
/// down) is listed in [`ExportedObjects::unreadable`] and the rest is
/// exported: the caller decides whether that is good enough.
///
/// **Calls.** At most [`ExportOptions::concurrency`] at once, every one bounded
/// by [`ExportOptions::call_timeout`]. When the cluster stops answering, the
/// export is [`ExportError::Unreachable`]: never a silently partial backup.
///
/// ```no_run
/// # async fn example(client: kube::Client) -> Result<(), pilothouse_fleet::ExportError> {
/// use pilothouse_fleet::{ExportOptions, export};
/// let options = ExportOptions {
///     namespaces: Some(vec!["shop".to_owned()]),
///     ..ExportOptions::default()
/// };
/// let exported = export(&client, &options).await?;
/// for (kind, count) in &exported.counts {
///     println!("{kind}: {count}");
/// }
/// # Ok(()) }
/// ```
pub async fn export(
    client: &kube::Client,
    options: &ExportOptions,
) -> Result<ExportedObjects, ExportError> {
    let began = Instant::now();
    let sync_options = SyncOptions {
        concurrency: options.concurrency,
        call_timeout: options.call_timeout,
        ..SyncOptions::default()
    };
    let calls = Calls::new(client, &sync_options);
    let mut unreadable = Vec::new();
    let served = discover_everything(&calls, &mut unreadable).await;
    stopped(&calls)?;
    let find = |group: &str, kind: &str| {
        served
            .iter()
            .find(|r| r.resource.group == group && r.resource.kind == kind)
    };

    // the namespaces
    let Some(namespace_kind) = find("", "Namespace") else {
        return Err(ExportError::NamespacesUnreadable {
            message: "the cluster serves no Namespaces in v1".to_owned(),
        });
    };
    let namespaces = calls
        .list_whole(namespace_kind, None)
        .await
        .map_err(|error| match error {
            CallError::Unreachable(message) | CallError::NotAttempted(message) => {
                ExportError::Unreachable { message }
            }
            other => ExportError::NamespacesUnreadable {
                message: other.message(),
            },
        })?;
    let mut live_namespaces: BTreeMap<String, Value> = namespaces
        .into_iter()
        .filter_map(|ns| Some((ObjectKey::of(&ns)?.name, ns)))
        .collect();
    let chosen: BTreeSet<String> = match &options.namespaces {
        Some(names) => {
            if let Some(missing) = names.iter().find(|n| !live_namespaces.contains_key(*n)) {
                return Err(ExportError::NoSuchNamespace {
                    namespace: missing.clone(),
                });
            }
            names.iter().cloned().collect()
        }
        None => live_namespaces
            .keys()
            .filter(|n| !SYSTEM_NAMESPACES.contains(&n.as_str()))
            .cloned()
            .collect(),
    };

    // the namespaced objects
    let kinds: Vec<&Resolved> = served
        .iter()
        .filter(|r| r.namespaced)
        .filter(|r| {
            options.include_secrets || !(r.resource.group.is_empty() && r.resource.kind == "Secret")
        })
        .collect();
    let mut objects = list_namespaced(&calls, &kinds, &chosen, &mut unreadable).await;
    stopped(&calls)?;
    objects.retain(|object| left_out(object).is_none());
    objects.iter_mut().for_each(clean);

    // the cluster-scoped objects they need
    let mut needed: Vec<Value> = chosen
        .iter()
        .filter_map(|name| live_namespaces.remove(name))
        .filter(|ns| left_out(ns).is_none())
        .collect();
    let wants = Wants::of(&objects);
    let mut list = async |group: &str, kind: &str| -> Vec<Value> {
        let Some(kind) = find(group, kind) else {
            return Vec::new();
        };
        match calls.list_whole(kind, None).await {
            Ok(objects) => objects,
            Err(error) => {
                unreadable.push(Unreadable {
                    api_version: kind.resource.api_version.clone(),
                    resource: Some(kind.resource.plural.clone()),
                    namespace: None,
                    message: error.message(),
                });
                Vec::new()
            }
        }
    };
    if !wants.kinds.is_empty() {
        let definitions = list("apiextensions.k8s.io", "CustomResourceDefinition").await;
        needed.extend(definitions.into_iter().filter(|definition| {
            let text = |p: &str| definition.pointer(p).and_then(Value::as_str).unwrap_or("");
            let id = (
                text("/spec/group").to_owned(),
                text("/spec/names/kind").to_owned(),
            );
            wants.kinds.contains(&id)
        }));
    }
    if !wants.storage_classes.is_empty() {
        let classes = list("storage.k8s.io", "StorageClass").await;
        needed.extend(classes.into_iter().filter(|class| {
            ObjectKey::of(class).is_some_and(|k| wants.storage_classes.contains(&k.name))
        }));
    }
    let mut cluster_roles = wants.cluster_roles.clone();
    if !wants.service_accounts.is_empty() {
        let bindings = list("rbac.authorization.k8s.io", "ClusterRoleBinding").await;
        for binding in bindings {
            if !is_bootstrap(&binding) && binds_any(&binding, &wants.service_accounts) {
                if let Some(role) = role_ref(&binding) {
                    cluster_roles.insert(role.to_owned());
                }
                needed.push(binding);
            }
        }
    }
    if !cluster_roles.is_empty() {
        let roles = list("rbac.authorization.k8s.io", "ClusterRole").await;
        needed.extend(roles.into_iter().filter(|role| {
            !is_bootstrap(role)
                && ObjectKey::of(role).is_some_and(|k| cluster_roles.contains(&k.name))
        }));
    }
    stopped(&calls)?;
    needed.iter_mut().for_each(clean);
    objects.extend(needed);

    let mut keyed: Vec<(ObjectKey, Value)> = objects
        .into_iter()
        .filter_map(|object| Some((ObjectKey::of(&object)?, object)))
        .collect();
    keyed.sort_by(|a, b| sync_order(&a.0).cmp(&sync_order(&b.0)));
    let mut counts = BTreeMap::new();
    for (key, _) in &keyed {
        *counts.entry(kind_label(key)).or_default() += 1;
    }
    unreadable.sort_by(|a, b| {
        (&a.api_version, &a.resource, &a.namespace).cmp(&(
            &b.api_version,
            &b.resource,
            &b.namespace,
        ))
    });
    tracing::debug!(
        objects = keyed.len(),
        namespaces = chosen.len(),
        unreadable = unreadable.len(),
        elapsed_ms = began.elapsed().as_millis() as u64,
        "export finished"
    );
    Ok(ExportedObjects {
        objects: keyed.into_iter().map(|(_, object)| object).collect(),
        counts,
        unreadable,
    })
}

/// `group/Kind`, or `Kind` for the core group.
pub(super) fn kind_label(key: &ObjectKey) -> String {
    if key.group.is_empty() {
        key.kind.clone()
    } else {
        format!("{}/{}", key.group, key.kind)
    }
}

fn stopped(calls: &Calls<'_>) -> Result<(), ExportError> {
    match calls.stopped() {
        Some(message) => Err(ExportError::Unreachable { message }),
        None => Ok(()),
    }
}

/// One apiVersion of one group, and its rank among the group's versions
/// (0: preferred).
struct GroupVersion {
    api_version: String,
    rank: usize,
}

/// Every kind worth exporting that the cluster serves, once each: at the
/// preferred version of its group, or the first version that serves it.
async fn discover_everything(calls: &Calls<'_>, unreadable: &mut Vec<Unreadable>) -> Vec<Resolved> {
    let client = calls.client();
    let mut versions: Vec<GroupVersion> = Vec::new();
    match calls.call(client.list_core_api_versions()).await {
        Ok(core) => {
            versions.extend(
                core.versions
                    .into_iter()
                    .enumerate()
                    .map(|(rank, v)| GroupVersion {
                        api_version: v,
                        rank,
                    }),
            )
        }
        Err(error) => unreadable.push(discovery_failed("v1", &error)),
    }
    match calls.call(client.list_api_groups()).await {
        Ok(groups) => {
            for group in groups.groups {
                let preferred = group.preferred_version.map(|p| p.group_version);
                let mut ordered: Vec<String> = preferred.iter().cloned().collect();
                ordered.extend(
                    group
                        .versions
                        .into_iter()
                        .map(|v| v.group_version)
                        .filter(|v| Some(v) != preferred.as_ref()),
                );
                versions.extend(
                    ordered
                        .into_iter()
                        .enumerate()
                        .map(|(rank, api_version)| GroupVersion { api_version, rank }),
                );
            }
        }
        Err(error) => unreadable.push(discovery_failed("apis", &error)),
    }
    // futures made before the stream: see the sync's `apply_all`
    let lookups: Vec<_> = versions
        .into_iter()
        .map(|version| {
            async move {
                let listed = if version.api_version.contains('/') {
                    calls
                        .call(client.list_api_group_resources(&version.api_version))
                        .await
                } else {
                    calls
                        .call(client.list_core_api_resources(&version.api_version))
                        .await
                };
                (version, listed)
            }
            .boxed()
        })
        .collect();
    let listed: Vec<(GroupVersion, Result<APIResourceList, CallError>)> = stream::iter(lookups)
        .buffer_unordered(calls.concurrency())
        .collect()
        .await;

    // (group, plural) → (rank, kind)
    let mut best: HashMap<(String, String), (usize, Resolved)> = HashMap::new();
    for (version, list) in listed {
        let list = match list {
            Ok(list) => list,
            Err(error) => {
                unreadable.push(discovery_failed(&version.api_version, &error));
                continue;
            }
        };
        let (group, short_version) = match version.api_version.rsplit_once('/') {
            Some((group, short)) => (group.to_owned(), short.to_owned()),
            None => (String::new(), version.api_version.clone()),
        };
        for resource in list.resources {
            let verbs = |verb: &str| resource.verbs.iter().any(|v| v == verb);
            if resource.name.contains('/')
                || !verbs("list")
                || !verbs("create")
                || kind_skipped(&group, &resource.kind)
            {
                continue;
            }
            let resolved = Resolved {
                resource: ApiResource {
                    group: group.clone(),
                    version: short_version.clone(),
                    api_version: version.api_version.clone(),
                    kind: resource.kind,
                    plural: resource.name.clone(),
                },
                namespaced: resource.namespaced,
            };
            let id = (group.clone(), resource.name);
            match best.get(&id) {
                Some((rank, _)) if *rank <= version.rank => {}
                _ => {
                    best.insert(id, (version.rank, resolved));
                }
            }
        }
    }
    let mut served: Vec<Resolved> = best.into_values().map(|(_, kind)| kind).collect();
    served.sort_by(|a, b| {
        (&a.resource.group, &a.resource.plural).cmp(&(&b.resource.group, &b.resource.plural))
    });
    served
}

fn discovery_failed(api_version: &str, error: &CallError) -> Unreadable {
    Unreadable {
        api_version: api_version.to_owned(),
        resource: None,
        namespace: None,
        message: format!("discovery failed: {}", error.message()),
    }
}

/// Lists the kinds in the chosen namespaces: namespace by namespace for a
/// few of them, across all namespaces (keeping the chosen) beyond.
async fn list_namespaced(
    calls: &Calls<'_>,
    kinds: &[&Resolved],
    chosen: &BTreeSet<String>,
    unreadable: &mut Vec<Unreadable>,
) -> Vec<Value> {
    if chosen.is_empty() {
        return Vec::new();
    }
    let scopes: Vec<(&Resolved, Option<&str>)> = if chosen.len() <= NAMESPACED_LISTS {
        kinds
            .iter()
            .flat_map(|kind| chosen.iter().map(move |ns| (*kind, Some(ns.as_str()))))
            .collect()
    } else {
        kinds.iter().map(|kind| (*kind, None)).collect()
    };
    // futures made before the stream: see the sync's `apply_all`
    let lists: Vec<_> = scopes
        .into_iter()
        .map(|(kind, namespace)| {
            async move { (kind, namespace, calls.list_whole(kind, namespace).await) }.boxed()
        })
        .collect();
    let listed: Vec<_> = stream::iter(lists)
        .buffer_unordered(calls.concurrency())
        .collect()
        .await;
    let mut objects = Vec::new();
    for (kind, namespace, result) in listed {
        match result {
            Ok(found) => objects.extend(found.into_iter().filter(|object| {
                object
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .is_some_and(|ns| chosen.contains(ns))
            })),
            Err(error) => unreadable.push(Unreadable {
                api_version: kind.resource.api_version.clone(),
                resource: Some(kind.resource.plural.clone()),
                namespace: namespace.map(str::to_owned),
                message: error.message(),
            }),
        }
    }
    objects
}

/// What exported namespaced objects need from the cluster scope.
#[derive(Debug, Default)]
struct Wants {
    /// `(group, kind)` of every object: those a CRD serves are custom resources.
    kinds: BTreeSet<(String, String)>,
    /// StorageClasses named by claims and claim templates.
    storage_classes: BTreeSet<String>,
    /// ClusterRoles named by RoleBindings.
    cluster_roles: BTreeSet<String>,
    /// `(namespace, name)` of the ServiceAccounts.
    service_accounts: BTreeSet<(String, String)>,
}

impl Wants {
    fn of(objects: &[Value]) -> Self {
        let mut wants = Self::default();
        for object in objects {
            let Some(key) = ObjectKey::of(object) else {
                continue;
            };
            match (key.group.as_str(), key.kind.as_str()) {
                ("", "ServiceAccount") => {
                    if let Some(namespace) = key.namespace {
                        wants.service_accounts.insert((namespace, key.name));
                    }
                }
                ("rbac.authorization.k8s.io", "RoleBinding") => {
                    if object.pointer("/roleRef/kind").and_then(Value::as_str)
                        == Some("ClusterRole")
                        && let Some(role) = role_ref(object)
                    {
                        wants.cluster_roles.insert(role.to_owned());
                    }
                }
                _ => {}
            }
            wants.kinds.insert((key.group, key.kind));
        }
        let (used, _) = super::rewrite::storage_classes(objects);
        wants.storage_classes = used;
        wants
    }
}

fn role_ref(binding: &Value) -> Option<&str> {
    binding.pointer("/roleRef/name").and_then(Value::as_str)
}

/// Whether a ClusterRoleBinding binds one of the ServiceAccounts.
fn binds_any(binding: &Value, service_accounts: &BTreeSet<(String, String)>) -> bool {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|subject| {
            let text = |field: &str| subject.get(field).and_then(Value::as_str);
            text("kind") == Some("ServiceAccount")
                && match (text("namespace"), text("name")) {
                    (Some(ns), Some(name)) => {
                        service_accounts.contains(&(ns.to_owned(), name.to_owned()))
                    }
                    _ => false,
                }
        })
}

/// RBAC objects every cluster makes itself.
fn is_bootstrap(object: &Value) -> bool {
    object
        .pointer("/metadata/labels")
        .and_then(|labels| labels.get(BOOTSTRAPPING_LABEL))
        .is_some()
        || object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .is_some_and(|name| name.starts_with("system:"))
}

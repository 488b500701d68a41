//! Every call a sync makes to the cluster (exports and restores share them):
//! each bounded by the call timeout, and none at all once the cluster has
//! stopped answering, so a dead cluster ends a sync in about one timeout
//! instead of one per object.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use futures::{FutureExt as _, StreamExt as _, stream};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions,
    PropagationPolicy, TypeMeta,
};
use kube::core::ObjectMeta;
use kube::discovery::ApiResource;
use kube::{Client, Resource as _};
use serde_json::{Value, json};

use super::SyncOptions;
use super::manifest::group_of;
use super::object_health::{HealthContext, judged_by_status};
use crate::probe::{chain_message, shorten_to};

/// Longest API server message kept (validation messages list every field).
const MAX_MESSAGE: usize = 1000;
/// Objects per page when listing.
const LIST_PAGE: u32 = 500;
/// Up to this many namespaces, a kind is listed namespace by namespace;
/// beyond, across all namespaces at once.
pub(crate) const NAMESPACED_LISTS: usize = 8;

/// How a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallError {
    /// The API server refused, with its explanation.
    Api {
        /// HTTP status code.
        code: u16,
        /// The Status message.
        message: String,
    },
    /// The cluster does not serve this apiVersion or kind.
    NotServed(String),
    /// No answer: connection refused or reset, or the call timeout passed.
    Unreachable(String),
    /// Not made: an earlier call went unanswered.
    NotAttempted(String),
    /// Anything else (an answer that is not Kubernetes JSON, …).
    Other(String),
}

impl CallError {
    /// The message shown on the object.
    pub(crate) fn message(&self) -> String {
        match self {
            Self::Api { message, .. }
            | Self::NotServed(message)
            | Self::Unreachable(message)
            | Self::Other(message) => message.clone(),
            Self::NotAttempted(reason) => {
                format!("not attempted: the cluster stopped answering ({reason})")
            }
        }
    }

    fn from_kube(error: kube::Error) -> Self {
        match error {
            kube::Error::Api(status) if status.reason == "Failed to parse error data" => {
                // kube makes a Status up when the body is none (a plain-text
                // 404 of an unknown API group, an HTML page): do not echo it
                Self::Api {
                    code: status.code,
                    message: format!("HTTP {} without a Kubernetes Status", status.code),
                }
            }
            kube::Error::Api(status) => Self::Api {
                code: status.code,
                message: if status.message.is_empty() {
                    format!("HTTP {} {}", status.code, status.reason)
                } else {
                    shorten_to(&status.message, MAX_MESSAGE)
                },
            },
            error @ (kube::Error::HyperError(_) | kube::Error::Service(_)) => {
                Self::Unreachable(chain_message(&error))
            }
            other => Self::Other(chain_message(&other)),
        }
    }
}

/// A kind as the cluster serves it.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Whether objects of the kind live in namespaces.
    pub namespaced: bool,
}

/// The kinds one apiVersion serves, by kind.
type ServedKinds = Result<Arc<HashMap<String, Resolved>>, CallError>;

/// A live object as a sync needs it.
#[derive(Debug, Clone)]
pub(crate) struct Live {
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// `metadata.uid`.
    pub uid: String,
    /// The whole object for kinds judged by their status; otherwise
    /// `apiVersion`, `kind` and the identifying part of `metadata`.
    pub object: Value,
}

impl Live {
    /// From an object the API server returned (a list item lacks its type).
    pub(super) fn from_object(mut object: DynamicObject, resource: &ApiResource) -> Self {
        if object.types.is_none() {
            object.types = Some(TypeMeta {
                api_version: resource.api_version.clone(),
                kind: resource.kind.clone(),
            });
        }
        Self {
            resource_version: object.metadata.resource_version.clone().unwrap_or_default(),
            uid: object.metadata.uid.clone().unwrap_or_default(),
            object: serde_json::to_value(&object).unwrap_or_default(),
        }
    }

    fn from_metadata(metadata: ObjectMeta, resource: &ApiResource) -> Self {
        let mut short = json!({
            "name": metadata.name,
            "namespace": metadata.namespace,
            "resourceVersion": metadata.resource_version,
            "uid": metadata.uid,
        });
        if let Some(deleting) = &metadata.deletion_timestamp {
            short["deletionTimestamp"] = serde_json::to_value(deleting).unwrap_or_default();
        }
        Self {
            resource_version: metadata.resource_version.unwrap_or_default(),
            uid: metadata.uid.unwrap_or_default(),
            object: json!({
                "apiVersion": resource.api_version,
                "kind": resource.kind,
                "metadata": short,
            }),
        }
    }
}

/// One list: `(apiVersion, plural, namespace)`; no namespace means cluster-scoped
/// or across all namespaces.
type ListScope = (String, String, Option<String>);
/// Live objects of one list by `(namespace, name)`.
type Listed = HashMap<(Option<String>, String), Live>;

/// What lists of live objects found.
#[derive(Debug, Default)]
pub(crate) struct LiveSet {
    lists: HashMap<ListScope, Result<Listed, CallError>>,
}

impl LiveSet {
    /// The live object, `None` when it does not exist, or why that is not known.
    pub(crate) fn get(
        &self,
        kind: &Resolved,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<&Live>, CallError> {
        let resource = &kind.resource;
        let scope = |namespace: Option<&str>| {
            (
                resource.api_version.clone(),
                resource.plural.clone(),
                namespace.map(str::to_owned),
            )
        };
        let list = self
            .lists
            .get(&scope(namespace))
            .or_else(|| self.lists.get(&scope(None)))
            .ok_or_else(|| CallError::Other(format!("{} were not listed", resource.plural)))?;
        match list {
            Ok(objects) => Ok(objects.get(&(namespace.map(str::to_owned), name.to_owned()))),
            Err(error) => Err(error.clone()),
        }
    }
}

/// The calls of one sync (or one health assessment).
pub(crate) struct Calls<'a> {
    client: &'a Client,
    options: &'a SyncOptions,
    /// Why calls stopped: the first call that went unanswered.
    stopped: Mutex<Option<String>>,
    /// Discovery, by apiVersion.
    served: Mutex<HashMap<String, ServedKinds>>,
}

impl<'a> Calls<'a> {
    pub(crate) fn new(client: &'a Client, options: &'a SyncOptions) -> Self {
        Self {
            client,
            options,
            stopped: Mutex::new(None),
            served: Mutex::new(HashMap::new()),
        }
    }

    /// The options of this sync.
    pub(super) fn options(&self) -> &SyncOptions {
        self.options
    }

    /// Calls in flight at once.
    pub(crate) fn concurrency(&self) -> usize {
        self.options.concurrency.max(1)
    }

    /// Why the cluster is no longer called, if it is not.
    pub(crate) fn stopped(&self) -> Option<String> {
        self.stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes one call, bounded by the call timeout; none once the cluster
    /// stopped answering. A call that goes unanswered stops the others.
    pub(crate) async fn call<T>(
        &self,
        request: impl Future<Output = kube::Result<T>>,
    ) -> Result<T, CallError> {
        if let Some(reason) = self.stopped() {
            return Err(CallError::NotAttempted(reason));
        }
        let timeout = self.options.call_timeout;
        let error = match tokio::time::timeout(timeout, request).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(error)) => CallError::from_kube(error),
            Err(_) => CallError::Unreachable(format!("no answer within {timeout:?}")),
        };
        if let CallError::Unreachable(reason) = &error {
            self.stopped
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(|| reason.clone());
        }
        Err(error)
    }

    /// Learns the kinds of the given apiVersions that are not known yet: one
    /// call per apiVersion, never a discovery of every group.
    pub(crate) async fn discover(&self, api_versions: impl IntoIterator<Item = String>) {
        let missing: BTreeSet<String> = {
            let served = self.served.lock().unwrap_or_else(PoisonError::into_inner);
            api_versions
                .into_iter()
                .filter(|v| !served.contains_key(v))
                .collect()
        };
        // futures made before the stream: see `apply_all`
        let lookups: Vec<_> = missing
            .into_iter()
            .map(|api_version| {
                async move {
                    let kinds = self.served_kinds(&api_version).await;
                    (api_version, kinds)
                }
                .boxed()
            })
            .collect();
        let found: Vec<(String, ServedKinds)> = stream::iter(lookups)
            .buffer_unordered(self.concurrency())
            .collect()
            .await;
        self.served
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(found);
    }

    /// Drops what discovery knows about an apiVersion, so that the next
    /// [`Calls::discover`] asks again.
    pub(super) fn forget(&self, api_version: &str) {
        self.served
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(api_version);
    }

    async fn served_kinds(&self, api_version: &str) -> ServedKinds {
        let list = if api_version.contains('/') {
            self.call(self.client.list_api_group_resources(api_version))
                .await
        } else {
            self.call(self.client.list_core_api_resources(api_version))
                .await
        };
        let list = match list {
            Ok(list) => list,
            Err(CallError::Api { code: 404, .. }) => {
                return Err(CallError::NotServed(format!(
                    "the cluster does not serve {api_version}"
                )));
            }
            Err(error) => return Err(error),
        };
        let group = group_of(api_version);
        let version = api_version.rsplit('/').next().unwrap_or(api_version);
        let mut kinds = HashMap::new();
        for (kind, resolved) in list
            .resources
            .into_iter()
            .filter(|r| !r.name.contains('/'))
            .map(|r| {
                let resolved = Resolved {
                    resource: ApiResource {
                        group: group.to_owned(),
                        version: version.to_owned(),
                        api_version: api_version.to_owned(),
                        kind: r.kind.clone(),
                        plural: r.name,
                    },
                    namespaced: r.namespaced,
                };
                (r.kind, resolved)
            })
        {
            // the first resource of a kind is its main one
            kinds.entry(kind).or_insert(resolved);
        }
        Ok(Arc::new(kinds))
    }

    /// The resource of a kind, from what [`Calls::discover`] learnt.
    pub(crate) fn resolve(&self, api_version: &str, kind: &str) -> Result<Resolved, CallError> {
        let served = self.served.lock().unwrap_or_else(PoisonError::into_inner);
        match served.get(api_version) {
            None => Err(CallError::Other(format!(
                "{api_version} was not discovered"
            ))),
            Some(Err(CallError::Unreachable(why))) => Err(CallError::Unreachable(format!(
                "cannot discover {api_version}: {why}"
            ))),
            Some(Err(CallError::Other(why))) => Err(CallError::Other(format!(
                "cannot discover {api_version}: {why}"
            ))),
            Some(Err(CallError::Api { code, message })) => Err(CallError::Api {
                code: *code,
                message: format!("cannot discover {api_version}: {message}"),
            }),
            Some(Err(error)) => Err(error.clone()),
            Some(Ok(kinds)) => kinds.get(kind).cloned().ok_or_else(|| {
                CallError::NotServed(format!(
                    "the cluster serves no kind {kind} in {api_version}"
                ))
            }),
        }
    }

    fn api(&self, kind: &Resolved, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(namespace) if kind.namespaced => {
                Api::namespaced_with(self.client.clone(), namespace, &kind.resource)
            }
            _ => Api::all_with(self.client.clone(), &kind.resource),
        }
    }

    /// Lists the live objects of the given kinds and namespaces: whole objects
    /// for kinds judged by their status, metadata only for the rest.
    pub(super) async fn read_live<'k>(
        &self,
        wanted: impl IntoIterator<Item = (&'k Resolved, Option<&'k str>)>,
    ) -> LiveSet {
        self.read_lists(wanted, |kind| {
            judged_by_status(&kind.resource.group, &kind.resource.kind)
        })
        .await
    }

    /// Lists the live objects of the given kinds and namespaces, once per kind
    /// and namespace (across all namespaces beyond a few): whole objects for
    /// the kinds `whole` picks, metadata only for the rest.
    pub(crate) async fn read_lists<'k>(
        &self,
        wanted: impl IntoIterator<Item = (&'k Resolved, Option<&'k str>)>,
        whole: impl Fn(&Resolved) -> bool,
    ) -> LiveSet {
        // (apiVersion, plural) → the kind and its namespaces
        let mut kinds: BTreeMap<(&str, &str), (&Resolved, BTreeSet<&str>)> = BTreeMap::new();
        for (kind, namespace) in wanted {
            let entry = kinds
                .entry((&kind.resource.api_version, &kind.resource.plural))
                .or_insert_with(|| (kind, BTreeSet::new()));
            if let (true, Some(namespace)) = (kind.namespaced, namespace) {
                entry.1.insert(namespace);
            }
        }
        let mut scopes: Vec<(&Resolved, Option<&str>, bool)> = Vec::new();
        for (kind, namespaces) in kinds.into_values() {
            let whole = whole(kind);
            if kind.namespaced && !namespaces.is_empty() && namespaces.len() <= NAMESPACED_LISTS {
                scopes.extend(namespaces.into_iter().map(|ns| (kind, Some(ns), whole)));
            } else {
                scopes.push((kind, None, whole));
            }
        }
        // futures made before the stream: see `apply_all`
        let reads: Vec<_> = scopes
            .into_iter()
            .map(|(kind, namespace, whole)| {
                async move {
                    let scope = (
                        kind.resource.api_version.clone(),
                        kind.resource.plural.clone(),
                        namespace.map(str::to_owned),
                    );
                    (scope, self.list(kind, namespace, whole).await)
                }
                .boxed()
            })
            .collect();
        let lists = stream::iter(reads)
            .buffer_unordered(self.concurrency())
            .collect()
            .await;
        LiveSet { lists }
    }

    /// The whole objects of a kind (in one namespace, or all), page by page.
    pub(crate) async fn list_whole(
        &self,
        kind: &Resolved,
        namespace: Option<&str>,
    ) -> Result<Vec<Value>, CallError> {
        let listed = self.list(kind, namespace, true).await?;
        Ok(listed.into_values().map(|live| live.object).collect())
    }

    /// The client the calls are made with.
    pub(crate) fn client(&self) -> &Client {
        self.client
    }

    async fn list(
        &self,
        kind: &Resolved,
        namespace: Option<&str>,
        whole: bool,
    ) -> Result<Listed, CallError> {
        let api = self.api(kind, namespace);
        let resource = &kind.resource;
        let mut params = ListParams::default().limit(LIST_PAGE);
        let mut found = Listed::new();
        let mut add = |live: Live, meta: &ObjectMeta| {
            let id = (
                meta.namespace.clone(),
                meta.name.clone().unwrap_or_default(),
            );
            found.insert(id, live);
        };
        loop {
            let next = if whole {
                let page = self.call(api.list(&params)).await?;
                for item in page.items {
                    let meta = item.meta().clone();
                    add(Live::from_object(item, resource), &meta);
                }
                page.metadata.continue_
            } else {
                let page = self.call(api.list_metadata(&params)).await?;
                for item in page.items {
                    let meta = item.metadata;
                    add(Live::from_metadata(meta.clone(), resource), &meta);
                }
                page.metadata.continue_
            };
            match next {
                Some(token) if !token.is_empty() => params.continue_token = Some(token),
                _ => return Ok(found),
            }
        }
    }

    /// Server-side apply under the configured field manager, forced: fields
    /// another manager set that the manifest also sets are taken over.
    pub(super) async fn apply(
        &self,
        kind: &Resolved,
        namespace: Option<&str>,
        name: &str,
        body: &Value,
    ) -> Result<DynamicObject, CallError> {
        let params = self.apply_params();
        self.call(
            self.api(kind, namespace)
                .patch(name, &params, &Patch::Apply(body)),
        )
        .await
    }

    /// What [`Calls::apply`] would make of the object, without changing
    /// anything: the same apply with `dryRun=All`. The API server runs
    /// defaulting, admission and the merge with other managers' fields, and
    /// stores nothing.
    pub(super) async fn dry_run_apply(
        &self,
        kind: &Resolved,
        namespace: Option<&str>,
        name: &str,
        body: &Value,
    ) -> Result<DynamicObject, CallError> {
        let params = self.apply_params().dry_run();
        self.call(
            self.api(kind, namespace)
                .patch(name, &params, &Patch::Apply(body)),
        )
        .await
    }

    /// How every apply is made, for real or dry.
    fn apply_params(&self) -> PatchParams {
        PatchParams::apply(&self.options.field_manager).force()
    }

    /// Reads one object; `None` when it does not exist.
    pub(super) async fn get(
        &self,
        kind: &Resolved,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<DynamicObject>, CallError> {
        self.call(self.api(kind, namespace).get_opt(name)).await
    }

    /// Deletes one object if its uid is still `uid`, in the background (its
    /// dependents are collected afterwards). Tells whether the object is still
    /// there, held by finalizers.
    pub(super) async fn delete(
        &self,
        kind: &Resolved,
        namespace: Option<&str>,
        name: &str,
        uid: &str,
    ) -> Result<bool, CallError> {
        let params = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_owned()),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        let answer = self
            .call(self.api(kind, namespace).delete(name, &params))
            .await?;
        Ok(answer.is_left())
    }

    /// The StorageClasses that bind on first consumer (none when they cannot
    /// be listed: their claims then count as progressing).
    pub(super) async fn health_context(&self) -> HealthContext {
        let classes = Api::<StorageClass>::all(self.client.clone());
        let listed = self.call(classes.list(&ListParams::default())).await;
        let wait_for_first_consumer = listed
            .map(|list| {
                list.items
                    .into_iter()
                    .filter(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
                    .filter_map(|c| c.metadata.name)
                    .collect()
            })
            .unwrap_or_default();
        HealthContext {
            wait_for_first_consumer,
        }
    }
}

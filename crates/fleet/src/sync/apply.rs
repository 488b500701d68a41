//! [`sync`]: apply in order, then prune, and judge the health of what was applied.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::{FutureExt as _, StreamExt as _, stream};
use kube::Client;
use serde_json::Value;

use super::calls::{CallError, Calls, Live, LiveSet, Resolved};
use super::manifest::{self, Manifest};
use super::object_health::{HealthContext, judged_by_status, object_health};
use super::order::{apply_order, is_foundation, tiers};
use super::resolve::resolve_all;
use super::{
    Health, InventoryEntry, ObjectAction, ObjectKey, ObjectResult, SyncError, SyncOptions,
    SyncOutcome, prune,
};

/// Pause between looks at a CustomResourceDefinition that is not established yet.
const ESTABLISH_POLL: Duration = Duration::from_millis(200);

/// What applying one object did.
struct Applied {
    key: ObjectKey,
    api_version: String,
    action: ObjectAction,
    message: Option<String>,
    /// The inventory entry, unless the apply failed.
    entry: Option<InventoryEntry>,
    /// The object as the cluster has it now, for its health.
    live: Option<Value>,
}

impl Applied {
    fn failed(manifest: &Manifest, message: String) -> Self {
        Self {
            key: manifest.key.clone(),
            api_version: manifest.api_version.clone(),
            action: ObjectAction::Failed,
            message: Some(message),
            entry: None,
            live: None,
        }
    }
}

/// Applies the desired objects to a cluster, prunes what the previous inventory
/// holds that is no longer desired, and returns what happened to each object
/// with the new inventory.
///
/// **Apply.** Server-side apply under [`SyncOptions::field_manager`] with
/// `force`, like Flux's kustomize-controller: a field that the manifest sets is
/// ours, and a value another manager (`kubectl edit`, `kubectl scale`, a
/// script) put there is taken back — that is what makes self-heal work, and
/// Git is the source of truth. Fields the manifest does not set are left to
/// their managers (e.g. an HPA's `replicas`, once the manifest leaves it out).
///
/// **Order.** Namespaces and CustomResourceDefinitions first; each CRD must
/// become `Established` (within [`SyncOptions::establish_timeout`]) and its
/// kinds are then discovered afresh, so custom resources of CRDs in the same
/// sync can be applied. Then the rest in the well-known install order
/// (ServiceAccounts, Secrets, ConfigMaps, … Deployments, … webhooks), kinds it
/// does not know last. Within one kind, up to [`SyncOptions::concurrency`]
/// objects are applied at once.
///
/// **No-change fast path.** The live objects are listed once per kind and
/// namespace (metadata only, except for kinds whose health needs their status).
/// An object whose manifest hash and live `resourceVersion` and `uid` are those
/// of the previous inventory is `Unchanged` without a PATCH: neither the desired
/// nor the live object changed since the last apply. Any other object is
/// applied: `Created` when it did not exist, `Configured` when the apply changed
/// its `resourceVersion`, else `Unchanged`. An object changed in the cluster has
/// a new `resourceVersion`, so self-heal costs nothing until it is needed.
/// Objects whose status churns (workloads under controllers) take the PATCH path
/// more often; it is a no-op for them. For CRDs, the inventory keeps the
/// `resourceVersion` read once they are established (only their status moved).
///
/// **Prune.** Only when [`SyncOptions::prune`] is set and every apply
/// succeeded: objects of `previous` that are no longer desired are deleted in
/// reverse apply order (background propagation, with a `uid` precondition),
/// after a GET: one already gone is `Pruned` with a note; one annotated
/// `pilothouse.dev/prune: disabled`, one recreated by someone else (another
/// `uid`), or one still desired under another apiVersion is `PruneSkipped` and
/// dropped from the inventory — it is no longer ours. When pruning is off or
/// skipped because applies failed, those objects are `PruneSkipped` and stay in
/// the inventory, so a later sync can still prune them. An empty desired set
/// with a non-empty `previous` is refused ([`SyncError::EmptyDesiredSet`])
/// unless [`SyncOptions::allow_empty_prune`].
///
/// **Inventory.** Every object applied (or found unchanged), plus the entries
/// of `previous` for desired objects whose apply failed and for objects not
/// pruned (failed, pruning off or skipped). So nothing applied is ever
/// forgotten.
///
/// **Failures** of single objects (an invalid manifest the API server rejects,
/// a kind the cluster does not serve, no answer within
/// [`SyncOptions::call_timeout`]) are `Failed` results with the API server's
/// message and make `succeeded` false; once a call goes unanswered, no more are
/// made and the remaining objects fail at once. Errors are only for input that
/// cannot be synced at all.
///
/// ```no_run
/// # async fn example(client: kube::Client) -> Result<(), pilothouse_fleet::SyncError> {
/// use pilothouse_fleet::{SyncOptions, sync};
/// let desired = vec![serde_json::json!({
///     "apiVersion": "v1", "kind": "ConfigMap",
///     "metadata": {"name": "settings", "namespace": "default"},
///     "data": {"mode": "fast"},
/// })];
/// let outcome = sync(&client, desired, &[], &SyncOptions::default()).await?;
/// // store outcome.inventory; pass it as `previous` next time
/// # Ok(()) }
/// ```
pub async fn sync(
    client: &Client,
    desired: Vec<Value>,
    previous: &[InventoryEntry],
    options: &SyncOptions,
) -> Result<SyncOutcome, SyncError> {
    let began = Instant::now();
    let mut manifests = manifest::parse_all(desired)?;
    if manifests.is_empty() && !previous.is_empty() && options.prune && !options.allow_empty_prune {
        return Err(SyncError::EmptyDesiredSet {
            inventory: previous.len(),
        });
    }
    let calls = Calls::new(client, options);
    let before: HashMap<&ObjectKey, &InventoryEntry> =
        previous.iter().map(|entry| (&entry.key, entry)).collect();

    manifests.sort_by(|a, b| apply_order(&a.key).cmp(&apply_order(&b.key)));
    let (foundation, rest): (Vec<Manifest>, Vec<Manifest>) = manifests
        .into_iter()
        .partition(|m| is_foundation(&m.key.group, &m.key.kind));
    let mut applied = apply_all(&calls, foundation, &before, &Fresh::default()).await;
    let fresh = wait_established(&calls, &mut applied).await;
    applied.extend(apply_all(&calls, rest, &before, &fresh).await);

    let context = if applied.iter().any(|a| {
        a.key.group.is_empty() && a.key.kind == "PersistentVolumeClaim" && a.live.is_some()
    }) {
        calls.health_context().await
    } else {
        HealthContext::default()
    };
    let failed = applied
        .iter()
        .filter(|a| a.action == ObjectAction::Failed)
        .count();

    // what is no longer desired
    let desired_keys: HashSet<&ObjectKey> = applied.iter().map(|a| &a.key).collect();
    let stale: Vec<&InventoryEntry> = previous
        .iter()
        .filter(|entry| !desired_keys.contains(&entry.key))
        .collect();
    let (pruned, message) = if stale.is_empty() {
        (Vec::new(), None)
    } else if !options.prune {
        let kept = keep(&stale, "pruning is disabled; still in the inventory");
        let note = format!(
            "pruning is disabled: {} objects no longer desired are kept",
            stale.len()
        );
        (kept, Some(note))
    } else if failed > 0 {
        let kept = keep(
            &stale,
            "not pruned because objects failed to apply; still in the inventory",
        );
        (
            kept,
            Some(format!("pruning skipped: {failed} objects failed to apply")),
        )
    } else {
        let ours: HashMap<&str, &ObjectKey> = applied
            .iter()
            .filter_map(|a| a.entry.as_ref())
            .map(|entry| (entry.uid.as_str(), &entry.key))
            .collect();
        (prune::prune(&calls, stale, &ours).await, None)
    };

    let mut inventory: Vec<InventoryEntry> =
        applied.iter().filter_map(|a| a.entry.clone()).collect();
    // a desired object that failed stays in the inventory as it was
    inventory.extend(
        applied
            .iter()
            .filter(|a| a.entry.is_none())
            .filter_map(|a| before.get(&a.key).map(|entry| (*entry).clone())),
    );
    let mut objects: Vec<ObjectResult> = applied
        .into_iter()
        .map(|a| {
            let (health, health_message) = match (&a.action, &a.live) {
                (ObjectAction::Failed, _) | (_, None) => (
                    Health::Unknown,
                    Some("not judged: the apply failed".to_owned()),
                ),
                (_, Some(live)) => object_health(live, &context),
            };
            ObjectResult {
                key: a.key,
                api_version: a.api_version,
                action: a.action,
                message: a.message,
                health: Some(health),
                health_message,
            }
        })
        .collect();
    for (result, kept) in pruned {
        objects.push(result);
        inventory.extend(kept);
    }

    let health = Health::worst(objects.iter().filter_map(|o| o.health));
    let succeeded = objects.iter().all(|o| o.action != ObjectAction::Failed);
    let count = |action: ObjectAction| objects.iter().filter(|o| o.action == action).count();
    tracing::debug!(
        objects = objects.len(),
        created = count(ObjectAction::Created),
        configured = count(ObjectAction::Configured),
        unchanged = count(ObjectAction::Unchanged),
        pruned = count(ObjectAction::Pruned),
        prune_skipped = count(ObjectAction::PruneSkipped),
        failed = count(ObjectAction::Failed),
        %health,
        elapsed_ms = began.elapsed().as_millis() as u64,
        "sync finished"
    );
    Ok(SyncOutcome {
        objects,
        inventory,
        health,
        succeeded,
        message,
    })
}

/// Results for stale objects kept in the inventory.
fn keep(stale: &[&InventoryEntry], why: &str) -> Vec<(ObjectResult, Option<InventoryEntry>)> {
    stale
        .iter()
        .map(|entry| {
            let result = ObjectResult {
                key: entry.key.clone(),
                api_version: entry.api_version.clone(),
                action: ObjectAction::PruneSkipped,
                message: Some(why.to_owned()),
                health: None,
                health_message: None,
            };
            (result, Some((*entry).clone()))
        })
        .collect()
}

/// `(apiVersion, kind)` served by CustomResourceDefinitions this sync
/// established, and until when discovery may take to show them.
#[derive(Debug, Default)]
struct Fresh {
    kinds: HashSet<(String, String)>,
    deadline: Option<Instant>,
}

/// Applies manifests sorted in apply order, one tier of kinds after the other.
async fn apply_all(
    calls: &Calls<'_>,
    manifests: Vec<Manifest>,
    before: &HashMap<&ObjectKey, &InventoryEntry>,
    fresh: &Fresh,
) -> Vec<Applied> {
    if manifests.is_empty() {
        return Vec::new();
    }
    discover(calls, &manifests, fresh).await;
    let mut planned = resolve_all(calls, manifests);
    // dropping the namespace of cluster-scoped objects may move them
    planned.sort_by(|a, b| apply_order(&a.0.key).cmp(&apply_order(&b.0.key)));
    let live = calls
        .read_live(planned.iter().filter_map(|(manifest, kind)| {
            let kind = kind.as_ref().ok()?;
            Some((kind, manifest.key.namespace.as_deref()))
        }))
        .await;
    let mut applied = Vec::with_capacity(planned.len());
    for tier in tiers(planned, |(manifest, _)| &manifest.key) {
        // The futures are made before the stream: a closure inside the
        // stream would make the whole sync future not provably `Send`
        // (rustc issue 110338), so it could not be spawned.
        let calls_made: Vec<_> = tier
            .into_iter()
            .map(|(manifest, kind)| apply_one(calls, manifest, kind, &live, before).boxed())
            .collect();
        let done: Vec<Applied> = stream::iter(calls_made)
            .buffered(calls.concurrency())
            .collect()
            .await;
        applied.extend(done);
    }
    applied
}

/// Discovers the manifests' apiVersions; kinds of CRDs established by this
/// sync are asked for again until discovery shows them or time is up.
async fn discover(calls: &Calls<'_>, manifests: &[Manifest], fresh: &Fresh) {
    calls
        .discover(manifests.iter().map(|m| m.api_version.clone()))
        .await;
    let Some(deadline) = fresh.deadline else {
        return;
    };
    loop {
        let waiting: BTreeSet<String> = manifests
            .iter()
            .filter(|m| {
                fresh
                    .kinds
                    .contains(&(m.api_version.clone(), m.key.kind.clone()))
                    && matches!(
                        calls.resolve(&m.api_version, &m.key.kind),
                        Err(CallError::NotServed(_))
                    )
            })
            .map(|m| m.api_version.clone())
            .collect();
        if waiting.is_empty() || Instant::now() >= deadline || calls.stopped().is_some() {
            return;
        }
        tokio::time::sleep(ESTABLISH_POLL).await;
        for api_version in &waiting {
            calls.forget(api_version);
        }
        calls.discover(waiting).await;
    }
}

async fn apply_one(
    calls: &Calls<'_>,
    manifest: Manifest,
    kind: Result<Resolved, String>,
    live: &LiveSet,
    before: &HashMap<&ObjectKey, &InventoryEntry>,
) -> Applied {
    let kind = match kind {
        Ok(kind) => kind,
        Err(message) => return Applied::failed(&manifest, message),
    };
    let namespace = manifest.key.namespace.as_deref();
    let name = &manifest.key.name;
    let current = match live.get(&kind, namespace, name) {
        Ok(current) => current,
        Err(error) => {
            return Applied::failed(
                &manifest,
                format!("cannot list the live objects: {}", error.message()),
            );
        }
    };
    if !calls.options().force_apply
        && let (Some(last), Some(current)) = (before.get(&manifest.key), current)
        && last.manifest_sha256 == manifest.sha256
        && last.resource_version == current.resource_version
        && last.uid == current.uid
    {
        return Applied {
            key: manifest.key,
            api_version: manifest.api_version,
            action: ObjectAction::Unchanged,
            message: None,
            entry: Some((*last).clone()),
            live: Some(current.object.clone()),
        };
    }
    match calls.apply(&kind, namespace, name, &manifest.body).await {
        Err(error) => Applied::failed(&manifest, error.message()),
        Ok(object) => {
            let after = if judged_by_status(&kind.resource.group, &kind.resource.kind) {
                Live::from_object(object, &kind.resource)
            } else {
                Live::from_object(
                    kube::api::DynamicObject {
                        types: object.types,
                        metadata: object.metadata,
                        data: Value::Null,
                    },
                    &kind.resource,
                )
            };
            let action = match current {
                None => ObjectAction::Created,
                Some(current) if current.resource_version == after.resource_version => {
                    ObjectAction::Unchanged
                }
                Some(_) => ObjectAction::Configured,
            };
            Applied {
                entry: Some(InventoryEntry {
                    key: manifest.key.clone(),
                    api_version: manifest.api_version.clone(),
                    manifest_sha256: manifest.sha256,
                    resource_version: after.resource_version,
                    uid: after.uid,
                }),
                key: manifest.key,
                api_version: manifest.api_version,
                action,
                message: None,
                live: Some(after.object),
            }
        }
    }
}

/// Waits until every CustomResourceDefinition just applied is `Established`
/// (bounded by the establish timeout); returns the kinds they serve.
async fn wait_established(calls: &Calls<'_>, applied: &mut [Applied]) -> Fresh {
    let deadline = Instant::now() + calls.options().establish_timeout;
    let definitions: Vec<&mut Applied> = applied
        .iter_mut()
        .filter(|a| {
            a.key.group == "apiextensions.k8s.io"
                && a.key.kind == "CustomResourceDefinition"
                && a.action != ObjectAction::Failed
        })
        .collect();
    if definitions.is_empty() {
        return Fresh::default();
    }
    let waits: Vec<_> = definitions
        .into_iter()
        .map(|definition| {
            async move {
                if let Some(latest) = await_established(calls, definition, deadline).await {
                    adopt_status_update(definition, latest);
                }
                definition
            }
            .boxed()
        })
        .collect();
    let definitions: Vec<&mut Applied> = stream::iter(waits)
        .buffer_unordered(calls.concurrency())
        .collect()
        .await;
    let mut kinds = HashSet::new();
    for definition in definitions {
        let Some(live) = definition.live.as_ref().filter(|l| is_established(l)) else {
            continue;
        };
        let group = live.pointer("/spec/group").and_then(Value::as_str);
        let kind = live.pointer("/spec/names/kind").and_then(Value::as_str);
        let versions = live.pointer("/spec/versions").and_then(Value::as_array);
        if let (Some(group), Some(kind), Some(versions)) = (group, kind, versions) {
            for version in versions {
                let served = version.get("served").and_then(Value::as_bool) != Some(false);
                if let (true, Some(name)) = (served, version.get("name").and_then(Value::as_str)) {
                    kinds.insert((format!("{group}/{name}"), kind.to_owned()));
                }
            }
        }
    }
    // discovery may still show an older state of these groups
    for (api_version, _) in &kinds {
        calls.forget(api_version);
    }
    Fresh {
        kinds,
        deadline: Some(deadline),
    }
}

/// Takes a later read of an applied object as its live state. When only its
/// status moved since the apply (same generation, labels and annotations: the
/// CRD controller marking it established), the inventory takes the later
/// `resourceVersion`, so that the next sync can skip the object.
fn adopt_status_update(applied: &mut Applied, latest: Value) {
    let unchanged = |pointer: &str| {
        applied.live.as_ref().and_then(|l| l.pointer(pointer)) == latest.pointer(pointer)
    };
    let same = unchanged("/metadata/uid")
        && unchanged("/metadata/generation")
        && unchanged("/metadata/labels")
        && unchanged("/metadata/annotations");
    if let (true, Some(entry), Some(version)) = (
        same,
        applied.entry.as_mut(),
        latest
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str),
    ) {
        entry.resource_version = version.to_owned();
    }
    applied.live = Some(latest);
}

fn is_established(definition: &Value) -> bool {
    definition
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|conditions| {
            conditions.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Established")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// Re-reads a CRD until it is established or time is up; the last version read.
async fn await_established(
    calls: &Calls<'_>,
    definition: &Applied,
    deadline: Instant,
) -> Option<Value> {
    if definition.live.as_ref().is_some_and(is_established) {
        return None;
    }
    let kind = calls
        .resolve(&definition.api_version, &definition.key.kind)
        .ok()?;
    let mut latest = None;
    while Instant::now() < deadline {
        tokio::time::sleep(ESTABLISH_POLL).await;
        match calls.get(&kind, None, &definition.key.name).await {
            Ok(Some(object)) => {
                let object = Live::from_object(object, &kind.resource).object;
                let done = is_established(&object);
                latest = Some(object);
                if done {
                    break;
                }
            }
            Ok(None) | Err(_) if calls.stopped().is_some() => break,
            Ok(None) | Err(_) => {}
        }
    }
    latest
}

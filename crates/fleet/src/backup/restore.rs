//! [`restore`]: exported objects fitted to a target cluster and applied (or
//! dry-run) by the sync engine.

use std::collections::{BTreeSet, HashSet};
use std::time::Instant;

use k8s_openapi::api::storage::v1::StorageClass;
use kube::Client;
use kube::api::{Api, ListParams};
use serde_json::Value;

use super::{
    RestoreAction, RestoreError, RestoreOptions, RestoreReport, RestoreSummary, RestoredObject,
    rewrite,
};
use crate::sync::{
    CallError, Calls, ObjectAction, ObjectKey, Observation, Observed, Resolved, SyncError,
    SyncOptions, check_all, observe, sync, sync_order,
};

/// Restores exported objects into a cluster.
///
/// **Fitting.** First the maps: [`RestoreOptions::namespace_map`] renames
/// namespaces (objects' namespaces, Namespace objects, ServiceAccount
/// subjects of RoleBindings and ClusterRoleBindings),
/// [`RestoreOptions::storage_class_map`] swaps the classes of claims and
/// StatefulSet claim templates; a StorageClass object whose name the map
/// replaces is left out ([`RestoreReport::skipped`]). Values that are not
/// objects, or two objects with one identity, are errors before any call.
///
/// **Preflight.** Every storage class the claims name must exist on the
/// target cluster or be among the objects restored; otherwise
/// [`RestoreError::MissingStorageClasses`] lists them, and nothing is applied.
///
/// **Apply.** By [`sync`](crate::sync()) with no inventory and no pruning:
/// Namespaces, then CustomResourceDefinitions (waited for until established,
/// so that their custom resources follow), then the install order
/// (ServiceAccounts, Secrets, ConfigMaps, StorageClasses, claims, RBAC,
/// Services, workloads, … the rest), server-side apply with force under
/// [`RestoreOptions::field_manager`]: `Created`, `Configured`, or `Unchanged`
/// when the apply did not move the `resourceVersion`.
///
/// **Re-runs converge without writes.** Objects that already exist are first
/// dry-run (as [`observe`](crate::observe()) does); those the apply would not
/// change are `Unchanged` and not sent at all. This matters: the API server
/// rewrites some objects on their first no-op re-apply after creation (a
/// claim that admission gave a finalizer, a Namespace without labels), which
/// would move their `resourceVersion` though nothing visible changed. A
/// restore into an empty cluster makes no dry-runs: one metadata list per
/// kind tells that nothing exists yet.
///
/// **Dry run.** By [`observe`](crate::observe()): the same applies with
/// `dryRun=All`, next to the live objects; nothing changes. `Created` when
/// the object is missing, `Unchanged` when the dry-run returns the live object
/// as it is, `Configured` otherwise. An object in a namespace (or of a custom
/// kind) that only the restore would create cannot be checked by the server:
/// it is `Created` with a note saying so.
///
/// **Failures** of single objects are [`RestoreAction::Failed`] with the API
/// server's message; a cluster that stops answering fails the remaining
/// objects at once (during a dry run, or before anything was applied, it is
/// [`RestoreError::Unreachable`]).
///
/// ```no_run
/// # async fn example(client: kube::Client, objects: Vec<serde_json::Value>)
/// # -> Result<(), pilothouse_fleet::RestoreError> {
/// use pilothouse_fleet::{RestoreOptions, restore};
/// let options = RestoreOptions {
///     storage_class_map: [("managed-premium".to_owned(), "gp2".to_owned())].into(),
///     ..RestoreOptions::default()
/// };
/// let report = restore(&client, objects, &options).await?;
/// println!("{:?}", report.summary);
/// # Ok(()) }
/// ```
pub async fn restore(
    client: &Client,
    mut objects: Vec<Value>,
    options: &RestoreOptions,
) -> Result<RestoreReport, RestoreError> {
    let began = Instant::now();
    let mut skipped_at = rewrite::rewrite(
        &mut objects,
        &options.namespace_map,
        &options.storage_class_map,
    );
    check_all(&objects).map_err(refused)?;
    let mut skipped = Vec::new();
    let objects: Vec<Value> = objects
        .into_iter()
        .enumerate()
        .filter_map(|(index, object)| match skipped_at.remove(&index) {
            Some(skip) => {
                skipped.push(skip);
                None
            }
            None => Some(object),
        })
        .collect();
    let sync_options = SyncOptions {
        field_manager: options.field_manager.clone(),
        concurrency: options.concurrency,
        call_timeout: options.call_timeout,
        establish_timeout: options.establish_timeout,
        prune: false,
        allow_empty_prune: false,
        force_apply: true,
    };
    preflight(client, &objects, &sync_options).await?;

    let restored = if options.dry_run {
        let (observations, _) = observe(client, objects, &[], &[], &sync_options)
            .await
            .map_err(refused)?;
        judge_dry_run(observations)
    } else {
        apply(client, objects, &sync_options).await?
    };

    let mut summary = RestoreSummary::default();
    for object in &restored {
        *match object.action {
            RestoreAction::Created => &mut summary.created,
            RestoreAction::Configured => &mut summary.configured,
            RestoreAction::Unchanged => &mut summary.unchanged,
            RestoreAction::Failed => &mut summary.failed,
        } += 1;
    }
    tracing::debug!(
        dry_run = options.dry_run,
        created = summary.created,
        configured = summary.configured,
        unchanged = summary.unchanged,
        failed = summary.failed,
        skipped = skipped.len(),
        elapsed_ms = began.elapsed().as_millis() as u64,
        "restore finished"
    );
    Ok(RestoreReport {
        dry_run: options.dry_run,
        objects: restored,
        skipped,
        summary,
    })
}

/// Applies the objects that are missing or would change; the others are
/// `Unchanged` without a write.
async fn apply(
    client: &Client,
    mut objects: Vec<Value>,
    options: &SyncOptions,
) -> Result<Vec<RestoredObject>, RestoreError> {
    let present = present(client, &mut objects, options).await?;
    let mut restored = Vec::new();
    if present.iter().any(|there| *there) {
        let mut there = Vec::new();
        let mut missing = Vec::new();
        for (object, exists) in objects.into_iter().zip(present) {
            if exists {
                there.push(object);
            } else {
                missing.push(object);
            }
        }
        let (observations, _) = observe(client, there.clone(), &[], &[], options)
            .await
            .map_err(refused)?;
        let same: HashSet<ObjectKey> = observations
            .into_iter()
            .filter_map(|observation| match observation.state {
                Observed::Fresh {
                    would_be,
                    live: Some(live),
                } if would_be == live => Some(observation.key),
                _ => None,
            })
            .collect();
        objects = missing;
        for object in there {
            match ObjectKey::of(&object).filter(|key| same.contains(key)) {
                Some(key) => restored.push(RestoredObject {
                    key,
                    api_version: text(&object, "/apiVersion").to_owned(),
                    action: RestoreAction::Unchanged,
                    message: None,
                }),
                None => objects.push(object),
            }
        }
    }
    let outcome = sync(client, objects, &[], options).await.map_err(refused)?;
    restored.extend(outcome.objects.into_iter().filter_map(|result| {
        let action = match result.action {
            ObjectAction::Created => RestoreAction::Created,
            ObjectAction::Configured => RestoreAction::Configured,
            ObjectAction::Unchanged => RestoreAction::Unchanged,
            ObjectAction::Failed => RestoreAction::Failed,
            // nothing is pruned without an inventory
            ObjectAction::Pruned | ObjectAction::PruneSkipped => return None,
        };
        Some(RestoredObject {
            key: result.key,
            api_version: result.api_version,
            action,
            message: result.message,
        })
    }));
    restored.sort_by(|a, b| sync_order(&a.key).cmp(&sync_order(&b.key)));
    Ok(restored)
}

fn namespace_of(object: &Value) -> Option<&str> {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
}

fn text<'v>(object: &'v Value, pointer: &str) -> &'v str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Which objects exist on the cluster already (one metadata list per kind and
/// namespace). Cluster-scoped objects lose a namespace they were given, as
/// the sync would drop it.
async fn present(
    client: &Client,
    objects: &mut [Value],
    options: &SyncOptions,
) -> Result<Vec<bool>, RestoreError> {
    let calls = Calls::new(client, options);
    calls
        .discover(objects.iter().map(|o| text(o, "/apiVersion").to_owned()))
        .await;
    let kinds: Vec<Option<Resolved>> = objects
        .iter_mut()
        .map(|object| {
            let kind = calls
                .resolve(text(object, "/apiVersion"), text(object, "/kind"))
                .ok()?;
            if !kind.namespaced
                && let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut)
            {
                metadata.remove("namespace");
            }
            Some(kind)
        })
        .collect();
    let live = calls
        .read_lists(
            kinds
                .iter()
                .zip(objects.iter())
                .filter_map(|(kind, object)| Some((kind.as_ref()?, namespace_of(object)))),
            |_| false,
        )
        .await;
    if let Some(message) = calls.stopped() {
        return Err(RestoreError::Unreachable { message });
    }
    Ok(kinds
        .iter()
        .zip(objects.iter())
        .map(|(kind, object)| {
            kind.as_ref().is_some_and(|kind| {
                matches!(
                    live.get(kind, namespace_of(object), text(object, "/metadata/name")),
                    Ok(Some(_))
                )
            })
        })
        .collect())
}

/// Errors of the sync engine as a restore's.
fn refused(error: SyncError) -> RestoreError {
    match error {
        SyncError::InvalidObject { index, reason } => RestoreError::InvalidObject { index, reason },
        SyncError::DuplicateObject { key } => RestoreError::DuplicateObject { key },
        SyncError::Unreachable { message } => RestoreError::Unreachable { message },
        // a restore has no inventory, so nothing to refuse to prune
        error @ SyncError::EmptyDesiredSet { .. } => RestoreError::InvalidObject {
            index: 0,
            reason: error.to_string(),
        },
    }
}

/// Checks that every storage class the claims name exists on the target
/// cluster or is restored with them.
async fn preflight(
    client: &Client,
    objects: &[Value],
    options: &SyncOptions,
) -> Result<(), RestoreError> {
    let (used, made) = rewrite::storage_classes(objects);
    let wanted: Vec<&String> = used.difference(&made).collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let calls = Calls::new(client, options);
    let classes = Api::<StorageClass>::all(client.clone());
    let listed = calls
        .call(classes.list_metadata(&ListParams::default()))
        .await
        .map_err(|error| match error {
            CallError::Unreachable(message) | CallError::NotAttempted(message) => {
                RestoreError::Unreachable { message }
            }
            other => RestoreError::StorageClassesUnreadable {
                message: other.message(),
            },
        })?;
    let existing: BTreeSet<String> = listed
        .items
        .into_iter()
        .filter_map(|class| class.metadata.name)
        .collect();
    let classes: Vec<String> = wanted
        .into_iter()
        .filter(|class| !existing.contains(*class))
        .cloned()
        .collect();
    if classes.is_empty() {
        Ok(())
    } else {
        Err(RestoreError::MissingStorageClasses { classes })
    }
}

/// A dry run's actions: what each apply would do.
fn judge_dry_run(observations: Vec<Observation>) -> Vec<RestoredObject> {
    let missing = |o: &&Observation| matches!(&o.state, Observed::Fresh { live: None, .. });
    // what only this restore would create
    let new_namespaces: BTreeSet<String> = observations
        .iter()
        .filter(|o| o.key.group.is_empty() && o.key.kind == "Namespace")
        .filter(missing)
        .map(|o| o.key.name.clone())
        .collect();
    let new_kinds: BTreeSet<(String, String)> = observations
        .iter()
        .filter(|o| {
            o.key.group == "apiextensions.k8s.io" && o.key.kind == "CustomResourceDefinition"
        })
        .filter(missing)
        .filter_map(|o| match &o.state {
            Observed::Fresh { would_be, .. } => {
                let text = |p: &str| would_be.pointer(p).and_then(Value::as_str);
                Some((
                    text("/spec/group")?.to_owned(),
                    text("/spec/names/kind")?.to_owned(),
                ))
            }
            _ => None,
        })
        .collect();
    let unchecked = |key: &ObjectKey, message: &str| -> Option<String> {
        if let Some(namespace) = &key.namespace
            && new_namespaces.contains(namespace)
            && message.contains(&format!("namespaces \"{namespace}\" not found"))
        {
            return Some(format!(
                "not checked by the server: namespace {namespace} would be created by this restore"
            ));
        }
        new_kinds
            .contains(&(key.group.clone(), key.kind.clone()))
            .then(|| {
                "not checked by the server: its CustomResourceDefinition would be created by \
                 this restore"
                    .to_owned()
            })
    };
    observations
        .into_iter()
        .map(|observation| {
            let (action, message) = match &observation.state {
                Observed::Fresh { live: None, .. } => (RestoreAction::Created, None),
                Observed::Fresh {
                    would_be,
                    live: Some(live),
                } if would_be == live => (RestoreAction::Unchanged, None),
                Observed::Fresh { .. } => (RestoreAction::Configured, None),
                Observed::Reused => (RestoreAction::Unchanged, None),
                Observed::Failed { message } => match unchecked(&observation.key, message) {
                    Some(note) => (RestoreAction::Created, Some(note)),
                    None => (RestoreAction::Failed, Some(message.clone())),
                },
            };
            RestoredObject {
                key: observation.key,
                api_version: observation.api_version,
                action,
                message,
            }
        })
        .collect()
}

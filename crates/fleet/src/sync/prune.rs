//! Deleting what the previous inventory holds that is no longer desired.

use std::collections::HashMap;

use futures::{FutureExt as _, StreamExt as _, stream};

use super::calls::{CallError, Calls};
use super::order::{apply_order, tiers};
use super::{InventoryEntry, ObjectAction, ObjectKey, ObjectResult, PRUNE_ANNOTATION};

/// Prunes `stale` in reverse apply order. `ours` maps the uids of the objects
/// this sync applied to their keys. Returns each result with the inventory
/// entry to keep (failed prunes stay in the inventory).
pub(super) async fn prune(
    calls: &Calls<'_>,
    mut stale: Vec<&InventoryEntry>,
    ours: &HashMap<&str, &ObjectKey>,
) -> Vec<(ObjectResult, Option<InventoryEntry>)> {
    calls
        .discover(stale.iter().map(|entry| entry.api_version.clone()))
        .await;
    stale.sort_by(|a, b| apply_order(&b.key).cmp(&apply_order(&a.key)));
    let mut results = Vec::with_capacity(stale.len());
    for tier in tiers(stale, |entry| &entry.key) {
        // futures made before the stream: see `apply_all`
        let deletes: Vec<_> = tier
            .into_iter()
            .map(|entry| prune_one(calls, entry, ours).boxed())
            .collect();
        let done: Vec<_> = stream::iter(deletes)
            .buffered(calls.concurrency())
            .collect()
            .await;
        results.extend(done);
    }
    results
}

async fn prune_one(
    calls: &Calls<'_>,
    entry: &InventoryEntry,
    ours: &HashMap<&str, &ObjectKey>,
) -> (ObjectResult, Option<InventoryEntry>) {
    let result = |action: ObjectAction, message: Option<String>| ObjectResult {
        key: entry.key.clone(),
        api_version: entry.api_version.clone(),
        action,
        message,
        health: None,
        health_message: None,
    };
    let pruned = |note: String| (result(ObjectAction::Pruned, Some(note)), None);
    let skipped = |why: String| (result(ObjectAction::PruneSkipped, Some(why)), None);
    let failed = |error: CallError| {
        (
            result(ObjectAction::Failed, Some(error.message())),
            Some(entry.clone()),
        )
    };

    let kind = match calls.resolve(&entry.api_version, &entry.key.kind) {
        Ok(kind) => kind,
        Err(CallError::NotServed(why)) => return pruned(format!("already gone: {why}")),
        Err(error) => return failed(error),
    };
    let namespace = entry.key.namespace.as_deref();
    let name = &entry.key.name;
    let live = match calls.get(&kind, namespace, name).await {
        Ok(Some(live)) => live,
        Ok(None) => return pruned("already gone".to_owned()),
        Err(error) => return failed(error),
    };
    let annotation = live
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(PRUNE_ANNOTATION));
    if annotation.map(String::as_str) == Some("disabled") {
        return skipped(format!(
            "kept: annotated {PRUNE_ANNOTATION}: disabled (no longer in the inventory)"
        ));
    }
    let uid = live.metadata.uid.as_deref().unwrap_or_default();
    if uid != entry.uid {
        return skipped(
            "kept: recreated by someone else since it was applied (no longer in the inventory)"
                .to_owned(),
        );
    }
    if let Some(desired) = ours.get(uid) {
        return skipped(format!(
            "kept: the same object is still desired as {desired}"
        ));
    }
    match calls.delete(&kind, namespace, name, &entry.uid).await {
        Ok(false) => (result(ObjectAction::Pruned, None), None),
        Ok(true) => pruned("deletion started; finalizers still hold the object".to_owned()),
        Err(CallError::Api { code: 404, .. }) => pruned("already gone".to_owned()),
        Err(CallError::Api { code: 409, .. }) => skipped(
            "kept: recreated by someone else since it was applied (no longer in the inventory)"
                .to_owned(),
        ),
        Err(error) => failed(error),
    }
}

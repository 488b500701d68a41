//! Desired objects matched to the kinds the cluster serves: what a sync applies
//! and an observation dry-runs, after discovery.

use serde_json::Value;

use super::calls::{Calls, Resolved};
use super::manifest::Manifest;

/// A manifest with its kind as the cluster serves it, or why it cannot be sent.
pub(super) type Planned = (Manifest, Result<Resolved, String>);

/// Resolves every manifest's kind from what [`Calls::discover`] learnt and fits
/// the manifest to the kind's scope. Keeps the order given; dropping the
/// namespace of a cluster-scoped object may move it in apply order.
pub(super) fn resolve_all(calls: &Calls<'_>, manifests: Vec<Manifest>) -> Vec<Planned> {
    manifests
        .into_iter()
        .map(|mut manifest| {
            let kind = calls
                .resolve(&manifest.api_version, &manifest.key.kind)
                .map_err(|error| error.message())
                .and_then(|kind| scope(&mut manifest, kind));
            (manifest, kind)
        })
        .collect()
}

/// Fits a manifest to its kind's scope: cluster-scoped objects lose a
/// namespace they were given; namespaced ones must have one.
fn scope(manifest: &mut Manifest, kind: Resolved) -> Result<Resolved, String> {
    if kind.namespaced {
        if manifest.key.namespace.is_none() {
            return Err(format!(
                "{} is namespaced but the manifest has no metadata.namespace",
                manifest.key.kind
            ));
        }
    } else if manifest.key.namespace.take().is_some()
        && let Some(metadata) = manifest
            .body
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
    {
        metadata.remove("namespace");
    }
    Ok(kind)
}

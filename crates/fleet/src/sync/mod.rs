//! Sync: applying desired objects to a cluster, pruning what is no longer
//! desired, and judging the health of what was applied.
//!
//! Pure of the store: the caller renders the desired objects and keeps the
//! inventory (what the last sync applied); [`sync`] takes both as values and
//! returns the new inventory with a result per object. [`assess_health`]
//! re-reads an inventory's objects later, until everything is healthy;
//! [`object_health`] is the pure rule both use. [`observe`] makes the same
//! applies as dry-runs, next to the live objects, for drift detection: what a
//! sync would change, without changing anything.
//!
//! All of them share the calls to the cluster (per-call timeouts, a stop once
//! the cluster goes silent, discovery per apiVersion, one list per kind and
//! namespace), the parsing and hashing of manifests and the apply order.

mod apply;
mod assess;
mod calls;
mod manifest;
mod object_health;
mod observe;
mod order;
mod prune;
mod resolve;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use apply::sync;
pub use assess::assess_health;
pub(crate) use calls::{CallError, Calls, NAMESPACED_LISTS, Resolved};
pub(crate) use manifest::check_all;
pub use object_health::{Health, HealthContext, object_health};
pub use observe::{ExtraObservation, Observation, Observed, PreviousObservation, observe};
pub(crate) use order::sync_order;
pub use pilothouse_types::ObjectAction;

/// The annotation that keeps an object from being pruned: with the value
/// `disabled`, an object that is no longer desired is left in the cluster (and
/// dropped from the inventory).
pub const PRUNE_ANNOTATION: &str = "pilothouse.dev/prune";

/// Identity of an object, independent of the API version it is served at: the
/// API group (empty for the core group), not the `apiVersion`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    /// API group: `""` for core, `apps`, `example.com`, …
    pub group: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectKey {
    /// The identity of a manifest or live object: its API group (from
    /// `apiVersion`), kind, namespace and name; `None` when one of
    /// apiVersion, kind and name is missing or empty. An empty namespace is
    /// no namespace.
    pub fn of(object: &serde_json::Value) -> Option<ObjectKey> {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
        };
        Some(ObjectKey {
            group: manifest::group_of(text("/apiVersion")?).to_owned(),
            kind: text("/kind")?.to_owned(),
            namespace: text("/metadata/namespace").map(str::to_owned),
            name: text("/metadata/name")?.to_owned(),
        })
    }
}

impl fmt::Display for ObjectKey {
    /// `apps/Deployment shop/web`, `Namespace shop`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.group.is_empty() {
            write!(f, "{}/", self.group)?;
        }
        write!(f, "{} ", self.kind)?;
        if let Some(namespace) = &self.namespace {
            write!(f, "{namespace}/")?;
        }
        f.write_str(&self.name)
    }
}

/// One object applied by a sync: what the caller stores as the inventory and
/// hands back as `previous` to the next sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryEntry {
    /// The object's identity.
    pub key: ObjectKey,
    /// The `apiVersion` it was applied at (and is read and deleted at).
    pub api_version: String,
    /// SHA-256 (lowercase hex) of the desired manifest's canonical JSON (keys
    /// sorted, no whitespace).
    pub manifest_sha256: String,
    /// `metadata.resourceVersion` after the apply: when the live object still
    /// has it, nobody changed the object since.
    pub resource_version: String,
    /// `metadata.uid`: tells our object from a namesake created by someone else.
    pub uid: String,
}

/// How a sync behaves. [`SyncOptions::default`] is what Pilothouse uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOptions {
    /// Field manager of the server-side applies (`pilothouse`).
    pub field_manager: String,
    /// Calls to the cluster in flight at once within one kind (8).
    pub concurrency: usize,
    /// Time limit of every single call to the cluster (30 s). Once one call
    /// goes unanswered (time-out, refused or reset connection), the sync makes
    /// no further calls: the remaining objects fail at once.
    pub call_timeout: Duration,
    /// How long CustomResourceDefinitions may take to become `Established`,
    /// and their kinds to show up in discovery (60 s).
    pub establish_timeout: Duration,
    /// Delete objects of the previous inventory that are no longer desired (true).
    pub prune: bool,
    /// Allow an empty desired set to prune everything (false: such a sync is
    /// refused with [`SyncError::EmptyDesiredSet`]).
    pub allow_empty_prune: bool,
    /// Apply every object even when neither the manifest nor the live object
    /// changed since the last sync (false: such objects are `Unchanged` without
    /// a PATCH).
    pub force_apply: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            field_manager: "pilothouse".to_owned(),
            concurrency: 8,
            call_timeout: Duration::from_secs(30),
            establish_timeout: Duration::from_secs(60),
            prune: true,
            allow_empty_prune: false,
            force_apply: false,
        }
    }
}

/// The result of a sync for one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectResult {
    /// The object's identity.
    pub key: ObjectKey,
    /// The `apiVersion` it was applied (or pruned) at.
    pub api_version: String,
    /// What happened.
    pub action: ObjectAction,
    /// The API server's message when the action failed; why when a prune was
    /// skipped or had nothing to do.
    pub message: Option<String>,
    /// Health of the applied object (`Unknown` when the apply failed); `None`
    /// for prunes.
    pub health: Option<Health>,
    /// Why the object is not healthy, or a note about its health.
    pub health_message: Option<String>,
}

/// The result of a whole sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncOutcome {
    /// One result per desired object in apply order, then one per object of
    /// the previous inventory that is no longer desired, in prune order.
    pub objects: Vec<ObjectResult>,
    /// The inventory the caller must store and pass as `previous` next time.
    pub inventory: Vec<InventoryEntry>,
    /// The worst health of the objects (`Healthy` when there are none).
    pub health: Health,
    /// Whether no object failed.
    pub succeeded: bool,
    /// A note about the sync as a whole, e.g. why pruning was skipped.
    pub message: Option<String>,
}

/// The health of one inventory object, as [`assess_health`] found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHealth {
    /// The object's identity.
    pub key: ObjectKey,
    /// The `apiVersion` it was read at.
    pub api_version: String,
    /// Its health (`Missing` when it is gone).
    pub health: Health,
    /// Why it is not healthy, or a note about its health.
    pub message: Option<String>,
}

/// Why a sync or a health assessment could not be carried out at all. What
/// happens to single objects (an apply the API server rejects, an unreachable
/// cluster during a sync) is data in [`SyncOutcome`], not an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// The desired set is empty while the previous inventory is not: most
    /// likely a rendering mistake, so nothing is pruned unless
    /// [`SyncOptions::allow_empty_prune`] is set.
    #[error(
        "the desired set is empty but the inventory holds {inventory} objects: refusing to \
         prune them all (allow_empty_prune is off)"
    )]
    EmptyDesiredSet {
        /// Number of objects in the previous inventory.
        inventory: usize,
    },
    /// A desired value is not a Kubernetes object that can be applied (no
    /// `apiVersion`, `kind` or `metadata.name`, …). Nothing was applied.
    #[error("desired object #{index} cannot be applied: {reason}")]
    InvalidObject {
        /// Position of the value in the desired set.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Two desired objects have the same identity. Nothing was applied.
    #[error("{key} is desired twice")]
    DuplicateObject {
        /// The identity both share.
        key: ObjectKey,
    },
    /// The cluster did not answer while its objects' health was assessed or
    /// they were observed.
    #[error("the cluster did not answer: {message}")]
    Unreachable {
        /// What failed (connection error or time-out).
        message: String,
    },
}

/// Compile-time check: the engine's futures can be spawned on a
/// multi-threaded runtime (the controller in `serve` does).
#[cfg(test)]
#[allow(dead_code)]
fn spawnable(
    client: kube::Client,
    inventory: Vec<InventoryEntry>,
    previous: Vec<PreviousObservation>,
) {
    tokio::spawn(async move {
        let options = SyncOptions::default();
        let _ = sync(&client, Vec::new(), &inventory, &options).await;
        let _ = assess_health(&client, &inventory, &options).await;
        let _ = observe(&client, Vec::new(), &inventory, &previous, &options).await;
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_show_group_kind_namespace_and_name() {
        let key = |group: &str, namespace: Option<&str>| ObjectKey {
            group: group.into(),
            kind: "Thing".into(),
            namespace: namespace.map(Into::into),
            name: "t".into(),
        };
        assert_eq!(key("", None).to_string(), "Thing t");
        assert_eq!(
            key("example.com", Some("n")).to_string(),
            "example.com/Thing n/t"
        );
        assert_eq!(
            serde_json::to_value(key("", Some("n"))).unwrap(),
            json!({"group": "", "kind": "Thing", "namespace": "n", "name": "t"})
        );
    }
}

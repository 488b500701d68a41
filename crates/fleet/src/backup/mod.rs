//! Backup and restore, the cluster side: [`export`] reads the live objects of
//! chosen namespaces (and the cluster-scoped objects they need), cleaned for
//! re-creation; [`restore`] fits such objects to a target cluster (namespace
//! and storage class maps), checks that the storage classes they use exist
//! there, and applies them in dependency order with the sync engine, or
//! dry-runs them with the observation of drift detection.
//!
//! Values in, values out: the archive, its format and checksums, and the maps
//! a cloud profile suggests belong to the caller.

mod clean;
mod export;
mod restore;
mod rewrite;
mod select;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use export::export;
pub use restore::restore;
pub use select::{NotInArchive, only_namespaces, volume_claims};

use crate::sync::ObjectKey;

/// What [`export`] reads. [`ExportOptions::default`]: every namespace but the
/// cluster's own, no Secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// The namespaces to export; `None`: every namespace except `kube-system`,
    /// `kube-public` and `kube-node-lease`. A namespace named here that does
    /// not exist is [`ExportError::NoSuchNamespace`].
    pub namespaces: Option<Vec<String>>,
    /// Export Secrets too (false: Secrets are not read at all).
    pub include_secrets: bool,
    /// Calls to the cluster in flight at once (8).
    pub concurrency: usize,
    /// Time limit of every single call to the cluster (30 s).
    pub call_timeout: Duration,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            namespaces: None,
            include_secrets: false,
            concurrency: 8,
            call_timeout: Duration::from_secs(30),
        }
    }
}

/// What [`export`] found. Its `Debug` output shows counts, never the objects
/// (they may be Secrets).
#[derive(Clone, PartialEq)]
pub struct ExportedObjects {
    /// The cleaned objects, in the order a restore applies them.
    pub objects: Vec<Value>,
    /// How many objects of each kind, by `group/Kind` (`Kind` for the core
    /// group), e.g. `apps/Deployment`, `ConfigMap`.
    pub counts: BTreeMap<String, usize>,
    /// What could not be read (forbidden, an aggregated API that is down): the
    /// export is complete except for these.
    pub unreadable: Vec<Unreadable>,
}

impl fmt::Debug for ExportedObjects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportedObjects")
            .field("objects", &self.objects.len())
            .field("counts", &self.counts)
            .field("unreadable", &self.unreadable)
            .finish()
    }
}

/// A part of the cluster [`export`] could not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    /// The apiVersion (`v1`, `apps/v1`, `metrics.k8s.io/v1beta1`).
    pub api_version: String,
    /// The resource (plural) that could not be listed; `None` when the
    /// apiVersion's discovery failed.
    pub resource: Option<String>,
    /// The namespace of the list, if it was one namespace.
    pub namespace: Option<String>,
    /// The API server's message, or why there was none.
    pub message: String,
}

/// Why [`export`] could not export.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// A call went unanswered (time-out, refused or reset connection): the
    /// export would be incomplete, so there is none.
    #[error("the cluster stopped answering: {message}")]
    Unreachable {
        /// What failed.
        message: String,
    },
    /// A namespace to export does not exist.
    #[error("namespace {namespace} does not exist")]
    NoSuchNamespace {
        /// The namespace.
        namespace: String,
    },
    /// The Namespaces could not be listed, so what to export is unknown.
    #[error("cannot list the namespaces: {message}")]
    NamespacesUnreadable {
        /// The API server's message.
        message: String,
    },
}

/// How [`restore`] restores. [`RestoreOptions::default`]: no maps, for real,
/// as `pilothouse-restore`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreOptions {
    /// Namespaces renamed, old → new: objects' namespaces, Namespace objects'
    /// names, and the namespaces of ServiceAccount subjects of (Cluster)RoleBindings.
    pub namespace_map: BTreeMap<String, String>,
    /// Storage classes replaced, old → new: claims' `storageClassName` (and the
    /// beta annotation), StatefulSet claim templates'. A StorageClass object
    /// of the backup whose name is replaced is not restored.
    pub storage_class_map: BTreeMap<String, String>,
    /// Change nothing: server-side dry-run (`dryRun=All`) of every apply, and
    /// a report of what would be created or changed.
    pub dry_run: bool,
    /// Field manager of the server-side applies (`pilothouse-restore`).
    pub field_manager: String,
    /// Time limit of every single call to the cluster (30 s).
    pub call_timeout: Duration,
    /// Calls to the cluster in flight at once (8).
    pub concurrency: usize,
    /// How long restored CustomResourceDefinitions may take to become
    /// established (60 s).
    pub establish_timeout: Duration,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        Self {
            namespace_map: BTreeMap::new(),
            storage_class_map: BTreeMap::new(),
            dry_run: false,
            field_manager: "pilothouse-restore".to_owned(),
            call_timeout: Duration::from_secs(30),
            concurrency: 8,
            establish_timeout: Duration::from_secs(60),
        }
    }
}

/// What a restore did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreAction {
    /// It did not exist and was created (in a dry run: would be).
    Created,
    /// It existed and the apply changed it (in a dry run: would).
    Configured,
    /// It existed and the apply changed nothing: same `resourceVersion`.
    Unchanged,
    /// The API server refused it, or the call failed.
    Failed,
}

/// The result of a restore for one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredObject {
    /// The object's identity after the maps.
    pub key: ObjectKey,
    /// The `apiVersion` it was applied at.
    pub api_version: String,
    /// What happened.
    pub action: RestoreAction,
    /// The API server's message when it failed; a note otherwise (e.g. a dry
    /// run that the server could not check because the object's namespace
    /// would only be created by the restore).
    pub message: Option<String>,
}

/// An object of the backup a restore left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedObject {
    /// The object's identity.
    pub key: ObjectKey,
    /// Why it was left out.
    pub reason: String,
}

/// Counts of a restore's actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSummary {
    /// Objects created.
    pub created: usize,
    /// Objects changed.
    pub configured: usize,
    /// Objects left as they were.
    pub unchanged: usize,
    /// Objects that failed.
    pub failed: usize,
}

/// The result of a whole restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreReport {
    /// Whether it was a dry run (nothing changed).
    pub dry_run: bool,
    /// One result per restored object, in apply order.
    pub objects: Vec<RestoredObject>,
    /// Objects of the backup left out.
    pub skipped: Vec<SkippedObject>,
    /// The counts of `objects`' actions.
    pub summary: RestoreSummary,
}

impl RestoreReport {
    /// Whether no object failed.
    pub fn succeeded(&self) -> bool {
        self.summary.failed == 0
    }
}

/// Why [`restore`] restored nothing at all. What happens to single objects is
/// data in [`RestoreReport`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// A value is not a Kubernetes object that can be applied.
    #[error("object #{index} cannot be restored: {reason}")]
    InvalidObject {
        /// Position of the value in the objects given.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Two objects have the same identity (after the namespace map).
    #[error("{key} is restored twice")]
    DuplicateObject {
        /// The identity both share.
        key: ObjectKey,
    },
    /// Storage classes the objects use exist neither on the target cluster
    /// nor among the objects restored.
    #[error(
        "storage classes missing on the target cluster: {} (map them to existing classes)",
        classes.join(", ")
    )]
    MissingStorageClasses {
        /// The missing classes, sorted.
        classes: Vec<String>,
    },
    /// The target cluster's StorageClasses could not be listed.
    #[error("cannot list the storage classes of the target cluster: {message}")]
    StorageClassesUnreadable {
        /// The API server's message.
        message: String,
    },
    /// The cluster did not answer before anything was applied, or during a dry run.
    #[error("the cluster did not answer: {message}")]
    Unreachable {
        /// What failed.
        message: String,
    },
}

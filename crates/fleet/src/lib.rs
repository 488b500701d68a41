//! Talking to clusters: the only Pilothouse crate that does.
//!
//! It owns everything between a kubeconfig and a live Kubernetes API server:
//! - [`validate_kubeconfig`]: uploaded kubeconfigs are untrusted input. They are
//!   read as data (never through kube's file-following loader), refused when
//!   they name files on the server, use exec plugins off the allow-list or
//!   legacy auth providers, and cut down to the one context they register;
//! - [`client_for`]: kube clients built from validated kubeconfigs, with timeouts;
//! - [`probe`]: a bounded connectivity check (server version, an authenticated
//!   list, node provider IDs);
//! - [`detect_cloud`]: which cloud a cluster runs on — pure;
//! - [`sync`]: server-side apply of desired objects in dependency order
//!   (Namespaces and CRDs first, CRDs waited for until established), a fast
//!   no-change path from the previous inventory, pruning of what is no longer
//!   desired, and the health of what was applied; [`assess_health`] re-reads an
//!   inventory's health later, [`object_health`] is the pure rule. Values in,
//!   values out: the caller renders the desired objects and stores the
//!   inventory;
//! - [`observe`]: the live side of drift detection. For each desired object, a
//!   dry-run of the apply [`sync`] would make (what the object would become)
//!   next to the live object; for inventory objects no longer desired, whether
//!   they are still there; unchanged objects reused from the previous
//!   observation. It changes nothing on the cluster and compares nothing: the
//!   `drift` crate does, purely;
//! - [`export`] and [`restore`]: the cluster side of backup, restore and
//!   migration. [`export`] reads chosen namespaces' live objects and the
//!   cluster-scoped objects they need, cleaned for re-creation; [`restore`]
//!   renames namespaces and storage classes, checks that the storage classes
//!   exist on the target, and applies through [`sync`] in dependency order
//!   (or dry-runs through [`observe`]). The archive is the caller's;
//! - [`watch`]: watches of Pods, Nodes and Warning Events on
//!   `kube::runtime::watcher` (which lists, resumes from the last
//!   resourceVersion and relists on 410 Gone), reporting lists, reachability
//!   and refusals; [`container_logs`] / [`pod_events`] for what an incident
//!   captures.
//!
//! It must not: read or write the store or keep state (the binary opens the
//! stored credentials, runs the checks and records them), serve HTTP (only
//! `api` does), or let a secret (token, key,
//! certificate, exec plugin output) reach an error message, a log line or a
//! `Debug` output.

mod backup;
mod checks;
mod cloud;
mod kubeconfig;
mod probe;
mod sync;
mod watch;
mod yaml;

pub use backup::{
    ExportError, ExportOptions, ExportedObjects, NotInArchive, RestoreAction, RestoreError,
    RestoreOptions, RestoreReport, RestoreSummary, RestoredObject, SkippedObject, Unreadable,
    export, only_namespaces, restore, volume_claims,
};
pub use checks::CheckSettings;
pub use cloud::detect_cloud;
pub use kubeconfig::{
    ALLOWED_EXEC_ENV, DEFAULT_EXEC_COMMANDS, DEFAULT_EXEC_SERVER_PATTERNS, ExecServerPattern,
    KubeconfigError, KubeconfigPolicy, MAX_KUBECONFIG_BYTES, ValidatedKubeconfig,
    validate_kubeconfig,
};
pub use probe::{Probe, ProbeError, client_for, probe, watch_client_for};
pub use sync::{
    ExtraObservation, Health, HealthContext, InventoryEntry, ObjectAction, ObjectHealth, ObjectKey,
    ObjectResult, Observation, Observed, PRUNE_ANNOTATION, PreviousObservation, SyncError,
    SyncOptions, SyncOutcome, assess_health, object_health, observe, sync,
};
pub use watch::{
    LogRequest, UNREACHABLE_AFTER, WatchEvent, WatchOptions, WatchedKind, container_logs,
    event_summary, name_of, pod_events, watch,
};

//! Pod and node incidents: the kwatch-like core of Pilothouse.
//!
//! This crate owns detecting trouble in one cluster's Pods and Nodes and
//! grouping it into incidents:
//! - a [`Detector`] is fed Pod and Node objects (the JSON the Kubernetes
//!   API returns, from watch events or lists) and reports [`Observation`]s:
//!   [`Finding`]s — a container crash-looping, not pulling its image,
//!   OOM-killed, exiting non-zero or restarting; a pod unschedulable past a
//!   threshold, evicted or failed; a node not ready or under pressure — and
//!   [`Healthy`] signals when a workload or node is fine again;
//! - [`workload_of`] names the [`Workload`] that owns a pod (a Deployment
//!   rather than its ReplicaSet, a CronJob rather than its Job);
//! - an [`IncidentBook`] groups findings by [`IncidentKey`] (namespace,
//!   workload, container, [`Reason`]) into [`Incident`]s, resolves them after
//!   a hold-down of health, reopens them on relapse, marks them unknown
//!   while the cluster is unreachable, and reports every [`Change`];
//! - a [`Dispatcher`] decides who is notified of incidents and when, after
//!   Alertmanager's model: it takes incidents as [`Alert`]s (with
//!   [`AlertLabels`] that [`Matcher`]s select), routes them by
//!   [`RouteSpec`]s into groups, mutes those a [`SilenceSpec`] matches,
//!   and at each [`Dispatcher::due`] returns a [`Flush`]: the
//!   [`Notification`]s to send and the [`GroupState`]s to persist, from
//!   which it can be restored without sending anything twice.
//!
//! The crate is pure: values in, values out. It must not do I/O, talk to a
//! cluster, read a clock or the environment, or log; the caller passes the
//! time (`now_ms`, milliseconds since the Unix epoch), watches the cluster,
//! persists the changes and flushes, and sends the notifications. Incident
//! keys carry no cluster: the caller keeps one detector and one book per
//! cluster, and one dispatcher for the fleet (alert labels name the
//! cluster).
//!
//! ```no_run
//! use pilothouse_incidents::{ChangeKind, DetectConfig, Detector, IncidentBook};
//! # let (pod, now_ms) = (serde_json::Value::Null, 0);
//! let mut detector = Detector::new(DetectConfig::default());
//! let mut book = IncidentBook::default();
//! for observation in detector.pod(&pod, now_ms) {
//!     if let Some(change) = book.observe(&observation) {
//!         println!("{:?} {}", change.kind, change.incident.key.reason);
//!     }
//! }
//! for observation in detector.tick(now_ms) {
//!     book.observe(&observation);
//! }
//! for change in book.tick(now_ms) {
//!     assert_eq!(change.kind, ChangeKind::Resolved);
//! }
//! ```

mod book;
mod config;
mod detect;
mod error;
mod notify;
mod reason;
mod time;
mod workload;

use serde::{Deserialize, Serialize};

pub use crate::book::{
    Change, ChangeKind, DEFAULT_HOLD_DOWN_MS, Incident, IncidentBook, IncidentStatus, MAX_NAMES,
};
pub use crate::config::{DEFAULT_PENDING_THRESHOLD_MS, DetectConfig, NamePattern};
pub use crate::detect::{Detector, Finding, Healthy, Observation};
pub use crate::error::IncidentsError;
pub use crate::notify::{
    Alert, AlertLabels, DEFAULT_GROUP_INTERVAL_MS, DEFAULT_GROUP_WAIT_MS,
    DEFAULT_REPEAT_INTERVAL_MS, Dispatcher, Flush, GroupAlert, GroupState, Label, MatchOp, Matcher,
    Notification, RouteSpec, SilenceSpec, parse_group_by, parse_matchers, parse_route,
};
pub use crate::reason::{Reason, Severity};
pub use crate::workload::{Workload, workload_of};

/// What an incident is about, within one cluster (the caller adds the
/// cluster). Findings with equal keys are one incident.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IncidentKey {
    /// The namespace; `None` for node incidents.
    pub namespace: Option<String>,
    /// The owning workload (see [`workload_of`]), or `Node`/name.
    pub workload: Workload,
    /// The container; `None` for pod-level and node incidents.
    pub container: Option<String>,
    /// Why.
    pub reason: Reason,
}

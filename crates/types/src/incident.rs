//! Incidents as every crate sees them: where one stands, how bad it is,
//! and its whole state as the detector's book holds it and the store keeps
//! it (the one projection the API, the notifier and the monitor read).

use std::collections::BTreeSet;

use crate::text_enum;

text_enum! {
    /// Where an incident is.
    pub enum IncidentStatus ("incident status") {
        /// Still failing, or not healthy for long enough yet.
        Open = "open",
        /// Healthy again for the hold-down time.
        Resolved = "resolved",
        /// Its cluster is unreachable: neither open nor resolved can be told.
        Unknown = "unknown",
    }
}

text_enum! {
    /// How bad an incident is.
    pub enum Severity ("severity") {
        /// Degraded (restarts, OOM kills, pressure).
        Warning = "warning",
        /// The workload cannot run, or a node is down.
        Critical = "critical",
    }
}

/// An incident group's state: what is written after each change (the whole
/// group as the detector's book holds it) and what is read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IncidentWrite {
    /// The cluster's name.
    pub cluster: String,
    /// Namespace; `None` for node incidents.
    pub namespace: Option<String>,
    /// Kind of the owning workload (`Deployment`, `Node`, …).
    pub workload_kind: String,
    /// Name of the owning workload.
    pub workload_name: String,
    /// The container, when the incident is about one.
    pub container: Option<String>,
    /// The reason (`CrashLoopBackOff`, `OOMKilled`, …).
    pub reason: String,
    /// How bad it is.
    pub severity: Severity,
    /// Where it is.
    pub status: IncidentStatus,
    /// Occurrences so far.
    pub count: u64,
    /// Times it came back after being resolved.
    pub reopen_count: u32,
    /// First occurrence (unix ms).
    pub first_seen_at: i64,
    /// Latest occurrence (unix ms).
    pub last_seen_at: i64,
    /// When it was resolved (unix ms).
    pub resolved_at: Option<i64>,
    /// The last non-zero exit code.
    pub last_exit_code: Option<i32>,
    /// The last message (from the container state or the condition).
    pub message: Option<String>,
    /// The container image.
    pub image: Option<String>,
    /// Affected pods.
    pub pods: BTreeSet<String>,
    /// Affected nodes.
    pub nodes: BTreeSet<String>,
    /// The Git revision last synced to the cluster; kept from the first write.
    pub revision: Option<String>,
}

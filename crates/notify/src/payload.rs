//! What a notification says: a stable, versioned JSON document.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The version of the [`Payload`] JSON this crate writes. A change that
/// removes or renames a field, or changes a field's meaning, bumps it;
/// adding a field does not.
pub const PAYLOAD_VERSION: u32 = 1;

/// Most incidents one notification lists; [`Payload::new`] leaves out the
/// rest and counts them in [`Payload::truncated`].
pub const MAX_INCIDENTS: usize = 50;

/// One notification about a group of incidents: the body of a generic
/// webhook, and what an outbox stores until it is delivered.
///
/// The JSON form (version 1), field by field:
///
/// | field | type | meaning |
/// |---|---|---|
/// | `version` | number | always `1` |
/// | `status` | `"firing"` \| `"resolved"` | `firing` while any incident of the group is not resolved |
/// | `receiver` | string | the receiver's name |
/// | `group_key` | string | identifies the group (stable across notifications) |
/// | `group_labels` | object of strings | the labels the incidents are grouped by |
/// | `repeat` | bool | a reminder: nothing changed since the last notification |
/// | `incidents` | array | at most [`MAX_INCIDENTS`] [`IncidentSummary`]s, unresolved first, then newest first |
/// | `truncated` | number | incidents of the group left out of `incidents` |
///
/// ```json
/// {"version": 1, "status": "firing", "receiver": "ops", "group_key": "cluster=aks,reason=OOMKilled",
///  "group_labels": {"cluster": "aks", "reason": "OOMKilled"}, "repeat": false,
///  "incidents": [{"id": 7, "status": "open", "cluster": "aks", "namespace": "shop",
///                 "workload_kind": "Deployment", "workload": "cart", "container": "app",
///                 "reason": "OOMKilled", "severity": "warning", "count": 3, "reopen_count": 0,
///                 "first_seen_at": 1700000000000, "last_seen_at": 1700000600000,
///                 "resolved_at": null, "exit_code": 137, "message": null, "image": "cart:1.2",
///                 "revision": "3f2a…", "pods": ["cart-6d9f-x2"], "nodes": ["node-1"]}],
///  "truncated": 0}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The payload format's version, [`PAYLOAD_VERSION`].
    pub version: u32,
    /// Firing while any incident of the group is not resolved.
    pub status: NotificationStatus,
    /// The receiver's name.
    pub receiver: String,
    /// Identifies the group the incidents belong to.
    pub group_key: String,
    /// The labels the incidents are grouped by, with their values.
    pub group_labels: BTreeMap<String, String>,
    /// A reminder: the group is unchanged since the last notification.
    pub repeat: bool,
    /// The incidents, unresolved first, then newest first; at most
    /// [`MAX_INCIDENTS`].
    pub incidents: Vec<IncidentSummary>,
    /// How many incidents of the group were left out of `incidents`.
    pub truncated: usize,
}

/// Whether a notification announces trouble or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationStatus {
    /// At least one incident is open (or unknown).
    Firing,
    /// Every incident is resolved.
    Resolved,
}

/// Where an incident stands (the shared type).
pub use pilothouse_types::IncidentStatus;
use pilothouse_types::IncidentWrite;

/// One incident as a notification shows it. Times are unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentSummary {
    /// The incident's id.
    pub id: i64,
    /// Where it stands.
    pub status: IncidentStatus,
    /// The cluster's name.
    pub cluster: String,
    /// The namespace; `None` for node incidents.
    pub namespace: Option<String>,
    /// Kind of the workload (`Deployment`, `Node`, …).
    pub workload_kind: String,
    /// Name of the workload.
    pub workload: String,
    /// The container, when the incident is about one.
    pub container: Option<String>,
    /// Why (`CrashLoopBackOff`, `OOMKilled`, …).
    pub reason: String,
    /// How bad: `warning` or `critical`.
    pub severity: String,
    /// Occurrences so far.
    pub count: u64,
    /// Times it came back after being resolved.
    pub reopen_count: u32,
    /// First occurrence.
    pub first_seen_at: i64,
    /// Latest occurrence.
    pub last_seen_at: i64,
    /// When it was resolved, if it is.
    pub resolved_at: Option<i64>,
    /// The last non-zero exit code.
    pub exit_code: Option<i32>,
    /// The last message from the container state or condition.
    pub message: Option<String>,
    /// The container image.
    pub image: Option<String>,
    /// The Git revision synced to the cluster when it started.
    pub revision: Option<String>,
    /// Affected pods.
    pub pods: Vec<String>,
    /// Affected nodes.
    pub nodes: Vec<String>,
}

impl IncidentSummary {
    /// Incident `id` as a notification shows it.
    pub fn of(id: i64, incident: &IncidentWrite) -> IncidentSummary {
        IncidentSummary {
            id,
            status: incident.status,
            cluster: incident.cluster.clone(),
            namespace: incident.namespace.clone(),
            workload_kind: incident.workload_kind.clone(),
            workload: incident.workload_name.clone(),
            container: incident.container.clone(),
            reason: incident.reason.clone(),
            severity: incident.severity.as_str().to_owned(),
            count: incident.count,
            reopen_count: incident.reopen_count,
            first_seen_at: incident.first_seen_at,
            last_seen_at: incident.last_seen_at,
            resolved_at: incident.resolved_at,
            exit_code: incident.last_exit_code,
            message: incident.message.clone(),
            image: incident.image.clone(),
            revision: incident.revision.clone(),
            pods: incident.pods.iter().cloned().collect(),
            nodes: incident.nodes.iter().cloned().collect(),
        }
    }
}

impl Payload {
    /// A version-1 payload for a group's incidents: the status is firing if
    /// any incident is not resolved; incidents are ordered unresolved first,
    /// then by latest occurrence (newest first), then by id, and cut to
    /// [`MAX_INCIDENTS`], the rest counted in `truncated`.
    pub fn new(
        receiver: impl Into<String>,
        group_key: impl Into<String>,
        group_labels: BTreeMap<String, String>,
        repeat: bool,
        mut incidents: Vec<IncidentSummary>,
    ) -> Payload {
        let firing = incidents
            .iter()
            .any(|i| i.status != IncidentStatus::Resolved);
        incidents.sort_by_key(|i| {
            (
                i.status == IncidentStatus::Resolved,
                Reverse(i.last_seen_at),
                i.id,
            )
        });
        let truncated = incidents.len().saturating_sub(MAX_INCIDENTS);
        incidents.truncate(MAX_INCIDENTS);
        Payload {
            version: PAYLOAD_VERSION,
            status: if firing {
                NotificationStatus::Firing
            } else {
                NotificationStatus::Resolved
            },
            receiver: receiver.into(),
            group_key: group_key.into(),
            group_labels,
            repeat,
            incidents,
            truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incident(id: i64, status: IncidentStatus, last_seen_at: i64) -> IncidentSummary {
        IncidentSummary {
            id,
            status,
            cluster: "aks".into(),
            namespace: Some("shop".into()),
            workload_kind: "Deployment".into(),
            workload: "cart".into(),
            container: None,
            reason: "OOMKilled".into(),
            severity: "warning".into(),
            count: 1,
            reopen_count: 0,
            first_seen_at: 0,
            last_seen_at,
            resolved_at: None,
            exit_code: None,
            message: None,
            image: None,
            revision: None,
            pods: vec![],
            nodes: vec![],
        }
    }

    fn check(incidents: &[(i64, IncidentStatus, i64)], status: NotificationStatus, order: &[i64]) {
        let incidents = incidents
            .iter()
            .map(|&(id, s, t)| incident(id, s, t))
            .collect();
        let payload = Payload::new("ops", "g", BTreeMap::new(), false, incidents);
        assert_eq!(payload.status, status);
        let ids: Vec<i64> = payload.incidents.iter().map(|i| i.id).collect();
        assert_eq!(ids, order);
        assert_eq!(payload.truncated, 0);
        assert_eq!(payload.version, PAYLOAD_VERSION);
    }

    #[test]
    fn status_and_order() {
        use IncidentStatus::*;
        use NotificationStatus as N;
        check(&[], N::Resolved, &[]);
        check(&[(1, Resolved, 5), (2, Resolved, 9)], N::Resolved, &[2, 1]);
        check(&[(1, Resolved, 9), (2, Open, 5)], N::Firing, &[2, 1]);
        check(&[(1, Resolved, 9), (2, Unknown, 5)], N::Firing, &[2, 1]);
        check(
            &[(3, Open, 5), (1, Open, 5), (2, Unknown, 7)],
            N::Firing,
            &[2, 1, 3],
        );
    }

    #[test]
    fn new_caps_incidents_and_counts_the_rest() {
        let incidents = (0..MAX_INCIDENTS as i64 + 7)
            .map(|id| {
                let status = if id % 2 == 0 {
                    IncidentStatus::Resolved
                } else {
                    IncidentStatus::Open
                };
                incident(id, status, id)
            })
            .collect();
        let payload = Payload::new("ops", "g", BTreeMap::new(), true, incidents);
        assert_eq!(payload.incidents.len(), MAX_INCIDENTS);
        assert_eq!(payload.truncated, 7);
        // every open incident (28 of them) made it in, newest first
        assert!(
            payload.incidents[..28]
                .iter()
                .all(|i| i.status == IncidentStatus::Open)
        );
        assert_eq!(payload.incidents[0].id, 55);
    }

    #[test]
    fn json_form_is_stable() {
        let mut labels = BTreeMap::new();
        labels.insert("cluster".to_owned(), "aks".to_owned());
        let payload = Payload::new(
            "ops",
            "cluster=aks",
            labels,
            false,
            vec![incident(7, IncidentStatus::Open, 10)],
        );
        let json = serde_json::to_value(&payload).expect("serializes");
        let expected = serde_json::json!({
            "version": 1,
            "status": "firing",
            "receiver": "ops",
            "group_key": "cluster=aks",
            "group_labels": {"cluster": "aks"},
            "repeat": false,
            "incidents": [{
                "id": 7, "status": "open", "cluster": "aks", "namespace": "shop",
                "workload_kind": "Deployment", "workload": "cart", "container": null,
                "reason": "OOMKilled", "severity": "warning", "count": 1, "reopen_count": 0,
                "first_seen_at": 0, "last_seen_at": 10, "resolved_at": null,
                "exit_code": null, "message": null, "image": null, "revision": null,
                "pods": [], "nodes": []
            }],
            "truncated": 0
        });
        assert_eq!(json, expected);
        let back: Payload = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, payload);
    }
}

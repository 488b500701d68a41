//! How far each cluster's watches have got, as the API shows it: per kind,
//! whether it listed, the highest resourceVersion processed, the events
//! processed and its state. A cluster's watch keeps its own progress and
//! hands a copy to the writer when it has nothing more queued; the writer
//! publishes it once the incident changes before it are committed, so a
//! reader who sees a version knows everything up to it is in the store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use pilothouse_api::{ClusterWatchView, KindWatchView};
use pilothouse_fleet::{WatchEvent, WatchedKind};

/// The published progress of every watched cluster.
#[derive(Default)]
pub(super) struct WatchStates(Mutex<HashMap<String, ClusterWatchView>>);

impl WatchStates {
    /// A cluster's published progress.
    pub(super) fn get(&self, cluster: &str) -> Option<ClusterWatchView> {
        self.lock().get(cluster).cloned()
    }

    /// A cluster's watches started with its incident settings `incidents`:
    /// nothing processed yet.
    pub(super) fn started(&self, cluster: &str, incidents: Option<serde_json::Value>) {
        let view = ClusterWatchView {
            state: "running".to_owned(),
            error: None,
            incidents,
            kinds: BTreeMap::new(),
        };
        self.lock().insert(cluster.to_owned(), view);
    }

    /// A cluster's watches could not start.
    pub(super) fn not_started(&self, cluster: &str, error: String) {
        let view = ClusterWatchView {
            state: "not_started".to_owned(),
            error: Some(error),
            incidents: None,
            kinds: BTreeMap::new(),
        };
        self.lock().insert(cluster.to_owned(), view);
    }

    /// A cluster's watches stopped (it was removed).
    pub(super) fn stopped(&self, cluster: &str) {
        self.lock().remove(cluster);
    }

    /// Publishes what a running watch processed; ignored for a cluster whose
    /// watches are not running any more.
    pub(super) fn publish(&self, cluster: &str, kinds: BTreeMap<String, KindWatchView>) {
        if let Some(view) = self.lock().get_mut(cluster)
            && view.state == "running"
        {
            view.kinds = kinds;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ClusterWatchView>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One cluster's progress, kept by its watch.
#[derive(Default)]
pub(super) struct Progress(BTreeMap<WatchedKind, KindWatchView>);

impl Progress {
    /// Counts an event as processed at `now_ms`.
    pub(super) fn processed(&mut self, event: &WatchEvent, now_ms: i64) {
        let kind = self.0.entry(event.kind()).or_insert_with(|| KindWatchView {
            state: "listing".to_owned(),
            listed: false,
            lists: 0,
            resource_version: None,
            events: 0,
            last_event_at: None,
            message: None,
        });
        kind.events += 1;
        kind.last_event_at = Some(crate::tasks::rfc3339(now_ms));
        if let Some(version) = event.resource_version() {
            kind.resource_version = Some(highest(kind.resource_version.take(), version));
        }
        match event {
            WatchEvent::Applied { .. } | WatchEvent::Deleted { .. } => {}
            WatchEvent::Listed { .. } => {
                kind.listed = true;
                kind.lists += 1;
                kind.state = "watching".to_owned();
                kind.message = None;
            }
            WatchEvent::Unreachable { message, .. } => {
                kind.state = "unreachable".to_owned();
                kind.message = Some(message.clone());
            }
            WatchEvent::Refused { message, .. } => {
                kind.state = "refused".to_owned();
                kind.message = Some(message.clone());
            }
            WatchEvent::Reachable { .. } => {
                // a new list follows
                kind.state = "listing".to_owned();
                kind.message = None;
            }
        }
    }

    /// A copy to publish.
    pub(super) fn snapshot(&self) -> BTreeMap<String, KindWatchView> {
        self.0
            .iter()
            .map(|(kind, view)| (kind.key().to_owned(), view.clone()))
            .collect()
    }
}

/// The higher of two resourceVersions, as numbers (which the API server's
/// are); when one is not a number, the newer one.
fn highest(known: Option<String>, seen: &str) -> String {
    match known {
        Some(known) => match (known.parse::<u64>(), seen.parse::<u64>()) {
            (Ok(a), Ok(b)) if a >= b => known,
            _ => seen.to_owned(),
        },
        None => seen.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;

    fn pod(version: &str) -> WatchEvent {
        WatchEvent::Applied {
            kind: WatchedKind::Pod,
            object: json!({"metadata": {"name": "a", "resourceVersion": version}}),
        }
    }

    #[test]
    fn keeps_the_highest_version_and_the_state_of_each_kind() {
        let mut progress = Progress::default();
        for event in [pod("12"), pod("9"), pod("30")] {
            progress.processed(&event, 1_000);
        }
        let kind = WatchedKind::Pod;
        progress.processed(
            &WatchEvent::Listed {
                kind,
                present: HashSet::new(),
            },
            2_000,
        );
        let pods = &progress.snapshot()["pods"];
        assert_eq!(
            pods.resource_version.as_deref(),
            Some("30"),
            "listed out of order"
        );
        assert_eq!(
            (pods.state.as_str(), pods.listed, pods.lists, pods.events),
            ("watching", true, 1, 4)
        );
        let message = "listing pods: connection refused".to_owned();
        progress.processed(
            &WatchEvent::Unreachable {
                kind,
                message: message.clone(),
            },
            3_000,
        );
        let pods = &progress.snapshot()["pods"];
        assert_eq!(
            (pods.state.as_str(), pods.message.as_ref()),
            ("unreachable", Some(&message))
        );
        progress.processed(&WatchEvent::Reachable { kind }, 4_000);
        assert_eq!(progress.snapshot()["pods"].state, "listing");
        progress.processed(
            &WatchEvent::Refused {
                kind: WatchedKind::Node,
                message: "403".into(),
            },
            5_000,
        );
        assert_eq!(progress.snapshot()["nodes"].state, "refused");
    }

    #[test]
    fn publishes_only_for_running_watches() {
        let states = WatchStates::default();
        let mut progress = Progress::default();
        progress.processed(&pod("5"), 1_000);
        states.publish("gone", progress.snapshot());
        assert!(states.get("gone").is_none());
        states.started("a", None);
        states.publish("a", progress.snapshot());
        assert_eq!(
            states.get("a").unwrap().kinds["pods"]
                .resource_version
                .as_deref(),
            Some("5")
        );
        states.not_started("b", "no client".into());
        states.publish("b", progress.snapshot());
        assert!(states.get("b").unwrap().kinds.is_empty());
        states.stopped("a");
        assert!(states.get("a").is_none());
        assert_eq!(highest(Some("x".into()), "7"), "7");
    }
}

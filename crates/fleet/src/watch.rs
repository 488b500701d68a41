//! Watching one cluster's Pods, Nodes and Warning Events, resumably.
//!
//! [`watch`] lists a kind (in pages), then watches it from the list's
//! resourceVersion. A watch that ends (the server's timeout, a dropped
//! connection, an API server restart) is resumed from the last
//! resourceVersion seen, so nothing is replayed and nothing is missed; only
//! when the server answers that the version is too old (410 Gone) is the
//! kind listed again. After every list, [`WatchEvent::Listed`] names every
//! object that exists, so the caller can forget objects deleted while it was
//! not watching. Failures are retried with exponential backoff and jitter;
//! after [`UNREACHABLE_AFTER`] failures in a row the cluster is reported
//! [`WatchEvent::Unreachable`] once; the next answer reports it
//! [`WatchEvent::Reachable`] and the kind is listed again (objects that
//! changed back while nobody watched send no event). A refusal (401, 403,
//! 404: credentials too weak for the kind) is [`WatchEvent::Refused`], not
//! unreachability.
//!
//! Objects are passed on as JSON, as the API server sent them: the caller's
//! detection rules read them as such, and nothing is kept here.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt as _;
use kube::Client;
use kube::api::{ListParams, WatchParams};
use kube::core::{ObjectList, Request, WatchEvent as KubeWatchEvent};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::probe::chain_message;

/// Failures in a row after which the cluster is reported unreachable.
pub const UNREACHABLE_AFTER: u32 = 2;
/// Objects per page when listing.
const LIST_PAGE: u32 = 500;

/// What is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WatchedKind {
    /// Pods in every namespace.
    Pod,
    /// Nodes.
    Node,
    /// Events of type `Warning` in every namespace.
    WarningEvent,
}

impl WatchedKind {
    /// Every kind, in the order a cluster's watches start.
    pub const ALL: [WatchedKind; 3] = [
        WatchedKind::Node,
        WatchedKind::Pod,
        WatchedKind::WarningEvent,
    ];

    fn path(self) -> &'static str {
        match self {
            WatchedKind::Pod => "/api/v1/pods",
            WatchedKind::Node => "/api/v1/nodes",
            WatchedKind::WarningEvent => "/api/v1/events",
        }
    }

    fn field_selector(self) -> Option<&'static str> {
        match self {
            WatchedKind::WarningEvent => Some("type=Warning"),
            WatchedKind::Pod | WatchedKind::Node => None,
        }
    }

    /// The plural name, for messages.
    pub fn plural(self) -> &'static str {
        match self {
            WatchedKind::Pod => "pods",
            WatchedKind::Node => "nodes",
            WatchedKind::WarningEvent => "warning events",
        }
    }
}

/// What a watch reports.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// An object exists as given: listed, added or modified.
    Applied {
        /// Its kind.
        kind: WatchedKind,
        /// The object, as the API server sent it.
        object: Value,
    },
    /// An object was deleted (its last state).
    Deleted {
        /// Its kind.
        kind: WatchedKind,
        /// The object, as the API server sent it.
        object: Value,
    },
    /// A list of the kind finished: every object that exists was just sent as
    /// [`WatchEvent::Applied`]; objects the caller knows that are not among
    /// `present` (namespace, name) were deleted while nobody watched.
    Listed {
        /// Its kind.
        kind: WatchedKind,
        /// Namespace (empty for cluster-scoped objects) and name of every
        /// object listed.
        present: HashSet<(String, String)>,
    },
    /// The cluster stopped answering the watch of this kind.
    Unreachable {
        /// Its kind.
        kind: WatchedKind,
        /// Why, without credentials.
        message: String,
    },
    /// The cluster answers the watch of this kind again.
    Reachable {
        /// Its kind.
        kind: WatchedKind,
    },
    /// The cluster answers but refuses to list or watch this kind (401,
    /// 403, 404): the credentials are too weak. Not unreachability: the
    /// cluster's incidents stay as they are; retried with backoff.
    Refused {
        /// Its kind.
        kind: WatchedKind,
        /// The API server's answer.
        message: String,
    },
}

/// How a watch behaves.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// How long the server keeps one watch request open before the watch is
    /// resumed with a new request (the client's read timeout must be longer).
    pub watch_timeout: Duration,
    /// First retry delay after a failure; doubles up to `max_backoff`.
    pub base_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            watch_timeout: Duration::from_secs(60),
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// Why one list or watch round ended.
enum Ended {
    /// The server closed the watch normally: resume from the version.
    Closed,
    /// The version is too old: list again.
    Expired,
    /// The receiver is gone: stop.
    Stopped,
    /// A failure (connection, timeout, server error).
    Failed(String),
    /// The server refused (401, 403, 404).
    Refused(String),
    /// The cluster answers again after an outage: list again, so the
    /// caller sees every object as it is now.
    Relist,
}

/// How the watch of one kind is doing: failures in a row and whether it
/// reported the cluster unreachable (or the kind refused).
#[derive(Default)]
struct Health {
    failures: u32,
    unreachable: bool,
    refused: bool,
}

impl Health {
    /// The cluster answered (a list, or a watch request accepted): reports
    /// it reachable again if it was not. `false` when the receiver is gone.
    async fn answered(&mut self, kind: WatchedKind, events: &mpsc::Sender<WatchEvent>) -> bool {
        self.failures = 0;
        self.refused = false;
        if std::mem::take(&mut self.unreachable) {
            return events.send(WatchEvent::Reachable { kind }).await.is_ok();
        }
        true
    }
}

/// Watches `kind` on the cluster `client` talks to and sends what happens to
/// `events` until the receiver is dropped. The client should have a read
/// timeout longer than [`WatchOptions::watch_timeout`].
pub async fn watch(
    client: Client,
    kind: WatchedKind,
    options: WatchOptions,
    events: mpsc::Sender<WatchEvent>,
) {
    let mut version: Option<String> = None;
    let mut health = Health::default();
    loop {
        let started = std::time::Instant::now();
        let ended = match version.clone() {
            None => match list(&client, kind, &events, &mut health).await {
                Ok(Some(listed)) => {
                    version = Some(listed);
                    Ended::Closed
                }
                Ok(None) => Ended::Stopped,
                Err(failure) => failure,
            },
            Some(from) => {
                watch_from(
                    &client,
                    kind,
                    &options,
                    &from,
                    &events,
                    &mut version,
                    &mut health,
                )
                .await
            }
        };
        let delay = match ended {
            Ended::Stopped => return,
            // a watch the server ends at once (a proxy, a misbehaving
            // server) must not turn into a busy loop
            Ended::Closed if started.elapsed() < Duration::from_secs(1) => options.base_backoff,
            Ended::Closed => Duration::ZERO,
            Ended::Expired => {
                version = None;
                options.base_backoff
            }
            Ended::Relist => {
                version = None;
                Duration::ZERO
            }
            Ended::Failed(message) => {
                health.failures += 1;
                if health.failures >= UNREACHABLE_AFTER && !health.unreachable {
                    health.unreachable = true;
                    let event = WatchEvent::Unreachable { kind, message };
                    if events.send(event).await.is_err() {
                        return;
                    }
                }
                backoff(&options, health.failures)
            }
            Ended::Refused(message) => {
                health.failures += 1;
                if !std::mem::replace(&mut health.refused, true) {
                    let event = WatchEvent::Refused { kind, message };
                    if events.send(event).await.is_err() {
                        return;
                    }
                }
                options.max_backoff
            }
        };
        if !delay.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = events.closed() => return,
            }
        }
    }
}

/// The delay before retry number `failures` (1-based): the base doubled per
/// failure, capped, minus up to a quarter of jitter.
fn backoff(options: &WatchOptions, failures: u32) -> Duration {
    let doubled = options
        .base_backoff
        .saturating_mul(1 << failures.saturating_sub(1).min(16));
    let capped = doubled.min(options.max_backoff);
    let jitter = capped.mul_f64(f64::from(noise() % 1000) / 4000.0);
    capped.saturating_sub(jitter)
}

/// A number that differs from call to call, for jitter (no need for a
/// random generator: retries of many watches only need to spread out).
fn noise() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_micros())
}

/// Lists the kind in pages, sending each object and then the set of names.
/// Returns the list's resourceVersion; `None` when the receiver is gone.
async fn list(
    client: &Client,
    kind: WatchedKind,
    events: &mpsc::Sender<WatchEvent>,
    health: &mut Health,
) -> Result<Option<String>, Ended> {
    let request = Request::new(kind.path());
    let mut params = ListParams::default().limit(LIST_PAGE);
    if let Some(selector) = kind.field_selector() {
        params = params.fields(selector);
    }
    let mut present = HashSet::new();
    loop {
        let http = request
            .list(&params)
            .map_err(|e| Ended::Failed(e.to_string()))?;
        let page: ObjectList<Value> = client
            .request(http)
            .await
            .map_err(|e| failure(kind, "listing", &e))?;
        // The cluster answers: say so before the objects, so that what they
        // tell is not taken for the state of an unreachable cluster.
        if !health.answered(kind, events).await {
            return Ok(None);
        }
        for object in page.items {
            present.insert(name_of(&object));
            if events
                .send(WatchEvent::Applied { kind, object })
                .await
                .is_err()
            {
                return Ok(None);
            }
        }
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params.continue_token = Some(token),
            None => {
                let version = page.metadata.resource_version.unwrap_or_default();
                if events
                    .send(WatchEvent::Listed { kind, present })
                    .await
                    .is_err()
                {
                    return Ok(None);
                }
                return Ok(Some(version));
            }
        }
    }
}

/// One watch request from `from`, updating `version` as events arrive.
async fn watch_from(
    client: &Client,
    kind: WatchedKind,
    options: &WatchOptions,
    from: &str,
    events: &mpsc::Sender<WatchEvent>,
    version: &mut Option<String>,
    health: &mut Health,
) -> Ended {
    let request = Request::new(kind.path());
    let seconds = u32::try_from(options.watch_timeout.as_secs())
        .unwrap_or(u32::MAX)
        .max(1);
    let mut params = WatchParams::default().timeout(seconds);
    if let Some(selector) = kind.field_selector() {
        params = params.fields(selector);
    }
    let http = match request.watch(&params, from) {
        Ok(http) => http,
        Err(error) => return Ended::Failed(error.to_string()),
    };
    let stream = match client.request_events::<Value>(http).await {
        Ok(stream) => stream,
        Err(error) => return failure(kind, "watching", &error),
    };
    // The request was accepted: the cluster answers. After an outage, list
    // again rather than resume: the caller re-reads every object (a
    // workload that recovered meanwhile sends no event to resume with).
    let was_unreachable = health.unreachable;
    if !health.answered(kind, events).await {
        return Ended::Stopped;
    }
    if was_unreachable {
        return Ended::Relist;
    }
    let mut stream = std::pin::pin!(stream);
    loop {
        let next = tokio::select! {
            next = stream.next() => next,
            () = events.closed() => return Ended::Stopped,
        };
        let event = match next {
            None => return Ended::Closed,
            Some(Err(error)) => return failure(kind, "watching", &error),
            Some(Ok(event)) => event,
        };
        let sent = match event {
            KubeWatchEvent::Added(object) | KubeWatchEvent::Modified(object) => {
                remember(version, &object);
                events.send(WatchEvent::Applied { kind, object }).await
            }
            KubeWatchEvent::Deleted(object) => {
                remember(version, &object);
                events.send(WatchEvent::Deleted { kind, object }).await
            }
            KubeWatchEvent::Bookmark(bookmark) => {
                *version = Some(bookmark.metadata.resource_version);
                Ok(())
            }
            KubeWatchEvent::Error(status) => {
                if status.code == 410 {
                    return Ended::Expired;
                }
                return Ended::Failed(format!(
                    "watching {}: {} ({})",
                    kind.plural(),
                    status.message,
                    status.code
                ));
            }
        };
        if sent.is_err() {
            return Ended::Stopped;
        }
    }
}

/// Keeps an object's resourceVersion as the version to resume from.
fn remember(version: &mut Option<String>, object: &Value) {
    if let Some(seen) = object["metadata"]["resourceVersion"].as_str() {
        *version = Some(seen.to_owned());
    }
}

/// Namespace (empty when cluster-scoped) and name of an object.
pub fn name_of(object: &Value) -> (String, String) {
    let metadata = &object["metadata"];
    (
        metadata["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        metadata["name"].as_str().unwrap_or_default().to_owned(),
    )
}

/// How a failed list or watch request ends the round: 410 Gone means list
/// again, 401/403/404 a refusal, anything else a failure (connection,
/// timeout, server error) that counts towards unreachability.
fn failure(kind: WatchedKind, doing: &str, error: &kube::Error) -> Ended {
    let message = format!("{doing} {}: {}", kind.plural(), chain_message(error));
    match error {
        kube::Error::Api(status) if status.code == 410 => Ended::Expired,
        kube::Error::Api(status) if matches!(status.code, 401 | 403 | 404) => {
            Ended::Refused(message)
        }
        _ => Ended::Failed(message),
    }
}

/// The log of a container, as `kubectl logs --tail` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The container.
    pub container: String,
    /// The previous (terminated) instance of the container rather than the
    /// current one.
    pub previous: bool,
    /// Lines from the end.
    pub tail_lines: u32,
    /// At most this many bytes.
    pub limit_bytes: u32,
}

/// Reads a container's last log lines through the API server, bounded by
/// the request's line and byte limits (the byte limit is enforced here too)
/// and by `timeout`.
pub async fn container_logs(
    client: &Client,
    request: &LogRequest,
    timeout: Duration,
) -> Result<String, String> {
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), &request.namespace);
    let params = kube::api::LogParams {
        container: Some(request.container.clone()),
        previous: request.previous,
        tail_lines: Some(i64::from(request.tail_lines)),
        limit_bytes: Some(i64::from(request.limit_bytes)),
        ..kube::api::LogParams::default()
    };
    let text = tokio::time::timeout(timeout, pods.logs(&request.pod, &params))
        .await
        .map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
        .map_err(|e| chain_message(&e))?;
    Ok(cut_to(text, request.limit_bytes as usize))
}

/// Keeps at most `limit` bytes from the end of `text`, on a character
/// boundary.
fn cut_to(text: String, limit: usize) -> String {
    if text.len() <= limit {
        return text;
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

/// The recent events about a pod (every type), oldest first, at most
/// `limit`.
pub async fn pod_events(
    client: &Client,
    namespace: &str,
    pod: &str,
    limit: usize,
    timeout: Duration,
) -> Result<Vec<Value>, String> {
    let request = Request::new(format!("/api/v1/namespaces/{namespace}/events"));
    let params = ListParams::default().fields(&format!(
        "involvedObject.kind=Pod,involvedObject.name={pod}"
    ));
    let http = request.list(&params).map_err(|e| e.to_string())?;
    let list: ObjectList<Value> = tokio::time::timeout(timeout, client.request(http))
        .await
        .map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
        .map_err(|e| chain_message(&e))?;
    let mut events: Vec<Value> = list.items.iter().map(event_summary).collect();
    events.sort_by(|a, b| a["last_seen"].as_str().cmp(&b["last_seen"].as_str()));
    let skip = events.len().saturating_sub(limit);
    Ok(events.split_off(skip))
}

/// The parts of an Event worth keeping with an incident.
pub fn event_summary(event: &Value) -> Value {
    let last_seen = event["lastTimestamp"]
        .as_str()
        .or_else(|| event["eventTime"].as_str())
        .or_else(|| event["metadata"]["creationTimestamp"].as_str());
    serde_json::json!({
        "type": event["type"],
        "reason": event["reason"],
        "message": event["message"],
        "count": event["count"].as_u64().unwrap_or(1),
        "last_seen": last_seen,
        "source": event["source"]["component"].as_str()
            .or_else(|| event["reportingComponent"].as_str()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_at_most_a_quarter_of_jitter() {
        let options = WatchOptions {
            watch_timeout: Duration::from_secs(60),
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
        };
        for (failures, full) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0), (60, 8.0)] {
            let delay = backoff(&options, failures).as_secs_f64();
            assert!(delay <= full && delay >= full * 0.75, "{failures}: {delay}");
        }
    }

    #[test]
    fn logs_are_cut_from_the_end_on_a_character_boundary() {
        assert_eq!(cut_to("abc".into(), 10), "abc");
        assert_eq!(cut_to("line1\nline2\n".into(), 6), "line2\n");
        assert_eq!(cut_to("aé".into(), 1), "");
        assert_eq!(cut_to("aéb".into(), 2), "b");
    }

    #[test]
    fn an_event_keeps_what_people_read() {
        let event = serde_json::json!({
            "type": "Warning", "reason": "BackOff", "message": "Back-off restarting",
            "count": 7, "lastTimestamp": "2026-11-23T04:00:00Z",
            "source": {"component": "kubelet"}, "metadata": {"name": "x"},
        });
        let summary = event_summary(&event);
        assert_eq!(summary["reason"], "BackOff");
        assert_eq!(summary["count"], 7);
        assert_eq!(summary["last_seen"], "2026-11-23T04:00:00Z");
        assert_eq!(summary["source"], "kubelet");
        assert!(summary.get("metadata").is_none());
    }
}

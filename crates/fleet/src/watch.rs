//! Watching one cluster's Pods, Nodes and Warning Events, resumably.
//!
//! The list-then-watch itself is `kube::runtime::watcher`'s: it lists a kind
//! in pages, watches from the list's resourceVersion, resumes a watch that
//! ends from the last version seen (bookmarks on), and lists again only when
//! the version is too old (410 Gone). This module is the thin layer that
//! turns its stream into what the monitor needs:
//! - after every list, [`WatchEvent::Listed`] names every object that
//!   exists, so the caller can forget objects deleted while it was not
//!   watching;
//! - failures are retried with the shared backoff (with jitter); after
//!   [`UNREACHABLE_AFTER`] failures in a row the cluster is reported
//!   [`WatchEvent::Unreachable`] once, and the watch starts over with a list,
//!   whose first answer reports it [`WatchEvent::Reachable`] (objects that
//!   changed back while nobody watched send no event otherwise);
//! - a refusal (401, 403, 404: credentials too weak for the kind) is
//!   [`WatchEvent::Refused`], not unreachability.
//!
//! Objects are passed on as JSON, as the API server sent them: the caller's
//! detection rules read them as such, and nothing is kept here.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt as _;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::core::{ObjectList, Request};
use kube::runtime::watcher;
use pilothouse_types::Backoff;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::probe::chain_message;

/// Failures in a row after which the cluster is reported unreachable.
pub const UNREACHABLE_AFTER: u32 = 2;
/// Objects per page when listing.
const LIST_PAGE: u32 = 500;

/// What is watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

    fn resource(self) -> ApiResource {
        use k8s_openapi::api::core::v1::{Event, Node, Pod};
        match self {
            WatchedKind::Pod => ApiResource::erase::<Pod>(&()),
            WatchedKind::Node => ApiResource::erase::<Node>(&()),
            WatchedKind::WarningEvent => ApiResource::erase::<Event>(&()),
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

    /// A short name for machine-readable output (`pods`, `nodes`,
    /// `warning_events`).
    pub fn key(self) -> &'static str {
        match self {
            WatchedKind::Pod => "pods",
            WatchedKind::Node => "nodes",
            WatchedKind::WarningEvent => "warning_events",
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

impl WatchEvent {
    /// The kind the event is about.
    pub fn kind(&self) -> WatchedKind {
        match self {
            WatchEvent::Applied { kind, .. }
            | WatchEvent::Deleted { kind, .. }
            | WatchEvent::Listed { kind, .. }
            | WatchEvent::Unreachable { kind, .. }
            | WatchEvent::Reachable { kind }
            | WatchEvent::Refused { kind, .. } => *kind,
        }
    }

    /// The resourceVersion of the object an event carries.
    pub fn resource_version(&self) -> Option<&str> {
        match self {
            WatchEvent::Applied { object, .. } | WatchEvent::Deleted { object, .. } => {
                object["metadata"]["resourceVersion"].as_str()
            }
            _ => None,
        }
    }
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

/// What one error of the watcher means here.
#[derive(Debug, PartialEq)]
enum Failure {
    /// The version is too old: the watcher lists again by itself.
    Expired,
    /// The server refused (401, 403, 404).
    Refused(String),
    /// A failure (connection, timeout, server error).
    Failed(String),
}

/// Where one watcher stream stands.
#[derive(Default)]
struct Progress {
    /// Failures in a row.
    failures: u32,
    /// Reported unreachable and not yet reachable again.
    unreachable: bool,
    /// Reported refused since the last answer.
    refused: bool,
    /// The objects of the list in progress.
    present: HashSet<(String, String)>,
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
    let api: Api<DynamicObject> = Api::all_with(client, &kind.resource());
    let seconds = u32::try_from(options.watch_timeout.as_secs())
        .unwrap_or(u32::MAX)
        .max(1);
    let mut config = watcher::Config::default()
        .page_size(LIST_PAGE)
        .timeout(seconds);
    if let Some(selector) = kind.field_selector() {
        config = config.fields(selector);
    }
    let backoff = Backoff::new(options.base_backoff, options.max_backoff);
    let mut progress = Progress::default();
    // A new stream starts with a list; after an outage the watch starts
    // over, so that the caller sees every object as it is now.
    'streams: loop {
        let mut stream = std::pin::pin!(watcher(api.clone(), config.clone()));
        // When polling last resumed: a failure that comes a whole watch
        // request later follows a watch that was running (the watcher does
        // not say when a watch request is accepted), so it does not count
        // as one more failure in a row.
        let mut resumed = std::time::Instant::now();
        loop {
            let next = tokio::select! {
                next = stream.next() => next,
                () = events.closed() => return,
            };
            let Some(next) = next else {
                // the watcher's stream does not end; if it did, start over
                continue 'streams;
            };
            let event = match next {
                Ok(event) => event,
                Err(error) => {
                    if resumed.elapsed() >= options.watch_timeout {
                        progress.failures = 0;
                    }
                    let (delay, start_over) = match progress
                        .failed(kind, &error, &options, &backoff, &events)
                        .await
                    {
                        Some(next) => next,
                        None => return,
                    };
                    if !pause(delay, &events).await {
                        return;
                    }
                    if start_over {
                        continue 'streams;
                    }
                    resumed = std::time::Instant::now();
                    continue;
                }
            };
            if !progress.pass_on(kind, event, &events).await {
                return;
            }
        }
    }
}

impl Progress {
    /// Counts a failure of the watcher and reports what it means (the
    /// cluster unreachable, or the kind refused, once each): how long to
    /// wait, and whether the watch then starts over with a list (it was
    /// just reported unreachable). `None` when the receiver is gone.
    async fn failed(
        &mut self,
        kind: WatchedKind,
        error: &watcher::Error,
        options: &WatchOptions,
        backoff: &Backoff,
        events: &mpsc::Sender<WatchEvent>,
    ) -> Option<(Duration, bool)> {
        match failure(kind, error) {
            Failure::Expired => Some((options.base_backoff, false)),
            Failure::Failed(message) => {
                self.failures += 1;
                let start_over = self.failures >= UNREACHABLE_AFTER && !self.unreachable;
                if start_over {
                    self.unreachable = true;
                    let event = WatchEvent::Unreachable { kind, message };
                    events.send(event).await.ok()?;
                }
                Some((backoff.jittered_delay(self.failures), start_over))
            }
            Failure::Refused(message) => {
                self.failures += 1;
                if !std::mem::replace(&mut self.refused, true) {
                    let event = WatchEvent::Refused { kind, message };
                    events.send(event).await.ok()?;
                }
                Some((options.max_backoff, false))
            }
        }
    }

    /// Sends what one watcher event means; `false` when the receiver is gone.
    async fn pass_on(
        &mut self,
        kind: WatchedKind,
        event: watcher::Event<DynamicObject>,
        events: &mpsc::Sender<WatchEvent>,
    ) -> bool {
        // `Init` is announced before the list is asked for: it is no answer
        if let watcher::Event::Init = event {
            self.present.clear();
            return true;
        }
        // The cluster answers: say so before the objects, so that what they
        // tell is not taken for the state of an unreachable cluster.
        self.failures = 0;
        self.refused = false;
        if std::mem::take(&mut self.unreachable)
            && events.send(WatchEvent::Reachable { kind }).await.is_err()
        {
            return false;
        }
        let out = match event {
            watcher::Event::Init => return true,
            watcher::Event::InitApply(object) => {
                let object = to_json(object);
                self.present.insert(name_of(&object));
                WatchEvent::Applied { kind, object }
            }
            watcher::Event::InitDone => WatchEvent::Listed {
                kind,
                present: std::mem::take(&mut self.present),
            },
            watcher::Event::Apply(object) => WatchEvent::Applied {
                kind,
                object: to_json(object),
            },
            watcher::Event::Delete(object) => WatchEvent::Deleted {
                kind,
                object: to_json(object),
            },
        };
        events.send(out).await.is_ok()
    }
}

/// Waits `delay`; `false` when the receiver went away meanwhile.
async fn pause(delay: Duration, events: &mpsc::Sender<WatchEvent>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = events.closed() => false,
    }
}

/// An object as JSON, the shape the API server sent.
fn to_json(object: DynamicObject) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
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

/// What an error of the watcher means: 410 Gone that it lists again,
/// 401/403/404 a refusal, anything else a failure (connection, timeout,
/// server error) that counts towards unreachability.
fn failure(kind: WatchedKind, error: &watcher::Error) -> Failure {
    let client = |doing: &str, error: &kube::Error| {
        let message = format!("{doing} {}: {}", kind.plural(), chain_message(error));
        match error {
            kube::Error::Api(status) if status.code == 410 => Failure::Expired,
            kube::Error::Api(status) if matches!(status.code, 401 | 403 | 404) => {
                Failure::Refused(message)
            }
            _ => Failure::Failed(message),
        }
    };
    match error {
        watcher::Error::InitialListFailed(error) => client("listing", error),
        watcher::Error::WatchStartFailed(error) | watcher::Error::WatchFailed(error) => {
            client("watching", error)
        }
        watcher::Error::WatchError(status) if status.code == 410 => Failure::Expired,
        watcher::Error::WatchError(status) => Failure::Failed(format!(
            "watching {}: {} ({})",
            kind.plural(),
            status.message,
            status.code
        )),
        watcher::Error::NoResourceVersion => Failure::Failed(format!(
            "watching {}: the server sent no resourceVersion",
            kind.plural()
        )),
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

    fn status(code: u16) -> Box<kube::core::Status> {
        kube::core::Status::failure("no", "Reason")
            .with_code(code)
            .boxed()
    }

    #[test]
    fn watcher_errors_map_to_expiry_refusal_or_failure() {
        let kind = WatchedKind::Pod;
        let check = |error: watcher::Error, expected: &str| {
            let got = match failure(kind, &error) {
                Failure::Expired => "expired".to_owned(),
                Failure::Refused(message) => format!("refused: {message}"),
                Failure::Failed(message) => format!("failed: {message}"),
            };
            assert!(got.starts_with(expected), "{error}: {got}");
        };
        check(watcher::Error::WatchError(status(410)), "expired");
        check(
            watcher::Error::InitialListFailed(kube::Error::Api(status(410))),
            "expired",
        );
        for code in [401, 403, 404] {
            check(
                watcher::Error::InitialListFailed(kube::Error::Api(status(code))),
                "refused: listing pods",
            );
            check(
                watcher::Error::WatchStartFailed(kube::Error::Api(status(code))),
                "refused: watching pods",
            );
        }
        check(
            watcher::Error::WatchStartFailed(kube::Error::Api(status(500))),
            "failed: watching pods",
        );
        check(
            watcher::Error::WatchError(status(500)),
            "failed: watching pods: no (500)",
        );
        check(watcher::Error::NoResourceVersion, "failed: watching pods");
    }

    fn pod(name: &str) -> DynamicObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"namespace": "shop", "name": name, "resourceVersion": "7"},
            "status": {"phase": "Running"},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_list_ends_with_the_names_it_saw_and_an_outage_ends_at_the_first_answer() {
        let kind = WatchedKind::Pod;
        let (sender, mut received) = mpsc::channel(16);
        let mut progress = Progress {
            failures: 3,
            unreachable: true,
            ..Progress::default()
        };
        for event in [
            watcher::Event::Init,
            watcher::Event::InitApply(pod("a")),
            watcher::Event::InitApply(pod("b")),
            watcher::Event::InitDone,
            watcher::Event::Apply(pod("c")),
            watcher::Event::Delete(pod("a")),
            watcher::Event::Init,
            watcher::Event::InitDone,
        ] {
            assert!(progress.pass_on(kind, event, &sender).await);
        }
        drop(sender);
        let mut seen = Vec::new();
        while let Some(event) = received.recv().await {
            seen.push(event);
        }
        let names = |names: &[&str]| -> HashSet<(String, String)> {
            names
                .iter()
                .map(|n| ("shop".to_owned(), (*n).to_owned()))
                .collect()
        };
        assert_eq!(seen[0], WatchEvent::Reachable { kind }, "before any object");
        assert!(
            matches!(&seen[1], WatchEvent::Applied { object, .. } if object["metadata"]["name"] == "a" && object["status"]["phase"] == "Running")
        );
        assert_eq!(seen[1].resource_version(), Some("7"));
        assert_eq!(
            seen[3],
            WatchEvent::Listed {
                kind,
                present: names(&["a", "b"])
            }
        );
        assert!(
            matches!(&seen[4], WatchEvent::Applied { object, .. } if object["metadata"]["name"] == "c")
        );
        assert!(
            matches!(&seen[5], WatchEvent::Deleted { object, .. } if object["metadata"]["name"] == "a")
        );
        assert_eq!(
            seen[6],
            WatchEvent::Listed {
                kind,
                present: names(&[])
            },
            "a new list forgets the names of the last one"
        );
        assert_eq!(seen.len(), 7);
        assert_eq!(progress.failures, 0);
        assert!(!progress.unreachable);
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

//! The single incident writer: every cluster's changes go through one
//! channel into batched SQLite transactions, so a storm of pod updates
//! costs a few commits instead of one each. After each batch it starts the
//! captures of new incidents and passes the written incidents on to the
//! notification dispatcher.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use pilothouse_api::KindWatchView;
use pilothouse_fleet::LogRequest;
use pilothouse_store::{IncidentWrite, Store};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

/// Changes written in one transaction at most.
const BATCH: usize = 2000;
/// Log lines captured.
const LOG_LINES: u32 = 50;
/// Log bytes captured at most.
const LOG_BYTES: u32 = 64 * 1024;
/// Events captured at most.
const EVENTS: usize = 20;
/// Captures running at once.
const CAPTURES: usize = 8;

/// What the writer is sent.
pub(super) enum WriterMessage {
    /// An incident's new state.
    Write(Box<WriteRequest>),
    /// Answered once everything sent before it is written (a cluster's
    /// watch restarting reads the store only after its old writes landed).
    Barrier(oneshot::Sender<()>),
    /// A cluster's watch progress, published once everything sent before
    /// it is written.
    Progress(String, BTreeMap<String, KindWatchView>),
}

/// One incident's new state, and what to capture if it is new.
pub(super) struct WriteRequest {
    /// The whole incident as the book holds it.
    pub write: IncidentWrite,
    /// Set at the first occurrence.
    pub capture: Option<Capture>,
}

/// What to capture at an incident's first occurrence.
pub(super) struct Capture {
    /// The cluster's client.
    pub client: kube::Client,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod.
    pub pod: String,
    /// The container, when the incident is about one.
    pub container: Option<String>,
    /// Read the previous instance's log (the container restarted).
    pub previous: bool,
    /// Warning events seen by the watch (kept even when the API server has
    /// expired them).
    pub warnings: Vec<Value>,
}

/// Writes what arrives on `requests`, sending each written incident (id
/// and state) to `written`, until every sender is gone or `stop` turns
/// true; then what was already sent is written before it returns.
pub(super) async fn run(
    store: Store,
    mut requests: mpsc::Receiver<WriterMessage>,
    written: mpsc::UnboundedSender<(i64, IncidentWrite)>,
    watch_states: Arc<super::progress::WatchStates>,
    capture_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let captures = Arc::new(Semaphore::new(CAPTURES));
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let received = tokio::select! {
            received = requests.recv_many(&mut batch, BATCH) => received,
            () = super::stopped(&mut stop) => {
                // nothing new is taken; what is queued is still written
                requests.close();
                requests.recv_many(&mut batch, BATCH).await
            }
        };
        if received == 0 {
            return;
        }
        let mut barriers = Vec::new();
        let mut progress = Vec::new();
        let writes: Vec<WriteRequest> = batch
            .drain(..)
            .filter_map(|message| match message {
                WriterMessage::Write(request) => Some(*request),
                WriterMessage::Barrier(done) => {
                    barriers.push(done);
                    None
                }
                WriterMessage::Progress(cluster, kinds) => {
                    progress.push((cluster, kinds));
                    None
                }
            })
            .collect();
        write_batch(&store, writes, &written, &captures, capture_timeout).await;
        for (cluster, kinds) in progress {
            watch_states.publish(&cluster, kinds);
        }
        for done in barriers {
            let _ = done.send(());
        }
    }
}

/// Writes one batch in one transaction (retried until it succeeds), then
/// starts the captures of new incidents and passes the written ones on.
async fn write_batch(
    store: &Store,
    batch: Vec<WriteRequest>,
    written: &mpsc::UnboundedSender<(i64, IncidentWrite)>,
    captures: &Arc<Semaphore>,
    capture_timeout: Duration,
) {
    if batch.is_empty() {
        return;
    }
    // The last state of each incident wins; the first capture is kept.
    let mut order: Vec<IncidentWrite> = Vec::with_capacity(batch.len());
    let mut captures_by: HashMap<usize, Capture> = HashMap::new();
    let mut index: HashMap<Key, usize> = HashMap::new();
    for request in batch {
        let key = Key::of(&request.write);
        let at = match index.get(&key) {
            Some(&at) => {
                order[at] = request.write;
                at
            }
            None => {
                index.insert(key, order.len());
                order.push(request.write);
                order.len() - 1
            }
        };
        if let Some(capture) = request.capture {
            captures_by.entry(at).or_insert(capture);
        }
    }
    let ids = loop {
        match store.write_incidents(&order).await {
            Ok(ids) => break ids,
            Err(error) => {
                tracing::error!(%error, "writing incidents failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    for (at, (id, write)) in ids.into_iter().zip(order).enumerate() {
        let Some(id) = id else { continue };
        if let Some(capture) = captures_by.remove(&at) {
            let store = store.clone();
            let captures = Arc::clone(captures);
            tokio::spawn(async move {
                let Ok(_slot) = captures.acquire().await else {
                    return;
                };
                capture_into(&store, id, capture, capture_timeout).await;
            });
        }
        let _ = written.send((id, write));
    }
}

/// An incident's identity within the store.
#[derive(PartialEq, Eq, Hash)]
struct Key(
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
);

impl Key {
    fn of(write: &IncidentWrite) -> Self {
        Key(
            write.cluster.clone(),
            write.namespace.clone(),
            write.workload_kind.clone(),
            write.workload_name.clone(),
            write.container.clone(),
            write.reason.clone(),
        )
    }
}

/// Reads the log and events and stores them with incident `id`. A log that
/// cannot be read is recorded as such (the events are still worth keeping).
async fn capture_into(store: &Store, id: i64, capture: Capture, timeout: Duration) {
    let logs = match &capture.container {
        None => String::new(),
        Some(container) => {
            let mut request = LogRequest {
                namespace: capture.namespace.clone(),
                pod: capture.pod.clone(),
                container: container.clone(),
                previous: capture.previous,
                tail_lines: LOG_LINES,
                limit_bytes: LOG_BYTES,
            };
            let mut read =
                pilothouse_fleet::container_logs(&capture.client, &request, timeout).await;
            if read.is_err() && request.previous {
                // No previous instance to read (yet): the current one.
                request.previous = false;
                read = pilothouse_fleet::container_logs(&capture.client, &request, timeout).await;
            }
            match read {
                Ok(text) => text,
                Err(message) => format!("(the log could not be read: {message})"),
            }
        }
    };
    let mut events = match pilothouse_fleet::pod_events(
        &capture.client,
        &capture.namespace,
        &capture.pod,
        EVENTS,
        timeout,
    )
    .await
    {
        Ok(events) => events,
        Err(message) => {
            tracing::warn!(incident = id, %message, "reading a pod's events failed");
            Vec::new()
        }
    };
    for warning in capture.warnings {
        let known = events.iter().any(|event| {
            event["reason"] == warning["reason"] && event["message"] == warning["message"]
        });
        if !known {
            events.push(warning);
        }
    }
    events.sort_by(|a, b| a["last_seen"].as_str().cmp(&b["last_seen"].as_str()));
    let skip = events.len().saturating_sub(EVENTS);
    let events = Value::Array(events.split_off(skip));
    if let Err(error) = store.capture_incident(id, &logs, &events).await {
        tracing::warn!(incident = id, %error, "storing an incident's capture failed");
    }
}

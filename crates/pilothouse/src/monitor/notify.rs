//! Notifications: the dispatcher task (incidents in, grouped and throttled
//! notifications into the SQLite outbox, atomically with the groups' state)
//! and the delivery worker (outbox out to Slack, webhooks and email, retried
//! with backoff).
//!
//! Restarts are duplicate-free: a notification and the group state that
//! says it was sent are committed in one transaction, and at start the
//! dispatcher is rebuilt from the stored groups plus every unresolved
//! incident. Delivery is at least once: a crash between a receiver's answer
//! and recording it resends that one notification, with the same
//! `Idempotency-Key` (and email `Message-ID`) so receivers can drop it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use pilothouse_incidents::{
    Alert, AlertLabels, Dispatcher, Flush, GroupState, RouteSpec, SilenceSpec, parse_matchers,
    parse_route,
};
use pilothouse_notify::{Deliverer, DelivererOptions, IncidentSummary, Payload, ReceiverConfig};
use pilothouse_store::{
    IncidentRecord, IncidentStatus, IncidentWrite, NotificationGroup, OutboxRecord, OutboxWrite,
};
use tokio::sync::{mpsc, watch};

use super::{Monitor, millis, now_ms, stopped};

/// A delivery is given up this long after it was enqueued.
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Deliveries attempted at once.
const DELIVERIES: usize = 4;
/// The dispatcher and the delivery worker look again at least this often.
const IDLE: Duration = Duration::from_secs(30);

impl Monitor {
    /// Feeds written incidents to the dispatcher and commits what it decides.
    pub(super) async fn dispatch(
        self: Arc<Self>,
        mut incidents: mpsc::UnboundedReceiver<(i64, IncidentWrite)>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut state = loop {
            match self.start_dispatcher().await {
                Ok(state) => break state,
                Err(error) => {
                    tracing::error!(
                        error = format!("{error:#}"),
                        "loading notification settings failed; retrying"
                    );
                    tokio::select! {
                        () = stopped(&mut stop) => return,
                        () = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
            }
        };
        let mut arrived = Vec::new();
        let mut reload_pending = false;
        loop {
            let now = now_ms();
            let mut flush = state.dispatcher.due(now);
            flush.silenced = state.marks(flush.silenced);
            if !flush.is_empty() && !self.commit(&state, flush, &mut stop).await {
                return;
            }
            let wait = state
                .dispatcher
                .next_due()
                .map_or(IDLE, until)
                .min(if reload_pending {
                    Duration::from_secs(1)
                } else {
                    IDLE
                });
            tokio::select! {
                () = stopped(&mut stop) => return,
                () = tokio::time::sleep(wait) => {}
                count = incidents.recv_many(&mut arrived, 4096) => {
                    if count == 0 {
                        return;
                    }
                    let now = now_ms();
                    for (id, write) in arrived.drain(..) {
                        let mark = state.dispatcher.observe(&Alert::of(id, &write), now);
                        state.observed_marks.push((id, mark));
                    }
                }
                () = self.notifications_changed.notified() => reload_pending = true,
            }
            if reload_pending {
                match state.reload(&self).await {
                    Ok(()) => reload_pending = false,
                    Err(error) => {
                        tracing::error!(
                            error = format!("{error:#}"),
                            "reloading notification settings failed; retrying"
                        );
                    }
                }
            }
        }
    }

    /// The dispatcher as it was before a restart: stored groups restored,
    /// every unresolved incident observed, and the held ones that resolved
    /// meanwhile observed as resolved.
    async fn start_dispatcher(&self) -> anyhow::Result<DispatchState> {
        let mut state = DispatchState {
            dispatcher: Dispatcher::new(Vec::new(), Vec::new()),
            receivers: HashMap::new(),
            marks: HashMap::new(),
            observed_marks: Vec::new(),
        };
        state.reload(self).await?;
        // the labels groups hold, for incidents purged while Pilothouse was down
        let mut held_labels: HashMap<i64, AlertLabels> = HashMap::new();
        for group in self.store.load_notification_groups().await? {
            match serde_json::from_value::<GroupState>(group.state) {
                Ok(restored) => {
                    for (id, alert) in &restored.alerts {
                        held_labels.insert(*id, alert.labels.clone());
                    }
                    state
                        .dispatcher
                        .restore(group.route_id, group.group_key, restored);
                }
                Err(error) => {
                    tracing::error!(route = group.route_id, group = %group.group_key, %error, "a stored notification group is unreadable; it starts anew");
                    self.unreadable.group_unreadable();
                }
            }
        }
        let now = now_ms();
        let mut unresolved = BTreeSet::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .list_incidents_with_status(
                    &[IncidentStatus::Open, IncidentStatus::Unknown],
                    after,
                    500,
                )
                .await?;
            for record in &page {
                unresolved.insert(record.id);
                state
                    .dispatcher
                    .observe(&Alert::of(record.id, &record.incident), now);
            }
            match page.last() {
                Some(last) if page.len() == 500 => after = Some(last.id),
                _ => break,
            }
        }
        let held: Vec<i64> = state
            .dispatcher
            .alert_ids()
            .difference(&unresolved)
            .copied()
            .collect();
        let stored = self.incidents_by_id(&held).await?;
        for id in held {
            let alert = match stored.get(&id) {
                Some(record) => Alert {
                    firing: false,
                    ..Alert::of(id, &record.incident)
                },
                // purged meanwhile: resolved, with the labels the group holds
                None => match held_labels.remove(&id) {
                    Some(labels) => Alert {
                        id,
                        labels,
                        firing: false,
                    },
                    None => continue,
                },
            };
            state.dispatcher.observe(&alert, now);
        }
        Ok(state)
    }

    /// Commits a flush: the notifications into the outbox together with the
    /// groups' new state, then the silence marks. Retries until it succeeds
    /// (the dispatcher already moved on); `false` when asked to stop first.
    async fn commit(
        &self,
        state: &DispatchState,
        flush: Flush,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        loop {
            match self.try_commit(state, &flush).await {
                Ok(enqueued) => {
                    if enqueued > 0 {
                        self.outbox_changed.notify_one();
                    }
                    return true;
                }
                Err(error) => {
                    tracing::error!(
                        error = format!("{error:#}"),
                        "recording notifications failed; retrying"
                    );
                    tokio::select! {
                        () = stopped(stop) => return false,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }

    async fn try_commit(&self, state: &DispatchState, flush: &Flush) -> anyhow::Result<usize> {
        let ids: Vec<i64> = flush
            .notifications
            .iter()
            .flat_map(|n| n.firing.iter().chain(&n.resolved))
            .copied()
            .collect();
        let records = self.incidents_by_id(&ids).await?;
        let mut outbox = Vec::new();
        for notification in &flush.notifications {
            let Some(receiver) = state.receivers.get(&notification.receiver_id) else {
                continue;
            };
            let summaries: Vec<IncidentSummary> = notification
                .firing
                .iter()
                .chain(&notification.resolved)
                .filter_map(|id| records.get(id))
                .map(|record| IncidentSummary::of(record.id, &record.incident))
                .collect();
            if summaries.is_empty() {
                continue;
            }
            let payload = Payload::new(
                receiver.clone(),
                notification.group_key.clone(),
                notification.group_labels.clone(),
                notification.repeat,
                summaries,
            );
            outbox.push(OutboxWrite {
                receiver_id: notification.receiver_id,
                route_id: Some(notification.route_id),
                group_key: notification.group_key.clone(),
                payload: serde_json::to_value(&payload)?,
            });
        }
        let groups = flush
            .groups
            .iter()
            .map(|(route_id, key, group)| {
                Ok(NotificationGroup {
                    route_id: *route_id,
                    group_key: key.clone(),
                    state: serde_json::to_value(group)?,
                })
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        // A receiver deleted since the routes were read gets nothing (its
        // routes went first, and the reload that follows drops them).
        let receivers: HashSet<i64> = self
            .store
            .list_receivers()
            .await?
            .into_iter()
            .map(|receiver| receiver.id)
            .collect();
        outbox.retain(|write| receivers.contains(&write.receiver_id));
        self.store
            .commit_notifications(&groups, &flush.deleted_groups, &outbox, &flush.silenced)
            .await?;
        Ok(outbox.len())
    }

    /// The stored incidents with these ids, by id (purged ones are absent).
    async fn incidents_by_id(&self, ids: &[i64]) -> anyhow::Result<HashMap<i64, IncidentRecord>> {
        Ok(self
            .store
            .incidents_by_ids(ids)
            .await?
            .into_iter()
            .map(|record| (record.id, record))
            .collect())
    }

    /// Sends what the outbox holds, retrying failures with backoff.
    pub(super) async fn deliver(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let options = DelivererOptions {
            destinations: self.settings.receiver_destinations.clone(),
            ..DelivererOptions::default()
        };
        let deliverer = match Deliverer::new(options) {
            Ok(deliverer) => Arc::new(deliverer),
            Err(error) => {
                tracing::error!(%error, "notifications cannot be delivered");
                return;
            }
        };
        // Deliveries whose outcome could not be recorded: not sent again
        // until this time (the store still says they are due).
        let mut held: HashMap<i64, i64> = HashMap::new();
        loop {
            let now = now_ms();
            held.retain(|_, until| *until > now);
            let mut attempted = 0;
            match self.store.due_deliveries(now, 64).await {
                Ok(due) => {
                    let attempts: Vec<_> = due
                        .into_iter()
                        .filter(|record| !held.contains_key(&record.id))
                        .map(|record| self.deliver_one(&deliverer, record))
                        .collect();
                    attempted = attempts.len();
                    let outcomes: Vec<(i64, bool)> = futures::stream::iter(attempts)
                        .buffer_unordered(DELIVERIES)
                        .collect()
                        .await;
                    for (id, recorded) in outcomes {
                        if !recorded {
                            held.insert(id, now + millis(Duration::from_secs(30)));
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "reading the outbox failed"),
            }
            let wait = match self.store.next_delivery_at().await {
                Ok(Some(at)) => until(at),
                _ => IDLE,
            }
            .min(IDLE);
            if wait.is_zero() && attempted > 0 {
                continue;
            }
            // never spin: what is due may all be held
            let wait = wait.max(Duration::from_millis(250));
            tokio::select! {
                () = stopped(&mut stop) => return,
                () = tokio::time::sleep(wait) => {}
                () = self.outbox_changed.notified() => {}
            }
        }
    }

    /// One attempt at one delivery, and its outcome recorded: its id, and
    /// whether the outcome could be recorded.
    async fn deliver_one(&self, deliverer: &Deliverer, record: OutboxRecord) -> (i64, bool) {
        let outcome = self.attempt(deliverer, &record).await;
        let now = now_ms();
        let recorded = match outcome {
            Ok(()) => self.store.delivery_succeeded(record.id, now).await,
            Err((message, retry)) => {
                let give_up = now - record.created_at >= millis(GIVE_UP_AFTER);
                let retry_at = match retry {
                    Some(delay) if !give_up => Some(now + millis(delay)),
                    _ => None,
                };
                tracing::warn!(
                    delivery = record.id,
                    receiver = %record.receiver,
                    attempts = record.attempts + 1,
                    retrying = retry_at.is_some(),
                    %message,
                    "a notification was not delivered"
                );
                self.store
                    .delivery_failed(record.id, now, &message, retry_at)
                    .await
            }
        };
        match recorded {
            Ok(_) => (record.id, true),
            Err(error) => {
                tracing::warn!(delivery = record.id, %error, "recording a delivery failed");
                (record.id, false)
            }
        }
    }

    /// Sends one delivery; on failure, the message and when to retry
    /// (`None`: never).
    async fn attempt(
        &self,
        deliverer: &Deliverer,
        record: &OutboxRecord,
    ) -> Result<(), (String, Option<Duration>)> {
        let cap = self.settings.delivery_retry_max;
        let retry = pilothouse_notify::backoff(record.attempts).min(cap);
        let (_, config) = self
            .store
            .receiver_config(&self.key, record.receiver_id)
            .await
            .map_err(|error| (error.to_string(), Some(retry)))?
            .ok_or_else(|| ("the receiver was deleted".to_owned(), None))?;
        let config: ReceiverConfig = serde_json::from_value(config).map_err(|_| {
            (
                "the stored receiver configuration is unreadable".to_owned(),
                None,
            )
        })?;
        let payload: Payload = serde_json::from_value(record.payload.clone())
            .map_err(|_| ("the stored notification is unreadable".to_owned(), None))?;
        deliverer
            .deliver(&config, &payload, &record.id.to_string())
            .await
            .map_err(|error| {
                let retry = error.is_retryable().then(|| {
                    error
                        .retry_after()
                        .map_or(retry, |after| after.max(retry).min(cap))
                });
                (error.to_string(), retry)
            })
    }
}

/// The dispatcher and what it needs to write notifications.
struct DispatchState {
    dispatcher: Dispatcher,
    /// Receiver names by id.
    receivers: HashMap<i64, String>,
    /// The silence each incident is stored as muted by.
    marks: HashMap<i64, Option<i64>>,
    /// Silence marks returned by observing, not yet looked at.
    observed_marks: Vec<(i64, Option<i64>)>,
}

impl DispatchState {
    /// The silence marks to store: those a flush changed and those
    /// observing found, when they differ from what is stored.
    fn marks(&mut self, flushed: Vec<(i64, Option<i64>)>) -> Vec<(i64, Option<i64>)> {
        let mut changed = Vec::new();
        for (id, mark) in std::mem::take(&mut self.observed_marks)
            .into_iter()
            .chain(flushed)
        {
            if self.marks.insert(id, mark) != Some(mark) {
                changed.push((id, mark));
            }
        }
        changed
    }

    /// Reads routes, receivers and silences anew.
    async fn reload(&mut self, monitor: &Monitor) -> anyhow::Result<()> {
        let (mut unreadable_routes, mut unreadable_silences) = (0, 0);
        let mut routes = Vec::new();
        self.receivers.clear();
        for route in monitor.store.list_routes().await? {
            self.receivers
                .insert(route.receiver_id, route.receiver.clone());
            // an unreadable route routes nothing; the API shows it with
            // its error, and /metrics counts it
            let (matchers, group_by) = match parse_route(&route.matchers, &route.group_by) {
                Ok(read) => read,
                Err(error) => {
                    tracing::error!(route = route.id, %error, "a stored route is unreadable; it routes nothing until it is replaced");
                    unreadable_routes += 1;
                    continue;
                }
            };
            routes.push(RouteSpec {
                matchers,
                group_by,
                group_wait_ms: route.group_wait_ms,
                group_interval_ms: route.group_interval_ms,
                repeat_interval_ms: route.repeat_interval_ms,
                send_resolved: route.send_resolved,
                continue_matching: route.continue_matching,
                ..RouteSpec::new(route.id, route.receiver_id)
            });
        }
        let mut silences = Vec::new();
        for silence in monitor.store.list_silences(None).await? {
            if silence.expired_at.is_some() {
                continue;
            }
            match parse_matchers(&silence.matchers) {
                Ok(matchers) => silences.push(SilenceSpec {
                    id: silence.id,
                    matchers,
                    starts_at_ms: silence.starts_at,
                    ends_at_ms: silence.ends_at,
                }),
                Err(error) => {
                    tracing::error!(silence = silence.id, %error, "a stored silence is unreadable; it mutes nothing until it is replaced");
                    unreadable_silences += 1;
                }
            }
        }
        self.dispatcher.set_routes(routes);
        self.dispatcher.set_silences(silences);
        monitor
            .unreadable
            .reloaded(unreadable_routes, unreadable_silences);
        Ok(())
    }
}

/// How long until `at` (unix ms); zero when it has passed.
fn until(at: i64) -> Duration {
    Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0))
}

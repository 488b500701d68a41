//! Notification dispatching, after Alertmanager's model: routes, groups,
//! silences and the timing of notifications, as a pure state machine.
//!
//! The caller feeds a [`Dispatcher`] its incidents as [`Alert`]s (an
//! incident's labels, and whether it fires), calls [`Dispatcher::due`] when
//! [`Dispatcher::next_due`] says so, and persists each [`Flush`] in one
//! transaction. The dispatcher sends nothing itself and reads no clock.
//!
//! # Routing
//! [`RouteSpec`]s are tried in order; an alert goes to the first one whose
//! matchers all match, and on to later matching ones while the route it
//! matched has `continue_matching`. An alert matching no route is held in
//! no group; it is only watched for its silence mark. Within a route, an
//! alert joins the group named by its values of the route's `group_by`
//! labels (every label when `group_by` is empty, so one group per
//! incident); a label the alert lacks is left out of the group's labels.
//!
//! # Timing
//! - A new group's first notification goes `group_wait` after its first
//!   alert that can be sent (firing, not silenced); alerts arriving
//!   meanwhile join it.
//! - After a group has notified, a change — a firing alert it did not
//!   notify as firing, or (with `send_resolved`) the resolution of one it
//!   did — is sent at `max(now, last_sent + group_interval)`, so changes
//!   arriving together are batched into one notification and a group
//!   notifies at most once per `group_interval`.
//! - With nothing new, a group with firing alerts notifies again
//!   `repeat_interval` after its last notification (`repeat: true`).
//!
//! # What a notification carries
//! Every firing, non-silenced alert of the group, and with `send_resolved`
//! the alerts that resolved since they were notified as firing. Then the
//! resolved alerts leave the group; a group left empty is deleted.
//! - More occurrences of an alert already notified send nothing: only the
//!   firing state counts.
//! - An alert that resolves without ever having been notified as firing
//!   (or, without `send_resolved`, any resolved alert) leaves its group at
//!   once, silently. Firing again later, it is new and notifies again.
//! - An alert that resolves and fires again before its group flushed was
//!   never reported resolved, so it is not new (as in Alertmanager).
//!
//! # Silences
//! A [`SilenceSpec`] is active from `starts_at_ms` (inclusive) to
//! `ends_at_ms` (exclusive). An alert is marked with the lowest id of the
//! active silences matching it ([`Dispatcher::observe`] returns the mark,
//! and each [`Flush`] reports the marks that time or
//! [`Dispatcher::set_silences`] changed). A silenced alert stays in its
//! groups but is left out of notifications and no longer counts as
//! notified: when the silence ends it is new again and is sent at the
//! group's next flush. A silenced alert that resolves is dropped without a
//! notification.
//!
//! # Persistence and restarts
//! A [`GroupState`] holds everything about a group, so that persisting the
//! [`Flush`]es and, after a restart, [`Dispatcher::restore`]-ing the groups,
//! observing every firing incident and, as resolved, those among
//! [`Dispatcher::alert_ids`] that resolved meanwhile, then calling `due`,
//! gives the behaviour of an uninterrupted run: nothing already sent is
//! sent again. Everything is
//! idempotent: observing the same alert twice, or calling `due` twice at
//! the same time, does nothing the second time.

mod matcher;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use self::matcher::{
    AlertLabels, Label, MatchOp, Matcher, parse_group_by, parse_matchers, parse_route,
};

/// How long a new group waits for more alerts before its first
/// notification: 30 seconds.
pub const DEFAULT_GROUP_WAIT_MS: i64 = 30 * 1000;

/// How long a group waits between notifications of changes: 5 minutes.
pub const DEFAULT_GROUP_INTERVAL_MS: i64 = 5 * 60 * 1000;

/// How long a group with firing alerts and nothing new waits before
/// notifying again: 4 hours.
pub const DEFAULT_REPEAT_INTERVAL_MS: i64 = 4 * 60 * 60 * 1000;

/// A route: which alerts go to which receiver, grouped how, and when.
/// Serde form with defaults for everything but the ids (unknown fields are
/// refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// Its id; group keys and notifications carry it.
    pub id: i64,
    /// Who is notified.
    pub receiver_id: i64,
    /// Which alerts it takes (all must match; none: every alert).
    #[serde(default)]
    pub matchers: Vec<Matcher>,
    /// The labels whose values name a group (none: every label, so one
    /// group per incident).
    #[serde(default)]
    pub group_by: Vec<Label>,
    /// See [`DEFAULT_GROUP_WAIT_MS`].
    #[serde(default = "default_group_wait")]
    pub group_wait_ms: i64,
    /// See [`DEFAULT_GROUP_INTERVAL_MS`]; at least 1 ms is used.
    #[serde(default = "default_group_interval")]
    pub group_interval_ms: i64,
    /// See [`DEFAULT_REPEAT_INTERVAL_MS`]; at least 1 ms is used.
    #[serde(default = "default_repeat_interval")]
    pub repeat_interval_ms: i64,
    /// Whether resolutions are notified (default: yes).
    #[serde(default = "yes")]
    pub send_resolved: bool,
    /// Whether matching alerts go on to later routes too (default: no).
    #[serde(default)]
    pub continue_matching: bool,
}

fn default_group_wait() -> i64 {
    DEFAULT_GROUP_WAIT_MS
}

fn default_group_interval() -> i64 {
    DEFAULT_GROUP_INTERVAL_MS
}

fn default_repeat_interval() -> i64 {
    DEFAULT_REPEAT_INTERVAL_MS
}

fn yes() -> bool {
    true
}

impl RouteSpec {
    /// A route taking every alert to `receiver_id`, one group per incident,
    /// with Alertmanager's default timing and resolutions sent.
    pub fn new(id: i64, receiver_id: i64) -> Self {
        RouteSpec {
            id,
            receiver_id,
            matchers: Vec::new(),
            group_by: Vec::new(),
            group_wait_ms: DEFAULT_GROUP_WAIT_MS,
            group_interval_ms: DEFAULT_GROUP_INTERVAL_MS,
            repeat_interval_ms: DEFAULT_REPEAT_INTERVAL_MS,
            send_resolved: true,
            continue_matching: false,
        }
    }

    /// The group an alert with these labels joins: its key
    /// (`7:{cluster="aks",reason="OOMKilled"}`, the route id and the group
    /// labels in name order) and labels.
    pub fn group_of(&self, labels: &AlertLabels) -> (String, BTreeMap<String, String>) {
        let group_labels = if self.group_by.is_empty() {
            labels.select(&Label::ALL)
        } else {
            labels.select(&self.group_by)
        };
        let pairs: Vec<String> = group_labels
            .iter()
            .map(|(name, value)| format!("{name}={}", matcher::quoted(value)))
            .collect();
        (format!("{}:{{{}}}", self.id, pairs.join(",")), group_labels)
    }

    fn group_interval(&self) -> i64 {
        self.group_interval_ms.max(1)
    }

    fn repeat_interval(&self) -> i64 {
        self.repeat_interval_ms.max(1)
    }
}

/// A silence: alerts matching it are not notified while it is active,
/// from `starts_at_ms` (inclusive) to `ends_at_ms` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceSpec {
    /// Its id; silenced alerts are marked with it.
    pub id: i64,
    /// Which alerts it mutes (all must match; none: every alert).
    pub matchers: Vec<Matcher>,
    /// When it starts.
    pub starts_at_ms: i64,
    /// When it ends.
    pub ends_at_ms: i64,
}

impl SilenceSpec {
    /// Whether it is active at `now_ms`.
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.starts_at_ms <= now_ms && now_ms < self.ends_at_ms
    }
}

/// An incident as the dispatcher sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The incident's id.
    pub id: i64,
    /// What it is about.
    pub labels: AlertLabels,
    /// Whether it fires: the incident is open or unknown (not resolved).
    pub firing: bool,
}

impl Alert {
    /// Incident `id`, in its stored state, as the dispatcher sees it.
    pub fn of(id: i64, incident: &pilothouse_types::IncidentWrite) -> Alert {
        Alert {
            id,
            labels: AlertLabels {
                cluster: incident.cluster.clone(),
                namespace: incident.namespace.clone(),
                workload_kind: incident.workload_kind.clone(),
                workload: incident.workload_name.clone(),
                container: incident.container.clone(),
                reason: incident.reason.clone(),
                severity: incident.severity,
            },
            firing: incident.status != crate::IncidentStatus::Resolved,
        }
    }
}

/// An alert as a group holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupAlert {
    /// What it is about.
    pub labels: AlertLabels,
    /// Whether it fires (a resolved alert stays until its resolution is
    /// notified).
    pub firing: bool,
    /// The silence muting it, if one does.
    pub silenced_by: Option<i64>,
}

/// Everything about one group, as persisted: with the routes and
/// silences, it determines the group's future exactly. The serde form is
/// stable (it is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    /// The values of the route's `group_by` labels that name it.
    pub group_labels: BTreeMap<String, String>,
    /// Its alerts, by id.
    pub alerts: BTreeMap<i64, GroupAlert>,
    /// The alerts it notified as firing (and that are not silenced since).
    pub notified_firing: BTreeSet<i64>,
    /// When it last notified, if ever.
    pub last_sent_ms: Option<i64>,
    /// When it flushes pending changes, if there are any.
    pub flush_at_ms: Option<i64>,
}

/// A notification to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The route whose group it is.
    pub route_id: i64,
    /// Who gets it.
    pub receiver_id: i64,
    /// The group's key (see [`RouteSpec::group_of`]).
    pub group_key: String,
    /// The group's labels.
    pub group_labels: BTreeMap<String, String>,
    /// The group's firing, non-silenced alerts (incident ids, ascending).
    pub firing: Vec<i64>,
    /// The alerts resolved since they were notified as firing (only with
    /// `send_resolved`).
    pub resolved: Vec<i64>,
    /// Whether nothing changed since the last notification (a reminder
    /// after the repeat interval).
    pub repeat: bool,
}

/// What [`Dispatcher::due`] did: everything the caller must persist, in one
/// transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flush {
    /// Notifications to enqueue.
    pub notifications: Vec<Notification>,
    /// Groups whose state changed (route id, group key, state): store them.
    pub groups: Vec<(i64, String, GroupState)>,
    /// Groups that no longer exist (route id, group key): delete them.
    pub deleted_groups: Vec<(i64, String)>,
    /// Alerts whose silence mark changed since observed, because a silence
    /// started or ended or the silences were replaced (alert id, the silence
    /// muting it now): store them.
    pub silenced: Vec<(i64, Option<i64>)>,
}

impl Flush {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.notifications.is_empty()
            && self.groups.is_empty()
            && self.deleted_groups.is_empty()
            && self.silenced.is_empty()
    }
}

/// A group's identity: route id and group key.
type GroupId = (i64, String);

/// The notification dispatcher: routes alerts into groups, mutes silenced
/// ones, and decides when each group notifies (see the module docs).
///
/// Usage: build it with the routes and silences, [`Self::restore`] the
/// persisted groups, [`Self::observe`] every incident, then call
/// [`Self::due`] after observing and whenever [`Self::next_due`] is
/// reached, persisting each [`Flush`].
#[derive(Debug, Clone)]
pub struct Dispatcher {
    routes: Vec<RouteSpec>,
    silences: Vec<SilenceSpec>,
    groups: BTreeMap<GroupId, GroupState>,
    /// Firing alerts in no group: no route took them (or their route went
    /// away and they await re-routing).
    unrouted: BTreeMap<i64, GroupAlert>,
    /// Groups changed since the last flush.
    dirty: BTreeSet<GroupId>,
    /// Groups deleted since the last flush.
    deleted: BTreeSet<GroupId>,
    /// Whether the held alerts must be routed again (routes changed or
    /// groups were restored).
    reroute: bool,
    /// Whether the silences changed since the last flush.
    silences_changed: bool,
    /// The latest time the caller passed.
    clock_ms: i64,
    /// The time of the last flush: silence marks are current as of then.
    checked_ms: i64,
}

impl Dispatcher {
    /// A dispatcher holding no alerts.
    pub fn new(routes: Vec<RouteSpec>, silences: Vec<SilenceSpec>) -> Self {
        Dispatcher {
            routes,
            silences,
            groups: BTreeMap::new(),
            unrouted: BTreeMap::new(),
            dirty: BTreeSet::new(),
            deleted: BTreeSet::new(),
            reroute: false,
            silences_changed: false,
            clock_ms: i64::MIN,
            checked_ms: i64::MIN,
        }
    }

    /// The routes.
    pub fn routes(&self) -> &[RouteSpec] {
        &self.routes
    }

    /// The silences.
    pub fn silences(&self) -> &[SilenceSpec] {
        &self.silences
    }

    /// Replaces the routes. Groups of routes that are gone are dropped at
    /// once (the next [`Flush`] reports them in `deleted_groups`); their
    /// firing alerts, and every other alert held, are routed again at the
    /// next [`Self::due`]: an alert that lands in a group it was not in is
    /// new there, one that leaves a group leaves without a notification.
    pub fn set_routes(&mut self, routes: Vec<RouteSpec>) {
        self.routes = routes;
        let gone: Vec<GroupId> = self
            .groups
            .keys()
            .filter(|(route_id, _)| self.route(*route_id).is_none())
            .cloned()
            .collect();
        for id in gone {
            self.orphan_group(&id);
        }
        self.reroute = true;
    }

    /// Replaces the silences; the next [`Self::due`] applies them.
    pub fn set_silences(&mut self, silences: Vec<SilenceSpec>) {
        self.silences = silences;
        self.silences_changed = true;
    }

    /// Puts back a group persisted earlier (replacing one with the same
    /// identity). Call it before observing. A group whose route is gone is
    /// dropped (reported by the next [`Flush`]); the alerts of every
    /// restored group are routed again at the next [`Self::due`], which
    /// changes nothing when the routes did not change.
    pub fn restore(&mut self, route_id: i64, group_key: String, state: GroupState) {
        let id = (route_id, group_key);
        self.groups.insert(id.clone(), state);
        self.dirty.remove(&id);
        self.deleted.remove(&id);
        if self.route(route_id).is_none() {
            self.orphan_group(&id);
        }
        self.reroute = true;
    }

    /// The state of a group.
    pub fn group(&self, route_id: i64, group_key: &str) -> Option<&GroupState> {
        self.groups.get(&(route_id, group_key.to_owned()))
    }

    /// Every alert held: in groups, or firing and in none. After a restart
    /// the caller observes again those whose incidents resolved meanwhile.
    pub fn alert_ids(&self) -> BTreeSet<i64> {
        self.groups
            .values()
            .flat_map(|group| group.alerts.keys())
            .chain(self.unrouted.keys())
            .copied()
            .collect()
    }

    /// Takes in an incident's current state: routes it into its groups (or
    /// updates it there), and returns the id of the active silence muting
    /// it, if one does — also for an alert no route takes — for the caller
    /// to store. Group changes are reported by the next [`Self::due`].
    pub fn observe(&mut self, alert: &Alert, now_ms: i64) -> Option<i64> {
        self.clock_ms = self.clock_ms.max(now_ms);
        let mark = silence_for(&self.silences, &alert.labels, now_ms);
        self.place(alert.id, &alert.labels, alert.firing, mark, now_ms);
        mark
    }

    /// Does what is due at `now_ms`: routes held alerts again if the
    /// routes changed, applies silences that started, ended, appeared or
    /// went away, and flushes the groups whose time came. Returns what to
    /// persist; nothing when called again at the same time.
    pub fn due(&mut self, now_ms: i64) -> Flush {
        self.clock_ms = self.clock_ms.max(now_ms);
        if std::mem::take(&mut self.reroute) {
            self.route_again(now_ms);
        }
        let silenced = self.check_silences(now_ms);
        self.checked_ms = now_ms;
        self.silences_changed = false;

        let mut notifications = Vec::new();
        let mut emptied = Vec::new();
        for (id, group) in &mut self.groups {
            let Some(route) = self.routes.iter().find(|route| route.id == id.0) else {
                continue;
            };
            let (changed, notification) = group.flush(now_ms, route, id);
            if changed {
                self.dirty.insert(id.clone());
            }
            notifications.extend(notification);
            if group.alerts.is_empty() {
                emptied.push(id.clone());
            }
        }
        for id in emptied {
            self.drop_group(&id);
        }

        let groups = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|id| {
                let state = self.groups.get(&id)?.clone();
                Some((id.0, id.1, state))
            })
            .collect();
        let deleted_groups = std::mem::take(&mut self.deleted)
            .into_iter()
            .filter(|id| !self.groups.contains_key(id))
            .collect();
        Flush {
            notifications,
            groups,
            deleted_groups,
            silenced: silenced.into_iter().collect(),
        }
    }

    /// The earliest time [`Self::due`] has something to do: a group's
    /// flush or repeat, or a silence starting or ending for an alert held.
    /// A time not after the latest one passed in (the case after observing,
    /// restoring or replacing routes or silences) means: now. `None`:
    /// nothing will happen until something is observed.
    pub fn next_due(&self) -> Option<i64> {
        if self.reroute
            || self.silences_changed
            || !self.dirty.is_empty()
            || !self.deleted.is_empty()
        {
            return Some(self.clock_ms);
        }
        let mut next: Option<i64> = None;
        let mut consider = |at: i64| next = Some(next.map_or(at, |next| next.min(at)));
        for ((route_id, _), group) in &self.groups {
            if let Some(at) = group.flush_at_ms {
                consider(at);
            }
            if let (Some(route), Some(last_sent)) = (self.route(*route_id), group.last_sent_ms)
                && group.alerts.values().any(GroupAlert::sendable)
            {
                consider(last_sent.saturating_add(route.repeat_interval()));
            }
        }
        for alert in self.held().values() {
            if let Some(at) = next_mark_change(&self.silences, alert, self.checked_ms) {
                consider(at);
            }
        }
        next
    }

    fn route(&self, route_id: i64) -> Option<&RouteSpec> {
        self.routes.iter().find(|route| route.id == route_id)
    }

    /// Every alert held, once (a resolved alert may linger in one group
    /// and be gone from another; it is the same alert).
    fn held(&self) -> BTreeMap<i64, &GroupAlert> {
        let mut held = BTreeMap::new();
        for group in self.groups.values() {
            for (id, alert) in &group.alerts {
                held.entry(*id).or_insert(alert);
            }
        }
        for (id, alert) in &self.unrouted {
            held.entry(*id).or_insert(alert);
        }
        held
    }

    /// Puts an alert where the routes say: into the groups of the routes
    /// taking it, out of every other group; into `unrouted` when firing and
    /// no route takes it.
    fn place(
        &mut self,
        alert_id: i64,
        labels: &AlertLabels,
        firing: bool,
        mark: Option<i64>,
        now_ms: i64,
    ) {
        let mut placements: BTreeMap<GroupId, (usize, BTreeMap<String, String>)> = BTreeMap::new();
        for (index, route) in self.routes.iter().enumerate() {
            if labels.matches(&route.matchers) {
                let (key, group_labels) = route.group_of(labels);
                placements
                    .entry((route.id, key))
                    .or_insert((index, group_labels));
                if !route.continue_matching {
                    break;
                }
            }
        }

        let left: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|(id, group)| {
                group.alerts.contains_key(&alert_id) && !placements.contains_key(*id)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in left {
            if let Some(group) = self.groups.get_mut(&id) {
                group.alerts.remove(&alert_id);
                group.notified_firing.remove(&alert_id);
                self.dirty.insert(id.clone());
                if group.alerts.is_empty() {
                    self.drop_group(&id);
                }
            }
        }

        if placements.is_empty() && firing {
            let alert = GroupAlert {
                labels: labels.clone(),
                firing,
                silenced_by: mark,
            };
            self.unrouted.insert(alert_id, alert);
        } else {
            self.unrouted.remove(&alert_id);
        }

        for (id, (index, group_labels)) in placements {
            let route = &self.routes[index];
            let group = match self.groups.get_mut(&id) {
                Some(group) => group,
                None if firing => {
                    self.deleted.remove(&id);
                    self.groups.entry(id.clone()).or_insert(GroupState {
                        group_labels,
                        alerts: BTreeMap::new(),
                        notified_firing: BTreeSet::new(),
                        last_sent_ms: None,
                        flush_at_ms: None,
                    })
                }
                None => continue,
            };
            if group.apply(alert_id, labels, firing, mark, now_ms, route) {
                self.dirty.insert(id.clone());
            }
            if group.alerts.is_empty() {
                self.drop_group(&id);
            }
        }
    }

    /// Routes every held alert again, with its current state and mark.
    fn route_again(&mut self, now_ms: i64) {
        let held: Vec<(i64, GroupAlert)> = self
            .held()
            .into_iter()
            .map(|(id, alert)| (id, alert.clone()))
            .collect();
        for (id, alert) in held {
            self.place(id, &alert.labels, alert.firing, alert.silenced_by, now_ms);
        }
    }

    /// Brings every held alert's silence mark up to `now_ms`; returns the
    /// marks that changed.
    fn check_silences(&mut self, now_ms: i64) -> BTreeMap<i64, Option<i64>> {
        let marks: BTreeMap<i64, Option<i64>> = self
            .held()
            .into_iter()
            .map(|(id, alert)| (id, silence_for(&self.silences, &alert.labels, now_ms)))
            .collect();
        let mut changed = BTreeMap::new();
        let mut emptied = Vec::new();
        for (id, group) in &mut self.groups {
            let Some(route) = self.routes.iter().find(|route| route.id == id.0) else {
                continue;
            };
            let remarked: Vec<(i64, GroupAlert)> = group
                .alerts
                .iter()
                .filter(|(alert_id, alert)| marks.get(alert_id) != Some(&alert.silenced_by))
                .map(|(alert_id, alert)| (*alert_id, alert.clone()))
                .collect();
            for (alert_id, alert) in remarked {
                let mark = marks.get(&alert_id).copied().flatten();
                group.apply(alert_id, &alert.labels, alert.firing, mark, now_ms, route);
                changed.insert(alert_id, mark);
                self.dirty.insert(id.clone());
            }
            if group.alerts.is_empty() {
                emptied.push(id.clone());
            }
        }
        for id in emptied {
            self.drop_group(&id);
        }
        for (alert_id, alert) in &mut self.unrouted {
            let mark = marks.get(alert_id).copied().flatten();
            if alert.silenced_by != mark {
                alert.silenced_by = mark;
                changed.insert(*alert_id, mark);
            }
        }
        changed
    }

    /// Drops a group whose route is gone; its firing alerts await
    /// re-routing.
    fn orphan_group(&mut self, id: &GroupId) {
        if let Some(group) = self.groups.get(id) {
            for (alert_id, alert) in &group.alerts {
                if alert.firing {
                    self.unrouted.insert(*alert_id, alert.clone());
                }
            }
        }
        self.drop_group(id);
    }

    fn drop_group(&mut self, id: &GroupId) {
        self.groups.remove(id);
        self.dirty.remove(id);
        self.deleted.insert(id.clone());
    }
}

impl GroupAlert {
    /// Whether it can be notified as firing.
    fn sendable(&self) -> bool {
        self.firing && self.silenced_by.is_none()
    }
}

impl GroupState {
    /// Applies an alert's state; returns whether the group changed.
    fn apply(
        &mut self,
        alert_id: i64,
        labels: &AlertLabels,
        firing: bool,
        mark: Option<i64>,
        now_ms: i64,
        route: &RouteSpec,
    ) -> bool {
        let alert = GroupAlert {
            labels: labels.clone(),
            firing,
            silenced_by: mark,
        };
        match self.alerts.get(&alert_id) {
            Some(held) if *held == alert => return false,
            None if !firing => return false,
            _ => {}
        }
        if firing {
            if mark.is_some() {
                self.notified_firing.remove(&alert_id);
            } else if !self.notified_firing.contains(&alert_id) {
                self.schedule(now_ms, route);
            }
            self.alerts.insert(alert_id, alert);
        } else if mark.is_none() && route.send_resolved && self.notified_firing.contains(&alert_id)
        {
            self.alerts.insert(alert_id, alert);
            self.schedule(now_ms, route);
        } else {
            self.alerts.remove(&alert_id);
            self.notified_firing.remove(&alert_id);
        }
        true
    }

    /// Sets the flush for a change at `now_ms`, unless one is pending.
    fn schedule(&mut self, now_ms: i64, route: &RouteSpec) {
        if self.flush_at_ms.is_none() {
            self.flush_at_ms = Some(match self.last_sent_ms {
                Some(last_sent) => now_ms.max(last_sent.saturating_add(route.group_interval())),
                None => now_ms.saturating_add(route.group_wait_ms.max(0)),
            });
        }
    }

    /// Flushes the group if its flush or repeat is due; returns whether it
    /// changed, and what to send.
    fn flush(
        &mut self,
        now_ms: i64,
        route: &RouteSpec,
        id: &GroupId,
    ) -> (bool, Option<Notification>) {
        let firing: Vec<i64> = self
            .alerts
            .iter()
            .filter(|(_, alert)| alert.sendable())
            .map(|(alert_id, _)| *alert_id)
            .collect();
        let flush_due = self.flush_at_ms.is_some_and(|at| at <= now_ms);
        let repeat_due = !firing.is_empty()
            && self
                .last_sent_ms
                .is_some_and(|last| last.saturating_add(route.repeat_interval()) <= now_ms);
        if !flush_due && !repeat_due {
            return (false, None);
        }
        let resolved: Vec<i64> = self
            .alerts
            .iter()
            .filter(|(alert_id, alert)| {
                route.send_resolved
                    && !alert.firing
                    && alert.silenced_by.is_none()
                    && self.notified_firing.contains(alert_id)
            })
            .map(|(alert_id, _)| *alert_id)
            .collect();
        let new = firing
            .iter()
            .any(|alert_id| !self.notified_firing.contains(alert_id));
        let changed = new || !resolved.is_empty();

        self.flush_at_ms = None;
        let gone: Vec<i64> = self
            .alerts
            .iter()
            .filter(|(_, alert)| !alert.firing)
            .map(|(alert_id, _)| *alert_id)
            .collect();
        for alert_id in gone {
            self.alerts.remove(&alert_id);
            self.notified_firing.remove(&alert_id);
        }
        if !changed && !repeat_due {
            return (true, None);
        }
        self.last_sent_ms = Some(now_ms);
        self.notified_firing = firing.iter().copied().collect();
        let notification = Notification {
            route_id: route.id,
            receiver_id: route.receiver_id,
            group_key: id.1.clone(),
            group_labels: self.group_labels.clone(),
            firing,
            resolved,
            repeat: !changed,
        };
        (true, Some(notification))
    }
}

/// The lowest id of the silences active at `now_ms` that match.
fn silence_for<'a>(
    silences: impl IntoIterator<Item = &'a SilenceSpec>,
    labels: &AlertLabels,
    now_ms: i64,
) -> Option<i64> {
    silences
        .into_iter()
        .filter(|silence| silence.is_active(now_ms) && labels.matches(&silence.matchers))
        .map(|silence| silence.id)
        .min()
}

/// The first time after `after_ms` when the alert's silence mark differs
/// from the one it has.
fn next_mark_change(silences: &[SilenceSpec], alert: &GroupAlert, after_ms: i64) -> Option<i64> {
    let matching: Vec<&SilenceSpec> = silences
        .iter()
        .filter(|silence| alert.labels.matches(&silence.matchers))
        .collect();
    let mut times: Vec<i64> = matching
        .iter()
        .flat_map(|silence| [silence.starts_at_ms, silence.ends_at_ms])
        .filter(|&at| at > after_ms)
        .collect();
    times.sort_unstable();
    times.dedup();
    times
        .into_iter()
        .find(|&at| silence_for(matching.iter().copied(), &alert.labels, at) != alert.silenced_by)
}

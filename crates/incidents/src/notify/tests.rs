//! Dispatcher scenarios. Every scenario also runs with a restart after
//! each flush (restore the persisted groups, observe the incidents again)
//! and must send exactly the same notifications.

use serde_json::{Value, json};

use super::*;
use crate::{IncidentKey, IncidentsError, Reason, Severity, Workload};

/// 2024-05-01T12:00:00Z.
const T0: i64 = 1_714_564_800_000;

fn at(seconds: i64) -> i64 {
    T0 + seconds * 1000
}

fn seconds(ms: i64) -> i64 {
    (ms - T0) / 1000
}

fn labels(cluster: &str, workload: &str, reason: Reason) -> AlertLabels {
    AlertLabels::of_incident(
        cluster,
        &IncidentKey {
            namespace: Some("shop".into()),
            workload: Workload::new("Deployment", workload),
            container: Some("app".into()),
            reason,
        },
    )
}

fn node_labels(cluster: &str, node: &str, reason: Reason) -> AlertLabels {
    AlertLabels::of_incident(
        cluster,
        &IncidentKey {
            namespace: None,
            workload: Workload::new("Node", node),
            container: None,
            reason,
        },
    )
}

fn matchers(value: Value) -> Vec<Matcher> {
    parse_matchers(&value).expect("matchers")
}

/// A route to `receiver_id` taking the alerts `matchers` match, grouped by
/// cluster, with the default timing.
fn route(id: i64, receiver_id: i64, matchers_json: Value) -> RouteSpec {
    RouteSpec {
        matchers: matchers(matchers_json),
        group_by: vec![Label::Cluster],
        ..RouteSpec::new(id, receiver_id)
    }
}

fn silence(id: i64, matchers_json: Value, from_s: i64, to_s: i64) -> SilenceSpec {
    SilenceSpec {
        id,
        matchers: matchers(matchers_json),
        starts_at_ms: at(from_s),
        ends_at_ms: at(to_s),
    }
}

enum Event {
    Fire(i64, AlertLabels),
    Resolve(i64),
    Routes(Vec<RouteSpec>),
    Silences(Vec<SilenceSpec>),
}

use Event::*;

/// A caller: a dispatcher, the store it persists to, and a log of what it
/// was told to do.
struct Caller {
    dispatcher: Dispatcher,
    routes: Vec<RouteSpec>,
    silences: Vec<SilenceSpec>,
    /// The incidents as last observed.
    incidents: BTreeMap<i64, Alert>,
    stored_groups: BTreeMap<(i64, String), GroupState>,
    stored_marks: BTreeMap<i64, Option<i64>>,
    now: i64,
    flushes: usize,
    /// Restart after this many flushes.
    restart_after: Option<usize>,
    log: Vec<String>,
}

impl Caller {
    fn new(
        routes: Vec<RouteSpec>,
        silences: Vec<SilenceSpec>,
        restart_after: Option<usize>,
    ) -> Self {
        Caller {
            dispatcher: Dispatcher::new(routes.clone(), silences.clone()),
            routes,
            silences,
            incidents: BTreeMap::new(),
            stored_groups: BTreeMap::new(),
            stored_marks: BTreeMap::new(),
            now: i64::MIN,
            flushes: 0,
            restart_after,
            log: Vec::new(),
        }
    }

    fn apply(&mut self, event: Event, now: i64) {
        self.now = now;
        match event {
            Fire(id, labels) => self.observe(Alert {
                id,
                labels,
                firing: true,
            }),
            Resolve(id) => {
                let mut alert = self.incidents[&id].clone();
                alert.firing = false;
                self.observe(alert);
            }
            Routes(routes) => {
                self.routes = routes.clone();
                self.dispatcher.set_routes(routes);
            }
            Silences(silences) => {
                self.silences = silences.clone();
                self.dispatcher.set_silences(silences);
            }
        }
        self.flush(now);
    }

    fn observe(&mut self, alert: Alert) {
        let mark = self.dispatcher.observe(&alert, self.now);
        if let Some(silence) = mark {
            self.log.push(format!(
                "{}s {} silenced by {silence}",
                seconds(self.now),
                alert.id
            ));
        }
        let before = format!("{:?}", self.dispatcher);
        assert_eq!(self.dispatcher.observe(&alert, self.now), mark);
        assert_eq!(
            format!("{:?}", self.dispatcher),
            before,
            "observing twice changes nothing"
        );
        self.stored_marks.insert(alert.id, mark);
        self.incidents.insert(alert.id, alert);
    }

    /// Calls `due` whenever `next_due` says, up to `until`.
    fn advance(&mut self, until: i64) {
        for _ in 0..1000 {
            match self.dispatcher.next_due() {
                Some(due) if due <= until => self.flush(due.max(self.now)),
                _ => return,
            }
        }
        panic!("next_due does not advance");
    }

    fn flush(&mut self, now: i64) {
        self.now = now;
        let flush = self.dispatcher.due(now);
        let t = seconds(now);
        for (alert, mark) in &flush.silenced {
            let mark = mark.map_or("none".to_owned(), |id| id.to_string());
            self.log.push(format!("{t}s {alert} silenced by {mark}"));
            self.stored_marks.insert(*alert, mark.parse().ok());
        }
        for n in &flush.notifications {
            let key = n.group_key.replace('"', "");
            let repeat = if n.repeat { " repeat" } else { "" };
            let resolved = if n.resolved.is_empty() {
                String::new()
            } else {
                format!(" resolved {:?}", n.resolved)
            };
            self.log.push(format!(
                "{t}s {key} -> {} firing {:?}{resolved}{repeat}",
                n.receiver_id, n.firing
            ));
            assert_eq!(
                n.group_key.split(':').next(),
                Some(&*n.route_id.to_string())
            );
        }
        for (route_id, key, state) in &flush.groups {
            self.stored_groups
                .insert((*route_id, key.clone()), state.clone());
        }
        for (route_id, key) in &flush.deleted_groups {
            self.log
                .push(format!("{t}s deleted {}", key.replace('"', "")));
            assert!(key.starts_with(&format!("{route_id}:")));
            self.stored_groups.remove(&(*route_id, key.clone()));
        }
        assert_eq!(
            self.dispatcher.due(now),
            Flush::default(),
            "due twice at {t}s"
        );
        self.flushes += 1;
        if self.restart_after == Some(self.flushes) {
            self.restart();
        }
    }

    /// What the service does at startup: restore the stored groups,
    /// observe the open incidents, and the resolved ones still held.
    fn restart(&mut self) {
        let mut dispatcher = Dispatcher::new(self.routes.clone(), self.silences.clone());
        for ((route_id, key), state) in &self.stored_groups {
            dispatcher.restore(*route_id, key.clone(), state.clone());
        }
        for alert in self.incidents.values().filter(|alert| alert.firing) {
            let mark = dispatcher.observe(alert, self.now);
            assert_eq!(self.stored_marks.get(&alert.id), Some(&mark));
        }
        for id in dispatcher.alert_ids() {
            let alert = &self.incidents[&id];
            if !alert.firing {
                dispatcher.observe(alert, self.now);
            }
        }
        assert_eq!(dispatcher.due(self.now), Flush::default(), "restart");
        assert_eq!(dispatcher.alert_ids(), self.dispatcher.alert_ids());
        self.dispatcher = dispatcher;
    }
}

/// Runs `script` (events at seconds after T0, then `due` until `end_s`),
/// expecting `log`; then again with a restart after every flush.
fn check(
    routes: Vec<RouteSpec>,
    silences: Vec<SilenceSpec>,
    script: impl Fn() -> Vec<(i64, Event)>,
    end_s: i64,
    expected: &[&str],
) {
    let run = |restart_after| {
        let mut caller = Caller::new(routes.clone(), silences.clone(), restart_after);
        for (t, event) in script() {
            caller.advance(at(t));
            caller.apply(event, at(t));
        }
        caller.advance(at(end_s));
        caller
    };
    let uninterrupted = run(None);
    assert_eq!(uninterrupted.log, expected);
    let stored: BTreeMap<_, _> = uninterrupted
        .dispatcher
        .groups
        .iter()
        .map(|(id, state)| (id.clone(), state.clone()))
        .collect();
    assert_eq!(
        uninterrupted.stored_groups, stored,
        "the store is the state"
    );
    for restart_after in 1..=uninterrupted.flushes {
        let restarted = run(Some(restart_after));
        assert_eq!(
            restarted.log, expected,
            "restarted after flush {restart_after}"
        );
        assert_eq!(restarted.stored_groups, uninterrupted.stored_groups);
        assert_eq!(restarted.stored_marks, uninterrupted.stored_marks);
        assert_eq!(
            restarted.dispatcher.next_due(),
            uninterrupted.dispatcher.next_due()
        );
    }
}

#[test]
fn group_wait_then_group_interval_batching() {
    check(
        vec![route(1, 10, json!([]))],
        vec![],
        || {
            vec![
                (0, Fire(1, labels("aks", "web", Reason::OomKilled))),
                (10, Fire(2, labels("aks", "api", Reason::Error))),
                (29, Fire(3, labels("gke", "web", Reason::OomKilled))),
                (60, Fire(4, labels("aks", "db", Reason::CrashLoopBackOff))),
                (120, Fire(5, labels("aks", "queue", Reason::Error))),
                // more occurrences of a notified alert: nothing to send
                (200, Fire(1, labels("aks", "web", Reason::OomKilled))),
                // quiet for longer than the interval: sent at once
                (900, Fire(6, labels("aks", "cron", Reason::Error))),
            ]
        },
        1000,
        &[
            "30s 1:{cluster=aks} -> 10 firing [1, 2]",
            "59s 1:{cluster=gke} -> 10 firing [3]",
            "330s 1:{cluster=aks} -> 10 firing [1, 2, 4, 5]",
            "900s 1:{cluster=aks} -> 10 firing [1, 2, 4, 5, 6]",
        ],
    );
}

#[test]
fn repeat_interval() {
    let hourly = RouteSpec {
        repeat_interval_ms: 3600 * 1000,
        ..route(1, 10, json!([]))
    };
    check(
        vec![hourly],
        vec![],
        || {
            vec![
                (0, Fire(1, labels("aks", "web", Reason::OomKilled))),
                (100, Fire(1, labels("aks", "web", Reason::OomKilled))),
                (4000, Fire(2, labels("aks", "api", Reason::Error))),
            ]
        },
        8000,
        &[
            "30s 1:{cluster=aks} -> 10 firing [1]",
            "3630s 1:{cluster=aks} -> 10 firing [1] repeat",
            "4000s 1:{cluster=aks} -> 10 firing [1, 2]",
            "7600s 1:{cluster=aks} -> 10 firing [1, 2] repeat",
        ],
    );
}

#[test]
fn resolved_notifications_on() {
    check(
        vec![route(1, 10, json!([]))],
        vec![],
        || {
            vec![
                (0, Fire(1, labels("aks", "web", Reason::OomKilled))),
                (5, Fire(2, labels("aks", "api", Reason::Error))),
                (100, Resolve(1)),
                (400, Resolve(2)),
                // resolved before its group ever notified: dropped silently
                (1000, Fire(3, labels("aks", "web", Reason::Error))),
                (1010, Resolve(3)),
            ]
        },
        2000,
        &[
            "30s 1:{cluster=aks} -> 10 firing [1, 2]",
            "330s 1:{cluster=aks} -> 10 firing [2] resolved [1]",
            "630s 1:{cluster=aks} -> 10 firing [] resolved [2]",
            "630s deleted 1:{cluster=aks}",
            "1010s deleted 1:{cluster=aks}",
        ],
    );
}

#[test]
fn resolved_notifications_off() {
    let quiet = RouteSpec {
        send_resolved: false,
        ..route(1, 10, json!([]))
    };
    check(
        vec![quiet],
        vec![],
        || {
            vec![
                (0, Fire(1, labels("aks", "web", Reason::OomKilled))),
                (5, Fire(2, labels("aks", "api", Reason::Error))),
                (100, Resolve(1)),
                (400, Resolve(2)),
                // reopened: new again
                (500, Fire(1, labels("aks", "web", Reason::OomKilled))),
            ]
        },
        1000,
        &[
            "30s 1:{cluster=aks} -> 10 firing [1, 2]",
            "400s deleted 1:{cluster=aks}",
            "530s 1:{cluster=aks} -> 10 firing [1]",
        ],
    );
}

#[test]
fn reopened_alerts_are_new_again_unless_the_resolution_was_never_sent() {
    check(
        vec![route(1, 10, json!([]))],
        vec![],
        || {
            vec![
                (0, Fire(1, labels("aks", "web", Reason::OomKilled))),
                (100, Resolve(1)),
                (400, Fire(1, labels("aks", "web", Reason::OomKilled))),
                // flapping within the group interval: the receiver never
                // heard of the resolution, so the firing is not new
                (500, Resolve(1)),
                (600, Fire(1, labels("aks", "web", Reason::OomKilled))),
            ]
        },
        1000,
        &[
            "30s 1:{cluster=aks} -> 10 firing [1]",
            "330s 1:{cluster=aks} -> 10 firing [] resolved [1]",
            "330s deleted 1:{cluster=aks}",
            "430s 1:{cluster=aks} -> 10 firing [1]",
        ],
    );
}

#[test]
fn continue_matching_to_several_receivers() {
    let routes = vec![
        RouteSpec {
            continue_matching: true,
            ..route(
                1,
                10,
                json!([{"label": "cluster", "op": "=", "value": "aks"}]),
            )
        },
        RouteSpec {
            group_by: vec![Label::Reason],
            ..route(
                2,
                20,
                json!([{"label": "reason", "op": "=~", "value": "OOM.*"}]),
            )
        },
        route(3, 30, json!([])),
    ];
    check(
        routes,
        vec![],
        || {
            vec![
                // routes 1 and 2, which does not continue
                (0, Fire(1, labels("aks", "web", Reason::OomKilled))),
                (0, Fire(2, labels("gke", "web", Reason::OomKilled))),
                (0, Fire(3, labels("gke", "api", Reason::Error))),
                // routes 1 and 3
                (0, Fire(4, labels("aks", "api", Reason::Error))),
            ]
        },
        100,
        &[
            "30s 1:{cluster=aks} -> 10 firing [1, 4]",
            "30s 2:{reason=OOMKilled} -> 20 firing [1, 2]",
            "30s 3:{cluster=aks} -> 30 firing [4]",
            "30s 3:{cluster=gke} -> 30 firing [3]",
        ],
    );
}

#[test]
fn silences_start_end_and_removal() {
    check(
        vec![route(1, 10, json!([]))],
        vec![silence(
            7,
            json!([{"label": "reason", "op": "=", "value": "OOMKilled"}]),
            0,
            600,
        )],
        || {
            vec![
                (0, Fire(1, labels("aks", "web", Reason::OomKilled))),
                (10, Fire(2, labels("aks", "api", Reason::Error))),
                (
                    700,
                    Silences(vec![silence(
                        8,
                        json!([{"label": "reason", "op": "=", "value": "Error"}]),
                        1000,
                        5000,
                    )]),
                ),
                // resolved while silenced: no notification
                (1200, Resolve(2)),
                (1300, Fire(3, labels("aks", "cron", Reason::Error))),
                // removed: 3 is new
                (2000, Silences(vec![])),
            ]
        },
        2100,
        &[
            "0s 1 silenced by 7",
            "40s 1:{cluster=aks} -> 10 firing [2]",
            // the silence ends: 1 is new
            "600s 1 silenced by none",
            "600s 1:{cluster=aks} -> 10 firing [1, 2]",
            "1000s 2 silenced by 8",
            "1200s 2 silenced by 8",
            "1300s 3 silenced by 8",
            "2000s 3 silenced by none",
            "2000s 1:{cluster=aks} -> 10 firing [1, 3]",
        ],
    );
}

#[test]
fn silenced_alerts_are_not_repeated_and_count_as_new_when_unmuted() {
    let hourly = RouteSpec {
        repeat_interval_ms: 3600 * 1000,
        ..route(1, 10, json!([]))
    };
    check(
        vec![hourly],
        vec![silence(
            5,
            json!([{"label": "workload", "op": "=", "value": "api"}]),
            100,
            5000,
        )],
        || {
            vec![
                (0, Fire(1, labels("aks", "web", Reason::OomKilled))),
                (0, Fire(2, labels("aks", "api", Reason::OomKilled))),
            ]
        },
        8000,
        &[
            "30s 1:{cluster=aks} -> 10 firing [1, 2]",
            "100s 2 silenced by 5",
            "3630s 1:{cluster=aks} -> 10 firing [1] repeat",
            "5000s 2 silenced by none",
            "5000s 1:{cluster=aks} -> 10 firing [1, 2]",
        ],
    );
}

#[test]
fn unrouted_alerts_and_route_changes() {
    let aks = route(
        1,
        10,
        json!([{"label": "cluster", "op": "=", "value": "aks"}]),
    );
    let gke = route(
        2,
        20,
        json!([{"label": "cluster", "op": "=", "value": "gke"}]),
    );
    let all = route(3, 30, json!([]));
    let by_reason = RouteSpec {
        group_by: vec![Label::Cluster, Label::Reason],
        ..all.clone()
    };
    check(
        vec![aks.clone()],
        vec![silence(
            9,
            json!([{"label": "cluster", "op": "=", "value": "gke"}]),
            0,
            100,
        )],
        move || {
            vec![
                // no route: held in no group, but its silence is reported
                (0, Fire(1, labels("gke", "web", Reason::OomKilled))),
                (200, Routes(vec![aks.clone(), gke.clone()])),
                (300, Routes(vec![aks.clone()])),
                (400, Routes(vec![all.clone()])),
                // grouped differently: new groups
                (500, Routes(vec![by_reason.clone()])),
            ]
        },
        1000,
        &[
            "0s 1 silenced by 9",
            "100s 1 silenced by none",
            "230s 2:{cluster=gke} -> 20 firing [1]",
            "300s deleted 2:{cluster=gke}",
            "430s 3:{cluster=gke} -> 30 firing [1]",
            "500s deleted 3:{cluster=gke}",
            "530s 3:{cluster=gke,reason=OOMKilled} -> 30 firing [1]",
        ],
    );
}

#[test]
fn restart_after_every_flush_is_duplicate_free() {
    // everything at once: batching, repeats, resolutions, silences and
    // route changes (`check` restarts after every flush of this run)
    let routes = vec![
        RouteSpec {
            continue_matching: true,
            repeat_interval_ms: 1800 * 1000,
            ..route(
                1,
                10,
                json!([{"label": "severity", "op": "=", "value": "critical"}]),
            )
        },
        RouteSpec {
            group_by: vec![],
            group_wait_ms: 0,
            group_interval_ms: 60 * 1000,
            ..route(2, 20, json!([]))
        },
    ];
    let narrowed = vec![routes[0].clone()];
    check(
        routes,
        vec![silence(
            3,
            json!([{"label": "workload", "op": "=~", "value": "db|queue"}]),
            50,
            2000,
        )],
        move || {
            vec![
                (0, Fire(1, labels("aks", "web", Reason::CrashLoopBackOff))),
                (20, Fire(2, labels("aks", "db", Reason::ImagePullBackOff))),
                (
                    40,
                    Fire(3, node_labels("aks", "node-1", Reason::DiskPressure)),
                ),
                (100, Resolve(3)),
                (400, Fire(4, labels("aks", "queue", Reason::Unschedulable))),
                (500, Resolve(1)),
                (
                    700,
                    Fire(3, node_labels("aks", "node-1", Reason::DiskPressure)),
                ),
                (2500, Routes(narrowed.clone())),
            ]
        },
        6000,
        &[
            "0s 2:{cluster=aks,container=app,namespace=shop,reason=CrashLoopBackOff,severity=critical,workload=web,workload_kind=Deployment} -> 20 firing [1]",
            "20s 2:{cluster=aks,container=app,namespace=shop,reason=ImagePullBackOff,severity=critical,workload=db,workload_kind=Deployment} -> 20 firing [2]",
            "30s 1:{cluster=aks} -> 10 firing [1, 2]",
            "40s 2:{cluster=aks,reason=DiskPressure,severity=warning,workload=node-1,workload_kind=Node} -> 20 firing [3]",
            "50s 2 silenced by 3",
            "100s 2:{cluster=aks,reason=DiskPressure,severity=warning,workload=node-1,workload_kind=Node} -> 20 firing [] resolved [3]",
            "100s deleted 2:{cluster=aks,reason=DiskPressure,severity=warning,workload=node-1,workload_kind=Node}",
            "400s 4 silenced by 3",
            "500s 1:{cluster=aks} -> 10 firing [] resolved [1]",
            "500s 2:{cluster=aks,container=app,namespace=shop,reason=CrashLoopBackOff,severity=critical,workload=web,workload_kind=Deployment} -> 20 firing [] resolved [1]",
            "500s deleted 2:{cluster=aks,container=app,namespace=shop,reason=CrashLoopBackOff,severity=critical,workload=web,workload_kind=Deployment}",
            "700s 2:{cluster=aks,reason=DiskPressure,severity=warning,workload=node-1,workload_kind=Node} -> 20 firing [3]",
            "2000s 2 silenced by none",
            "2000s 4 silenced by none",
            // muted after it was notified: new again when unmuted
            "2000s 1:{cluster=aks} -> 10 firing [2, 4]",
            "2000s 2:{cluster=aks,container=app,namespace=shop,reason=ImagePullBackOff,severity=critical,workload=db,workload_kind=Deployment} -> 20 firing [2]",
            "2000s 2:{cluster=aks,container=app,namespace=shop,reason=Unschedulable,severity=critical,workload=queue,workload_kind=Deployment} -> 20 firing [4]",
            "2500s deleted 2:{cluster=aks,container=app,namespace=shop,reason=ImagePullBackOff,severity=critical,workload=db,workload_kind=Deployment}",
            "2500s deleted 2:{cluster=aks,container=app,namespace=shop,reason=Unschedulable,severity=critical,workload=queue,workload_kind=Deployment}",
            // a warning: no route takes it any more
            "2500s deleted 2:{cluster=aks,reason=DiskPressure,severity=warning,workload=node-1,workload_kind=Node}",
            "3800s 1:{cluster=aks} -> 10 firing [2, 4] repeat",
            "5600s 1:{cluster=aks} -> 10 firing [2, 4] repeat",
        ],
    );
}

#[test]
fn next_due() {
    let mut dispatcher = Dispatcher::new(
        vec![route(1, 10, json!([]))],
        vec![silence(
            4,
            json!([{"label": "workload", "op": "=", "value": "api"}]),
            1000,
            2000,
        )],
    );
    assert_eq!(dispatcher.next_due(), None);
    let web = Alert {
        id: 1,
        labels: labels("aks", "web", Reason::Error),
        firing: true,
    };
    assert_eq!(dispatcher.observe(&web, at(0)), None);
    assert_eq!(dispatcher.next_due(), Some(at(0)), "a change to persist");
    let flush = dispatcher.due(at(0));
    assert_eq!((flush.groups.len(), flush.notifications.len()), (1, 0));
    assert_eq!(dispatcher.next_due(), Some(at(30)), "group wait");
    assert_eq!(dispatcher.due(at(29)), Flush::default());
    assert_eq!(dispatcher.due(at(30)).notifications.len(), 1);
    assert_eq!(
        dispatcher.next_due(),
        Some(at(30) + DEFAULT_REPEAT_INTERVAL_MS)
    );
    // a silence boundary matters only for an alert it matches
    let api = Alert {
        id: 2,
        labels: labels("aks", "api", Reason::Error),
        firing: true,
    };
    dispatcher.observe(&api, at(100));
    dispatcher.due(at(100));
    assert_eq!(dispatcher.next_due(), Some(at(330)), "group interval");
    dispatcher.due(at(330));
    assert_eq!(dispatcher.next_due(), Some(at(1000)), "silence starts");
    assert_eq!(dispatcher.due(at(1000)).silenced, [(2, Some(4))]);
    assert_eq!(dispatcher.next_due(), Some(at(2000)), "silence ends");
    dispatcher.set_silences(vec![]);
    assert_eq!(dispatcher.next_due(), Some(at(1000)), "now");
    let flush = dispatcher.due(at(1001));
    assert_eq!(flush.silenced, [(2, None)]);
    assert_eq!(flush.notifications[0].firing, [1, 2], "2 is new again");
    assert_eq!(
        dispatcher.next_due(),
        Some(at(1001) + DEFAULT_REPEAT_INTERVAL_MS)
    );
    // both resolve; no silence matters any more
    for alert in [web, api] {
        dispatcher.observe(
            &Alert {
                firing: false,
                ..alert
            },
            at(1100),
        );
    }
    assert_eq!(dispatcher.due(at(1100)).notifications, []);
    assert_eq!(dispatcher.next_due(), Some(at(1301)));
    let flush = dispatcher.due(at(1301));
    assert_eq!(flush.notifications[0].resolved, [1, 2]);
    assert_eq!(flush.deleted_groups.len(), 1);
    assert_eq!(dispatcher.next_due(), None);
    assert_eq!(dispatcher.alert_ids(), BTreeSet::new());
}

#[test]
fn restore_of_a_group_whose_route_is_gone() {
    let mut dispatcher = Dispatcher::new(vec![route(1, 10, json!([]))], vec![]);
    let alert = Alert {
        id: 1,
        labels: labels("aks", "web", Reason::Error),
        firing: true,
    };
    dispatcher.observe(&alert, at(0));
    let flush = dispatcher.due(at(30));
    let (_, key, state) = flush.groups[0].clone();
    assert_eq!(key, r#"1:{cluster="aks"}"#);

    let mut restarted = Dispatcher::new(vec![route(2, 20, json!([]))], vec![]);
    restarted.restore(1, key.clone(), state);
    assert_eq!(restarted.alert_ids(), [1].into());
    let flush = restarted.due(at(40));
    assert_eq!(flush.deleted_groups, [(1, key)]);
    assert_eq!(flush.groups[0].1, r#"2:{cluster="aks"}"#);
    assert_eq!(restarted.due(at(70)).notifications[0].receiver_id, 20);
}

#[test]
fn group_state_json_is_stable() {
    let mut dispatcher = Dispatcher::new(
        vec![route(1, 10, json!([]))],
        vec![silence(
            9,
            json!([{"label": "namespace", "op": "=", "value": ""}]),
            0,
            100,
        )],
    );
    let web = Alert {
        id: 1,
        labels: labels("aks", "web", Reason::OomKilled),
        firing: true,
    };
    let node = Alert {
        id: 2,
        labels: node_labels("aks", "node-1", Reason::NodeNotReady),
        firing: true,
    };
    dispatcher.observe(&web, at(0));
    assert_eq!(dispatcher.observe(&node, at(0)), Some(9));
    let flush = dispatcher.due(at(30));
    assert_eq!(
        flush.notifications[0].group_labels,
        [("cluster".to_owned(), "aks".to_owned())].into()
    );
    let (route_id, key, state) = &flush.groups[0];
    let json = serde_json::to_value(state).expect("serialize");
    assert_eq!(
        json,
        json!({
            "group_labels": {"cluster": "aks"},
            "alerts": {
                "1": {
                    "labels": {
                        "cluster": "aks", "namespace": "shop", "workload_kind": "Deployment",
                        "workload": "web", "container": "app", "reason": "OOMKilled",
                        "severity": "warning"
                    },
                    "firing": true,
                    "silenced_by": null
                },
                "2": {
                    "labels": {
                        "cluster": "aks", "namespace": null, "workload_kind": "Node",
                        "workload": "node-1", "container": null, "reason": "NodeNotReady",
                        "severity": "critical"
                    },
                    "firing": true,
                    "silenced_by": 9
                }
            },
            "notified_firing": [1],
            "last_sent_ms": at(30),
            "flush_at_ms": null
        })
    );
    assert_eq!(
        serde_json::from_value::<GroupState>(json).ok().as_ref(),
        Some(state)
    );
    assert_eq!(dispatcher.group(*route_id, key), Some(state));
}

#[test]
fn group_keys() {
    let web = labels("aks", "web", Reason::OomKilled);
    let node = node_labels("aks", "node-1", Reason::NodeNotReady);
    let check =
        |group_by: Vec<Label>, labels: &AlertLabels, expected: &str| {
            let route = RouteSpec {
                group_by,
                ..RouteSpec::new(7, 1)
            };
            let (key, group_labels) = route.group_of(labels);
            assert_eq!(key, expected);
            assert!(group_labels.iter().all(|(name, value)| {
                key.contains(&format!("{name}={}", matcher::quoted(value)))
            }));
        };
    check(
        vec![],
        &web,
        r#"7:{cluster="aks",container="app",namespace="shop",reason="OOMKilled",severity="warning",workload="web",workload_kind="Deployment"}"#,
    );
    check(
        vec![],
        &node,
        r#"7:{cluster="aks",reason="NodeNotReady",severity="critical",workload="node-1",workload_kind="Node"}"#,
    );
    check(
        vec![Label::Reason, Label::Cluster, Label::Reason],
        &web,
        r#"7:{cluster="aks",reason="OOMKilled"}"#,
    );
    check(vec![Label::Namespace], &node, "7:{}");
    let odd = AlertLabels {
        cluster: "a\"b\\c".into(),
        ..web.clone()
    };
    check(vec![Label::Cluster], &odd, r#"7:{cluster="a\"b\\c"}"#);
}

#[test]
fn matchers_match() {
    let web = labels("aks", "web", Reason::OomKilled);
    let node = node_labels("gke", "node-1", Reason::NodeNotReady);
    let check = |label: &str, op: &str, value: &str, expected: [bool; 2]| {
        let matcher = &matchers(json!([{"label": label, "op": op, "value": value}]))[0];
        let actual = [matcher.matches(&web), matcher.matches(&node)];
        assert_eq!(actual, expected, "{matcher}");
    };
    check("cluster", "=", "aks", [true, false]);
    check("cluster", "!=", "aks", [false, true]);
    check("reason", "=~", "OOM.*|Node.*", [true, true]);
    // anchored at both ends, like Alertmanager
    check("reason", "=~", "OOM", [false, false]);
    check("reason", "=~", "Killed", [false, false]);
    check("reason", "!~", "OOM", [true, true]);
    check("workload", "=~", "web|node", [true, false]);
    check("workload_kind", "=", "Node", [false, true]);
    check("severity", "=", "critical", [false, true]);
    // a missing label is the empty string
    check("namespace", "=", "", [false, true]);
    check("namespace", "!=", "shop", [false, true]);
    check("namespace", "!=", "", [true, false]);
    check("container", "=~", ".*", [true, true]);
    check("container", "=~", ".+", [true, false]);
    check("container", "!~", ".+", [false, true]);
    assert!(web.matches(&[]));
    assert!(!web.matches(&matchers(json!([
        {"label": "cluster", "op": "=", "value": "aks"},
        {"label": "reason", "op": "=", "value": "Error"}
    ]))));
    assert_eq!(web.get(Label::Severity), Some("warning"));
    assert_eq!(node.get(Label::Container), None);
    assert_eq!(node.severity, Severity::Critical);
}

#[test]
fn matchers_parse() {
    let check = |value: Value, expected: Result<&str, &str>| {
        let parsed = parse_matchers(&value);
        match (&parsed, expected) {
            (Ok(matchers), Ok(expected)) => {
                let text: Vec<String> = matchers.iter().map(ToString::to_string).collect();
                assert_eq!(text.join(", "), expected);
                let json = serde_json::to_value(matchers).expect("serialize");
                assert_eq!(json, value);
                assert_eq!(
                    serde_json::from_value::<Vec<Matcher>>(json).ok().as_ref(),
                    Some(matchers)
                );
            }
            (Err(error), Err(expected)) => assert_eq!(error.to_string(), expected),
            (parsed, expected) => panic!("{parsed:?} != {expected:?}"),
        }
    };
    check(json!([]), Ok(""));
    check(
        json!([
            {"label": "cluster", "op": "=", "value": "aks"},
            {"label": "namespace", "op": "!=", "value": ""},
            {"label": "reason", "op": "=~", "value": "OOM.*"},
            {"label": "workload", "op": "!~", "value": "say \"hi\""}
        ]),
        Ok(r#"cluster="aks", namespace!="", reason=~"OOM.*", workload!~"say \"hi\"""#),
    );
    check(
        json!({"label": "cluster"}),
        Err(r#"matchers must be a JSON array of {"label", "op", "value"} objects, not an object"#),
    );
    check(
        json!([{"label": "cluster", "op": "=", "value": "aks"}, "cluster=aks"]),
        Err(
            r#"matchers[1] "cluster=aks" is invalid: expected an object with `label`, `op` and `value`, not a string"#,
        ),
    );
    check(
        json!([{"label": "pod", "op": "=", "value": "web"}]),
        Err(
            r#"matchers[0] {"label":"pod","op":"=","value":"web"} is invalid: unknown label `pod`; expected one of cluster, namespace, workload_kind, workload, container, reason, severity"#,
        ),
    );
    check(
        json!([{"label": "cluster", "op": "==", "value": "aks"}]),
        Err(
            r#"matchers[0] {"label":"cluster","op":"==","value":"aks"} is invalid: unknown matcher operator `==`; expected one of =, !=, =~, !~"#,
        ),
    );
    check(
        json!([{"label": "cluster", "op": "="}]),
        Err(r#"matchers[0] {"label":"cluster","op":"="} is invalid: missing field `value`"#),
    );
    check(
        json!([{"label": "cluster", "op": "=", "value": 3}]),
        Err(
            r#"matchers[0] {"label":"cluster","op":"=","value":3} is invalid: `value` must be a string, not a number"#,
        ),
    );
    check(
        json!([{"label": "cluster", "op": "=", "value": "aks", "regex": true}]),
        Err(
            r#"matchers[0] {"label":"cluster","op":"=","value":"aks","regex":true} is invalid: unknown field `regex`; expected `label`, `op` and `value`"#,
        ),
    );
    check(
        json!([{"label": "reason", "op": "=~", "value": "(OOM"}]),
        Err(
            r#"matchers[0] {"label":"reason","op":"=~","value":"(OOM"} is invalid: invalid regular expression `(OOM`"#,
        ),
    );
    // the regex crate's explanation is kept as the source
    let error = parse_matchers(&json!([{"label": "reason", "op": "!~", "value": "a)"}]))
        .expect_err("bad regex");
    assert!(
        matches!(
            &error,
            IncidentsError::InvalidMatcher {
                index: 0,
                source: Some(_),
                ..
            }
        ),
        "{error:?}"
    );
    let source = std::error::Error::source(&error).map(ToString::to_string);
    assert!(source.is_some_and(|text| text.contains("unopened group")));
    // the same check when reading a matcher with serde
    let error =
        serde_json::from_value::<Matcher>(json!({"label": "reason", "op": "=~", "value": "["}))
            .expect_err("bad regex");
    assert!(
        error
            .to_string()
            .starts_with("invalid regular expression `[` in a matcher"),
        "{error}"
    );
    assert!(
        matches!(Matcher::new(Label::Reason, MatchOp::Regex, "["), Err(IncidentsError::InvalidMatcherRegex { pattern, .. }) if pattern == "[")
    );
    assert_eq!("severity".parse::<Label>(), Ok(Label::Severity));
    assert_eq!("!~".parse::<MatchOp>(), Ok(MatchOp::NotRegex));
}

#[test]
fn routes_read_with_defaults() {
    let route: RouteSpec = serde_json::from_value(json!({
        "id": 1,
        "receiver_id": 2,
        "matchers": [{"label": "cluster", "op": "=", "value": "aks"}],
        "group_by": ["cluster", "workload_kind"]
    }))
    .expect("route");
    assert_eq!(
        route,
        RouteSpec {
            matchers: matchers(json!([{"label": "cluster", "op": "=", "value": "aks"}])),
            group_by: vec![Label::Cluster, Label::WorkloadKind],
            ..RouteSpec::new(1, 2)
        }
    );
    assert_eq!(
        (
            route.group_wait_ms,
            route.group_interval_ms,
            route.repeat_interval_ms
        ),
        (30_000, 300_000, 14_400_000)
    );
    assert!(route.send_resolved && !route.continue_matching);
    let error = serde_json::from_value::<RouteSpec>(
        json!({"id": 1, "receiver_id": 2, "group_by": ["pod"]}),
    )
    .expect_err("unknown label");
    assert!(
        error.to_string().contains("unknown variant `pod`"),
        "{error}"
    );
}

//! Detector scenarios with realistic pods and nodes; builders shared with
//! the book's tests.

use serde_json::{Value, json};

use super::*;
use crate::NamePattern;

/// 2024-05-01T12:00:00Z.
pub(crate) const T0: i64 = 1_714_564_800_000;
pub(crate) const MINUTE: i64 = 60_000;

/// Sets `value` at a JSON pointer, creating objects on the way.
pub(crate) fn set(mut object: Value, pointer: &str, value: Value) -> Value {
    let mut at = &mut object;
    for part in pointer.split('/').skip(1) {
        if !at.is_object() {
            *at = json!({});
        }
        at = at
            .as_object_mut()
            .expect("object")
            .entry(part)
            .or_insert(Value::Null);
    }
    *at = value;
    object
}

/// A running, ready pod `name` of Deployment `web` in `shop` on `node-1`,
/// with the container status `app` given.
pub(crate) fn web(name: &str, app: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "uid": format!("uid-{name}"),
            "labels": {"app": "web", "pod-template-hash": "5d8f7c9b4"},
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d8f7c9b4",
                "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "nodeName": "node-1",
            "containers": [{"name": "app", "image": "registry.example/web:1.2"}]
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [app]
        }
    })
}

/// A container status of `app`.
pub(crate) fn app(restarts: i64, state: Value, last: Value, ready: bool) -> Value {
    container("app", restarts, state, last, ready)
}

fn container(name: &str, restarts: i64, state: Value, last: Value, ready: bool) -> Value {
    json!({
        "name": name,
        "image": "registry.example/web:1.2",
        "imageID": "registry.example/web@sha256:0123",
        "restartCount": restarts,
        "ready": ready,
        "started": ready,
        "state": state,
        "lastState": last
    })
}

pub(crate) fn running() -> Value {
    json!({"running": {"startedAt": "2024-05-01T11:59:00Z"}})
}

pub(crate) fn waiting(reason: &str) -> Value {
    json!({"waiting": {"reason": reason, "message": format!("{reason} message")}})
}

/// A termination; `run` tells terminations apart (containerID, finishedAt).
pub(crate) fn terminated(reason: &str, exit_code: i64, run: u32) -> Value {
    json!({"terminated": {
        "reason": reason,
        "exitCode": exit_code,
        "containerID": format!("containerd://{run:064}"),
        "startedAt": "2024-05-01T11:58:00Z",
        "finishedAt": format!("2024-05-01T11:59:{run:02}Z")
    }})
}

pub(crate) fn healthy_web(name: &str, restarts: i64, last: Value) -> Value {
    web(name, app(restarts, running(), last, true))
}

pub(crate) fn node(conditions: &[(&str, &str)]) -> Value {
    let conditions: Vec<Value> = conditions
        .iter()
        .map(|(kind, status)| json!({"type": kind, "status": status, "reason": format!("Kubelet{kind}"), "message": format!("{kind} is {status}")}))
        .collect();
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1", "uid": "node-uid"}, "status": {"conditions": conditions}})
}

pub(crate) fn summary(observation: &Observation) -> String {
    match observation {
        Observation::Finding(f) => {
            let mut text = format!(
                "{} {}/{}",
                f.key.reason, f.key.workload.kind, f.key.workload.name
            );
            if let Some(container) = &f.container {
                text += &format!("/{container}");
            }
            text += &format!(" x{}", f.occurrences);
            if let Some(pod) = &f.pod {
                text += &format!(" @{pod}");
            }
            if let Some(code) = f.exit_code {
                text += &format!(" exit={code}");
            }
            text
        }
        Observation::Healthy(h) => {
            let mut text = format!("healthy {}/{}", h.workload.kind, h.workload.name);
            if let Some(reasons) = &h.reasons {
                let not: Vec<&str> = Reason::NODE
                    .into_iter()
                    .filter(|r| !reasons.contains(r))
                    .map(Reason::as_str)
                    .collect();
                if !not.is_empty() {
                    text += &format!(" except {}", not.join(","));
                }
            }
            text
        }
    }
}

enum Step {
    Pod(Value, i64),
    Deleted(&'static str, i64),
    Node(Value, i64),
    Tick(i64),
}

fn check(scenario: &str, config: DetectConfig, steps: Vec<(Step, &[&str])>) {
    let mut detector = Detector::new(config);
    for (i, (step, expected)) in steps.into_iter().enumerate() {
        let observations = match step {
            Step::Pod(pod, now) => detector.pod(&pod, now),
            Step::Deleted(name, now) => detector.pod_deleted("shop", name, now),
            Step::Node(node, now) => detector.node(&node, now),
            Step::Tick(now) => detector.tick(now),
        };
        let got: Vec<String> = observations.iter().map(summary).collect();
        assert_eq!(got, expected, "{scenario}, step {i}");
    }
}

fn excluding(config: Value) -> DetectConfig {
    serde_json::from_value(config).expect("config")
}

fn deleting(pod: Value) -> Value {
    set(
        pod,
        "/metadata/deletionTimestamp",
        json!("2024-05-01T12:00:00Z"),
    )
}

fn phase(pod: Value, phase: &str, reason: &str) -> Value {
    let pod = set(pod, "/status/phase", json!(phase));
    let pod = set(pod, "/status/reason", json!(reason));
    set(pod, "/status/message", json!(format!("{reason} message")))
}

fn unschedulable(since: Option<&str>) -> Value {
    unschedulable_pod("web-1", since)
}

fn unschedulable_pod(name: &str, since: Option<&str>) -> Value {
    let condition = json!({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 Insufficient cpu.", "lastTransitionTime": since});
    let pod = set(
        web(name, Value::Null),
        "/status",
        json!({"phase": "Pending", "conditions": [condition]}),
    );
    set(pod, "/spec/nodeName", Value::Null)
}

#[test]
fn detection() {
    const H: &str = "healthy Deployment/web";
    let none = || DetectConfig::default();
    let stuck = |reason: &str| web("web-1", app(0, waiting(reason), Value::Null, false));
    check(
        "crash loop 3 -> 4 -> 4 (relisted) counts the restart once",
        none(),
        vec![
            (
                Step::Pod(
                    web(
                        "web-1",
                        app(
                            3,
                            waiting("CrashLoopBackOff"),
                            terminated("Error", 1, 3),
                            false,
                        ),
                    ),
                    T0,
                ),
                &["CrashLoopBackOff Deployment/web/app x1 @web-1 exit=1"],
            ),
            (
                Step::Pod(
                    web(
                        "web-1",
                        app(
                            4,
                            waiting("CrashLoopBackOff"),
                            terminated("Error", 1, 4),
                            false,
                        ),
                    ),
                    T0 + MINUTE,
                ),
                &["CrashLoopBackOff Deployment/web/app x1 @web-1 exit=1"],
            ),
            (
                Step::Pod(
                    web(
                        "web-1",
                        app(
                            4,
                            waiting("CrashLoopBackOff"),
                            terminated("Error", 1, 4),
                            false,
                        ),
                    ),
                    T0 + 2 * MINUTE,
                ),
                &[],
            ),
        ],
    );
    check(
        "restarts seen late report the delta; the baseline is not reported",
        none(),
        vec![
            (
                Step::Pod(healthy_web("web-1", 5, terminated("Error", 1, 1)), T0),
                &[H],
            ),
            (
                Step::Pod(
                    healthy_web("web-1", 8, terminated("Error", 2, 4)),
                    T0 + MINUTE,
                ),
                &["Error Deployment/web/app x3 @web-1 exit=2", H],
            ),
            (
                Step::Pod(
                    healthy_web("web-1", 8, terminated("Error", 2, 4)),
                    T0 + MINUTE,
                ),
                &[H],
            ),
            (
                Step::Pod(healthy_web("web-1", 9, Value::Null), T0 + 2 * MINUTE),
                &["Restarted Deployment/web/app x1 @web-1", H],
            ),
        ],
    );
    check(
        "an OOM kill seen as it happens is not counted again after the restart",
        none(),
        vec![
            (Step::Pod(healthy_web("web-1", 0, Value::Null), T0), &[H]),
            (
                Step::Pod(
                    web(
                        "web-1",
                        app(0, terminated("OOMKilled", 137, 1), Value::Null, false),
                    ),
                    T0 + 1,
                ),
                &["OOMKilled Deployment/web/app x1 @web-1 exit=137"],
            ),
            (
                Step::Pod(
                    web(
                        "web-1",
                        app(
                            1,
                            waiting("CrashLoopBackOff"),
                            terminated("OOMKilled", 137, 1),
                            false,
                        ),
                    ),
                    T0 + 2,
                ),
                &["CrashLoopBackOff Deployment/web/app x1 @web-1 exit=137"],
            ),
            (
                Step::Pod(
                    healthy_web("web-1", 1, terminated("OOMKilled", 137, 1)),
                    T0 + 3,
                ),
                &[H],
            ),
            (
                Step::Pod(
                    web(
                        "web-1",
                        app(2, running(), terminated("OOMKilled", 137, 2), false),
                    ),
                    T0 + 4,
                ),
                &["OOMKilled Deployment/web/app x1 @web-1 exit=137"],
            ),
        ],
    );
    check(
        "init container ImagePullBackOff, once",
        none(),
        vec![
            (
                Step::Pod(
                    set(
                        set(
                            web(
                                "web-1",
                                app(0, waiting("PodInitializing"), Value::Null, false),
                            ),
                            "/status/phase",
                            json!("Pending"),
                        ),
                        "/status/initContainerStatuses",
                        json!([container(
                            "migrate",
                            0,
                            waiting("ImagePullBackOff"),
                            Value::Null,
                            false
                        )]),
                    ),
                    T0,
                ),
                &["ImagePullBackOff Deployment/web/migrate x1 @web-1"],
            ),
            (
                Step::Pod(
                    set(
                        set(
                            web(
                                "web-1",
                                app(0, waiting("PodInitializing"), Value::Null, false),
                            ),
                            "/status/phase",
                            json!("Pending"),
                        ),
                        "/status/initContainerStatuses",
                        json!([container(
                            "migrate",
                            0,
                            waiting("ErrImagePull"),
                            Value::Null,
                            false
                        )]),
                    ),
                    T0 + 1,
                ),
                &["ErrImagePull Deployment/web/migrate x1 @web-1"],
            ),
        ],
    );
    check(
        "every waiting reason",
        none(),
        vec![
            (
                Step::Pod(stuck("CreateContainerConfigError"), T0),
                &["CreateContainerConfigError Deployment/web/app x1 @web-1"],
            ),
            (
                Step::Pod(stuck("CreateContainerError"), T0),
                &["CreateContainerError Deployment/web/app x1 @web-1"],
            ),
            (
                Step::Pod(stuck("InvalidImageName"), T0),
                &["InvalidImageName Deployment/web/app x1 @web-1"],
            ),
            (
                Step::Pod(stuck("RunContainerError"), T0),
                &["RunContainerError Deployment/web/app x1 @web-1"],
            ),
            (Step::Pod(stuck("ContainerCreating"), T0), &[]),
        ],
    );
    check(
        "exit 0 and Succeeded pods are not trouble",
        none(),
        vec![
            (
                Step::Pod(
                    web(
                        "web-1",
                        app(0, terminated("Completed", 0, 1), Value::Null, false),
                    ),
                    T0,
                ),
                &[],
            ),
            (
                Step::Pod(
                    healthy_web("web-1", 1, terminated("Completed", 0, 1)),
                    T0 + 1,
                ),
                &[H],
            ),
            (
                Step::Pod(
                    phase(
                        web(
                            "web-2",
                            app(0, terminated("Error", 1, 2), Value::Null, false),
                        ),
                        "Succeeded",
                        "",
                    ),
                    T0 + 2,
                ),
                &[H],
            ),
        ],
    );
    check(
        "graceful-shutdown kills while deleting are not trouble",
        none(),
        vec![
            (
                Step::Pod(
                    deleting(web(
                        "web-1",
                        app(0, terminated("Error", 143, 1), Value::Null, false),
                    )),
                    T0,
                ),
                &[],
            ),
            (
                Step::Pod(
                    deleting(web(
                        "web-2",
                        app(0, terminated("Error", 137, 1), Value::Null, false),
                    )),
                    T0,
                ),
                &[],
            ),
            (
                Step::Pod(
                    deleting(web(
                        "web-3",
                        app(0, terminated("Error", 1, 1), Value::Null, false),
                    )),
                    T0,
                ),
                &["Error Deployment/web/app x1 @web-3 exit=1"],
            ),
            (
                Step::Pod(
                    web(
                        "web-4",
                        app(0, terminated("Error", 137, 1), Value::Null, false),
                    ),
                    T0,
                ),
                &["Error Deployment/web/app x1 @web-4 exit=137"],
            ),
        ],
    );
    check(
        "unschedulable after the threshold (from lastTransitionTime), once",
        none(),
        vec![
            (
                Step::Pod(unschedulable(Some("2024-05-01T12:00:00Z")), T0 + MINUTE),
                &[],
            ),
            (Step::Tick(T0 + 4 * MINUTE), &[]),
            (
                Step::Tick(T0 + 5 * MINUTE),
                &["Unschedulable Deployment/web x1 @web-1"],
            ),
            (Step::Tick(T0 + 10 * MINUTE), &[]),
            (
                Step::Pod(
                    unschedulable(Some("2024-05-01T12:00:00Z")),
                    T0 + 11 * MINUTE,
                ),
                &[],
            ),
            (
                Step::Pod(healthy_web("web-1", 0, Value::Null), T0 + 12 * MINUTE),
                &[H],
            ),
        ],
    );
    check(
        "unschedulable seen already past the threshold; without a transition time from first sight",
        none(),
        vec![
            (
                Step::Pod(unschedulable(Some("2024-05-01T11:00:00Z")), T0),
                &["Unschedulable Deployment/web x1 @web-1"],
            ),
            (Step::Pod(unschedulable_pod("web-2", None), T0), &[]),
            (Step::Tick(T0 + 5 * MINUTE - 1), &[]),
            (
                Step::Tick(T0 + 5 * MINUTE),
                &["Unschedulable Deployment/web x1 @web-2"],
            ),
        ],
    );
    check(
        "a custom pending threshold",
        excluding(json!({"pending_threshold_ms": 1000})),
        vec![
            (Step::Pod(unschedulable(None), T0), &[]),
            (
                Step::Tick(T0 + 1000),
                &["Unschedulable Deployment/web x1 @web-1"],
            ),
        ],
    );
    check(
        "Evicted and other Failed pods, once",
        none(),
        vec![
            (
                Step::Pod(
                    phase(
                        web(
                            "web-1",
                            app(0, terminated("Error", 137, 1), Value::Null, false),
                        ),
                        "Failed",
                        "Evicted",
                    ),
                    T0,
                ),
                &["Evicted Deployment/web x1 @web-1"],
            ),
            (
                Step::Pod(
                    phase(
                        web(
                            "web-1",
                            app(0, terminated("Error", 137, 1), Value::Null, false),
                        ),
                        "Failed",
                        "Evicted",
                    ),
                    T0 + 1,
                ),
                &[],
            ),
            (
                Step::Pod(
                    phase(
                        web(
                            "web-2",
                            app(0, terminated("Completed", 0, 1), Value::Null, false),
                        ),
                        "Failed",
                        "DeadlineExceeded",
                    ),
                    T0,
                ),
                &["PodFailed Deployment/web x1 @web-2"],
            ),
            (
                Step::Pod(
                    phase(
                        web(
                            "web-3",
                            app(0, terminated("Error", 2, 1), Value::Null, false),
                        ),
                        "Failed",
                        "",
                    ),
                    T0,
                ),
                &["Error Deployment/web/app x1 @web-3 exit=2"],
            ),
        ],
    );
    check(
        "node NotReady and DiskPressure, each once, then Unknown",
        none(),
        vec![
            (
                Step::Node(node(&[("Ready", "True"), ("DiskPressure", "False")]), T0),
                &["healthy Node/node-1"],
            ),
            (
                Step::Node(
                    node(&[
                        ("Ready", "False"),
                        ("DiskPressure", "True"),
                        ("MemoryPressure", "False"),
                    ]),
                    T0 + 1,
                ),
                &[
                    "NodeNotReady Node/node-1 x1",
                    "DiskPressure Node/node-1 x1",
                    "healthy Node/node-1 except NodeNotReady,DiskPressure",
                ],
            ),
            (
                Step::Node(
                    node(&[("Ready", "False"), ("DiskPressure", "True")]),
                    T0 + 2,
                ),
                &["healthy Node/node-1 except NodeNotReady,DiskPressure"],
            ),
            (
                Step::Node(
                    node(&[
                        ("Ready", "Unknown"),
                        ("PIDPressure", "True"),
                        ("MemoryPressure", "True"),
                    ]),
                    T0 + 3,
                ),
                &[
                    "NodeUnknown Node/node-1 x1",
                    "MemoryPressure Node/node-1 x1",
                    "PIDPressure Node/node-1 x1",
                    "healthy Node/node-1 except NodeUnknown,MemoryPressure,PIDPressure",
                ],
            ),
        ],
    );
    check(
        "excluded namespace, pod name, container and reason",
        excluding(json!({
            "exclude_namespaces": ["kube-system"],
            "exclude_pod_names": ["^debug-"],
            "exclude_containers": ["istio-proxy"],
            "exclude_reasons": ["CreateContainerConfigError", "DiskPressure"]
        })),
        vec![
            (
                Step::Pod(
                    set(
                        stuck("CrashLoopBackOff"),
                        "/metadata/namespace",
                        json!("kube-system"),
                    ),
                    T0,
                ),
                &[],
            ),
            (
                Step::Pod(
                    set(
                        stuck("CrashLoopBackOff"),
                        "/metadata/name",
                        json!("debug-web"),
                    ),
                    T0,
                ),
                &[],
            ),
            (
                Step::Pod(
                    set(
                        healthy_web("web-1", 0, Value::Null),
                        "/status/containerStatuses/1",
                        container(
                            "istio-proxy",
                            0,
                            waiting("CrashLoopBackOff"),
                            Value::Null,
                            false,
                        ),
                    ),
                    T0,
                ),
                &[],
            ),
            (Step::Pod(stuck("CreateContainerConfigError"), T0), &[]),
            (
                Step::Pod(stuck("CrashLoopBackOff"), T0 + 1),
                &["CrashLoopBackOff Deployment/web/app x1 @web-1"],
            ),
            (
                Step::Node(node(&[("Ready", "True"), ("DiskPressure", "True")]), T0),
                &["healthy Node/node-1 except DiskPressure"],
            ),
        ],
    );
    check(
        "a workload is healthy only when none of its pods fails; deletion can make it so",
        none(),
        vec![
            (
                Step::Pod(stuck("CrashLoopBackOff"), T0),
                &["CrashLoopBackOff Deployment/web/app x1 @web-1"],
            ),
            (Step::Pod(healthy_web("web-2", 0, Value::Null), T0 + 1), &[]),
            (Step::Deleted("web-1", T0 + 2), &[H]),
            (Step::Deleted("web-2", T0 + 3), &[]),
            (Step::Deleted("web-9", T0 + 4), &[]),
            (
                Step::Pod(deleting(healthy_web("web-3", 0, Value::Null)), T0 + 5),
                &[],
            ),
        ],
    );
    check(
        "a failing workload whose last pod is gone (deleted, or a one-off pod) is healthy",
        none(),
        vec![
            (
                Step::Pod(stuck("CrashLoopBackOff"), T0),
                &["CrashLoopBackOff Deployment/web/app x1 @web-1"],
            ),
            (Step::Deleted("web-1", T0 + 1), &[H]),
            // a replacement that fails again is a new finding (the book's
            // hold-down ends there)
            (
                Step::Pod(
                    web(
                        "web-4",
                        app(0, waiting("CrashLoopBackOff"), Value::Null, false),
                    ),
                    T0 + 2,
                ),
                &["CrashLoopBackOff Deployment/web/app x1 @web-4"],
            ),
        ],
    );
    check(
        "a pod recreated under the same name starts afresh",
        none(),
        vec![
            (
                Step::Pod(
                    web(
                        "web-1",
                        app(7, waiting("CrashLoopBackOff"), Value::Null, false),
                    ),
                    T0,
                ),
                &["CrashLoopBackOff Deployment/web/app x1 @web-1"],
            ),
            (
                Step::Pod(
                    set(
                        web(
                            "web-1",
                            app(0, waiting("CrashLoopBackOff"), Value::Null, false),
                        ),
                        "/metadata/uid",
                        json!("new"),
                    ),
                    T0 + 1,
                ),
                &["CrashLoopBackOff Deployment/web/app x1 @web-1"],
            ),
        ],
    );
}

#[test]
fn findings_carry_the_details() {
    let mut detector = Detector::new(DetectConfig::default());
    let observations = detector.pod(
        &web(
            "web-1",
            app(0, terminated("OOMKilled", 137, 1), Value::Null, false),
        ),
        T0,
    );
    assert_eq!(
        observations,
        vec![Observation::Finding(Finding {
            key: IncidentKey {
                namespace: Some("shop".into()),
                workload: Workload::new("Deployment", "web"),
                container: Some("app".into()),
                reason: Reason::OomKilled,
            },
            pod: Some("web-1".into()),
            node: Some("node-1".into()),
            container: Some("app".into()),
            exit_code: Some(137),
            message: Some("OOMKilled".into()),
            image: Some("registry.example/web:1.2".into()),
            occurrences: 1,
            at_ms: T0,
        })]
    );
    assert_eq!(
        detector.config().pending_threshold(),
        crate::DEFAULT_PENDING_THRESHOLD_MS
    );
    assert!(NamePattern::new("^web$").expect("pattern").is_match("web"));
    assert_eq!(detector.node_deleted("node-1", T0).len(), 1);
}

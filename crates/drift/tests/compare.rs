//! `compare`: which fields differ, from small hand-written objects and from
//! objects captured from a real kube-apiserver (`fixtures/capture.sh`).

use pilothouse_drift::{
    DriftState, FieldDiff, Ignore, IgnoreRule, ObjectRef, Target, compare, extra, missing,
    summarize, unknown,
};
use serde_json::{Value, json};

/// Compares and checks the differences, given as `(path, live, desired)`
/// with `null` for "absent".
fn check(would_be: &Value, live: &Value, rules: &[IgnoreRule], expected: &[(&str, Value, Value)]) {
    let drift = compare(would_be, live, rules);
    let want: Vec<FieldDiff> = expected
        .iter()
        .map(|(path, live, desired)| FieldDiff {
            path: (*path).to_owned(),
            live: (!live.is_null()).then(|| live.clone()),
            desired: (!desired.is_null()).then(|| desired.clone()),
        })
        .collect();
    assert_eq!(drift.diffs, want, "rules: {rules:?}");
    let state = if want.is_empty() {
        DriftState::InSync
    } else {
        DriftState::Modified
    };
    assert_eq!(drift.state, state);
    assert_eq!(drift.object, ObjectRef::of(would_be));
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.27",
                            "args": ["--port", "8080"],
                            "env": [{"name": "MODE", "value": "prod"}],
                            "ports": [
                                {"containerPort": 8080, "protocol": "TCP"},
                                {"containerPort": 9090, "protocol": "TCP"},
                            ],
                        },
                        {
                            "name": "proxy",
                            "image": "envoyproxy/envoy:v1.31.0",
                            "ports": [{"containerPort": 9901, "protocol": "TCP"}],
                        },
                    ],
                },
            },
        },
    })
}

fn secret(data: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "db", "namespace": "shop"},
        "type": "Opaque",
        "data": data,
    })
}

/// A copy of `object` with the value at `pointer` set (`null` removes it).
fn with(object: &Value, pointer: &str, value: Value) -> Value {
    let mut object = object.clone();
    let (parent, last) = pointer.rsplit_once('/').expect("pointer");
    let last = last.replace("~1", "/").replace("~0", "~");
    match object.pointer_mut(parent).expect("parent exists") {
        Value::Object(map) if value.is_null() => {
            map.remove(&last);
        }
        Value::Object(map) => {
            map.insert(last, value);
        }
        Value::Array(items) => {
            let index: usize = last.parse().expect("index");
            if value.is_null() {
                items.remove(index);
            } else if index == items.len() {
                items.push(value);
            } else {
                items[index] = value;
            }
        }
        other => panic!("cannot set {pointer} in {other}"),
    }
    object
}

fn pointer_rule(target: Target, pointer: &str) -> IgnoreRule {
    IgnoreRule {
        target,
        what: Ignore::Pointer(pointer.to_owned()),
    }
}

fn managed_by(manager: &str) -> IgnoreRule {
    IgnoreRule {
        target: Target::any(),
        what: Ignore::ManagedBy(manager.to_owned()),
    }
}

fn fixture(name: &str) -> Value {
    let text = match name {
        "live" => include_str!("fixtures/deployment-live.json"),
        "would-be" => include_str!("fixtures/deployment-would-be.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("fixture is JSON")
}

const CONTAINERS: &str = "/spec/template/spec/containers";

#[test]
fn server_written_fields_are_never_drift() {
    let would_be = with(&deployment(), "/metadata/generation", json!(3));
    let would_be = with(&would_be, "/metadata/resourceVersion", json!("200"));
    let live = with(&deployment(), "/metadata/generation", json!(2));
    let live = with(&live, "/metadata/resourceVersion", json!("150"));
    let live = with(&live, "/metadata/uid", json!("8d074388"));
    let live = with(
        &live,
        "/metadata/creationTimestamp",
        json!("2026-01-01T00:00:00Z"),
    );
    let live = with(&live, "/metadata/selfLink", json!("/apis/apps/v1/x"));
    let live = with(
        &live,
        "/metadata/managedFields",
        json!([{"manager": "kube-controller-manager", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}]),
    );
    let live = with(&live, "/status", json!({"replicas": 2, "readyReplicas": 1}));
    let live = with(
        &live,
        "/metadata/annotations",
        json!({"kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}"}),
    );
    check(&would_be, &live, &[], &[]);
    check(&live, &would_be, &[], &[]);
    check(&deployment(), &deployment(), &[], &[]);
}

#[test]
fn scalars_and_map_entries() {
    let base = deployment();
    check(
        &base,
        &with(&base, "/spec/replicas", json!(5)),
        &[],
        &[("/spec/replicas", json!(5), json!(2))],
    );
    check(
        &base,
        &with(&base, "/metadata/labels/team", json!("x")),
        &[],
        &[("/metadata/labels/team", json!("x"), json!(null))],
    );
    check(
        &with(&base, "/metadata/labels/team", json!("x")),
        &base,
        &[],
        &[("/metadata/labels/team", json!(null), json!("x"))],
    );
    // keys with `/` and `~` are escaped in paths
    check(
        &base,
        &with(
            &base,
            "/metadata/annotations",
            json!({"example.com/owner": "a", "x~y": "b"}),
        ),
        &[],
        &[(
            "/metadata/annotations",
            json!({"example.com/owner": "a", "x~y": "b"}),
            json!(null),
        )],
    );
    let annotated = with(
        &base,
        "/metadata/annotations",
        json!({"example.com/owner": "a"}),
    );
    check(
        &with(
            &annotated,
            "/metadata/annotations/example.com~1owner",
            json!("b"),
        ),
        &annotated,
        &[],
        &[(
            "/metadata/annotations/example.com~1owner",
            json!("a"),
            json!("b"),
        )],
    );
    // several differences come in the order of the walk: sorted keys
    check(
        &base,
        &with(
            &with(&base, "/spec/replicas", json!(5)),
            "/metadata/labels/app",
            json!("api"),
        ),
        &[],
        &[
            ("/metadata/labels/app", json!("api"), json!("web")),
            ("/spec/replicas", json!(5), json!(2)),
        ],
    );
}

#[test]
fn subtrees_on_one_side_are_one_difference() {
    let base = deployment();
    let live = with(
        &base,
        "/spec/template/spec/securityContext",
        json!({"runAsUser": 1000, "runAsNonRoot": true}),
    );
    check(
        &base,
        &live,
        &[],
        &[(
            "/spec/template/spec/securityContext",
            json!({"runAsUser": 1000, "runAsNonRoot": true}),
            json!(null),
        )],
    );
    // a value of another type
    check(
        &with(&base, "/spec/strategy", json!({"type": "Recreate"})),
        &with(&base, "/spec/strategy", json!("Recreate")),
        &[],
        &[(
            "/spec/strategy",
            json!("Recreate"),
            json!({"type": "Recreate"}),
        )],
    );
}

#[test]
fn containers_match_by_name() {
    let base = deployment();
    let web = base
        .pointer(&format!("{CONTAINERS}/0"))
        .expect("web")
        .clone();
    let proxy = base
        .pointer(&format!("{CONTAINERS}/1"))
        .expect("proxy")
        .clone();
    // reordered, and the web image differs: reported at the desired index
    let live = with(
        &base,
        CONTAINERS,
        json!([proxy, with(&web, "/image", json!("nginx:1.26"))]),
    );
    check(
        &base,
        &live,
        &[],
        &[(
            &format!("{CONTAINERS}/0/image"),
            json!("nginx:1.26"),
            json!("nginx:1.27"),
        )],
    );
    // reordered only: not drift
    check(
        &base,
        &with(&base, CONTAINERS, json!([proxy, web])),
        &[],
        &[],
    );
    // a container only the live object has: at its live index
    let live = with(
        &base,
        CONTAINERS,
        json!([{"name": "debug", "image": "busybox"}, web, proxy]),
    );
    check(
        &base,
        &live,
        &[],
        &[(
            &format!("{CONTAINERS}/0"),
            json!({"name": "debug", "image": "busybox"}),
            json!(null),
        )],
    );
}

#[test]
fn env_vars_match_by_name() {
    let base = deployment();
    let env = format!("{CONTAINERS}/0/env");
    check(
        &with(
            &base,
            &format!("{env}/1"),
            json!({"name": "LOG", "value": "debug"}),
        ),
        &base,
        &[],
        &[(
            &format!("{env}/1"),
            json!(null),
            json!({"name": "LOG", "value": "debug"}),
        )],
    );
    check(
        &with(
            &base,
            &env,
            json!([{"name": "LOG", "value": "info"}, {"name": "MODE", "value": "prod"}]),
        ),
        &with(
            &base,
            &env,
            json!([{"name": "MODE", "value": "prod"}, {"name": "LOG", "value": "debug"}]),
        ),
        &[],
        &[(&format!("{env}/0/value"), json!("debug"), json!("info"))],
    );
}

#[test]
fn ports_match_by_container_port() {
    let base = deployment();
    let ports = format!("{CONTAINERS}/0/ports");
    // reordered, and one protocol differs
    check(
        &base,
        &with(
            &base,
            &ports,
            json!([{"containerPort": 9090, "protocol": "TCP"}, {"containerPort": 8080, "protocol": "UDP"}]),
        ),
        &[],
        &[(&format!("{ports}/0/protocol"), json!("UDP"), json!("TCP"))],
    );
    // a changed port number is one element gone and another added
    check(
        &base,
        &with(
            &base,
            &ports,
            json!([{"containerPort": 8081, "protocol": "TCP"}, {"containerPort": 9090, "protocol": "TCP"}]),
        ),
        &[],
        &[
            (
                &format!("{ports}/0"),
                json!(null),
                json!({"containerPort": 8080, "protocol": "TCP"}),
            ),
            (
                &format!("{ports}/0"),
                json!({"containerPort": 8081, "protocol": "TCP"}),
                json!(null),
            ),
        ],
    );
    // named ports match by name
    let named = with(
        &base,
        &ports,
        json!([{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}]),
    );
    check(
        &named,
        &with(
            &named,
            &ports,
            json!([{"name": "metrics", "containerPort": 9091}, {"name": "http", "containerPort": 8080}]),
        ),
        &[],
        &[(
            &format!("{ports}/1/containerPort"),
            json!(9091),
            json!(9090),
        )],
    );
}

#[test]
fn other_lists_compare_by_index() {
    let base = deployment();
    let args = format!("{CONTAINERS}/0/args");
    check(
        &base,
        &with(&base, &args, json!(["--port", "9090", "--verbose"])),
        &[],
        &[
            (&format!("{args}/1"), json!("9090"), json!("8080")),
            (&format!("{args}/2"), json!("--verbose"), json!(null)),
        ],
    );
    // duplicate names: no merge key, so by index
    let env = format!("{CONTAINERS}/0/env");
    check(
        &with(
            &base,
            &env,
            json!([{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        ),
        &with(
            &base,
            &env,
            json!([{"name": "A", "value": "2"}, {"name": "A", "value": "1"}]),
        ),
        &[],
        &[
            (&format!("{env}/0/value"), json!("2"), json!("1")),
            (&format!("{env}/1/value"), json!("1"), json!("2")),
        ],
    );
}

#[test]
fn null_is_absent_and_numbers_compare_by_value() {
    let base = deployment();
    check(&with(&base, "/spec/paused", json!(null)), &base, &[], &[]);
    check(
        &with(&base, "/spec/paused", Value::Null),
        &with(&base, "/spec/minReadySeconds", json!(0)),
        &[],
        &[("/spec/minReadySeconds", json!(0), json!(null))],
    );
    let mut explicit_null = base.clone();
    explicit_null["spec"]["paused"] = Value::Null;
    explicit_null["metadata"]["labels"]["team"] = Value::Null;
    check(&explicit_null, &base, &[], &[]);
    check(&base, &explicit_null, &[], &[]);
    let mut was_null = base.clone();
    was_null["spec"]["paused"] = Value::Null;
    check(
        &with(&base, "/spec/paused", json!(true)),
        &was_null,
        &[],
        &[("/spec/paused", json!(null), json!(true))],
    );
    check(&with(&base, "/spec/replicas", json!(2.0)), &base, &[], &[]);
    check(
        &with(&base, "/spec/replicas", json!(2.5)),
        &base,
        &[],
        &[("/spec/replicas", json!(2), json!(2.5))],
    );
}

#[test]
fn secret_values_are_masked() {
    let live = secret(json!({"password": "aHVudGVyMg==", "user": "YWRtaW4="}));
    // a changed value: Modified, value masked on both sides
    check(
        &secret(json!({"password": "czNjcjN0", "user": "YWRtaW4="})),
        &live,
        &[],
        &[(
            "/data/password",
            json!("(secret, before)"),
            json!("(secret, after)"),
        )],
    );
    // keys on one side only
    check(
        &secret(json!({"password": "aHVudGVyMg==", "token": "dG9r"})),
        &live,
        &[],
        &[
            ("/data/token", json!(null), json!("(secret, after)")),
            ("/data/user", json!("(secret, before)"), json!(null)),
        ],
    );
    // the whole map on one side only: keys shown, values masked
    check(
        &secret(json!({"password": "aHVudGVyMg==", "user": "YWRtaW4="})),
        &with(&live, "/data", Value::Null),
        &[],
        &[(
            "/data",
            json!(null),
            json!({"password": "(secret, after)", "user": "(secret, after)"}),
        )],
    );
    // stringData too
    check(
        &with(
            &live,
            "/stringData",
            json!({"config.yaml": "password: s3cr3t"}),
        ),
        &with(
            &live,
            "/stringData",
            json!({"config.yaml": "password: hunter2"}),
        ),
        &[],
        &[(
            "/stringData/config.yaml",
            json!("(secret, before)"),
            json!("(secret, after)"),
        )],
    );
    // other fields of a Secret are shown
    check(
        &live,
        &with(&live, "/type", json!("kubernetes.io/basic-auth")),
        &[],
        &[("/type", json!("kubernetes.io/basic-auth"), json!("Opaque"))],
    );
    // only core Secrets are masked
    let custom = with(&live, "/apiVersion", json!("example.com/v1"));
    check(
        &with(&custom, "/data/user", json!("cm9vdA==")),
        &custom,
        &[],
        &[("/data/user", json!("YWRtaW4="), json!("cm9vdA=="))],
    );
    // compared with nothing (the whole object differs): values masked too
    check(
        &live,
        &Value::Null,
        &[],
        &[(
            "",
            json!(null),
            secret(json!({"password": "(secret, after)", "user": "(secret, after)"})),
        )],
    );
    // and nothing of the value leaks into the serialized finding
    let text = serde_json::to_string(&compare(
        &secret(json!({"password": "czNjcjN0"})),
        &live,
        &[],
    ))
    .expect("json");
    assert!(
        !text.contains("czNjcjN0") && !text.contains("aHVudGVyMg=="),
        "{text}"
    );
}

#[test]
fn pointer_rules() {
    let base = deployment();
    let live = with(&base, "/spec/replicas", json!(5));
    check(
        &base,
        &live,
        &[pointer_rule(Target::any(), "/spec/replicas")],
        &[],
    );
    // a prefix ignores everything under it
    check(&base, &live, &[pointer_rule(Target::any(), "/spec")], &[]);
    check(
        &base,
        &live,
        &[pointer_rule(Target::any(), "/spec/rep")],
        &[("/spec/replicas", json!(5), json!(2))],
    );
    // `*` stands for any one segment
    let live = with(&base, &format!("{CONTAINERS}/0/image"), json!("nginx:1.26"));
    let live = with(&live, &format!("{CONTAINERS}/1/image"), json!("envoy:old"));
    let live = with(
        &live,
        &format!("{CONTAINERS}/1/env"),
        json!([{"name": "A", "value": "1"}]),
    );
    let images = pointer_rule(Target::any(), "/spec/template/spec/containers/*/image");
    check(
        &base,
        &live,
        &[images],
        &[(
            &format!("{CONTAINERS}/1/env"),
            json!([{"name": "A", "value": "1"}]),
            json!(null),
        )],
    );
    // a target that does not match the object: still drift
    let elsewhere = Target {
        group: "apps".into(),
        kind: "StatefulSet".into(),
        namespace: None,
        name: "*".into(),
    };
    let only_other_namespace = Target {
        namespace: Some("staging".into()),
        ..Target::any()
    };
    let other_name = Target {
        name: "api-*".into(),
        ..Target::any()
    };
    let live = with(&base, "/spec/replicas", json!(5));
    for target in [elsewhere, only_other_namespace, other_name] {
        check(
            &base,
            &live,
            &[pointer_rule(target, "/spec/replicas")],
            &[("/spec/replicas", json!(5), json!(2))],
        );
    }
    let matching = Target {
        group: "apps".into(),
        kind: "Deployment".into(),
        namespace: Some("shop".into()),
        name: "w*".into(),
    };
    check(
        &base,
        &live,
        &[pointer_rule(matching, "/spec/replicas")],
        &[],
    );
    // an invalid pointer ignores nothing
    check(
        &base,
        &live,
        &[pointer_rule(Target::any(), "spec/replicas")],
        &[("/spec/replicas", json!(5), json!(2))],
    );
}

#[test]
fn pointer_rules_inside_a_one_sided_subtree() {
    let base = deployment();
    let live = with(&base, "/metadata/annotations", json!({"a": "1", "b": "2"}));
    check(
        &base,
        &live,
        &[pointer_rule(Target::any(), "/metadata/annotations/a")],
        &[("/metadata/annotations", json!({"b": "2"}), json!(null))],
    );
    check(
        &base,
        &live,
        &[
            pointer_rule(Target::any(), "/metadata/annotations/a"),
            pointer_rule(Target::any(), "/metadata/annotations/b"),
        ],
        &[],
    );
}

#[test]
fn managed_by_rules_with_captured_managed_fields() {
    // captured: pilothouse applied, then `kubectl scale` (manager kubectl,
    // subresource scale) set replicas 5; the would-be object is a
    // server-side-apply dry-run with a new image
    let live = fixture("live");
    let would_be = fixture("would-be");
    check(
        &would_be,
        &live,
        &[],
        &[
            ("/spec/replicas", json!(5), json!(2)),
            (
                &format!("{CONTAINERS}/0/image"),
                json!("nginx:1.27"),
                json!("nginx:1.28"),
            ),
        ],
    );
    check(
        &would_be,
        &live,
        &[managed_by("kubectl")],
        &[(
            &format!("{CONTAINERS}/0/image"),
            json!("nginx:1.27"),
            json!("nginx:1.28"),
        )],
    );
    // kubectl-annotate's annotation: ignored when a would-be object lacks it
    let without_annotation = with(&would_be, "/metadata/annotations", Value::Null);
    check(
        &without_annotation,
        &live,
        &[],
        &[
            (
                "/metadata/annotations",
                json!({"oncall": "team-a"}),
                json!(null),
            ),
            ("/spec/replicas", json!(5), json!(2)),
            (
                &format!("{CONTAINERS}/0/image"),
                json!("nginx:1.27"),
                json!("nginx:1.28"),
            ),
        ],
    );
    check(
        &without_annotation,
        &live,
        &[managed_by("kubectl-annotate"), managed_by("kubectl")],
        &[(
            &format!("{CONTAINERS}/0/image"),
            json!("nginx:1.27"),
            json!("nginx:1.28"),
        )],
    );
    // the `tier` label is owned by platform-team and pilothouse: still ours
    let retiered = with(&would_be, "/metadata/labels/tier", json!("back"));
    check(
        &retiered,
        &live,
        &[managed_by("platform-team"), managed_by("kubectl")],
        &[
            ("/metadata/labels/tier", json!("front"), json!("back")),
            (
                &format!("{CONTAINERS}/0/image"),
                json!("nginx:1.27"),
                json!("nginx:1.28"),
            ),
        ],
    );
    // a manager that owns nothing that differs changes nothing
    check(
        &would_be,
        &live,
        &[managed_by("kubectl-set")],
        &[
            ("/spec/replicas", json!(5), json!(2)),
            (
                &format!("{CONTAINERS}/0/image"),
                json!("nginx:1.27"),
                json!("nginx:1.28"),
            ),
        ],
    );
    // ManagedBy rules respect their target too
    let elsewhere = IgnoreRule {
        target: Target {
            kind: "StatefulSet".into(),
            ..Target::any()
        },
        what: Ignore::ManagedBy("kubectl".into()),
    };
    check(
        &would_be,
        &live,
        &[elsewhere],
        &[
            ("/spec/replicas", json!(5), json!(2)),
            (
                &format!("{CONTAINERS}/0/image"),
                json!("nginx:1.27"),
                json!("nginx:1.28"),
            ),
        ],
    );
}

#[test]
fn managed_by_resolves_list_keys_in_the_live_object() {
    // kubectl-set owns `k:{"name":"web"}` → `k:{"name":"DEBUG"}` in env: the
    // web container is live index 0 but desired index 1 here, and DEBUG is
    // live env index 1
    let live = fixture("live");
    let would_be = fixture("would-be");
    let web = would_be
        .pointer(&format!("{CONTAINERS}/0"))
        .expect("web")
        .clone();
    let proxy = would_be
        .pointer(&format!("{CONTAINERS}/1"))
        .expect("proxy")
        .clone();
    let web = with(&web, "/env", json!([{"name": "MODE", "value": "prod"}]));
    let web = with(&web, "/image", json!("nginx:1.27"));
    let would_be = with(&would_be, CONTAINERS, json!([proxy, web]));
    let would_be = with(&would_be, "/spec/replicas", json!(5));
    check(
        &would_be,
        &live,
        &[],
        &[(
            &format!("{CONTAINERS}/1/env/1"),
            json!({"name": "DEBUG", "value": "1"}),
            json!(null),
        )],
    );
    check(&would_be, &live, &[managed_by("kubectl-set")], &[]);
    // the same difference is not ignored for a manager owning something else
    check(
        &would_be,
        &live,
        &[managed_by("kubectl-annotate")],
        &[(
            &format!("{CONTAINERS}/1/env/1"),
            json!({"name": "DEBUG", "value": "1"}),
            json!(null),
        )],
    );
    // a difference inside the element the manager owns (its value)
    let changed = with(&live, &format!("{CONTAINERS}/0/env/1/value"), json!("2"));
    check(
        &with(
            &would_be,
            &format!("{CONTAINERS}/1/env/1"),
            json!({"name": "DEBUG", "value": "1"}),
        ),
        &changed,
        &[],
        &[(
            &format!("{CONTAINERS}/1/env/1/value"),
            json!("2"),
            json!("1"),
        )],
    );
    check(
        &with(
            &would_be,
            &format!("{CONTAINERS}/1/env/1"),
            json!({"name": "DEBUG", "value": "1"}),
        ),
        &changed,
        &[managed_by("kubectl-set")],
        &[],
    );
}

#[test]
fn pilothouse_fields_under_a_managed_node_are_kept() {
    // another manager created the annotations map (`.`) and one entry;
    // pilothouse owns another entry that the would-be object drops
    let live = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "cfg",
            "namespace": "shop",
            "annotations": {"team": "a", "owner": "b"},
            "managedFields": [
                {"manager": "kubectl-annotate", "operation": "Update", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:annotations": {".": {}, "f:team": {}}}}},
                {"manager": "pilothouse", "operation": "Apply", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:annotations": {"f:owner": {}}}}},
            ],
        },
        "data": {"a": "1"},
    });
    let would_be = with(&live, "/metadata/annotations", Value::Null);
    check(
        &would_be,
        &live,
        &[managed_by("kubectl-annotate")],
        &[("/metadata/annotations", json!({"owner": "b"}), json!(null))],
    );
    // a manager's field that is not in the live object cannot be ignored
    let would_be = with(&live, "/data/b", json!("2"));
    check(
        &would_be,
        &live,
        &[managed_by("kubectl-annotate")],
        &[("/data/b", json!(null), json!("2"))],
    );
}

#[test]
fn findings_without_a_comparison() {
    let web = ObjectRef::of(&deployment());
    assert_eq!(web.to_string(), "apps/v1/Deployment/shop/web");
    let found = missing(&deployment());
    assert_eq!(
        (found.object.clone(), found.state),
        (web.clone(), DriftState::Missing)
    );
    assert!(found.diffs.is_empty());
    assert_eq!(extra(web.clone()).state, DriftState::Extra);
    assert_eq!(unknown(web.clone()).state, DriftState::Unknown);
    assert_eq!(
        serde_json::to_value(extra(web)).expect("json"),
        json!({
            "object": {"api_version": "apps/v1", "kind": "Deployment", "namespace": "shop", "name": "web"},
            "state": "extra",
            "diffs": [],
        })
    );
}

#[test]
fn summaries_count_states() {
    let base = deployment();
    let drifts = vec![
        compare(&base, &base, &[]),
        compare(
            &base,
            &with(
                &with(&base, "/spec/replicas", json!(5)),
                "/metadata/labels/x",
                json!("y"),
            ),
            &[],
        ),
        missing(&base),
        missing(&secret(json!({}))),
        extra(ObjectRef::of(&base)),
    ];
    let summary = summarize(&drifts);
    assert_eq!(
        (
            summary.total,
            summary.in_sync,
            summary.modified,
            summary.missing,
            summary.extra,
            summary.unknown
        ),
        (5, 1, 1, 2, 1, 0)
    );
    assert_eq!(summary.changed_fields, 2);
    assert_eq!(summary.drifted(), 4);
    assert_eq!(summary.worst(), Some(DriftState::Extra));
    assert_eq!(summarize(&[]).worst(), None);
    assert_eq!(summarize(&drifts[..1]).worst(), Some(DriftState::InSync));
    let text = serde_json::to_value(summary).expect("json");
    assert_eq!(text["in_sync"], json!(1));
    // a FieldDiff serializes absent sides as absent
    let diff = &drifts[1].diffs[0];
    assert_eq!(
        serde_json::to_value(diff).expect("json"),
        json!({"path": "/metadata/labels/x", "live": "y"})
    );
}

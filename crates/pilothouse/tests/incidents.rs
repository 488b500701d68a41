//! Pod-error incidents end to end: the real `serve` watching real
//! kube-apiserver clusters whose pod and node statuses the tests set, the
//! incidents it records (API, CLI, metrics), the logs and events captured
//! through the apiserver, and notifications delivered to a real HTTP
//! receiver on loopback — with silences, a receiver that is down, restarts
//! of Pilothouse and of an apiserver.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use pilothouse_testenv::{FakeNode, PodState, ProviderCloud, TestCluster, start_fleet};
use serde_json::{Value, json};

use support::*;

/// Notifications a test receiver got: (idempotency key, body).
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on loopback that records what it is sent.
struct Receiver {
    addr: SocketAddr,
    received: Received,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on `port` (0: any free port).
    async fn start(port: u16) -> Receiver {
        let received: Received = Arc::default();
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |State(received): State<Received>, headers: HeaderMap, body: String| async move {
                        let key = headers
                            .get("idempotency-key")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                        received.lock().unwrap().push((key, body));
                        StatusCode::OK
                    },
                ),
            )
            .with_state(Arc::clone(&received));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            received,
            task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn bodies(&self) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|(_, body)| body.clone())
            .collect()
    }

    /// Waits until `done` holds for the notifications received so far.
    async fn wait(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let bodies = self.bodies();
            if done(&bodies) {
                return bodies;
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not arrive within 60s: {bodies:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `(status, reasons)` of each notification, in arrival order.
fn summaries(bodies: &[Value]) -> Vec<(String, Vec<String>)> {
    bodies
        .iter()
        .map(|body| {
            (
                body["status"].as_str().unwrap_or_default().to_owned(),
                body["incidents"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|i| {
                        format!(
                            "{}/{}:{}",
                            i["workload"].as_str().unwrap(),
                            i["reason"].as_str().unwrap(),
                            i["status"].as_str().unwrap()
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

/// A namespace and a ready node on a bare cluster.
async fn prepare(cluster: &TestCluster, namespace: &str) {
    cluster.create_namespace(namespace).await.unwrap();
    cluster
        .create_node(&FakeNode::ready("node-1", ProviderCloud::Eks))
        .await
        .unwrap();
}

/// Creates `replicas` pods of Deployment `name` (through a ReplicaSet) on
/// node-1, running and ready; returns their names.
async fn deployment(
    cluster: &TestCluster,
    namespace: &str,
    name: &str,
    replicas: usize,
) -> Vec<String> {
    let hash = "6d9f7c8b5";
    let replica_set = format!("{name}-{hash}");
    let owner = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set,
        "uid": "00000000-0000-0000-0000-000000000001", "controller": true,
    });
    let mut pods = Vec::new();
    for index in 0..replicas {
        let pod = format!("{replica_set}-p{index}");
        cluster
            .create_pod_on(
                "node-1",
                namespace,
                &pod,
                &[(name, &format!("registry.example/{name}:1.2"))],
                &[("pod-template-hash", hash), ("app", name)],
                Some(owner.clone()),
            )
            .await
            .unwrap();
        cluster
            .set_pod_state(namespace, &pod, &PodState::running())
            .await
            .unwrap();
        pods.push(pod);
    }
    pods
}

/// An object's resourceVersion, as a number.
fn version_of(object: &impl kube::Resource) -> u64 {
    object
        .meta()
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a numeric resourceVersion")
}

/// Waits until no delivery to `receiver` is pending (each is delivered or
/// given up) and returns them.
async fn settled_deliveries(server: &Server, receiver: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let deliveries = server
            .get(&format!("/api/v1/receivers/{receiver}/deliveries"))
            .await;
        let deliveries = deliveries.as_array().cloned().unwrap_or_default();
        if deliveries.iter().all(|d| d["state"] != "pending") {
            return deliveries;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries still pending after 60s: {deliveries:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for incidents matching the query to satisfy `done`.
async fn wait_incidents(
    server: &Server,
    query: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = server.get(&format!("/api/v1/incidents?{query}")).await;
        let incidents = page["incidents"].as_array().unwrap().clone();
        if done(&incidents) {
            return incidents;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within 60s: {incidents:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn serve_fast(repo: &Repo, extra: &[&str]) -> Server {
    // the receivers here listen on loopback, which receivers may not reach
    // unless the operator allows it
    let mut flags = vec![
        "--incident-hold-down",
        "1s",
        "--notify-retry-max",
        "1s",
        "--allow-receiver-network",
        "127.0.0.0/8",
    ];
    flags.extend_from_slice(extra);
    serve(repo, &flags)
}

#[tokio::test]
async fn oom_killed_replicas_make_one_incident_with_logs_and_events_on_each_cluster() {
    let repo = Repo::new(small_state);
    let fleet = start_fleet(&["inc-a", "inc-b"]).await.unwrap();
    let server = serve_fast(&repo, &[]);
    for (name, cluster) in ["inc-a", "inc-b"].iter().zip(&fleet) {
        prepare(cluster, "shop").await;
        server.register(name, cluster, "eks", &["--sync-mode", "manual"]);
    }
    let (a, b) = (&fleet[0], &fleet[1]);

    // Three replicas of one Deployment are OOM-killed: one incident.
    let pods = deployment(a, "shop", "cart", 3).await;
    let log: String = (1..=80).map(|n| format!("cart line {n}\n")).collect();
    a.set_container_logs("shop", &pods[0], "cart", true, &log);
    a.set_container_logs("shop", &pods[0], "cart", false, "starting again\n");
    a.warning_event(
        "shop",
        &pods[0],
        "OOMKilling",
        "Memory cgroup out of memory: Killed process 42 (cart)",
    )
    .await
    .unwrap();
    // the watch must have seen the running pods first (a pod first seen
    // already restarted counts from there)
    server.wait_watched("inc-a", a, "pods").await;
    let first = a
        .set_pod_state("shop", &pods[0], &PodState::oom_killed(1))
        .await
        .unwrap();
    // its logs are the ones captured: it must be the first occurrence
    server
        .wait_watched_version("inc-a", "pods", version_of(&first))
        .await;
    for pod in &pods[1..] {
        a.set_pod_state("shop", pod, &PodState::oom_killed(1))
            .await
            .unwrap();
    }
    let incidents = wait_incidents(&server, "cluster=inc-a", "three OOM kills", |incidents| {
        incidents.len() == 1 && incidents[0]["count"] == 3
    })
    .await;
    let incident = &incidents[0];
    assert_eq!(incident["reason"], "OOMKilled", "{incident}");
    assert_eq!(incident["workload_kind"], "Deployment");
    assert_eq!(incident["workload"], "cart");
    assert_eq!(incident["container"], "cart");
    assert_eq!(incident["namespace"], "shop");
    assert_eq!(incident["status"], "open");
    assert_eq!(incident["severity"], "warning");
    assert_eq!(incident["exit_code"], 137);
    assert_eq!(incident["image"], "registry.example/cart:1.2");
    let mut seen: Vec<&str> = incident["pods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, pods.iter().map(String::as_str).collect::<Vec<_>>());

    // The first occurrence's capture: the previous container's last 50
    // lines, read through the apiserver, and the pod's events.
    let id = incident["id"].as_i64().unwrap();
    let detail = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let detail = server.get(&format!("/api/v1/incidents/{id}")).await;
            if !detail["logs"].is_null() {
                break detail;
            }
            assert!(Instant::now() < deadline, "nothing captured: {detail}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let expected: String = (31..=80).map(|n| format!("cart line {n}\n")).collect();
    assert_eq!(detail["logs"], expected.as_str(), "{detail}");
    let events = detail["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "OOMKilling" && e["type"] == "Warning"),
        "{events:?}"
    );

    // Per-cluster settings, on top of the service-wide ones: the other
    // cluster ignores its `batch` namespace. Bad settings name the problem.
    let (status, body) = server
        .call(
            "PATCH",
            "/api/v1/clusters/inc-b",
            Some(json!({"incidents": {"exclude_pod_names": ["(unclosed"]}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("unclosed"),
        "{body}"
    );
    let (status, body) = server
        .call(
            "PATCH",
            "/api/v1/clusters/inc-b",
            Some(json!({"incidents": {"exclude_namespaces": ["batch"]}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["incidents"]["exclude_namespaces"], json!(["batch"]));
    b.create_namespace("batch").await.unwrap();
    let ignored = deployment(b, "batch", "nightly", 1).await;

    // The same crash on the other cluster: a second incident, and both are
    // in one query.
    let other = deployment(b, "shop", "cart", 1).await;
    // the watch restarted with the new settings and saw the running pods
    server
        .wait_cluster("inc-b", "the watch applying the new settings", |c| {
            c["watch"]["incidents"]["exclude_namespaces"] == json!(["batch"])
        })
        .await;
    server.wait_watched("inc-b", b, "pods").await;
    b.set_pod_state("batch", &ignored[0], &PodState::oom_killed(1))
        .await
        .unwrap();
    b.set_pod_state("shop", &other[0], &PodState::oom_killed(1))
        .await
        .unwrap();
    let both = wait_incidents(
        &server,
        "reason=OOMKilled",
        "the crash on both clusters",
        |i| i.len() == 2,
    )
    .await;
    let mut clusters: Vec<&str> = both
        .iter()
        .map(|i| i["cluster"].as_str().unwrap())
        .collect();
    clusters.sort_unstable();
    assert_eq!(clusters, ["inc-a", "inc-b"]);
    let batch = server.get("/api/v1/incidents?namespace=batch").await;
    assert_eq!(batch["incidents"], json!([]), "{batch}");

    // The CLI: the same filters, and acknowledging.
    let output = server.cli(&["incidents", "--reason", "OOMKilled", "-o", "json"]);
    assert!(output.status.success(), "{output:?}");
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let output = server.cli(&["incidents", "--cluster", "inc-b"]);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        table.contains("Deployment/cart") && table.contains("OOMKilled"),
        "{table}"
    );
    assert!(!table.contains("inc-a"), "{table}");
    let output = server.cli(&["incidents", "ack", &id.to_string()]);
    assert!(output.status.success(), "{output:?}");
    let acked = server.get(&format!("/api/v1/incidents/{id}")).await;
    assert_eq!(acked["acked_by"], "admin", "{acked}");
    let output = server.cli(&["incidents", "show", &id.to_string()]);
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(
        shown.contains("cart line 80") && shown.contains("OOMKilling"),
        "{shown}"
    );
    let output = server.cli(&["incidents", "--status", "sleeping"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("status"));

    // Filters and pages.
    let (status, body) = server
        .call("GET", "/api/v1/incidents?since=yesterday", None)
        .await;
    assert_eq!(status, 400, "{body}");
    let page = server.get("/api/v1/incidents?limit=1").await;
    assert_eq!(page["incidents"].as_array().unwrap().len(), 1);
    let next = page["next"].as_str().unwrap();
    let rest = server
        .get(&format!("/api/v1/incidents?limit=1&after={next}"))
        .await;
    assert_eq!(rest["incidents"].as_array().unwrap().len(), 1);
    assert_ne!(rest["incidents"][0]["id"], page["incidents"][0]["id"]);

    // Metrics: open incidents by cluster and reason.
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("pilothouse_incidents_open{cluster=\"inc-a\",reason=\"OOMKilled\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pilothouse_notification_entries_unreadable{kind=\"route\"} 0"),
        "{metrics}"
    );
    promtool_check_metrics(&metrics);
}

#[tokio::test]
async fn a_flapping_pod_reopens_its_incident_and_notifications_follow_routes_and_silences() {
    let repo = Repo::new(small_state);
    let cluster = TestCluster::start("inc-flap").await.unwrap();
    prepare(&cluster, "shop").await;
    let receiver = Receiver::start(0).await;
    let server = serve_fast(&repo, &[]);
    server.register("flap", &cluster, "eks", &["--sync-mode", "manual"]);

    let (status, body) = server
        .call(
            "POST",
            "/api/v1/receivers",
            Some(
                json!({"name": "hook", "config": {"kind": "webhook", "url": receiver.url(),
                "headers": {"X-Team": "shop"}, "hmac_secret": "s3cret"}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(!body.to_string().contains("s3cret"), "{body}");
    let (status, body) = server
        .call(
            "POST",
            "/api/v1/routes",
            Some(
                json!({"receiver": "hook", "group_by": [], "group_wait": "0s",
                "group_interval": "1s", "repeat_interval": "1h",
                "matchers": [{"label": "cluster", "op": "=", "value": "flap"}]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // Bad input names its problem.
    let (status, body) = server
        .call(
            "POST",
            "/api/v1/routes",
            Some(json!({"receiver": "hook", "matchers": [{"label": "pod", "op": "=", "value": "x"}]})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("pod"), "{body}");
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/routes",
            Some(json!({"receiver": "nobody"})),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = server.call("DELETE", "/api/v1/receivers/hook", None).await;
    assert_eq!(status, 409, "a receiver in use: {body}");

    // Crash, recover, crash again: one incident, reopened once.
    let pods = deployment(&cluster, "shop", "api", 1).await;
    server.wait_watched("flap", &cluster, "pods").await;
    cluster
        .set_pod_state("shop", &pods[0], &PodState::crash_loop(1, 1))
        .await
        .unwrap();
    receiver
        .wait("the firing notification", |bodies| !bodies.is_empty())
        .await;
    cluster
        .set_pod_state(
            "shop",
            &pods[0],
            &PodState::Running {
                ready: true,
                restarts: 1,
            },
        )
        .await
        .unwrap();
    receiver
        .wait("the resolved notification", |bodies| bodies.len() >= 2)
        .await;
    cluster
        .set_pod_state("shop", &pods[0], &PodState::crash_loop(2, 1))
        .await
        .unwrap();
    let bodies = receiver
        .wait("the notification of the relapse", |bodies| {
            bodies.len() >= 3
        })
        .await;
    assert_eq!(
        summaries(&bodies),
        [
            (
                "firing".to_owned(),
                vec!["api/CrashLoopBackOff:open".to_owned()]
            ),
            (
                "resolved".to_owned(),
                vec!["api/CrashLoopBackOff:resolved".to_owned()]
            ),
            (
                "firing".to_owned(),
                vec!["api/CrashLoopBackOff:open".to_owned()]
            ),
        ]
    );
    let incidents = server.get("/api/v1/incidents?cluster=flap").await["incidents"].clone();
    assert_eq!(incidents.as_array().unwrap().len(), 1, "{incidents}");
    assert_eq!(incidents[0]["reopen_count"], 1, "{incidents}");
    assert_eq!(incidents[0]["status"], "open");
    assert_eq!(bodies[0]["incidents"][0]["id"], incidents[0]["id"]);
    // The webhook carries its headers and a signature of the body.
    {
        let received = receiver.received.lock().unwrap();
        let keys: std::collections::BTreeSet<&str> =
            received.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys.len(), received.len(), "distinct idempotency keys");
    }

    // A silence mutes the notifications of what it matches, not the
    // recording.
    let (status, silence) = server
        .call(
            "POST",
            "/api/v1/silences",
            Some(
                json!({"matchers": [{"label": "reason", "op": "=", "value": "OOMKilled"}],
                "duration": "1h", "comment": "known leak, fix deploying"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{silence}");
    assert_eq!(silence["state"], "active");
    assert_eq!(silence["author"], "admin");
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/silences",
            Some(json!({"matchers": [], "duration": "1h", "comment": "x"})),
        )
        .await;
    assert_eq!(status, 400, "a silence of everything is refused");
    let leaky = deployment(&cluster, "shop", "leaky", 1).await;
    server.wait_watched("flap", &cluster, "pods").await;
    cluster
        .set_pod_state("shop", &leaky[0], &PodState::oom_killed(1))
        .await
        .unwrap();
    let silenced = wait_incidents(&server, "workload=leaky", "the silenced incident", |i| {
        i.len() == 1 && i[0]["silenced_by"] == silence["id"]
    })
    .await;
    assert_eq!(silenced[0]["reason"], "OOMKilled");
    // the dispatcher muted it (the mark and what it queued are written
    // together): nothing more was queued, and nothing more sent
    let deliveries = settled_deliveries(&server, "hook").await;
    assert_eq!(deliveries.len(), 3, "{deliveries:#?}");
    assert_eq!(receiver.bodies().len(), 3, "{:#?}", receiver.bodies());

    // Expiring the silence lets the incident through.
    let id = silence["id"].as_i64().unwrap();
    let (status, _) = server
        .call("DELETE", &format!("/api/v1/silences/{id}"), None)
        .await;
    assert_eq!(status, 204);
    let bodies = receiver
        .wait("the unmuted incident", |bodies| bodies.len() >= 4)
        .await;
    assert_eq!(
        summaries(&bodies[3..]),
        [("firing".to_owned(), vec!["leaky/OOMKilled:open".to_owned()])]
    );
    let deliveries = server.get("/api/v1/receivers/hook/deliveries").await;
    let deliveries = deliveries.as_array().unwrap();
    assert_eq!(deliveries.len(), 4, "{deliveries:#?}");
    assert!(
        deliveries.iter().all(|d| d["state"] == "delivered"),
        "{deliveries:#?}"
    );
}

#[tokio::test]
async fn a_receiver_down_gets_every_notification_exactly_once_across_a_pilothouse_restart() {
    let repo = Repo::new(small_state);
    let cluster = TestCluster::start("inc-down").await.unwrap();
    prepare(&cluster, "shop").await;
    // A port nobody listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = serve_fast(&repo, &[]);
    server.register("down", &cluster, "eks", &["--sync-mode", "manual"]);
    let url = format!("http://127.0.0.1:{port}/hook");
    let (status, body) = server
        .call(
            "POST",
            "/api/v1/receivers",
            Some(json!({"name": "later", "config": {"kind": "webhook", "url": url}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .call(
            "POST",
            "/api/v1/routes",
            Some(
                json!({"receiver": "later", "group_by": ["workload"], "group_wait": "0s",
                "group_interval": "1s", "repeat_interval": "1h"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // A storm: three workloads crash while the receiver is down.
    let mut all = Vec::new();
    for name in ["alpha", "beta", "gamma"] {
        all.push((name, deployment(&cluster, "shop", name, 2).await));
    }
    server.wait_watched("down", &cluster, "pods").await;
    for (_, pods) in &all {
        for pod in pods {
            cluster
                .set_pod_state("shop", pod, &PodState::crash_loop(1, 2))
                .await
                .unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let deliveries = server.get("/api/v1/receivers/later/deliveries").await;
        let failing = deliveries
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["state"] == "pending" && d["attempts"].as_u64() >= Some(1))
            .count();
        if failing == 3 {
            let error = deliveries[0]["last_error"].as_str().unwrap_or_default();
            assert!(!error.is_empty(), "{deliveries}");
            break;
        }
        assert!(Instant::now() < deadline, "no failed tries: {deliveries}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Pilothouse dies mid-storm; more pods crash while it is down.
    server.kill();
    let delta = deployment(&cluster, "shop", "delta", 1).await;
    cluster
        .set_pod_state("shop", &delta[0], &PodState::crash_loop(0, 3))
        .await
        .unwrap();
    server.start_again();

    // The receiver comes back: every notification, once.
    let receiver = Receiver::start(port).await;
    receiver
        .wait("four notifications", |bodies| bodies.len() >= 4)
        .await;
    // every queued delivery is done: what arrived is all there is
    let deliveries = settled_deliveries(&server, "later").await;
    let bodies = receiver.bodies();
    assert_eq!(deliveries.len(), 4, "{deliveries:#?}");
    let mut workloads: Vec<String> = bodies
        .iter()
        .map(|body| {
            body["group_labels"]["workload"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    workloads.sort();
    assert_eq!(
        workloads,
        ["alpha", "beta", "delta", "gamma"],
        "{bodies:#?}"
    );
    let keys: BTreeMap<String, usize> =
        receiver
            .received
            .lock()
            .unwrap()
            .iter()
            .fold(BTreeMap::new(), |mut keys, (key, _)| {
                *keys.entry(key.clone()).or_default() += 1;
                keys
            });
    assert!(keys.values().all(|n| *n == 1), "{keys:?}");

    // No incident lost: the ones from before and during the restart.
    let incidents = server.get("/api/v1/incidents?cluster=down").await["incidents"].clone();
    assert_eq!(incidents.as_array().unwrap().len(), 4, "{incidents:#?}");
    for incident in incidents.as_array().unwrap() {
        let expected = if incident["workload"] == "delta" {
            1
        } else {
            2
        };
        assert_eq!(incident["count"], expected, "{incident}");
    }
}

#[tokio::test]
async fn watches_resume_after_an_apiserver_restart_without_counting_twice() {
    let repo = Repo::new(small_state);
    let mut cluster = TestCluster::start("inc-restart").await.unwrap();
    prepare(&cluster, "shop").await;
    let server = serve(&repo, &["--incident-hold-down", "4s"]);
    server.register("restart", &cluster, "eks", &["--sync-mode", "manual"]);
    let pods = deployment(&cluster, "shop", "worker", 1).await;
    let oneoff = deployment(&cluster, "shop", "oneoff", 1).await;
    server.wait_watched("restart", &cluster, "pods").await;
    cluster
        .set_pod_state("shop", &pods[0], &PodState::error(2, 1))
        .await
        .unwrap();
    let open = wait_incidents(&server, "workload=worker", "the error", |i| {
        i.len() == 1 && i[0]["count"] == 1
    })
    .await;
    assert_eq!(open[0]["reason"], "Error", "{open:#?}");

    // The apiserver goes away: the incident cannot be told, it is unknown.
    cluster.stop_apiserver();
    wait_incidents(&server, "workload=worker", "unknown", |i| {
        i[0]["status"] == "unknown"
    })
    .await;
    cluster.restart_apiserver().await.unwrap();
    wait_incidents(&server, "workload=worker", "open again", |i| {
        i[0]["status"] == "open"
    })
    .await;
    // Resumed (or listed again), not double counted: a change made now is
    // seen after whatever the watch did on its way back
    let marker = cluster
        .create_pod_on("node-1", "shop", "marker", &[("m", "busybox:1")], &[], None)
        .await
        .unwrap();
    server
        .wait_watched_version("restart", "pods", version_of(&marker))
        .await;
    let same = server.get("/api/v1/incidents?workload=worker").await;
    assert_eq!(same["incidents"][0]["count"], 1, "{same}");
    cluster
        .set_pod_state("shop", &pods[0], &PodState::error(2, 2))
        .await
        .unwrap();
    wait_incidents(&server, "workload=worker", "the next restart", |i| {
        i[0]["count"] == 2
    })
    .await;

    // The pod recovers and the apiserver goes away during the hold-down:
    // once it is back, the pod (unchanged since) is seen healthy again and
    // the incident resolves.
    let recovered = cluster
        .set_pod_state(
            "shop",
            &pods[0],
            &PodState::Running {
                ready: true,
                restarts: 2,
            },
        )
        .await
        .unwrap();
    server
        .wait_watched_version("restart", "pods", version_of(&recovered))
        .await;
    cluster.stop_apiserver();
    wait_incidents(
        &server,
        "workload=worker",
        "unknown during the hold-down",
        |i| i[0]["status"] == "unknown",
    )
    .await;
    cluster.restart_apiserver().await.unwrap();
    let resolved = wait_incidents(
        &server,
        "workload=worker",
        "resolved after the outage",
        |i| i[0]["status"] == "resolved",
    )
    .await;
    assert_eq!(resolved[0]["count"], 2, "{resolved:#?}");

    // A failing one-off pod that is deleted: nothing is left failing.
    cluster
        .set_pod_state("shop", &oneoff[0], &PodState::crash_loop(1, 1))
        .await
        .unwrap();
    wait_incidents(&server, "workload=oneoff", "the one-off crash", |i| {
        i.len() == 1
    })
    .await;
    let output = cluster
        .kubectl()
        .args([
            "delete",
            "pod",
            "-n",
            "shop",
            &oneoff[0],
            "--grace-period=0",
            "--force",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    wait_incidents(
        &server,
        "workload=oneoff",
        "resolved once its pod is gone",
        |i| i[0]["status"] == "resolved",
    )
    .await;
}

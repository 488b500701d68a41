//! The REST API end to end through the router: a real SQLite file, real
//! kube-apiserver clusters from testenv, no mocks.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use pilothouse_api::{
    AppState, BoxFuture, ClusterChecks, GitOpsControl, HttpMetrics, IncidentControl, Limits,
    OutboundPolicy, ScaffoldError, Scaffolded,
};
use pilothouse_fleet::{CheckSettings, KubeconfigPolicy};
use pilothouse_notify::DestinationPolicy;
use pilothouse_store::{Cluster, MasterKey, Reachability, Scope, Store};
use pilothouse_testenv::{FakeNode, ProviderCloud, TestCluster, start_fleet};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Stands in for the GitOps controller the binary runs (that one is tested
/// through the real `serve`): counts what the API asks of it.
#[derive(Default)]
struct Requests {
    fetches: AtomicUsize,
    syncs: AtomicUsize,
    notifications: AtomicUsize,
    checks: AtomicUsize,
}

struct Control(Arc<Requests>);

impl IncidentControl for Control {
    fn notifications_changed(&self) {
        self.0.notifications.fetch_add(1, Ordering::SeqCst);
    }

    fn clusters_changed(&self) {}
}

/// Checks answer as the binary's checker records them: reachable, or not
/// when the cluster is named `down`; counted.
impl ClusterChecks for Control {
    fn check_now(&self, mut cluster: Cluster) -> BoxFuture<Result<Cluster, String>> {
        self.0.checks.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if cluster.name == "down" {
                cluster.reachability = Reachability::Unreachable;
                cluster.consecutive_failures += 1;
                cluster.last_error = Some("connection refused".into());
            } else {
                cluster.reachability = Reachability::Reachable;
                cluster.consecutive_failures = 0;
            }
            Ok(cluster)
        })
    }
}

impl GitOpsControl for Control {
    fn fetch_now(&self) {
        self.0.fetches.fetch_add(1, Ordering::SeqCst);
    }

    fn sync_queued(&self) {
        self.0.syncs.fetch_add(1, Ordering::SeqCst);
    }

    fn scan_drift(&self, _: String) -> BoxFuture<Result<(), String>> {
        Box::pin(async { Err("no controller runs in router tests".to_owned()) })
    }

    fn scaffold(&self, _: String, _: String) -> BoxFuture<Result<Scaffolded, ScaffoldError>> {
        Box::pin(async {
            Err(ScaffoldError::Rejected(
                "the remote refused the push (not a fast-forward)".into(),
            ))
        })
    }
}

struct Api {
    router: Router,
    store: Store,
    requests: Arc<Requests>,
    write: String,
    read: String,
    dir: tempfile::TempDir,
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("pilothouse.db"))
        .await
        .unwrap();
    let key = MasterKey::load_or_create(&dir.path().join("master.key"), None).unwrap();
    let (_, write) = store.create_token("admin", Scope::Write).await.unwrap();
    let (_, read) = store.create_token("viewer", Scope::Read).await.unwrap();
    let requests = Arc::new(Requests::default());
    let state = AppState {
        store: store.clone(),
        master_key: Arc::new(key),
        kubeconfig_policy: Arc::new(KubeconfigPolicy::default()),
        checks: Arc::new(CheckSettings {
            timeout: Duration::from_secs(3),
            ..CheckSettings::default()
        }),
        metrics: Arc::new(HttpMetrics::default()),
        checker: Arc::new(Control(Arc::clone(&requests))),
        gitops: Arc::new(Control(Arc::clone(&requests))),
        incidents: Arc::new(Control(Arc::clone(&requests))),
        outbound: Arc::new(OutboundPolicy {
            local_repo_roots: vec![PathBuf::from("/srv/git")],
            receiver_destinations: DestinationPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]),
        }),
    };
    let router = pilothouse_api::router(state, &Limits::default());
    Api {
        router,
        store,
        requests,
        write,
        read,
        dir,
    }
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
            None => request.body(Body::empty()).unwrap(),
        };
        self.send(request).await
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value, String) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = to_bytes(response.into_body(), 64 << 20).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json, content_type)
    }

    async fn register(
        &self,
        name: &str,
        cluster: &TestCluster,
        extra: Value,
    ) -> (StatusCode, Value, String) {
        let mut body = json!({"name": name, "kubeconfig": cluster.kubeconfig_yaml()});
        if let Value::Object(extra) = extra {
            body.as_object_mut().unwrap().extend(extra);
        }
        self.call("POST", "/api/v1/clusters", Some(&self.write), Some(body))
            .await
    }
}

fn assert_problem(status: StatusCode, body: &Value, content_type: &str, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
}

#[tokio::test]
async fn registers_three_clouds_detected_from_node_provider_ids_then_lists_filters_and_pages() {
    let api = api().await;
    let fleet = start_fleet(&["aks", "gke", "eks"]).await.unwrap();
    let clouds = [ProviderCloud::Aks, ProviderCloud::Gke, ProviderCloud::Eks];
    for ((cluster, cloud), name) in
        fleet
            .iter()
            .zip(clouds)
            .zip(["prod-aks", "prod-gke", "stage-eks"])
    {
        cluster
            .create_node(&FakeNode::ready("node-1", cloud))
            .await
            .unwrap();
        let env = if name.starts_with("prod") {
            "prod"
        } else {
            "staging"
        };
        let (status, body, _) = api
            .register(
                name,
                cluster,
                json!({"labels": {"env": env, "app.kubernetes.io/part-of": "shop"}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["kubernetes_version"], "v1.35.4");
        assert_eq!(body["reachability"], "reachable");
        assert_eq!(body["cloud_source"], "detected");
        assert!(
            body.get("kubeconfig").is_none() && body.get("credentials").is_none(),
            "{body}"
        );
    }
    let (_, gke, _) = api
        .call("GET", "/api/v1/clusters/prod-gke", Some(&api.read), None)
        .await;
    assert_eq!(gke["cloud"], "gke");
    assert_eq!(gke["server_url"], fleet[1].server_url());

    let names = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, all, _) = api
        .call("GET", "/api/v1/clusters", Some(&api.read), None)
        .await;
    assert_eq!(names(&all), ["prod-aks", "prod-gke", "stage-eks"]);
    let (_, eks, _) = api
        .call("GET", "/api/v1/clusters?cloud=eks", Some(&api.read), None)
        .await;
    assert_eq!(names(&eks), ["stage-eks"]);
    let (_, prod, _) = api
        .call(
            "GET",
            "/api/v1/clusters?labelSelector=env%3Dprod,app.kubernetes.io%2Fpart-of%3Dshop",
            Some(&api.read),
            None,
        )
        .await;
    assert_eq!(names(&prod), ["prod-aks", "prod-gke"]);

    let mut seen = Vec::new();
    let mut path = "/api/v1/clusters?limit=2".to_owned();
    loop {
        let (status, page, _) = api.call("GET", &path, Some(&api.read), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        seen.extend(names(&page));
        match page["next"].as_str() {
            Some(next) => path = format!("/api/v1/clusters?limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, ["prod-aks", "prod-gke", "stage-eks"]);

    let (status, patched, _) = api
        .call(
            "PATCH",
            "/api/v1/clusters/stage-eks",
            Some(&api.write),
            Some(json!({"labels": {"env": "prod"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["labels"], json!({"env": "prod"}));
    let (status, _, _) = api
        .call(
            "DELETE",
            "/api/v1/clusters/stage-eks",
            Some(&api.write),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body, content_type) = api
        .call("GET", "/api/v1/clusters/stage-eks", Some(&api.read), None)
        .await;
    assert_problem(status, &body, &content_type, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_check_answers_what_the_checker_recorded_and_listing_checks_nothing() {
    let api = api().await;
    let fleet = start_fleet(&["up", "down"]).await.unwrap();
    for (name, cluster) in ["up", "down"].iter().zip(&fleet) {
        let (status, body, _) = api.register(name, cluster, json!({"cloud": "other"})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["cloud_source"], "declared");
    }
    let (status, down, _) = api
        .call(
            "POST",
            "/api/v1/clusters/down/check",
            Some(&api.write),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{down}");
    assert_eq!(down["reachability"], "unreachable");
    assert_eq!(down["last_error"], "connection refused");
    assert_eq!(down["consecutive_failures"], 1);
    let (_, up, _) = api
        .call("POST", "/api/v1/clusters/up/check", Some(&api.write), None)
        .await;
    assert_eq!(up["reachability"], "reachable");
    assert_eq!(api.requests.checks.load(Ordering::SeqCst), 2);
    let (status, _, _) = api
        .call("POST", "/api/v1/clusters/up/check", Some(&api.read), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a check is a write");
    let (status, _, _) = api
        .call(
            "POST",
            "/api/v1/clusters/gone/check",
            Some(&api.write),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // the API answers from the store: listing checks nothing
    for _ in 0..20 {
        let (status, _, _) = api
            .call("GET", "/api/v1/clusters", Some(&api.read), None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(api.requests.checks.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn refused_kubeconfigs_name_the_offending_field() {
    let api = api().await;
    let cluster = TestCluster::start("refusals").await.unwrap();
    let good: Value = serde_yaml::from_str(cluster.kubeconfig_yaml()).unwrap();
    let variant = |edit: &dyn Fn(&mut Value)| {
        let mut config = good.clone();
        edit(&mut config);
        serde_yaml::to_string(&config).unwrap()
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "certificate-authority",
            variant(&|c| {
                c["clusters"][0]["cluster"]["certificate-authority"] = json!("/etc/ca.crt")
            }),
            "certificate-authority",
        ),
        (
            "client-certificate",
            variant(&|c| c["users"][0]["user"]["client-certificate"] = json!("/tmp/cert.pem")),
            "client-certificate",
        ),
        (
            "client-key",
            variant(&|c| c["users"][0]["user"]["client-key"] = json!("/root/.ssh/id_rsa")),
            "client-key",
        ),
        (
            "tokenFile",
            variant(&|c| c["users"][0]["user"]["tokenFile"] = json!("/var/run/token")),
            "tokenFile",
        ),
        (
            "exec",
            variant(
                &|c| c["users"][0]["user"]["exec"] = json!({"apiVersion": "client.authentication.k8s.io/v1", "command": "sh", "args": ["-c", "id"]}),
            ),
            "exec",
        ),
        (
            "auth-provider",
            variant(&|c| c["users"][0]["user"]["auth-provider"] = json!({"name": "gcp"})),
            "auth-provider",
        ),
        (
            "current-context",
            variant(&|c| {
                c.as_object_mut().unwrap().remove("current-context");
            }),
            "context",
        ),
    ];
    for (case, kubeconfig, field) in cases {
        let (status, body, content_type) = api
            .call(
                "POST",
                "/api/v1/clusters",
                Some(&api.write),
                Some(json!({"name": "x", "kubeconfig": kubeconfig})),
            )
            .await;
        assert_problem(status, &body, &content_type, StatusCode::BAD_REQUEST);
        let named = body["field"].as_str().unwrap_or_default();
        assert!(named.contains(field), "{case}: field {named:?} in {body}");
    }
    let (status, body, content_type) = api
        .register("ok", &cluster, json!({"context": "nope"}))
        .await;
    assert_problem(status, &body, &content_type, StatusCode::BAD_REQUEST);
    assert!(body["detail"].as_str().unwrap().contains("nope"), "{body}");
    for bad_name in ["Prod", "-x", "a_b", &"x".repeat(64)] {
        let (status, body, content_type) = api.register(bad_name, &cluster, json!({})).await;
        assert_problem(status, &body, &content_type, StatusCode::BAD_REQUEST);
        assert_eq!(body["field"], "name");
    }
    let (status, body, _) = api.register("dup", &cluster, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body, content_type) = api.register("dup", &cluster, json!({})).await;
    assert_problem(status, &body, &content_type, StatusCode::CONFLICT);
    let (status, body, content_type) = api
        .register("cloudy", &cluster, json!({"cloud": "azure"}))
        .await;
    assert_problem(status, &body, &content_type, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "cloud");
    assert!(
        api.store.get_cluster("x").await.unwrap().is_none(),
        "nothing half-written"
    );
}

#[tokio::test]
async fn secrets_never_reach_the_database_file_or_responses() {
    let api = api().await;
    let cluster = TestCluster::start("secrets").await.unwrap();
    let (status, body, _) = api.register("by-cert", &cluster, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token_config = json!({"name": "by-token", "kubeconfig": cluster.token_kubeconfig_yaml()});
    let (status, body, _) = api
        .call(
            "POST",
            "/api/v1/clusters",
            Some(&api.write),
            Some(token_config),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, listed, _) = api
        .call("GET", "/api/v1/clusters", Some(&api.read), None)
        .await;
    api.store.close().await;

    let config: Value = serde_yaml::from_str(cluster.kubeconfig_yaml()).unwrap();
    let key_data = config["users"][0]["user"]["client-key-data"]
        .as_str()
        .unwrap()
        .to_owned();
    let cert_data = config["users"][0]["user"]["client-certificate-data"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut needles = vec![
        cluster.admin_token().to_owned(),
        key_data[..40].to_owned(),
        cert_data[..40].to_owned(),
        api.write.clone(),
        api.read.clone(),
    ];
    // the decoded PEM body too
    let pem = String::from_utf8(base64_decode(&key_data)).unwrap();
    needles.push(pem.lines().nth(1).unwrap().to_owned());
    let mut haystack = Vec::new();
    for entry in std::fs::read_dir(api.dir.path()).unwrap().flatten() {
        if entry.file_name() != "master.key" {
            haystack.extend(std::fs::read(entry.path()).unwrap());
        }
    }
    let listed = listed.to_string();
    for needle in &needles {
        assert!(
            !contains(&haystack, needle.as_bytes()),
            "a secret is in the data directory: {}…",
            &needle[..8]
        );
        assert!(
            !listed.contains(needle.as_str()),
            "a secret is in an API response"
        );
    }
}

#[tokio::test]
async fn tokens_are_required_and_scoped() {
    let api = api().await;
    for token in [None, Some("not-a-token")] {
        let (status, body, content_type) = api.call("GET", "/api/v1/clusters", token, None).await;
        assert_problem(status, &body, &content_type, StatusCode::UNAUTHORIZED);
    }
    let (status, _, _) = api
        .call("GET", "/api/v1/clusters", Some(&api.read), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, content_type) = api
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&api.read),
            Some(json!({"name": "x", "scope": "write"})),
        )
        .await;
    assert_problem(status, &body, &content_type, StatusCode::FORBIDDEN);
    let (status, created, _) = api
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&api.write),
            Some(json!({"name": "ci", "scope": "read"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap();
    let (status, _, _) = api.call("GET", "/metrics", Some(secret), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = api
        .call(
            "DELETE",
            &format!("/api/v1/tokens/{}", created["id"]),
            Some(&api.write),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = api.call("GET", "/metrics", Some(secret), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a revoked token no longer works"
    );
    for open in ["/healthz", "/readyz"] {
        let (status, body, _) = api.call("GET", open, None, None).await;
        assert_eq!(status, StatusCode::OK, "{open}");
        assert_eq!(body["status"], "ok");
    }
}

#[tokio::test]
async fn bad_bodies_are_problems() {
    let api = api().await;
    let big = format!(
        "{{\"name\": \"x\", \"kubeconfig\": \"{}\"}}",
        "a".repeat(20 << 20)
    );
    let request = Request::post("/api/v1/clusters")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.write))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(big))
        .unwrap();
    let (status, body, content_type) = api.send(request).await;
    assert_problem(status, &body, &content_type, StatusCode::PAYLOAD_TOO_LARGE);

    let request = Request::post("/api/v1/clusters")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.write))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let (status, body, content_type) = api.send(request).await;
    assert_problem(status, &body, &content_type, StatusCode::BAD_REQUEST);

    let (status, body, content_type) = api
        .call(
            "POST",
            "/api/v1/clusters",
            Some(&api.write),
            Some(json!({"name": "x", "kubeconfig": "", "colour": "red"})),
        )
        .await;
    assert_problem(status, &body, &content_type, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("colour"),
        "{body}"
    );

    let (status, body, content_type) = api
        .call("GET", "/api/v1/clusters?limit=0", Some(&api.read), None)
        .await;
    assert_problem(status, &body, &content_type, StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "limit");
    let (status, body, content_type) = api
        .call("GET", "/api/v1/nothing", Some(&api.read), None)
        .await;
    assert_problem(status, &body, &content_type, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn openapi_lists_every_route_and_metrics_count_requests() {
    let api = api().await;
    let (status, doc, _) = api
        .call("GET", "/api/v1/openapi.json", Some(&api.read), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    let expected = [
        ("/api/v1/clusters", vec!["get", "post"]),
        ("/api/v1/clusters/{name}", vec!["delete", "get", "patch"]),
        ("/api/v1/clusters/{name}/check", vec!["post"]),
        ("/api/v1/clusters/{name}/sync", vec!["post"]),
        ("/api/v1/clusters/{name}/syncs", vec!["get"]),
        ("/api/v1/clusters/{name}/syncs/{id}", vec!["get"]),
        ("/api/v1/clusters/{name}/resources", vec!["get"]),
        ("/api/v1/repository", vec!["get", "put"]),
        ("/api/v1/revisions", vec!["get"]),
        ("/api/v1/webhooks/git", vec!["post"]),
        ("/api/v1/clusters/{name}/drift", vec!["get"]),
        ("/api/v1/clusters/{name}/drift/scan", vec!["post"]),
        ("/api/v1/clusters/{name}/drift/history", vec!["get"]),
        ("/api/v1/drift", vec!["get"]),
        ("/api/v1/drift/ignore-rules", vec!["get", "post"]),
        ("/api/v1/drift/ignore-rules/{id}", vec!["delete"]),
        ("/api/v1/tokens", vec!["get", "post"]),
        ("/api/v1/tokens/{id}", vec!["delete"]),
        ("/api/v1/incidents", vec!["get"]),
        ("/api/v1/incidents/{id}", vec!["get"]),
        ("/api/v1/incidents/{id}/ack", vec!["post"]),
        ("/api/v1/receivers", vec!["get", "post"]),
        ("/api/v1/receivers/{name}", vec!["delete", "get", "put"]),
        ("/api/v1/receivers/{name}/deliveries", vec!["get"]),
        ("/api/v1/routes", vec!["get", "post"]),
        ("/api/v1/routes/{id}", vec!["delete", "get", "put"]),
        ("/api/v1/silences", vec!["get", "post"]),
        ("/api/v1/silences/{id}", vec!["delete", "get"]),
        ("/api/v1/openapi.json", vec!["get"]),
    ];
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(
        paths.len(),
        expected.len(),
        "{:?}",
        paths.keys().collect::<Vec<_>>()
    );
    for (path, methods) in expected {
        let mut listed: Vec<&str> = paths[path]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        listed.sort_unstable();
        assert_eq!(listed, methods, "{path}");
        for method in methods {
            assert!(
                paths[path][method]["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{path} {method}"
            );
        }
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    // a real validator of the OpenAPI specification
    let validator = std::env::var("PILOTHOUSE_OPENAPI_VALIDATOR").unwrap_or_else(|_| {
        format!(
            "{}/.cache/pilothouse/venv/bin/openapi-spec-validator",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    assert!(
        std::path::Path::new(&validator).is_file(),
        "openapi-spec-validator not found at {validator}: run scripts/test.sh (it installs it) or set PILOTHOUSE_OPENAPI_VALIDATOR"
    );
    let file = api.dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).unwrap();
    let checked = std::process::Command::new(&validator)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let request = Request::get("/metrics")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.read))
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    assert!(text.contains(r#"pilothouse_http_requests_total{method="GET",route="/api/v1/openapi.json",status="200"} 1"#), "{text}");
    assert!(text.contains("pilothouse_clusters"), "{text}");
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// GitHub's signature of `body` under `secret`, computed by the openssl CLI
/// (an implementation independent of ours).
fn github_signature(secret: &str, body: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-hex"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the openssl CLI must be installed");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    format!("sha256={}", text.trim().rsplit(' ').next().unwrap())
}

impl Api {
    async fn webhook(&self, headers: &[(&str, &str)], body: &[u8]) -> (StatusCode, Value, String) {
        let mut request =
            Request::post("/api/v1/webhooks/git").header(header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::from(body.to_vec())).unwrap())
            .await
    }
}

#[tokio::test]
async fn repository_settings_keep_secrets_and_webhooks_are_verified() {
    let api = api().await;
    let (status, body, content_type) = api
        .call("GET", "/api/v1/repository", Some(&api.read), None)
        .await;
    assert_problem(status, &body, &content_type, StatusCode::NOT_FOUND);

    // Bad settings are refused, naming the field; nothing is stored.
    for (bad, field) in [
        (json!({"url": "relative/path"}), "url"),
        (json!({"url": "git://example.com/repo.git"}), "url"),
        (json!({"url": "https://user:pw@example.com/r.git"}), "url"),
        (
            json!({"url": "http://example.com/r.git", "credentials": {"kind": "token", "token": "t0k3n"}}),
            "url",
        ),
        (
            json!({"url": "/srv/git/desired", "branch": "a..b"}),
            "branch",
        ),
        (json!({"url": "/srv/git/desired", "path": "../up"}), "path"),
        (
            json!({"url": "/srv/git/desired", "poll_interval_seconds": 1}),
            "poll_interval_seconds",
        ),
        (
            json!({"url": "/srv/git/desired", "webhook_secret": "short"}),
            "webhook_secret",
        ),
    ] {
        let (status, body, content_type) = api
            .call(
                "PUT",
                "/api/v1/repository",
                Some(&api.write),
                Some(bad.clone()),
            )
            .await;
        assert_problem(status, &body, &content_type, StatusCode::BAD_REQUEST);
        assert_eq!(body["field"], field, "{bad} {body}");
        assert!(!body.to_string().contains("pw@"), "{body}");
    }
    assert_eq!(api.store.get_repository().await.unwrap(), None);
    // Writing needs the write scope.
    let (status, _, _) = api
        .call(
            "PUT",
            "/api/v1/repository",
            Some(&api.read),
            Some(json!({"url": "/srv/git/desired"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let secret = "a-webhook-secret-of-some-length";
    let (status, repo, _) = api
        .call(
            "PUT",
            "/api/v1/repository",
            Some(&api.write),
            Some(json!({
                "url": "https://git.example.com/ops/desired.git",
                "branch": "main",
                "credentials": {"kind": "token", "token": "glpat-secret-token"},
                "webhook_secret": secret,
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{repo}");
    assert_eq!(repo["credentials"], "token");
    assert_eq!(repo["webhook_secret_set"], true);
    assert!(!repo.to_string().contains("glpat-secret-token"), "{repo}");
    assert!(!repo.to_string().contains(secret), "{repo}");
    assert_eq!(api.requests.fetches.load(Ordering::SeqCst), 1);

    // Webhooks: a bad or missing signature is 401 and starts nothing.
    let push =
        json!({"ref": "refs/heads/main", "after": "0123456789abcdef0123456789abcdef01234567"});
    let push = push.to_string().into_bytes();
    let good = github_signature(secret, &push);
    let wrong = github_signature("another-secret-entirely", &push);
    for headers in [
        vec![("x-github-event", "push")],
        vec![
            ("x-github-event", "push"),
            ("x-hub-signature-256", wrong.as_str()),
        ],
        vec![
            ("x-github-event", "push"),
            ("x-hub-signature-256", "sha256=zz"),
        ],
        vec![
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-token", "not-the-secret"),
        ],
        vec![],
    ] {
        let (status, body, content_type) = api.webhook(&headers, &push).await;
        assert_problem(status, &body, &content_type, StatusCode::UNAUTHORIZED);
    }
    // A body changed after signing is refused too.
    let mut tampered = push.clone();
    tampered.extend_from_slice(b" ");
    let (status, _, _) = api
        .webhook(
            &[("x-github-event", "push"), ("x-hub-signature-256", &good)],
            &tampered,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.requests.fetches.load(Ordering::SeqCst), 1);

    // A signed push to the followed branch starts a fetch; a replay of the
    // same delivery is refused and starts nothing.
    let (status, body, _) = api
        .webhook(
            &[("x-github-event", "push"), ("x-hub-signature-256", &good)],
            &push,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "accepted");
    let (status, body, content_type) = api
        .webhook(
            &[("x-github-event", "push"), ("x-hub-signature-256", &good)],
            &push,
        )
        .await;
    assert_problem(status, &body, &content_type, StatusCode::CONFLICT);
    let again =
        json!({"ref": "refs/heads/main", "after": "1123456789abcdef0123456789abcdef01234567"});
    let again = again.to_string().into_bytes();
    let (status, body, _) = api
        .webhook(
            &[
                ("x-github-event", "push"),
                ("x-hub-signature-256", &github_signature(secret, &again)),
            ],
            &again,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(api.requests.fetches.load(Ordering::SeqCst), 3);
    // GitLab's token works the same way.
    let (status, body, _) = api
        .webhook(
            &[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", secret)],
            &json!({"object_kind": "push", "ref": "refs/heads/main", "after": "abc"})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(api.requests.fetches.load(Ordering::SeqCst), 4);
    // Another branch, and a ping, are answered but start nothing.
    let other = json!({"ref": "refs/heads/feature"})
        .to_string()
        .into_bytes();
    let (status, body, _) = api
        .webhook(
            &[
                ("x-github-event", "push"),
                ("x-hub-signature-256", &github_signature(secret, &other)),
            ],
            &other,
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::ACCEPTED, Some("ignored"))
    );
    let ping = json!({"zen": "Keep it logically awesome."})
        .to_string()
        .into_bytes();
    let (status, body, _) = api
        .webhook(
            &[
                ("x-github-event", "ping"),
                ("x-hub-signature-256", &github_signature(secret, &ping)),
            ],
            &ping,
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("pong"))
    );
    assert_eq!(api.requests.fetches.load(Ordering::SeqCst), 4);

    // Every accepted delivery is in the repository's event log.
    let (_, repo, _) = api
        .call("GET", "/api/v1/repository", Some(&api.read), None)
        .await;
    let webhooks = repo["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "webhook")
        .count();
    assert_eq!(webhooks, 3, "{repo}");

    // Removing the secret refuses every webhook.
    let (status, _, _) = api
        .call(
            "PUT",
            "/api/v1/repository",
            Some(&api.write),
            Some(json!({"url": "https://git.example.com/ops/desired.git", "webhook_secret": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = api
        .webhook(
            &[("x-github-event", "push"), ("x-hub-signature-256", &good)],
            &push,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sync_requests_are_queued_once_and_syncs_are_readable() {
    let api = api().await;
    let cluster = TestCluster::start("sync-api").await.unwrap();
    let (status, body, _) = api
        .register("edge", &cluster, json!({"sync_mode": "manual"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["sync_mode"], "manual");
    assert_eq!(body["sync"]["status"], "never");
    // A manual cluster is not synced on registration.
    assert_eq!(api.requests.syncs.load(Ordering::SeqCst), 0);

    let (status, body, _) = api
        .register("bad-mode", &cluster, json!({"sync_mode": "sometimes"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "sync_mode");

    let request = Request::post("/api/v1/clusters/edge/sync")
        .header(header::AUTHORIZATION, format!("Bearer {}", api.write))
        .body(Body::empty())
        .unwrap();
    let response = api.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let queued: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["trigger"], "manual");
    assert_eq!(
        location,
        format!("/api/v1/clusters/edge/syncs/{}", queued["id"])
    );
    // Asking again while it waits returns the same sync.
    let (status, again, _) = api
        .call("POST", "/api/v1/clusters/edge/sync", Some(&api.write), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(again["id"], queued["id"]);
    assert_eq!(api.requests.syncs.load(Ordering::SeqCst), 2);

    let (status, list, _) = api
        .call("GET", "/api/v1/clusters/edge/syncs", Some(&api.read), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    let (status, detail, _) = api.call("GET", &location, Some(&api.read), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["objects"], json!([]));
    let (status, resources, _) = api
        .call(
            "GET",
            "/api/v1/clusters/edge/resources",
            Some(&api.read),
            None,
        )
        .await;
    assert_eq!((status, resources), (StatusCode::OK, json!([])));

    for path in [
        "/api/v1/clusters/nope/syncs",
        "/api/v1/clusters/edge/syncs/999",
        "/api/v1/clusters/nope/resources",
    ] {
        let (status, body, content_type) = api.call("GET", path, Some(&api.read), None).await;
        assert_problem(status, &body, &content_type, StatusCode::NOT_FOUND);
    }
    let (status, body, content_type) = api
        .call("POST", "/api/v1/clusters/nope/sync", Some(&api.write), None)
        .await;
    assert_problem(status, &body, &content_type, StatusCode::NOT_FOUND);
    let (status, _, _) = api
        .call("POST", "/api/v1/clusters/edge/sync", Some(&api.read), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Sync mode changes through PATCH.
    let (status, body, _) = api
        .call(
            "PATCH",
            "/api/v1/clusters/edge",
            Some(&api.write),
            Some(json!({"sync_mode": "self_heal"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sync_mode"], "self_heal");

    // A refused scaffold push registers nothing.
    let (status, body, content_type) = api
        .register(
            "scaffolded",
            &cluster,
            json!({"scaffold": true, "cloud": "gke"}),
        )
        .await;
    assert_problem(status, &body, &content_type, StatusCode::CONFLICT);
    assert!(
        body["detail"].as_str().unwrap().contains("fast-forward"),
        "{body}"
    );
    assert_eq!(api.store.get_cluster("scaffolded").await.unwrap(), None);
}

//! Drift detection end to end: the real `serve` scanning real kube-apiserver
//! clusters after sync, against hand-made changes, checked against
//! `kubectl diff --server-side` as a peer, through the API and the
//! `pilothouse drift` CLI (its exit codes are a CI gate).

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use pilothouse_testenv::{TestCluster, start_fleet};
use serde_json::Value;

use support::*;

/// Runs `pilothouse drift ARGS` against the server: (exit code, stdout).
fn drift_cli(server: &Server, args: &[&str]) -> (i32, String) {
    let mut all = vec!["drift"];
    all.extend_from_slice(args);
    let output = server.cli(&all);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[tokio::test]
async fn freshly_synced_monitoring_stacks_report_no_drift_on_every_cloud() {
    let repo = Repo::new(shipped_state);
    let fleet = start_fleet(&["drift-aks", "drift-gke", "drift-eks"])
        .await
        .unwrap();
    let server = serve(&repo, &["--drift-interval", "1h"]);
    let names = ["d-aks", "d-gke", "d-eks"];
    for ((name, cluster), cloud) in names.iter().zip(&fleet).zip(["aks", "gke", "eks"]) {
        server.register(name, cluster, cloud, &[]);
    }
    let head = git(&repo.work, &["rev-parse", "HEAD"]);
    for name in names {
        let state = server.wait_synced(name, &head).await;
        assert_eq!(state["sync"]["status"], "succeeded", "{state}");
    }
    // Every default the API server adds, every field it sets: none is drift.
    let (code, out) = drift_cli(&server, &["-o", "json"]);
    assert_eq!(code, 0, "{out}");
    let reports: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(reports.as_array().unwrap().len(), 3, "{reports}");
    for report in reports.as_array().unwrap() {
        assert_eq!(report["status"], "in_sync", "{report}");
        assert_eq!(report["counts"]["in_sync"], 27, "{report}");
        assert_eq!(report["objects"], serde_json::json!([]), "{report}");
        assert_eq!(report["revision"], head.as_str());
    }
    let summary = server.get("/api/v1/drift").await;
    assert_eq!(summary["drifted_clusters"], 0, "{summary}");
}

/// The rendered desired state of the small repo, as a file for kubectl.
fn rendered_file(repo: &Repo) -> std::path::PathBuf {
    let output = Command::new(env!("CARGO_BIN_EXE_pilothouse"))
        .args(["render", "--cloud", "eks"])
        .arg(repo.work.join("overlays/eks"))
        .output()
        .unwrap();
    assert!(output.status.success());
    let file = repo.work.join("rendered.yaml");
    std::fs::write(&file, &output.stdout).unwrap();
    file
}

/// The objects `kubectl diff --server-side` says differ, as `Kind/name`.
fn kubectl_diff(cluster: &TestCluster, file: &std::path::Path) -> BTreeSet<String> {
    let output = cluster
        .kubectl()
        .args([
            "diff",
            "--server-side",
            "--field-manager=pilothouse",
            "--force-conflicts",
            "-f",
        ])
        .arg(file)
        .env("KUBECTL_EXTERNAL_DIFF", "diff -r -q")
        .output()
        .unwrap();
    let code = output.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "kubectl diff failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // `Files LIVE/<id> and MERGED/<id> differ` or `Only in MERGED…: <id>`,
    // where <id> is group.version.Kind.namespace.name
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let id = if let Some(rest) = line.strip_prefix("Files ") {
                rest.split(" and ").next()?.rsplit('/').next()?.to_owned()
            } else {
                line.rsplit(": ").next()?.to_owned()
            };
            let parts: Vec<&str> = id.split('.').collect();
            let kind_at = parts
                .iter()
                .position(|p| p.chars().next().is_some_and(char::is_uppercase))?;
            Some(format!("{}/{}", parts[kind_at], parts.last()?))
        })
        .collect()
}

/// The objects our latest scan reports modified or missing, as `Kind/name`.
async fn our_drift(server: &Server, cluster: &str) -> (BTreeSet<String>, Value) {
    let (status, report) = server
        .call(
            "POST",
            &format!("/api/v1/clusters/{cluster}/drift/scan"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{report}");
    let set = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["state"] == "modified" || o["state"] == "missing")
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            )
        })
        .collect();
    (set, report)
}

fn paths_of(report: &Value, kind: &str) -> Vec<String> {
    report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == kind)
        .flat_map(|o| o["diffs"].as_array().unwrap().iter())
        .map(|d| d["path"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn hand_made_changes_are_drift_exactly_where_kubectl_diff_sees_them() {
    let repo = Repo::new(small_state);
    let mut cluster = TestCluster::start("drifting").await.unwrap();
    let server = serve(&repo, &["--drift-interval", "1h"]);
    server.register("shop", &cluster, "eks", &[]);
    let head = git(&repo.work, &["rev-parse", "HEAD"]);
    server.wait_synced("shop", &head).await;
    let file = rendered_file(&repo);
    let kubectl = |args: &[&str]| {
        let output = cluster.kubectl().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let (ours, report) = our_drift(&server, "shop").await;
    assert!(ours.is_empty(), "{report}");
    assert_eq!(report["status"], "in_sync");
    assert!(kubectl_diff(&cluster, &file).is_empty());
    let identity = kubectl(&["-n", "shop", "get", "configmaps", "-o", "name"])
        .lines()
        .find(|n| n.contains("pilothouse-cluster"))
        .unwrap()
        .to_owned();
    let identity_name = identity.trim_start_matches("configmap/").to_owned();

    // Mutations, one at a time; after each, ours must agree with kubectl diff.
    let mutations: Vec<(&str, Vec<String>)> = vec![
        (
            "scale",
            vec!["-n", "shop", "scale", "deployment", "web", "--replicas=5"],
        ),
        (
            "annotate a key not in Git",
            vec![
                "-n",
                "shop",
                "annotate",
                "deployment",
                "web",
                "note=by-hand",
            ],
        ),
        (
            "label a key Git sets",
            vec![
                "-n",
                "shop",
                "label",
                "deployment",
                "web",
                "tier=back",
                "--overwrite",
            ],
        ),
        (
            "label a key not in Git",
            vec!["-n", "shop", "label", "service", "web", "owner=ops"],
        ),
        (
            "set image",
            vec![
                "-n",
                "shop",
                "set",
                "image",
                "deployment/web",
                "web=nginx:1.28",
            ],
        ),
        (
            "set env (not in Git)",
            vec!["-n", "shop", "set", "env", "deployment/web", "MODE=debug"],
        ),
        (
            "edit a config map",
            vec![
                "-n",
                "shop",
                "patch",
                &identity,
                "--type=merge",
                "-p",
                r#"{"data":{"cluster":"edited"}}"#,
            ],
        ),
        (
            "edit a secret",
            vec![
                "-n",
                "shop",
                "patch",
                "secret",
                "token",
                "--type=merge",
                "-p",
                r#"{"stringData":{"token":"other-value"}}"#,
            ],
        ),
        (
            "storage class field not in Git",
            vec![
                "patch",
                "storageclass",
                "lazy",
                "--type=merge",
                "-p",
                r#"{"allowVolumeExpansion":true}"#,
            ],
        ),
        (
            "delete a service",
            vec!["-n", "shop", "delete", "service", "web"],
        ),
        (
            "namespace label not in Git",
            vec!["label", "namespace", "shop", "team=payments"],
        ),
        (
            "scale back by hand",
            vec!["-n", "shop", "scale", "deployment", "web", "--replicas=2"],
        ),
    ]
    .into_iter()
    .map(|(what, args)| (what, args.into_iter().map(str::to_owned).collect()))
    .collect();
    let mut last = Value::Null;
    for (what, args) in &mutations {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kubectl(&args);
        let (ours, report) = our_drift(&server, "shop").await;
        let theirs = kubectl_diff(&cluster, &file);
        assert_eq!(ours, theirs, "after `{what}`: ours {report}");
        last = report;
    }
    let expected: BTreeSet<String> = [
        "Deployment/web".to_owned(),
        format!("ConfigMap/{identity_name}"),
        "Secret/token".to_owned(),
        "Service/web".to_owned(),
    ]
    .into();
    let states: BTreeSet<String> = last["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(states, expected, "{last}");
    let deployment = paths_of(&last, "Deployment");
    assert_eq!(
        deployment,
        [
            "/metadata/labels/tier",
            "/spec/template/spec/containers/0/image"
        ],
        "{last}"
    );
    assert_eq!(paths_of(&last, "ConfigMap"), ["/data/cluster"], "{last}");
    assert_eq!(paths_of(&last, "Secret"), ["/data/token"], "{last}");
    // Secret values are masked everywhere.
    assert!(
        !last.to_string().contains("s3cr3t") && !last.to_string().contains("other-value"),
        "{last}"
    );
    let service = last["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "Service")
        .unwrap();
    assert_eq!(service["state"], "missing");
    assert!(
        last["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["since"].is_string())
    );

    // Metrics: drifted objects per cluster and state, scan duration.
    let metrics = server.metrics().await;
    assert!(
        metrics.contains(r#"pilothouse_drift_objects{cluster="shop",state="modified"} 3"#)
            && metrics.contains(r#"pilothouse_drift_objects{cluster="shop",state="missing"} 1"#)
            && metrics.contains(r#"pilothouse_drift_scan_duration_seconds{cluster="shop"}"#),
        "{metrics}"
    );

    // The CLI: a unified diff, exit 1.
    let (code, out) = drift_cli(&server, &["shop", "--no-scan"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("-  image: nginx:1.28") || out.contains("-        image: nginx:1.28"),
        "{out}"
    );
    assert!(out.contains("+        image: nginx:1.27"), "{out}");
    assert!(out.contains("missing Service shop/web"), "{out}");

    // Fixed by hand (the desired objects applied again): back in sync,
    // and the history shows when the drift started and ended.
    kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=pilothouse",
        "--force-conflicts",
        "-f",
        file.to_str().unwrap(),
    ]);
    let (ours, report) = our_drift(&server, "shop").await;
    assert!(ours.is_empty(), "{report}");
    assert_eq!(report["status"], "in_sync", "{report}");
    assert!(kubectl_diff(&cluster, &file).is_empty());
    let (code, _) = drift_cli(&server, &["shop", "--no-scan"]);
    assert_eq!(code, 0);
    let history = server.get("/api/v1/clusters/shop/drift/history").await;
    let episodes = history["episodes"].as_array().unwrap();
    assert!(!episodes.is_empty(), "{history}");
    assert!(
        episodes.iter().all(|e| e["ended_at"].is_string()),
        "{history}"
    );
    // A repeat scan with nothing changed adds no report.
    let before = history["reports"].as_array().unwrap().len();
    our_drift(&server, "shop").await;
    let again = server.get("/api/v1/clusters/shop/drift/history").await;
    assert_eq!(
        again["reports"].as_array().unwrap().len(),
        before,
        "{again}"
    );
    assert!(
        again["reports"][0]["scans"].as_u64().unwrap() >= 2,
        "{again}"
    );

    // An ignore rule: replicas of this Deployment are someone else's business.
    let (status, rule) = server
        .call(
            "POST",
            "/api/v1/drift/ignore-rules",
            Some(
                serde_json::json!({"cluster": "shop", "api_group": "apps", "kind": "Deployment",
                "name": "web", "pointer": "/spec/replicas"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{rule}");
    kubectl(&["-n", "shop", "scale", "deployment", "web", "--replicas=4"]);
    let (ours, report) = our_drift(&server, "shop").await;
    assert!(ours.is_empty(), "{report}");
    let (status, _) = server
        .call(
            "POST",
            "/api/v1/drift/ignore-rules",
            Some(serde_json::json!({"pointer": "spec"})),
        )
        .await;
    assert_eq!(status, 400);

    // Unreachable: unknown with the reason, exit 2 — never "in sync".
    cluster.stop_apiserver();
    let (code, out) = drift_cli(&server, &["shop", "-o", "json"]);
    assert_eq!(code, 2, "{out}");
    let report = server.get("/api/v1/clusters/shop/drift").await;
    assert_eq!(report["status"], "unknown", "{report}");
    assert!(
        report["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{report}"
    );
}

#[tokio::test]
async fn objects_gone_from_git_but_still_on_the_cluster_are_extra() {
    let repo = Repo::new(small_state);
    let cluster = TestCluster::start("extra").await.unwrap();
    let server = serve(&repo, &["--drift-interval", "1h"]);
    server.register("shop", &cluster, "eks", &["--sync-mode", "manual"]);
    let output = server.cli(&["sync", "shop"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The Service leaves Git; the cluster is not synced (manual mode).
    let app = std::fs::read_to_string(repo.work.join("manifests/app.yaml")).unwrap();
    let without: Vec<&str> = app
        .split("---\n")
        .filter(|doc| !doc.contains("kind: Service"))
        .collect();
    repo.write("manifests/app.yaml", &without.join("---\n"));
    repo.commit("drop the service");
    let (status, _) = server
        .call(
            "PUT",
            "/api/v1/repository",
            Some(serde_json::json!({
        "url": repo.remote.display().to_string(), "branch": "main"})),
        )
        .await;
    assert_eq!(status, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let report = loop {
        let (_, report) = server
            .call("POST", "/api/v1/clusters/shop/drift/scan", None)
            .await;
        if report["counts"]["extra"] == 1 {
            break report;
        }
        assert!(std::time::Instant::now() < deadline, "{report}");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!(report["status"], "drifted");
    let extra = &report["objects"][0];
    assert_eq!(
        (extra["kind"].as_str(), extra["state"].as_str()),
        (Some("Service"), Some("extra")),
        "{report}"
    );
}

//! Exec credential plugins are how EKS, GKE and AKS clusters are reached.
//! Here a plugin on the service's PATH prints an `ExecCredential` holding
//! the test cluster's token, and registration, sync and the incident watches
//! all authenticate through it.

mod support;

use std::time::{Duration, Instant};

use pilothouse_testenv::{FakeNode, PodState, ProviderCloud, TestCluster};
use serde_json::Value;
use support::*;

const PLUGIN: &str = "pilothouse-test-credentials";

#[tokio::test]
async fn registration_sync_and_watches_authenticate_through_an_exec_plugin() {
    let repo = Repo::new(small_state);
    let cluster = TestCluster::start("exec-plugin").await.unwrap();
    cluster
        .create_node(&FakeNode::ready("node-1", ProviderCloud::Eks))
        .await
        .unwrap();

    // the plugin: counts its runs, prints the credential
    let bin = tempfile::tempdir().unwrap();
    let runs = bin.path().join("runs");
    let credential = serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": cluster.admin_token()},
    });
    let script = bin.path().join(PLUGIN);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> '{}'\ncat <<'EOF'\n{credential}\nEOF\n",
            runs.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let pattern = format!("{PLUGIN}={}", cluster.server_url());
    let server = serve_with(
        &repo,
        &["--allowed-exec", PLUGIN, "--exec-server-pattern", &pattern],
        tempfile::tempdir().unwrap(),
        None,
        vec![("PATH".to_owned(), path)],
    );

    // a kubeconfig whose user is the plugin, not a token
    let mut kubeconfig: serde_yaml::Value =
        serde_yaml::from_str(cluster.token_kubeconfig_yaml()).unwrap();
    kubeconfig["users"][0]["user"] = serde_yaml::from_str(&format!(
        "exec:\n  apiVersion: client.authentication.k8s.io/v1\n  command: {PLUGIN}\n  interactiveMode: Never\n"
    ))
    .unwrap();
    let text = serde_yaml::to_string(&kubeconfig).unwrap();
    assert!(!text.contains(cluster.admin_token()), "{text}");
    let file = bin.path().join("exec.kubeconfig");
    std::fs::write(&file, text).unwrap();
    let file = file.display().to_string();
    let output = server.cli(&[
        "cluster",
        "add",
        "edge",
        "--kubeconfig",
        &file,
        "--cloud",
        "eks",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // sync: the desired objects are applied with the plugin's credential
    let head = git(&repo.work, &["rev-parse", "HEAD"]);
    let synced = server.wait_synced("edge", &head).await;
    assert_eq!(synced["sync"]["status"], "succeeded", "{synced}");
    let deployments = kubectl_items(&cluster, &["-n", "shop", "deployments"]);
    assert_eq!(deployments.len(), 1, "{deployments:?}");

    // watches: a crashing pod becomes an incident
    cluster
        .create_pod_on(
            "node-1",
            "shop",
            "worker",
            &[("worker", "busybox:1")],
            &[],
            None,
        )
        .await
        .unwrap();
    cluster
        .set_pod_state("shop", "worker", &PodState::running())
        .await
        .unwrap();
    server.wait_watched("edge", &cluster, "pods").await;
    cluster
        .set_pod_state("shop", "worker", &PodState::crash_loop(3, 1))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let incident = loop {
        let page = server
            .get("/api/v1/incidents?cluster=edge&workload=worker")
            .await;
        if let Some(incident) = page["incidents"].as_array().and_then(|i| i.first()) {
            break incident.clone();
        }
        assert!(Instant::now() < deadline, "no incident: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(incident["status"], "open", "{incident}");
    let runs = std::fs::read_to_string(&runs).unwrap_or_default();
    assert!(
        runs.lines().count() >= 2,
        "the plugin ran for each client: {runs}"
    );
    let cluster_view: Value = server.get("/api/v1/clusters/edge").await;
    assert_eq!(cluster_view["reachability"], "reachable", "{cluster_view}");
}

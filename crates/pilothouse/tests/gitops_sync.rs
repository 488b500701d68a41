//! GitOps sync end to end: the real `pilothouse serve` process following a
//! real Git repository (a bare "remote" plus a work clone the test commits
//! from), syncing real kube-apiserver clusters from testenv, checked with
//! kubectl, driven through the REST API, the CLI and signed webhooks.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pilothouse_testenv::{TestCluster, start_fleet};
use serde_json::{Value, json};

use support::*;

#[tokio::test]
async fn three_clouds_converge_follow_webhooks_prune_and_survive_broken_commits() {
    let repo = Repo::new(shipped_state);
    let fleet = start_fleet(&["sync-aks", "sync-gke", "sync-eks"])
        .await
        .unwrap();
    let server = serve(&repo, &[]);
    server.set_webhook_secret(&repo).await;
    let clouds = ["aks", "gke", "eks"];
    let names = ["prod-aks", "prod-gke", "prod-eks"];
    for ((name, cluster), cloud) in names.iter().zip(&fleet).zip(clouds) {
        server.register(name, cluster, cloud, &[]);
    }
    let first = git(&repo.work, &["rev-parse", "HEAD"]);

    // Each cluster holds exactly its cloud's rendered objects.
    for ((name, cluster), cloud) in names.iter().zip(&fleet).zip(clouds) {
        let state = server.wait_synced(name, &first).await;
        assert_eq!(state["sync"]["status"], "succeeded", "{state}");
        assert_eq!(state["sync"]["revision"], first.as_str());
        let expected = rendered(&repo.work.join("overlays").join(cloud), cloud);
        let live = monitoring_objects(cluster);
        let want: Vec<&String> = expected.keys().collect();
        let have: Vec<&String> = live.keys().collect();
        assert_eq!(have, want, "{name}");
        let expected_class = match cloud {
            "aks" => "managed-premium",
            "gke" => "standard-rwo",
            _ => "gp2",
        };
        assert_eq!(storage_classes(cluster), [expected_class], "{name}");
        // applied by our field manager
        let grafana = kubectl_items(
            cluster,
            &[
                "-n",
                "monitoring",
                "deployments",
                "--show-managed-fields",
                "--field-selector",
                "metadata.name=grafana",
            ],
        );
        let managers: Vec<&str> = grafana[0]["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(managers.contains(&"pilothouse"), "{managers:?}");
        let sync = server.last_sync(name).await;
        assert_eq!(sync["counts"]["created"], expected.len(), "{sync}");
        assert_eq!(sync["counts"]["failed"], 0, "{sync}");
    }

    // A manual re-sync with nothing changed: all unchanged, no resourceVersion moves.
    let before = monitoring_objects(&fleet[0]);
    let output = server.cli(&["sync", "prod-aks", "-o", "json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sync: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(sync["status"], "succeeded", "{sync}");
    assert_eq!(sync["trigger"], "manual");
    assert_eq!(sync["counts"]["unchanged"], before.len(), "{sync}");
    assert_eq!(
        sync["counts"]["created"].as_u64().unwrap()
            + sync["counts"]["configured"].as_u64().unwrap(),
        0
    );
    assert_eq!(monitoring_objects(&fleet[0]), before);

    // A commit announced by a badly signed webhook changes nothing.
    repo.write("manifests/extra.yaml", &extra_configmaps("v1", false));
    let mut kustomization =
        std::fs::read_to_string(repo.work.join("manifests/kustomization.yaml")).unwrap();
    kustomization = kustomization.replace("resources:\n", "resources:\n  - extra.yaml\n");
    repo.write("manifests/kustomization.yaml", &kustomization);
    let second = repo.commit("add extra config maps");
    // refused before anything is asked of the controller (the router test
    // counts the fetches it starts: none)
    assert_eq!(
        server.push_webhook(&second, "not-the-secret-at-all").await,
        401
    );
    let state = server.get("/api/v1/clusters/prod-gke").await;
    assert_eq!(state["sync"]["last_revision"], first.as_str(), "{state}");
    assert!(
        kubectl_items(
            &fleet[1],
            &["-n", "monitoring", "configmaps", "-l", "test=extra"]
        )
        .is_empty()
    );

    // A signed webhook: every auto-sync cluster takes the change within seconds.
    let delivered = Instant::now();
    assert_eq!(server.push_webhook(&second, WEBHOOK_SECRET).await, 202);
    for (name, cluster) in names.iter().zip(&fleet) {
        let state = server.wait_synced(name, &second).await;
        assert_eq!(state["sync"]["status"], "succeeded", "{state}");
        let extra = kubectl_items(
            cluster,
            &["-n", "monitoring", "configmaps", "-l", "test=extra"],
        );
        assert_eq!(extra.len(), 2, "{name}");
    }
    eprintln!(
        "webhook to 3 clusters converged in {:?}",
        delivered.elapsed()
    );
    let repository = server.get("/api/v1/repository").await;
    assert_eq!(repository["head"]["id"], second.as_str(), "{repository}");
    assert_eq!(repository["head"]["summary"], "add extra config maps");

    // Mark one prune-disabled, then remove both from Git: one pruned, one kept.
    repo.write("manifests/extra.yaml", &extra_configmaps("v1", true));
    let third = repo.commit("keep extra-b when it leaves Git");
    assert_eq!(server.push_webhook(&third, WEBHOOK_SECRET).await, 202);
    for name in names {
        server.wait_synced(name, &third).await;
    }
    repo.write(
        "manifests/kustomization.yaml",
        &kustomization.replace("  - extra.yaml\n", ""),
    );
    std::fs::remove_file(repo.work.join("manifests/extra.yaml")).unwrap();
    let fourth = repo.commit("remove the extra config maps");
    assert_eq!(server.push_webhook(&fourth, WEBHOOK_SECRET).await, 202);
    for (name, cluster) in names.iter().zip(&fleet) {
        let state = server.wait_synced(name, &fourth).await;
        assert_eq!(state["sync"]["status"], "succeeded", "{state}");
        let left: Vec<String> = kubectl_items(
            cluster,
            &["-n", "monitoring", "configmaps", "-l", "test=extra"],
        )
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
        assert_eq!(left, ["extra-b"], "{name}");
        let sync = server.last_sync(name).await;
        let actions: BTreeMap<String, String> = sync["objects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["name"].as_str().unwrap().starts_with("extra-"))
            .map(|o| {
                (
                    o["name"].as_str().unwrap().to_owned(),
                    o["action"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            actions,
            BTreeMap::from([
                ("extra-a".into(), "pruned".into()),
                ("extra-b".into(), "prune_skipped".into())
            ]),
            "{sync}"
        );
    }

    // Broken YAML: the sync fails with the render error, the previous
    // revision stays in force, nothing on the clusters changes.
    let before = monitoring_objects(&fleet[2]);
    repo.write(
        "manifests/grafana/service.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: [unclosed\n",
    );
    let broken = repo.commit("break the grafana service");
    assert_eq!(server.push_webhook(&broken, WEBHOOK_SECRET).await, 202);
    for name in names {
        let state = server.wait_synced(name, &broken).await;
        assert_eq!(state["sync"]["status"], "failed", "{state}");
        assert_eq!(state["sync"]["revision"], fourth.as_str(), "{state}");
        let error = state["sync"]["error"].as_str().unwrap();
        assert!(
            error.contains("does not render") && error.contains("grafana/service.yaml"),
            "{error}"
        );
        assert!(
            !error.contains(&repo_root().display().to_string()),
            "{error}"
        );
    }
    let syncs = server.get("/api/v1/clusters/prod-eks/syncs").await;
    assert_eq!(syncs[0]["status"], "failed", "{syncs}");
    assert_eq!(syncs[0]["revision"], broken.as_str());
    assert_eq!(monitoring_objects(&fleet[2]), before);
}

#[tokio::test]
async fn a_cluster_whose_apiserver_stops_recovers_while_the_others_finish() {
    let repo = Repo::new(shipped_state);
    let mut fleet = start_fleet(&["down-a", "down-b", "down-c"]).await.unwrap();
    let server = serve(&repo, &[]);
    server.set_webhook_secret(&repo).await;
    let names = ["one", "two", "three"];
    for (name, cluster) in names.iter().zip(&fleet) {
        server.register(name, cluster, "gke", &[]);
    }
    let first = git(&repo.work, &["rev-parse", "HEAD"]);
    for name in names {
        let state = server.wait_synced(name, &first).await;
        assert_eq!(state["sync"]["status"], "succeeded", "{state}");
    }

    // The third cluster's apiserver goes away, then a new revision arrives.
    fleet[2].stop_apiserver();
    let mut config =
        std::fs::read_to_string(repo.work.join("manifests/prometheus/prometheus.yml")).unwrap();
    config.push_str("\n# scrape tuning\n");
    repo.write("manifests/prometheus/prometheus.yml", &config);
    let second = repo.commit("tune prometheus");
    assert_eq!(server.push_webhook(&second, WEBHOOK_SECRET).await, 202);
    for name in &names[..2] {
        let state = server.wait_synced(name, &second).await;
        assert_eq!(state["sync"]["status"], "succeeded", "{state}");
    }
    let down = server
        .wait_cluster("three", "a failed sync", |c| {
            c["sync"]["last_revision"] == second.as_str() && c["sync"]["status"] == "failed"
        })
        .await;
    assert_eq!(down["sync"]["revision"], first.as_str(), "{down}");
    assert!(down["sync"]["failures"].as_u64().unwrap() >= 1);

    // Back up: the retry converges it.
    fleet[2].restart_apiserver().await.unwrap();
    let state = server
        .wait_cluster("three", "convergence after restart", |c| {
            c["sync"]["status"] == "succeeded"
        })
        .await;
    assert_eq!(state["sync"]["revision"], second.as_str(), "{state}");
    let sync = server.last_sync("three").await;
    assert_eq!(sync["trigger"], "retry", "{sync}");
    let prometheus_config = kubectl_items(&fleet[2], &["-n", "monitoring", "configmaps"])
        .into_iter()
        .filter(|o| {
            o["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("prometheus-config-")
        })
        .count();
    // the old generated config map was pruned, the new one created
    assert_eq!(prometheus_config, 1);
}

#[tokio::test]
async fn health_follows_rollout_and_scaffold_pushes_the_cluster_overlay() {
    let repo = Repo::new(small_state);
    let cluster = TestCluster::start("health").await.unwrap();
    let server = serve(&repo, &[]);
    server.register("shop", &cluster, "eks", &["--sync-mode", "manual"]);
    // manual: nothing happens until asked, even once the controller has
    // fetched the revision an automatic cluster would be synced to
    let head = git(&repo.work, &["rev-parse", "HEAD"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.get("/api/v1/repository").await["head"]["id"] != head.as_str() {
        assert!(
            Instant::now() < deadline,
            "the repository was never fetched"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let state = server.get("/api/v1/clusters/shop").await;
    assert_eq!(state["sync"]["status"], "never", "{state}");

    let output = server.cli(&["sync", "shop"]);
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{table}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        table.contains("succeeded") && table.contains("Deployment"),
        "{table}"
    );

    // No controllers run (testenv's bare mode): the Deployment is progressing;
    // the PVC waits for its first consumer, which counts as healthy.
    let resources = server.get("/api/v1/clusters/shop/resources").await;
    let health = |resources: &Value, kind: &str| {
        resources
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind)
            .map(|r| r["health"].as_str().unwrap_or("").to_owned())
            .unwrap()
    };
    assert_eq!(
        health(&resources, "Deployment"),
        "progressing",
        "{resources}"
    );
    assert_eq!(
        health(&resources, "PersistentVolumeClaim"),
        "healthy",
        "{resources}"
    );
    let state = server.get("/api/v1/clusters/shop").await;
    assert_eq!(state["sync"]["health"], "progressing");

    // The rollout completes (its status says so): the assessor sees it.
    let status = json!({"status": {"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
        "readyReplicas": 2, "availableReplicas": 2}});
    let patched = cluster
        .kubectl()
        .args([
            "-n",
            "shop",
            "patch",
            "deployment",
            "web",
            "--subresource=status",
            "--type=merge",
            "-p",
        ])
        .arg(status.to_string())
        .output()
        .unwrap();
    assert!(
        patched.status.success(),
        "{}",
        String::from_utf8_lossy(&patched.stderr)
    );
    server
        .wait_cluster("shop", "healthy", |c| c["sync"]["health"] == "healthy")
        .await;
    let resources = server.get("/api/v1/clusters/shop/resources").await;
    assert_eq!(health(&resources, "Deployment"), "healthy", "{resources}");

    // Scaffold: registering with --scaffold commits the cluster's overlay
    // and pushes it; the cluster then syncs from it.
    let second = TestCluster::start("scaffolded").await.unwrap();
    server.register("shop-two", &second, "eks", &["--scaffold"]);
    let pushed = git(&repo.remote, &["log", "-1", "--format=%s%n%an", "main"]);
    assert_eq!(pushed, "Scaffold cluster shop-two\nPilothouse");
    let file = git(
        &repo.remote,
        &["show", "main:gitops/clusters/shop-two/kustomization.yaml"],
    );
    assert!(
        file.contains("../../../overlays/eks") && file.contains("cluster=shop-two"),
        "{file}"
    );
    let head = git(&repo.remote, &["rev-parse", "main"]);
    let state = server.wait_synced("shop-two", &head).await;
    assert_eq!(state["sync"]["status"], "succeeded", "{state}");
    let identity: Vec<Value> = kubectl_items(&second, &["-n", "shop", "configmaps"])
        .into_iter()
        .filter(|m| {
            m["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("pilothouse-cluster")
        })
        .collect();
    assert_eq!(identity.len(), 1, "{identity:?}");
    assert_eq!(identity[0]["data"]["cluster"], "shop-two");

    // A cluster whose directory already exists in Git is refused, nothing is
    // pushed and nothing is registered.
    let remote = repo.remote.display().to_string();
    git(&repo.work, &["pull", "-q", &remote, "main"]);
    repo.write(
        "gitops/clusters/taken/kustomization.yaml",
        "resources:\n  - ../../../overlays/eks\n",
    );
    let taken = repo.commit("a directory for cluster taken");
    let third = TestCluster::start("taken").await.unwrap();
    let kubeconfig = server.data.path().join("taken.kubeconfig");
    std::fs::write(&kubeconfig, third.token_kubeconfig_yaml()).unwrap();
    let refused = server.cli(&[
        "cluster",
        "add",
        "taken",
        "--cloud",
        "eks",
        "--scaffold",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("409") && stderr.contains("already exists"),
        "{stderr}"
    );
    assert_eq!(git(&repo.remote, &["rev-parse", "main"]), taken);
    let (status, _) = server.call("GET", "/api/v1/clusters/taken", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn self_heal_puts_back_live_changes_and_an_unreachable_remote_keeps_the_last_revision() {
    let repo = Repo::new(small_state);
    let cluster = TestCluster::start("healing").await.unwrap();
    let server = serve(&repo, &["--self-heal-interval", "1s"]);
    server.set_webhook_secret(&repo).await;
    server.register("shop", &cluster, "eks", &["--sync-mode", "self_heal"]);
    let first = git(&repo.work, &["rev-parse", "HEAD"]);
    let state = server.wait_synced("shop", &first).await;
    assert_eq!(state["sync"]["status"], "succeeded", "{state}");
    let syncs_before = server.get("/api/v1/clusters/shop/syncs").await;

    // Someone scales the Deployment and deletes a config map by hand.
    let kubectl = |args: &[&str]| {
        let output = cluster.kubectl().args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let identity = kubectl(&["-n", "shop", "get", "configmaps", "-o", "name"]);
    let identity = identity
        .lines()
        .find(|name| name.contains("pilothouse-cluster"))
        .unwrap()
        .to_owned();
    kubectl(&["-n", "shop", "scale", "deployment", "web", "--replicas=5"]);
    kubectl(&["-n", "shop", "delete", &identity]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let replicas = kubectl(&[
            "-n",
            "shop",
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}",
        ]);
        let maps = kubectl(&["-n", "shop", "get", "configmaps", "-o", "name"]);
        if replicas == "2" && maps.lines().any(|name| name == identity) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not healed within 30s: replicas {replicas}, maps {maps:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Recorded as self-heal syncs (one or two, depending on whether a check
    // fell between the two changes): one configured, one created in all.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let syncs = server.get("/api/v1/clusters/shop/syncs").await;
    let before = syncs_before.as_array().unwrap().len();
    let healed = &syncs.as_array().unwrap()[..syncs.as_array().unwrap().len() - before];
    assert!(!healed.is_empty() && healed.len() <= 2, "{syncs}");
    assert!(
        healed
            .iter()
            .all(|s| s["trigger"] == "self_heal" && s["status"] == "succeeded"),
        "{syncs}"
    );
    let total = |action: &str| {
        healed
            .iter()
            .map(|s| s["counts"][action].as_u64().unwrap())
            .sum::<u64>()
    };
    assert_eq!((total("configured"), total("created")), (1, 1), "{syncs}");
    // Checks that find nothing record nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = server.get("/api/v1/clusters/shop/syncs").await;
    assert_eq!(
        later.as_array().unwrap().len(),
        syncs.as_array().unwrap().len(),
        "{later}"
    );

    // The remote goes away: the fetch failure is recorded and visible, and
    // the revision in force stays.
    let moved = repo.remote.with_extension("moved");
    std::fs::rename(&repo.remote, &moved).unwrap();
    assert_eq!(server.push_webhook(&first, WEBHOOK_SECRET).await, 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    let repository = loop {
        let repository = server.get("/api/v1/repository").await;
        if repository["last_fetch_error"].is_string() {
            break repository;
        }
        assert!(
            Instant::now() < deadline,
            "fetch failure not recorded: {repository}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(repository["head"]["id"], first.as_str(), "{repository}");
    assert!(repository["consecutive_fetch_failures"].as_u64().unwrap() >= 1);
    assert!(
        repository["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "fetch_failed"),
        "{repository}"
    );
    let state = server.get("/api/v1/clusters/shop").await;
    assert_eq!(state["sync"]["revision"], first.as_str());
    assert_eq!(state["sync"]["status"], "succeeded");

    // It comes back: the next fetch clears the error.
    std::fs::rename(&moved, &repo.remote).unwrap();
    assert_eq!(server.push_webhook(&first, WEBHOOK_SECRET).await, 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let repository = server.get("/api/v1/repository").await;
        if repository["last_fetch_error"].is_null() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "fetch did not recover: {repository}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Two labelled config maps; `extra-b` optionally marked prune-disabled.
fn extra_configmaps(value: &str, keep_b: bool) -> String {
    let annotation = if keep_b {
        "\n  annotations:\n    pilothouse.dev/prune: disabled"
    } else {
        ""
    };
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra-a\n  labels:\n    test: extra\ndata:\n  value: {value}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra-b\n  labels:\n    test: extra{annotation}\ndata:\n  value: {value}\n"
    )
}

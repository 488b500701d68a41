//! Backup, restore and migrate end to end: the real `pilothouse` CLI on the
//! data directory of a running `serve`, real kube-apiserver clusters, real
//! archives on disk.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use pilothouse_backup::VerifiedArchive;
use pilothouse_testenv::{FakeNode, PodState, ProviderCloud, TestCluster, start_fleet};
use serde_json::{Value, json};

use support::*;

/// Runs `pilothouse ARGS --data-dir DATA` on the server's data directory:
/// (exit code, stdout + stderr).
fn run(server: &Server, args: &[&str]) -> (i32, String) {
    let output = Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(server.data.path())
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// Applies YAML to a cluster with kubectl.
fn apply(cluster: &TestCluster, yaml: &str) {
    let mut child = cluster
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), yaml.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn storage_class(name: &str) -> String {
    format!(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: {name}\nprovisioner: example.com/{name}\n"
    )
}

/// What a person adds by hand: a namespace with a ConfigMap, a claim, a
/// StatefulSet with a claim template, a Service and a Secret.
const BY_HAND: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: hand\n---\n\
apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: hand\ndata:\n  mode: fast\n---\n\
apiVersion: v1\nkind: Secret\nmetadata:\n  name: password\n  namespace: hand\nstringData:\n  password: hunter2\n---\n\
apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: scratch\n  namespace: hand\nspec:\n  storageClassName: managed-premium\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 2Gi\n---\n\
apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n  namespace: hand\nspec:\n  serviceName: db\n  replicas: 1\n  selector:\n    matchLabels: {app: db}\n  template:\n    metadata:\n      labels: {app: db}\n    spec:\n      containers:\n        - name: db\n          image: postgres:16\n  volumeClaimTemplates:\n    - metadata:\n        name: data\n      spec:\n        storageClassName: managed-premium\n        accessModes: [ReadWriteOnce]\n        resources:\n          requests:\n            storage: 5Gi\n---\n\
apiVersion: v1\nkind: Service\nmetadata:\n  name: db\n  namespace: hand\nspec:\n  selector: {app: db}\n  ports:\n    - port: 5432\n";

/// The objects of one cluster in an archive, by `kind namespace/name`.
fn archived(archive: &Path, cluster: &str) -> BTreeMap<String, Value> {
    let verified = VerifiedArchive::open(archive).unwrap();
    verified
        .cluster_objects(cluster)
        .unwrap()
        .map(|item| {
            let object = item.unwrap().object;
            (
                format!(
                    "{} {}/{}",
                    object["kind"].as_str().unwrap(),
                    object["metadata"]["namespace"].as_str().unwrap_or(""),
                    object["metadata"]["name"].as_str().unwrap()
                ),
                object,
            )
        })
        .collect()
}

/// resourceVersions of everything in the namespaces (`kind/name` → version).
fn versions(cluster: &TestCluster, namespaces: &[&str]) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for namespace in namespaces {
        for item in kubectl_items(
            cluster,
            &[
                "configmaps,secrets,persistentvolumeclaims,statefulsets,deployments,services,serviceaccounts",
                "-n",
                namespace,
            ],
        ) {
            all.insert(
                format!(
                    "{}/{}/{}",
                    namespace,
                    item["kind"].as_str().unwrap(),
                    item["metadata"]["name"].as_str().unwrap()
                ),
                item["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    all
}

#[tokio::test]
async fn an_aks_backup_restores_into_an_empty_eks_cluster_with_its_storage_classes() {
    let repo = Repo::new(shipped_state);
    let fleet = start_fleet(&["bk-aks", "bk-eks"]).await.unwrap();
    let (aks, eks) = (&fleet[0], &fleet[1]);
    // the classes each cloud has
    apply(aks, &storage_class("managed-premium"));
    apply(eks, &storage_class("gp2"));
    let server = serve(&repo, &[]);
    server.register("bk-aks", aks, "aks", &[]);
    server.register("bk-eks", eks, "eks", &["--sync-mode", "manual"]);
    let head = git(&repo.work, &["rev-parse", "HEAD"]);
    let synced = server.wait_synced("bk-aks", &head).await;
    assert_eq!(synced["sync"]["status"], "succeeded", "{synced}");
    apply(aks, BY_HAND);

    // Backed up while the service runs.
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("aks.tar.zst");
    let archive_arg = archive.display().to_string();
    let (code, text) = run(
        &server,
        &["backup", "--out", &archive_arg, "--clusters", "bk-aks"],
    );
    assert_eq!(code, 0, "{text}");
    let source = archived(&archive, "bk-aks");
    assert!(
        source.contains_key("ConfigMap hand/settings"),
        "{:?}",
        source.keys()
    );
    assert!(
        !source.keys().any(|key| key.starts_with("Secret ")),
        "Secrets only with --include-secrets: {:?}",
        source.keys()
    );
    let manifest = VerifiedArchive::open(&archive).unwrap().manifest().clone();
    assert!(manifest.store);
    assert_eq!(manifest.clusters[0].cloud, "aks");
    assert_eq!(manifest.clusters[0].objects as usize, source.len());
    let (code, text) = run(
        &server,
        &["backup", "--out", &archive_arg, "--clusters", "bk-aks"],
    );
    assert_ne!(code, 0, "an existing archive is not overwritten: {text}");

    // A corrupt or truncated archive is refused and changes nothing.
    let bytes = std::fs::read(&archive).unwrap();
    let flipped = out.path().join("flipped.tar.zst");
    let mut copy = bytes.clone();
    copy[bytes.len() / 2] ^= 0x01;
    std::fs::write(&flipped, copy).unwrap();
    let truncated = out.path().join("truncated.tar.zst");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let before = kubectl_items(eks, &["namespaces"]).len();
    for bad in [&flipped, &truncated] {
        let (code, text) = run(
            &server,
            &["restore", &bad.display().to_string(), "--to", "bk-eks"],
        );
        assert_ne!(code, 0, "{text}");
        assert!(text.contains("cannot be restored"), "{text}");
        let empty = tempfile::tempdir().unwrap();
        let output = Command::new(BIN)
            .args([
                "restore",
                &bad.display().to_string(),
                "--store",
                "--data-dir",
            ])
            .arg(empty.path())
            .output()
            .unwrap();
        assert!(!output.status.success());
        assert_eq!(
            std::fs::read_dir(empty.path()).unwrap().count(),
            0,
            "the data directory is untouched"
        );
    }
    assert_eq!(kubectl_items(eks, &["namespaces"]).len(), before);

    // Options that do not go together, or name what is not there, are
    // refused before anything happens.
    let (code, text) = run(&server, &["restore", &archive_arg, "--store", "--dry-run"]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("cannot be used with"), "{text}");
    let (code, text) = run(
        &server,
        &[
            "restore",
            &archive_arg,
            "--to",
            "bk-eks",
            "--namespaces",
            "nope",
        ],
    );
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("no objects in namespace(s) nope"), "{text}");
    let (code, text) = run(
        &server,
        &["backup", "--out", "x.tar.zst", "--include-secrets"],
    );
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("name the clusters"), "{text}");

    // A dry run says what would be created and creates nothing.
    let (code, text) = run(
        &server,
        &["restore", &archive_arg, "--to", "bk-eks", "--dry-run"],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("would be created") && text.contains("dry run:"),
        "{text}"
    );
    assert!(kubectl_items(eks, &["configmaps", "-n", "hand"]).is_empty());

    // The restore: every object, claims on gp2, nothing else changed.
    let (code, text) = run(&server, &["restore", &archive_arg, "--to", "bk-eks"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("0 failed"), "{text}");
    let back = out.path().join("eks.tar.zst");
    let (code, text) = run(
        &server,
        &[
            "backup",
            "--out",
            &back.display().to_string(),
            "--clusters",
            "bk-eks",
        ],
    );
    assert_eq!(code, 0, "{text}");
    let target = archived(&back, "bk-eks");
    let mut claims = 0;
    for (key, object) in &source {
        if key.starts_with("StorageClass ") {
            continue;
        }
        let mut expected = object.clone();
        if object["kind"] == "PersistentVolumeClaim" {
            assert_eq!(
                expected["spec"]["storageClassName"], "managed-premium",
                "{key}"
            );
            expected["spec"]["storageClassName"] = json!("gp2");
            claims += 1;
        }
        if let Some(templates) = expected
            .pointer_mut("/spec/volumeClaimTemplates")
            .and_then(Value::as_array_mut)
        {
            for template in templates {
                template["spec"]["storageClassName"] = json!("gp2");
                claims += 1;
            }
        }
        // an Azure internal load balancer becomes an AWS internal one
        if object["kind"] == "Service" && object["spec"]["type"] == "LoadBalancer" {
            expected["metadata"]["annotations"] = json!({
                "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
                "service.beta.kubernetes.io/aws-load-balancer-type": "external",
                "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
            });
        }
        assert_eq!(target.get(key), Some(&expected), "{key} differs");
    }
    assert!(claims >= 2, "{claims}");
    assert_eq!(
        target
            .keys()
            .filter(|k| !k.starts_with("StorageClass "))
            .count(),
        source
            .keys()
            .filter(|k| !k.starts_with("StorageClass "))
            .count()
    );
    for claim in kubectl_items(eks, &["persistentvolumeclaims", "-A"]) {
        assert_eq!(claim["spec"]["storageClassName"], "gp2", "{claim}");
    }

    // Restoring again converges: nothing is created; the API server
    // rewrites a Namespace it labelled itself once (its managed fields),
    // then nothing changes at all — a dry run neither.
    let (code, text) = run(&server, &["restore", &archive_arg, "--to", "bk-eks"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("0 created,"), "{text}");
    let namespaces = ["hand", "monitoring"];
    let before = versions(eks, &namespaces);
    let (code, text) = run(&server, &["restore", &archive_arg, "--to", "bk-eks"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("0 created, 0 configured"), "{text}");
    let (code, text) = run(
        &server,
        &["restore", &archive_arg, "--to", "bk-eks", "--dry-run"],
    );
    assert_eq!(code, 0, "{text}");
    assert_eq!(versions(eks, &namespaces), before);

    // A restore killed midway, run again, converges without duplicates.
    let mut child = Command::new(BIN)
        .args([
            "restore",
            &archive_arg,
            "--to",
            "bk-eks",
            "--namespace-map",
            "hand=copy",
        ])
        .arg("--data-dir")
        .arg(server.data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // killed once it has started applying (the namespace comes first)
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while kubectl_items(eks, &["namespaces"])
        .iter()
        .all(|namespace| namespace["metadata"]["name"] != "copy")
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let (code, text) = run(
        &server,
        &[
            "restore",
            &archive_arg,
            "--to",
            "bk-eks",
            "--namespace-map",
            "hand=copy",
        ],
    );
    assert_eq!(code, 0, "{text}");
    let copies = kubectl_items(
        eks,
        &[
            "configmaps,persistentvolumeclaims,statefulsets,services",
            "-n",
            "copy",
        ],
    );
    let originals = kubectl_items(
        eks,
        &[
            "configmaps,persistentvolumeclaims,statefulsets,services",
            "-n",
            "hand",
        ],
    );
    assert_eq!(copies.len(), originals.len(), "{copies:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_backup_taken_while_serving_brings_everything_back_on_a_new_machine() {
    let repo = Repo::new(small_state);
    let cluster = TestCluster::start("bk-store").await.unwrap();
    cluster.create_namespace("shop").await.unwrap();
    cluster
        .create_node(&FakeNode::ready("node-1", ProviderCloud::Eks))
        .await
        .unwrap();
    cluster
        .create_pod_on(
            "node-1",
            "shop",
            "worker",
            &[("worker", "worker:1")],
            &[],
            None,
        )
        .await
        .unwrap();
    let server = serve(&repo, &[]);
    server.register("kept", &cluster, "eks", &["--sync-mode", "manual"]);
    cluster
        .set_pod_state("shop", "worker", &PodState::crash_loop(1, 1))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.get("/api/v1/incidents?cluster=kept").await["incidents"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(std::time::Instant::now() < deadline, "no incident");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = server
        .call("POST", "/api/v1/clusters/kept/drift/scan", None)
        .await;
    assert!(status < 500, "{body}");
    let (status, body) = server
        .call(
            "POST",
            "/api/v1/silences",
            Some(
                json!({"matchers": [{"label": "cluster", "op": "=", "value": "kept"}],
                "duration": "2h", "comment": "maintenance"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // Backed up while the service keeps writing (checks, API calls).
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("store.tar.zst");
    let writes = {
        let url = server.url.clone();
        let token = server.token.clone();
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0..40 {
                let _ = http
                    .post(format!("{url}/api/v1/tokens"))
                    .bearer_auth(&token)
                    .json(&json!({"name": format!("busy-{n}"), "scope": "read"}))
                    .send()
                    .await;
            }
        })
    };
    let (code, text) = run(
        &server,
        &["backup", "--out", &archive.display().to_string()],
    );
    assert_eq!(code, 0, "{text}");
    writes.await.unwrap();

    // Never under a running service.
    let output = Command::new(BIN)
        .args([
            "restore",
            &archive.display().to_string(),
            "--store",
            "--force",
            "--data-dir",
        ])
        .arg(server.data.path())
        .output()
        .unwrap();
    assert!(!output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is in use"),
        "{output:?}"
    );

    // Nor does a second service start on it.
    let output = Command::new(BIN)
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(server.data.path())
        .output()
        .unwrap();
    assert!(!output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("is in use"),
        "{output:?}"
    );

    // What the restored service must show again.
    let incidents = server.get("/api/v1/incidents?cluster=kept").await;
    let history = server.get("/api/v1/clusters/kept/drift/history").await;
    let silences = server.get("/api/v1/silences").await;

    // A new machine: the archive first, then the master key.
    let data = tempfile::tempdir().unwrap();
    let restore = |force: bool| {
        let mut command = Command::new(BIN);
        command.args(["restore", &archive.display().to_string(), "--store"]);
        if force {
            command.arg("--force");
        }
        command.arg("--data-dir").arg(data.path()).output().unwrap()
    };
    let output = restore(false);
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("put the original master key"),
        "{output:?}"
    );
    std::fs::copy(
        server.data.path().join("master.key"),
        data.path().join("master.key"),
    )
    .unwrap();
    // A data directory with a store is replaced only with --force.
    let output = restore(false);
    assert!(!output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--force"));
    let output = restore(true);
    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("the master key opens their credentials"),
        "{output:?}"
    );

    // The old admin token works on the restored service, which shows the
    // same incidents, drift history and silences, and still reaches the
    // cluster with the restored credentials.
    let restored = serve_in(&repo, &[], data, Some(server.token.clone()));
    assert_eq!(restored.get("/api/v1/clusters/kept").await["cloud"], "eks");
    let same = restored.get("/api/v1/incidents?cluster=kept").await;
    assert_eq!(
        same["incidents"][0]["id"], incidents["incidents"][0]["id"],
        "{same}"
    );
    assert_eq!(same["incidents"][0]["reason"], "CrashLoopBackOff");
    assert_eq!(
        restored.get("/api/v1/clusters/kept/drift/history").await,
        history
    );
    assert_eq!(restored.get("/api/v1/silences").await, silences);
    let (status, body) = restored
        .call("POST", "/api/v1/clusters/kept/check", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reachability"], "reachable", "{body}");
}

#[tokio::test]
async fn migrate_moves_namespaces_to_another_cloud_and_lists_the_volumes_to_copy() {
    let repo = Repo::new(small_state);
    let fleet = start_fleet(&["mg-aks", "mg-gke"]).await.unwrap();
    let (aks, gke) = (&fleet[0], &fleet[1]);
    apply(aks, &storage_class("managed-premium"));
    apply(gke, &storage_class("standard-rwo"));
    apply(aks, BY_HAND);
    let server = serve(&repo, &[]);
    server.register("mg-aks", aks, "aks", &["--sync-mode", "manual"]);
    server.register("mg-gke", gke, "gke", &["--sync-mode", "manual"]);

    let (code, text) = run(
        &server,
        &[
            "migrate",
            "--from",
            "mg-aks",
            "--to",
            "mg-gke",
            "--namespaces",
            "hand",
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("would be created"), "{text}");
    assert!(kubectl_items(gke, &["configmaps", "-n", "hand"]).is_empty());

    let (code, text) = run(
        &server,
        &[
            "migrate",
            "--from",
            "mg-aks",
            "--to",
            "mg-gke",
            "--namespaces",
            "hand",
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("volume data is not copied"), "{text}");
    assert!(
        text.contains("hand/scratch  (managed-premium -> standard-rwo)"),
        "{text}"
    );
    assert!(text.contains("hand/data-db-* (StatefulSet db)"), "{text}");
    let claims = kubectl_items(gke, &["persistentvolumeclaims", "-n", "hand"]);
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0]["spec"]["storageClassName"], "standard-rwo");
    let sets = kubectl_items(gke, &["statefulsets", "-n", "hand"]);
    assert_eq!(
        sets[0]["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"],
        "standard-rwo"
    );
    // Secrets move too (they stay in memory, never on disk).
    let secrets = kubectl_items(gke, &["secrets", "-n", "hand"]);
    assert!(
        secrets.iter().any(|s| s["metadata"]["name"] == "password"),
        "{secrets:#?}"
    );
    // A class the target does not have is refused before anything changes.
    let profiles = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        profiles.path(),
        "profiles:\n  gke:\n    storageClass:\n      default: fast-ssd\n      map:\n        managed-premium: fast-ssd\n",
    )
    .unwrap();
    let before = versions(gke, &["hand"]);
    let (code, text) = run(
        &server,
        &[
            "migrate",
            "--from",
            "mg-aks",
            "--to",
            "mg-gke",
            "--namespaces",
            "hand",
            "--cloud-profiles",
            &profiles.path().display().to_string(),
        ],
    );
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains("storage classes missing on the target cluster: fast-ssd"),
        "{text}"
    );
    assert_eq!(versions(gke, &["hand"]), before);
}

/// A Service behind an Azure internal load balancer, and one annotation of
/// the team's own.
const INTERNAL_LB: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: hand\n  annotations:\n    service.beta.kubernetes.io/azure-load-balancer-internal: \"true\"\n    team: shop\nspec:\n  type: LoadBalancer\n  selector: {app: web}\n  ports:\n    - port: 80\n";

const AZURE_INTERNAL: &str = "service.beta.kubernetes.io/azure-load-balancer-internal";
const AWS_SCHEME: &str = "service.beta.kubernetes.io/aws-load-balancer-scheme";

/// The annotations of a Service on a cluster.
fn service_annotations(cluster: &TestCluster, namespace: &str, name: &str) -> Value {
    let services = kubectl_items(cluster, &["services", "-n", namespace]);
    let service = services
        .iter()
        .find(|s| s["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no Service {namespace}/{name}: {services:#?}"));
    service["metadata"]["annotations"].clone()
}

/// Hardening items 14 and 16: moving from AKS to EKS trades the Azure
/// load-balancer annotations for the AWS ones (an internal load balancer
/// must not turn internet-facing), and `restore --namespaces` takes only the
/// cluster-scoped objects the namespaces need.
#[tokio::test]
async fn moves_to_another_cloud_keep_load_balancers_internal_and_take_only_what_namespaces_need() {
    let repo = Repo::new(shipped_state);
    let fleet = start_fleet(&["lb-aks", "lb-eks"]).await.unwrap();
    let (aks, eks) = (&fleet[0], &fleet[1]);
    apply(aks, &storage_class("managed-premium"));
    apply(eks, &storage_class("gp2"));
    let server = serve(&repo, &[]);
    server.register("lb-aks", aks, "aks", &[]);
    server.register("lb-eks", eks, "eks", &["--sync-mode", "manual"]);
    let head = git(&repo.work, &["rev-parse", "HEAD"]);
    let synced = server.wait_synced("lb-aks", &head).await;
    assert_eq!(synced["sync"]["status"], "succeeded", "{synced}");
    apply(aks, BY_HAND);
    apply(aks, INTERNAL_LB);
    let out = tempfile::tempdir().unwrap();
    let archive = out.path().join("aks.tar.zst").display().to_string();
    let (code, text) = run(
        &server,
        &["backup", "--out", &archive, "--clusters", "lb-aks"],
    );
    assert_eq!(code, 0, "{text}");
    let monitoring_roles = |cluster: &TestCluster| {
        kubectl_items(
            cluster,
            &[
                "clusterroles,clusterrolebindings",
                "-l",
                "app.kubernetes.io/part-of=pilothouse-monitoring",
            ],
        )
        .len()
    };
    assert!(monitoring_roles(aks) > 0);

    // The dry run says what it would do, and leaves the monitoring
    // ClusterRoles out: namespace `hand` does not need them.
    let output = Command::new(BIN)
        .args([
            "restore",
            &archive,
            "--to",
            "lb-eks",
            "--namespaces",
            "hand",
        ])
        .args(["--dry-run", "-o", "json", "--data-dir"])
        .arg(server.data.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let skipped: Vec<String> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {}",
                s["key"]["kind"].as_str().unwrap_or_default(),
                s["key"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert!(
        skipped.contains(&"ClusterRole pilothouse-monitoring-prometheus".to_owned()),
        "{skipped:?}"
    );
    assert!(
        skipped.contains(&"ClusterRoleBinding pilothouse-monitoring-prometheus".to_owned()),
        "{skipped:?}"
    );
    assert!(
        !skipped.iter().any(|s| s == "Namespace hand"),
        "{skipped:?}"
    );
    assert!(kubectl_items(eks, &["services", "-n", "hand"]).is_empty());

    let (code, text) = run(
        &server,
        &[
            "restore",
            &archive,
            "--to",
            "lb-eks",
            "--namespaces",
            "hand",
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("ClusterRole pilothouse-monitoring-prometheus skipped"),
        "{text}"
    );
    assert_eq!(
        monitoring_roles(eks),
        0,
        "nothing of the monitoring namespace's RBAC is applied"
    );
    let annotations = service_annotations(eks, "hand", "web");
    assert!(annotations.get(AZURE_INTERNAL).is_none(), "{annotations}");
    assert_eq!(annotations[AWS_SCHEME], "internal", "{annotations}");
    assert_eq!(annotations["team"], "shop", "{annotations}");

    // migrate maps the shipped Grafana's load balancer the same way, its
    // dry run included
    let (code, text) = run(
        &server,
        &[
            "migrate",
            "--from",
            "lb-aks",
            "--to",
            "lb-eks",
            "--namespaces",
            "monitoring",
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("LoadBalancer Services get the load-balancer annotations of eks"),
        "{text}"
    );
    let (code, text) = run(
        &server,
        &[
            "migrate",
            "--from",
            "lb-aks",
            "--to",
            "lb-eks",
            "--namespaces",
            "monitoring",
        ],
    );
    assert_eq!(code, 0, "{text}");
    let grafana = service_annotations(eks, "monitoring", "grafana");
    assert!(grafana.get(AZURE_INTERNAL).is_none(), "{grafana}");
    assert_eq!(grafana[AWS_SCHEME], "internal", "{grafana}");
}

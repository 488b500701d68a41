//! GitOps sync end to end: the real `pilothouse serve` process following a
//! real Git repository (a bare "remote" plus a work clone the test commits
//! from), syncing real kube-apiserver clusters from testenv, checked with
//! kubectl, driven through the REST API, the CLI and signed webhooks.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pilothouse_testenv::{TestCluster, start_fleet};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_pilothouse");
const WEBHOOK_SECRET: &str = "test-webhook-secret-0123456789";

/// This repository's root (the shipped desired state lives there).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Ada Ops")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada Ops")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .output()
        .expect("the git CLI must be installed");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A bare remote on branch `main` and a work clone to commit from.
struct Repo {
    _dir: tempfile::TempDir,
    remote: PathBuf,
    work: PathBuf,
}

impl Repo {
    /// The remote starts with `fill(work)`'s files committed.
    fn new(fill: impl FnOnce(&Path)) -> Repo {
        let dir = tempfile::tempdir().unwrap();
        let remote = dir.path().join("desired.git");
        let work = dir.path().join("work");
        git(
            dir.path(),
            &["init", "-q", "--bare", "-b", "main", "desired.git"],
        );
        git(dir.path(), &["init", "-q", "-b", "main", "work"]);
        fill(&work);
        let repo = Repo {
            _dir: dir,
            remote,
            work,
        };
        repo.commit("initial desired state");
        repo
    }

    fn write(&self, path: &str, text: &str) {
        let file = self.work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    fn commit(&self, message: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        let remote = self.remote.display().to_string();
        git(&self.work, &["push", "-q", &remote, "HEAD:main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

/// The monitoring stack this repository ships: manifests/, overlays/ and the
/// cloud profiles.
fn shipped_state(work: &Path) {
    let root = repo_root();
    copy_dir(&root.join("manifests"), &work.join("manifests"));
    copy_dir(&root.join("overlays"), &work.join("overlays"));
    std::fs::create_dir_all(work.join("gitops")).unwrap();
    std::fs::copy(
        root.join("gitops/clouds.yaml"),
        work.join("gitops/clouds.yaml"),
    )
    .unwrap();
}

struct Server {
    child: Child,
    url: String,
    token: String,
    http: reqwest::Client,
    logs: Option<std::thread::JoinHandle<String>>,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking()
            && let Some(logs) = self.logs.take()
            && let Ok(text) = logs.join()
        {
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("--- serve log tail ---");
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn serve(repo: &Repo, extra: &[&str]) -> Server {
    let data = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let remote = repo.remote.display().to_string();
    let mut child = Command::new(BIN)
        .args(["serve", "--repo", &remote, "--repo-branch", "main"])
        .args([
            "--poll-interval",
            "1h",
            "--sync-retry",
            "1s",
            "--sync-retry-max",
            "2s",
        ])
        .args(["--health-interval", "1s", "--sync-call-timeout", "5s"])
        .args(extra)
        .arg("--data-dir")
        .arg(data.path())
        .env("PILOTHOUSE_PORT", port.to_string())
        .env_remove("PILOTHOUSE_MASTER_KEY")
        .env("PILOTHOUSE_LOG", "info,pilothouse=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "serve did not listen within 30s");
        std::thread::sleep(Duration::from_millis(50));
    }
    let token = std::fs::read_to_string(data.path().join("admin.token"))
        .unwrap()
        .trim()
        .to_owned();
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        token,
        http: reqwest::Client::new(),
        logs: Some(logs),
        _data: data,
    }
}

impl Server {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Configures the webhook secret through the API.
    async fn set_webhook_secret(&self, repo: &Repo) {
        let body = json!({
            "url": repo.remote.display().to_string(),
            "branch": "main",
            "poll_interval_seconds": 3600,
            "webhook_secret": WEBHOOK_SECRET,
        });
        let (status, body) = self.call("PUT", "/api/v1/repository", Some(body)).await;
        assert_eq!(status, 200, "{body}");
    }

    /// Delivers a GitHub push webhook for `after`, signed with `secret`.
    async fn push_webhook(&self, after: &str, secret: &str) -> u16 {
        let body = json!({"ref": "refs/heads/main", "after": after}).to_string();
        let signature = hmac_sha256_hex(secret, body.as_bytes());
        self.http
            .post(format!("{}/api/v1/webhooks/git", self.url))
            .header("content-type", "application/json")
            .header("x-github-event", "push")
            .header("x-hub-signature-256", format!("sha256={signature}"))
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .env("PILOTHOUSE_SERVER", &self.url)
            .env("PILOTHOUSE_TOKEN", &self.token)
            .output()
            .unwrap()
    }

    fn register(&self, name: &str, cluster: &TestCluster, cloud: &str, extra: &[&str]) {
        let dir = self._data.path();
        let kubeconfig = dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&kubeconfig, cluster.token_kubeconfig_yaml()).unwrap();
        let kubeconfig = kubeconfig.display().to_string();
        let mut args = vec![
            "cluster",
            "add",
            name,
            "--kubeconfig",
            &kubeconfig,
            "--cloud",
            cloud,
        ];
        args.extend_from_slice(extra);
        let output = self.cli(&args);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Waits until `done(cluster)` holds for the cluster's API view.
    async fn wait_cluster(&self, name: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let cluster = self.get(&format!("/api/v1/clusters/{name}")).await;
            if done(&cluster) {
                return cluster;
            }
            assert!(
                Instant::now() < deadline,
                "cluster {name}: {what} did not happen within 90s: {cluster}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits until the cluster's last finished sync worked on `revision`.
    async fn wait_synced(&self, name: &str, revision: &str) -> Value {
        self.wait_cluster(name, &format!("a sync of {revision}"), |c| {
            c["sync"]["last_revision"] == revision && c["sync"]["status"] != "never"
        })
        .await
    }

    async fn last_sync(&self, name: &str) -> Value {
        let cluster = self.get(&format!("/api/v1/clusters/{name}")).await;
        let id = cluster["sync"]["last_sync_id"].as_i64().unwrap();
        self.get(&format!("/api/v1/clusters/{name}/syncs/{id}"))
            .await
    }
}

/// HMAC-SHA256 by the openssl CLI: an implementation independent of ours.
fn hmac_sha256_hex(secret: &str, body: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-hex"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the openssl CLI must be installed");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned()
}

/// `kubectl get` as JSON items.
fn kubectl_items(cluster: &TestCluster, args: &[&str]) -> Vec<Value> {
    let output = cluster
        .kubectl()
        .arg("get")
        .args(args)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    list["items"].as_array().cloned().unwrap_or_default()
}

/// The monitoring objects on a cluster: `Kind/name` → resourceVersion.
fn monitoring_objects(cluster: &TestCluster) -> BTreeMap<String, String> {
    let namespaced = kubectl_items(
        cluster,
        &[
            "-n",
            "monitoring",
            "configmaps,services,serviceaccounts,deployments,statefulsets,daemonsets,persistentvolumeclaims,roles,rolebindings",
        ],
    );
    let cluster_scoped = kubectl_items(
        cluster,
        &[
            "namespaces,clusterroles,clusterrolebindings",
            "-l",
            "app.kubernetes.io/part-of=pilothouse-monitoring",
        ],
    );
    namespaced
        .iter()
        .chain(&cluster_scoped)
        .filter(|o| o["metadata"]["name"] != "kube-root-ca.crt")
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                ),
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect()
}

/// What `pilothouse render` says a cloud gets: `Kind/name` → the object.
fn rendered(dir: &Path, cloud: &str) -> BTreeMap<String, Value> {
    let output = Command::new(BIN)
        .args(["render", "--cloud", cloud])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let value: Value = serde::Deserialize::deserialize(doc).unwrap();
            (
                format!(
                    "{}/{}",
                    value["kind"].as_str().unwrap(),
                    value["metadata"]["name"].as_str().unwrap()
                ),
                value,
            )
        })
        .collect()
}

fn storage_classes(cluster: &TestCluster) -> Vec<String> {
    let mut classes: Vec<String> = kubectl_items(
        cluster,
        &["-n", "monitoring", "statefulsets,persistentvolumeclaims"],
    )
    .iter()
    .flat_map(|o| {
        let mut found = Vec::new();
        if let Some(class) = o["spec"]["storageClassName"].as_str() {
            found.push(class.to_owned());
        }
        for template in o["spec"]["volumeClaimTemplates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(class) = template["spec"]["storageClassName"].as_str() {
                found.push(class.to_owned());
            }
        }
        found
    })
    .collect();
    classes.sort();
    classes.dedup();
    classes
}

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
    assert_eq!(
        server.push_webhook(&second, "not-the-secret-at-all").await,
        401
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
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

/// A small desired state built like the shipped one (a base, a cloud
/// overlay on it): a Deployment, a WaitForFirstConsumer storage class, a PVC
/// using it, and the `pilothouse-cluster` config map cluster overlays merge
/// into.
fn small_state(work: &Path) {
    let write = |path: &str, text: &str| {
        let file = work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    };
    write(
        "manifests/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: shop\n\
         resources:\n  - app.yaml\n\
         configMapGenerator:\n  - name: pilothouse-cluster\n    literals:\n      - cluster=unnamed-cluster\n",
    );
    write(
        "overlays/eks/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../manifests\n",
    );
    write(
        "manifests/app.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\n\
         apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: lazy\nprovisioner: example.com/none\nvolumeBindingMode: WaitForFirstConsumer\n---\n\
         apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  storageClassName: lazy\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n",
    );
}

#[tokio::test]
async fn health_follows_rollout_and_scaffold_pushes_the_cluster_overlay() {
    let repo = Repo::new(small_state);
    let cluster = TestCluster::start("health").await.unwrap();
    let server = serve(&repo, &[]);
    server.register("shop", &cluster, "eks", &["--sync-mode", "manual"]);
    // manual: nothing happens until asked
    tokio::time::sleep(Duration::from_secs(2)).await;
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
    let kubeconfig = server._data.path().join("taken.kubeconfig");
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

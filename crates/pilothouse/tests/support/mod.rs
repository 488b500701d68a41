//! What the end-to-end tests of `pilothouse serve` share: a Git "remote"
//! with a work clone, the service as a real process, API and CLI calls,
//! signed webhooks, kubectl readings, and small desired states.
#![allow(dead_code)]

use pilothouse_testenv::TestCluster;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_pilothouse");
pub const WEBHOOK_SECRET: &str = "test-webhook-secret-0123456789";

/// This repository's root (the shipped desired state lives there).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

pub fn git(dir: &Path, args: &[&str]) -> String {
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

pub fn copy_dir(from: &Path, to: &Path) {
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
pub struct Repo {
    pub _dir: tempfile::TempDir,
    pub remote: PathBuf,
    pub work: PathBuf,
}

impl Repo {
    /// The remote starts with `fill(work)`'s files committed.
    pub fn new(fill: impl FnOnce(&Path)) -> Repo {
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

    pub fn write(&self, path: &str, text: &str) {
        let file = self.work.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }

    pub fn commit(&self, message: &str) -> String {
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", message]);
        let remote = self.remote.display().to_string();
        git(&self.work, &["push", "-q", &remote, "HEAD:main"]);
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

/// The monitoring stack this repository ships: manifests/, overlays/ and the
/// cloud profiles.
pub fn shipped_state(work: &Path) {
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

pub struct Server {
    pub child: Child,
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
    pub logs: Option<std::thread::JoinHandle<String>>,
    pub data: tempfile::TempDir,
    /// `serve` and its flags, for [`Server::restart`].
    pub args: Vec<String>,
    /// Extra environment of the process.
    pub env: Vec<(String, String)>,
    pub port: u16,
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

pub fn serve(repo: &Repo, extra: &[&str]) -> Server {
    serve_in(repo, extra, tempfile::tempdir().unwrap(), None)
}

/// `serve` on a given data directory; the token is read from its
/// `admin.token` unless given.
pub fn serve_in(
    repo: &Repo,
    extra: &[&str],
    data: tempfile::TempDir,
    token: Option<String>,
) -> Server {
    serve_with(repo, extra, data, token, Vec::new())
}

/// `serve` with extra environment variables (kept for restarts).
pub fn serve_with(
    repo: &Repo,
    extra: &[&str],
    data: tempfile::TempDir,
    token: Option<String>,
    env: Vec<(String, String)>,
) -> Server {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = vec![
        "serve".to_owned(),
        "--repo".to_owned(),
        repo.remote.display().to_string(),
        "--repo-branch".to_owned(),
        "main".to_owned(),
    ];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let (child, logs) = start(&args, &env, data.path(), port);
    let token = token.unwrap_or_else(|| {
        std::fs::read_to_string(data.path().join("admin.token"))
            .unwrap()
            .trim()
            .to_owned()
    });
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        token,
        http: reqwest::Client::new(),
        logs: Some(logs),
        data,
        args,
        env,
        port,
    }
}

/// Starts `pilothouse ARGS` with test-friendly intervals on `port` and waits
/// until it listens.
fn start(
    args: &[String],
    env: &[(String, String)],
    data: &Path,
    port: u16,
) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = Command::new(BIN)
        .args(&args[..1])
        .args([
            "--poll-interval",
            "1h",
            "--sync-retry",
            "1s",
            "--sync-retry-max",
            "2s",
        ])
        .args(["--health-interval", "1s", "--sync-call-timeout", "5s"])
        .args(&args[1..])
        .arg("--data-dir")
        .arg(data)
        .env("PILOTHOUSE_PORT", port.to_string())
        .env_remove("PILOTHOUSE_MASTER_KEY")
        .env("PILOTHOUSE_LOG", "info,pilothouse=debug")
        .envs(env.iter().map(|(key, value)| (key, value)))
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
    (child, logs)
}

impl Server {
    /// Kills the service (as a crash would) and starts it again on the same
    /// data directory and port.
    pub fn restart(&mut self) {
        self.kill();
        self.start_again();
    }

    /// Kills the service, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a killed service again on the same data directory and port.
    pub fn start_again(&mut self) {
        let (child, logs) = start(&self.args, &self.env, self.data.path(), self.port);
        self.child = child;
        self.logs = Some(logs);
        // connections to the old process are dead: a fresh pool
        self.http = reqwest::Client::new();
    }

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
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

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The Prometheus exposition at `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Configures the webhook secret through the API.
    pub async fn set_webhook_secret(&self, repo: &Repo) {
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
    pub async fn push_webhook(&self, after: &str, secret: &str) -> u16 {
        // every real delivery's body is its own (ids, times): a repeated
        // body is refused as a replay
        static DELIVERIES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let delivery = DELIVERIES.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let body =
            json!({"ref": "refs/heads/main", "after": after, "delivery": delivery}).to_string();
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

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .env("PILOTHOUSE_SERVER", &self.url)
            .env("PILOTHOUSE_TOKEN", &self.token)
            .output()
            .unwrap()
    }

    pub fn register(&self, name: &str, cluster: &TestCluster, cloud: &str, extra: &[&str]) {
        let dir = self.data.path();
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
    pub async fn wait_cluster(
        &self,
        name: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
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

    /// Waits until the monitor's watch of `kind` (`pods`, `nodes`,
    /// `warning_events`) on cluster `name` has processed the object version
    /// `version`: every change up to it is applied to incidents and in the
    /// store. Versions are compared as numbers, as the API server's are.
    pub async fn wait_watched_version(&self, name: &str, kind: &str, version: u64) -> Value {
        self.wait_cluster(name, &format!("the {kind} watch reaching {version}"), |c| {
            let watch = &c["watch"]["kinds"][kind];
            watch["listed"] == true
                && watch["resource_version"]
                    .as_str()
                    .and_then(|v| v.parse::<u64>().ok())
                    .is_some_and(|seen| seen >= version)
        })
        .await
    }

    /// Waits until the monitor's watch of `kind` on cluster `name` has
    /// processed every object of that kind that `cluster` holds now.
    pub async fn wait_watched(&self, name: &str, cluster: &TestCluster, kind: &str) -> Value {
        let args: &[&str] = match kind {
            "pods" => &["pods", "--all-namespaces"],
            "nodes" => &["nodes"],
            "warning_events" => &[
                "events",
                "--all-namespaces",
                "--field-selector=type=Warning",
            ],
            other => panic!("no watch of {other}"),
        };
        let newest = kubectl_items(cluster, args)
            .iter()
            .filter_map(|item| {
                item["metadata"]["resourceVersion"]
                    .as_str()?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        self.wait_watched_version(name, kind, newest).await
    }

    /// Waits until the cluster's last finished sync worked on `revision`.
    pub async fn wait_synced(&self, name: &str, revision: &str) -> Value {
        self.wait_cluster(name, &format!("a sync of {revision}"), |c| {
            c["sync"]["last_revision"] == revision && c["sync"]["status"] != "never"
        })
        .await
    }

    pub async fn last_sync(&self, name: &str) -> Value {
        let cluster = self.get(&format!("/api/v1/clusters/{name}")).await;
        let id = cluster["sync"]["last_sync_id"].as_i64().unwrap();
        self.get(&format!("/api/v1/clusters/{name}/syncs/{id}"))
            .await
    }
}

/// HMAC-SHA256 by the openssl CLI: an implementation independent of ours.
pub fn hmac_sha256_hex(secret: &str, body: &[u8]) -> String {
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
pub fn kubectl_items(cluster: &TestCluster, args: &[&str]) -> Vec<Value> {
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
pub fn monitoring_objects(cluster: &TestCluster) -> BTreeMap<String, String> {
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
pub fn rendered(dir: &Path, cloud: &str) -> BTreeMap<String, Value> {
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

pub fn storage_classes(cluster: &TestCluster) -> Vec<String> {
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

/// A small desired state built like the shipped one (a base, a cloud
/// overlay on it): a Deployment and its Service, a Secret, a
/// WaitForFirstConsumer storage class, a PVC using it, and the
/// `pilothouse-cluster` config map cluster overlays merge into.
pub fn small_state(work: &Path) {
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
         apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {app: web, tier: front}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n          ports:\n            - containerPort: 80\n---\n\
         apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: web}\n  ports:\n    - port: 80\n      targetPort: 80\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\nstringData:\n  token: s3cr3t-value\n",
    );
}

/// The binary named by `env_var`, else the one scripts/install-promtool.sh
/// builds into the cache for the versions in testenv-tools/prometheus/go.mod.
pub fn prometheus_tool(name: &str, env_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env_var) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{env_var}={} does not exist",
            path.display()
        );
        return path;
    }
    let root = repo_root();
    let go_mod = std::fs::read_to_string(root.join("testenv-tools/prometheus/go.mod"))
        .expect("reading testenv-tools/prometheus/go.mod");
    let version = |module: &str| {
        go_mod
            .lines()
            .map(str::split_whitespace)
            .find_map(|mut words| {
                (words.next() == Some(module))
                    .then(|| words.next())
                    .flatten()
            })
            .filter(|v| v.starts_with('v'))
            .unwrap_or_else(|| panic!("testenv-tools/prometheus/go.mod does not require {module}"))
            .to_string()
    };
    let cache = std::env::var_os("PILOTHOUSE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME or PILOTHOUSE_CACHE must be set");
            PathBuf::from(home).join(".cache/pilothouse")
        });
    let path = cache.join("tools").join(format!(
        "prometheus-{}-alertmanager-{}",
        version("github.com/prometheus/prometheus"),
        version("github.com/prometheus/alertmanager")
    ));
    let path = path.join(name);
    assert!(
        path.is_file(),
        "{name} not found at {}: run scripts/install-promtool.sh (builds promtool and amtool from Go \
         modules, a few minutes cold) or set {env_var}",
        path.display()
    );
    path
}

/// Checks a Prometheus exposition with `promtool check metrics` (names,
/// types, help texts, histogram shapes, label syntax).
pub fn promtool_check_metrics(text: &str) {
    use std::io::Write as _;
    let promtool = prometheus_tool("promtool", "PILOTHOUSE_PROMTOOL");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics refused /metrics:\n{}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

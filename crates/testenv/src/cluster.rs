//! One simulated cluster: etcd + kube-apiserver (+ controllers in live mode).

use std::fmt::Write as _;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tempfile::TempDir;

use crate::container_logs::ContainerLogServer;
use crate::kubelet::FakeKubelet;
use crate::pki::Pki;
use crate::{Binaries, TestEnvError};

/// How long a control plane may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// Prefix of every cluster's temporary directory (also how stale ones are found).
const DIR_PREFIX: &str = "pilothouse-testenv-";

/// What runs besides etcd and kube-apiserver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterMode {
    /// apiserver + etcd only: tests set object status themselves.
    Bare,
    /// Plus kube-controller-manager, kube-scheduler and a fake kubelet.
    Live,
}

/// Options for [`TestCluster::start_with`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// The cluster's name (used in kubeconfig names, certificates and logs).
    pub name: String,
    /// Bare or live.
    pub mode: ClusterMode,
}

impl ClusterOptions {
    /// A bare cluster: apiserver + etcd.
    pub fn bare(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            mode: ClusterMode::Bare,
        }
    }

    /// A live cluster: controllers, scheduler and a fake kubelet too.
    pub fn live(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            mode: ClusterMode::Live,
        }
    }
}

/// A running control plane. Dropping it stops every process and deletes its files.
pub struct TestCluster {
    name: String,
    mode: ClusterMode,
    binaries: Binaries,
    dir: Option<TempDir>,
    etcd: Option<Child>,
    apiserver: Option<Child>,
    controllers: Vec<(&'static str, Child)>,
    apiserver_args: Vec<String>,
    server_url: String,
    admin_token: String,
    kubeconfig: String,
    token_kubeconfig: String,
    kubelet: Option<FakeKubelet>,
    container_logs: ContainerLogServer,
    started_in: Duration,
}

impl std::fmt::Debug for TestCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCluster")
            .field("name", &self.name)
            .field("mode", &self.mode)
            .field("server_url", &self.server_url)
            .field("kubelet_port", &self.container_logs.port())
            .finish_non_exhaustive()
    }
}

/// Starts several bare clusters in parallel.
pub async fn start_fleet(names: &[&str]) -> Result<Vec<TestCluster>, TestEnvError> {
    futures::future::try_join_all(names.iter().map(|name| TestCluster::start(name))).await
}

impl TestCluster {
    /// Starts a bare cluster (apiserver + etcd).
    pub async fn start(name: &str) -> Result<Self, TestEnvError> {
        Self::start_with(ClusterOptions::bare(name)).await
    }

    /// Starts a cluster with the given options and waits until `/readyz` answers.
    pub async fn start_with(options: ClusterOptions) -> Result<Self, TestEnvError> {
        let begin = Instant::now();
        let binaries = Binaries::locate()?;
        if options.mode == ClusterMode::Live {
            binaries.path("kube-controller-manager")?;
            binaries.path("kube-scheduler")?;
        }
        reap_stale_clusters();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{DIR_PREFIX}{}-", options.name))
            .tempdir()
            .map_err(TestEnvError::io(
                "creating the cluster's temporary directory",
            ))?;
        let root = dir.path().to_owned();
        write(&root.join("owner.pid"), &std::process::id().to_string())?;

        let pki = Pki::generate(&options.name)?;
        write(&root.join("ca.crt"), &pki.ca_cert)?;
        write(&root.join("apiserver.crt"), &pki.serving_cert)?;
        write(&root.join("apiserver.key"), &pki.serving_key)?;
        write(&root.join("sa.key"), &pki.service_account_key)?;
        write(&root.join("sa.pub"), &pki.service_account_public_key)?;
        write(&root.join("kubelet-client.crt"), &pki.kubelet_client_cert)?;
        write(&root.join("kubelet-client.key"), &pki.kubelet_client_key)?;
        let container_logs = ContainerLogServer::start(&pki)?;
        let admin_token = random_token()?;
        write(
            &root.join("tokens.csv"),
            &format!("{admin_token},pilothouse-testenv-admin,admin-uid,\"system:masters\"\n"),
        )?;

        let mut cluster = Self {
            name: options.name.clone(),
            mode: options.mode,
            binaries,
            dir: Some(dir),
            etcd: None,
            apiserver: None,
            controllers: Vec::new(),
            apiserver_args: Vec::new(),
            server_url: String::new(),
            admin_token,
            kubeconfig: String::new(),
            token_kubeconfig: String::new(),
            kubelet: None,
            container_logs,
            started_in: Duration::ZERO,
        };

        // Free ports are picked by binding port 0 and letting go of it; another
        // process can take one in between, so a start that loses that race retries.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match cluster.boot(&pki).await {
                Ok(()) => break,
                Err(error)
                    if attempt < 3 && error.to_string().contains("address already in use") =>
                {
                    cluster.stop_processes();
                }
                Err(error) => return Err(error),
            }
        }
        if cluster.mode == ClusterMode::Live {
            cluster.start_controllers()?;
            cluster.kubelet = Some(FakeKubelet::start(cluster.client().await?));
        }
        cluster.started_in = begin.elapsed();
        Ok(cluster)
    }

    async fn boot(&mut self, pki: &Pki) -> Result<(), TestEnvError> {
        let root = self.root().to_owned();
        let etcd_data = root.join("etcd");
        let _ = fs::remove_dir_all(&etcd_data);
        let client_port = free_port()?;
        let peer_port = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let etcd_args = vec![
            "--name=default".to_owned(),
            format!("--data-dir={}", etcd_data.display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
            "--unsafe-no-fsync=true".to_owned(),
            "--log-level=warn".to_owned(),
        ];
        self.etcd = Some(self.spawn("etcd", &etcd_args)?);

        let port = free_port()?;
        self.server_url = format!("https://127.0.0.1:{port}");
        let file = |name: &str| root.join(name).display().to_string();
        let mut args = vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".to_owned(),
            "--advertise-address=127.0.0.1".to_owned(),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", file("certs")),
            format!("--tls-cert-file={}", file("apiserver.crt")),
            format!("--tls-private-key-file={}", file("apiserver.key")),
            format!("--client-ca-file={}", file("ca.crt")),
            format!("--token-auth-file={}", file("tokens.csv")),
            "--authorization-mode=RBAC".to_owned(),
            "--service-account-issuer=https://kubernetes.default.svc".to_owned(),
            format!("--service-account-key-file={}", file("sa.pub")),
            format!("--service-account-signing-key-file={}", file("sa.key")),
            "--service-cluster-ip-range=10.96.0.0/16".to_owned(),
            "--allow-privileged=true".to_owned(),
            // `pods/log` goes to the fake kubelet's log server, which fake nodes
            // advertise as InternalIP 127.0.0.1 and their kubelet endpoint port;
            // TLS is verified both ways against the test CA
            format!("--kubelet-certificate-authority={}", file("ca.crt")),
            format!(
                "--kubelet-client-certificate={}",
                file("kubelet-client.crt")
            ),
            format!("--kubelet-client-key={}", file("kubelet-client.key")),
            "--kubelet-preferred-address-types=InternalIP".to_owned(),
            // the loopback address cannot be published as the endpoint of the
            // `kubernetes` Service, so do not try
            "--endpoint-reconciler-type=none".to_owned(),
            "--profiling=false".to_owned(),
        ];
        if self.mode == ClusterMode::Bare {
            // no controller manager creates the `default` ServiceAccount
            args.push("--disable-admission-plugins=ServiceAccount".to_owned());
        }
        self.apiserver_args = args;
        self.apiserver = Some(self.spawn("kube-apiserver", &self.apiserver_args)?);

        self.kubeconfig = self.render_kubeconfig(pki, None);
        self.token_kubeconfig = self.render_kubeconfig(pki, Some(&self.admin_token));
        write(&root.join("admin.kubeconfig"), &self.kubeconfig)?;
        self.wait_ready().await
    }

    fn start_controllers(&mut self) -> Result<(), TestEnvError> {
        let root = self.root().to_owned();
        let file = |name: &str| root.join(name).display().to_string();
        let kubeconfig = format!("--kubeconfig={}", file("admin.kubeconfig"));
        let manager_args = vec![
            kubeconfig.clone(),
            "--leader-elect=false".to_owned(),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", free_port()?),
            format!("--service-account-private-key-file={}", file("sa.key")),
            format!("--root-ca-file={}", file("ca.crt")),
            format!("--cluster-name={}", self.name),
            // fake nodes send no heartbeats: keep the node lifecycle controller
            // from tainting them and evicting their pods
            "--controllers=*,-nodelifecycle".to_owned(),
        ];
        let manager = self.spawn("kube-controller-manager", &manager_args)?;
        self.controllers.push(("kube-controller-manager", manager));
        let scheduler_args = vec![
            kubeconfig,
            "--leader-elect=false".to_owned(),
            "--bind-address=127.0.0.1".to_owned(),
            format!("--secure-port={}", free_port()?),
        ];
        let scheduler = self.spawn("kube-scheduler", &scheduler_args)?;
        self.controllers.push(("kube-scheduler", scheduler));
        Ok(())
    }

    fn spawn(&self, binary: &'static str, args: &[String]) -> Result<Child, TestEnvError> {
        let path = self.binaries.path(binary)?;
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root().join(format!("{binary}.log")))
            .map_err(TestEnvError::io(format!("opening the {binary} log")))?;
        let log_err = log
            .try_clone()
            .map_err(TestEnvError::io(format!("opening the {binary} log")))?;
        let child = Command::new(&path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(TestEnvError::io(format!("starting {}", path.display())))?;
        let mut pids = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root().join("children.pid"))
            .map_err(TestEnvError::io("recording child pids"))?;
        std::io::Write::write_all(&mut pids, format!("{}\n", child.id()).as_bytes())
            .map_err(TestEnvError::io("recording child pids"))?;
        Ok(child)
    }

    async fn wait_ready(&mut self) -> Result<(), TestEnvError> {
        let client = self.client().await?;
        let root = self.root().to_owned();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            for (process, child) in [
                ("etcd", &mut self.etcd),
                ("kube-apiserver", &mut self.apiserver),
            ] {
                if let Some(status) = child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                    return Err(TestEnvError::ProcessExited {
                        cluster: self.name.clone(),
                        process,
                        status: status.to_string(),
                        log_tail: log_tail(&root.join(format!("{process}.log")), 30),
                    });
                }
            }
            let request = http::Request::get("/readyz").body(Vec::new());
            if let Ok(request) = request
                && client.request_text(request).await.is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(TestEnvError::Timeout {
                    what: format!("kube-apiserver of `{}` to be ready", self.name),
                    seconds: READY_TIMEOUT.as_secs(),
                    log_tail: log_tail(&root.join("kube-apiserver.log"), 30),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn render_kubeconfig(&self, pki: &Pki, token: Option<&str>) -> String {
        let name = &self.name;
        let mut user = String::new();
        match token {
            Some(token) => {
                let _ = writeln!(user, "    token: {token}");
            }
            None => {
                let _ = writeln!(
                    user,
                    "    client-certificate-data: {}",
                    BASE64.encode(&pki.admin_cert)
                );
                let _ = writeln!(
                    user,
                    "    client-key-data: {}",
                    BASE64.encode(&pki.admin_key)
                );
            }
        }
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\n    \
             certificate-authority-data: {ca}\nusers:\n- name: {name}-admin\n  user:\n{user}contexts:\n- name: {name}\n  \
             context:\n    cluster: {name}\n    user: {name}-admin\ncurrent-context: {name}\n",
            server = self.server_url,
            ca = BASE64.encode(&pki.ca_cert),
        )
    }

    fn root(&self) -> &Path {
        self.dir
            .as_ref()
            .map_or(Path::new("/nonexistent"), TempDir::path)
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Bare or live.
    pub fn mode(&self) -> ClusterMode {
        self.mode
    }

    /// The apiserver URL, `https://127.0.0.1:PORT`.
    pub fn server_url(&self) -> &str {
        &self.server_url
    }

    /// An admin kubeconfig with an embedded client certificate (x509 auth).
    pub fn kubeconfig_yaml(&self) -> &str {
        &self.kubeconfig
    }

    /// An admin kubeconfig that authenticates with a bearer token instead.
    pub fn token_kubeconfig_yaml(&self) -> &str {
        &self.token_kubeconfig
    }

    /// The admin bearer token (group `system:masters`).
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Path of the admin kubeconfig file, for `kubectl --kubeconfig`.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.root().join("admin.kubeconfig")
    }

    /// The port of the fake kubelet's log server on 127.0.0.1: the kubelet
    /// endpoint every node made by [`create_node`](Self::create_node) advertises.
    pub fn kubelet_port(&self) -> u16 {
        self.container_logs.port()
    }

    /// Sets (replaces) the log of a container, which the apiserver then serves at
    /// `GET /api/v1/namespaces/{namespace}/pods/{pod}/log?container={container}`
    /// (`previous=true` when `previous`), honouring `tailLines` and `limitBytes`.
    /// The pod must be bound to a node made by [`create_node`](Self::create_node)
    /// (see [`create_pod_on`](Self::create_pod_on)); a container whose log was
    /// never set answers 400 with a kubelet-like message.
    pub fn set_container_logs(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
        text: &str,
    ) {
        self.container_logs
            .set(namespace, pod, container, previous, text);
    }

    /// How long the start took, from the call to a ready `/readyz`.
    pub fn startup_time(&self) -> Duration {
        self.started_in
    }

    /// A `kubectl` command already pointed at this cluster.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new("kubectl");
        command.arg("--kubeconfig").arg(self.kubeconfig_path());
        command
    }

    /// A fresh admin client for this cluster.
    pub async fn client(&self) -> Result<Client, TestEnvError> {
        let kubeconfig =
            Kubeconfig::from_yaml(&self.kubeconfig).map_err(TestEnvError::Kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(TestEnvError::Kubeconfig)?;
        Client::try_from(config).map_err(TestEnvError::kube("building a client"))
    }

    /// Resident memory of the apiserver process, in bytes (Linux only).
    pub fn apiserver_memory_bytes(&self) -> Option<u64> {
        let pid = self.apiserver.as_ref()?.id();
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// Kills the apiserver (etcd keeps the data): the cluster becomes unreachable.
    pub fn stop_apiserver(&mut self) {
        if let Some(mut child) = self.apiserver.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the apiserver again on the same port and waits until it is ready.
    pub async fn restart_apiserver(&mut self) -> Result<(), TestEnvError> {
        self.stop_apiserver();
        self.apiserver = Some(self.spawn("kube-apiserver", &self.apiserver_args)?);
        self.wait_ready().await
    }

    /// The last `lines` lines of the apiserver and etcd logs.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for process in [
            "kube-apiserver",
            "etcd",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            let path = self.root().join(format!("{process}.log"));
            if path.exists() {
                let _ = writeln!(
                    out,
                    "--- {} {process} log (last {lines} lines) ---",
                    self.name
                );
                out.push_str(&log_tail(&path, lines));
            }
        }
        out
    }

    fn stop_processes(&mut self) {
        self.kubelet = None;
        for (_, mut child) in self.controllers.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stop_apiserver();
        if let Some(mut child) = self.etcd.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(40));
        }
        self.stop_processes();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

fn write(path: &Path, contents: &str) -> Result<(), TestEnvError> {
    fs::write(path, contents).map_err(TestEnvError::io(format!("writing {}", path.display())))
}

fn free_port() -> Result<u16, TestEnvError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(TestEnvError::io("finding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(TestEnvError::io("finding a free port"))?
        .port();
    Ok(port)
}

fn random_token() -> Result<String, TestEnvError> {
    let mut bytes = [0u8; 24];
    let mut random =
        fs::File::open("/dev/urandom").map_err(TestEnvError::io("reading /dev/urandom"))?;
    std::io::Read::read_exact(&mut random, &mut bytes)
        .map_err(TestEnvError::io("reading /dev/urandom"))?;
    Ok(bytes.iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    }))
}

/// The last `lines` lines of a log file (empty if it cannot be read).
fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let mut tail = all[all.len().saturating_sub(lines)..].join("\n");
    tail.push('\n');
    tail
}

/// Kills the processes of clusters whose test process died without dropping them
/// (e.g. killed by a timeout) and removes their directories.
fn reap_stale_clusters() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let is_ours = dir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(DIR_PREFIX));
        let Ok(owner) = fs::read_to_string(dir.join("owner.pid")) else {
            continue;
        };
        if !is_ours || Path::new(&format!("/proc/{}", owner.trim())).exists() {
            continue;
        }
        let children = fs::read_to_string(dir.join("children.pid")).unwrap_or_default();
        for pid in children.lines().map(str::trim).filter(|p| !p.is_empty()) {
            // only kill a pid that still runs one of this directory's processes
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&*dir.to_string_lossy()) {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
}

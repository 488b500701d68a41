//! What the fleet tests share: test clusters, kubectl, impersonating
//! clients, small manifests and a server that never answers.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use pilothouse_fleet::SyncOptions;
use pilothouse_testenv::TestCluster;
use serde_json::{Value, json};

pub async fn start(name: &str) -> TestCluster {
    TestCluster::start(name).await.unwrap_or_else(|error| {
        panic!("cannot start a test cluster (run scripts/install-test-binaries.sh): {error}")
    })
}

/// Default options with a call timeout that a busy test machine meets.
pub fn options() -> SyncOptions {
    SyncOptions {
        call_timeout: Duration::from_secs(20),
        ..SyncOptions::default()
    }
}

/// Runs kubectl and asserts it succeeded; returns stdout.
pub fn kubectl(cluster: &TestCluster, args: &[&str]) -> String {
    let output = cluster.kubectl().args(args).output().expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Whether `kubectl get` finds the object.
pub fn exists(cluster: &TestCluster, args: &[&str]) -> bool {
    cluster
        .kubectl()
        .arg("get")
        .args(args)
        .output()
        .expect("kubectl runs")
        .status
        .success()
}

/// A client of the same cluster that impersonates `user`.
pub async fn client_as(cluster: &TestCluster, user: &str) -> Client {
    let token_line = format!("    token: {}\n", cluster.admin_token());
    let yaml = cluster
        .token_kubeconfig_yaml()
        .replace(&token_line, &format!("{token_line}    as: {user}\n"));
    let kubeconfig = Kubeconfig::from_yaml(&yaml).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// A client of a server that accepts connections and never says a word,
/// and the task holding them (abort it when done).
pub async fn silent_client() -> (Client, SilentServer) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    let mut config = Config::new(format!("https://{address}").parse().unwrap());
    config.accept_invalid_certs = true;
    (
        Client::try_from(config).unwrap(),
        SilentServer { task, connections },
    )
}

/// A server that accepts connections and never answers, counting them.
pub struct SilentServer {
    task: tokio::task::JoinHandle<()>,
    connections: Arc<AtomicUsize>,
}

impl SilentServer {
    /// Connections accepted so far (each call that waits on it opens one).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Stops accepting.
    pub fn abort(&self) {
        self.task.abort();
    }
}

pub fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

pub fn config_map(namespace: &str, name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": namespace}, "data": data})
}

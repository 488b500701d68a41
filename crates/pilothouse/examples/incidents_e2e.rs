//! Benchmark: pod errors end to end — 3 clusters × 1,000 pods, then 100 pods
//! crash at once.
//!
//! Starts three bare testenv clusters (real kube-apiserver + etcd), creates
//! 1,000 running pods on each (100 Deployments × 10 replicas), starts the
//! release `pilothouse serve` on loopback, registers the clusters and waits
//! until their watches report a canary crash. Then 100 pods (one per
//! Deployment, spread over the clusters) are OOM-killed by concurrent status
//! patches, and the incidents API is polled every 10 ms: the time from
//! sending each patch to its incident being readable is reported as
//! p50/p99/max (conservative: it includes the patch's own round trip and up
//! to one poll interval). Pilothouse's peak memory is read from the kernel
//! (`VmHWM`).
//!
//! `cargo build --release -p pilothouse && cargo run --release -p pilothouse --example incidents_e2e`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use pilothouse_testenv::{FakeNode, PodState, ProviderCloud, TestCluster, start_fleet};
use serde_json::{Value, json};

const CLUSTERS: [&str; 3] = ["e2e-a", "e2e-b", "e2e-c"];
const DEPLOYMENTS: usize = 100;
const REPLICAS: usize = 10;
const CRASHES: usize = 100;

mod common;

use common::{Error, Serve};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let fleet = start_fleet(&CLUSTERS).await?;
    let started = Instant::now();
    for cluster in &fleet {
        populate(cluster).await?;
    }
    println!(
        "{} pods created and running on {} clusters in {:.1} s",
        CLUSTERS.len() * DEPLOYMENTS * REPLICAS,
        CLUSTERS.len(),
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    let serve = Serve::start(dir.path()).await?;
    for (name, cluster) in CLUSTERS.iter().zip(&fleet) {
        serve.register(name, cluster).await?;
    }
    measure(&fleet, &serve).await
}

async fn measure(fleet: &[TestCluster], serve: &Serve) -> Result<(), Error> {
    let (base, token, http, pid) = (&serve.base, &serve.token, &serve.http, serve.pid());

    // A canary crash per cluster: its incident proves the watch is live.
    let started = Instant::now();
    for cluster in fleet {
        let client = cluster.client().await?;
        crash(&client, "canary-0-p0", 1).await?;
    }
    wait_for(http, base, token, "workload=canary-0", CLUSTERS.len()).await?;
    println!(
        "watches live (canary incidents seen) {:.1} s after registration",
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 100 crashes at once: pod 0 of Deployments 0..100, round-robin over
    // the clusters.
    let mut clients = Vec::new();
    for cluster in fleet {
        clients.push(cluster.client().await?);
    }
    let mut patches = Vec::new();
    for index in 0..CRASHES {
        let client = clients[index % clients.len()].clone();
        let deployment = format!("svc-{index:03}");
        patches.push(async move {
            let sent = Instant::now();
            crash(&client, &format!("{deployment}-p0"), 1).await?;
            Ok::<_, Error>((deployment, sent))
        });
    }
    let mut sent: BTreeMap<String, Instant> = BTreeMap::new();
    let results: Vec<Result<(String, Instant), Error>> = futures::stream::iter(patches)
        .buffer_unordered(CRASHES)
        .collect()
        .await;
    for result in results {
        let (deployment, at) = result?;
        sent.insert(deployment, at);
    }
    let mut seen: BTreeMap<String, Instant> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < CRASHES && Instant::now() < deadline {
        let page: Value = http
            .get(format!("{base}/incidents?reason=OOMKilled&limit=500"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        let now = Instant::now();
        for incident in page["incidents"].as_array().into_iter().flatten() {
            let workload = incident["workload"].as_str().unwrap_or_default();
            if sent.contains_key(workload) {
                seen.entry(workload.to_owned()).or_insert(now);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut latencies: Vec<f64> = seen
        .iter()
        .map(|(workload, at)| at.duration_since(sent[workload]).as_secs_f64() * 1e3)
        .collect();
    latencies.sort_by(f64::total_cmp);
    if latencies.is_empty() {
        return Err("no incident appeared".into());
    }
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    println!(
        "{} of {CRASHES} crashes became incidents; patch sent → incident readable, ms: p50 {:.0} p99 {:.0} max {:.0} (target p99 < 1000)",
        seen.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
    println!(
        "pilothouse memory: peak {:.1} MB (VmHWM), now {:.1} MB (VmRSS) (target peak < 150 MB)",
        field("VmHWM:"),
        field("VmRSS:")
    );
    Ok(())
}

/// Waits until `count` incidents match `query`.
async fn wait_for(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    query: &str,
    count: usize,
) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page: Value = http
            .get(format!("{base}/incidents?{query}"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        if page["incidents"].as_array().map_or(0, Vec::len) >= count {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("no {count} incidents for {query}: {page}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Namespace, node, and 100 Deployments' 1,000 running pods (plus a canary).
async fn populate(cluster: &TestCluster) -> Result<(), Error> {
    cluster.create_namespace("load").await?;
    cluster
        .create_node(&FakeNode::ready("node-1", ProviderCloud::Eks))
        .await?;
    let client = cluster.client().await?;
    let mut pods = vec![("canary-0".to_owned(), "canary-0-p0".to_owned())];
    for deployment in 0..DEPLOYMENTS {
        for replica in 0..REPLICAS {
            let name = format!("svc-{deployment:03}");
            pods.push((name.clone(), format!("{name}-p{replica}")));
        }
    }
    let creates: Vec<_> = pods
        .into_iter()
        .map(|(deployment, pod)| {
            let client = client.clone();
            async move { create(&client, &deployment, &pod).await }
        })
        .collect();
    let results: Vec<Result<(), Error>> = futures::stream::iter(creates)
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect()
}

/// A running pod of Deployment `deployment` (through its ReplicaSet).
async fn create(client: &kube::Client, deployment: &str, name: &str) -> Result<(), Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "load");
    let hash = "5f7d9c6b8";
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": deployment, "pod-template-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("{deployment}-{hash}"), "uid": "00000000-0000-0000-0000-000000000009",
                "controller": true}]},
        "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "registry.example/app:1.0"}]},
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    set_state(client, name, &PodState::running()).await
}

/// OOM-kills a pod's container (restart count `restarts`).
async fn crash(client: &kube::Client, name: &str, restarts: i32) -> Result<(), Error> {
    set_state(client, name, &PodState::oom_killed(restarts)).await
}

async fn set_state(client: &kube::Client, name: &str, state: &PodState) -> Result<(), Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "load");
    let status = state.status(&[("app".to_owned(), "registry.example/app:1.0".to_owned())]);
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await?;
    Ok(())
}

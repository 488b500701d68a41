//! Benchmark: replays a recorded stream of pod updates through detection,
//! grouping and SQLite, as `serve` ingests a cluster's pod watch.
//!
//! The stream (written once to a JSON-lines file, then read back while
//! timing) is 2,000 pods of 200 Deployments in 20 namespaces, each updated
//! in 60 rounds as the API server would send them (a new resourceVersion
//! each time): most stay running; a few per round start crash-looping,
//! keep restarting, get OOM-killed, fail to pull their image, or recover.
//! Each line is parsed from JSON, fed to the detector, its observations to
//! the incident book, and every change is written to a real SQLite store in
//! batched transactions of up to 2,000 rows (as `serve`'s single writer
//! does).
//!
//! `cargo run --release -p pilothouse-incidents --example ingest_bench [ROUNDS]`

use std::io::{BufRead as _, BufWriter, Write as _};
use std::time::Instant;

use pilothouse_incidents::{Change, DetectConfig, Detector, IncidentBook};
use pilothouse_store::{Cloud, CloudSource, IncidentWrite, MasterKey, NewCluster, Store};
use serde_json::{Value, json};

const NAMESPACES: usize = 20;
const DEPLOYMENTS_PER_NAMESPACE: usize = 10;
const PODS_PER_DEPLOYMENT: usize = 10;
const BATCH: usize = 2000;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(60), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let recorded = dir.path().join("pods.jsonl");
    let updates = record(&recorded, rounds)?;
    let bytes = std::fs::metadata(&recorded)?.len();
    println!(
        "recorded stream: {updates} pod updates, {:.1} MB",
        bytes as f64 / 1e6
    );

    // Detection and grouping alone.
    let started = Instant::now();
    let (changes, _) = replay(&recorded, |_| {})?;
    let pure = started.elapsed();
    println!(
        "detection + grouping: {:.3} s, {:.0} updates/s, {changes} incident changes",
        pure.as_secs_f64(),
        updates as f64 / pure.as_secs_f64()
    );

    // With SQLite: a real store, batched writes.
    let store = Store::open(&dir.path().join("pilothouse.db")).await?;
    let key = MasterKey::generate()?;
    store
        .insert_cluster(&NewCluster {
            credentials: key.seal(b"apiVersion: v1\nkind: Config\n", "cluster:bench")?,
            name: "bench".into(),
            cloud: Cloud::Eks,
            cloud_source: CloudSource::Declared,
            server_url: "https://127.0.0.1:6443".into(),
            context: "bench".into(),
            labels: Default::default(),
            kubernetes_version: None,
            check: None,
            sync_mode: pilothouse_store::SyncMode::Manual,
        })
        .await?;
    // As in `serve`: the detector sends changes down a channel to a single
    // writer task that writes whatever has arrived, up to BATCH rows, per
    // transaction.
    let started = Instant::now();
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<IncidentWrite>();
    let writer_store = store.clone();
    let writer = tokio::spawn(async move {
        let (mut transactions, mut written) = (0usize, 0usize);
        let mut batch = Vec::with_capacity(BATCH);
        while receiver.recv_many(&mut batch, BATCH).await > 0 {
            written += writer_store.write_incidents(&batch).await?.len();
            transactions += 1;
            batch.clear();
        }
        Ok::<_, pilothouse_store::StoreError>((transactions, written))
    });
    let (changes, _) = tokio::task::block_in_place(|| {
        replay(&recorded, |change| {
            let _ = sender.send(change.incident.to_write("bench", None));
        })
    })?;
    drop(sender);
    let (transactions, written) = writer.await??;
    let total = started.elapsed();
    let incidents = store
        .list_incidents(&pilothouse_store::IncidentQuery {
            limit: 500,
            ..Default::default()
        })
        .await?
        .len();
    println!(
        "detection + grouping + SQLite: {:.3} s, {:.0} updates/s ({changes} changes in {transactions} transactions, {written} rows written, {incidents}{} incidents stored)",
        total.as_secs_f64(),
        updates as f64 / total.as_secs_f64(),
        if incidents == 500 { "+" } else { "" },
    );
    println!("target: >= 50000 updates/s");
    Ok(())
}

/// Feeds every recorded update to one detector and book; calls `sink` with
/// each change. Returns (changes, updates).
fn replay(
    path: &std::path::Path,
    mut sink: impl FnMut(Change),
) -> Result<(usize, usize), Box<dyn std::error::Error>> {
    let mut detector = Detector::new(DetectConfig::default());
    let mut book = IncidentBook::default();
    let reader = std::io::BufReader::new(std::fs::File::open(path)?);
    let (mut changes, mut updates) = (0, 0);
    let mut now = 1_800_000_000_000_i64;
    for line in reader.lines() {
        let pod: Value = serde_json::from_str(&line?)?;
        for observation in detector.pod(&pod, now) {
            if let Some(change) = book.observe(&observation) {
                changes += 1;
                sink(change);
            }
        }
        updates += 1;
        if updates % 1000 == 0 {
            now += 1000;
            for observation in detector.tick(now) {
                changes += usize::from(book.observe(&observation).is_some());
            }
            for change in book.tick(now) {
                changes += 1;
                sink(change);
            }
        }
    }
    Ok((changes, updates))
}

/// Writes the stream; returns how many updates it holds.
fn record(path: &std::path::Path, rounds: usize) -> std::io::Result<usize> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    let mut version = 1000u64;
    let mut updates = 0;
    let pods = NAMESPACES * DEPLOYMENTS_PER_NAMESPACE * PODS_PER_DEPLOYMENT;
    for round in 0..rounds {
        for index in 0..pods {
            version += 1;
            let pod = pod(index, round, version);
            serde_json::to_writer(&mut out, &pod)?;
            out.write_all(b"\n")?;
            updates += 1;
        }
    }
    out.flush()?;
    Ok(updates)
}

/// Pod `index` as the API server sends it in `round`. Deterministic: pods
/// whose index is a multiple of 7 crash-loop from round `index % 20`,
/// multiples of 11 are OOM-killed every 5 rounds, multiples of 13 cannot
/// pull their image for a while, multiples of 29 recover after round 40.
fn pod(index: usize, round: usize, version: u64) -> Value {
    let namespace = format!(
        "team-{:02}",
        index / (DEPLOYMENTS_PER_NAMESPACE * PODS_PER_DEPLOYMENT)
    );
    let deployment = format!("svc-{:03}", index / PODS_PER_DEPLOYMENT);
    let hash = "7c9d5f8b6";
    let name = format!("{deployment}-{hash}-{index:05}");
    let crashing =
        index.is_multiple_of(7) && round >= index % 20 && !(index.is_multiple_of(29) && round > 40);
    let oom = index.is_multiple_of(11) && round > 0 && round.is_multiple_of(5);
    let pulling = index.is_multiple_of(13) && (10..20).contains(&round);
    let restarts = if crashing { round - index % 20 } else { 0 }
        + if index.is_multiple_of(11) {
            round / 5
        } else {
            0
        };
    let now = "2026-11-23T04:00:00Z";
    let app_state = if crashing {
        json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s restarting failed container"}})
    } else if oom {
        json!({"terminated": {"exitCode": 137, "reason": "OOMKilled", "startedAt": now, "finishedAt": now}})
    } else if pulling {
        json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}})
    } else {
        json!({"running": {"startedAt": now}})
    };
    let ready = app_state.get("running").is_some();
    let last = if restarts > 0 {
        json!({"terminated": {"exitCode": if index.is_multiple_of(11) { 137 } else { 1 }, "reason": if index.is_multiple_of(11) { "OOMKilled" } else { "Error" }, "startedAt": now, "finishedAt": now}})
    } else {
        json!({})
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": namespace, "uid": format!("uid-{index:08}"),
            "resourceVersion": version.to_string(), "creationTimestamp": now,
            "labels": {"app": deployment, "pod-template-hash": hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{deployment}-{hash}"),
                                 "uid": format!("rs-{index:08}"), "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": {"nodeName": format!("node-{}", index % 50), "containers": [
            {"name": "app", "image": format!("registry.example/{deployment}:1.{round}")},
            {"name": "proxy", "image": "registry.example/proxy:2.1"},
        ]},
        "status": {
            "phase": "Running", "hostIP": "10.0.0.1", "podIP": format!("10.244.{}.{}", index / 250, index % 250),
            "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now},
                {"type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {"name": "app", "image": format!("registry.example/{deployment}:1.{round}"), "imageID": "",
                 "ready": ready, "started": ready, "restartCount": restarts, "state": app_state, "lastState": last},
                {"name": "proxy", "image": "registry.example/proxy:2.1", "imageID": "", "ready": true,
                 "started": true, "restartCount": 0, "state": {"running": {"startedAt": now}}, "lastState": {}},
            ],
        },
    })
}

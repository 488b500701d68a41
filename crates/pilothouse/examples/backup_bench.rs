//! Benchmark: back up and restore 2,000 objects, against kubectl in the same
//! run.
//!
//! A source testenv cluster gets 2,000 objects (10 namespaces, each with 40
//! ConfigMaps, Secrets, ServiceAccounts, Services and 39 Deployments). The
//! release `pilothouse serve` runs with the source and two empty target
//! clusters registered. Then, each on its own:
//! - Pilothouse: `pilothouse backup --clusters source --include-secrets`
//!   (store copy + export + archive) and `pilothouse restore --to
//!   pilothouse-target` (verification + server-side apply);
//! - kubectl: `kubectl get <kinds> -A -o json` into a file, the fields a
//!   re-creation cannot carry stripped (uid, resourceVersion,
//!   creationTimestamp, managedFields, status, clusterIP(s)) — the part a
//!   kubectl-based backup must do too — and `kubectl apply --server-side
//!   --force-conflicts` of that file into the other target.
//!
//! Reports each time and the archive size against the kubectl file.
//!
//! `cargo build --release -p pilothouse && cargo run --release -p pilothouse --example backup_bench`

use std::process::{Command, Stdio};
use std::time::Instant;

use pilothouse_fleet::{SyncOptions, sync};
use pilothouse_testenv::start_fleet;
use serde_json::Value;

mod common;

use common::{Error, Serve};

const NAMESPACES: usize = 10;
const PER_KIND: usize = 40;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let fleet = start_fleet(&["bb-source", "bb-pilothouse", "bb-kubectl"]).await?;
    let (source, ours, theirs) = (&fleet[0], &fleet[1], &fleet[2]);
    let objects = objects();
    let count = objects.len() - NAMESPACES;
    let started = Instant::now();
    let outcome = sync(
        &source.client().await?,
        objects,
        &[],
        &SyncOptions::default(),
    )
    .await?;
    if !outcome.succeeded {
        return Err(format!("populating the source failed: {:?}", outcome.message).into());
    }
    println!(
        "source: {count} objects in {NAMESPACES} namespaces, synced in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let binary = common::binary()?;
    let serve = Serve::start(&data).await?;
    serve.register("source", source).await?;
    serve.register("target", ours).await?;
    let result = async {
        let namespaces: Vec<String> = (0..NAMESPACES).map(|n| format!("bench-{n}")).collect();
        let namespaces = namespaces.join(",");

        // Pilothouse
        let archive = dir.path().join("source.tar.zst");
        let started = Instant::now();
        run(Command::new(&binary)
            .args(["backup", "--clusters", "source", "--include-secrets", "--namespaces", &namespaces, "--out"])
            .arg(&archive)
            .arg("--data-dir")
            .arg(&data))?;
        let our_backup = started.elapsed();
        let archive_size = std::fs::metadata(&archive)?.len();
        let started = Instant::now();
        run(Command::new(&binary)
            .args(["restore", "--to", "target"])
            .arg(&archive)
            .arg("--data-dir")
            .arg(&data))?;
        let our_restore = started.elapsed();

        // kubectl
        let file = dir.path().join("source.json");
        let started = Instant::now();
        let output = source
            .kubectl()
            .args(["get", "namespaces,configmaps,secrets,serviceaccounts,services,deployments", "-A", "-o", "json"])
            .output()?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned().into());
        }
        let mut list: Value = serde_json::from_slice(&output.stdout)?;
        let items = list["items"].as_array_mut().ok_or("no items")?;
        items.retain(|item| {
            let namespace = item["metadata"]["namespace"]
                .as_str()
                .or_else(|| (item["kind"] == "Namespace").then(|| item["metadata"]["name"].as_str()).flatten())
                .unwrap_or_default();
            namespace.starts_with("bench-") && item["metadata"]["name"] != "kube-root-ca.crt"
        });
        for item in items.iter_mut() {
            for field in ["uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"] {
                if let Some(metadata) = item["metadata"].as_object_mut() {
                    metadata.remove(field);
                }
            }
            if let Some(object) = item.as_object_mut() {
                object.remove("status");
            }
            if let Some(spec) = item.pointer_mut("/spec").and_then(Value::as_object_mut) {
                spec.remove("clusterIP");
                spec.remove("clusterIPs");
            }
        }
        std::fs::write(&file, serde_json::to_vec(&list)?)?;
        let their_backup = started.elapsed();
        let file_size = std::fs::metadata(&file)?.len();
        let started = Instant::now();
        let output = theirs
            .kubectl()
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(&file)
            .stdout(Stdio::null())
            .output()?;
        if !output.status.success() {
            let errors = String::from_utf8_lossy(&output.stderr);
            return Err(errors.lines().take(5).collect::<Vec<_>>().join("\n").into());
        }
        let their_restore = started.elapsed();

        println!(
            "backup:  pilothouse {:.2} s (archive {:.0} KB, store included) vs kubectl get -o json + cleaning {:.2} s (file {:.0} KB): {:.1}x",
            our_backup.as_secs_f64(),
            archive_size as f64 / 1024.0,
            their_backup.as_secs_f64(),
            file_size as f64 / 1024.0,
            their_backup.as_secs_f64() / our_backup.as_secs_f64()
        );
        println!(
            "restore: pilothouse {:.2} s (verified, server-side apply) vs kubectl apply --server-side {:.2} s: {:.1}x",
            our_restore.as_secs_f64(),
            their_restore.as_secs_f64(),
            their_restore.as_secs_f64() / our_restore.as_secs_f64()
        );
        Ok::<(), Error>(())
    }
    .await;
    drop(serve);
    result
}

fn run(command: &mut Command) -> Result<(), Error> {
    let output = command.output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
        .into())
    }
}

/// 2,000 objects plus their 10 namespaces: per namespace 40 ConfigMaps,
/// Secrets, ServiceAccounts, Services and Deployments.
fn objects() -> Vec<Value> {
    pilothouse_testenv::bench_workloads(NAMESPACES, PER_KIND, PER_KIND)
}

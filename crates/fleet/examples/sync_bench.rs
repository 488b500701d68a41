//! Sync of 1,000 objects against `kubectl apply --server-side`, each into its
//! own fresh testenv cluster: the initial apply and a re-apply that changes
//! nothing.
//!
//! ```text
//! cargo run --release -p pilothouse-fleet --example sync_bench [concurrency]
//! ```

use std::time::{Duration, Instant};

use pilothouse_fleet::{ObjectAction, SyncOptions, SyncOutcome, sync};
use pilothouse_testenv::TestCluster;

use common::{kubectl_version, objects, seconds, write_objects};

mod common;

const SCRATCH: &str = "/tmp/fleet-helper/sync-bench";

fn count(outcome: &SyncOutcome, action: ObjectAction) -> usize {
    outcome
        .objects
        .iter()
        .filter(|o| o.action == action)
        .count()
}

fn kubectl_apply(cluster: &TestCluster, file: &str) -> Duration {
    let began = Instant::now();
    let output = cluster
        .kubectl()
        .args([
            "apply",
            "--server-side",
            "--field-manager=kubectl-bench",
            "--cache-dir",
            &format!("{SCRATCH}/kubectl-cache"),
            "-f",
            file,
        ])
        .output()
        .expect("kubectl runs");
    let took = began.elapsed();
    assert!(
        output.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    took
}

#[tokio::main]
async fn main() {
    let concurrency = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("concurrency is a number"))
        .unwrap_or(SyncOptions::default().concurrency);
    let desired = objects();
    println!(
        "{} objects; concurrency {concurrency}; kubectl: {}",
        desired.len(),
        kubectl_version()
    );
    let file = write_objects(SCRATCH, &desired);

    // ours, into a fresh cluster
    let options = SyncOptions {
        concurrency,
        ..SyncOptions::default()
    };
    let cluster = TestCluster::start("bench-pilothouse")
        .await
        .expect("a test cluster (run scripts/install-test-binaries.sh)");
    let client = cluster.client().await.expect("a client");
    let began = Instant::now();
    let initial = sync(&client, desired.clone(), &[], &options)
        .await
        .expect("sync");
    let ours_initial = began.elapsed();
    assert!(
        initial.succeeded,
        "initial sync failed: {:?}",
        initial.message
    );
    assert_eq!(count(&initial, ObjectAction::Created), desired.len());
    let began = Instant::now();
    let again = sync(&client, desired.clone(), &initial.inventory, &options)
        .await
        .expect("sync");
    let ours_again = began.elapsed();
    assert_eq!(count(&again, ObjectAction::Unchanged), desired.len());
    let forced = SyncOptions {
        force_apply: true,
        ..options.clone()
    };
    let began = Instant::now();
    let patched = sync(&client, desired.clone(), &again.inventory, &forced)
        .await
        .expect("sync");
    let ours_forced = began.elapsed();
    assert!(patched.succeeded);
    drop(cluster);

    // kubectl, into another fresh cluster
    let cluster = TestCluster::start("bench-kubectl")
        .await
        .expect("a test cluster (run scripts/install-test-binaries.sh)");
    let kubectl_initial = kubectl_apply(&cluster, &file);
    let kubectl_again = kubectl_apply(&cluster, &file);
    drop(cluster);

    println!();
    println!(
        "{:<34} {:>12} {:>12} {:>9}",
        "", "pilothouse", "kubectl", "speed-up"
    );
    for (what, ours, theirs) in [
        ("initial (all created)", ours_initial, kubectl_initial),
        ("no-change re-sync", ours_again, kubectl_again),
        (
            "re-sync, force_apply (all PATCHed)",
            ours_forced,
            kubectl_again,
        ),
    ] {
        println!(
            "{what:<34} {:>12} {:>12} {:>8.1}x",
            seconds(ours),
            seconds(theirs),
            theirs.as_secs_f64() / ours.as_secs_f64()
        );
    }
}

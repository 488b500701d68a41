//! Observation for drift detection of 1,000 synced objects against
//! `kubectl diff --server-side`, on one fresh testenv cluster: a first
//! observation (every object dry-run and read), a repeat one where nothing
//! changed (every object reused), and kubectl's server-side diff of the same
//! objects. Ours includes the comparison of each would-be object with the live
//! one (the bookkeeping fields and the status left out).
//!
//! ```text
//! cargo run --release -p pilothouse-fleet --example drift_bench [runs]
//! ```

use std::time::{Duration, Instant};

use pilothouse_fleet::{Observation, Observed, PreviousObservation, SyncOptions, observe, sync};
use pilothouse_testenv::TestCluster;
use serde_json::Value;

use common::{kubectl_version, objects, seconds, write_objects};

mod common;

const SCRATCH: &str = "/tmp/fleet-drift/drift-bench";

/// `(fresh, reused, drifted)`: the observations compared by the `drift`
/// crate, as a scan in `serve` does (with a unified diff for each drifted
/// object).
fn compare(observations: &[Observation]) -> (usize, usize, usize) {
    let (mut fresh, mut reused, mut drifted) = (0, 0, 0);
    for observation in observations {
        match &observation.state {
            Observed::Fresh { would_be, live } => {
                fresh += 1;
                let drift = match live {
                    Some(live) => pilothouse_drift::compare(would_be, live, &[]),
                    None => pilothouse_drift::missing(would_be),
                };
                if drift.state.is_drift() {
                    drifted += 1;
                    if let Some(live) = live {
                        std::hint::black_box(pilothouse_drift::unified_diff(would_be, live));
                    }
                }
            }
            Observed::Reused => reused += 1,
            Observed::Failed { message } => panic!("{} failed: {message}", observation.key),
        }
    }
    (fresh, reused, drifted)
}

/// Observes and compares; the time taken and the observations.
async fn scan(
    client: &kube::Client,
    desired: &[Value],
    previous: &[PreviousObservation],
    options: &SyncOptions,
) -> (Duration, Vec<Observation>, (usize, usize, usize)) {
    let began = Instant::now();
    let (observations, _) = observe(client, desired.to_vec(), &[], previous, options)
        .await
        .expect("observe");
    let counts = compare(&observations);
    (began.elapsed(), observations, counts)
}

fn kubectl_diff(cluster: &TestCluster, file: &str) -> Duration {
    let began = Instant::now();
    let output = cluster
        .kubectl()
        .args([
            "diff",
            "--server-side",
            "--field-manager=pilothouse",
            "--force-conflicts",
            "--cache-dir",
            &format!("{SCRATCH}/kubectl-cache"),
            "-f",
            file,
        ])
        .output()
        .expect("kubectl runs");
    let took = began.elapsed();
    // 0: no differences, 1: differences; anything else is an error
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "kubectl diff failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.code() == Some(1) {
        println!(
            "kubectl diff found differences ({} lines)",
            output.stdout.split(|b| *b == b'\n').count()
        );
    }
    took
}

fn best(times: &[Duration]) -> Duration {
    times.iter().copied().min().unwrap_or_default()
}

fn all(times: &[Duration]) -> String {
    times
        .iter()
        .map(|t| format!("{:.3}", t.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("runs is a number"))
        .unwrap_or(3);
    let desired = objects();
    let options = SyncOptions::default();
    println!(
        "{} objects; concurrency {}; best of {runs} runs; kubectl: {}",
        desired.len(),
        options.concurrency,
        kubectl_version()
    );
    let file = write_objects(SCRATCH, &desired);

    let cluster = TestCluster::start("bench-drift")
        .await
        .expect("a test cluster (run scripts/install-test-binaries.sh)");
    let client = cluster.client().await.expect("a client");
    let synced = sync(&client, desired.clone(), &[], &options)
        .await
        .expect("sync");
    assert!(synced.succeeded, "sync failed: {:?}", synced.message);

    let mut first = Vec::new();
    let mut observations = Vec::new();
    for _ in 0..runs {
        let (took, observed, counts) = scan(&client, &desired, &[], &options).await;
        assert_eq!(counts, (desired.len(), 0, 0), "first scan");
        first.push(took);
        observations = observed;
    }
    let previous: Vec<PreviousObservation> = observations
        .iter()
        .filter_map(Observation::to_previous)
        .collect();
    let mut repeat = Vec::new();
    for _ in 0..runs {
        let (took, _, counts) = scan(&client, &desired, &previous, &options).await;
        assert_eq!(counts, (0, desired.len(), 0), "repeat scan");
        repeat.push(took);
    }
    // the first run fills kubectl's discovery cache
    let kubectl: Vec<Duration> = (0..runs).map(|_| kubectl_diff(&cluster, &file)).collect();
    drop(cluster);

    println!();
    println!(
        "{:<40} {:>10} {:>10} {:>9}   runs (s)",
        "", "time", "kubectl", "speed-up"
    );
    let theirs = best(&kubectl);
    for (what, times) in [
        ("observe + compare, first (all fresh)", &first),
        ("observe + compare, repeat (all reused)", &repeat),
        ("kubectl diff --server-side", &kubectl),
    ] {
        let ours = best(times);
        println!(
            "{what:<40} {:>10} {:>10} {:>8.1}x   {}",
            seconds(ours),
            seconds(theirs),
            theirs.as_secs_f64() / ours.as_secs_f64(),
            all(times)
        );
    }
}

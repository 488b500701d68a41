//! Measures what the harness costs: start-up time of a fleet of three bare
//! clusters started in parallel, and apiserver memory per cluster.
//!
//! `cargo run --release -p pilothouse-testenv --example fleet_figures`

use std::time::Instant;

use pilothouse_testenv::{TestCluster, start_fleet};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let single = Instant::now();
    let one = TestCluster::start("single").await?;
    println!(
        "one cluster ready in {:.2}s",
        single.elapsed().as_secs_f64()
    );
    drop(one);

    let begin = Instant::now();
    let fleet = start_fleet(&["aks", "gke", "eks"]).await?;
    println!(
        "fleet of 3 ready in {:.2}s (in parallel)",
        begin.elapsed().as_secs_f64()
    );
    // let the apiservers settle (post-start hooks, caches) before measuring memory
    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
    for cluster in &fleet {
        let mib = cluster.apiserver_memory_bytes().unwrap_or(0) as f64 / (1 << 20) as f64;
        println!(
            "{}: started in {:.2}s, kube-apiserver RSS {mib:.0} MiB",
            cluster.name(),
            cluster.startup_time().as_secs_f64()
        );
    }
    Ok(())
}

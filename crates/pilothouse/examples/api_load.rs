//! Benchmark: `GET /api/v1/clusters?limit=100` with 1,000 registered clusters.
//!
//! Seeds a data directory with 1,000 clusters, starts the release `pilothouse
//! serve` on loopback, then (1) sends requests open-loop at a fixed rate (default
//! 500/s for 10 s) and reports p50/p90/p99/max latency, and (2) runs `wrk` (if
//! installed) for the saturated throughput. Everything stays on 127.0.0.1 and
//! stops by itself.
//!
//! `cargo build --release -p pilothouse && cargo run --release -p pilothouse --example api_load [RATE] [SECONDS]`

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pilothouse_store::{CheckRecord, Cloud, CloudSource, MasterKey, NewCluster, Scope, Store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args.next().map_or(Ok(500), |a| a.parse())?;
    let seconds: u64 = args.next().map_or(Ok(10), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data)?;

    let store = Store::open(&data.join("pilothouse.db")).await?;
    let key = MasterKey::load_or_create(&data.join("master.key"), None)?;
    let now = jiff::Timestamp::now().as_millisecond();
    for i in 0..1000 {
        let name = format!("cluster-{i:04}");
        let cloud = Cloud::ALL[i % 3];
        store
            .insert_cluster(&NewCluster {
                credentials: key.seal(
                    b"apiVersion: v1\nkind: Config\n",
                    &format!("cluster:{name}"),
                )?,
                name,
                cloud,
                sync_mode: pilothouse_store::SyncMode::Manual,
                cloud_source: CloudSource::Declared,
                server_url: format!("https://10.0.{}.{}:6443", i / 250, i % 250),
                context: "default".into(),
                labels: BTreeMap::from([(
                    "env".into(),
                    if i % 2 == 0 { "prod" } else { "staging" }.into(),
                )]),
                kubernetes_version: Some("v1.35.4".into()),
                check: Some(CheckRecord {
                    reachable: true,
                    kubernetes_version: Some("v1.35.4".into()),
                    error: None,
                    checked_at: now,
                    // far in the future: the background checker leaves them alone
                    next_check_at: now + 86_400_000,
                    consecutive_failures: 0,
                }),
            })
            .await?;
    }
    let (_, token) = store.create_token("bench", Scope::Read).await?;
    store.close().await;

    let binary = std::env::current_exe()?
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("pilothouse"))
        .ok_or("cannot locate the pilothouse binary")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut server = Command::new(&binary)
        .args(["serve", "--port", &port.to_string(), "--data-dir"])
        .arg(&data)
        .env("PILOTHOUSE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}/api/v1/clusters?limit=100");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(&url).bearer_auth(&token).send().await.is_err() {
        if Instant::now() > deadline {
            let _ = server.kill();
            return Err("serve did not come up".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // open loop: a request every 1/rate s, whatever the previous ones do
    let client = Arc::new(client);
    let mut ticker = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..rate * seconds {
        ticker.tick().await;
        let (client, url, token) = (Arc::clone(&client), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let ok = client
                .get(&url)
                .bearer_auth(&token)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|r| r.bytes());
            let ok = match ok {
                Some(body) => body.await.is_ok(),
                None => false,
            };
            (sent.elapsed(), ok)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (latency, ok) = task.await?;
        latencies.push(latency);
        failures += usize::from(!ok);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1e3
    };
    println!(
        "open loop: {} requests at {rate}/s over {elapsed:.1}s ({:.0}/s achieved), {failures} failed; \
         latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0)
    );

    match Command::new("wrk")
        .args(["-t2", "-c32", "-d10s", "--latency", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(&url)
        .output()
    {
        Ok(output) => {
            println!("wrk -t2 -c32 -d10s (saturated, closed loop):");
            print!("{}", String::from_utf8_lossy(&output.stdout));
        }
        Err(_) => {
            println!("wrk not installed (apt-get install wrk): saturated throughput not measured")
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    Ok(())
}

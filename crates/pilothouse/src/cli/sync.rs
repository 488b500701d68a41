//! `pilothouse sync NAME`: sync a cluster now and (by default) wait for the
//! result, exiting non-zero when the sync fails.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::client::{Output, ServerArgs, block_on, field, print, render_table};
use pilothouse_types::parse_duration;

/// Options of `pilothouse sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The cluster to sync.
    name: String,
    /// Queue the sync and return at once.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for the sync to finish.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

/// Queues a sync; waits for it unless `--no-wait`. Exit 1 when it failed.
pub fn run(args: SyncArgs) -> anyhow::Result<ExitCode> {
    let client = args.server.client()?;
    let mut failed = false;
    block_on(async {
        let name = &args.name;
        let queued = client
            .send(Method::POST, &format!("/api/v1/clusters/{name}/sync"), None)
            .await?;
        if args.no_wait {
            return print(&queued, args.output, |s| {
                format!("sync {} of {name} queued\n", field(s, "id"))
            });
        }
        let id = queued["id"].as_i64().unwrap_or_default();
        let started = Instant::now();
        let sync = loop {
            let sync = client
                .send(
                    Method::GET,
                    &format!("/api/v1/clusters/{name}/syncs/{id}"),
                    None,
                )
                .await?;
            if matches!(sync["status"].as_str(), Some("succeeded" | "failed")) {
                break sync;
            }
            if started.elapsed() > args.timeout {
                bail!(
                    "sync {id} of {name} is still {} after {}s",
                    field(&sync, "status"),
                    args.timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        failed = sync["status"] == "failed";
        print(&sync, args.output, table)
    })?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn table(sync: &Value) -> String {
    let revision = field(sync, "revision");
    let mut out = format!(
        "sync {} of {}: {} at revision {} (health: {})\n",
        field(sync, "id"),
        field(sync, "cluster"),
        field(sync, "status"),
        &revision[..revision.len().min(12)],
        field(sync, "health"),
    );
    if let Some(error) = sync["error"].as_str() {
        out.push_str(&format!("error: {error}\n"));
    }
    let rows: Vec<Vec<String>> = sync["objects"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|o| {
            vec![
                field(o, "kind"),
                field(o, "namespace"),
                field(o, "name"),
                field(o, "action"),
                field(o, "health"),
                o["message"]
                    .as_str()
                    .or(o["health_message"].as_str())
                    .unwrap_or("")
                    .to_owned(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        out.push_str(&render_table(
            &["KIND", "NAMESPACE", "NAME", "ACTION", "HEALTH", "MESSAGE"],
            &rows,
        ));
    }
    out
}

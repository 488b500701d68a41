//! `pilothouse drift [CLUSTER…]`: how clusters differ from Git, as readable
//! unified diffs or JSON. Exit 0 when every cluster is in sync, 1 when any
//! drifted, 2 when a scan could not tell (or the service failed) — usable
//! as a CI gate.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use reqwest::Method;
use serde_json::Value;

use super::client::{ServerArgs, block_on, field};

/// Options of `pilothouse drift`.
#[derive(Debug, Args)]
pub struct DriftArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The clusters to report on (default: every registered cluster).
    clusters: Vec<String>,
    /// Report the latest stored scan instead of scanning now.
    #[arg(long)]
    no_scan: bool,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = DriftOutput::Text)]
    output: DriftOutput,
}

/// How `pilothouse drift` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DriftOutput {
    /// A summary line per cluster and a unified diff per drifted object.
    Text,
    /// The reports as a JSON array.
    Json,
}

/// Scans (or reads) each cluster's drift and prints it.
pub fn run(args: DriftArgs) -> anyhow::Result<ExitCode> {
    let mut worst = 0u8;
    match scan_and_print(&args, &mut worst) {
        Ok(()) => Ok(ExitCode::from(worst)),
        Err(error) => {
            // 2, not 1: a CI gate must tell "could not check" from "drift"
            eprintln!("error: {error:#}");
            Ok(ExitCode::from(2))
        }
    }
}

fn scan_and_print(args: &DriftArgs, worst: &mut u8) -> anyhow::Result<()> {
    let client = args.server.client()?;
    block_on(async {
        let names = if args.clusters.is_empty() {
            let summary = client.send(Method::GET, "/api/v1/drift", None).await?;
            summary["clusters"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter_map(|c| c["cluster"].as_str().map(str::to_owned))
                .collect()
        } else {
            args.clusters.clone()
        };
        let mut reports = Vec::new();
        for name in &names {
            let report = if args.no_scan {
                client
                    .send(Method::GET, &format!("/api/v1/clusters/{name}/drift"), None)
                    .await
            } else {
                client
                    .send(
                        Method::POST,
                        &format!("/api/v1/clusters/{name}/drift/scan"),
                        None,
                    )
                    .await
            };
            let report = match report {
                Ok(report) => report,
                Err(error) => {
                    eprintln!("{name}: {error:#}");
                    *worst = 2;
                    continue;
                }
            };
            *worst = (*worst).max(match report["status"].as_str() {
                Some("in_sync") => 0,
                Some("drifted") => 1,
                _ => 2,
            });
            if args.output == DriftOutput::Text {
                print!("{}", text(&report));
            }
            reports.push(report);
        }
        if args.output == DriftOutput::Json {
            println!("{}", serde_json::to_string_pretty(&Value::Array(reports))?);
        }
        Ok(())
    })
}

/// A report as text: a summary line, then each object not in sync.
fn text(report: &Value) -> String {
    let counts = &report["counts"];
    let revision = field(report, "revision");
    let mut out = format!(
        "{}: {} at revision {} ({} in sync, {} modified, {} missing, {} extra, {} unknown)\n",
        field(report, "cluster"),
        field(report, "status").replace('_', " "),
        &revision[..revision.len().min(12)],
        counts["in_sync"],
        counts["modified"],
        counts["missing"],
        counts["extra"],
        counts["unknown"],
    );
    if let Some(error) = report["error"].as_str() {
        out.push_str(&format!("  error: {error}\n"));
    }
    for object in report["objects"].as_array().map_or(&[][..], Vec::as_slice) {
        let namespace = object["namespace"]
            .as_str()
            .map(|ns| format!("{ns}/"))
            .unwrap_or_default();
        let since = object["since"]
            .as_str()
            .map(|s| format!(" since {s}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "\n{} {} {namespace}{}{since}\n",
            field(object, "state"),
            field(object, "kind"),
            field(object, "name"),
        ));
        if let Some(message) = object["message"].as_str() {
            out.push_str(&format!("  {message}\n"));
        }
        if let Some(unified) = object["unified"].as_str().filter(|u| !u.is_empty()) {
            out.push_str(unified);
            if !unified.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

//! `pilothouse incidents …`: pod and node incidents across the fleet, with
//! the API's filters; one incident with its captured logs and events;
//! acknowledging one.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use super::client::{Output, ServerArgs, block_on, field, print, render_table};
use pilothouse_types::parse_duration;

/// `pilothouse incidents`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct IncidentsArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    filters: Filters,
    #[command(subcommand)]
    command: Option<IncidentsCommand>,
}

/// The filters of the list (the API's).
#[derive(Debug, Args)]
struct Filters {
    /// Only this cluster.
    #[arg(long)]
    cluster: Option<String>,
    /// Only this namespace.
    #[arg(long, short)]
    namespace: Option<String>,
    /// Only this workload (by name).
    #[arg(long)]
    workload: Option<String>,
    /// Only this reason (e.g. OOMKilled, CrashLoopBackOff).
    #[arg(long)]
    reason: Option<String>,
    /// Only `open`, `resolved` or `unknown` incidents.
    #[arg(long)]
    status: Option<String>,
    /// Only incidents seen since: an RFC 3339 time or a duration ago (30m, 2h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Only incidents last seen before: an RFC 3339 time or a duration ago.
    #[arg(long)]
    until: Option<String>,
    /// At most this many incidents (pages are followed).
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Debug, Subcommand)]
enum IncidentsCommand {
    /// One incident with the logs and events captured at its first occurrence.
    Show {
        /// The incident's id.
        id: i64,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Acknowledge an incident.
    Ack {
        /// The incident's id.
        id: i64,
    },
}

/// Runs `incidents` (the list) or one of its subcommands.
pub fn run(args: IncidentsArgs) -> anyhow::Result<ExitCode> {
    let client = args.server.client()?;
    block_on(async move {
        match args.command {
            None => {
                let incidents = list(&client, &args.filters).await?;
                print(&Value::Array(incidents), args.filters.output, table)
            }
            Some(IncidentsCommand::Show { id, output }) => {
                let incident = client
                    .send(Method::GET, &format!("/api/v1/incidents/{id}"), None)
                    .await?;
                print(&incident, output, show)
            }
            Some(IncidentsCommand::Ack { id }) => {
                let incident = client
                    .send(Method::POST, &format!("/api/v1/incidents/{id}/ack"), None)
                    .await?;
                println!(
                    "incident {id} acknowledged by {} at {}",
                    field(&incident, "acked_by"),
                    field(&incident, "acked_at")
                );
                Ok(())
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Reads pages until `limit` incidents or the last page.
async fn list(client: &super::client::ApiClient, filters: &Filters) -> anyhow::Result<Vec<Value>> {
    let mut query: Vec<(&str, String)> = Vec::new();
    for (name, value) in [
        ("cluster", &filters.cluster),
        ("namespace", &filters.namespace),
        ("workload", &filters.workload),
        ("reason", &filters.reason),
        ("status", &filters.status),
    ] {
        if let Some(value) = value {
            query.push((name, value.clone()));
        }
    }
    if let Some(since) = &filters.since {
        query.push(("since", time_arg("--since", since)?));
    }
    if let Some(until) = &filters.until {
        query.push(("until", time_arg("--until", until)?));
    }
    let mut incidents = Vec::new();
    let mut after: Option<String> = None;
    while incidents.len() < filters.limit {
        let page_size = (filters.limit - incidents.len()).min(500);
        let mut pairs = query.clone();
        pairs.push(("limit", page_size.to_string()));
        if let Some(after) = &after {
            pairs.push(("after", after.clone()));
        }
        let encoded = reqwest::Url::parse_with_params("http://service/", &pairs)
            .context("encoding the filters")?
            .query()
            .unwrap_or_default()
            .to_owned();
        let page = client
            .send(Method::GET, &format!("/api/v1/incidents?{encoded}"), None)
            .await?;
        if let Some(items) = page["incidents"].as_array() {
            incidents.extend(items.iter().cloned());
        }
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    Ok(incidents)
}

/// An RFC 3339 time as given, or a duration ago as RFC 3339.
fn time_arg(flag: &str, text: &str) -> anyhow::Result<String> {
    if text.parse::<jiff::Timestamp>().is_ok() {
        return Ok(text.to_owned());
    }
    let ago: Duration = parse_duration(text).map_err(|message| {
        anyhow::anyhow!("{flag}: {message}, or an RFC 3339 time such as 2026-11-23T10:00:00Z")
    })?;
    let ago = jiff::SignedDuration::try_from(ago).context("the duration is too long")?;
    Ok(jiff::Timestamp::now()
        .checked_sub(ago)
        .context("the duration is too long")?
        .to_string())
}

fn table(value: &Value) -> String {
    let rows: Vec<Vec<String>> = value
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|incident| {
            let workload = format!(
                "{}/{}",
                field(incident, "workload_kind"),
                field(incident, "workload")
            );
            vec![
                field(incident, "id"),
                field(incident, "cluster"),
                field(incident, "namespace"),
                workload,
                field(incident, "container"),
                field(incident, "reason"),
                field(incident, "status"),
                field(incident, "count"),
                field(incident, "last_seen"),
            ]
        })
        .collect();
    render_table(
        &[
            "ID",
            "CLUSTER",
            "NAMESPACE",
            "WORKLOAD",
            "CONTAINER",
            "REASON",
            "STATUS",
            "COUNT",
            "LAST SEEN",
        ],
        &rows,
    )
}

fn show(incident: &Value) -> String {
    let mut out = String::new();
    let line = |out: &mut String, label: &str, key: &str| {
        out.push_str(&format!("{label:<12}{}\n", field(incident, key)));
    };
    line(&mut out, "Incident:", "id");
    line(&mut out, "Cluster:", "cluster");
    line(&mut out, "Namespace:", "namespace");
    out.push_str(&format!(
        "{:<12}{}/{}\n",
        "Workload:",
        field(incident, "workload_kind"),
        field(incident, "workload")
    ));
    line(&mut out, "Container:", "container");
    line(&mut out, "Reason:", "reason");
    line(&mut out, "Severity:", "severity");
    line(&mut out, "Status:", "status");
    line(&mut out, "Count:", "count");
    line(&mut out, "Reopened:", "reopen_count");
    line(&mut out, "First seen:", "first_seen");
    line(&mut out, "Last seen:", "last_seen");
    line(&mut out, "Exit code:", "exit_code");
    line(&mut out, "Message:", "message");
    line(&mut out, "Image:", "image");
    line(&mut out, "Revision:", "revision");
    let pods: Vec<&str> = incident["pods"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(Value::as_str)
        .collect();
    out.push_str(&format!("{:<12}{}\n", "Pods:", pods.join(", ")));
    if !incident["acked_by"].is_null() {
        out.push_str(&format!(
            "{:<12}{} at {}\n",
            "Acked:",
            field(incident, "acked_by"),
            field(incident, "acked_at")
        ));
    }
    out.push_str("\nEvents:\n");
    match incident["events"].as_array() {
        Some(events) if !events.is_empty() => {
            for event in events {
                out.push_str(&format!(
                    "  {}  {}  {} (x{})  {}\n",
                    field(event, "last_seen"),
                    field(event, "type"),
                    field(event, "reason"),
                    field(event, "count"),
                    field(event, "message")
                ));
            }
        }
        _ => out.push_str("  (none captured)\n"),
    }
    out.push_str("\nLogs:\n");
    match incident["logs"].as_str() {
        Some(logs) if !logs.is_empty() => {
            for log_line in logs.lines() {
                out.push_str("  ");
                out.push_str(log_line);
                out.push('\n');
            }
        }
        _ => out.push_str("  (none captured)\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        assert_eq!(
            time_arg("--since", "2026-11-23T10:00:00Z").unwrap(),
            "2026-11-23T10:00:00Z"
        );
        let ago: jiff::Timestamp = time_arg("--since", "2h").unwrap().parse().unwrap();
        let expected = jiff::Timestamp::now().as_second() - 7200;
        assert!((ago.as_second() - expected).abs() < 5);
        let error = time_arg("--since", "yesterday").unwrap_err().to_string();
        assert!(error.contains("--since"), "{error}");
    }
}

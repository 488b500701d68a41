//! `pilothouse cluster …`: register and inspect clusters through the service.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::client::{Output, ServerArgs, block_on, field, print, render_table};

/// `pilothouse cluster`
#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Register a cluster from a kubeconfig file.
    Add {
        /// The cluster's name (a DNS-1123 label).
        name: String,
        /// The kubeconfig file (its credentials must be embedded, not file paths).
        #[arg(long)]
        kubeconfig: PathBuf,
        /// The context to use (default: the current context).
        #[arg(long)]
        context: Option<String>,
        /// aks, gke, eks or other (default: detected).
        #[arg(long)]
        cloud: Option<String>,
        /// A label, `key=value` (repeatable).
        #[arg(long = "label", short = 'l')]
        labels: Vec<String>,
        /// manual, auto (default) or self_heal.
        #[arg(long)]
        sync_mode: Option<String>,
        /// Commit gitops/clusters/NAME/kustomization.yaml (on the cloud's
        /// overlay) to the desired-state repository first.
        #[arg(long)]
        scaffold: bool,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// List clusters.
    #[command(alias = "ls")]
    List {
        /// Only this cloud.
        #[arg(long)]
        cloud: Option<String>,
        /// Only clusters with these labels: `key=value[,key=value]`.
        #[arg(long = "selector", short = 'l')]
        selector: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show one cluster.
    Get {
        /// The cluster's name.
        name: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Re-test a cluster's connectivity now.
    Check {
        /// The cluster's name.
        name: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Remove a cluster and its stored credentials.
    #[command(alias = "remove")]
    Rm {
        /// The cluster's name.
        name: String,
    },
}

/// Runs a `cluster` subcommand.
pub fn run(args: ClusterArgs) -> anyhow::Result<ExitCode> {
    let client = args.server.client()?;
    block_on(async move {
        match args.command {
            ClusterCommand::Add {
                name,
                kubeconfig,
                context,
                cloud,
                labels,
                sync_mode,
                scaffold,
                output,
            } => {
                let text = std::fs::read_to_string(&kubeconfig)
                    .with_context(|| format!("reading {}", kubeconfig.display()))?;
                let mut label_map = serde_json::Map::new();
                for label in labels {
                    let (key, value) = label
                        .split_once('=')
                        .with_context(|| format!("label `{label}` is not key=value"))?;
                    label_map.insert(key.to_owned(), json!(value));
                }
                let body = json!({"name": name, "kubeconfig": text, "context": context, "cloud": cloud,
                    "labels": label_map, "sync_mode": sync_mode, "scaffold": scaffold});
                let cluster = client
                    .send(Method::POST, "/api/v1/clusters", Some(&body))
                    .await?;
                print(&cluster, output, |c| table(std::slice::from_ref(c)))
            }
            ClusterCommand::List {
                cloud,
                selector,
                output,
            } => {
                let mut items = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let mut query = vec![("limit".to_owned(), "500".to_owned())];
                    query.extend(cloud.clone().map(|c| ("cloud".to_owned(), c)));
                    query.extend(selector.clone().map(|s| ("labelSelector".to_owned(), s)));
                    query.extend(after.take().map(|a| ("after".to_owned(), a)));
                    let path = format!("/api/v1/clusters?{}", encode_query(&query));
                    let page = client.send(Method::GET, &path, None).await?;
                    items.extend(page["items"].as_array().cloned().unwrap_or_default());
                    match page["next"].as_str() {
                        Some(next) => after = Some(next.to_owned()),
                        None => break,
                    }
                }
                print(&Value::Array(items), output, |v| {
                    table(v.as_array().map_or(&[], Vec::as_slice))
                })
            }
            ClusterCommand::Get { name, output } => {
                let cluster = client
                    .send(Method::GET, &format!("/api/v1/clusters/{name}"), None)
                    .await?;
                print(&cluster, output, |c| table(std::slice::from_ref(c)))
            }
            ClusterCommand::Check { name, output } => {
                let cluster = client
                    .send(
                        Method::POST,
                        &format!("/api/v1/clusters/{name}/check"),
                        None,
                    )
                    .await?;
                print(&cluster, output, |c| table(std::slice::from_ref(c)))
            }
            ClusterCommand::Rm { name } => {
                client
                    .send(Method::DELETE, &format!("/api/v1/clusters/{name}"), None)
                    .await?;
                println!("cluster {name} removed");
                Ok(())
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

fn table(clusters: &[Value]) -> String {
    let rows: Vec<Vec<String>> = clusters
        .iter()
        .map(|c| {
            vec![
                field(c, "name"),
                field(c, "cloud"),
                field(c, "kubernetes_version"),
                field(c, "reachability"),
                field(&c["sync"], "status"),
                field(&c["sync"], "health"),
                field(c, "last_check_at"),
                field(c, "server_url"),
            ]
        })
        .collect();
    render_table(
        &[
            "NAME",
            "CLOUD",
            "VERSION",
            "REACHABILITY",
            "SYNC",
            "HEALTH",
            "LAST CHECK",
            "SERVER",
        ],
        &rows,
    )
}

/// `application/x-www-form-urlencoded` query text.
fn encode_query(pairs: &[(String, String)]) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        let query = encode_query(&[(
            "labelSelector".into(),
            "app.kubernetes.io/name=x,env=prod".into(),
        )]);
        assert_eq!(
            query,
            "labelSelector=app.kubernetes.io%2Fname%3Dx%2Cenv%3Dprod"
        );
    }
}

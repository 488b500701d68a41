//! The CLI's HTTP client for a running Pilothouse service, and output formats.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::Value;

/// Where the service is and how to authenticate to it.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The Pilothouse service URL.
    #[arg(
        long,
        env = "PILOTHOUSE_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    /// API token; default: `PILOTHOUSE_TOKEN`, else the admin token in the data directory.
    #[arg(long, env = "PILOTHOUSE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// The service's data directory (for its admin token).
    #[arg(
        long,
        env = "PILOTHOUSE_DATA_DIR",
        default_value = ".pilothouse",
        global = true
    )]
    data_dir: PathBuf,
}

/// How to print results.
#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Output {
    /// A table for people.
    #[default]
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// A connection to the API.
pub struct ApiClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl ServerArgs {
    /// A client for the configured server and token.
    pub fn client(&self) -> anyhow::Result<ApiClient> {
        let token = match &self.token {
            Some(token) => token.clone(),
            None => {
                let path = self.data_dir.join("admin.token");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!("no API token: set PILOTHOUSE_TOKEN or --token (or run next to the data directory; {} is not readable)", path.display())
                    })?
                    .trim()
                    .to_owned()
            }
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        Ok(ApiClient {
            base: self.server.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }
}

impl ApiClient {
    /// Sends a request; returns the JSON body (Null for 204), or an error carrying the server's problem detail.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the Pilothouse service at {}", self.base))?;
        let status = response.status();
        let bytes = response.bytes().await.context("reading the response")?;
        if status.is_success() {
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes)
                .context("the service answered something that is not JSON");
        }
        let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let detail = problem["detail"].as_str().unwrap_or("no detail");
        match problem["field"].as_str() {
            Some(field) => bail!("{status}: {detail} (field: {field})"),
            None => bail!("{status}: {detail}"),
        }
    }
}

/// Prints a value as JSON or YAML; `table` is used for the table format.
pub fn print(
    value: &Value,
    output: Output,
    table: impl FnOnce(&Value) -> String,
) -> anyhow::Result<()> {
    let text = match output {
        Output::Table => table(value),
        Output::Json => serde_json::to_string_pretty(value)? + "\n",
        Output::Yaml => serde_saphyr::to_string(value)?,
    };
    print!("{text}");
    Ok(())
}

/// Left-aligned columns separated by three spaces.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect::<Vec<_>>()
            .join("   ");
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        out.push_str(&line(row.clone()));
    }
    out
}

/// A string field of a JSON object, or `-`.
pub fn field(value: &Value, key: &str) -> String {
    match &value[key] {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// Runs an async CLI action on a small runtime.
pub fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(
    future: F,
) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(future)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let table = render_table(
            &["NAME", "CLOUD"],
            &[
                vec!["a-long-name".into(), "aks".into()],
                vec!["b".into(), "gke".into()],
            ],
        );
        assert_eq!(
            table,
            "NAME          CLOUD\na-long-name   aks\nb             gke\n"
        );
    }
}

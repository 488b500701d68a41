//! `pilothouse token …`: API tokens.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;

use super::client::{Output, ServerArgs, block_on, field, print, render_table};

/// `pilothouse token`
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; its secret is printed once.
    Create {
        /// `read` or `write`.
        #[arg(long, default_value = "read")]
        scope: String,
        /// A name to recognise it by.
        #[arg(long, default_value = "cli")]
        name: String,
    },
    /// List tokens (never their secrets).
    List {
        /// Output format.
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id.
        id: i64,
    },
}

/// Runs a `token` subcommand.
pub fn run(args: TokenArgs) -> anyhow::Result<ExitCode> {
    let client = args.server.client()?;
    block_on(async move {
        match args.command {
            TokenCommand::Create { scope, name } => {
                let created = client
                    .send(
                        Method::POST,
                        "/api/v1/tokens",
                        Some(&json!({"name": name, "scope": scope})),
                    )
                    .await?;
                println!("{}", field(&created, "secret"));
                Ok(())
            }
            TokenCommand::List { output } => {
                let tokens = client.send(Method::GET, "/api/v1/tokens", None).await?;
                print(&tokens, output, |v| {
                    let rows: Vec<Vec<String>> = v
                        .as_array()
                        .map_or(&[][..], Vec::as_slice)
                        .iter()
                        .map(|t| vec![field(t, "id"), field(t, "name"), field(t, "scope")])
                        .collect();
                    render_table(&["ID", "NAME", "SCOPE"], &rows)
                })
            }
            TokenCommand::Revoke { id } => {
                client
                    .send(Method::DELETE, &format!("/api/v1/tokens/{id}"), None)
                    .await?;
                println!("token {id} revoked");
                Ok(())
            }
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

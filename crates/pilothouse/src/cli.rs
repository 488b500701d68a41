//! Command-line interface: one subcommand per capability.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod backup;
mod client;
mod cluster;
mod drift;
mod incidents;
mod render;
mod serve;
mod sync;
mod token;

/// Pilothouse: multi-cluster GitOps monitoring control plane.
///
/// Renders each cluster's desired state from Git, syncs it, detects drift,
/// aggregates pod errors into incidents, and backs up and migrates clusters.
#[derive(Debug, Parser)]
#[command(name = "pilothouse", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Pilothouse service (REST API, sync, drift and pod watchers).
    Serve(Box<serve::ServeArgs>),
    /// Render a directory's desired state (a kustomization) to YAML on stdout.
    Render(render::RenderArgs),
    /// Register and inspect clusters (talks to a running service).
    Cluster(cluster::ClusterArgs),
    /// Manage API tokens (talks to a running service).
    Token(token::TokenArgs),
    /// Sync a cluster with Git now and wait for the result (exit 1 if it failed).
    Sync(sync::SyncArgs),
    /// Show how clusters differ from Git (exit 0 in sync, 1 drift, 2 error).
    Drift(drift::DriftArgs),
    /// List, show and acknowledge pod and node incidents across the fleet.
    Incidents(incidents::IncidentsArgs),
    /// Write one archive of the store and, on request, clusters' live objects.
    Backup(backup::BackupArgs),
    /// Verify an archive, then restore the store or a cluster's objects.
    Restore(backup::RestoreArgs),
    /// Move namespaces from one cluster to another, with its cloud's storage classes.
    Migrate(backup::MigrateArgs),
}

impl Cli {
    /// Runs the chosen command and turns its outcome into the process exit code.
    pub fn run(self) -> ExitCode {
        let outcome = match self.command {
            Command::Serve(args) => serve::run(*args),
            Command::Render(args) => render::run(args),
            Command::Cluster(args) => cluster::run(args),
            Command::Token(args) => token::run(args),
            Command::Sync(args) => sync::run(args),
            Command::Drift(args) => drift::run(args),
            Command::Incidents(args) => incidents::run(args),
            Command::Backup(args) => backup::backup(args),
            Command::Restore(args) => backup::restore(args),
            Command::Migrate(args) => backup::migrate(args),
        };
        match outcome {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        }
    }
}

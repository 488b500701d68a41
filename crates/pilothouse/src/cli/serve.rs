//! `pilothouse serve`: the long-running service.
//!
//! Zero configuration: a data directory (default `./.pilothouse`) holds the
//! SQLite store, the master key (0600) that seals cluster credentials, and the
//! first admin API token (0600, printed once when it is created).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use pilothouse_api::{AppState, HttpMetrics, Limits};
use pilothouse_fleet::{CheckSettings, KubeconfigPolicy};
use pilothouse_store::{MasterKey, Scope, Store};
use tracing_subscriber::EnvFilter;

use super::duration::parse_duration;

/// Options of `pilothouse serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TCP port to listen on.
    #[arg(long, env = "PILOTHOUSE_PORT", default_value_t = 8080)]
    port: u16,
    /// Address to bind.
    #[arg(long, env = "PILOTHOUSE_BIND", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// Directory for the database, the master key and the first admin token.
    #[arg(long, env = "PILOTHOUSE_DATA_DIR", default_value = ".pilothouse")]
    data_dir: PathBuf,
    /// Interval between connectivity checks of each reachable cluster (e.g. 60s, 5m).
    #[arg(long, env = "PILOTHOUSE_CHECK_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    check_interval: Duration,
    /// Time limit of one connectivity check.
    #[arg(long, env = "PILOTHOUSE_CHECK_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    check_timeout: Duration,
    /// Exec credential plugins that uploaded kubeconfigs may use (comma-separated).
    #[arg(
        long,
        env = "PILOTHOUSE_ALLOWED_EXEC",
        value_delimiter = ',',
        default_value = "aws,aws-iam-authenticator,gke-gcloud-auth-plugin,kubelogin"
    )]
    allowed_exec: Vec<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "PILOTHOUSE_MAX_BODY_BYTES", default_value_t = 2 << 20)]
    max_body_bytes: usize,
    /// Log format: text or json.
    #[arg(long, env = "PILOTHOUSE_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

/// Starts the service and runs until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let filter =
        EnvFilter::try_from_env("PILOTHOUSE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // logs go to stderr: stdout carries only what a person must read (the first admin token)
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    create_private_dir(&args.data_dir)?;
    let env_key = std::env::var("PILOTHOUSE_MASTER_KEY").ok();
    let master_key =
        MasterKey::load_or_create(&args.data_dir.join("master.key"), env_key.as_deref())
            .context("loading the master key")?;
    let store = Store::open(&args.data_dir.join("pilothouse.db"))
        .await
        .context("opening the store")?;
    ensure_admin_token(&store, &args.data_dir).await?;

    let checks = CheckSettings {
        timeout: args.check_timeout,
        interval: args.check_interval,
        ..CheckSettings::default()
    };
    let state = AppState {
        store: store.clone(),
        master_key: Arc::new(master_key),
        kubeconfig_policy: Arc::new(KubeconfigPolicy {
            allowed_exec_commands: args.allowed_exec.clone(),
        }),
        checks: Arc::new(checks.clone()),
        metrics: Arc::new(HttpMetrics::default()),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let checker = tokio::spawn(pilothouse_fleet::run_checks(
        store.clone(),
        Arc::clone(&state.master_key),
        Arc::clone(&state.kubeconfig_policy),
        checks,
        Duration::from_secs(1),
        stopped,
    ));

    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let limits = Limits {
        body_bytes: args.max_body_bytes,
        ..Limits::default()
    };
    tracing::info!(%local, data_dir = %args.data_dir.display(), version = env!("CARGO_PKG_VERSION"), "pilothouse listening");
    axum::serve(listener, pilothouse_api::router(state, &limits))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;

    let _ = stop.send(true);
    if tokio::time::timeout(Duration::from_secs(10), checker)
        .await
        .is_err()
    {
        tracing::warn!("cluster checks did not stop within 10s");
    }
    store.close().await;
    tracing::info!("pilothouse stopped");
    Ok(())
}

/// Creates the first admin token when the store has none: written once to
/// `DATA/admin.token` (0600) and printed once.
async fn ensure_admin_token(store: &Store, data_dir: &Path) -> anyhow::Result<()> {
    if store.count_tokens().await? > 0 {
        return Ok(());
    }
    let (_, secret) = store.create_token("admin", Scope::Write).await?;
    let path = data_dir.join("admin.token");
    write_private(&path, &format!("{secret}\n"))?;
    println!(
        "Created the first admin API token (write scope), also saved to {}:\n{secret}",
        path.display()
    );
    Ok(())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("restricting {}", dir.display()))?;
    }
    Ok(())
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

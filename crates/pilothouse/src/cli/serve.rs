//! `pilothouse serve`: the long-running service.
//!
//! Zero configuration: a data directory (default `./.pilothouse`) holds the
//! SQLite store, the master key (0600) that seals cluster credentials, and the
//! first admin API token (0600, printed once when it is created), and the
//! Git mirror and checkouts of the desired-state repository (`git/`). The
//! desired-state repository defaults to the Git checkout `serve` is started
//! in, else the one this binary was built from (either must hold `gitops/`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use pilothouse_api::{AppState, HttpMetrics, Limits, OutboundPolicy, ServerOptions, ServerTls};
use pilothouse_fleet::{CheckSettings, ExecServerPattern, KubeconfigPolicy, WatchOptions};
use pilothouse_incidents::{DetectConfig, NamePattern, Reason};
use pilothouse_notify::DestinationPolicy;
use pilothouse_store::{MasterKey, RepositorySettings, Scope, SecretChange, Store};
use tracing_subscriber::EnvFilter;

use crate::checks::Checker;
use crate::controller::{ControlHandle, Controller, ControllerSettings};
use crate::monitor::{Monitor, MonitorHandle, MonitorSettings};
use crate::tasks::millis;
use pilothouse_types::parse_duration;

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
    /// The API servers an exec plugin may hand its credentials to, as
    /// PLUGIN=https://HOST[:PORT] (`*` stands for one or more DNS labels, or
    /// any port). Patterns given for a plugin replace its built-in ones
    /// (aws, aws-iam-authenticator: https://*.eks.amazonaws.com; kubelogin:
    /// https://*.azmk8s.io; gke-gcloud-auth-plugin: https://*.gke.goog,
    /// https://connectgateway.googleapis.com); IP endpoints only when listed.
    /// Repeatable.
    #[arg(long, env = "PILOTHOUSE_EXEC_SERVER_PATTERNS", value_delimiter = ',')]
    exec_server_pattern: Vec<ExecServerPattern>,
    /// A directory below which a local path or file:// URL may be set as the
    /// desired-state repository through the API (repeatable). Without it,
    /// local repositories come from --repo only.
    #[arg(long, env = "PILOTHOUSE_ALLOW_LOCAL_REPO_ROOTS", value_delimiter = ',')]
    allow_local_repo_root: Vec<PathBuf>,
    /// A loopback, private or link-local network receivers may target, as a
    /// CIDR such as 10.20.0.0/16 (repeatable). Without it, receivers reach
    /// public addresses only.
    #[arg(
        long,
        env = "PILOTHOUSE_ALLOW_RECEIVER_NETWORKS",
        value_delimiter = ','
    )]
    allow_receiver_network: Vec<pilothouse_notify::IpNet>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key).
    #[arg(long, env = "PILOTHOUSE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "PILOTHOUSE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Longest a client may take to send a request's headers (from when it
    /// connects, or from the first byte of a further request).
    #[arg(long, env = "PILOTHOUSE_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    header_read_timeout: Duration,
    /// A connection that carries nothing for this long is closed.
    #[arg(long, env = "PILOTHOUSE_IDLE_TIMEOUT", default_value = "120s", value_parser = parse_duration)]
    idle_timeout: Duration,
    /// Connections open at once; more wait to be accepted.
    #[arg(long, env = "PILOTHOUSE_MAX_CONNECTIONS", default_value_t = 1024)]
    max_connections: usize,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "PILOTHOUSE_MAX_BODY_BYTES", default_value_t = 2 << 20)]
    max_body_bytes: usize,
    /// The desired-state repository: an absolute path, `file://`, `https://`
    /// or SSH URL. Default: the stored setting, else this repository's own
    /// checkout. Credentials and the webhook secret are set through
    /// `PUT /api/v1/repository`, never on the command line.
    #[arg(long, env = "PILOTHOUSE_REPO")]
    repo: Option<String>,
    /// The branch of the desired-state repository to follow.
    #[arg(long, env = "PILOTHOUSE_REPO_BRANCH")]
    repo_branch: Option<String>,
    /// Sub-path inside the repository holding manifests/, overlays/ and gitops/.
    #[arg(long, env = "PILOTHOUSE_REPO_PATH")]
    repo_path: Option<String>,
    /// Interval between polls of the repository (jitter of up to 10% is added).
    #[arg(long, env = "PILOTHOUSE_POLL_INTERVAL", value_parser = parse_duration)]
    poll_interval: Option<Duration>,
    /// Clusters synced at once.
    #[arg(long, env = "PILOTHOUSE_SYNC_CONCURRENCY", default_value_t = 4)]
    sync_concurrency: usize,
    /// Time limit of each call to a cluster during a sync.
    #[arg(long, env = "PILOTHOUSE_SYNC_CALL_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    sync_call_timeout: Duration,
    /// First retry delay after a failed sync (doubles with each failure).
    #[arg(long, env = "PILOTHOUSE_SYNC_RETRY", default_value = "5s", value_parser = parse_duration)]
    sync_retry: Duration,
    /// Longest retry delay after failed syncs.
    #[arg(long, env = "PILOTHOUSE_SYNC_RETRY_MAX", default_value = "5m", value_parser = parse_duration)]
    sync_retry_max: Duration,
    /// How often clusters in self-heal mode are compared with what was applied.
    #[arg(long, env = "PILOTHOUSE_SELF_HEAL_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    self_heal_interval: Duration,
    /// How often each cluster is scanned for drift (plus up to 10% jitter).
    #[arg(long, env = "PILOTHOUSE_DRIFT_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    drift_interval: Duration,
    /// For every kustomization of the desired-state repository, as
    /// kubectl's flag: `LoadRestrictionsNone` lets one read files outside
    /// its directory (cluster-api templates need it); reads never leave the
    /// repository's checkout either way.
    #[arg(long, env = "PILOTHOUSE_LOAD_RESTRICTOR", default_value = "LoadRestrictionsRootOnly", value_parser = super::render::parse_load_restrictor)]
    load_restrictor: pilothouse_render::LoadRestrictions,
    /// How often health is re-assessed while a cluster is not healthy.
    #[arg(long, env = "PILOTHOUSE_HEALTH_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    health_interval: Duration,
    /// How long a workload must stay healthy before its incident resolves.
    #[arg(long, env = "PILOTHOUSE_INCIDENT_HOLD_DOWN", default_value = "2m", value_parser = parse_duration)]
    incident_hold_down: Duration,
    /// How long a pod may stay Pending and unschedulable before it is an
    /// incident (so cluster autoscaler scale-ups do not alarm).
    #[arg(long, env = "PILOTHOUSE_PENDING_THRESHOLD", default_value = "5m", value_parser = parse_duration)]
    pending_threshold: Duration,
    /// Resolved incidents and finished notification deliveries older than
    /// this are purged.
    #[arg(long, env = "PILOTHOUSE_INCIDENT_RETENTION", default_value = "30d", value_parser = parse_duration)]
    incident_retention: Duration,
    /// Namespaces whose pods are not watched for errors (repeatable, or
    /// comma-separated).
    #[arg(long, env = "PILOTHOUSE_IGNORE_NAMESPACES", value_delimiter = ',')]
    ignore_namespace: Vec<String>,
    /// Pods whose name matches this regex are ignored (repeatable).
    #[arg(long, env = "PILOTHOUSE_IGNORE_PODS", value_delimiter = ',')]
    ignore_pod: Vec<String>,
    /// Containers with this name are ignored (repeatable, or comma-separated).
    #[arg(long, env = "PILOTHOUSE_IGNORE_CONTAINERS", value_delimiter = ',')]
    ignore_container: Vec<String>,
    /// Reasons that never make an incident, e.g. Restarted (repeatable, or
    /// comma-separated).
    #[arg(long, env = "PILOTHOUSE_IGNORE_REASONS", value_delimiter = ',')]
    ignore_reason: Vec<String>,
    /// The longest wait between two tries of a notification a receiver did
    /// not take (tries start 5 s apart and double).
    #[arg(long, env = "PILOTHOUSE_NOTIFY_RETRY_MAX", default_value = "10m", value_parser = parse_duration)]
    notify_retry_max: Duration,
    /// How long one watch request stays open before it is resumed.
    #[arg(long, env = "PILOTHOUSE_WATCH_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    watch_timeout: Duration,
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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
    // held until the service stops: one service per data directory, and no
    // store restore under a running one
    let _lock = lock_data_dir(&args.data_dir)?;
    let env_key = std::env::var("PILOTHOUSE_MASTER_KEY").ok();
    let master_key =
        MasterKey::load_or_create(&args.data_dir.join("master.key"), env_key.as_deref())
            .context("loading the master key")?;
    let store = Store::open(&args.data_dir.join("pilothouse.db"))
        .await
        .context("opening the store")?;
    ensure_admin_token(&store, &args.data_dir).await?;
    bind_legacy_repository_credentials(&store, &master_key).await?;
    configure_repository(&store, &args).await?;

    let checks = CheckSettings {
        timeout: args.check_timeout,
        interval: args.check_interval,
        ..CheckSettings::default()
    };
    let master_key = Arc::new(master_key);
    let kubeconfig_policy = Arc::new(
        KubeconfigPolicy {
            allowed_exec_commands: args.allowed_exec.clone(),
            ..KubeconfigPolicy::default()
        }
        .with_exec_server_patterns(args.exec_server_pattern.clone()),
    );
    let controller = Controller::new(
        store.clone(),
        Arc::clone(&master_key),
        Arc::clone(&kubeconfig_policy),
        ControllerSettings {
            git_dir: args.data_dir.join("git"),
            concurrency: args.sync_concurrency,
            call_timeout: args.sync_call_timeout,
            base_backoff: args.sync_retry,
            max_backoff: args.sync_retry_max,
            self_heal_interval: args.self_heal_interval,
            health_interval: args.health_interval,
            drift_interval: args.drift_interval,
            load_restrictions: args.load_restrictor,
            ..ControllerSettings::default()
        },
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (monitor, monitor_tasks) = Monitor::spawn(
        store.clone(),
        Arc::clone(&master_key),
        Arc::clone(&kubeconfig_policy),
        monitor_settings(&args)?,
        stopped.clone(),
    );
    let metrics = Arc::new(HttpMetrics::default());
    let checker = Checker {
        store: store.clone(),
        key: Arc::clone(&master_key),
        policy: Arc::clone(&kubeconfig_policy),
        settings: checks.clone(),
    };
    let state = AppState {
        store: store.clone(),
        master_key,
        kubeconfig_policy,
        checks: Arc::new(checks.clone()),
        checker: Arc::new(checker.clone()),
        metrics: Arc::clone(&metrics),
        gitops: Arc::new(ControlHandle(Arc::clone(&controller))),
        incidents: Arc::new(MonitorHandle(monitor)),
        outbound: Arc::new(OutboundPolicy {
            local_repo_roots: local_repo_roots(&args)?,
            receiver_destinations: receiver_destinations(&args),
        }),
    };
    let controller_tasks = controller.spawn(stopped.clone());
    let checker = tokio::spawn(checker.run(Duration::from_secs(1), stopped));

    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            Some(ServerTls::from_pem_files(cert, key).context("loading --tls-cert and --tls-key")?)
        }
        _ => None,
    };
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let limits = Limits {
        body_bytes: args.max_body_bytes,
        ..Limits::default()
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    if let Some(warning) = plain_http_warning(args.bind, tls.is_some()) {
        tracing::warn!(bind = %args.bind, "{warning}");
    }
    tracing::info!(%local, scheme, data_dir = %args.data_dir.display(), version = env!("CARGO_PKG_VERSION"), "pilothouse listening");
    let options = ServerOptions {
        header_read_timeout: args.header_read_timeout,
        idle_timeout: args.idle_timeout,
        max_connections: args.max_connections,
        tls,
        ..ServerOptions::default()
    };
    pilothouse_api::serve(
        listener,
        pilothouse_api::router(state, &limits),
        metrics,
        options,
        shutdown_signal(),
    )
    .await
    .context("serving HTTP")?;

    let _ = stop.send(true);
    if tokio::time::timeout(Duration::from_secs(10), checker)
        .await
        .is_err()
    {
        tracing::warn!("cluster checks did not stop within 10s");
    }
    for task in controller_tasks {
        // syncs in flight are abandoned; the next start marks them failed
        // and retries them
        if tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_err()
        {
            tracing::warn!("a GitOps task did not stop within 5s");
        }
    }
    for task in monitor_tasks {
        if tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .is_err()
        {
            tracing::warn!("an incident task did not stop within 5s");
        }
    }
    store.close().await;
    tracing::info!("pilothouse stopped");
    Ok(())
}

/// `--allow-local-repo-root` directories, resolved: each must exist.
fn local_repo_roots(args: &ServeArgs) -> anyhow::Result<Vec<PathBuf>> {
    args.allow_local_repo_root
        .iter()
        .map(|dir| {
            std::fs::canonicalize(dir)
                .with_context(|| format!("--allow-local-repo-root {}", dir.display()))
        })
        .collect()
}

/// What to warn about when the API would cross the network unencrypted.
fn plain_http_warning(bind: IpAddr, tls: bool) -> Option<&'static str> {
    (!tls && !bind.is_loopback()).then_some(
        "serving plain HTTP on a non-loopback address: API tokens and kubeconfigs cross the \
         network in clear text; pass --tls-cert and --tls-key, or put a TLS proxy in front",
    )
}

fn receiver_destinations(args: &ServeArgs) -> DestinationPolicy {
    DestinationPolicy::new(args.allow_receiver_network.clone())
}

/// The monitor's settings from the flags; a bad regex or reason is an error
/// that names the flag.
fn monitor_settings(args: &ServeArgs) -> anyhow::Result<MonitorSettings> {
    let mut detect = DetectConfig {
        exclude_namespaces: args.ignore_namespace.iter().cloned().collect(),
        exclude_containers: args.ignore_container.iter().cloned().collect(),
        pending_threshold_ms: Some(millis(args.pending_threshold)),
        ..DetectConfig::default()
    };
    for pattern in &args.ignore_pod {
        detect
            .exclude_pod_names
            .push(NamePattern::new(pattern).with_context(|| format!("--ignore-pod `{pattern}`"))?);
    }
    for reason in &args.ignore_reason {
        detect.exclude_reasons.insert(
            reason
                .parse::<Reason>()
                .with_context(|| format!("--ignore-reason `{reason}`"))?,
        );
    }
    Ok(MonitorSettings {
        detect,
        hold_down: args.incident_hold_down,
        delivery_retry_max: args.notify_retry_max,
        retention: args.incident_retention,
        receiver_destinations: receiver_destinations(args),
        watch: WatchOptions {
            watch_timeout: args.watch_timeout,
            ..WatchOptions::default()
        },
        ..MonitorSettings::default()
    })
}

/// Settles the desired-state repository: flags given on the command line
/// win; otherwise the stored setting stays; with neither, this repository's
/// own checkout is used.
async fn configure_repository(store: &Store, args: &ServeArgs) -> anyhow::Result<()> {
    let stored = store.get_repository().await?;
    let given = args.repo.is_some()
        || args.repo_branch.is_some()
        || args.repo_path.is_some()
        || args.poll_interval.is_some();
    let base = match (&stored, &args.repo) {
        (Some(repository), _) if !given => {
            tracing::info!(url = %pilothouse_gitops::redact_url(&repository.settings.url), branch = %repository.settings.branch, "desired-state repository");
            return Ok(());
        }
        (_, Some(url)) => RepositorySettings {
            url: url.clone(),
            branch: "main".into(),
            path: String::new(),
            poll_interval_secs: 60,
        },
        (Some(repository), None) => repository.settings.clone(),
        (None, None) => match default_repository() {
            Some((url, branch)) => RepositorySettings {
                url,
                branch,
                path: String::new(),
                poll_interval_secs: 60,
            },
            None => {
                tracing::warn!(
                    "no desired-state repository: pass --repo, or PUT /api/v1/repository"
                );
                return Ok(());
            }
        },
    };
    let settings = RepositorySettings {
        branch: args.repo_branch.clone().unwrap_or(base.branch),
        path: args.repo_path.clone().unwrap_or(base.path),
        poll_interval_secs: args.poll_interval.map_or(base.poll_interval_secs, |d| {
            d.as_secs().clamp(1, 86_400) as u32
        }),
        url: base.url,
    };
    pilothouse_gitops::validate_remote_url(
        &settings.url,
        &pilothouse_gitops::RepoCredentials::None,
    )
    .or_else(|error| match &stored {
        // stored credentials may be what makes the URL acceptable
        Some(repository)
            if repository.credentials_kind != pilothouse_store::CredentialsKind::None =>
        {
            Ok(pilothouse_gitops::RemoteKind::LocalPath)
        }
        _ => Err(error),
    })
    .with_context(|| format!("the desired-state repository `{}`", settings.url))?;
    if stored.as_ref().map(|r| &r.settings) != Some(&settings) {
        // Credentials are bound to the host they were given for: a
        // repository moved elsewhere on the command line cannot use them.
        let origin = |url: &str| pilothouse_gitops::url_origin(url).ok();
        let credentials = match &stored {
            Some(repository)
                if repository.credentials_kind != pilothouse_store::CredentialsKind::None
                    && origin(&repository.settings.url) != origin(&settings.url) =>
            {
                tracing::warn!(
                    from = %pilothouse_gitops::redact_url(&repository.settings.url),
                    to = %pilothouse_gitops::redact_url(&settings.url),
                    "the stored Git credentials belong to the previous repository's host and \
                     are removed; set new ones with PUT /api/v1/repository if needed"
                );
                SecretChange::Clear
            }
            _ => SecretChange::Keep,
        };
        store
            .put_repository(&settings, credentials, SecretChange::Keep)
            .await?;
    }
    tracing::info!(url = %pilothouse_gitops::redact_url(&settings.url), branch = %settings.branch, "desired-state repository");
    Ok(())
}

/// Git credentials stored before they were bound to the remote's origin
/// are sealed again, bound to the origin of the URL they were stored with
/// (before `--repo` may change it).
async fn bind_legacy_repository_credentials(store: &Store, key: &MasterKey) -> anyhow::Result<()> {
    let (Some((kind, sealed)), Some(repository)) = (
        store.repository_credentials().await?,
        store.get_repository().await?,
    ) else {
        return Ok(());
    };
    let url = &repository.settings.url;
    if pilothouse_api::open_repository_credentials(key, &sealed, url).is_ok() {
        return Ok(());
    }
    let Ok(plaintext) = key.open(&sealed, pilothouse_store::REPOSITORY_CREDENTIALS_CONTEXT) else {
        return Ok(());
    };
    let origin = match pilothouse_gitops::url_origin(url) {
        Ok(origin) => origin,
        Err(error) => {
            // a URL accepted once, refused now: the operator sets a new one
            tracing::warn!(%error, "the repository's stored Git credentials cannot be bound to its URL");
            return Ok(());
        }
    };
    let bound = key.seal(
        &plaintext,
        &pilothouse_store::repository_credentials_context(&origin),
    )?;
    store
        .put_repository(
            &repository.settings,
            SecretChange::Set((kind, bound)),
            SecretChange::Keep,
        )
        .await?;
    tracing::info!(%origin, "the repository's Git credentials are now bound to its origin");
    Ok(())
}

/// The desired-state checkout to use when none is configured, and its
/// current branch: the Git work tree `serve` is started in (or under),
/// else the one this binary was built from, if it holds `gitops/`.
fn default_repository() -> Option<(String, String)> {
    let started_in = std::env::current_dir().ok();
    let built_from = Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    [started_in, built_from]
        .into_iter()
        .flatten()
        .find_map(|dir| checkout_holding_gitops(&dir))
}

/// The work tree `dir` is in, with its branch, if it holds `gitops/`.
fn checkout_holding_gitops(dir: &Path) -> Option<(String, String)> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let root = dir.ancestors().find(|d| d.join(".git").exists())?;
    if !root.join("gitops").is_dir() {
        return None;
    }
    let branch = git_dir(root)
        .and_then(|git| std::fs::read_to_string(git.join("HEAD")).ok())
        .and_then(|head| {
            head.trim()
                .strip_prefix("ref: refs/heads/")
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "main".to_owned());
    Some((root.to_string_lossy().into_owned(), branch))
}

/// A work tree's Git directory: `.git` itself, or where a `.git` file (a
/// linked work tree, a submodule) points.
fn git_dir(root: &Path) -> Option<PathBuf> {
    let dot_git = root.join(".git");
    if dot_git.is_dir() {
        return Some(dot_git);
    }
    let text = std::fs::read_to_string(&dot_git).ok()?;
    let target = text.trim().strip_prefix("gitdir:")?.trim();
    Some(root.join(target))
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

/// Takes the data directory's lock (`DATA/serve.lock`, released when the
/// file is closed, also by a crash): `serve` holds it while it runs, and a
/// store restore while it restores. Taken already: a clear error.
pub(crate) fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("serve.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "{} is in use: a pilothouse service (or a store restore) runs on it",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(error)) => {
            Err(error).with_context(|| format!("locking {}", path.display()))
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_repository_is_the_checkout_serve_starts_in() {
        let top = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(top.path()).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/HEAD"), "ref: refs/heads/trunk\n").unwrap();
        std::fs::create_dir_all(root.join("gitops/clusters")).unwrap();
        let found = |dir: &Path| checkout_holding_gitops(dir);
        let expected = Some((root.to_string_lossy().into_owned(), "trunk".to_owned()));
        assert_eq!(found(&root), expected);
        assert_eq!(found(&root.join("gitops/clusters")), expected, "from below");

        // a linked work tree: `.git` is a file naming the Git directory
        let linked = root.join("linked");
        std::fs::create_dir_all(linked.join("gitops")).unwrap();
        std::fs::create_dir_all(root.join(".git/worktrees/linked")).unwrap();
        std::fs::write(
            root.join(".git/worktrees/linked/HEAD"),
            "ref: refs/heads/topic\n",
        )
        .unwrap();
        std::fs::write(linked.join(".git"), "gitdir: ../.git/worktrees/linked\n").unwrap();
        assert_eq!(
            found(&linked),
            Some((linked.to_string_lossy().into_owned(), "topic".to_owned()))
        );

        // a detached HEAD reads as main; no gitops/ is no default
        std::fs::write(root.join(".git/HEAD"), "0123abcd\n").unwrap();
        assert_eq!(found(&root).unwrap().1, "main");
        std::fs::remove_dir_all(root.join("gitops")).unwrap();
        assert_eq!(found(&root), None);
    }

    #[test]
    fn plain_http_off_loopback_is_warned_about() {
        let check = |bind: &str, tls: bool, warned: bool| {
            let bind: IpAddr = bind.parse().unwrap();
            assert_eq!(
                plain_http_warning(bind, tls).is_some(),
                warned,
                "{bind} tls={tls}"
            );
        };
        check("127.0.0.1", false, false);
        check("::1", false, false);
        check("0.0.0.0", false, true);
        check("10.0.0.5", false, true);
        check("::", false, true);
        check("0.0.0.0", true, false);
    }
}

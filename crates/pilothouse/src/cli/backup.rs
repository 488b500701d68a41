//! `pilothouse backup`, `restore` and `migrate`: archives of the store and
//! of clusters' live objects, restores of either, and moves of workloads
//! from one cluster to another with the target cloud's storage classes.
//!
//! They work on the service's data directory directly (its store, read
//! with a consistent `VACUUM INTO` copy while `serve` runs, and its master
//! key, to reach clusters); they need no running service.

use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use pilothouse_backup::{ArchiveWriter, ManifestInfo, ReadLimits, VerifiedArchive, WriterOptions};
use pilothouse_fleet::{
    ExecServerPattern, ExportOptions, KubeconfigPolicy, RestoreAction, RestoreOptions,
    RestoreReport,
};
use pilothouse_render::{Cloud as ProfileCloud, CloudProfile, CloudProfiles};
use pilothouse_store::{Cloud, Cluster, MasterKey, Store};
use serde_json::Value;

use pilothouse_types::parse_duration;

/// Where the service's state is.
#[derive(Debug, Args)]
struct DataArgs {
    /// The service's data directory (store and master key).
    #[arg(long, env = "PILOTHOUSE_DATA_DIR", default_value = ".pilothouse")]
    data_dir: PathBuf,
    /// Exec plugins kubeconfigs may run (as for `serve`).
    #[arg(
        long = "allowed-exec",
        env = "PILOTHOUSE_ALLOWED_EXEC",
        value_delimiter = ',',
        default_value = "aws,aws-iam-authenticator,gke-gcloud-auth-plugin,kubelogin"
    )]
    allowed_exec: Vec<String>,
    /// The API servers an exec plugin may hand credentials to, as
    /// PLUGIN=https://HOST[:PORT] (as for `serve`).
    #[arg(
        long = "exec-server-pattern",
        env = "PILOTHOUSE_EXEC_SERVER_PATTERNS",
        value_delimiter = ','
    )]
    exec_server_pattern: Vec<ExecServerPattern>,
    /// Time limit of each call to a cluster.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    call_timeout: Duration,
}

/// Options of `pilothouse backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The archive to write (`.tar.zst`); an existing file is refused unless
    /// `--force`.
    #[arg(long)]
    out: PathBuf,
    /// Registered clusters whose live objects go into the archive
    /// (comma-separated); none: the store only.
    #[arg(long, value_delimiter = ',')]
    clusters: Vec<String>,
    /// Only these namespaces of the clusters (default: every namespace but
    /// kube-system, kube-public and kube-node-lease).
    #[arg(long, value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Put Secrets in the archive too (it is written readable by its owner
    /// only; keep it as safe as the clusters).
    #[arg(long)]
    include_secrets: bool,
    /// Overwrite an existing archive.
    #[arg(long)]
    force: bool,
    /// Write the archive even when some kinds could not be read (they are
    /// named on stderr); otherwise that is an error.
    #[arg(long)]
    allow_partial: bool,
}

/// Options of `pilothouse restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The archive.
    archive: PathBuf,
    /// Restore the store into the data directory (the service stopped);
    /// a data directory with a store is refused unless `--force`.
    #[arg(long, conflicts_with = "to")]
    store: bool,
    /// Replace the store of the data directory.
    #[arg(long, requires = "store")]
    force: bool,
    /// Restore objects into this registered cluster.
    #[arg(long, required_unless_present = "store")]
    to: Option<String>,
    /// The cluster of the archive to restore (needed when it holds several).
    #[arg(long, conflicts_with = "store")]
    from: Option<String>,
    /// Largest object in the archive, expanded (e.g. 16MiB, the default).
    #[arg(long, value_parser = parse_size, default_value = "16MiB")]
    max_entry_size: u64,
    /// Largest store copy in the archive, expanded (default 16GiB).
    #[arg(long, value_parser = parse_size, default_value = "16GiB")]
    max_store_size: u64,
    /// Largest expanded size of the whole archive (default 32GiB).
    #[arg(long, value_parser = parse_size, default_value = "32GiB")]
    max_expanded_size: u64,
    /// Most entries in the archive (default 2000000).
    #[arg(long, default_value_t = 2_000_000)]
    max_entries: u64,
    /// Only these namespaces of the archive (comma-separated).
    #[arg(long, value_delimiter = ',', conflicts_with = "store")]
    namespaces: Vec<String>,
    /// Rename namespaces: `old=new` (repeatable, or comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = parse_pair, conflicts_with = "store")]
    namespace_map: Vec<(String, String)>,
    /// Replace storage classes: `old=new` (repeatable, or comma-separated);
    /// default: the target cluster's cloud profile.
    #[arg(long, value_delimiter = ',', value_parser = parse_pair, conflicts_with = "store")]
    storage_class_map: Vec<(String, String)>,
    /// Cloud profiles file (as `gitops/clouds.yaml`); default: the built-in
    /// profiles.
    #[arg(long)]
    cloud_profiles: Option<PathBuf>,
    /// Print what would be created or changed (server-side dry run); change
    /// nothing.
    #[arg(long, conflicts_with = "store")]
    dry_run: bool,
    /// Output format of the summary.
    #[arg(short, long, value_enum, default_value_t = Report::Text)]
    output: Report,
}

/// Options of `pilothouse migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The registered cluster to move from.
    #[arg(long)]
    from: String,
    /// The registered cluster to move to.
    #[arg(long)]
    to: String,
    /// Only these namespaces (default: every namespace but the cluster's
    /// own).
    #[arg(long, value_delimiter = ',')]
    namespaces: Vec<String>,
    /// Cloud profiles file (as `gitops/clouds.yaml`); default: the built-in
    /// profiles.
    #[arg(long)]
    cloud_profiles: Option<PathBuf>,
    /// Print what would be created or changed on the target; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Output format of the summary.
    #[arg(short, long, value_enum, default_value_t = Report::Text)]
    output: Report,
}

/// How a restore's result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Report {
    /// A line per object that was not unchanged, then the counts.
    Text,
    /// The whole report as JSON.
    Json,
}

/// `old=new`.
fn parse_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((old, new)) if !old.is_empty() && !new.is_empty() => {
            Ok((old.to_owned(), new.to_owned()))
        }
        _ => Err(format!("`{text}` is not old=new")),
    }
}

/// Writes the archive: a consistent copy of the store, then each chosen
/// cluster's cleaned live objects.
pub fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    if args.clusters.is_empty() && (args.include_secrets || !args.namespaces.is_empty()) {
        bail!(
            "--namespaces and --include-secrets choose what is read from --clusters; name the clusters"
        );
    }
    runtime()?.block_on(async {
        let began = Instant::now();
        let state = State::open(&args.data, !args.clusters.is_empty()).await?;
        let mut writer = ArchiveWriter::create(
            &args.out,
            WriterOptions {
                overwrite: args.force,
                ..WriterOptions::default()
            },
        )
        .with_context(|| format!("creating {}", args.out.display()))?;
        let progress = Progress::new("backup");
        writer.on_progress({
            let progress = progress.clone();
            move |p| progress.set(p.objects, p.bytes_in)
        });
        let scratch = tempfile::tempdir_in(parent_of(&args.out))
            .context("creating a scratch directory next to the archive")?;
        let copy = scratch.path().join("pilothouse.db");
        state
            .store
            .snapshot_to(&copy)
            .await
            .context("copying the store")?;
        writer.add_store_file(&copy).context("adding the store")?;
        progress.line(&format!(
            "store copied ({} bytes)",
            std::fs::metadata(&copy).map(|m| m.len()).unwrap_or(0)
        ));
        let namespaces = (!args.namespaces.is_empty()).then(|| args.namespaces.clone());
        for name in &args.clusters {
            let cluster = state.cluster(name).await?;
            let client = state.client(&cluster).await?;
            let exported = pilothouse_fleet::export(
                &client,
                &ExportOptions {
                    namespaces: namespaces.clone(),
                    include_secrets: args.include_secrets,
                    call_timeout: args.data.call_timeout,
                    ..ExportOptions::default()
                },
            )
            .await
            .with_context(|| format!("reading cluster `{name}`"))?;
            for unreadable in &exported.unreadable {
                eprintln!(
                    "{}: {name}: {} {} could not be read: {}",
                    if args.allow_partial { "warning" } else { "error" },
                    unreadable.api_version,
                    unreadable.resource.as_deref().unwrap_or("(discovery)"),
                    unreadable.message
                );
            }
            if !exported.unreadable.is_empty() && !args.allow_partial {
                bail!(
                    "cluster `{name}`: {} kinds could not be read, so the backup would be incomplete (pass --allow-partial to write it anyway)",
                    exported.unreadable.len()
                );
            }
            writer.set_cluster(name, cluster.cloud.as_str(), namespaces.clone())?;
            for object in &exported.objects {
                writer.add_object(name, object)?;
            }
            progress.line(&format!(
                "cluster {name}: {} objects",
                exported.objects.len()
            ));
        }
        let manifest = writer.finish(ManifestInfo {
            pilothouse_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at: jiff::Timestamp::now(),
            include_secrets: args.include_secrets,
        })?;
        progress.finish();
        let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
        let objects: u64 = manifest.clusters.iter().map(|c| c.objects).sum();
        println!(
            "wrote {} ({size} bytes): the store and {objects} objects of {} clusters in {:.1} s",
            args.out.display(),
            manifest.clusters.len(),
            began.elapsed().as_secs_f64()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Verifies the archive, then restores the store or a cluster's objects.
pub fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    if args.store {
        return restore_store(&args);
    }
    runtime()?.block_on(async {
        let archive = VerifiedArchive::open_with_limits(&args.archive, &read_limits(&args))
            .with_context(|| format!("{} cannot be restored", args.archive.display()))?;
        let source = match (&args.from, archive.clusters()) {
            (Some(name), _) => name.clone(),
            (None, [only]) => only.name.clone(),
            (None, []) => {
                bail!("the archive holds no cluster objects (a store-only backup: use --store)")
            }
            (None, many) => bail!(
                "the archive holds several clusters ({}): choose one with --from",
                many.iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let objects: Vec<Value> = archive
            .cluster_objects(&source)
            .with_context(|| format!("the archive holds no cluster `{source}`"))?
            .map(|item| item.map(|archived| archived.object))
            .collect::<Result<_, _>>()?;
        let (objects, left_out) = pilothouse_fleet::only_namespaces(objects, &args.namespaces)?;
        let state = State::open(&args.data, true).await?;
        let target = state
            .cluster(args.to.as_deref().unwrap_or_default())
            .await?;
        let source_cloud = archive
            .clusters()
            .iter()
            .find(|cluster| cluster.name == source)
            .map(|cluster| cluster.cloud.clone())
            .unwrap_or_default();
        let profiles = cloud_profiles(args.cloud_profiles.as_deref())?;
        let objects = across_clouds(objects, &source_cloud, target.cloud, &profiles);
        let storage_class_map = if args.storage_class_map.is_empty() {
            profile_map(&profiles, target.cloud)
        } else {
            args.storage_class_map.iter().cloned().collect()
        };
        let mut report = state
            .restore(
                &target,
                objects,
                RestoreOptions {
                    namespace_map: args.namespace_map.iter().cloned().collect(),
                    storage_class_map,
                    dry_run: args.dry_run,
                    call_timeout: args.data.call_timeout,
                    ..RestoreOptions::default()
                },
            )
            .await?;
        report.skipped.extend(left_out);
        print_report(&report, args.output)?;
        Ok(exit_code(&report))
    })
}

/// Moves namespaces from one registered cluster to another: export,
/// storage classes mapped by the target's cloud profile, restore. Volume
/// data is not copied.
pub fn migrate(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let state = State::open(&args.data, true).await?;
        let from = state.cluster(&args.from).await?;
        let to = state.cluster(&args.to).await?;
        let client = state.client(&from).await?;
        let exported = pilothouse_fleet::export(
            &client,
            &ExportOptions {
                namespaces: (!args.namespaces.is_empty()).then(|| args.namespaces.clone()),
                // kept in memory only: workloads need their Secrets
                include_secrets: true,
                call_timeout: args.data.call_timeout,
                ..ExportOptions::default()
            },
        )
        .await
        .with_context(|| format!("reading cluster `{}`", args.from))?;
        let claims = pilothouse_fleet::volume_claims(&exported.objects);
        let profiles = cloud_profiles(args.cloud_profiles.as_deref())?;
        let storage_class_map = profile_map(&profiles, to.cloud);
        // Said before anything happens, whatever the output format.
        eprintln!(
            "note: volume data is not copied, only the claims; {}",
            if claims.is_empty() {
                "there are no claims".to_owned()
            } else {
                format!("{} claims need their data copied separately:", claims.len())
            }
        );
        for (claim, class) in &claims {
            let mapped = class
                .as_ref()
                .map(|class| storage_class_map.get(class).unwrap_or(class).clone());
            eprintln!(
                "  {claim}  ({} -> {})",
                class.as_deref().unwrap_or("default class"),
                mapped.as_deref().unwrap_or("default class")
            );
        }
        let objects = across_clouds(exported.objects, from.cloud.as_str(), to.cloud, &profiles);
        let report = state
            .restore(
                &to,
                objects,
                RestoreOptions {
                    storage_class_map: storage_class_map.clone(),
                    dry_run: args.dry_run,
                    call_timeout: args.data.call_timeout,
                    ..RestoreOptions::default()
                },
            )
            .await?;
        print_report(&report, args.output)?;
        Ok(exit_code(&report))
    })
}

/// Restores the archive's store into the data directory.
fn restore_store(args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let data = &args.data.data_dir;
    let db = data.join("pilothouse.db");
    let journals = [
        data.join("pilothouse.db-wal"),
        data.join("pilothouse.db-shm"),
    ];
    let holds_store = db.exists() || journals.iter().any(|path| path.exists());
    if holds_store && !args.force {
        bail!(
            "{} already holds a store; stop the service and pass --force to replace it",
            data.display()
        );
    }
    // Verified completely before the data directory is created or changed.
    let scratch = tempfile::tempdir().context("creating a scratch directory")?;
    VerifiedArchive::open_in_with_limits(&args.archive, scratch.path(), &read_limits(args))
        .with_context(|| format!("{} cannot be restored", args.archive.display()))?;
    drop(scratch);
    std::fs::create_dir_all(data).with_context(|| format!("creating {}", data.display()))?;
    // no service may run on the directory meanwhile (nor start)
    let _lock = super::serve::lock_data_dir(data)?;
    let archive = VerifiedArchive::open_in_with_limits(&args.archive, data, &read_limits(args))
        .with_context(|| format!("{} cannot be restored", args.archive.display()))?;
    let copy = archive
        .store_file()
        .context("the archive holds no store (a backup of clusters only)")?;
    std::fs::File::open(copy)
        .and_then(|file| file.sync_all())
        .context("flushing the restored store")?;
    // The old journals belong to the old database: they go first, then the
    // copy replaces the database in one rename.
    for path in &journals {
        if path.exists() {
            std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    std::fs::rename(copy, &db).with_context(|| format!("moving the store to {}", db.display()))?;
    std::fs::File::open(data)
        .and_then(|dir| dir.sync_all())
        .context("flushing the data directory")?;
    println!(
        "restored the store of {} into {}",
        archive.manifest().created_at,
        db.display()
    );
    let message = runtime()?.block_on(check_restored_store(data, &db))?;
    println!("{message}");
    Ok(ExitCode::SUCCESS)
}

/// Opens the restored store (bringing its schema up to date) and tells
/// whether the master key at hand opens its secrets.
async fn check_restored_store(data: &Path, db: &Path) -> anyhow::Result<String> {
    let store = Store::open(db).await?;
    let clusters = store.all_clusters().await?;
    let key_file = data.join("master.key");
    let env_key = std::env::var("PILOTHOUSE_MASTER_KEY").ok();
    let message = if !key_file.exists() && env_key.is_none() {
        format!(
            "{} clusters restored; put the original master key in {} (or set PILOTHOUSE_MASTER_KEY) before `serve`: the credentials are sealed with it",
            clusters.len(),
            key_file.display()
        )
    } else {
        let key = MasterKey::load_or_create(&key_file, env_key.as_deref())?;
        match clusters.first() {
            None => "no clusters in the restored store".to_owned(),
            Some(cluster) => {
                let sealed = store
                    .cluster_credentials(&cluster.name)
                    .await?
                    .context("a restored cluster has no credentials")?;
                key.open(
                    &sealed,
                    &pilothouse_store::cluster_credentials_context(&cluster.name),
                )
                .context("the master key at hand does not open the restored credentials")?;
                format!(
                    "{} clusters restored; the master key opens their credentials",
                    clusters.len()
                )
            }
        }
    };
    store.close().await;
    Ok(message)
}

/// What backup, restore and migrate share: the store and the master key.
struct State {
    store: Store,
    key: Option<MasterKey>,
    policy: KubeconfigPolicy,
    call_timeout: Duration,
}

impl State {
    /// Opens the data directory's store; the master key too when clusters
    /// will be reached.
    async fn open(args: &DataArgs, clusters: bool) -> anyhow::Result<State> {
        let db = args.data_dir.join("pilothouse.db");
        if !db.exists() {
            bail!(
                "{} holds no store (is --data-dir / PILOTHOUSE_DATA_DIR right?)",
                args.data_dir.display()
            );
        }
        let key = if clusters {
            let file = args.data_dir.join("master.key");
            let env_key = std::env::var("PILOTHOUSE_MASTER_KEY").ok();
            if !file.exists() && env_key.is_none() {
                bail!(
                    "no master key in {} and PILOTHOUSE_MASTER_KEY is not set: the cluster credentials cannot be opened",
                    file.display()
                );
            }
            Some(MasterKey::load_or_create(&file, env_key.as_deref())?)
        } else {
            None
        };
        Ok(State {
            store: Store::open(&db).await.context("opening the store")?,
            key,
            policy: KubeconfigPolicy {
                allowed_exec_commands: args.allowed_exec.clone(),
                ..KubeconfigPolicy::default()
            }
            .with_exec_server_patterns(args.exec_server_pattern.clone()),
            call_timeout: args.call_timeout,
        })
    }

    async fn cluster(&self, name: &str) -> anyhow::Result<Cluster> {
        self.store
            .get_cluster(name)
            .await?
            .with_context(|| format!("no registered cluster named `{name}`"))
    }

    async fn client(&self, cluster: &Cluster) -> anyhow::Result<kube::Client> {
        let key = self.key.as_ref().context("the master key is not loaded")?;
        let kubeconfig =
            crate::credentials::stored_kubeconfig(&self.store, key, &self.policy, cluster).await?;
        Ok(pilothouse_fleet::client_for(&kubeconfig, self.call_timeout).await?)
    }

    async fn restore(
        &self,
        target: &Cluster,
        objects: Vec<Value>,
        options: RestoreOptions,
    ) -> anyhow::Result<RestoreReport> {
        let client = self.client(target).await?;
        let progress = Progress::new("restore");
        progress.line(&format!(
            "{} {} objects into {}",
            if options.dry_run {
                "dry run of"
            } else {
                "restoring"
            },
            objects.len(),
            target.name
        ));
        let report = pilothouse_fleet::restore(&client, objects, &options)
            .await
            .with_context(|| format!("restoring into `{}`", target.name))?;
        progress.finish();
        Ok(report)
    }
}

/// How much an archive may expand to before it is refused: a small archive
/// must not be able to fill memory or the disk.
fn read_limits(args: &RestoreArgs) -> ReadLimits {
    ReadLimits {
        max_entry_bytes: args.max_entry_size,
        max_store_bytes: args.max_store_size,
        max_total_bytes: args.max_expanded_size,
        max_entries: args.max_entries,
    }
}

/// A size in bytes: a number with an optional unit (`K`, `M`, `G`, `T`,
/// powers of 1000, or `KiB`, `MiB`, `GiB`, `TiB`, powers of 1024; `B`).
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 512MiB, 2GiB, 1000000)"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KB" => 1000,
        "M" | "MB" => 1000_u64.pow(2),
        "G" | "GB" => 1000_u64.pow(3),
        "T" | "TB" => 1000_u64.pow(4),
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "`{other}` is not a size unit (KiB, MiB, GiB, TiB, K, M, G, T)"
            ));
        }
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// The cloud profiles: the file given (which must exist), else the
/// built-in ones.
fn cloud_profiles(file: Option<&Path>) -> anyhow::Result<CloudProfiles> {
    match file {
        Some(file) if !file.is_file() => {
            bail!("--cloud-profiles: {} does not exist", file.display())
        }
        Some(file) => Ok(CloudProfiles::load(file)?),
        None => Ok(CloudProfiles::default()),
    }
}

/// The profile of a registered cluster's cloud; `None` for `other`.
fn profile_cloud(cloud: Cloud) -> Option<ProfileCloud> {
    match cloud {
        Cloud::Aks => Some(ProfileCloud::Aks),
        Cloud::Gke => Some(ProfileCloud::Gke),
        Cloud::Eks => Some(ProfileCloud::Eks),
        Cloud::Other => None,
    }
}

/// The storage-class map of the target cloud's profile.
fn profile_map(profiles: &CloudProfiles, cloud: Cloud) -> BTreeMap<String, String> {
    profile_cloud(cloud)
        .map(|cloud| profiles.get(cloud).storage_class.map.clone())
        .unwrap_or_default()
}

/// Objects going to another cloud: they leave their StorageClasses behind
/// (a class is a cloud's provisioner: the target's own classes, through the
/// profile's map, are checked instead), and their `LoadBalancer` Services
/// trade the source profile's load-balancer annotations for the target's,
/// as render does (an Azure-internal load balancer must not become an
/// internet-facing one on EKS). To a cloud without a profile (`other`) the
/// annotations are kept, and said so.
fn across_clouds(
    objects: Vec<Value>,
    source_cloud: &str,
    target: Cloud,
    profiles: &CloudProfiles,
) -> Vec<Value> {
    if source_cloud == target.as_str() {
        return objects;
    }
    let (classes, mut kept): (Vec<Value>, Vec<Value>) = objects.into_iter().partition(|object| {
        object["kind"] == "StorageClass"
            && object["apiVersion"]
                .as_str()
                .is_some_and(|version| version.starts_with("storage.k8s.io/"))
    });
    if !classes.is_empty() {
        eprintln!(
            "{} StorageClasses of {source_cloud} are not restored on {}: the claims use the target's classes",
            classes.len(),
            target.as_str()
        );
    }
    let from = source_cloud.parse::<ProfileCloud>().ok();
    let load_balancers = kept
        .iter()
        .filter(|object| object["kind"] == "Service" && object["spec"]["type"] == "LoadBalancer")
        .count();
    match (from, profile_cloud(target)) {
        (_, Some(to)) => {
            let none = CloudProfile::default();
            let from = from.map_or(&none, |from| profiles.get(from));
            pilothouse_render::retarget_load_balancers(from, profiles.get(to), &mut kept);
            if load_balancers > 0 {
                eprintln!(
                    "{load_balancers} LoadBalancer Services get the load-balancer annotations of {}'s profile",
                    target.as_str()
                );
            }
        }
        (Some(_), None) if load_balancers > 0 => eprintln!(
            "note: {load_balancers} LoadBalancer Services keep the load-balancer annotations of \
             {source_cloud}: the target's cloud is `other`, which has no profile; check how its \
             load balancers are exposed"
        ),
        _ => {}
    }
    kept
}

fn print_report(report: &RestoreReport, output: Report) -> anyhow::Result<()> {
    if output == Report::Json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    let verb = |action: RestoreAction| match (action, report.dry_run) {
        (RestoreAction::Created, false) => "created",
        (RestoreAction::Created, true) => "would be created",
        (RestoreAction::Configured, false) => "configured",
        (RestoreAction::Configured, true) => "would be changed",
        (RestoreAction::Unchanged, _) => "unchanged",
        (RestoreAction::Failed, _) => "FAILED",
    };
    for object in &report.objects {
        if object.action == RestoreAction::Unchanged {
            continue;
        }
        match &object.message {
            Some(message) => println!("{} {}: {message}", object.key, verb(object.action)),
            None => println!("{} {}", object.key, verb(object.action)),
        }
    }
    for skipped in &report.skipped {
        println!("{} skipped: {}", skipped.key, skipped.reason);
    }
    let summary = &report.summary;
    println!(
        "{}{} created, {} configured, {} unchanged, {} failed",
        if report.dry_run { "dry run: " } else { "" },
        summary.created,
        summary.configured,
        summary.unchanged,
        summary.failed
    );
    Ok(())
}

fn exit_code(report: &RestoreReport) -> ExitCode {
    if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Progress on a terminal (a bar with objects and bytes), plain lines
/// otherwise.
#[derive(Clone)]
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(what: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_prefix(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Progress { bar: Some(bar) }
    }

    fn set(&self, objects: u64, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{objects} objects, {}",
                indicatif::HumanBytes(bytes)
            ));
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("2G"), Ok(2_000_000_000));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5XB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }

    #[test]
    fn pairs_and_profile_maps() {
        assert_eq!(parse_pair("a=b"), Ok(("a".into(), "b".into())));
        assert!(parse_pair("a").is_err());
        assert!(parse_pair("=b").is_err());
        let profiles = CloudProfiles::default();
        assert_eq!(
            profile_map(&profiles, Cloud::Eks).get("managed-premium"),
            Some(&"gp2".to_owned())
        );
        assert!(profile_map(&profiles, Cloud::Other).is_empty());
    }
}

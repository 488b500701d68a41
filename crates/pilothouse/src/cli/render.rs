//! `pilothouse render`: print a directory's rendered desired state.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use pilothouse_render::{Cloud, CloudProfiles, LoadRestrictions, RenderOptions};

/// Options of `pilothouse render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Directory holding a kustomization (kustomization.yaml, .yml or
    /// Kustomization).
    dir: PathBuf,
    /// Apply this cloud's profile (storage classes, load-balancer
    /// annotations) after rendering.
    #[arg(long, value_parser = parse_cloud)]
    cloud: Option<Cloud>,
    /// Cloud profiles file (as gitops/clouds.yaml, and as restore and
    /// migrate take it); by default gitops/clouds.yaml of the repository
    /// enclosing DIR, or the built-in profiles when there is none.
    #[arg(long, requires = "cloud", alias = "clouds")]
    cloud_profiles: Option<PathBuf>,
    /// As kubectl's: `LoadRestrictionsRootOnly` (the default) keeps the
    /// files a kustomization reads within its directory;
    /// `LoadRestrictionsNone` lets it read any file.
    #[arg(long, default_value = "LoadRestrictionsRootOnly", value_parser = parse_load_restrictor)]
    load_restrictor: LoadRestrictions,
}

/// kubectl's names of the load restrictors.
pub(super) fn parse_load_restrictor(s: &str) -> Result<LoadRestrictions, String> {
    match s {
        "LoadRestrictionsRootOnly" => Ok(LoadRestrictions::RootOnly),
        "LoadRestrictionsNone" => Ok(LoadRestrictions::None),
        other => Err(format!(
            "`{other}` is not a load restrictor: use LoadRestrictionsRootOnly or LoadRestrictionsNone"
        )),
    }
}

fn parse_cloud(s: &str) -> Result<Cloud, String> {
    s.parse()
}

/// Renders and prints the objects as multi-document YAML, written at once so
/// that a failure leaves stdout empty.
pub fn run(args: RenderArgs) -> anyhow::Result<ExitCode> {
    let mut options = RenderOptions {
        load_restrictions: args.load_restrictor,
        ..RenderOptions::default()
    };
    if let Some(cloud) = args.cloud {
        let profiles = match args.cloud_profiles.as_deref() {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("{}: cannot read cloud profiles", path.display()))?;
                CloudProfiles::from_yaml(&text, path)?
            }
            None => match CloudProfiles::discover(&args.dir) {
                Some(path) => CloudProfiles::load(&path)?,
                None => CloudProfiles::default(),
            },
        };
        options.cloud_profile = Some(profiles.get(cloud).clone());
    }
    let objects = pilothouse_render::render_dir(&args.dir, &options)?;
    let text = pilothouse_render::to_yaml(&objects);
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // The reader went away (`pilothouse render … | head`): not our error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e).context("writing to stdout"),
    }
}

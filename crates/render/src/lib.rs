//! Rendering of desired state, kustomize-compatible and without kustomize.
//!
//! This crate owns turning a directory holding a kustomization (a base, a
//! cloud overlay, a per-cluster overlay …) into the list of Kubernetes
//! objects `kubectl kustomize` would print for it — same objects, same
//! order, same field values, same generated names, the same text — and the
//! cloud profiles (storage classes, load-balancer annotations) applied on
//! top. That covers what real repositories use: resources and components,
//! patches of every kind, generators, name references, `configurations`
//! and `crds` (field specs for custom kinds), the legacy `vars`,
//! `transformers` and `generators` with kustomize's built-in plugins,
//! `buildMetadata`, and kustomize's leniencies and strictnesses (checked
//! against `kubectl kustomize` by the corpus in `tests/corpus`).
//!
//! The centre is pure: transformers, patches, generators and name-reference
//! rewriting take values and return values. Only the `load` module reads
//! files; it refuses files outside a kustomization's root (as kustomize does,
//! unless [`LoadRestrictions::None`]), outside [`RenderOptions::confine_to`]
//! (always) and files over a size limit. Only the `yaml` module knows YAML
//! syntax. No network, no clock, no environment, no global state: rendering
//! is deterministic and safe to run from many threads.
//!
//! It must not: fetch remote bases (URLs and git references are a clear
//! error), run external plugins (exec or KRM functions: an error naming the
//! plugin) or Helm, or silently skip a kustomization feature it does not
//! implement (that is an error naming the field).
//!
//! ```no_run
//! use std::path::{Path, PathBuf};
//! use pilothouse_render::{render_dir, to_yaml, RenderOptions};
//!
//! let objects = render_dir(Path::new("overlays/aks"), &RenderOptions::default())?;
//! print!("{}", to_yaml(&objects));
//! # Ok::<(), pilothouse_render::RenderError>(())
//! ```

mod build;
pub mod cloud;
mod config;
mod error;
mod fieldspec;
mod generator;
mod kustomization;
mod load;
mod nameref;
mod patch;
mod plugin;
mod replacement;
mod resource;
mod schema;
mod select;
mod transform;
mod vars;
mod yaml;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use crate::cloud::{Cloud, CloudProfile, CloudProfiles, retarget_load_balancers};
pub use crate::error::RenderError;
pub use crate::yaml::YamlError;

/// The default limit on the size of any one file read while rendering.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// kustomize's load restrictor: whether files a kustomization reads must
/// lie in or below its own directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadRestrictions {
    /// `LoadRestrictionsRootOnly`, kustomize's default: files (patches,
    /// generator sources, configurations …) must lie within the
    /// kustomization's directory.
    #[default]
    RootOnly,
    /// `LoadRestrictionsNone`: files may lie anywhere — still within
    /// [`RenderOptions::confine_to`] when that is set.
    None,
}

/// How to render.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Files larger than this are refused.
    pub max_file_bytes: u64,
    /// A cloud profile to apply to the rendered objects.
    pub cloud_profile: Option<CloudProfile>,
    /// When set, every directory and file read (kustomizations included,
    /// after resolving symbolic links) must lie within this directory, on
    /// top of kustomize's per-kustomization load restriction. kustomize lets
    /// a kustomization name other kustomization directories anywhere; the
    /// service confines rendering to the checked-out repository with it.
    pub confine_to: Option<PathBuf>,
    /// kustomize's `--load-restrictor`. Turning restrictions off never
    /// lifts `confine_to`.
    pub load_restrictions: LoadRestrictions,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            cloud_profile: None,
            confine_to: None,
            load_restrictions: LoadRestrictions::RootOnly,
        }
    }
}

/// Renders the kustomization in `dir` to the objects `kubectl kustomize dir`
/// prints, in the same order.
pub fn render_dir(dir: &Path, options: &RenderOptions) -> Result<Vec<Value>, RenderError> {
    let boundary = match &options.confine_to {
        Some(boundary) => {
            Some(
                std::fs::canonicalize(boundary).map_err(|source| RenderError::Io {
                    path: boundary.clone(),
                    source,
                })?,
            )
        }
        None => None,
    };
    let dir = std::fs::canonicalize(dir).map_err(|source| RenderError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if !dir.is_dir() {
        return Err(RenderError::MissingKustomization { dir });
    }
    if let Some(boundary) = &boundary
        && !dir.starts_with(boundary)
    {
        return Err(RenderError::OutsideRoot {
            file: dir.clone(),
            field: "(directory rendered)".into(),
            entry: dir.display().to_string(),
            target: dir.clone(),
            root: boundary.clone(),
        });
    }
    let loader = load::Loader {
        max_file_bytes: options.max_file_bytes,
        boundary,
        restrict_to_root: options.load_restrictions == LoadRestrictions::RootOnly,
    };
    let top_file = loader.kustomization_file(&dir)?;
    let mut builder = build::Builder::new(&loader);
    let accumulated = builder.accumulate_top(&dir)?;
    let mut resources = accumulated.resources;

    for res in resources.iter_mut().filter(|r| r.needs_hash) {
        let hash = generator::content_hash(&res.obj);
        res.store_prev_id();
        let name = format!("{}-{hash}", res.name());
        res.set_name(&name);
    }
    nameref::fix_name_references(&mut resources, &accumulated.config.name_reference).map_err(
        |message| RenderError::Transform {
            file: top_file.clone(),
            field: "(name references)".into(),
            message,
        },
    )?;
    vars::resolve(
        &mut resources,
        &accumulated.vars,
        &accumulated.config.var_reference,
    )
    .map_err(|message| RenderError::Transform {
        file: top_file.clone(),
        field: "vars".into(),
        message,
    })?;
    if accumulated.order != "fifo" {
        build::legacy_sort(
            &mut resources,
            accumulated.order_first.as_deref(),
            accumulated.order_last.as_deref(),
        );
    }
    let origins = accumulated
        .build_metadata
        .iter()
        .any(|m| m == "originAnnotations");
    let transformations = accumulated
        .build_metadata
        .iter()
        .any(|m| m == "transformerAnnotations");
    let managed_by = accumulated
        .build_metadata
        .iter()
        .any(|m| m == "managedByLabel");
    let mut objects: Vec<Value> = resources
        .into_iter()
        .map(|mut r| {
            if origins {
                build::annotate_origin(&mut r, &dir);
            }
            if transformations {
                build::annotate_transformations(&mut r, &dir);
            }
            if managed_by {
                build::label_managed_by(&mut r);
            }
            build::finalize(&mut r);
            Value::Object(r.obj)
        })
        .collect();
    if let Some(profile) = &options.cloud_profile {
        cloud::apply(profile, &mut objects);
    }
    Ok(objects)
}

/// Writes objects as the multi-document YAML `kubectl kustomize` prints
/// (documents separated by `---`).
pub fn to_yaml(objects: &[Value]) -> String {
    yaml::write_documents(objects)
}

/// Parses a multi-document YAML text the way rendering reads resource files
/// (empty documents are `Null`).
pub fn parse_yaml(text: &str) -> Result<Vec<Value>, YamlError> {
    yaml::parse_documents(text)
}

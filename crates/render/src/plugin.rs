//! `transformers` and `generators`: configurations of kustomize's built-in
//! plugins (`apiVersion: builtin`), given as files, kustomization
//! directories or inline YAML. Anything else is an external plugin (exec or
//! KRM function), which kustomize runs only with alpha plugins enabled and
//! this renderer never runs: a clear error naming the plugin.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::build::{Acc, Builder, parse_resources};
use crate::error::RenderError;
use crate::fieldspec::FieldSpec;
use crate::generator::{self, GeneratedKind, GeneratorInput};
use crate::kustomization::{
    FieldSpecArgs, GeneratorOptions, ImageSpec, PatchSpec, ReplacementEntry, ReplicaSpec, Selector,
    decode_lenient,
};
use crate::load::Target;
use crate::resource::Resource;
use crate::transform;
use crate::yaml;

/// `metadata` of a plugin configuration.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
}

/// The fields the built-in transformers and generators take (each uses
/// some of them).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BuiltinConfig {
    #[serde(default)]
    metadata: PluginMeta,
    prefix: Option<String>,
    suffix: Option<String>,
    field_specs: Option<Vec<FieldSpecArgs>>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    unset_only: bool,
    #[serde(default)]
    set_role_binding_subjects: String,
    image_tag: Option<ImageSpec>,
    replica: Option<ReplicaSpec>,
    path: Option<String>,
    patch: Option<String>,
    target: Option<Selector>,
    paths: Option<Vec<String>>,
    patches: Option<String>,
    json_op: Option<String>,
    replacements: Option<Vec<ReplacementEntry>>,
}

/// The fields of the built-in generators.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GeneratorConfig {
    #[serde(default)]
    metadata: PluginMeta,
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    behavior: String,
    literals: Option<Vec<String>>,
    files: Option<Vec<String>>,
    envs: Option<Vec<String>>,
    env: Option<String>,
    options: Option<GeneratorOptions>,
    #[serde(rename = "type", default)]
    secret_type: String,
}

/// Patch options of a `PatchTransformer`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchOptions {
    options: Option<BTreeMap<String, bool>>,
}

fn field_specs(args: Option<&Vec<FieldSpecArgs>>) -> Vec<FieldSpec> {
    args.into_iter()
        .flatten()
        .map(|f| FieldSpec::new(&f.group, &f.version, &f.kind, &f.path, f.create))
        .collect()
}

/// Whether an entry of `transformers`/`generators` is inline YAML (one or
/// more mappings) rather than a path.
fn inline_configs(entry: &str) -> Option<Vec<Map<String, Value>>> {
    if !entry.contains('\n') && !entry.trim_start().starts_with('{') {
        return None;
    }
    let docs = yaml::parse_documents(entry).ok()?;
    let mut out = Vec::new();
    for doc in docs {
        match doc {
            Value::Null => {}
            Value::Object(map) => out.push(map),
            _ => return None,
        }
    }
    (!out.is_empty()).then_some(out)
}

impl Builder<'_> {
    /// Loads the plugin configurations a `transformers` or `generators`
    /// field lists, in order.
    fn plugin_configs(
        &mut self,
        entries: &[String],
        dir: &Path,
        kfile: &Path,
        field: &str,
    ) -> Result<Vec<(String, Resource)>, RenderError> {
        let mut out = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("{field}[{i}]");
            if let Some(maps) = inline_configs(entry) {
                for map in maps {
                    let res = Resource::new(map, Arc::new(kfile.to_path_buf()));
                    if res.name().is_empty() {
                        return Err(RenderError::InvalidResource {
                            file: kfile.to_path_buf(),
                            message: format!(
                                "{at}: missing metadata.name in plugin configuration of kind {}",
                                res.kind()
                            ),
                        });
                    }
                    out.push((at.clone(), res));
                }
                continue;
            }
            match self.loader.resolve(dir, dir, entry, kfile, field)? {
                Target::Dir(sub) => {
                    let (acc, _) = self.accumulate_dir(&sub, Acc::default())?;
                    out.extend(acc.resources.into_iter().map(|r| (at.clone(), r)));
                }
                Target::File(path) => {
                    let text = self.loader.read_text(&path)?;
                    for res in parse_resources(&text, &path)? {
                        out.push((at.clone(), res));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Runs the `generators` of a kustomization, adding what they generate.
    pub(crate) fn run_plugin_generators(
        &mut self,
        entries: &[String],
        dir: &Path,
        kfile: &Path,
        ra: &mut Vec<Resource>,
    ) -> Result<(), RenderError> {
        let configs = self.plugin_configs(entries, dir, kfile, "generators")?;
        for (field, config) in configs {
            let kind = builtin_kind(&config, kfile, "generators")?;
            let err = |message: String| RenderError::Transform {
                file: kfile.to_path_buf(),
                field: field.clone(),
                message,
            };
            let generated = match kind.as_str() {
                "ConfigMapGenerator" | "SecretGenerator" => {
                    let c: GeneratorConfig = decode_lenient(Value::Object(config.obj.clone()))
                        .map_err(|(f, message)| RenderError::InvalidKustomization {
                            file: kfile.to_path_buf(),
                            field: format!("{field}.{f}"),
                            message,
                        })?;
                    let sources = self.generator_sources(
                        dir,
                        kfile,
                        &field,
                        c.literals.as_deref(),
                        c.files.as_deref(),
                        c.envs.as_deref(),
                        c.env.as_deref(),
                    )?;
                    let input = GeneratorInput {
                        kind: if kind == "ConfigMapGenerator" {
                            GeneratedKind::ConfigMap
                        } else {
                            GeneratedKind::Secret
                        },
                        name: if c.name.is_empty() {
                            c.metadata.name
                        } else {
                            c.name
                        },
                        namespace: if c.namespace.is_empty() {
                            c.metadata.namespace
                        } else {
                            c.namespace
                        },
                        behavior: c.behavior,
                        secret_type: c.secret_type,
                        sources,
                        options: c.options.unwrap_or_default(),
                    };
                    let mut generated =
                        generator::generate(&input, config.origin.clone()).map_err(&err)?;
                    generated.generator_name = Some(config.name().into_owned());
                    generated
                }
                other => return Err(unsupported_builtin(kfile, "generators", other)),
            };
            generator::absorb(ra, generated).map_err(&err)?;
        }
        Ok(())
    }

    /// Runs the `transformers` of a kustomization, in order.
    pub(crate) fn run_plugin_transformers(
        &mut self,
        entries: &[String],
        dir: &Path,
        kfile: &Path,
        ra: &mut Vec<Resource>,
    ) -> Result<(), RenderError> {
        let configs = self.plugin_configs(entries, dir, kfile, "transformers")?;
        for (field, config) in configs {
            let kind = builtin_kind(&config, kfile, "transformers")?;
            let err = |message: String| RenderError::Transform {
                file: kfile.to_path_buf(),
                field: format!("{field} ({kind})"),
                message,
            };
            let value = Value::Object(config.obj.clone());
            let decode_err = |(f, message): (String, String)| RenderError::InvalidKustomization {
                file: kfile.to_path_buf(),
                field: format!("{field}.{f}"),
                message,
            };
            let c: BuiltinConfig = decode_lenient(value.clone()).map_err(decode_err)?;
            let specs = field_specs(c.field_specs.as_ref());
            match kind.as_str() {
                "PrefixSuffixTransformer" => {
                    let prefix = c.prefix.unwrap_or_default();
                    let suffix = c.suffix.unwrap_or_default();
                    transform::add_name_affix(ra, &prefix, &suffix, &specs).map_err(&err)?;
                }
                "LabelTransformer" => {
                    transform::add_map_entries(ra, &c.labels.unwrap_or_default(), &specs)
                        .map_err(&err)?;
                }
                "AnnotationsTransformer" => {
                    transform::add_map_entries(ra, &c.annotations.unwrap_or_default(), &specs)
                        .map_err(&err)?;
                }
                "NamespaceTransformer" => {
                    let namespace = c.metadata.namespace;
                    if !namespace.is_empty() {
                        let subjects = match c.set_role_binding_subjects.as_str() {
                            "" | "defaultOnly" => transform::Subjects::DefaultOnly,
                            "none" => transform::Subjects::None,
                            "allServiceAccounts" => transform::Subjects::AllServiceAccounts,
                            other => {
                                return Err(err(format!(
                                    "invalid value for setRoleBindingSubjects: {other}"
                                )));
                            }
                        };
                        transform::set_namespace_with(
                            ra,
                            &namespace,
                            &specs,
                            c.unset_only,
                            subjects,
                        )
                        .map_err(&err)?;
                    }
                }
                "ImageTagTransformer" => {
                    if let Some(image) = &c.image_tag {
                        transform::set_image(ra, image, &specs).map_err(&err)?;
                    }
                }
                "ReplicaCountTransformer" => {
                    if let Some(r) = &c.replica {
                        transform::set_replicas(ra, &r.name, r.count, &specs).map_err(&err)?;
                    }
                }
                "PatchTransformer" => {
                    let options: PatchOptions = decode_lenient(value).map_err(decode_err)?;
                    let spec = PatchSpec {
                        path: c.path,
                        patch: c.patch,
                        target: c.target,
                        options: options.options,
                    };
                    self.apply_patch_entry(&spec, dir, kfile, &field, ra, false)?;
                }
                "PatchJson6902Transformer" => {
                    let Some(target) = c.target else {
                        return Err(err(
                            "must specify the target field in patchesJson6902".into()
                        ));
                    };
                    let spec = PatchSpec {
                        path: c.path,
                        patch: c.json_op,
                        target: Some(target),
                        options: None,
                    };
                    self.apply_patch_entry(&spec, dir, kfile, &field, ra, true)?;
                }
                "PatchStrategicMergeTransformer" => {
                    let paths = c.paths.unwrap_or_default();
                    let inline = c.patches.unwrap_or_default();
                    if paths.is_empty() && inline.trim().is_empty() {
                        return Err(err("empty file path and empty patch content".into()));
                    }
                    for path in &paths {
                        self.apply_smp_entry(dir, kfile, &field, path, ra)?;
                    }
                    if !inline.trim().is_empty() {
                        self.apply_smp_text(kfile, &field, &inline, kfile, ra)?;
                    }
                }
                "ReplacementTransformer" => {
                    let entries = c.replacements.unwrap_or_default();
                    let list = self.load_replacements(&entries, dir, kfile)?;
                    for (i, r) in list.iter().enumerate() {
                        crate::replacement::apply(ra, r)
                            .map_err(|m| err(format!("replacements[{i}]: {m}")))?;
                    }
                }
                "HashTransformer" => {
                    // the content hash now; kustomize adds it again at the end
                    for res in ra.iter_mut().filter(|r| r.needs_hash) {
                        let hash = generator::content_hash(&res.obj);
                        res.store_prev_id();
                        let name = format!("{}-{hash}", res.name());
                        res.set_name(&name);
                    }
                }
                other => return Err(unsupported_builtin(kfile, "transformers", other)),
            }
            self.note_transformation(ra, &config.origin, &kind, Some(&config.name()));
        }
        Ok(())
    }
}

/// The built-in plugin a configuration names, or the error for an external
/// plugin.
fn builtin_kind(config: &Resource, kfile: &Path, field: &str) -> Result<String, RenderError> {
    let kind = config.kind().to_string();
    if config.api_version() != "builtin" {
        return Err(RenderError::Unsupported {
            file: kfile.to_path_buf(),
            field: field.to_string(),
            detail: format!(
                "plugin {kind:?} (apiVersion {:?}, name {:?}) is an external (exec or KRM function) plugin, which pilothouse render does not run; only `apiVersion: builtin` plugins are supported",
                config.api_version(),
                config.name()
            ),
        });
    }
    Ok(kind)
}

fn unsupported_builtin(kfile: &Path, field: &str, kind: &str) -> RenderError {
    RenderError::Unsupported {
        file: kfile.to_path_buf(),
        field: field.to_string(),
        detail: format!("built-in plugin {kind:?} is not supported here"),
    }
}

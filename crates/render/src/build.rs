//! Accumulating a kustomization: resources, generators, components, then
//! the transformers in kustomize's order. File access goes through
//! [`Loader`]; everything else is the pure modules.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::config::TransformerConfig;
use crate::error::RenderError;
use crate::fieldspec::FieldSpec;
use crate::generator::{self, GeneratedKind, GeneratorInput, Source};
use crate::kustomization::{Kustomization, PatchSpec, Replacement, ReplacementEntry, Var};
use crate::load::{Loader, Target};
use crate::patch;
use crate::resource::{self, Resource};
use crate::schema;
use crate::select::Matcher;
use crate::transform;
use crate::yaml;

/// The result of accumulating the top-level kustomization.
pub(crate) struct Accumulated {
    pub resources: Vec<Resource>,
    /// The transformer configuration of the whole tree.
    pub config: TransformerConfig,
    /// The vars declared anywhere in the tree.
    pub vars: Vec<Var>,
    /// `buildMetadata` of the top-level kustomization (the only one that
    /// counts).
    pub build_metadata: Vec<String>,
    /// `sortOptions.order` of the top-level kustomization ("" = legacy).
    pub order: String,
    pub order_first: Option<Vec<String>>,
    pub order_last: Option<Vec<String>>,
}

/// Walks kustomizations depth first.
pub(crate) struct Builder<'l> {
    pub(crate) loader: &'l Loader,
    /// The kustomization roots being accumulated, outermost first.
    roots: Vec<PathBuf>,
    /// kustomize's default transformer configuration, built once.
    defaults: TransformerConfig,
    /// Whether the top-level kustomization asks for the transformations
    /// annotation.
    record_transformations: bool,
}

/// What accumulating a kustomization yields: its resources, the field specs
/// its `configurations` (and those of what it includes) add to the
/// defaults, and its vars.
#[derive(Default)]
pub(crate) struct Acc {
    pub resources: Vec<Resource>,
    pub config: TransformerConfig,
    pub vars: Vec<Var>,
}

impl Acc {
    /// Takes in a sub-kustomization's configuration and vars (its resources
    /// are appended separately).
    fn merge_meta(&mut self, config: &TransformerConfig, vars: Vec<Var>) -> Result<(), String> {
        self.config.merge(config)?;
        for v in vars {
            if self.vars.iter().any(|mine| mine.name == v.name) {
                return Err(format!("var '{}' already encountered", v.name));
            }
            self.vars.push(v);
        }
        Ok(())
    }
}

fn yaml_error(path: &Path, source: yaml::YamlError) -> RenderError {
    RenderError::Yaml {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the resources of one file (multi-document, `List` kinds expanded).
pub(crate) fn parse_resources(text: &str, path: &Path) -> Result<Vec<Resource>, RenderError> {
    let docs = yaml::parse_documents(text).map_err(|e| yaml_error(path, e))?;
    let origin = Arc::new(path.to_path_buf());
    let invalid = |message: String| RenderError::InvalidResource {
        file: path.to_path_buf(),
        message,
    };
    let mut queue: std::collections::VecDeque<Value> = docs.into();
    let mut out = Vec::new();
    while let Some(doc) = queue.pop_front() {
        let map = match doc {
            Value::Null => continue,
            Value::Object(map) if map.is_empty() => continue,
            Value::Object(map) => map,
            other => {
                return Err(invalid(format!(
                    "missing Resource metadata: a document must be a mapping, found {}",
                    crate::yaml::write_documents(&[other]).trim_end()
                )));
            }
        };
        let kind = map.get("kind").and_then(Value::as_str).unwrap_or("");
        let mut unnamed_ok = false;
        if kind.ends_with("List") {
            match map.get("items") {
                // a kind that merely ends in "List" (kustomize keeps it,
                // named or not)
                None => unnamed_ok = true,
                Some(Value::Null) => continue,
                Some(Value::Array(items)) => {
                    queue.extend(items.iter().cloned());
                    continue;
                }
                Some(_) => {
                    return Err(invalid(format!("expected array in {kind}/items")));
                }
            }
        }
        let mut map = map;
        if unnamed_ok && !map.contains_key("metadata") {
            map.insert("metadata".into(), Value::Object(Map::new()));
        }
        let res = Resource::new(map, origin.clone());
        if res.kind().is_empty() {
            return Err(invalid(format!(
                "missing kind in object named {:?}",
                res.name()
            )));
        }
        if res.name().is_empty() && !unnamed_ok {
            return Err(invalid(format!(
                "missing metadata.name in object of kind {}",
                res.kind()
            )));
        }
        out.push(res);
    }
    Ok(out)
}

/// Appends resources, refusing a second resource with an id already present.
/// A hash of a resource's id as `ResId::key` compares it, computed from
/// borrowed text (no allocation): equal keys hash the same.
fn id_hash(res: &Resource) -> u64 {
    use std::hash::{Hash, Hasher};
    let api_version = res.api_version();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = res.kind();
    let namespace = res.namespace();
    let effective = if crate::schema::is_cluster_scoped(group, version, kind) {
        "~cluster"
    } else if namespace.is_empty() {
        "default"
    } else {
        &namespace
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (group, version, kind, &*res.name(), effective).hash(&mut h);
    h.finish()
}

/// Appends resources, refusing a second resource with an id already
/// present (`seen` holds the id hashes of `ra`; a hash seen before is
/// checked against the resources themselves).
fn append_all(
    ra: &mut Vec<Resource>,
    seen: &mut HashSet<u64>,
    more: Vec<Resource>,
    file: &Path,
) -> Result<(), RenderError> {
    for res in more {
        if !seen.insert(id_hash(&res)) {
            let id = res.cur_id();
            let key = id.key();
            if ra.iter().any(|r| r.cur_id().key() == key) {
                return Err(RenderError::Conflict {
                    file: file.to_path_buf(),
                    message: format!(
                        "may not add resource with an already registered id: {id} (from {})",
                        res.origin.display()
                    ),
                });
            }
        }
        ra.push(res);
    }
    Ok(())
}

fn unsupported(file: &Path, field: &str, detail: &str) -> RenderError {
    RenderError::Unsupported {
        file: file.to_path_buf(),
        field: field.to_string(),
        detail: detail.to_string(),
    }
}

fn non_empty<T>(v: &Option<Vec<T>>) -> bool {
    v.as_ref().is_some_and(|v| !v.is_empty())
}

/// Refuses the kustomization fields this renderer does not implement.
fn check_supported(k: &Kustomization, file: &Path) -> Result<(), RenderError> {
    if k.openapi.as_ref().is_some_and(|m| !m.is_empty()) {
        return Err(unsupported(
            file,
            "openapi",
            "custom OpenAPI schemas are not supported",
        ));
    }
    for (field, v) in [
        ("helmGlobals", &k.helm_globals),
        ("helmCharts", &k.helm_charts),
        (
            "helmChartInflationGenerator",
            &k.helm_chart_inflation_generator,
        ),
        ("inventory", &k.inventory),
    ] {
        if v.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(unsupported(
                file,
                field,
                "helm and inventory are not supported",
            ));
        }
    }
    for (field, v) in [("validators", &k.validators)] {
        if non_empty(v) {
            return Err(unsupported(file, field, "plugins are not supported"));
        }
    }
    if let Some(s) = &k.sort_options {
        if !matches!(s.order.as_str(), "legacy" | "fifo") {
            return Err(RenderError::InvalidKustomization {
                file: file.to_path_buf(),
                field: "sortOptions.order".into(),
                message: format!(
                    "the field 'sortOptions.order' must be one of [fifo, legacy], not {:?}",
                    s.order
                ),
            });
        }
        if s.order == "fifo" && s.legacy_sort_options.is_some() {
            return Err(RenderError::InvalidKustomization {
                file: file.to_path_buf(),
                field: "sortOptions.legacySortOptions".into(),
                message: "legacySortOptions is set but order is fifo".into(),
            });
        }
    }
    Ok(())
}

impl<'l> Builder<'l> {
    pub fn new(loader: &'l Loader) -> Self {
        Builder {
            loader,
            roots: Vec::new(),
            defaults: TransformerConfig::defaults(),
            record_transformations: false,
        }
    }

    /// Accumulates the top-level kustomization in `dir` (canonical).
    pub fn accumulate_top(&mut self, dir: &Path) -> Result<Accumulated, RenderError> {
        let (acc, k) = self.accumulate(dir, Acc::default(), None)?;
        let sort = k.sort_options.unwrap_or_default();
        let legacy = sort.legacy_sort_options.unwrap_or_default();
        let kfile = self.loader.kustomization_file(dir)?;
        let config =
            self.effective_config(&acc.config)
                .map_err(|message| RenderError::Transform {
                    file: kfile,
                    field: "configurations".into(),
                    message,
                })?;
        let build_metadata = k.build_metadata.clone().unwrap_or_default();
        Ok(Accumulated {
            resources: acc.resources,
            config: config.into_owned(),
            vars: acc.vars,
            build_metadata,
            order: sort.order,
            order_first: legacy.order_first,
            order_last: legacy.order_last,
        })
    }

    fn enter(&mut self, dir: &Path) -> Result<(), RenderError> {
        for visited in &self.roots {
            if visited.starts_with(dir) {
                let mut chain = self.roots.clone();
                chain.push(dir.to_path_buf());
                return Err(RenderError::Cycle { chain });
            }
        }
        self.roots.push(dir.to_path_buf());
        Ok(())
    }

    /// The defaults with `additions` merged in.
    fn effective_config(
        &self,
        additions: &TransformerConfig,
    ) -> Result<Cow<'_, TransformerConfig>, String> {
        if additions.is_empty() {
            return Ok(Cow::Borrowed(&self.defaults));
        }
        let mut config = self.defaults.clone();
        config.merge(additions)?;
        Ok(Cow::Owned(config))
    }

    /// Accumulates the kustomization in `dir`. `component_of` is the parent
    /// when `dir` is a component applied to the parent's accumulation `acc`.
    /// Accumulates the kustomization in `dir` as a resource directory.
    pub(crate) fn accumulate_dir(
        &mut self,
        dir: &Path,
        acc: Acc,
    ) -> Result<(Acc, Kustomization), RenderError> {
        self.accumulate(dir, acc, None)
    }

    fn accumulate(
        &mut self,
        dir: &Path,
        mut acc: Acc,
        component_of: Option<&Path>,
    ) -> Result<(Acc, Kustomization), RenderError> {
        self.enter(dir)?;
        let outcome = self.accumulate_inner(dir, &mut acc, component_of);
        self.roots.pop();
        outcome.map(|k| (acc, k))
    }

    fn accumulate_inner(
        &mut self,
        dir: &Path,
        acc: &mut Acc,
        component_of: Option<&Path>,
    ) -> Result<Kustomization, RenderError> {
        let kfile = self.loader.kustomization_file(dir)?;
        let text = self.loader.read_text(&kfile)?;
        let value = yaml::parse_kustomization(&text).map_err(|e| yaml_error(&kfile, e))?;
        let k = Kustomization::from_value(value, &kfile)?;
        check_supported(&k, &kfile)?;
        if self.roots.len() == 1 {
            self.record_transformations = k
                .build_metadata
                .iter()
                .flatten()
                .any(|m| m == "transformerAnnotations");
        }
        match component_of {
            Some(parent) if !k.is_component() => {
                return Err(RenderError::InvalidKustomization {
                    file: kfile.clone(),
                    field: "kind".into(),
                    message: format!(
                        "expected kind 'Component' for a component of {}, got {:?}",
                        parent.display(),
                        k.kind.as_deref().unwrap_or("Kustomization")
                    ),
                });
            }
            None if k.is_component() && !self.roots.is_empty() && self.roots.len() > 1 => {
                return Err(RenderError::InvalidKustomization {
                    file: kfile.clone(),
                    field: "kind".into(),
                    message: "a Component can only be used under 'components', not 'resources'"
                        .into(),
                });
            }
            _ => {}
        }

        // Resources (and the deprecated bases).
        let entries: Vec<(&str, &String)> = k
            .resources
            .iter()
            .flatten()
            .map(|e| ("resources", e))
            .chain(k.bases.iter().flatten().map(|e| ("bases", e)))
            .collect();
        let mut seen: HashSet<u64> = acc.resources.iter().map(id_hash).collect();
        let meta_err = |field: &str, message: String| RenderError::Transform {
            file: kfile.clone(),
            field: field.to_string(),
            message,
        };
        for (field, entry) in entries {
            match self.loader.resolve(dir, dir, entry, &kfile, field)? {
                Target::Dir(sub) => {
                    let (sub_acc, _) = self.accumulate(&sub, Acc::default(), None)?;
                    append_all(&mut acc.resources, &mut seen, sub_acc.resources, &kfile)?;
                    acc.merge_meta(&sub_acc.config, sub_acc.vars)
                        .map_err(|m| meta_err(field, m))?;
                }
                Target::File(path) => {
                    let text = self.loader.read_text(&path)?;
                    let resources = parse_resources(&text, &path)?;
                    append_all(&mut acc.resources, &mut seen, resources, &kfile)?;
                }
            }
        }

        for (i, entry) in k.configurations.iter().flatten().enumerate() {
            let field = format!("configurations[{i}]");
            let path = self.loader.resolve_file(dir, entry, &kfile, &field)?;
            let text = self.loader.read_text(&path)?;
            let value = yaml::parse_kustomization(&text).map_err(|e| yaml_error(&path, e))?;
            let config = TransformerConfig::from_value(&value).map_err(|message| {
                RenderError::InvalidKustomization {
                    file: path.clone(),
                    field: field.clone(),
                    message,
                }
            })?;
            acc.config.merge(&config).map_err(|m| meta_err(&field, m))?;
        }

        for (i, entry) in k.crds.iter().flatten().enumerate() {
            let field = format!("crds[{i}]");
            let path = self.loader.resolve_file(dir, entry, &kfile, &field)?;
            let text = self.loader.read_text(&path)?;
            let value = yaml::parse_single(&text).map_err(|e| yaml_error(&path, e))?;
            let config = crate::config::from_crd_definitions(&value).map_err(|message| {
                RenderError::InvalidKustomization {
                    file: path.clone(),
                    field: field.clone(),
                    message: format!("unable to parse open API definition: {message}"),
                }
            })?;
            acc.config.merge(&config).map_err(|m| meta_err(&field, m))?;
        }

        self.run_generators(&k, dir, &kfile, &mut acc.resources)?;
        if let Some(entries) = k.generators.as_ref().filter(|e| !e.is_empty()) {
            self.run_plugin_generators(entries, dir, &kfile, &mut acc.resources)?;
        }

        for entry in k.components.iter().flatten() {
            match self.loader.resolve(dir, dir, entry, &kfile, "components")? {
                Target::Dir(sub) => {
                    let taken = std::mem::take(acc);
                    let (out, _) = self.accumulate(&sub, taken, Some(dir))?;
                    *acc = out;
                }
                Target::File(path) => {
                    return Err(RenderError::InvalidKustomization {
                        file: kfile.clone(),
                        field: "components".into(),
                        message: format!(
                            "{} is a file; a component must be a directory",
                            path.display()
                        ),
                    });
                }
            }
        }

        let config = self
            .effective_config(&acc.config)
            .map_err(|m| meta_err("configurations", m))?;
        self.run_transformers(&k, dir, &kfile, &config, &mut acc.resources)?;
        if let Some(entries) = k.transformers.as_ref().filter(|e| !e.is_empty()) {
            self.run_plugin_transformers(entries, dir, &kfile, &mut acc.resources)?;
        }
        let vars = k.vars.clone().unwrap_or_default();
        crate::vars::record(&mut acc.resources, &vars).map_err(|m| meta_err("vars", m))?;
        acc.merge_meta(&TransformerConfig::default(), vars)
            .map_err(|m| meta_err("vars", m))?;
        Ok(k)
    }

    fn run_generators(
        &self,
        k: &Kustomization,
        dir: &Path,
        kfile: &Path,
        ra: &mut Vec<Resource>,
    ) -> Result<(), RenderError> {
        let origin = Arc::new(kfile.to_path_buf());
        let global = k.generator_options.as_ref();
        let mut inputs = Vec::new();
        for (i, g) in k.config_map_generator.iter().flatten().enumerate() {
            let field = format!("configMapGenerator[{i}]");
            let sources = self.generator_sources(
                dir,
                kfile,
                &field,
                g.literals.as_deref(),
                g.files.as_deref(),
                g.envs.as_deref(),
                g.env.as_deref(),
            )?;
            inputs.push((
                field,
                GeneratorInput {
                    kind: GeneratedKind::ConfigMap,
                    name: g.name.clone(),
                    namespace: g.namespace.clone(),
                    behavior: g.behavior.clone(),
                    secret_type: String::new(),
                    sources,
                    options: generator::merge_options(g.options.as_ref(), global),
                },
            ));
        }
        for (i, g) in k.secret_generator.iter().flatten().enumerate() {
            let field = format!("secretGenerator[{i}]");
            let sources = self.generator_sources(
                dir,
                kfile,
                &field,
                g.literals.as_deref(),
                g.files.as_deref(),
                g.envs.as_deref(),
                g.env.as_deref(),
            )?;
            inputs.push((
                field,
                GeneratorInput {
                    kind: GeneratedKind::Secret,
                    name: g.name.clone(),
                    namespace: g.namespace.clone(),
                    behavior: g.behavior.clone(),
                    secret_type: g.secret_type.clone(),
                    sources,
                    options: generator::merge_options(g.options.as_ref(), global),
                },
            ));
        }
        for (field, input) in inputs {
            let transform_err = |message: String| RenderError::Transform {
                file: kfile.to_path_buf(),
                field: field.clone(),
                message,
            };
            let res = generator::generate(&input, origin.clone()).map_err(transform_err)?;
            generator::absorb(ra, res).map_err(transform_err)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn generator_sources(
        &self,
        dir: &Path,
        kfile: &Path,
        field: &str,
        literals: Option<&[String]>,
        files: Option<&[String]>,
        envs: Option<&[String]>,
        env: Option<&str>,
    ) -> Result<Vec<Source>, RenderError> {
        let mut sources = Vec::new();
        for lit in literals.into_iter().flatten() {
            sources.push(Source::Literal(lit.clone()));
        }
        for spec in files.into_iter().flatten() {
            let (key, path) = match spec.split_once('=') {
                Some((k, p)) => {
                    if k.is_empty() {
                        return Err(RenderError::InvalidKustomization {
                            file: kfile.to_path_buf(),
                            field: format!("{field}.files"),
                            message: format!("key name for file path {p} missing"),
                        });
                    }
                    (k.to_string(), p.to_string())
                }
                None => {
                    let base = Path::new(spec)
                        .file_name()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (base, spec.clone())
                }
            };
            let resolved =
                self.loader
                    .resolve_file(dir, &path, kfile, &format!("{field}.files"))?;
            let bytes = self.loader.read_bytes(&resolved)?;
            sources.push(Source::File { key, bytes });
        }
        for entry in envs
            .into_iter()
            .flatten()
            .chain(env.map(str::to_string).as_ref())
        {
            let resolved = self
                .loader
                .resolve_file(dir, entry, kfile, &format!("{field}.envs"))?;
            let text = self.loader.read_text(&resolved)?;
            sources.push(Source::Env {
                file: entry.clone(),
                text,
            });
        }
        Ok(sources)
    }

    fn run_transformers(
        &self,
        k: &Kustomization,
        dir: &Path,
        kfile: &Path,
        config: &TransformerConfig,
        ra: &mut Vec<Resource>,
    ) -> Result<(), RenderError> {
        let err = |field: &str, message: String| RenderError::Transform {
            file: kfile.to_path_buf(),
            field: field.to_string(),
            message,
        };

        let note = |ra: &mut Vec<Resource>, kind: &str| {
            self.note_transformation(ra, kfile, kind, None);
        };

        // patchesStrategicMerge
        for (i, entry) in k.patches_strategic_merge.iter().flatten().enumerate() {
            let field = format!("patchesStrategicMerge[{i}]");
            self.apply_smp_entry(dir, kfile, &field, entry, ra)?;
        }
        if non_empty(&k.patches_strategic_merge) {
            note(ra, "PatchStrategicMergeTransformer");
        }

        // patches
        for (i, spec) in k.patches.iter().flatten().enumerate() {
            let field = format!("patches[{i}]");
            self.apply_patch_entry(spec, dir, kfile, &field, ra, false)?;
            note(ra, "PatchTransformer");
        }

        if let Some(ns) = k.namespace.as_deref().filter(|s| !s.is_empty()) {
            transform::set_namespace(ra, ns, &config.namespace).map_err(|m| err("namespace", m))?;
            note(ra, "NamespaceTransformer");
        }
        let prefix = k.name_prefix.as_deref().unwrap_or("");
        let suffix = k.name_suffix.as_deref().unwrap_or("");
        if !prefix.is_empty() || !suffix.is_empty() {
            // one transformer for both, as in kustomize; the prefix's
            // field specs (the suffix's other than `metadata/name` too)
            let mut specs = config.name_prefix.clone();
            specs.extend(
                config
                    .name_suffix
                    .iter()
                    .filter(|s| !specs.iter().any(|p| p.gvk == s.gvk && p.path == s.path))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            transform::add_name_affix(ra, prefix, suffix, &specs)
                .map_err(|m| err("namePrefix", m))?;
            if !prefix.is_empty() {
                note(ra, "PrefixTransformer");
            }
            if !suffix.is_empty() {
                note(ra, "SuffixTransformer");
            }
        }

        // labels, then commonLabels
        let common = k.common_labels.clone().unwrap_or_default();
        for (i, label) in k.labels.iter().flatten().enumerate() {
            let field = format!("labels[{i}]");
            let pairs = label.pairs.clone().unwrap_or_default();
            let fields: Vec<FieldSpec> = label
                .fields
                .iter()
                .flatten()
                .map(|f| FieldSpec::new(&f.group, &f.version, &f.kind, &f.path, f.create))
                .collect();
            let specs = transform::label_specs(
                label.include_selectors,
                label.include_templates,
                &fields,
                config,
            );
            transform::add_map_entries(ra, &pairs, &specs).map_err(|m| err(&field, m))?;
            note(ra, "LabelTransformer");
        }
        if !common.is_empty() {
            transform::add_map_entries(ra, &common, &config.common_labels)
                .map_err(|m| err("commonLabels", m))?;
            note(ra, "LabelTransformer");
        }
        if let Some(annotations) = k.common_annotations.as_ref().filter(|m| !m.is_empty()) {
            transform::add_map_entries(ra, annotations, &config.common_annotations)
                .map_err(|m| err("commonAnnotations", m))?;
            note(ra, "AnnotationsTransformer");
        }

        // patchesJson6902
        for (i, spec) in k.patches_json6902.iter().flatten().enumerate() {
            let field = format!("patchesJson6902[{i}]");
            self.apply_patch_entry(spec, dir, kfile, &field, ra, true)?;
            note(ra, "PatchJson6902Transformer");
        }

        if let Some(entries) = k.replicas.as_deref() {
            transform::set_all_replicas(ra, entries, &config.replicas)
                .map_err(|(i, m)| err(&format!("replicas[{i}]"), m))?;
            for _ in entries {
                note(ra, "ReplicaCountTransformer");
            }
        }
        for (i, image) in k
            .images
            .iter()
            .flatten()
            .chain(k.image_tags.iter().flatten())
            .enumerate()
        {
            transform::set_image(ra, image, &config.images)
                .map_err(|m| err(&format!("images[{i}]"), m))?;
            note(ra, "ImageTagTransformer");
        }

        if let Some(entries) = k.replacements.as_ref() {
            let list = self.load_replacements(entries, dir, kfile)?;
            for (i, r) in list.iter().enumerate() {
                crate::replacement::apply(ra, r)
                    .map_err(|m| err(&format!("replacements[{i}]"), m))?;
            }
            if !entries.is_empty() {
                note(ra, "ReplacementTransformer");
            }
        }
        Ok(())
    }

    /// Records, when the top-level kustomization asks for
    /// `transformerAnnotations`, that a transformer configured in `kfile`
    /// ran over the resources.
    pub(crate) fn note_transformation(
        &self,
        ra: &mut [Resource],
        kfile: &Path,
        kind: &str,
        name: Option<&str>,
    ) {
        if !self.record_transformations {
            return;
        }
        let by = Arc::new(crate::resource::Transformation {
            configured_in: kfile.to_path_buf(),
            kind: kind.to_string(),
            name: name.map(str::to_string),
        });
        for res in ra.iter_mut() {
            res.transformations.push(by.clone());
        }
    }

    /// Applies one `patchesStrategicMerge` entry (a file or inline YAML).
    pub(crate) fn apply_smp_entry(
        &self,
        dir: &Path,
        kfile: &Path,
        field: &str,
        entry: &str,
        ra: &mut Vec<Resource>,
    ) -> Result<(), RenderError> {
        let (text, source) = self.inline_or_file(dir, kfile, field, entry)?;
        self.apply_smp_text(kfile, field, &text, &source, ra)
    }

    /// Applies the strategic merge patches of a text, each to the resource
    /// its id names.
    pub(crate) fn apply_smp_text(
        &self,
        kfile: &Path,
        field: &str,
        text: &str,
        source: &Path,
        ra: &mut Vec<Resource>,
    ) -> Result<(), RenderError> {
        let err = |message: String| RenderError::Transform {
            file: kfile.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let docs = yaml::parse_documents(text).map_err(|e| yaml_error(source, e))?;
        if docs.iter().all(Value::is_null) {
            return Err(err(format!(
                "patch appears to be empty: {}",
                source.display()
            )));
        }
        for doc in docs {
            match doc {
                Value::Null => {}
                Value::Object(p) if p.is_empty() => {}
                Value::Object(p) => apply_smp_by_id(ra, &p, false, false).map_err(err)?,
                _ => return Err(err("a strategic merge patch must be a mapping".into())),
            }
        }
        Ok(())
    }

    /// `patchesStrategicMerge` entries are a file path when such a file
    /// exists, inline YAML otherwise.
    fn inline_or_file(
        &self,
        dir: &Path,
        kfile: &Path,
        field: &str,
        entry: &str,
    ) -> Result<(String, PathBuf), RenderError> {
        let candidate = dir.join(entry);
        let single_line = !entry.trim().contains('\n');
        if single_line && (candidate.exists() || std::fs::symlink_metadata(&candidate).is_ok()) {
            let path = self.loader.resolve_file(dir, entry, kfile, field)?;
            let text = self.loader.read_text(&path)?;
            return Ok((text, path));
        }
        if single_line {
            let t = entry.trim();
            if looks_like_path(t) {
                if crate::load::looks_remote(t) {
                    return Err(RenderError::RemoteNotSupported {
                        file: kfile.to_path_buf(),
                        field: field.to_string(),
                        target: t.to_string(),
                    });
                }
                return Err(RenderError::NotFound {
                    file: kfile.to_path_buf(),
                    field: field.to_string(),
                    target: candidate,
                });
            }
        }
        Ok((entry.to_string(), kfile.to_path_buf()))
    }

    pub(crate) fn apply_patch_entry(
        &self,
        spec: &PatchSpec,
        dir: &Path,
        kfile: &Path,
        field: &str,
        ra: &mut Vec<Resource>,
        json_only: bool,
    ) -> Result<(), RenderError> {
        let err = |message: String| RenderError::Transform {
            file: kfile.to_path_buf(),
            field: field.to_string(),
            message,
        };
        let mut allow_name = false;
        let mut allow_kind = false;
        for (key, value) in spec.options.iter().flatten() {
            match key.as_str() {
                "allowNameChange" => allow_name = *value,
                "allowKindChange" => allow_kind = *value,
                other => {
                    return Err(RenderError::InvalidKustomization {
                        file: kfile.to_path_buf(),
                        field: format!("{field}.options.{other}"),
                        message: "unknown patch option (allowNameChange or allowKindChange)".into(),
                    });
                }
            }
        }
        let inline = spec.patch.as_deref().map(str::trim).unwrap_or("");
        let path = spec.path.as_deref().unwrap_or("");
        let (text, source) = match (inline.is_empty(), path.is_empty()) {
            (true, true) => return Err(err("must specify one of patch and path".into())),
            (false, false) => {
                return Err(err("patch and path can't be set at the same time".into()));
            }
            (false, true) => (inline.to_string(), kfile.to_path_buf()),
            (true, false) => {
                let resolved =
                    self.loader
                        .resolve_file(dir, path, kfile, &format!("{field}.path"))?;
                (self.loader.read_text(&resolved)?, resolved)
            }
        };
        let docs = yaml::parse_documents(&text).map_err(|e| yaml_error(&source, e))?;
        let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
        let blank = text.trim().is_empty();
        let no_ops = match docs.as_slice() {
            [] => true,
            [Value::Array(ops)] => ops.is_empty(),
            _ => false,
        };
        if json_only && no_ops {
            return Err(err("patch appears to be empty".into()));
        }
        // kustomize reads a `patches` entry as both kinds: text without
        // documents (comments, `---`) or an empty operation list is both
        // at once, which it refuses; empty text is an empty JSON patch.
        if !json_only && no_ops && !blank {
            return Err(err(
                "illegally qualifies as both an SM and JSON patch".into()
            ));
        }
        let is_json = json_only || blank || docs.first().is_some_and(Value::is_array);
        if is_json {
            let Some(target) = spec.target.as_ref() else {
                return Err(err("must specify a target for JSON patch".into()));
            };
            let ops = match docs.as_slice() {
                [one] => patch::json_ops(one).map_err(&err)?,
                [] => Vec::new(),
                _ => return Err(err("a JSON patch must be a single document".into())),
            };
            let matcher = Matcher::new(target).map_err(&err)?;
            for res in ra.iter_mut() {
                if !matcher.selects_for_patch(res) {
                    continue;
                }
                res.store_prev_id();
                let id = res.cur_id();
                // kustomize lets `add` and `replace` write into, and `remove`
                // drop, `/metadata/annotations` of an object without
                // annotations (as if it had some: its own, hidden ones)
                let mut added_annotations = false;
                let mut doc = Value::Object(std::mem::take(&mut res.obj));
                let mut outcome = Ok(());
                for op in &ops {
                    let touches = match op.op.as_str() {
                        "add" | "replace" => op.path.starts_with("/metadata/annotations/"),
                        "remove" => op.path == "/metadata/annotations",
                        _ => false,
                    };
                    if touches
                        && let Some(Value::Object(meta)) = doc.get_mut("metadata")
                        && !meta.contains_key("annotations")
                    {
                        meta.insert("annotations".into(), Value::Object(Map::new()));
                        added_annotations = true;
                    }
                    outcome = patch::json_patch(&mut doc, std::slice::from_ref(op));
                    if outcome.is_err() {
                        break;
                    }
                }
                if added_annotations
                    && let Some(Value::Object(meta)) = doc.get_mut("metadata")
                    && meta
                        .get("annotations")
                        .is_some_and(|a| a.as_object().is_some_and(Map::is_empty))
                {
                    meta.shift_remove("annotations");
                }
                match doc {
                    Value::Object(map) => res.obj = map,
                    _ => return Err(err(format!("JSON patch turned {id} into a non-object"))),
                }
                outcome.map_err(|m| err(format!("{id}: {m}")))?;
            }
            return Ok(());
        }
        let mut patches = Vec::new();
        for doc in docs {
            match doc {
                Value::Object(p) if p.is_empty() => {}
                Value::Object(p) => patches.push(p),
                _ => return Err(err(
                    "unable to parse SM or JSON patch: a document is neither a mapping nor a list"
                        .into(),
                )),
            }
        }
        match spec.target.as_ref() {
            None => {
                for p in &patches {
                    apply_smp_by_id(ra, p, allow_name, allow_kind).map_err(&err)?;
                }
            }
            Some(target) => {
                if patches.len() > 1 {
                    return Err(err(
                        "multiple strategic merge patches in one `patches` entry may not set `target`".into(),
                    ));
                }
                let matcher = Matcher::new(target).map_err(&err)?;
                for p in &patches {
                    let selected: Vec<bool> =
                        ra.iter().map(|r| matcher.selects_for_patch(r)).collect();
                    let mut kept = Vec::with_capacity(ra.len());
                    for (res, sel) in std::mem::take(ra).into_iter().zip(selected) {
                        if !sel {
                            kept.push(res);
                            continue;
                        }
                        if let Some(res) =
                            apply_smp(res, p, allow_name, allow_kind).map_err(&err)?
                        {
                            kept.push(res);
                        }
                    }
                    *ra = kept;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn load_replacements(
        &self,
        entries: &[ReplacementEntry],
        dir: &Path,
        kfile: &Path,
    ) -> Result<Vec<Replacement>, RenderError> {
        let mut out = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let field = format!("replacements[{i}]");
            match entry.path.as_deref() {
                Some(path) => {
                    if entry.source.is_some() || entry.targets.is_some() {
                        return Err(RenderError::InvalidKustomization {
                            file: kfile.to_path_buf(),
                            field,
                            message: "cannot specify both path and inline replacement".into(),
                        });
                    }
                    let resolved =
                        self.loader
                            .resolve_file(dir, path, kfile, &format!("{field}.path"))?;
                    let text = self.loader.read_text(&resolved)?;
                    let value = yaml::parse_single(&text).map_err(|e| yaml_error(&resolved, e))?;
                    let items = match value {
                        Value::Array(items) => items,
                        other => vec![other],
                    };
                    for item in items {
                        let r: Replacement = crate::kustomization::decode_strict(item).map_err(
                            |(inner, message)| RenderError::InvalidKustomization {
                                file: resolved.clone(),
                                field: format!("{field}: {inner}"),
                                message,
                            },
                        )?;
                        out.push(r);
                    }
                }
                None => out.push(Replacement {
                    source: entry.source.clone(),
                    targets: entry.targets.clone(),
                }),
            }
        }
        Ok(out)
    }
}

fn looks_like_path(s: &str) -> bool {
    !s.contains(": ")
        && !s.contains('{')
        && !s.starts_with('-')
        && (s.ends_with(".yaml") || s.ends_with(".yml") || s.ends_with(".json") || s.contains('/'))
}

fn patch_id_text(p: &Map<String, Value>) -> String {
    let get = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
    let meta = p.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let ns = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if ns.is_empty() {
        format!("{} {} {}", get("apiVersion"), get("kind"), name)
    } else {
        format!("{} {} {}/{}", get("apiVersion"), get("kind"), ns, name)
    }
}

/// Applies a strategic merge patch to the one resource its id names.
fn apply_smp_by_id(
    ra: &mut Vec<Resource>,
    p: &Map<String, Value>,
    allow_name: bool,
    allow_kind: bool,
) -> Result<(), String> {
    let probe = Resource::new(p.clone(), Arc::new(PathBuf::new()));
    let id = probe.cur_id();
    let matches = resource::positions_matching(ra, &id);
    match matches.as_slice() {
        [] => Err(format!(
            "no matches for Id {}; failed to find unique target for patch",
            patch_id_text(p)
        )),
        [i] => {
            let res = ra.remove(*i);
            if let Some(res) = apply_smp(res, p, allow_name, allow_kind)? {
                ra.insert(*i, res);
            }
            Ok(())
        }
        _ => Err(format!(
            "multiple matches for Id {}; failed to find unique target for patch",
            patch_id_text(p)
        )),
    }
}

/// Applies a strategic merge patch to one resource, keeping its api version,
/// kind, name and namespace unless the patch may change them. `None` when
/// the patch deleted the resource.
fn apply_smp(
    mut res: Resource,
    p: &Map<String, Value>,
    allow_name: bool,
    allow_kind: bool,
) -> Result<Option<Resource>, String> {
    let api_version = res.obj.get("apiVersion").cloned();
    let kind = res.kind().to_string();
    let name = res.name().to_string();
    let namespace = res.namespace().to_string();
    if allow_name || allow_kind {
        res.store_prev_id();
    }
    let gvk = res.gvk();
    let root = schema::root(&gvk.group, &gvk.version, &gvk.kind);
    let id = res.cur_id();
    let Some(merged) = patch::strategic_merge(std::mem::take(&mut res.obj), p, root)
        .map_err(|e| format!("{id}: {e}"))?
    else {
        return Ok(None);
    };
    res.obj = merged;
    if res.obj.is_empty() {
        return Ok(None);
    }
    match api_version {
        Some(v) => {
            res.obj.insert("apiVersion".into(), v);
        }
        None => {
            res.obj.remove("apiVersion");
        }
    }
    if !allow_kind {
        res.obj.insert("kind".into(), Value::String(kind));
    }
    if !allow_name {
        res.set_name(&name);
    }
    if namespace.is_empty() {
        if let Some(Value::Object(meta)) = res.obj.get_mut("metadata") {
            meta.remove("namespace");
        }
    } else {
        res.set_namespace(&namespace);
    }
    Ok(Some(res))
}

/// The label `buildMetadata: [managedByLabel]` adds, with the version
/// `kubectl kustomize` reports.
const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kustomize-(devel)");

/// Adds the managed-by label of `buildMetadata: [managedByLabel]`.
pub(crate) fn label_managed_by(res: &mut Resource) {
    let meta = res.metadata_mut();
    let labels = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Map::new()));
    if !labels.is_object() {
        *labels = Value::Object(Map::new());
    }
    if let Value::Object(labels) = labels {
        labels.insert(MANAGED_BY.0.into(), Value::String(MANAGED_BY.1.into()));
    }
}

/// `path` relative to `base` (both absolute), with `..` where needed.
fn relative_to(path: &Path, base: &Path) -> String {
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut parts: Vec<String> = vec!["..".to_string(); b.len() - common];
    parts.extend(
        p[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// Adds the `config.kubernetes.io/origin` annotation of `buildMetadata:
/// [originAnnotations]`: the file a resource was read from, or the
/// kustomization and generator that made it, relative to `top`.
pub(crate) fn annotate_origin(res: &mut Resource, top: &Path) {
    let place = relative_to(&res.origin, top);
    let text = match res.generated_by {
        None => format!("path: {place}\n"),
        Some(kind) => {
            let mut text = format!(
                "configuredIn: {place}\nconfiguredBy:\n  apiVersion: builtin\n  kind: {kind}\n"
            );
            if let Some(name) = &res.generator_name {
                text.push_str(&format!("  name: {name}\n"));
            }
            text
        }
    };
    let meta = res.metadata_mut();
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    if let Value::Object(a) = annotations {
        a.insert("config.kubernetes.io/origin".into(), Value::String(text));
    }
}

/// Adds the `alpha.config.kubernetes.io/transformations` annotation of
/// `buildMetadata: [transformerAnnotations]`: the transformers that ran over
/// a resource, with where they are configured (relative to `top`).
pub(crate) fn annotate_transformations(res: &mut Resource, top: &Path) {
    if res.transformations.is_empty() {
        return;
    }
    let mut text = String::new();
    for t in &res.transformations {
        text.push_str(&format!(
            "- configuredIn: {}\n  configuredBy:\n    apiVersion: builtin\n    kind: {}\n",
            relative_to(&t.configured_in, top),
            t.kind
        ));
        if let Some(name) = &t.name {
            text.push_str(&format!("    name: {name}\n"));
        }
    }
    let meta = res.metadata_mut();
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    if let Value::Object(a) = annotations {
        a.insert(
            "alpha.config.kubernetes.io/transformations".into(),
            Value::String(text),
        );
    }
}

/// Turns labels/annotations maps the way kustomize writes them out.
pub(crate) fn finalize(res: &mut Resource) {
    if let Some(Value::Object(meta)) = res.obj.get_mut("metadata") {
        let drop = match meta.get_mut("annotations") {
            Some(Value::Object(a)) if a.is_empty() => true,
            Some(Value::Object(a)) => {
                for v in a.values_mut() {
                    if let Some(text) = scalar_string(v) {
                        *v = Value::String(text);
                    }
                }
                false
            }
            Some(Value::Null) => true,
            _ => false,
        };
        if drop {
            meta.remove("annotations");
        }
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("null".into()),
        Value::Number(n) => Some(yaml::number_text(n)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Orders resources as kustomize's legacy sort does.
pub(crate) fn legacy_sort(
    resources: &mut Vec<Resource>,
    order_first: Option<&[String]>,
    order_last: Option<&[String]>,
) {
    let rank = |kind: &str| -> i64 {
        match (order_first, order_last) {
            (None, None) => i64::from(schema::legacy_kind_rank(kind)),
            _ => {
                let first = order_first.unwrap_or(&[]);
                let last = order_last.unwrap_or(&[]);
                if let Some(i) = first.iter().position(|k| k == kind) {
                    i as i64 - first.len() as i64
                } else if let Some(i) = last.iter().position(|k| k == kind) {
                    1 + i as i64
                } else {
                    0
                }
            }
        }
    };
    let mut keyed: Vec<(i64, String, String, usize)> = resources
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let id = r.cur_id();
            let or = |s: &str, d: &str| {
                if s.is_empty() {
                    d.to_string()
                } else {
                    s.to_string()
                }
            };
            let rest = format!("{}|{}", or(&id.namespace, "~X"), or(&id.name, "~N"));
            (rank(&id.gvk.kind), id.gvk.legacy_string(), rest, i)
        })
        .collect();
    keyed.sort();
    let order: Vec<usize> = keyed.into_iter().map(|k| k.3).collect();
    let mut taken: Vec<Option<Resource>> = resources.drain(..).map(Some).collect();
    resources.extend(order.into_iter().filter_map(|i| taken[i].take()));
}

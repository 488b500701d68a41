//! The kustomization file, read strictly: an unknown field is an error, as it
//! is for kustomize.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::error::RenderError;

/// The names a kustomization file may have, in kustomize's order.
pub(crate) const FILE_NAMES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// A kustomization (or component) as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Kustomization {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    #[serde(rename = "metadata")]
    pub _metadata: Option<KustomizationMeta>,
    #[serde(rename = "openapi")]
    pub openapi: Option<BTreeMap<String, String>>,
    pub name_prefix: Option<String>,
    pub name_suffix: Option<String>,
    pub namespace: Option<String>,
    pub common_labels: Option<BTreeMap<String, String>>,
    pub labels: Option<Vec<LabelSpec>>,
    pub common_annotations: Option<BTreeMap<String, String>>,
    pub patches_strategic_merge: Option<Vec<String>>,
    pub patches_json6902: Option<Vec<PatchSpec>>,
    pub patches: Option<Vec<PatchSpec>>,
    pub images: Option<Vec<ImageSpec>>,
    pub image_tags: Option<Vec<ImageSpec>>,
    pub replacements: Option<Vec<ReplacementEntry>>,
    pub replicas: Option<Vec<ReplicaSpec>>,
    pub vars: Option<Vec<Var>>,
    pub sort_options: Option<SortOptions>,
    pub resources: Option<Vec<String>>,
    pub components: Option<Vec<String>>,
    pub crds: Option<Vec<String>>,
    pub bases: Option<Vec<String>>,
    pub config_map_generator: Option<Vec<ConfigMapArgs>>,
    pub secret_generator: Option<Vec<SecretArgs>>,
    pub helm_globals: Option<Value>,
    pub helm_charts: Option<Value>,
    pub helm_chart_inflation_generator: Option<Value>,
    pub generator_options: Option<GeneratorOptions>,
    pub configurations: Option<Vec<String>>,
    pub generators: Option<Vec<String>>,
    pub transformers: Option<Vec<String>>,
    pub validators: Option<Vec<String>>,
    pub inventory: Option<Value>,
    pub build_metadata: Option<Vec<String>>,
}

/// `metadata` of a kustomization (informational).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KustomizationMeta {
    #[serde(rename = "name")]
    pub _name: Option<String>,
    #[serde(rename = "namespace")]
    pub _namespace: Option<String>,
    #[serde(rename = "labels")]
    pub _labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "annotations")]
    pub _annotations: Option<BTreeMap<String, String>>,
}

/// One entry of `labels`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LabelSpec {
    pub pairs: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub include_selectors: bool,
    #[serde(default)]
    pub include_templates: bool,
    pub fields: Option<Vec<FieldSpecArgs>>,
}

/// A field spec as written in a kustomization (`labels[].fields`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldSpecArgs {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub create: bool,
}

/// One entry of `patches` or `patchesJson6902`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchSpec {
    pub path: Option<String>,
    pub patch: Option<String>,
    pub target: Option<Selector>,
    pub options: Option<BTreeMap<String, bool>>,
}

/// A resource selector (`target`, `select`, `reject`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Selector {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub label_selector: String,
    #[serde(default)]
    pub annotation_selector: String,
}

/// One entry of `images`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ImageSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub new_name: String,
    #[serde(default)]
    pub new_tag: String,
    #[serde(default)]
    pub digest: String,
    #[serde(default)]
    pub tag_suffix: String,
}

/// One entry of `replicas`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplicaSpec {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub count: i64,
}

/// `sortOptions`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SortOptions {
    #[serde(default)]
    pub order: String,
    pub legacy_sort_options: Option<LegacySortOptions>,
}

/// `sortOptions.legacySortOptions`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LegacySortOptions {
    pub order_first: Option<Vec<String>>,
    pub order_last: Option<Vec<String>>,
}

/// Generator options (global `generatorOptions` or per generator).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct GeneratorOptions {
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub disable_name_suffix_hash: Option<bool>,
    pub immutable: Option<bool>,
}

/// One entry of `configMapGenerator`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigMapArgs {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub behavior: String,
    pub literals: Option<Vec<String>>,
    pub files: Option<Vec<String>>,
    pub envs: Option<Vec<String>>,
    pub env: Option<String>,
    pub options: Option<GeneratorOptions>,
}

/// One entry of `secretGenerator`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretArgs {
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub behavior: String,
    pub literals: Option<Vec<String>>,
    pub files: Option<Vec<String>>,
    pub envs: Option<Vec<String>>,
    pub env: Option<String>,
    pub options: Option<GeneratorOptions>,
    #[serde(rename = "type", default)]
    pub secret_type: String,
}

/// One entry of the legacy `vars`: `$(name)` is replaced by the value at
/// `fieldref.fieldPath` of the object `objref` names.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Var {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub objref: VarTarget,
    #[serde(default)]
    pub fieldref: VarField,
}

/// `vars[].objref`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct VarTarget {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

/// `vars[].fieldref`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct VarField {
    #[serde(default)]
    pub field_path: String,
}

/// One entry of `replacements`: inline or from a file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplacementEntry {
    pub path: Option<String>,
    pub source: Option<SourceSelector>,
    pub targets: Option<Vec<TargetSelector>>,
}

/// A replacement read from its own file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Replacement {
    pub source: Option<SourceSelector>,
    pub targets: Option<Vec<TargetSelector>>,
}

/// `replacements[].source`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SourceSelector {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub field_path: String,
    pub options: Option<FieldOptions>,
}

/// `replacements[].targets[]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TargetSelector {
    pub select: Option<Selector>,
    pub reject: Option<Vec<Selector>>,
    pub field_paths: Option<Vec<String>>,
    pub options: Option<FieldOptions>,
}

/// Options of a replacement source or target.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FieldOptions {
    #[serde(default)]
    pub delimiter: String,
    #[serde(default)]
    pub index: i64,
    #[serde(default)]
    pub encoding: String,
    #[serde(default)]
    pub create: bool,
}

impl Kustomization {
    /// Decodes a parsed kustomization document, strictly.
    pub fn from_value(value: Value, file: &Path) -> Result<Self, RenderError> {
        let empty = match &value {
            Value::Null => true,
            Value::Object(map) => map.keys().all(|k| k == "apiVersion" || k == "kind"),
            _ => false,
        };
        if empty {
            return Err(RenderError::InvalidKustomization {
                file: file.to_path_buf(),
                field: "(document)".into(),
                message: "kustomization is empty".into(),
            });
        }
        let value = match value {
            v @ Value::Object(_) => v,
            _ => {
                return Err(RenderError::InvalidKustomization {
                    file: file.to_path_buf(),
                    field: "(document)".into(),
                    message: "a kustomization must be a mapping".into(),
                });
            }
        };
        let k: Kustomization =
            decode_strict(value).map_err(|(field, message)| RenderError::InvalidKustomization {
                file: file.to_path_buf(),
                field,
                message,
            })?;
        k.check_kind(file)?;
        Ok(k)
    }

    /// Whether this is a `kind: Component`.
    pub fn is_component(&self) -> bool {
        self.kind.as_deref() == Some("Component")
    }

    fn check_kind(&self, file: &Path) -> Result<(), RenderError> {
        let invalid = |field: &str, message: String| RenderError::InvalidKustomization {
            file: file.to_path_buf(),
            field: field.into(),
            message,
        };
        let kind = self.kind.as_deref().unwrap_or("");
        if !kind.is_empty() && kind != "Kustomization" && kind != "Component" {
            return Err(invalid(
                "kind",
                format!("kind should be Kustomization or Component, not {kind:?}"),
            ));
        }
        let required = if kind == "Component" {
            "kustomize.config.k8s.io/v1alpha1"
        } else {
            "kustomize.config.k8s.io/v1beta1"
        };
        if let Some(v) = self.api_version.as_deref()
            && !v.is_empty()
            && v != required
        {
            let shown = if kind.is_empty() {
                "Kustomization"
            } else {
                kind
            };
            return Err(invalid(
                "apiVersion",
                format!("apiVersion for {shown} should be {required}, not {v:?}"),
            ));
        }
        Ok(())
    }
}

/// Decodes a value into `T`, answering the path of the offending field
/// (for an unknown field, the field itself) and serde's message. Field
/// names match case-insensitively, as Go's JSON decoding (and so
/// kustomize) matches them.
pub(crate) fn decode_strict<T: serde::de::DeserializeOwned>(
    value: Value,
) -> Result<T, (String, String)> {
    decode(value, false)
}

/// [`decode_strict`], except that unknown fields are dropped (how Go's
/// plain JSON decoding reads plugin configurations).
pub(crate) fn decode_lenient<T: serde::de::DeserializeOwned>(
    value: Value,
) -> Result<T, (String, String)> {
    decode(value, true)
}

fn decode<T: serde::de::DeserializeOwned>(
    mut value: Value,
    drop_unknown: bool,
) -> Result<T, (String, String)> {
    loop {
        let e = match serde_path_to_error::deserialize(&value) {
            Ok(t) => return Ok(t),
            Err(e) => e,
        };
        let message = e.inner().to_string();
        let mut field = e.path().to_string();
        if let Some(rest) = message.strip_prefix("unknown field `")
            && let Some(end) = rest.find('`')
        {
            let name = &rest[..end];
            let expected: Vec<&str> = rest[end..].split('`').skip(2).step_by(2).collect();
            let canonical = expected.iter().find(|c| c.eq_ignore_ascii_case(name));
            if let Some(canonical) = canonical
                && rename_key(&mut value, e.path(), name, Some(canonical))
            {
                continue;
            }
            if canonical.is_none() && drop_unknown && rename_key(&mut value, e.path(), name, None) {
                continue;
            }
            field = if field == "." || field.is_empty() {
                name.to_string()
            } else if field == name || field.ends_with(&format!(".{name}")) {
                field
            } else {
                format!("{field}.{name}")
            };
        }
        return Err((field, message));
    }
}

/// Renames `from` to `to` in the mapping at `path` (the value under `to`,
/// when both are present, is the later one in Go; here `from` replaces it).
fn rename_key(
    value: &mut Value,
    path: &serde_path_to_error::Path,
    from: &str,
    to: Option<&str>,
) -> bool {
    let mut node = value;
    let segments: Vec<&serde_path_to_error::Segment> = path.iter().collect();
    let segments = match segments.split_last() {
        Some((serde_path_to_error::Segment::Map { key }, parent)) if key == from => parent,
        _ => &segments[..],
    };
    for segment in segments {
        node = match (*segment, node) {
            (serde_path_to_error::Segment::Seq { index }, Value::Array(items)) => {
                match items.get_mut(*index) {
                    Some(n) => n,
                    None => return false,
                }
            }
            (serde_path_to_error::Segment::Map { key }, Value::Object(map)) => {
                match map.get_mut(key.as_str()) {
                    Some(n) => n,
                    None => return false,
                }
            }
            _ => return false,
        };
    }
    let Value::Object(map) = node else {
        return false;
    };
    let Some(v) = map.remove(from) else {
        return false;
    };
    if let Some(to) = to {
        map.insert(to.to_string(), v);
    }
    true
}

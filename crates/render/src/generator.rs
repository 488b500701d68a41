//! ConfigMap and Secret generators, and the content hash kustomize appends
//! to generated names.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::kustomization::GeneratorOptions;
use crate::resource::{self, Behavior, Resource};

/// One key/value source of a generator, already read.
pub(crate) enum Source {
    /// `KEY=VALUE` from `literals`.
    Literal(String),
    /// A file: its key and contents.
    File { key: String, bytes: Vec<u8> },
    /// An env file's contents.
    Env { file: String, text: String },
}

/// A generator entry with its sources read from disk.
pub(crate) struct GeneratorInput {
    pub kind: GeneratedKind,
    pub name: String,
    pub namespace: String,
    pub behavior: String,
    pub secret_type: String,
    pub sources: Vec<Source>,
    pub options: GeneratorOptions,
}

/// ConfigMap or Secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GeneratedKind {
    ConfigMap,
    Secret,
}

/// Merges the kustomization-wide options into an entry's own (the entry's
/// labels and annotations win; either side can disable the hash or make the
/// object immutable).
pub(crate) fn merge_options(
    local: Option<&GeneratorOptions>,
    global: Option<&GeneratorOptions>,
) -> GeneratorOptions {
    let mut out = local.cloned().unwrap_or_default();
    let Some(global) = global else {
        return out;
    };
    for (mine, theirs) in [
        (&mut out.labels, &global.labels),
        (&mut out.annotations, &global.annotations),
    ] {
        if let Some(theirs) = theirs {
            let m = mine.get_or_insert_with(BTreeMap::new);
            for (k, v) in theirs {
                m.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    if global.disable_name_suffix_hash == Some(true) {
        out.disable_name_suffix_hash = Some(true);
    }
    if global.immutable == Some(true) {
        out.immutable = Some(true);
    }
    out
}

fn unquote(value: &str) -> &str {
    let b = value.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        return &value[1..value.len() - 1];
    }
    value
}

/// Reads the key/value pairs of an env file.
fn env_pairs(file: &str, text: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw).trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "env file {file} line {}: {line:?} has no '=' (taking values from the environment is not supported)",
                n + 1
            ));
        };
        // kustomize takes any key as it is, and skips an empty one
        if key.is_empty() {
            continue;
        }
        out.push((key.to_string(), value.as_bytes().to_vec()));
    }
    Ok(out)
}

/// Base64 as kustomize writes generated data: an encoding longer than one
/// line is broken into lines of 70 characters, each ending in a newline.
fn encode_base64(bytes: &[u8]) -> String {
    const LINE: usize = 70;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines = encoded.len() / LINE + 1;
    if lines == 1 {
        return encoded;
    }
    let mut out = String::with_capacity(encoded.len() + lines);
    for chunk in encoded.as_bytes().chunks(LINE) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// Builds the generated object. `origin` names the kustomization file.
pub(crate) fn generate(
    input: &GeneratorInput,
    origin: std::sync::Arc<std::path::PathBuf>,
) -> Result<Resource, String> {
    let what = match input.kind {
        GeneratedKind::ConfigMap => "configmap",
        GeneratedKind::Secret => "secret",
    };
    if input.name.is_empty() {
        return Err(format!("a {what} must have a name"));
    }
    let mut pairs: Vec<(String, Vec<u8>)> = Vec::new();
    // kustomize reads env files, then literals, then files.
    for source in &input.sources {
        if let Source::Env { file, text } = source {
            pairs.extend(env_pairs(file, text)?);
        }
    }
    for source in &input.sources {
        if let Source::Literal(lit) = source {
            let Some((key, value)) = lit.split_once('=') else {
                return Err(format!(
                    "loading KV pairs: literal sources [{lit}]: invalid literal source {lit}, expected key=value"
                ));
            };
            pairs.push((key.to_string(), unquote(value).as_bytes().to_vec()));
        }
    }
    for source in &input.sources {
        if let Source::File { key, bytes } = source {
            pairs.push((key.clone(), bytes.clone()));
        }
    }
    let mut data = Map::new();
    let mut binary = Map::new();
    for (key, bytes) in pairs {
        if data.contains_key(&key) || binary.contains_key(&key) {
            return Err(format!(
                "{what} {} illegally repeats the key `{key}`",
                input.name
            ));
        }
        match input.kind {
            GeneratedKind::Secret => {
                data.insert(key, Value::String(encode_base64(&bytes)));
            }
            GeneratedKind::ConfigMap => match String::from_utf8(bytes) {
                Ok(text) => {
                    data.insert(key, Value::String(text));
                }
                Err(e) => {
                    binary.insert(key, Value::String(encode_base64(e.as_bytes())));
                }
            },
        }
    }

    let mut meta = Map::new();
    meta.insert("name".into(), Value::String(input.name.clone()));
    if !input.namespace.is_empty() {
        meta.insert("namespace".into(), Value::String(input.namespace.clone()));
    }
    let string_map = |m: &BTreeMap<String, String>| {
        Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    };
    if let Some(labels) = input.options.labels.as_ref().filter(|m| !m.is_empty()) {
        meta.insert("labels".into(), string_map(labels));
    }
    if let Some(annotations) = input.options.annotations.as_ref().filter(|m| !m.is_empty()) {
        meta.insert("annotations".into(), string_map(annotations));
    }

    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String("v1".into()));
    match input.kind {
        GeneratedKind::ConfigMap => {
            obj.insert("kind".into(), Value::String("ConfigMap".into()));
            obj.insert("metadata".into(), Value::Object(meta));
            if !data.is_empty() {
                obj.insert("data".into(), Value::Object(data));
            }
            if !binary.is_empty() {
                obj.insert("binaryData".into(), Value::Object(binary));
            }
        }
        GeneratedKind::Secret => {
            obj.insert("kind".into(), Value::String("Secret".into()));
            obj.insert("metadata".into(), Value::Object(meta));
            obj.insert("data".into(), Value::Object(data));
            let t = if input.secret_type.is_empty() {
                "Opaque"
            } else {
                &input.secret_type
            };
            obj.insert("type".into(), Value::String(t.into()));
        }
    }
    if input.options.immutable == Some(true) {
        obj.insert("immutable".into(), Value::Bool(true));
    }

    // kustomize takes any other text (`Create`, `upsert` …) as unspecified,
    // which behaves as create
    let behavior = match input.behavior.as_str() {
        "merge" => Behavior::Merge,
        "replace" => Behavior::Replace,
        _ => Behavior::Create,
    };
    let mut res = Resource::new(obj, origin);
    res.generated_by = Some(match input.kind {
        GeneratedKind::ConfigMap => "ConfigMapGenerator",
        GeneratedKind::Secret => "SecretGenerator",
    });
    res.behavior = Some(behavior);
    res.needs_hash = input.options.disable_name_suffix_hash != Some(true);
    Ok(res)
}

/// Adds a generated resource to the accumulated ones, honouring its
/// behavior.
pub(crate) fn absorb(resources: &mut Vec<Resource>, mut generated: Resource) -> Result<(), String> {
    let id = generated.cur_id();
    let matches = resource::positions_matching(resources, &id);
    let behavior = generated.behavior.unwrap_or(Behavior::Create);
    match (matches.as_slice(), behavior) {
        ([], Behavior::Create) => {
            resources.push(generated);
            Ok(())
        }
        ([], _) => Err(format!("{id} does not exist; cannot merge or replace")),
        ([i], Behavior::Merge | Behavior::Replace) => {
            let old = &resources[*i];
            let mut labels = old.meta_map("labels");
            labels.extend(generated.meta_map("labels"));
            let mut annotations = old.meta_map("annotations");
            annotations.extend(generated.meta_map("annotations"));
            if behavior == Behavior::Merge {
                for field in ["data", "binaryData"] {
                    let mut merged = old
                        .obj
                        .get(field)
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    if let Some(Value::Object(new)) = generated.obj.get(field) {
                        merged.extend(new.clone());
                    }
                    if !merged.is_empty() || generated.obj.contains_key(field) {
                        generated.obj.insert(field.into(), Value::Object(merged));
                    }
                }
            }
            let name = old.name().to_string();
            let namespace = old.namespace().to_string();
            {
                let meta = generated.metadata_mut();
                meta.insert("name".into(), Value::String(name));
                if namespace.is_empty() {
                    meta.remove("namespace");
                } else {
                    meta.insert("namespace".into(), Value::String(namespace));
                }
                if labels.is_empty() {
                    meta.remove("labels");
                } else {
                    meta.insert("labels".into(), Value::Object(labels));
                }
                if annotations.is_empty() {
                    meta.remove("annotations");
                } else {
                    meta.insert("annotations".into(), Value::Object(annotations));
                }
            }
            generated.prev_ids = old.prev_ids.clone();
            generated.ref_var_names = old.ref_var_names.clone();
            generated.transformations = old.transformations.clone();
            generated.prefixes = old.prefixes.clone();
            generated.suffixes = old.suffixes.clone();
            generated.needs_hash = old.needs_hash && generated.needs_hash;
            generated.behavior = old.behavior;
            resources[*i] = generated;
            Ok(())
        }
        ([_], Behavior::Create) => Err(format!(
            "{id} already exists; behavior must be merge or replace"
        )),
        (many, _) => Err(format!(
            "found {} objects that could accept the merge of {id}",
            many.len()
        )),
    }
}

/// The hash kustomize appends to a generated name.
pub(crate) fn content_hash(obj: &Map<String, Value>) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let field_or_empty = |key: &str| match obj.get(key) {
        Some(v @ Value::Object(_)) => v.clone(),
        Some(Value::String(s)) => Value::String(s.clone()),
        Some(Value::Null) | None => Value::String(String::new()),
        Some(other) => Value::String(other.to_string()),
    };
    let mut m = Map::new();
    match kind {
        "ConfigMap" => {
            m.insert("kind".into(), Value::String("ConfigMap".into()));
            m.insert("name".into(), Value::String(String::new()));
            m.insert("data".into(), field_or_empty("data"));
            if let Some(v @ Value::Object(_)) = obj.get("binaryData") {
                m.insert("binaryData".into(), v.clone());
            }
        }
        "Secret" => {
            m.insert("kind".into(), Value::String("Secret".into()));
            m.insert("name".into(), Value::String(String::new()));
            m.insert("type".into(), field_or_empty("type"));
            m.insert("data".into(), field_or_empty("data"));
            if let Some(v @ Value::Object(_)) = obj.get("stringData") {
                m.insert("stringData".into(), v.clone());
            }
        }
        _ => {
            m = obj.clone();
        }
    }
    let mut json = String::new();
    crate::yaml::go_json(&Value::Object(m), &mut json);
    let digest = Sha256::digest(json.as_bytes());
    digest
        .iter()
        .take(5)
        .flat_map(|b| [b >> 4, b & 0xf])
        .map(|nibble| match nibble {
            0 => 'g',
            1 => 'h',
            3 => 'k',
            10 => 'm',
            14 => 't',
            n => char::from_digit(u32::from(n), 16).unwrap_or('0'),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(obj: Value, expected: &str) {
        let Value::Object(map) = obj else {
            panic!("not an object")
        };
        assert_eq!(content_hash(&map), expected);
    }

    #[test]
    fn hashes_match_kustomize() {
        check(
            serde_json::json!({"kind": "ConfigMap", "data": {"A": "true"}}),
            "89272kkg5t",
        );
        check(serde_json::json!({"kind": "ConfigMap"}), "6ct58987ht");
        check(
            serde_json::json!({"kind": "Secret", "type": "Opaque", "data": {}}),
            "46f8b28mk5",
        );
        check(
            serde_json::json!({"kind": "Secret", "type": "Opaque", "data": {"Q": "cQ=="}}),
            "642tm4c76b",
        );
    }

    #[test]
    fn literal_quotes() {
        assert_eq!(unquote("\"x\""), "x");
        assert_eq!(unquote("'y'"), "y");
        assert_eq!(unquote("\"a"), "\"a");
        assert_eq!(unquote("\"a\"b\""), "a\"b");
    }
}

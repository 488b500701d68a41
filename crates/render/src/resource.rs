//! Resources as the renderer carries them: the object plus the bookkeeping
//! kustomize keeps beside it (previous names, prefixes, generator options).

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::schema;

/// Group, version and kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    /// Splits an `apiVersion` the Kubernetes way (`group/version` or `version`).
    pub fn new(api_version: &str, kind: &str) -> Self {
        let (group, version) = match api_version.rsplit_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.to_string()),
        };
        Gvk {
            group,
            version,
            kind: kind.to_string(),
        }
    }

    /// kustomize's `group_version_kind` form, used for ordering.
    pub fn legacy_string(&self) -> String {
        let or = |s: &str, d: &str| {
            if s.is_empty() {
                d.to_string()
            } else {
                s.to_string()
            }
        };
        format!(
            "{}_{}_{}",
            or(&self.group, "~G"),
            or(&self.version, "~V"),
            or(&self.kind, "~K")
        )
    }

    pub fn is_cluster_scoped(&self) -> bool {
        schema::is_cluster_scoped(&self.group, &self.version, &self.kind)
    }

    /// Whether a selector gvk (empty fields match anything) selects this one.
    pub fn is_selected_by(&self, selector: &Gvk) -> bool {
        (selector.group.is_empty() || selector.group == self.group)
            && (selector.version.is_empty() || selector.version == self.version)
            && (selector.kind.is_empty() || selector.kind == self.kind)
    }
}

/// A resource id: gvk, name and namespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(crate) struct ResId {
    pub gvk: Gvk,
    pub name: String,
    pub namespace: String,
}

impl ResId {
    /// The namespace used when comparing ids: "" means "default" for
    /// namespaced kinds; cluster-scoped kinds have none.
    pub fn effective_namespace(&self) -> &str {
        if self.gvk.is_cluster_scoped() {
            "~cluster"
        } else if self.namespace.is_empty() {
            "default"
        } else {
            &self.namespace
        }
    }

    pub fn ns_equals(&self, other: &ResId) -> bool {
        self.effective_namespace() == other.effective_namespace()
    }

    /// kustomize's id equality (effective namespaces compared).
    pub fn equals(&self, other: &ResId) -> bool {
        self.name == other.name && self.gvk == other.gvk && self.ns_equals(other)
    }

    /// A key under which ids that are `equals` collide.
    pub fn key(&self) -> IdKey {
        (
            self.gvk.clone(),
            self.name.clone(),
            self.effective_namespace().to_string(),
        )
    }
}

/// Positions of the resources whose current id, or one they had before a
/// rename, `equals` `id`: how kustomize finds the target of a patch and the
/// resource a generator's behavior applies to. The name test first is cheap.
pub(crate) fn positions_matching(resources: &[Resource], id: &ResId) -> Vec<usize> {
    resources
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            (r.name() == id.name || r.prev_ids.iter().any(|p| p.name == id.name))
                && r.prev_ids
                    .iter()
                    .chain(std::iter::once(&r.cur_id()))
                    .any(|other| other.equals(id))
        })
        .map(|(i, _)| i)
        .collect()
}

/// See [`ResId::key`].
pub(crate) type IdKey = (Gvk, String, String);

impl fmt::Display for ResId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let api_version = if self.gvk.group.is_empty() {
            self.gvk.version.clone()
        } else {
            format!("{}/{}", self.gvk.group, self.gvk.version)
        };
        write!(f, "{} {}", api_version, self.gvk.kind)?;
        if !self.namespace.is_empty() {
            write!(f, " {}/{}", self.namespace, self.name)
        } else {
            write!(f, " {}", self.name)
        }
    }
}

/// A transformer that ran over a resource: where it is configured, its
/// kind and (for a plugin configuration) its name.
#[derive(Debug)]
pub(crate) struct Transformation {
    pub configured_in: PathBuf,
    pub kind: String,
    pub name: Option<String>,
}

/// What a generator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behavior {
    Create,
    Merge,
    Replace,
}

/// A resource being rendered.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    pub obj: Map<String, Value>,
    /// Ids this resource had before renames, oldest first.
    pub prev_ids: Vec<ResId>,
    pub prefixes: Vec<String>,
    pub suffixes: Vec<String>,
    /// Set for generated ConfigMaps and Secrets.
    pub behavior: Option<Behavior>,
    /// Whether the name gets the content hash suffix at the end.
    pub needs_hash: bool,
    /// The vars bound to this resource.
    pub ref_var_names: Vec<String>,
    /// The built-in generator that made it (for origin annotations).
    pub generated_by: Option<&'static str>,
    /// The name of the `generators` plugin configuration that made it.
    pub generator_name: Option<String>,
    /// The transformers that ran over it (recorded only for
    /// `buildMetadata: [transformerAnnotations]`).
    pub transformations: Vec<Arc<Transformation>>,
    /// The file the resource was read from (or the kustomization that
    /// generated it).
    pub origin: Arc<PathBuf>,
}

impl Resource {
    pub fn new(obj: Map<String, Value>, origin: Arc<PathBuf>) -> Self {
        Resource {
            obj,
            prev_ids: Vec::new(),
            prefixes: Vec::new(),
            suffixes: Vec::new(),
            behavior: None,
            needs_hash: false,
            ref_var_names: Vec::new(),
            generated_by: None,
            generator_name: None,
            transformations: Vec::new(),
            origin,
        }
    }

    pub fn str_field(&self, key: &str) -> &str {
        field(&self.obj, key).and_then(Value::as_str).unwrap_or("")
    }

    pub fn kind(&self) -> &str {
        self.str_field("kind")
    }

    pub fn api_version(&self) -> &str {
        self.str_field("apiVersion")
    }

    pub fn gvk(&self) -> Gvk {
        Gvk::new(self.api_version(), self.kind())
    }

    /// A metadata scalar as text (`name: 123` is the name "123").
    fn meta_str(&self, key: &str) -> Cow<'_, str> {
        let meta = match field(&self.obj, "metadata") {
            Some(Value::Object(m)) => m,
            _ => return Cow::Borrowed(""),
        };
        match field(meta, key) {
            Some(Value::String(s)) => Cow::Borrowed(s),
            Some(Value::Number(n)) => Cow::Owned(crate::yaml::number_text(n)),
            Some(Value::Bool(b)) => Cow::Owned(b.to_string()),
            _ => Cow::Borrowed(""),
        }
    }

    pub fn name(&self) -> Cow<'_, str> {
        self.meta_str("name")
    }

    pub fn namespace(&self) -> Cow<'_, str> {
        self.meta_str("namespace")
    }

    pub fn cur_id(&self) -> ResId {
        ResId {
            gvk: self.gvk(),
            name: self.name().to_string(),
            namespace: self.namespace().to_string(),
        }
    }

    /// The id the resource had when it was first read or generated.
    pub fn org_id(&self) -> ResId {
        self.prev_ids
            .first()
            .cloned()
            .unwrap_or_else(|| self.cur_id())
    }

    pub fn store_prev_id(&mut self) {
        let id = self.cur_id();
        self.prev_ids.push(id);
    }

    pub fn metadata_mut(&mut self) -> &mut Map<String, Value> {
        let meta = self
            .obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        meta.as_object_mut()
            .expect("metadata was just made an object")
    }

    pub fn set_name(&mut self, name: &str) {
        self.metadata_mut()
            .insert("name".into(), Value::String(name.to_string()));
    }

    pub fn set_namespace(&mut self, namespace: &str) {
        self.metadata_mut()
            .insert("namespace".into(), Value::String(namespace.to_string()));
    }

    /// Labels or annotations as a map (empty when absent).
    pub fn meta_map(&self, key: &str) -> Map<String, Value> {
        self.obj
            .get("metadata")
            .and_then(|m| m.get(key))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    }
}

/// `map[key]`, found by comparing keys when the map is small (objects'
/// top level and metadata are): cheaper than hashing the key.
pub(crate) fn field<'m>(map: &'m Map<String, Value>, key: &str) -> Option<&'m Value> {
    if map.len() <= 16 {
        map.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
    } else {
        map.get(key)
    }
}

/// A field path of a field spec: segments split on `/`, with `\/` kept as a
/// slash inside a segment. A trailing `[]` (kept) marks a list, which is
/// never created.
pub(crate) fn split_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'/') => {
                cur.push('/');
                chars.next();
            }
            '/' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Applies `f` to every node a field-spec path reaches. Lists met on the way
/// are traversed element by element. With `create`, missing maps along the
/// path are created and `f` is called with `None`-like `Null` for a missing
/// final field (it may then set it).
pub(crate) fn visit_path<E>(
    node: &mut Value,
    segments: &[String],
    create: bool,
    f: &mut dyn FnMut(&mut Value) -> Result<(), E>,
) -> Result<(), E> {
    if segments.is_empty() {
        return f(node);
    }
    match node {
        Value::Array(items) => {
            for item in items {
                visit_path(item, segments, create, f)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            let (key, is_list) = match segments[0].strip_suffix("[]") {
                Some(k) => (k.to_string(), true),
                None => (segments[0].clone(), false),
            };
            let rest = &segments[1..];
            match map.get_mut(key.as_str()) {
                Some(child) if !child.is_null() => {
                    if rest.is_empty() {
                        f(child)
                    } else {
                        visit_path(child, rest, create, f)
                    }
                }
                _ => {
                    if !create || is_list {
                        return Ok(());
                    }
                    let mut child = if rest.is_empty() {
                        Value::Null
                    } else {
                        Value::Object(Map::new())
                    };
                    if rest.is_empty() {
                        f(&mut child)?;
                    } else {
                        visit_path(&mut child, rest, create, f)?;
                    }
                    if !child.is_null() {
                        map.insert(key, child);
                    }
                    Ok(())
                }
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_path_handles_escapes_and_lists() {
        assert_eq!(
            split_path("metadata/annotations/a.io\\/b"),
            vec!["metadata", "annotations", "a.io/b"]
        );
        assert_eq!(
            split_path("spec/containers[]/image"),
            vec!["spec", "containers[]", "image"]
        );
    }
}

//! The simple built-in transformers: namespace, name prefix and suffix,
//! labels, annotations, replicas and images. Pure functions over resources.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::config::TransformerConfig;
use crate::fieldspec::FieldSpec;
use crate::kustomization::ImageSpec;
use crate::resource::{Gvk, Resource};

/// Which role binding subjects get the namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subjects {
    /// Subjects named `default` (kustomize's default).
    DefaultOnly,
    /// Every service account subject.
    AllServiceAccounts,
    /// None.
    None,
}

/// Sets the namespace of every namespaced resource (and the fields that
/// carry a namespace), as kustomize's `namespace:` does.
pub(crate) fn set_namespace(
    resources: &mut [Resource],
    namespace: &str,
    specs: &[FieldSpec],
) -> Result<(), String> {
    set_namespace_with(resources, namespace, specs, false, Subjects::DefaultOnly)
}

/// [`set_namespace`] with the options of a `NamespaceTransformer`.
pub(crate) fn set_namespace_with(
    resources: &mut [Resource],
    namespace: &str,
    specs: &[FieldSpec],
    unset_only: bool,
    subjects_mode: Subjects,
) -> Result<(), String> {
    let (meta, extra): (Vec<&FieldSpec>, Vec<&FieldSpec>) = specs
        .iter()
        .partition(|s| s.path == ["metadata", "namespace"]);
    for res in resources.iter_mut() {
        // unsetOnly keeps namespaces already set (role binding subjects
        // are still updated)
        let keep = unset_only && !res.namespace().is_empty();
        res.store_prev_id();
        let gvk = res.gvk();
        if !keep && meta.iter().any(|s| s.selects(&gvk)) {
            if !gvk.is_cluster_scoped() {
                res.set_namespace(namespace);
            }
            if gvk.kind == "Namespace" && res.api_version() == "v1" {
                res.set_name(namespace);
            }
        }
        if (gvk.kind == "RoleBinding" || gvk.kind == "ClusterRoleBinding")
            && subjects_mode != Subjects::None
            && let Some(Value::Array(subjects)) = res.obj.get_mut("subjects")
        {
            for subject in subjects.iter_mut() {
                let Value::Object(s) = subject else { continue };
                let update = match subjects_mode {
                    Subjects::DefaultOnly => {
                        s.get("name").and_then(Value::as_str) == Some("default")
                    }
                    Subjects::AllServiceAccounts => {
                        s.get("kind").and_then(Value::as_str) == Some("ServiceAccount")
                    }
                    Subjects::None => false,
                };
                if update {
                    s.insert("namespace".into(), Value::String(namespace.into()));
                }
            }
        }
        for spec in &extra {
            spec.apply(res, &mut |node: &mut Value| -> Result<(), String> {
                match node {
                    Value::Null if !spec.create => Ok(()),
                    Value::String(s) if unset_only && !s.is_empty() => Ok(()),
                    Value::Object(_) | Value::Array(_) => Err(format!(
                        "namespace field {} must be a scalar",
                        spec.path.join("/")
                    )),
                    _ => {
                        *node = Value::String(namespace.into());
                        Ok(())
                    }
                }
            })?;
        }
    }
    let mut seen = std::collections::HashSet::new();
    for res in resources.iter() {
        let id = res.cur_id();
        if !seen.insert(id.key()) {
            return Err(format!(
                "namespace transformation produces an id conflict: more than one resource is now {id}"
            ));
        }
    }
    Ok(())
}

/// Kinds whose names kustomize never prefixes or suffixes.
fn skips_rename(gvk: &Gvk) -> bool {
    gvk.kind == "CustomResourceDefinition"
        || gvk.kind == "Namespace"
        || (gvk.kind == "APIService" && gvk.group == "apiregistration.k8s.io")
}

/// Adds a name prefix or suffix to every resource kustomize renames (and
/// to the other fields the configuration's specs name).
pub(crate) fn add_name_affix(
    resources: &mut [Resource],
    prefix: &str,
    suffix: &str,
    specs: &[FieldSpec],
) -> Result<(), String> {
    for res in resources.iter_mut() {
        if skips_rename(&res.org_id().gvk) {
            continue;
        }
        let gvk = res.gvk();
        for spec in specs {
            if !spec.selects(&gvk) {
                continue;
            }
            if spec.path == ["metadata", "name"] {
                rename_with_affix(res, prefix, suffix);
                continue;
            }
            let id = res.cur_id();
            spec.apply(res, &mut |node: &mut Value| -> Result<(), String> {
                match node {
                    Value::Null => Ok(()),
                    Value::String(s) => {
                        *s = format!("{prefix}{s}{suffix}");
                        Ok(())
                    }
                    _ => Err(format!(
                        "{id}: field {} is not a string",
                        spec.path.join("/")
                    )),
                }
            })?;
        }
    }
    Ok(())
}

/// Renames with a prefix and a suffix as one kustomize transformer does:
/// both are recorded (even an empty one: the name-reference choice compares
/// these lists), the previous id once.
fn rename_with_affix(res: &mut Resource, prefix: &str, suffix: &str) {
    res.prefixes.push(prefix.to_string());
    res.suffixes.push(suffix.to_string());
    if !prefix.is_empty() || !suffix.is_empty() {
        res.store_prev_id();
        let name = format!("{prefix}{}{suffix}", res.name());
        res.set_name(&name);
    }
}

/// Writes `pairs` into the string maps the field specs reach.
pub(crate) fn add_map_entries(
    resources: &mut [Resource],
    pairs: &BTreeMap<String, String>,
    specs: &[FieldSpec],
) -> Result<(), String> {
    if pairs.is_empty() {
        return Ok(());
    }
    for res in resources.iter_mut() {
        for spec in specs {
            spec.apply(res, &mut |node: &mut Value| -> Result<(), ()> {
                if node.is_null() {
                    *node = Value::Object(Map::new());
                }
                match node {
                    Value::Object(map) => {
                        for (k, v) in pairs {
                            map.insert(k.clone(), Value::String(v.clone()));
                        }
                        Ok(())
                    }
                    _ => Err(()),
                }
            })
            .map_err(|()| {
                format!(
                    "{}: field {} is not a map",
                    res.cur_id(),
                    spec.path.join("/")
                )
            })?;
        }
    }
    Ok(())
}

/// Field specs a `labels` entry writes to.
pub(crate) fn label_specs(
    include_selectors: bool,
    include_templates: bool,
    fields: &[FieldSpec],
    config: &TransformerConfig,
) -> Vec<FieldSpec> {
    let mut specs: Vec<FieldSpec> = fields.to_vec();
    if include_selectors {
        specs.extend(config.common_labels.iter().cloned());
    } else {
        specs.push(FieldSpec::new("", "", "", "metadata/labels", true));
        if include_templates {
            specs.extend(config.template_labels.iter().cloned());
        }
    }
    specs
}

/// Sets the replica count of the named workloads.
pub(crate) fn set_replicas(
    resources: &mut [Resource],
    name: &str,
    count: i64,
    specs: &[FieldSpec],
) -> Result<(), String> {
    let all: Vec<usize> = (0..resources.len()).collect();
    set_replicas_among(resources, &all, name, count, specs)
}

/// Applies every `replicas` entry, finding the resources by name through
/// one index (replica counts rename nothing). Errors name the entry.
pub(crate) fn set_all_replicas(
    resources: &mut [Resource],
    entries: &[crate::kustomization::ReplicaSpec],
    specs: &[FieldSpec],
) -> Result<(), (usize, String)> {
    let mut by_name: std::collections::HashMap<String, Vec<usize>> =
        std::collections::HashMap::new();
    for (i, res) in resources.iter().enumerate() {
        let mut names: Vec<String> = res.prev_ids.iter().map(|id| id.name.clone()).collect();
        names.push(res.name().into_owned());
        names.sort_unstable();
        names.dedup();
        for name in names {
            by_name.entry(name).or_default().push(i);
        }
    }
    for (i, entry) in entries.iter().enumerate() {
        let among = by_name.get(&entry.name).map(Vec::as_slice).unwrap_or(&[]);
        set_replicas_among(resources, among, &entry.name, entry.count, specs)
            .map_err(|m| (i, m))?;
    }
    Ok(())
}

fn set_replicas_among(
    resources: &mut [Resource],
    among: &[usize],
    name: &str,
    count: i64,
    specs: &[FieldSpec],
) -> Result<(), String> {
    let mut found = false;
    for &i in among {
        let res = &mut resources[i];
        if res.name() != name && !res.prev_ids.iter().any(|id| id.name == name) {
            continue;
        }
        let cur = res.cur_id();
        for spec in specs {
            let matches = res
                .prev_ids
                .iter()
                .chain(std::iter::once(&cur))
                .any(|id| id.name == name && id.gvk.is_selected_by(&spec.gvk));
            if !matches {
                continue;
            }
            found = true;
            spec.apply(res, &mut |node: &mut Value| -> Result<(), String> {
                *node = Value::from(count);
                Ok(())
            })?;
        }
    }
    if !found {
        return Err(format!(
            "resource with name {name} does not match a config with the following GVK [Deployment ReplicationController ReplicaSet StatefulSet]"
        ));
    }
    Ok(())
}

/// Applies one `images` entry to every container image it matches.
pub(crate) fn set_image(
    resources: &mut [Resource],
    image: &ImageSpec,
    specs: &[FieldSpec],
) -> Result<(), String> {
    let matcher = ImageMatcher::new(&image.name)?;
    for res in resources.iter_mut() {
        // Containers anywhere in the object.
        let mut root = Value::Object(std::mem::take(&mut res.obj));
        update_containers_anywhere(&mut root, &matcher, image);
        if let Value::Object(map) = root {
            res.obj = map;
        }
        for spec in specs {
            let spec = FieldSpec {
                create: false,
                ..spec.clone()
            };
            spec.apply(res, &mut |node: &mut Value| -> Result<(), String> {
                if let Value::String(s) = node
                    && let Some(new) = new_image(s, &matcher, image)
                {
                    *s = new;
                }
                Ok(())
            })?;
        }
    }
    Ok(())
}

fn update_containers_anywhere(node: &mut Value, matcher: &ImageMatcher, image: &ImageSpec) {
    match node {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if (key == "containers" || key == "initContainers")
                    && let Value::Array(items) = child
                {
                    for item in items.iter_mut() {
                        if let Some(Value::String(s)) = item.get_mut("image")
                            && let Some(new) = new_image(s, matcher, image)
                        {
                            *s = new;
                        }
                    }
                }
                update_containers_anywhere(child, matcher, image);
            }
        }
        Value::Array(items) => {
            for item in items {
                update_containers_anywhere(item, matcher, image);
            }
        }
        _ => {}
    }
}

/// Matches image references by name as kustomize does: the configured name
/// (a regular expression, as in kustomize) followed by an optional tag and
/// an optional sha256 digest.
pub(crate) struct ImageMatcher {
    re: regex::Regex,
}

impl ImageMatcher {
    pub fn new(name: &str) -> Result<Self, String> {
        let pattern = format!("^{name}(:[a-zA-Z0-9_.{{}}-]*)?(@sha256:[a-zA-Z0-9_.{{}}-]*)?$");
        regex::Regex::new(&pattern)
            .map(|re| ImageMatcher { re })
            .map_err(|e| format!("images: name {name:?} is not a valid pattern: {e}"))
    }

    pub fn matches(&self, image: &str) -> bool {
        self.re.is_match(image)
    }
}

/// Splits an image reference into name, tag and digest.
pub(crate) fn split_image(image: &str) -> (String, String, String) {
    let slash = image.find('/').filter(|i| *i > 0).unwrap_or(0);
    let search = &image[slash..];
    let at = search.find('@');
    let colon = search.find(':');
    match (at, colon) {
        (None, None) => (image.to_string(), String::new(), String::new()),
        (Some(a), c) if c.is_none() || Some(a) < c => {
            let a = a + slash;
            (
                image[..a].to_string(),
                String::new(),
                image[a + 1..].to_string(),
            )
        }
        (Some(a), Some(c)) => {
            let (a, c) = (a + slash, c + slash);
            (
                image[..c].to_string(),
                image[c + 1..a].to_string(),
                image[a + 1..].to_string(),
            )
        }
        (None, Some(c)) => {
            let c = c + slash;
            (
                image[..c].to_string(),
                image[c + 1..].to_string(),
                String::new(),
            )
        }
        (Some(_), None) => (image.to_string(), String::new(), String::new()),
    }
}

fn new_image(current: &str, matcher: &ImageMatcher, image: &ImageSpec) -> Option<String> {
    if !matcher.matches(current) {
        return None;
    }
    let (mut name, mut tag, mut digest) = split_image(current);
    if !image.new_name.is_empty() {
        name = image.new_name.clone();
    }
    if !image.new_tag.is_empty() && !image.digest.is_empty() {
        tag = image.new_tag.clone();
        digest = image.digest.clone();
    } else if !image.new_tag.is_empty() {
        tag = image.new_tag.clone();
        digest.clear();
    } else if !image.digest.is_empty() {
        tag.clear();
        digest = image.digest.clone();
    } else if !image.tag_suffix.is_empty() {
        tag.push_str(&image.tag_suffix);
    }
    if !tag.is_empty() {
        name.push(':');
        name.push_str(&tag);
    }
    if !digest.is_empty() {
        name.push('@');
        name.push_str(&digest);
    }
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: (&str, &str, &str)) {
        let (n, t, d) = split_image(input);
        assert_eq!((n.as_str(), t.as_str(), d.as_str()), expected, "{input}");
    }

    #[test]
    fn image_split() {
        check("nginx", ("nginx", "", ""));
        check("nginx:1.2", ("nginx", "1.2", ""));
        check("reg:5000/nginx:1.2", ("reg:5000/nginx", "1.2", ""));
        check("nginx@sha256:abc", ("nginx", "", "sha256:abc"));
        check(
            "reg:5000/a/nginx:1@sha256:abc",
            ("reg:5000/a/nginx", "1", "sha256:abc"),
        );
    }

    #[test]
    fn image_match() {
        let m = ImageMatcher::new("nginx").expect("pattern");
        assert!(m.matches("nginx"));
        assert!(m.matches("nginx:1.2"));
        assert!(m.matches("nginx@sha256:abc"));
        assert!(!m.matches("nginx-proxy"));
        assert!(!m.matches("my/nginx"));
    }
}

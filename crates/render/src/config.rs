//! Transformer configuration: the field specs each built-in transformer
//! writes to, kustomize's defaults plus what `configurations` files (and
//! `crds`) add for custom kinds. A kustomization's transformers use the
//! defaults merged with its own files and those of everything it includes;
//! the name references and vars resolved at the end use the whole tree's.

use serde_json::Value;

use crate::fieldspec::{self, FieldSpec, NameBackRef};
use crate::resource::Gvk;

/// The field specs of the built-in transformers.
#[derive(Debug, Clone, Default)]
pub(crate) struct TransformerConfig {
    pub name_prefix: Vec<FieldSpec>,
    pub name_suffix: Vec<FieldSpec>,
    pub namespace: Vec<FieldSpec>,
    pub common_labels: Vec<FieldSpec>,
    pub template_labels: Vec<FieldSpec>,
    pub common_annotations: Vec<FieldSpec>,
    pub name_reference: Vec<NameBackRef>,
    pub var_reference: Vec<FieldSpec>,
    pub images: Vec<FieldSpec>,
    pub replicas: Vec<FieldSpec>,
}

impl TransformerConfig {
    /// Whether no field spec is configured at all.
    pub fn is_empty(&self) -> bool {
        self.name_prefix.is_empty()
            && self.name_suffix.is_empty()
            && self.namespace.is_empty()
            && self.common_labels.is_empty()
            && self.template_labels.is_empty()
            && self.common_annotations.is_empty()
            && self.name_reference.is_empty()
            && self.var_reference.is_empty()
            && self.images.is_empty()
            && self.replicas.is_empty()
    }

    /// kustomize's default configuration.
    pub fn defaults() -> Self {
        let name = vec![FieldSpec::new("", "", "", "metadata/name", false)];
        let mut namespace = vec![FieldSpec::new("", "", "", "metadata/namespace", true)];
        namespace.extend(fieldspec::namespace_extra());
        TransformerConfig {
            name_prefix: name.clone(),
            name_suffix: name,
            namespace,
            common_labels: fieldspec::common_labels(),
            template_labels: fieldspec::template_labels(),
            common_annotations: fieldspec::common_annotations(),
            name_reference: fieldspec::name_references(),
            var_reference: fieldspec::var_references(),
            images: fieldspec::images(),
            replicas: fieldspec::replicas(),
        }
    }

    /// Adds `other`'s field specs to this configuration (a spec already
    /// present is kept once; the same spec with another `create` is a
    /// conflict, as in kustomize).
    pub fn merge(&mut self, other: &TransformerConfig) -> Result<(), String> {
        let pairs: [(&mut Vec<FieldSpec>, &Vec<FieldSpec>); 9] = [
            (&mut self.name_prefix, &other.name_prefix),
            (&mut self.name_suffix, &other.name_suffix),
            (&mut self.namespace, &other.namespace),
            (&mut self.common_labels, &other.common_labels),
            (&mut self.template_labels, &other.template_labels),
            (&mut self.common_annotations, &other.common_annotations),
            (&mut self.var_reference, &other.var_reference),
            (&mut self.images, &other.images),
            (&mut self.replicas, &other.replicas),
        ];
        for (mine, theirs) in pairs {
            merge_specs(mine, theirs)?;
        }
        for backref in &other.name_reference {
            match self
                .name_reference
                .iter_mut()
                .find(|b| b.target == backref.target)
            {
                Some(existing) => merge_specs(&mut existing.referrers, &backref.referrers)?,
                None => self.name_reference.push(backref.clone()),
            }
        }
        Ok(())
    }

    /// Reads a transformer configuration file's document. Field names
    /// match case-insensitively and unknown fields are ignored, as Go's
    /// JSON decoding does.
    pub fn from_value(value: &Value) -> Result<Self, String> {
        let mut config = TransformerConfig::default();
        let map = match value {
            Value::Null => return Ok(config),
            Value::Object(map) => map,
            _ => return Err("a transformer configuration must be a mapping".into()),
        };
        for (key, v) in map {
            let field = key.to_ascii_lowercase();
            let target = match field.as_str() {
                "nameprefix" => &mut config.name_prefix,
                "namesuffix" => &mut config.name_suffix,
                "namespace" => &mut config.namespace,
                "commonlabels" => &mut config.common_labels,
                "templatelabels" => &mut config.template_labels,
                "commonannotations" => &mut config.common_annotations,
                "varreference" => &mut config.var_reference,
                "images" => &mut config.images,
                "replicas" => &mut config.replicas,
                "namereference" => {
                    for (i, item) in list(v, key)?.iter().enumerate() {
                        let backref = name_backref(item).map_err(|m| format!("{key}[{i}]: {m}"))?;
                        match config
                            .name_reference
                            .iter_mut()
                            .find(|b| b.target == backref.target)
                        {
                            Some(existing) => {
                                merge_specs(&mut existing.referrers, &backref.referrers)?
                            }
                            None => config.name_reference.push(backref),
                        }
                    }
                    continue;
                }
                _ => continue,
            };
            for (i, item) in list(v, key)?.iter().enumerate() {
                let spec = field_spec(item).map_err(|m| format!("{key}[{i}]: {m}"))?;
                merge_specs(target, std::slice::from_ref(&spec))?;
            }
        }
        Ok(config)
    }
}

/// The field specs a `crds` file (OpenAPI definitions, by type name)
/// implies: for every definition that looks like a Kubernetes type (it has
/// `kind`, `apiVersion` and `metadata` properties), its properties marked
/// `x-kubernetes-annotation`, `x-kubernetes-label-selector`,
/// `x-kubernetes-identity` or `x-kubernetes-object-ref-kind` (with
/// `-api-version` and `-name-key`), followed through `$ref`s. The kind is
/// the type name's last dotted part, as kustomize takes it.
pub(crate) fn from_crd_definitions(value: &Value) -> Result<TransformerConfig, String> {
    let mut config = TransformerConfig::default();
    let Value::Object(types) = value else {
        return Err("an OpenAPI definitions file must map type names to definitions".into());
    };
    for name in types.keys() {
        let properties = schema_properties(types, name);
        let is_k8s_type = properties.is_some_and(|p| {
            p.contains_key("kind") && p.contains_key("apiVersion") && p.contains_key("metadata")
        });
        if !is_k8s_type {
            continue;
        }
        if name.split('.').count() < 3 {
            return Err(format!(
                "`api` should be specified in dot notation: group.version.kind, not {name:?}"
            ));
        }
        let kind = name.rsplit('.').next().unwrap_or(name);
        let gvk = Gvk {
            group: String::new(),
            version: String::new(),
            kind: kind.to_string(),
        };
        let mut seen = Vec::new();
        crd_specs(&mut config, &gvk, types, name, &mut Vec::new(), &mut seen)?;
    }
    Ok(config)
}

/// `types[name].Schema.properties` (field names case-insensitive).
fn schema_properties<'v>(
    types: &'v serde_json::Map<String, Value>,
    name: &str,
) -> Option<&'v serde_json::Map<String, Value>> {
    let definition = types.get(name)?.as_object()?;
    let schema = definition
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schema"))?
        .1
        .as_object()?;
    schema.get("properties")?.as_object()
}

fn crd_specs(
    config: &mut TransformerConfig,
    gvk: &Gvk,
    types: &serde_json::Map<String, Value>,
    type_name: &str,
    path: &mut Vec<String>,
    visiting: &mut Vec<String>,
) -> Result<(), String> {
    let Some(properties) = schema_properties(types, type_name) else {
        return Ok(());
    };
    // a type that refers to itself would never end
    if visiting.iter().any(|t| t == type_name) {
        return Ok(());
    }
    visiting.push(type_name.to_string());
    let spec_at = |path: &[String], last: &[&str]| {
        let mut parts: Vec<&str> = path.iter().map(String::as_str).collect();
        parts.extend_from_slice(last);
        FieldSpec::new(&gvk.group, &gvk.version, &gvk.kind, &parts.join("/"), false)
    };
    for (prop, schema) in properties {
        let Value::Object(schema) = schema else {
            continue;
        };
        let text = |key: &str| schema.get(key).and_then(Value::as_str);
        if text("x-kubernetes-annotation").is_some() {
            merge_specs(&mut config.common_annotations, &[spec_at(path, &[prop])])?;
        }
        if text("x-kubernetes-label-selector").is_some() {
            merge_specs(&mut config.common_labels, &[spec_at(path, &[prop])])?;
        }
        if text("x-kubernetes-identity").is_some() {
            merge_specs(&mut config.name_prefix, &[spec_at(path, &[prop])])?;
        }
        if let (Some(version), Some(kind)) = (
            text("x-kubernetes-object-ref-api-version"),
            text("x-kubernetes-object-ref-kind"),
        ) {
            let name_key = text("x-kubernetes-object-ref-name-key").unwrap_or("name");
            let backref = NameBackRef {
                target: Gvk {
                    group: String::new(),
                    version: version.to_string(),
                    kind: kind.to_string(),
                },
                referrers: vec![spec_at(path, &[prop, name_key])],
            };
            let mut one = TransformerConfig::default();
            one.name_reference.push(backref);
            config.merge(&one)?;
        }
        if let Some(reference) = text("$ref") {
            path.push(prop.clone());
            crd_specs(config, gvk, types, reference, path, visiting)?;
            path.pop();
        }
    }
    visiting.pop();
    Ok(())
}

fn merge_specs(mine: &mut Vec<FieldSpec>, theirs: &[FieldSpec]) -> Result<(), String> {
    for spec in theirs {
        match mine
            .iter()
            .find(|s| s.gvk == spec.gvk && s.path == spec.path)
        {
            Some(existing) if existing.create != spec.create => {
                return Err(format!(
                    "conflicting fieldspecs for path {} (create {} and {})",
                    spec.path.join("/"),
                    existing.create,
                    spec.create
                ));
            }
            Some(_) => {}
            None => mine.push(spec.clone()),
        }
    }
    Ok(())
}

fn list<'v>(v: &'v Value, key: &str) -> Result<&'v [Value], String> {
    match v {
        Value::Null => Ok(&[]),
        Value::Array(items) => Ok(items),
        _ => Err(format!("{key} must be a list")),
    }
}

fn text_field(map: &serde_json::Map<String, Value>, name: &str) -> Result<String, String> {
    for (k, v) in map {
        if k.eq_ignore_ascii_case(name) {
            return match v {
                Value::Null => Ok(String::new()),
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("{name} must be a string, not {other}")),
            };
        }
    }
    Ok(String::new())
}

fn gvk_of(map: &serde_json::Map<String, Value>) -> Result<Gvk, String> {
    Ok(Gvk {
        group: text_field(map, "group")?,
        version: text_field(map, "version")?,
        kind: text_field(map, "kind")?,
    })
}

/// One field spec (`group`, `version`, `kind`, `path`, `create`).
pub(crate) fn field_spec(item: &Value) -> Result<FieldSpec, String> {
    let Value::Object(map) = item else {
        return Err("a field spec must be a mapping".into());
    };
    let gvk = gvk_of(map)?;
    let path = text_field(map, "path")?;
    let mut create = false;
    for (k, v) in map {
        if k.eq_ignore_ascii_case("create") {
            create = match v {
                Value::Bool(b) => *b,
                Value::Null => false,
                other => return Err(format!("create must be a boolean, not {other}")),
            };
        }
    }
    Ok(FieldSpec::new(
        &gvk.group,
        &gvk.version,
        &gvk.kind,
        &path,
        create,
    ))
}

fn name_backref(item: &Value) -> Result<NameBackRef, String> {
    let Value::Object(map) = item else {
        return Err("a name reference must be a mapping".into());
    };
    let target = gvk_of(map)?;
    let mut referrers = Vec::new();
    for (k, v) in map {
        if k.eq_ignore_ascii_case("fieldSpecs") {
            for (i, spec) in list(v, k)?.iter().enumerate() {
                let spec = field_spec(spec).map_err(|m| format!("fieldSpecs[{i}]: {m}"))?;
                merge_specs(&mut referrers, std::slice::from_ref(&spec))?;
            }
        }
    }
    Ok(NameBackRef { target, referrers })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Result<(usize, usize), &str>) {
        let value = crate::yaml::parse_single(input).expect("yaml");
        let got = TransformerConfig::from_value(&value).and_then(|c| {
            let mut merged = TransformerConfig::defaults();
            let before = merged.name_reference.len();
            merged.merge(&c)?;
            Ok((
                merged.name_reference.len() - before,
                c.var_reference.len() + c.namespace.len() + c.common_labels.len(),
            ))
        });
        match (got, expected) {
            (Ok(g), Ok(e)) => assert_eq!(g, e, "{input}"),
            (Err(g), Err(e)) => assert!(g.contains(e), "{g:?} should contain {e:?}"),
            (g, e) => panic!("{input}: got {g:?}, expected {e:?}"),
        }
    }

    #[test]
    fn configurations() {
        // A new target kind adds a back reference; an existing one merges.
        check(
            "nameReference:\n- kind: Issuer\n  group: cert-manager.io\n  fieldSpecs:\n  - {kind: Certificate, group: cert-manager.io, path: spec/issuerRef/name}\n- kind: Service\n  version: v1\n  fieldSpecs:\n  - {kind: Foo, path: spec/svc}\nvarReference:\n- path: metadata/annotations\n- {kind: Certificate, path: spec/dnsNames}\n",
            Ok((1, 2)),
        );
        // Field names are case-insensitive; unknown fields are ignored.
        check(
            "NameReference:\n- Kind: Bar\n  FieldSpecs:\n  - {Kind: Foo, Path: spec/bar}\nsomethingElse: 1\ncommonLabels:\n- {path: spec/labels, create: true}\n",
            Ok((1, 1)),
        );
        // The same spec with another create flag conflicts with the defaults.
        check(
            "commonLabels:\n- {path: metadata/labels, create: false}\n",
            Err("conflicting fieldspecs"),
        );
        check("nameReference: 3\n", Err("must be a list"));
    }
}

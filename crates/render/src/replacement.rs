//! `replacements`: copy a value from one field of one resource into fields
//! of others.

use serde_json::{Map, Value};

use crate::kustomization::{FieldOptions, Replacement, Selector, SourceSelector};
use crate::resource::{Gvk, ResId, Resource};
use crate::select::Matcher;

/// Splits a field path on dots, keeping `[...]` groups whole; `\.` is a
/// dot inside a field name.
pub(crate) fn split_field_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0usize;
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                chars.next();
                cur.push('.');
            }
            '[' => {
                if depth == 0 && !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth = depth.saturating_sub(1);
                cur.push(c);
                if depth == 0 {
                    out.push(std::mem::take(&mut cur));
                }
            }
            '.' if depth == 0 => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(crate::yaml::number_text(n)),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

enum Seg {
    Field(String),
    Match(String, String),
    Wildcard,
    Index(usize),
}

fn parse_seg(s: &str) -> Result<Seg, String> {
    if s == "*" {
        return Ok(Seg::Wildcard);
    }
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return match inner.split_once('=') {
            Some((k, v)) => Ok(Seg::Match(k.to_string(), v.to_string())),
            None => match inner.parse::<usize>() {
                Ok(i) => Ok(Seg::Index(i)),
                Err(_) => Ok(Seg::Field(inner.to_string())),
            },
        };
    }
    Ok(Seg::Field(s.to_string()))
}

/// Looks a value up by a field path (no creation).
fn lookup<'a>(node: &'a Value, segs: &[Seg]) -> Option<&'a Value> {
    let Some((first, rest)) = segs.split_first() else {
        return Some(node);
    };
    let next = match (first, node) {
        (Seg::Field(f), Value::Object(m)) => m.get(f)?,
        (Seg::Field(f), Value::Array(items)) => items.get(f.parse::<usize>().ok()?)?,
        (Seg::Index(i), Value::Array(items)) => items.get(*i)?,
        (Seg::Match(k, v), Value::Array(items)) => items.iter().find(|e| element_is(e, k, v))?,
        (Seg::Wildcard, Value::Array(items)) => items.first()?,
        _ => return None,
    };
    lookup(next, rest)
}

fn element_is(e: &Value, key: &str, value: &str) -> bool {
    if key.is_empty() {
        return scalar_text(e).is_some_and(|t| t == value);
    }
    e.get(key).and_then(scalar_text).is_some_and(|t| t == value)
}

/// Calls `f` on every node `segs` reaches, creating missing fields when
/// `create` is set. Returns how many nodes were reached.
fn visit(
    node: &mut Value,
    segs: &[Seg],
    create: bool,
    f: &mut dyn FnMut(&mut Value) -> Result<(), String>,
) -> Result<usize, String> {
    let Some((first, rest)) = segs.split_first() else {
        f(node)?;
        return Ok(1);
    };
    if node.is_null() && create {
        *node = match first {
            // a number creates a list, as kustomize's path creation does
            Seg::Field(name) if name.parse::<usize>().is_err() => Value::Object(Map::new()),
            _ => Value::Array(Vec::new()),
        };
    }
    match (first, node) {
        (Seg::Field(name), Value::Object(map)) => {
            if !map.contains_key(name) {
                if !create {
                    return Ok(0);
                }
                map.insert(name.clone(), Value::Null);
            }
            let child = map.get_mut(name).ok_or("field vanished")?;
            let n = visit(child, rest, create, f)?;
            if child.is_null() && rest.is_empty() && n == 0 {
                map.remove(name);
            }
            Ok(n)
        }
        (Seg::Field(name), Value::Array(items)) => match name.parse::<usize>() {
            Ok(i) => {
                if create && i == items.len() {
                    items.push(Value::Null);
                }
                match items.get_mut(i) {
                    Some(child) => visit(child, rest, create, f),
                    None => Ok(0),
                }
            }
            Err(_) => Ok(0),
        },
        (Seg::Index(i), Value::Array(items)) => match items.get_mut(*i) {
            Some(child) => visit(child, rest, create, f),
            None => Ok(0),
        },
        (Seg::Match(k, v), Value::Array(items)) => {
            let mut n = 0;
            for item in items.iter_mut() {
                if element_is(item, k, v) {
                    n += visit(item, rest, create, f)?;
                }
            }
            if n == 0 && create {
                let mut elem = if k.is_empty() {
                    Value::String(v.clone())
                } else {
                    let mut m = Map::new();
                    m.insert(k.clone(), Value::String(v.clone()));
                    Value::Object(m)
                };
                n += visit(&mut elem, rest, create, f)?;
                items.push(elem);
            }
            Ok(n)
        }
        (Seg::Wildcard, Value::Array(items)) => {
            let mut n = 0;
            for item in items.iter_mut() {
                n += visit(item, rest, create, f)?;
            }
            Ok(n)
        }
        (Seg::Wildcard, Value::Object(map)) => {
            let mut n = 0;
            for item in map.values_mut() {
                n += visit(item, rest, create, f)?;
            }
            Ok(n)
        }
        _ => Ok(0),
    }
}

fn parse_path(path: &str) -> Result<Vec<Seg>, String> {
    split_field_path(path)
        .iter()
        .map(|s| parse_seg(s))
        .collect()
}

fn source_selected(id: &ResId, s: &SourceSelector) -> bool {
    let gvk = Gvk {
        group: s.group.clone(),
        version: s.version.clone(),
        kind: s.kind.clone(),
    };
    let ns_ok = s.namespace.is_empty() || {
        let sel = ResId {
            gvk: id.gvk.clone(),
            name: String::new(),
            namespace: s.namespace.clone(),
        };
        sel.ns_equals(id)
    };
    (s.name.is_empty() || s.name == id.name) && ns_ok && id.gvk.is_selected_by(&gvk)
}

fn describe_source(s: &SourceSelector) -> String {
    let mut parts = Vec::new();
    for (k, v) in [
        ("group", &s.group),
        ("version", &s.version),
        ("kind", &s.kind),
        ("name", &s.name),
        ("namespace", &s.namespace),
    ] {
        if !v.is_empty() {
            parts.push(format!("{k}={v}"));
        }
    }
    format!("[{}]", parts.join(" "))
}

/// Reads the replacement value from its source resource.
fn source_value(resources: &[Resource], s: &SourceSelector) -> Result<Value, String> {
    let mut found: Option<&Resource> = None;
    for res in resources {
        let cur = res.cur_id();
        let hit = std::iter::once(&cur)
            .chain(res.prev_ids.iter())
            .any(|id| source_selected(id, s));
        if hit {
            if found.is_some() {
                return Err(format!(
                    "multiple matches for selector {}",
                    describe_source(s)
                ));
            }
            found = Some(res);
        }
    }
    let res = found.ok_or_else(|| format!("nothing selected by {}", describe_source(s)))?;
    let field_path = if s.field_path.is_empty() {
        "metadata.name"
    } else {
        &s.field_path
    };
    let segs = parse_path(field_path)?;
    let root = Value::Object(res.obj.clone());
    let value = lookup(&root, &segs)
        .filter(|v| !is_nil_or_empty(v))
        .ok_or_else(|| {
            format!(
                "fieldPath `{field_path}` is missing for replacement source {}",
                res.cur_id()
            )
        })?;
    refine(value.clone(), s.options.as_ref())
}

fn is_nil_or_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn refine(value: Value, options: Option<&FieldOptions>) -> Result<Value, String> {
    let Some(o) = options.filter(|o| !o.delimiter.is_empty()) else {
        return Ok(value);
    };
    let text = scalar_text(&value)
        .filter(|_| !value.is_object() && !value.is_array())
        .ok_or("delimiter option can only be used with scalar nodes")?;
    let parts: Vec<&str> = text.split(o.delimiter.as_str()).collect();
    if o.index < 0 || o.index as usize >= parts.len() {
        return Err(format!(
            "options.index {} is out of bounds for value {text}",
            o.index
        ));
    }
    Ok(Value::String(parts[o.index as usize].to_string()))
}

/// Writes `value` into a target field the way kustomize does: a scalar
/// target keeps its type and takes the value's text.
fn set_target(
    target: &mut Value,
    value: &Value,
    options: Option<&FieldOptions>,
) -> Result<(), String> {
    let mut value = value.clone();
    if let Some(o) = options.filter(|o| !o.delimiter.is_empty()) {
        if target.is_object() || target.is_array() {
            return Err("delimiter option can only be used with scalar nodes".into());
        }
        let current = scalar_text(target).unwrap_or_default();
        let mut parts: Vec<String> = current
            .split(o.delimiter.as_str())
            .map(str::to_string)
            .collect();
        let v = scalar_text(&value).unwrap_or_default();
        if o.index < 0 {
            parts.insert(0, v);
        } else if o.index as usize >= parts.len() {
            parts.push(v);
        } else {
            parts[o.index as usize] = v;
        }
        value = Value::String(parts.join(&o.delimiter));
    }
    match target {
        Value::String(_) => {
            *target = match &value {
                Value::Object(_) | Value::Array(_) => Value::String(String::new()),
                v => Value::String(scalar_text(v).unwrap_or_default()),
            };
        }
        Value::Number(_) | Value::Bool(_) => {
            let text = match &value {
                Value::Object(_) | Value::Array(_) => String::new(),
                v => scalar_text(v).unwrap_or_default(),
            };
            let retyped = match target {
                Value::Number(_) => crate::yaml::parse_single(&text)
                    .ok()
                    .filter(Value::is_number),
                _ => crate::yaml::parse_single(&text)
                    .ok()
                    .filter(Value::is_boolean),
            };
            *target = retyped.unwrap_or(Value::String(text));
        }
        _ => *target = value,
    }
    Ok(())
}

/// Applies one replacement to the resources.
pub(crate) fn apply(resources: &mut [Resource], r: &Replacement) -> Result<(), String> {
    let source = r
        .source
        .as_ref()
        .ok_or("a replacement must specify a source")?;
    if source
        .options
        .as_ref()
        .is_some_and(|o| !o.encoding.is_empty())
    {
        return Err("source.options.encoding is not supported".into());
    }
    let value = source_value(resources, source)?;
    for (t, target) in r.targets.iter().flatten().enumerate() {
        let select = target
            .select
            .as_ref()
            .ok_or_else(|| format!("targets[{t}]: target must specify resources to select"))?;
        if target
            .options
            .as_ref()
            .is_some_and(|o| !o.encoding.is_empty())
        {
            return Err(format!("targets[{t}].options.encoding is not supported"));
        }
        let matcher = Matcher::new(select).map_err(|e| format!("targets[{t}].select: {e}"))?;
        let rejects: Vec<Matcher> = target
            .reject
            .iter()
            .flatten()
            .map(|s: &Selector| Matcher::new(s))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("targets[{t}].reject: {e}"))?;
        let default_paths = vec!["metadata.name".to_string()];
        let paths = match target.field_paths.as_ref() {
            Some(p) if !p.is_empty() => p,
            _ => &default_paths,
        };
        let create = target.options.as_ref().is_some_and(|o| o.create);
        for res in resources.iter_mut() {
            if !matcher.selects_any_id(res) || rejects.iter().any(|m| m.selects_any_id(res)) {
                continue;
            }
            let id = res.cur_id();
            for path in paths {
                let segs = parse_path(path)?;
                let mut root = Value::Object(std::mem::take(&mut res.obj));
                let opts = target.options.as_ref();
                let outcome = visit(&mut root, &segs, create, &mut |node: &mut Value| {
                    set_target(node, &value, opts)
                });
                if let Value::Object(map) = root {
                    res.obj = map;
                }
                let n = outcome.map_err(|e| format!("targets[{t}] {id}: {e}"))?;
                if n == 0 {
                    let what = if create { "find or create" } else { "find" };
                    return Err(format!(
                        "unable to {what} field \"{path}\" in replacement target {id}"
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_split() {
        assert_eq!(
            split_field_path("metadata.labels.app\\.kubernetes\\.io/version"),
            vec!["metadata", "labels", "app.kubernetes.io/version"]
        );
        assert_eq!(
            split_field_path("spec.template.spec.containers.[name=a.b].image"),
            vec![
                "spec",
                "template",
                "spec",
                "containers",
                "[name=a.b]",
                "image"
            ]
        );
        assert_eq!(
            split_field_path("spec.containers[name=x].env"),
            vec!["spec", "containers", "[name=x]", "env"]
        );
    }
}

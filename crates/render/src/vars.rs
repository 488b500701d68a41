//! The legacy `vars`: each kustomization's vars are bound to the one
//! resource their `objref` names (by its original id) when the
//! kustomization is accumulated; at the very end, after name references
//! are fixed, `$(NAME)` in the var-reference fields is replaced by the
//! value at the var's field path of that resource.

use std::collections::HashMap;

use serde_json::Value;

use crate::fieldspec::FieldSpec;
use crate::kustomization::Var;
use crate::resource::{Gvk, ResId, Resource};

/// The field path of a var, defaulted as kustomize does.
fn field_path(var: &Var) -> &str {
    if var.fieldref.field_path.is_empty() {
        "metadata.name"
    } else {
        &var.fieldref.field_path
    }
}

fn target_id(var: &Var) -> ResId {
    let t = &var.objref;
    let gvk = if t.api_version.is_empty() {
        Gvk {
            group: t.group.clone(),
            version: t.version.clone(),
            kind: t.kind.clone(),
        }
    } else {
        Gvk::new(&t.api_version, &t.kind)
    };
    ResId {
        gvk,
        name: t.name.clone(),
        namespace: t.namespace.clone(),
    }
}

/// Binds each var to the resource its `objref` names among `resources`
/// (compared with the resources' original ids; an objref without a
/// namespace matches any namespace).
pub(crate) fn record(resources: &mut [Resource], vars: &[Var]) -> Result<(), String> {
    for var in vars {
        let target = target_id(var);
        let any_namespace = target.namespace.is_empty() && !target.gvk.is_cluster_scoped();
        let matched: Vec<usize> = resources
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                let org = r.org_id();
                if any_namespace {
                    org.name == target.name && org.gvk == target.gvk
                } else {
                    org.equals(&target)
                }
            })
            .map(|(i, _)| i)
            .collect();
        match matched.as_slice() {
            [] => {}
            [i] => resources[*i].ref_var_names.push(var.name.clone()),
            many => {
                return Err(format!(
                    "found {} resId matches for var {} (unable to disambiguate)",
                    many.len(),
                    var.name
                ));
            }
        }
    }
    Ok(())
}

/// Splits a var field path on dots outside brackets; `name[3]` is the
/// field `name` then index 3 (`name[k=v]` stays one, unknown, field).
fn path_segments(path: &str) -> Vec<String> {
    let mut raw = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth -= 1;
                cur.push(c);
            }
            '.' if depth == 0 => raw.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    raw.push(cur);
    let mut out = Vec::new();
    for seg in raw {
        if let Some(open) = seg.find('[')
            && open > 0
            && let Some(index) = seg[open + 1..].strip_suffix(']')
            && !index.is_empty()
            && index.bytes().all(|b| b.is_ascii_digit())
        {
            out.push(seg[..open].to_string());
            out.push(format!("[{index}]"));
            continue;
        }
        out.push(seg);
    }
    out
}

fn lookup<'v>(mut node: &'v Value, path: &str) -> Option<&'v Value> {
    for seg in path_segments(path) {
        let bracketed = seg.strip_prefix('[').and_then(|s| s.strip_suffix(']'));
        node = match (node, bracketed) {
            (Value::Array(items), Some(inner)) => match inner.split_once('=') {
                Some((k, v)) => items.iter().find(|item| {
                    item.get(k)
                        .and_then(crate::replacement::scalar_text)
                        .is_some_and(|x| x == v)
                })?,
                None => items.get(inner.parse::<usize>().ok()?)?,
            },
            (Value::Array(items), None) => items.get(seg.parse::<usize>().ok()?)?,
            (Value::Object(map), _) => map.get(&seg)?,
            _ => return None,
        };
    }
    Some(node)
}

/// A var's value as kustomize substitutes it: only scalars are.
fn primitive(v: &Value) -> Option<Value> {
    match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Some(v.clone()),
        _ => None,
    }
}

/// Replaces `$(NAME)` references in the var-reference fields.
pub(crate) fn resolve(
    resources: &mut [Resource],
    vars: &[Var],
    specs: &[FieldSpec],
) -> Result<(), String> {
    if vars.is_empty() {
        return Ok(());
    }
    let mut values: HashMap<String, Option<Value>> = HashMap::new();
    for var in vars {
        let holder = resources
            .iter()
            .find(|r| r.ref_var_names.iter().any(|n| n == &var.name))
            .ok_or_else(|| {
                format!(
                    "var '{}' cannot be mapped to a field in the set of known resources",
                    var.name
                )
            })?;
        let root = Value::Object(holder.obj.clone());
        let found = lookup(&root, field_path(var)).ok_or_else(|| {
            format!(
                "field specified in var '{}' ({}) not found in corresponding resource",
                var.name,
                field_path(var)
            )
        })?;
        values.insert(var.name.clone(), primitive(found));
    }
    for res in resources.iter_mut() {
        let gvk = res.gvk();
        for spec in specs {
            if !spec.selects(&gvk) {
                continue;
            }
            let spec = FieldSpec {
                create: false,
                ..spec.clone()
            };
            spec.apply(res, &mut |node: &mut Value| substitute(node, &values))?;
        }
    }
    Ok(())
}

fn substitute(node: &mut Value, values: &HashMap<String, Option<Value>>) -> Result<(), String> {
    match node {
        Value::String(s) => {
            if let Some(v) = expand(s, values) {
                *node = v;
            }
            Ok(())
        }
        Value::Object(map) => {
            for v in map.values_mut() {
                if let Value::String(s) = v
                    && let Some(new) = expand(s, values)
                {
                    *v = new;
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                match item {
                    Value::String(s) => {
                        if let Some(new) = expand(s, values) {
                            *item = new;
                        }
                    }
                    _ => return Err("invalid value type expect a string".into()),
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => crate::replacement::scalar_text(other).unwrap_or_default(),
    }
}

/// Expands `$(NAME)` (and `$$` to `$`) in `input`; unknown names stay.
/// A string that is exactly one reference takes the var's value with its
/// type. `None` when nothing changes.
pub(crate) fn expand(input: &str, values: &HashMap<String, Option<Value>>) -> Option<Value> {
    if !input.contains('$') {
        return None;
    }
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match bytes[cursor + 1] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest[1..].find(')') {
                    Some(end) => {
                        let name = &rest[1..1 + end];
                        let value = values.get(name).and_then(Option::as_ref);
                        if cursor == 0 && end + 3 == input.len() {
                            return value.cloned();
                        }
                        match value {
                            Some(v) => out.push_str(&text_of(v)),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        end + 2
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    // '$' and the next character are copied as they are.
                    let next = rest.chars().next().map_or(1, char::len_utf8);
                    out.push('$');
                    out.push_str(&rest[..next]);
                    next
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    if checkpoint < input.len() {
        out.push_str(&input[checkpoint..]);
    }
    (out != input).then_some(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Value) {
        let values: HashMap<String, Option<Value>> = [
            ("A".to_string(), Some(Value::from("alpha"))),
            ("N".to_string(), Some(Value::from(3))),
            ("MAP".to_string(), None),
        ]
        .into_iter()
        .collect();
        let got = expand(input, &values).unwrap_or_else(|| Value::from(input));
        assert_eq!(got, expected, "{input}");
    }

    #[test]
    fn expansion() {
        check("$(A)", Value::from("alpha"));
        check("$(N)", Value::from(3));
        check("x-$(A)-$(N)", Value::from("x-alpha-3"));
        check("$$(A)", Value::from("$(A)"));
        check("$(UNKNOWN)", Value::from("$(UNKNOWN)"));
        check("$(MAP)", Value::from("$(MAP)"));
        check("$(A", Value::from("$(A"));
        check("cost: 5$", Value::from("cost: 5$"));
        check("$x $é", Value::from("$x $é"));
        check("no vars", Value::from("no vars"));
    }

    #[test]
    fn field_paths() {
        assert_eq!(
            path_segments("spec.ports[0].port"),
            vec!["spec", "ports", "[0]", "port"]
        );
        assert_eq!(
            path_segments("spec.containers.[name=a.b].image"),
            vec!["spec", "containers", "[name=a.b]", "image"]
        );
        assert_eq!(
            path_segments("spec.containers[name=a].image"),
            vec!["spec", "containers[name=a]", "image"]
        );
    }
}

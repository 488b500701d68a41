//! Strategic merge patches (as kustomize's kyaml merge applies them) and
//! JSON patches (RFC 6902). Pure functions on values.

use serde_json::{Map, Value};

use crate::schema::{self, ListKind, Ty};

/// Applies a strategic merge patch to an object. `Ok(None)` means the patch
/// deleted the object (`$patch: delete` at its root).
pub(crate) fn strategic_merge(
    target: Map<String, Value>,
    patch: &Map<String, Value>,
    root: Ty,
) -> Result<Option<Map<String, Value>>, String> {
    match merge_value(
        Some(Value::Object(target)),
        &Value::Object(patch.clone()),
        root,
        root,
    )? {
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err("strategic merge produced a non-object".into()),
        None => Ok(None),
    }
}

fn directive(map: &Map<String, Value>) -> Option<&str> {
    map.get("$patch").and_then(Value::as_str)
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "MappingNode",
        Value::Array(_) => "SequenceNode",
        _ => "ScalarNode",
    }
}

fn wrong_kind(expected: &Value, got: &Value) -> String {
    let shown = crate::yaml::write_documents(std::slice::from_ref(got));
    format!(
        "wrong node kind: expected {} but got {}: node contents:\n{}",
        kind_name(expected),
        kind_name(got),
        shown.trim_end()
    )
}

/// Merges `patch` into `dest`. `map_ty` is the schema type of the value
/// when it is a map; `list_ty` describes it when it is a list (passed as
/// the parent type and field through `list_kind`).
fn merge_value(
    dest: Option<Value>,
    patch: &Value,
    map_ty: Ty,
    _list_ty: Ty,
) -> Result<Option<Value>, String> {
    let dest = dest.filter(|d| !d.is_null());
    match patch {
        Value::Null => Ok(None),
        Value::Object(p) => {
            match directive(p) {
                Some("delete") => return Ok(None),
                Some("replace") => {
                    let mut cleaned = p.clone();
                    cleaned.remove("$patch");
                    let base = Value::Object(cleaned.clone());
                    return merge_map_into(base_map(&base), &cleaned, map_ty)
                        .map(|m| Some(Value::Object(m)));
                }
                _ => {}
            }
            let mut body = p.clone();
            body.remove("$patch");
            match dest {
                None => merge_map_into(body.clone(), &body, map_ty).map(|m| Some(Value::Object(m))),
                Some(Value::Object(d)) => {
                    merge_map_into(d, &body, map_ty).map(|m| Some(Value::Object(m)))
                }
                Some(other) => Err(wrong_kind(&other, patch)),
            }
        }
        Value::Array(_) => Err("internal: list merged without its field".into()),
        scalar => match dest {
            Some(d @ (Value::Object(_) | Value::Array(_))) => Err(wrong_kind(&d, scalar)),
            _ => Ok(Some(scalar.clone())),
        },
    }
}

fn base_map(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// Merges the fields of `patch` into `dest` (both maps of type `ty`).
fn merge_map_into(
    mut dest: Map<String, Value>,
    patch: &Map<String, Value>,
    ty: Ty,
) -> Result<Map<String, Value>, String> {
    for (key, pv) in patch {
        if key == "$patch" {
            continue;
        }
        let dv = dest.remove(key);
        let merged = match pv {
            Value::Array(p_items) => {
                let (kind, elem_ty) = schema::list(ty, key);
                match dv.filter(|d| !d.is_null()) {
                    None => Some(Value::Array(merge_list(
                        Vec::new(),
                        p_items,
                        kind,
                        elem_ty,
                        true,
                    )?)),
                    Some(Value::Array(d_items)) => Some(Value::Array(merge_list(
                        d_items, p_items, kind, elem_ty, false,
                    )?)),
                    Some(other) => return Err(wrong_kind(&other, pv)),
                }
            }
            _ => {
                if let Some(d @ Value::Array(_)) = &dv
                    && !pv.is_null()
                {
                    return Err(wrong_kind(d, pv));
                }
                let child_ty = schema::field(ty, key);
                merge_value(dv, pv, child_ty, child_ty)?
            }
        };
        if let Some(v) = merged {
            dest.insert(key.clone(), v);
        }
    }
    Ok(dest)
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(crate::yaml::number_text(n)),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn is_replace_directive(v: &Value) -> bool {
    v.as_object().and_then(directive) == Some("replace")
}

/// Merges two lists the way kyaml does for the list's schema kind.
fn merge_list(
    dest: Vec<Value>,
    patch: &[Value],
    kind: ListKind,
    elem_ty: Ty,
    dest_missing: bool,
) -> Result<Vec<Value>, String> {
    match kind {
        ListKind::Replace => Ok(patch.to_vec()),
        ListKind::Primitive => {
            if patch.iter().any(is_replace_directive) {
                return Ok(patch
                    .iter()
                    .filter(|v| !is_replace_directive(v))
                    .cloned()
                    .collect());
            }
            let mut out: Vec<Value> = Vec::new();
            for v in patch.iter().chain(dest.iter()) {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            Ok(out)
        }
        ListKind::Keyed(keys) => {
            if patch
                .iter()
                .any(|v| is_replace_directive(v) && v.as_object().is_some_and(|m| m.len() == 1))
            {
                let rest: Vec<Value> = patch
                    .iter()
                    .filter(|v| {
                        !(is_replace_directive(v) && v.as_object().is_some_and(|m| m.len() == 1))
                    })
                    .cloned()
                    .collect();
                return merge_keyed(rest.clone(), &rest, keys, elem_ty);
            }
            if dest_missing {
                return merge_keyed(patch.to_vec(), patch, keys, elem_ty);
            }
            merge_keyed(dest, patch, keys, elem_ty)
        }
    }
}

type Tuple = Vec<String>;

fn tuple_of(v: &Value, keys: &[&str]) -> Option<Tuple> {
    let map = v.as_object()?;
    Some(
        keys.iter()
            .map(|k| map.get(*k).and_then(scalar_text).unwrap_or_default())
            .collect(),
    )
}

/// The keys and values used to find elements: keys whose value is empty
/// are dropped, unless all are.
fn valid_keys<'k>(tuple: &Tuple, keys: &[&'k str]) -> (Vec<&'k str>, Vec<String>) {
    let mut ks = Vec::new();
    let mut vs = Vec::new();
    for (k, v) in keys.iter().zip(tuple) {
        if !v.is_empty() {
            ks.push(*k);
            vs.push(v.clone());
        }
    }
    if ks.is_empty() {
        return (keys.to_vec(), tuple.clone());
    }
    (ks, vs)
}

fn element_matches(v: &Value, keys: &[&str], values: &[String]) -> bool {
    let Some(map) = v.as_object() else {
        return false;
    };
    keys.iter().zip(values).all(|(k, want)| {
        map.get(*k)
            .and_then(scalar_text)
            .is_some_and(|have| have == *want)
    })
}

fn merge_keyed(
    dest: Vec<Value>,
    patch: &[Value],
    keys: &[&str],
    elem_ty: Ty,
) -> Result<Vec<Value>, String> {
    let mut tuples: Vec<Tuple> = Vec::new();
    for v in patch.iter().chain(dest.iter()) {
        if let Some(t) = tuple_of(v, keys)
            && !tuples.contains(&t)
        {
            tuples.push(t);
        }
    }
    let mut dest_work = dest;
    let mut items: Vec<Value> = Vec::new();
    for t in &tuples {
        let (ks, vs) = valid_keys(t, keys);
        let d = dest_work
            .iter()
            .find(|e| element_matches(e, &ks, &vs))
            .cloned();
        let p = patch.iter().find(|e| element_matches(e, &ks, &vs));
        let merged = match (d, p) {
            (None, None) => None,
            (Some(d), None) => Some(d),
            (d, Some(p)) => merge_value(d, p, elem_ty, elem_ty)?,
        };
        let merged = merged.filter(|m| !(m.is_null() || m.as_object().is_some_and(Map::is_empty)));
        match merged {
            None => {
                dest_work.retain(|e| !element_matches(e, &ks, &vs));
                items.retain(|e| !element_matches(e, &ks, &vs));
            }
            Some(mut m) => {
                if let Value::Object(map) = &mut m {
                    for (k, v) in ks.iter().zip(&vs) {
                        map.entry(k.to_string())
                            .or_insert_with(|| Value::String(v.clone()));
                    }
                }
                items.retain(|e| !element_matches(e, &ks, &vs));
                items.push(m);
            }
        }
    }
    // Elements of the target that carry none of the keys are kept at the end.
    for e in dest_work {
        let keyless = match e.as_object() {
            Some(map) => keys.iter().all(|k| !map.contains_key(*k)),
            None => true,
        };
        if keyless {
            items.push(e);
        }
    }
    Ok(items)
}

// ---------------------------------------------------------------------------
// JSON patch

/// One RFC 6902 operation.
#[derive(Debug, Clone)]
pub(crate) struct JsonOp {
    pub op: String,
    pub path: String,
    pub from: Option<String>,
    pub value: Option<Value>,
}

/// Reads a JSON patch from its parsed form (a list of operations).
pub(crate) fn json_ops(value: &Value) -> Result<Vec<JsonOp>, String> {
    let Value::Array(items) = value else {
        return Err("a JSON patch must be a list of operations".into());
    };
    let mut ops = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(map) = item else {
            return Err(format!("operation {i} is not a map"));
        };
        for key in map.keys() {
            if !matches!(key.as_str(), "op" | "path" | "from" | "value") {
                return Err(format!("operation {i}: unknown field {key:?}"));
            }
        }
        let text = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_string);
        let op = text("op").ok_or_else(|| format!("operation {i}: missing op"))?;
        let path = text("path").ok_or_else(|| format!("operation {i}: missing path"))?;
        ops.push(JsonOp {
            op,
            path,
            from: text("from"),
            value: map.get("value").cloned(),
        });
    }
    Ok(ops)
}

fn pointer(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("invalid JSON pointer {path:?}"));
    };
    Ok(rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn parent_mut<'a>(
    doc: &'a mut Value,
    parts: &[String],
    path: &str,
) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for part in parts {
        cur = match cur {
            Value::Object(map) => map
                .get_mut(part)
                .ok_or_else(|| format!("doc is missing path: {path}"))?,
            Value::Array(items) => {
                let i: usize = part
                    .parse()
                    .map_err(|_| format!("invalid array index {part:?} in {path}"))?;
                items
                    .get_mut(i)
                    .ok_or_else(|| format!("array index {i} out of bounds in {path}"))?
            }
            _ => return Err(format!("doc is missing path: {path}")),
        };
    }
    Ok(cur)
}

fn get_at(doc: &Value, path: &str) -> Result<Value, String> {
    let parts = pointer(path)?;
    let mut cur = doc;
    for part in &parts {
        cur = match cur {
            Value::Object(map) => map
                .get(part)
                .ok_or_else(|| format!("doc is missing path: {path}"))?,
            Value::Array(items) => {
                let i: usize = part
                    .parse()
                    .map_err(|_| format!("invalid array index {part:?} in {path}"))?;
                items
                    .get(i)
                    .ok_or_else(|| format!("array index {i} out of bounds in {path}"))?
            }
            _ => return Err(format!("doc is missing path: {path}")),
        };
    }
    Ok(cur.clone())
}

fn add_at(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let parts = pointer(path)?;
    let Some((last, parent)) = parts.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parent, path)? {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            if last == "-" {
                items.push(value);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid array index {last:?} in {path}"))?;
            if i > items.len() {
                return Err(format!("array index {i} out of bounds in {path}"));
            }
            items.insert(i, value);
            Ok(())
        }
        _ => Err(format!("doc is missing path: {path}")),
    }
}

fn remove_at(doc: &mut Value, path: &str) -> Result<Value, String> {
    let parts = pointer(path)?;
    let Some((last, parent)) = parts.split_last() else {
        return Err("cannot remove the whole document".into());
    };
    match parent_mut(doc, parent, path)? {
        Value::Object(map) => map
            .shift_remove(last)
            .ok_or_else(|| format!("unable to remove nonexistent key: {last}: missing value")),
        Value::Array(items) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid array index {last:?} in {path}"))?;
            if i >= items.len() {
                return Err(format!("unable to remove nonexistent index {i} in {path}"));
            }
            Ok(items.remove(i))
        }
        _ => Err(format!("doc is missing path: {path}")),
    }
}

fn replace_at(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let parts = pointer(path)?;
    let Some((last, parent)) = parts.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parent, path)? {
        // kustomize's JSON patch library adds a missing key of a mapping
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("invalid array index {last:?} in {path}"))?;
            match items.get_mut(i) {
                Some(slot) => {
                    *slot = value;
                    Ok(())
                }
                None => Err(format!(
                    "replace operation does not apply: doc is missing key: {path}: missing value"
                )),
            }
        }
        _ => Err(format!("doc is missing path: {path}")),
    }
}

/// Applies JSON patch operations to a document.
pub(crate) fn json_patch(doc: &mut Value, ops: &[JsonOp]) -> Result<(), String> {
    for op in ops {
        let value = || {
            op.value
                .clone()
                .ok_or_else(|| format!("{} operation on {} needs a value", op.op, op.path))
        };
        let from = || {
            op.from
                .clone()
                .ok_or_else(|| format!("{} operation on {} needs from", op.op, op.path))
        };
        match op.op.as_str() {
            "add" => add_at(doc, &op.path, value()?)?,
            "remove" => {
                remove_at(doc, &op.path)?;
            }
            "replace" => replace_at(doc, &op.path, value()?)?,
            "move" => {
                let from = from()?;
                let v = remove_at(doc, &from)?;
                add_at(doc, &op.path, v)?;
            }
            "copy" => {
                let v = get_at(doc, &from()?)?;
                add_at(doc, &op.path, v)?;
            }
            "test" => {
                let have = get_at(doc, &op.path)?;
                if have != value()? {
                    return Err(format!("testing value {} failed: test failed", op.path));
                }
            }
            other => return Err(format!("unexpected JSON patch operation {other:?}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_single;

    fn obj(text: &str) -> Map<String, Value> {
        match parse_single(text).expect("yaml") {
            Value::Object(m) => m,
            other => panic!("not a map: {other}"),
        }
    }

    fn check(target: &str, patch: &str, expected: &str) {
        let t = obj(target);
        let root = schema::root(
            "apps",
            "v1",
            t.get("kind").and_then(Value::as_str).unwrap_or(""),
        );
        let out = strategic_merge(t, &obj(patch), root).expect("merge");
        let want = obj(expected);
        assert_eq!(out, Some(want), "target:\n{target}\npatch:\n{patch}");
    }

    const DEPLOY: &str = "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        image: a\n      - name: b\n        image: b\n        env: [{name: X, value: x}, {name: Y, value: y}]\n        ports: [{containerPort: 80, name: http}, {containerPort: 443}]\n      - name: c\n        image: c\n";

    #[test]
    fn strategic_merge_cases() {
        // The patched element moves first; the others keep their order.
        check(
            DEPLOY,
            "spec: {template: {spec: {containers: [{name: b, image: b2}]}}}",
            "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: b\n        image: b2\n        env: [{name: X, value: x}, {name: Y, value: y}]\n        ports: [{containerPort: 80, name: http}, {containerPort: 443}]\n      - name: a\n        image: a\n      - name: c\n        image: c\n",
        );
        // $patch: delete removes an element, null removes a field.
        check(
            DEPLOY,
            "spec: {template: {spec: {containers: [{name: b, env: [{name: X, $patch: delete}], image: null}, {name: c, $patch: delete}]}}}",
            "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n      - name: b\n        env: [{name: Y, value: y}]\n        ports: [{containerPort: 80, name: http}, {containerPort: 443}]\n      - name: a\n        image: a\n",
        );
        // Lists without a merge key are replaced.
        check(
            "kind: Deployment\nspec: {template: {spec: {tolerations: [{key: a}]}}}",
            "spec: {template: {spec: {tolerations: [{key: b}]}}}",
            "kind: Deployment\nspec: {template: {spec: {tolerations: [{key: b}]}}}",
        );
        // $patch: replace on a map.
        check(
            "kind: Deployment\nspec: {strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1}}}",
            "spec: {strategy: {$patch: replace, type: Recreate}}",
            "kind: Deployment\nspec: {strategy: {type: Recreate}}",
        );
        // Unknown kinds: lists are replaced even with name keys.
        check(
            "kind: Foo\nspec: {items: [{name: a}, {name: b, v: 1}]}",
            "spec: {items: [{name: b, v: 2}]}",
            "kind: Foo\nspec: {items: [{name: b, v: 2}]}",
        );
    }

    #[test]
    fn strategic_merge_root_delete() {
        let out = strategic_merge(obj(DEPLOY), &obj("$patch: delete"), Ty::Unknown).expect("merge");
        assert_eq!(out, None);
    }

    #[test]
    fn strategic_merge_kind_mismatch_is_an_error() {
        let err =
            strategic_merge(obj("a: {b: 1}"), &obj("a: 5"), Ty::Unknown).expect_err("mismatch");
        assert!(err.contains("wrong node kind"), "{err}");
    }

    fn check_json(doc: &str, patch: &str, expected: &str) {
        let mut d = parse_single(doc).expect("doc");
        let ops = json_ops(&parse_single(patch).expect("patch")).expect("ops");
        json_patch(&mut d, &ops).expect("apply");
        assert_eq!(
            d,
            parse_single(expected).expect("expected"),
            "patch {patch}"
        );
    }

    #[test]
    fn json_patch_cases() {
        check_json(
            "a: [1, 2]",
            "[{op: add, path: /a/-, value: 3}]",
            "a: [1, 2, 3]",
        );
        check_json(
            "a: [1, 2]",
            "[{op: add, path: /a/0, value: 0}]",
            "a: [0, 1, 2]",
        );
        check_json(
            "a: {b: 1}",
            "[{op: replace, path: /a/b, value: 2}]",
            "a: {b: 2}",
        );
        check_json("a: {b: 1}", "[{op: remove, path: /a/b}]", "a: {}");
        check_json(
            "a: {b/c: 1}",
            "[{op: move, from: /a/b~1c, path: /d}]",
            "a: {}\nd: 1",
        );
        check_json(
            "a: {b: 1}",
            "[{op: copy, from: /a, path: /c}]",
            "a: {b: 1}\nc: {b: 1}",
        );
        check_json("a: 1", "[{op: test, path: /a, value: 1}]", "a: 1");
        // kustomize's JSON patch adds a key `replace` finds missing
        check_json(
            "a: {b: 1}",
            "[{op: replace, path: /a/c, value: 2}]",
            "a: {b: 1, c: 2}",
        );
    }

    #[test]
    fn json_patch_errors() {
        let mut d = parse_single("a: {}").expect("doc");
        let ops = json_ops(&parse_single("[{op: replace, path: /b/x, value: 1}]").expect("p"))
            .expect("ops");
        assert!(json_patch(&mut d, &ops).is_err());
        let ops = json_ops(&parse_single("[{op: replace, path: /l/1, value: 1}]").expect("p"))
            .expect("ops");
        let mut l = parse_single("l: [0]").expect("doc");
        assert!(json_patch(&mut l, &ops).is_err());
        let ops =
            json_ops(&parse_single("[{op: add, path: /x/y, value: 1}]").expect("p")).expect("ops");
        assert!(json_patch(&mut d, &ops).is_err());
    }
}

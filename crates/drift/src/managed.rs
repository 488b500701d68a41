//! Which fields a field manager owns in a live object, read from
//! `metadata.managedFields`.
//!
//! Each entry's `fieldsV1` is a tree whose keys are:
//! - `f:<field>` a field of an object;
//! - `k:<json object>` the element of a list whose key fields have these
//!   values (`k:{"name":"web"}`, `k:{"containerPort":80,"protocol":"TCP"}`);
//! - `v:<json value>` the element of a set equal to this value;
//! - `i:<index>` the element at this index of a list without keys;
//! - `.` the node itself (the element or map exists because of this manager).
//!
//! A key whose value is `{}` is a leaf: the manager owns that field and its
//! whole value. A node with children owns only what the children say; with
//! `.` among them it also owns the node's existence, not its other fields.
//! `k:` and `v:` are resolved against the live list to an index; an element
//! the live object does not have is owned by no one.

use serde_json::{Map, Value};

use crate::compare::values_equal;

/// A field (or element) a field manager owns, as a path in the live object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Owned {
    /// The path's segments (object keys and array indexes).
    pub path: Vec<String>,
    /// `true` when the whole value at the path is owned (a leaf);
    /// `false` when only the node's existence is (`.`).
    pub whole: bool,
}

impl Owned {
    /// Whether a difference at `path` is in what this ownership covers: the
    /// path itself, or anything under it when the value is owned whole.
    pub fn covers(&self, path: &[String]) -> bool {
        if self.whole {
            path.starts_with(&self.path)
        } else {
            path == self.path.as_slice()
        }
    }

    /// Whether this ownership covers `path` or something under it.
    pub fn touches(&self, path: &[String]) -> bool {
        self.covers(path) || self.path.starts_with(path)
    }
}

/// Everything the managers accepted by `is_manager` own in `live`, sorted.
pub(crate) fn owned_by(live: &Value, is_manager: impl Fn(&str) -> bool) -> Vec<Owned> {
    let mut owned = Vec::new();
    let entries = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for entry in entries {
        let text = |key: &str| entry.get(key).and_then(Value::as_str);
        if !text("manager").is_some_and(&is_manager) || text("fieldsType") != Some("FieldsV1") {
            continue;
        }
        if let Some(fields) = entry.get("fieldsV1").and_then(Value::as_object) {
            collect(fields, Some(live), &mut Vec::new(), &mut owned);
        }
    }
    owned.sort();
    owned.dedup();
    owned
}

fn collect(
    fields: &Map<String, Value>,
    live: Option<&Value>,
    path: &mut Vec<String>,
    owned: &mut Vec<Owned>,
) {
    for (key, children) in fields {
        if key == "." {
            owned.push(Owned {
                path: path.clone(),
                whole: false,
            });
            continue;
        }
        let Some((segment, live_child)) = resolve(key, live) else {
            continue;
        };
        path.push(segment);
        match children.as_object() {
            Some(children) if !children.is_empty() => collect(children, live_child, path, owned),
            _ => owned.push(Owned {
                path: path.clone(),
                whole: true,
            }),
        }
        path.pop();
    }
}

/// The path segment a `fieldsV1` key stands for in the live value, and the
/// live value there; `None` when it names nothing the live object has (or
/// is not a key this crate knows).
fn resolve<'v>(key: &str, live: Option<&'v Value>) -> Option<(String, Option<&'v Value>)> {
    if let Some(field) = key.strip_prefix("f:") {
        return Some((field.to_owned(), live.and_then(|value| value.get(field))));
    }
    let items = live.and_then(Value::as_array);
    let found = |index: usize| Some((index.to_string(), items.and_then(|items| items.get(index))));
    if let Some(json) = key.strip_prefix("k:") {
        let Ok(Value::Object(key_fields)) = serde_json::from_str::<Value>(json) else {
            return None;
        };
        let index = items?.iter().position(|item| {
            key_fields
                .iter()
                .all(|(field, want)| item.get(field).is_some_and(|have| values_equal(have, want)))
        })?;
        return found(index);
    }
    if let Some(json) = key.strip_prefix("v:") {
        let want: Value = serde_json::from_str(json).ok()?;
        let index = items?.iter().position(|item| values_equal(item, &want))?;
        return found(index);
    }
    if let Some(index) = key.strip_prefix("i:") {
        return found(index.parse().ok()?);
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(live: Value, manager: &str, expected: &[(&str, bool)]) {
        let got: Vec<(String, bool)> = owned_by(&live, |m| m == manager)
            .into_iter()
            .map(|owned| (crate::pointer::encode(&owned.path), owned.whole))
            .collect();
        let want: Vec<(String, bool)> = expected
            .iter()
            .map(|(path, whole)| ((*path).to_owned(), *whole))
            .collect();
        assert_eq!(got, want, "{manager}");
    }

    fn with_fields(manager: &str, fields: Value, spec: Value) -> Value {
        json!({
            "metadata": {
                "name": "x",
                "managedFields": [
                    {"manager": manager, "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": fields},
                    {"manager": "someone-else", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}},
                ],
            },
            "spec": spec,
        })
    }

    #[test]
    fn keys_resolve_against_the_live_object() {
        let spec = json!({
            "containers": [
                {"name": "proxy", "ports": [{"containerPort": 9901, "protocol": "TCP"}]},
                {"name": "web", "ports": [{"containerPort": 8080, "protocol": "TCP"}]},
            ],
            "finalizers": ["a", "b"],
            "args": ["x", "y"],
        });
        check(
            with_fields(
                "m",
                json!({"f:spec": {"f:containers": {
                    "k:{\"name\":\"web\"}": {".": {}, "f:image": {}, "f:ports": {
                        "k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}
                    }},
                    "k:{\"name\":\"gone\"}": {".": {}, "f:image": {}},
                }, "f:finalizers": {"v:\"b\"": {}, "v:\"c\"": {}}, "f:args": {"i:1": {}}, "x:unknown": {}}}),
                spec.clone(),
            ),
            "m",
            &[
                ("/spec/args/1", true),
                ("/spec/containers/1", false),
                ("/spec/containers/1/image", true),
                ("/spec/containers/1/ports/0", false),
                ("/spec/containers/1/ports/0/containerPort", true),
                ("/spec/finalizers/1", true),
            ],
        );
        check(
            with_fields("m", json!({"f:spec": {}}), spec.clone()),
            "m",
            &[("/spec", true)],
        );
        check(with_fields("m", json!({}), spec), "nobody", &[]);
    }
}

//! The field-by-field comparison of a would-be object with the live one.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::{Map, Number, Value};

use crate::managed::{self, Owned};
use crate::pointer::{self, child};
use crate::{
    FIELD_MANAGER, FieldDiff, Ignore, IgnoreRule, ObjectRef, SECRET_MASK_AFTER, SECRET_MASK_BEFORE,
};

/// Fields of `metadata` that the API server or controllers write and that
/// are never drift.
const NEVER_DRIFT_METADATA: [&str; 8] = [
    "managedFields",
    "resourceVersion",
    "generation",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The annotation `kubectl apply` (client-side) writes; it holds the whole
/// applied object, secret values included, and is never drift.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The fields of a core Secret whose values are masked.
const SECRET_FIELDS: [&str; 2] = ["data", "stringData"];

/// Merge keys of well-known lists, by the list's field name, tried after
/// `name` (as strategic merge patch and server-side apply key them).
const MERGE_KEYS: [(&str, &[&str]); 5] = [
    ("ports", &["containerPort", "port"]),
    ("volumeMounts", &["mountPath"]),
    ("volumeDevices", &["devicePath"]),
    ("hostAliases", &["ip"]),
    ("conditions", &["type"]),
];

/// A copy of the object without the fields that are never drift:
/// `status`, the server-written metadata and the last-applied annotation
/// (and `metadata.annotations` itself if that annotation was its only one).
pub(crate) fn strip_never_drift(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in NEVER_DRIFT_METADATA {
                metadata.remove(field);
            }
            if let Some(annotations) = metadata
                .get_mut("annotations")
                .and_then(Value::as_object_mut)
                && annotations.remove(LAST_APPLIED).is_some()
                && annotations.is_empty()
            {
                metadata.remove("annotations");
            }
        }
    }
    object
}

/// Compares the two objects and lists their differences.
pub(crate) fn diff(would_be: &Value, live: &Value, rules: &[IgnoreRule]) -> Vec<FieldDiff> {
    let object = ObjectRef::of(would_be);
    let mut pointers = Vec::new();
    let mut managers = Vec::new();
    for rule in rules.iter().filter(|rule| rule.target.matches(&object)) {
        match &rule.what {
            Ignore::Pointer(text) => pointers.extend(pointer::decode(text).ok()),
            Ignore::ManagedBy(manager) => managers.push(manager.as_str()),
        }
    }
    let (managed, ours) = if managers.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        (
            managed::owned_by(live, |m| managers.contains(&m)),
            managed::owned_by(live, |m| m == FIELD_MANAGER),
        )
    };
    let mut walker = Walker {
        pointers,
        managed,
        ours,
        secret: object.is_secret() || ObjectRef::of(live).is_secret(),
        diffs: Vec::new(),
    };
    walker.walk(
        Some(&strip_never_drift(would_be)),
        Some(&strip_never_drift(live)),
        &[],
        Some(&[]),
    );
    walker.diffs
}

struct Walker {
    /// `Ignore::Pointer` rules, decoded.
    pointers: Vec<Vec<String>>,
    /// What the `Ignore::ManagedBy` managers own in the live object.
    managed: Vec<Owned>,
    /// What `pilothouse` owns in the live object.
    ours: Vec<Owned>,
    /// Whether the object is a core Secret.
    secret: bool,
    diffs: Vec<FieldDiff>,
}

impl Walker {
    /// Compares the values at one place. `path` is the reported path (with
    /// the desired array's indexes), `live_path` the same place in the live
    /// object (`None` inside an element only the desired object has).
    fn walk(
        &mut self,
        desired: Option<&Value>,
        live: Option<&Value>,
        path: &[String],
        live_path: Option<&[String]>,
    ) {
        let desired = desired.filter(|value| !value.is_null());
        let live = live.filter(|value| !value.is_null());
        match (desired, live) {
            (None, None) => {}
            (Some(Value::Object(desired)), Some(Value::Object(live))) => {
                let keys: BTreeSet<&String> = desired.keys().chain(live.keys()).collect();
                for key in keys {
                    let live_child = live_path.map(|at| child(at, key));
                    self.walk(
                        desired.get(key),
                        live.get(key),
                        &child(path, key),
                        live_child.as_deref(),
                    );
                }
            }
            (Some(Value::Array(desired)), Some(Value::Array(live))) => {
                self.walk_arrays(desired, live, path, live_path);
            }
            (Some(desired), Some(live)) => {
                if !values_equal(desired, live) {
                    self.emit(path, live_path, Some(live), Some(desired));
                }
            }
            (desired, live) => self.emit(path, live_path, live, desired),
        }
    }

    /// Lists are matched element by element on a merge key when every
    /// element of both has one, unique on each side; otherwise by index.
    fn walk_arrays(
        &mut self,
        desired: &[Value],
        live: &[Value],
        path: &[String],
        live_path: Option<&[String]>,
    ) {
        let field = path.last().map_or("", String::as_str);
        let Some(key) = merge_key(field, desired, live) else {
            for index in 0..desired.len().max(live.len()) {
                let segment = index.to_string();
                let live_child = live_path.map(|at| child(at, &segment));
                self.walk(
                    desired.get(index),
                    live.get(index),
                    &child(path, &segment),
                    live_child.as_deref(),
                );
            }
            return;
        };
        let live_by_key: HashMap<String, usize> = live
            .iter()
            .enumerate()
            .filter_map(|(index, item)| Some((key_text(item.get(key)?)?, index)))
            .collect();
        let mut matched = vec![false; live.len()];
        for (index, item) in desired.iter().enumerate() {
            let live_index = item
                .get(key)
                .and_then(key_text)
                .and_then(|text| live_by_key.get(&text).copied());
            if let Some(live_index) = live_index {
                matched[live_index] = true;
            }
            let live_child = live_path
                .zip(live_index)
                .map(|(at, live_index)| child(at, &live_index.to_string()));
            self.walk(
                Some(item),
                live_index.map(|live_index| &live[live_index]),
                &child(path, &index.to_string()),
                live_child.as_deref(),
            );
        }
        for (index, item) in live.iter().enumerate() {
            if !matched[index] {
                let segment = index.to_string();
                let live_child = live_path.map(|at| child(at, &segment));
                self.walk(
                    None,
                    Some(item),
                    &child(path, &segment),
                    live_child.as_deref(),
                );
            }
        }
    }

    /// Records one difference unless it is ignored; a value present on one
    /// side only is reported whole, less what the rules ignore in it.
    fn emit(
        &mut self,
        path: &[String],
        live_path: Option<&[String]>,
        live: Option<&Value>,
        desired: Option<&Value>,
    ) {
        let live_path = live.and(live_path);
        if self.ignored(path, live_path) {
            return;
        }
        let live = live.and_then(|value| self.prune(value, path, live_path));
        let desired = desired.and_then(|value| self.prune(value, path, None));
        match (&live, &desired) {
            (None, None) => return,
            (Some(live), Some(desired)) if values_equal(live, desired) => return,
            _ => {}
        }
        let (live, desired) = if self.secret {
            (
                live.map(|value| mask(value, path, SECRET_MASK_BEFORE)),
                desired.map(|value| mask(value, path, SECRET_MASK_AFTER)),
            )
        } else {
            (live, desired)
        };
        self.diffs.push(FieldDiff {
            path: pointer::encode(path),
            live,
            desired,
        });
    }

    /// Whether a difference at `path` (`live_path` in the live object, if
    /// the live object has the field) is ignored by a rule.
    fn ignored(&self, path: &[String], live_path: Option<&[String]>) -> bool {
        self.pointers
            .iter()
            .any(|pattern| pointer::is_prefix(pattern, path))
            || live_path.is_some_and(|at| {
                self.managed.iter().any(|owned| owned.covers(at))
                    && !self.ours.iter().any(|owned| owned.touches(at))
            })
    }

    /// The value without its nulls and the parts the rules ignore; `None`
    /// when nothing is left of a non-empty object or array.
    fn prune(&self, value: &Value, path: &[String], live_path: Option<&[String]>) -> Option<Value> {
        let keep = |segment: &str, item: &Value| {
            if item.is_null() {
                return None;
            }
            let item_path = child(path, segment);
            let item_live_path = live_path.map(|at| child(at, segment));
            if self.ignored(&item_path, item_live_path.as_deref()) {
                return None;
            }
            self.prune(item, &item_path, item_live_path.as_deref())
        };
        match value {
            Value::Object(map) if !map.is_empty() => {
                let kept: Map<String, Value> = map
                    .iter()
                    .filter_map(|(key, item)| Some((key.clone(), keep(key, item)?)))
                    .collect();
                (!kept.is_empty()).then_some(Value::Object(kept))
            }
            Value::Array(items) if !items.is_empty() => {
                let kept: Vec<Value> = items
                    .iter()
                    .enumerate()
                    .filter_map(|(index, item)| {
                        if item.is_null() {
                            return Some(Value::Null);
                        }
                        keep(&index.to_string(), item)
                    })
                    .collect();
                (!kept.is_empty()).then_some(Value::Array(kept))
            }
            other => Some(other.clone()),
        }
    }
}

/// The key to match the elements of two lists on, if there is one.
fn merge_key(field: &str, desired: &[Value], live: &[Value]) -> Option<&'static str> {
    let by_field = MERGE_KEYS
        .iter()
        .find(|(name, _)| *name == field)
        .map_or(&[][..], |(_, keys)| *keys);
    std::iter::once("name")
        .chain(by_field.iter().copied())
        .find(|key| keyed_by(key, desired) && keyed_by(key, live))
}

/// Whether every element is an object with a scalar `key`, unique in the list.
fn keyed_by(key: &str, items: &[Value]) -> bool {
    let mut seen = HashSet::new();
    items.iter().all(|item| {
        item.get(key)
            .and_then(key_text)
            .is_some_and(|text| seen.insert(text))
    })
}

/// A merge key's value as text (numbers by value: `80` and `80.0` are one).
fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(format!("s{text}")),
        Value::Bool(flag) => Some(format!("b{flag}")),
        Value::Number(number) => Some(match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(int), _, _) => format!("n{int}"),
            (None, Some(uint), _) => format!("n{uint}"),
            (None, None, Some(float)) if float.fract() == 0.0 && float.abs() < 9.0e15 => {
                // exact: integral and well within f64's exact integer range
                format!("n{}", float as i64)
            }
            _ => format!("n{number}"),
        }),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Deep equality where numbers compare by value (`1 == 1.0`) and a member
/// that is `null` counts as absent.
pub(crate) fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => numbers_equal(a, b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| values_equal(a, b))
        }
        (Value::Object(a), Value::Object(b)) => a.keys().chain(b.keys()).all(|key| {
            values_equal(
                a.get(key).unwrap_or(&Value::Null),
                b.get(key).unwrap_or(&Value::Null),
            )
        }),
        _ => a == b,
    }
}

fn numbers_equal(a: &Number, b: &Number) -> bool {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return a == b;
    }
    if a.is_f64() || b.is_f64() {
        return a.as_f64() == b.as_f64();
    }
    // one negative, one above i64::MAX
    false
}

/// Masks what a difference at `path` of a core Secret shows of its values.
fn mask(value: Value, path: &[String], mask: &str) -> Value {
    let masked = || Value::String(mask.to_owned());
    match path {
        [] => {
            let mut value = value;
            if let Some(object) = value.as_object_mut() {
                for field in SECRET_FIELDS {
                    if let Some(entries) = object.get_mut(field) {
                        *entries = mask_entries(entries, mask);
                    }
                }
            }
            value
        }
        [field] if SECRET_FIELDS.contains(&field.as_str()) => mask_entries(&value, mask),
        [field, ..] if SECRET_FIELDS.contains(&field.as_str()) => masked(),
        _ => value,
    }
}

/// A Secret's `data` or `stringData` with every value replaced by `mask`.
fn mask_entries(entries: &Value, mask: &str) -> Value {
    match entries {
        Value::Object(map) => Value::Object(
            map.keys()
                .map(|key| (key.clone(), Value::String(mask.to_owned())))
                .collect(),
        ),
        _ => Value::String(mask.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(a: Value, b: Value, expected: bool) {
        assert_eq!(values_equal(&a, &b), expected, "{a} {b}");
        assert_eq!(values_equal(&b, &a), expected, "{b} {a}");
    }

    #[test]
    fn equality_is_numeric_and_null_is_absent() {
        check(json!(1), json!(1.0), true);
        check(json!(1), json!(1.5), false);
        check(json!(-1), json!(u64::MAX), false);
        check(json!(u64::MAX), json!(u64::MAX), true);
        check(json!(0.5), json!(0.5), true);
        check(json!({"a": 1, "b": null}), json!({"a": 1.0}), true);
        check(json!([1, 2]), json!([1.0, 2]), true);
        check(json!([1, 2]), json!([2, 1]), false);
        check(json!("1"), json!(1), false);
        check(json!(null), json!(false), false);
    }

    #[test]
    fn merge_key_texts() {
        for (value, expected) in [
            (json!("web"), Some("sweb")),
            (json!(80), Some("n80")),
            (json!(80.0), Some("n80")),
            (json!(0.5), Some("n0.5")),
            (json!(true), Some("btrue")),
            (json!(null), None),
            (json!({"a": 1}), None),
        ] {
            assert_eq!(key_text(&value).as_deref(), expected, "{value}");
        }
    }
}

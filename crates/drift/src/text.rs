//! The readable diff: both objects as YAML, compared line by line.

use serde_json::{Map, Value};
use similar::TextDiff;

use crate::compare::{strip_never_drift, values_equal};
use crate::{ObjectRef, SECRET_MASK, SECRET_MASK_AFTER, SECRET_MASK_BEFORE};

/// Lines of context around each change, as `diff -u` and `kubectl diff`.
const CONTEXT_LINES: usize = 3;

pub(crate) fn unified_diff(would_be: &Value, live: &Value) -> String {
    let object = if would_be.is_null() {
        ObjectRef::of(live)
    } else {
        ObjectRef::of(would_be)
    };
    let mut desired = strip_never_drift(would_be);
    let mut live_text = strip_never_drift(live);
    if object.is_secret() || ObjectRef::of(live).is_secret() {
        mask_secret_values(&mut live_text, &mut desired);
    }
    let old = to_yaml(&live_text);
    let new = to_yaml(&desired);
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(CONTEXT_LINES)
        .header(&format!("live/{object}"), &format!("desired/{object}"))
        .to_string()
}

/// Replaces the values of `data` and `stringData`: equal ones by
/// [`SECRET_MASK`] on both sides, others by the before (live) and after
/// (desired) masks, so that a changed value still shows as a changed line.
fn mask_secret_values(live: &mut Value, desired: &mut Value) {
    for field in ["data", "stringData"] {
        let live_entries = live.get(field).cloned();
        let desired_entries = desired.get(field).cloned();
        let masked = |own: &Value, other: Option<&Value>, changed: &str| match own {
            Value::Object(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| {
                        let same = other
                            .and_then(|other| other.get(key))
                            .is_some_and(|theirs| values_equal(value, theirs));
                        let mask = if same { SECRET_MASK } else { changed };
                        (key.clone(), Value::String(mask.to_owned()))
                    })
                    .collect(),
            ),
            _ if other.is_some_and(|other| values_equal(own, other)) => {
                Value::String(SECRET_MASK.to_owned())
            }
            _ => Value::String(changed.to_owned()),
        };
        if let (Some(entries), Some(slot)) = (&live_entries, live.get_mut(field)) {
            *slot = masked(entries, desired_entries.as_ref(), SECRET_MASK_BEFORE);
        }
        if let (Some(entries), Some(slot)) = (&desired_entries, desired.get_mut(field)) {
            *slot = masked(entries, live_entries.as_ref(), SECRET_MASK_AFTER);
        }
    }
}

/// The object as YAML with keys sorted (as `kubectl diff` prints them);
/// nothing for no object.
fn to_yaml(object: &Value) -> String {
    if object.is_null() {
        return String::new();
    }
    serde_saphyr::to_string(&sorted(object))
        .unwrap_or_else(|error| format!("# cannot be written as YAML: {error}\n"))
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|key| (key.clone(), sorted(&map[key])))
                    .collect::<Map<String, Value>>(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

//! Desired objects as the sync sees them: identity, apiVersion and the SHA-256
//! of their canonical JSON.

use std::collections::HashSet;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::{ObjectKey, SyncError};

/// One desired object, checked. Deliberately not `Debug`: the body may be a
/// Secret.
#[derive(Clone)]
pub(super) struct Manifest {
    /// Identity as written (namespace not yet normalised by scope).
    pub key: ObjectKey,
    /// `apiVersion`.
    pub api_version: String,
    /// SHA-256 of the canonical JSON, lowercase hex.
    pub sha256: String,
    /// The object, as it is applied.
    pub body: Value,
}

/// Checks every desired value and refuses the set when one is not an object
/// that can be applied, or when two share an identity.
pub(super) fn parse_all(desired: Vec<Value>) -> Result<Vec<Manifest>, SyncError> {
    let mut seen = HashSet::new();
    let mut manifests = Vec::with_capacity(desired.len());
    for (index, body) in desired.into_iter().enumerate() {
        let manifest = parse(body).map_err(|reason| SyncError::InvalidObject { index, reason })?;
        if !seen.insert(manifest.key.clone()) {
            return Err(SyncError::DuplicateObject { key: manifest.key });
        }
        manifests.push(manifest);
    }
    Ok(manifests)
}

/// Checks every value the way [`parse_all`] does, without keeping anything:
/// the same errors before any call is made.
pub(crate) fn check_all(desired: &[Value]) -> Result<(), SyncError> {
    parse_all(desired.to_vec()).map(drop)
}

fn parse(body: Value) -> Result<Manifest, String> {
    let text = |pointer: &str| {
        body.pointer(pointer)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if !body.is_object() {
        return Err("not a JSON object".into());
    }
    let api_version = text("/apiVersion").ok_or("no apiVersion")?.to_owned();
    let kind = text("/kind").ok_or("no kind")?;
    if text("/metadata/name").is_none() {
        return Err(format!("{kind} without metadata.name"));
    }
    if kind.ends_with("List") && body.get("items").is_some() {
        return Err(format!("{kind} is a list: give its items instead"));
    }
    let key = ObjectKey::of(&body).ok_or("no apiVersion, kind or name")?;
    Ok(Manifest {
        key,
        api_version,
        sha256: sha256_hex(&body),
        body,
    })
}

/// The API group of an apiVersion: `apps/v1` → `apps`, `v1` → `""`.
pub(super) fn group_of(api_version: &str) -> &str {
    api_version
        .rsplit_once('/')
        .map_or("", |(group, _version)| group)
}

/// SHA-256 of the canonical JSON of `value` (object keys sorted, no
/// whitespace), lowercase hex.
pub(super) fn sha256_hex(value: &Value) -> String {
    let mut text = String::new();
    write_canonical(value, &mut text);
    Sha256::digest(text.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // a string's Display is its JSON form, quoted and escaped
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(input: Value, expected: Result<&str, &str>) {
        let got = parse(input).map(|m| m.key.to_string());
        assert_eq!(got.as_deref().map_err(String::as_str), expected);
    }

    #[test]
    fn identities_come_from_group_kind_namespace_and_name() {
        check(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}}),
            Ok("apps/Deployment shop/web"),
        );
        check(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            Ok("Namespace shop"),
        );
        check(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": ""}}),
            Ok("ConfigMap c"),
        );
    }

    #[test]
    fn values_that_are_not_appliable_objects_are_refused() {
        check(json!([1]), Err("not a JSON object"));
        check(
            json!({"kind": "ConfigMap", "metadata": {"name": "c"}}),
            Err("no apiVersion"),
        );
        check(
            json!({"apiVersion": "v1", "metadata": {"name": "c"}}),
            Err("no kind"),
        );
        check(
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "p-"}}),
            Err("Pod without metadata.name"),
        );
        check(
            json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"name": "l"}, "items": []}),
            Err("ConfigMapList is a list: give its items instead"),
        );
    }

    #[test]
    fn the_hash_ignores_key_order_but_not_values() {
        let a = json!({"b": 1, "a": {"y": [1, "x"], "x": null}});
        let b = json!({"a": {"x": null, "y": [1, "x"]}, "b": 1});
        let c = json!({"a": {"x": null, "y": ["x", 1]}, "b": 1});
        assert_eq!(sha256_hex(&a), sha256_hex(&b));
        assert_ne!(sha256_hex(&a), sha256_hex(&c));
        // what `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`
        // gives, hashed
        assert_eq!(
            sha256_hex(&json!({"b": [1, {"d": 2, "c": null}], "a": "\"é"})),
            "e5860f650d4ad8e91da4e5eac3d62f04cf495339bc6471c4c6495c42c4f57b26"
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "n"}});
        let error = parse_all(vec![cm.clone(), cm]).err();
        assert_eq!(
            error.map(|e| e.to_string()).as_deref(),
            Some("ConfigMap n/c is desired twice")
        );
    }
}

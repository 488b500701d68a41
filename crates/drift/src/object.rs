//! Which object a finding is about.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Names one Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    /// `apps/v1`, `v1`, …
    pub api_version: String,
    /// `Deployment`, `Secret`, …
    pub kind: String,
    /// The namespace; `None` for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object's name.
    pub name: String,
}

impl ObjectRef {
    /// Reads `apiVersion`, `kind`, `metadata.namespace` and `metadata.name`
    /// of an object; what is missing is left empty (an empty namespace is
    /// `None`).
    pub fn of(object: &Value) -> ObjectRef {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let namespace = text("/metadata/namespace");
        ObjectRef {
            api_version: text("/apiVersion"),
            kind: text("/kind"),
            namespace: (!namespace.is_empty()).then_some(namespace),
            name: text("/metadata/name"),
        }
    }

    /// The API group: `apps` for `apps/v1`, `""` for the core group (`v1`).
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _version)| group)
    }

    /// Whether this is a core-group Secret, whose values are never shown.
    pub fn is_secret(&self) -> bool {
        self.kind == "Secret" && self.group().is_empty()
    }
}

/// `apiVersion/kind/namespace/name`, without the namespace for
/// cluster-scoped objects: `apps/v1/Deployment/shop/web`, `v1/Namespace/shop`.
impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/", self.api_version, self.kind)?;
        if let Some(namespace) = &self.namespace {
            write!(f, "{namespace}/")?;
        }
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(object: Value, expected: &str, group: &str, secret: bool) {
        let reference = ObjectRef::of(&object);
        assert_eq!(reference.to_string(), expected);
        assert_eq!(reference.group(), group, "{expected}");
        assert_eq!(reference.is_secret(), secret, "{expected}");
    }

    #[test]
    fn references_name_objects() {
        check(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}}),
            "apps/v1/Deployment/shop/web",
            "apps",
            false,
        );
        check(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            "v1/Namespace/shop",
            "",
            false,
        );
        check(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": ""}}),
            "v1/Secret/db",
            "",
            true,
        );
        check(
            json!({"apiVersion": "example.com/v1", "kind": "Secret", "metadata": {"name": "db"}}),
            "example.com/v1/Secret/db",
            "example.com",
            false,
        );
    }
}

//! Ignore rules: differences a user has declared are not drift.

use serde::{Deserialize, Serialize};

use crate::{DriftError, ObjectRef, pointer};

/// Says that some differences of some objects are not drift.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IgnoreRule {
    /// The objects the rule is about.
    #[serde(default)]
    pub target: Target,
    /// The differences it ignores.
    pub what: Ignore,
}

impl IgnoreRule {
    /// Checks what the comparison would otherwise skip silently: that a
    /// pointer is a JSON pointer and a field manager is named.
    pub fn validate(&self) -> Result<(), DriftError> {
        match &self.what {
            Ignore::Pointer(pointer) => pointer::decode(pointer).map(drop),
            Ignore::ManagedBy(manager) if manager.is_empty() => Err(DriftError::EmptyManager),
            Ignore::ManagedBy(_) => Ok(()),
        }
    }
}

/// Which objects a rule applies to. Every part must match.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The API group (`apps`; `""` for the core group), or `*` for any.
    #[serde(default = "any")]
    pub group: String,
    /// The kind (`Deployment`), or `*` for any.
    #[serde(default = "any")]
    pub kind: String,
    /// The namespace, a glob like the name; `None` for any namespace and
    /// cluster-scoped objects too.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The name, a glob where `*` matches any run of characters.
    #[serde(default = "any")]
    pub name: String,
}

fn any() -> String {
    "*".to_owned()
}

impl Default for Target {
    /// Every object.
    fn default() -> Self {
        Target::any()
    }
}

impl Target {
    /// Every object.
    pub fn any() -> Self {
        Target {
            group: any(),
            kind: any(),
            namespace: None,
            name: any(),
        }
    }

    /// Whether the object is one of the target's.
    pub fn matches(&self, object: &ObjectRef) -> bool {
        (self.group == "*" || self.group == object.group())
            && (self.kind == "*" || self.kind == object.kind)
            && self.namespace.as_deref().is_none_or(|pattern| {
                object
                    .namespace
                    .as_deref()
                    .is_some_and(|namespace| glob_matches(pattern, namespace))
            })
            && glob_matches(&self.name, &object.name)
    }
}

/// The differences a rule ignores.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ignore {
    /// A JSON pointer (RFC 6901) to a field: differences at it and anywhere
    /// under it are ignored. A segment that is exactly `*` matches any one
    /// key or index (`/spec/template/spec/containers/*/image`). Indexes are
    /// those of the reported paths: the desired array's, or the live
    /// array's for an element only the live object has. `""` ignores
    /// everything. An invalid pointer ignores nothing (see
    /// [`IgnoreRule::validate`]).
    Pointer(String),
    /// Fields that this field manager owns in the live object (its entries
    /// in `metadata.managedFields`, any operation, `FieldsV1`): differences at
    /// such a field, or under a field it owns whole, are ignored, unless
    /// the [`FIELD_MANAGER`](crate::FIELD_MANAGER) `pilothouse` also owns the
    /// field, owns a field around it whole, or owns a field under it. Only
    /// fields the live object has can be ignored this way.
    ManagedBy(String),
}

/// `*` matches any run of characters (none too); everything else matches
/// itself.
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == text;
    };
    if text.len() < first.len() + last.len() || !text.starts_with(first) || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(pattern: &str, text: &str, expected: bool) {
        assert_eq!(glob_matches(pattern, text), expected, "{pattern} {text}");
    }

    #[test]
    fn globs() {
        check("web", "web", true);
        check("web", "web2", false);
        check("*", "", true);
        check("*", "anything", true);
        check("web-*", "web-1", true);
        check("web-*", "web-", true);
        check("web-*", "api-1", false);
        check("*-canary", "web-canary", true);
        check("a*b*c", "abc", true);
        check("a*b*c", "aXbYc", true);
        check("a*b*c", "acb", false);
        check("ab*ba", "aba", false);
        check("*.*", "a.b", true);
    }

    #[test]
    fn targets_match_objects() {
        let web = ObjectRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: "web-1".into(),
        };
        let namespace = ObjectRef {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: None,
            name: "shop".into(),
        };
        let target = |group: &str, kind: &str, ns: Option<&str>, name: &str| Target {
            group: group.into(),
            kind: kind.into(),
            namespace: ns.map(Into::into),
            name: name.into(),
        };
        for (target, object, expected) in [
            (Target::any(), &web, true),
            (Target::any(), &namespace, true),
            (
                target("apps", "Deployment", Some("shop"), "web-*"),
                &web,
                true,
            ),
            (target("", "Deployment", None, "*"), &web, false),
            (target("apps", "StatefulSet", None, "*"), &web, false),
            (target("*", "*", Some("other"), "*"), &web, false),
            (target("*", "*", Some("sh*"), "*"), &web, true),
            (target("*", "*", Some("shop"), "*"), &namespace, false),
            (target("", "Namespace", None, "shop"), &namespace, true),
        ] {
            assert_eq!(target.matches(object), expected, "{target:?} {object}");
        }
    }

    #[test]
    fn rules_read_from_json_and_validate() {
        for (input, expected) in [
            (
                json!({"what": {"pointer": "/spec/replicas"}}),
                Ok(IgnoreRule {
                    target: Target::any(),
                    what: Ignore::Pointer("/spec/replicas".into()),
                }),
            ),
            (
                json!({"target": {"group": "apps", "kind": "Deployment", "name": "web"}, "what": {"managed_by": "hpa"}}),
                Ok(IgnoreRule {
                    target: Target {
                        group: "apps".into(),
                        kind: "Deployment".into(),
                        namespace: None,
                        name: "web".into(),
                    },
                    what: Ignore::ManagedBy("hpa".into()),
                }),
            ),
            (json!({"what": {"pointer": "spec"}}), Err(())),
            (json!({"what": {"managed_by": ""}}), Err(())),
            // a misspelt field would widen the rule: refused
            (
                json!({"target": {"namepsace": "shop"}, "what": {"pointer": ""}}),
                Err(()),
            ),
            (json!({"what": {"ignore": "/spec"}}), Err(())),
        ] {
            let got = serde_json::from_value::<IgnoreRule>(input.clone())
                .map_err(|_| ())
                .and_then(|rule| rule.validate().map(|()| rule).map_err(|_| ()));
            assert_eq!(got, expected, "{input}");
        }
    }
}

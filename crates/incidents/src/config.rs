//! What detection leaves out, and when a pending pod becomes an incident.

use std::collections::BTreeSet;
use std::fmt;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{IncidentsError, Reason};

/// How long a pod may be Pending and unschedulable before it is reported:
/// five minutes.
pub const DEFAULT_PENDING_THRESHOLD_MS: i64 = 5 * 60 * 1000;

/// What the [`Detector`](crate::Detector) reports. Everything is reported
/// unless excluded here. Read from JSON or YAML with serde (unknown fields
/// are refused; pod name patterns are checked while reading).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectConfig {
    /// Namespaces whose pods are ignored entirely (exact names).
    pub exclude_namespaces: BTreeSet<String>,
    /// Pods whose name matches one of these patterns are ignored entirely.
    pub exclude_pod_names: Vec<NamePattern>,
    /// Containers (and init containers) with these names are ignored in
    /// every pod.
    pub exclude_containers: BTreeSet<String>,
    /// Findings with these reasons are dropped (the detector still tracks
    /// the state behind them, so restart counts stay right).
    pub exclude_reasons: BTreeSet<Reason>,
    /// How long a pod may be Pending and unschedulable before it is
    /// reported; `None` for [`DEFAULT_PENDING_THRESHOLD_MS`].
    pub pending_threshold_ms: Option<i64>,
}

impl DetectConfig {
    /// This configuration with a cluster's `overrides` on top: the
    /// exclusions of both (a cluster can add exclusions, never remove the
    /// fleet's), and the override's pending threshold when it sets one.
    pub fn merged(&self, overrides: &DetectConfig) -> DetectConfig {
        let mut exclude_pod_names = self.exclude_pod_names.clone();
        for pattern in &overrides.exclude_pod_names {
            if !exclude_pod_names.contains(pattern) {
                exclude_pod_names.push(pattern.clone());
            }
        }
        DetectConfig {
            exclude_namespaces: self
                .exclude_namespaces
                .union(&overrides.exclude_namespaces)
                .cloned()
                .collect(),
            exclude_pod_names,
            exclude_containers: self
                .exclude_containers
                .union(&overrides.exclude_containers)
                .cloned()
                .collect(),
            exclude_reasons: self
                .exclude_reasons
                .union(&overrides.exclude_reasons)
                .copied()
                .collect(),
            pending_threshold_ms: overrides.pending_threshold_ms.or(self.pending_threshold_ms),
        }
    }

    /// The pending threshold in effect.
    pub fn pending_threshold(&self) -> i64 {
        self.pending_threshold_ms
            .unwrap_or(DEFAULT_PENDING_THRESHOLD_MS)
    }

    /// Whether a pod is ignored entirely: its namespace is excluded or its
    /// name matches an excluded pattern.
    pub fn excludes_pod(&self, namespace: &str, name: &str) -> bool {
        self.exclude_namespaces.contains(namespace)
            || self
                .exclude_pod_names
                .iter()
                .any(|pattern| pattern.is_match(name))
    }

    /// Whether a container is ignored.
    pub fn excludes_container(&self, name: &str) -> bool {
        self.exclude_containers.contains(name)
    }

    /// Whether findings with this reason are dropped.
    pub fn excludes_reason(&self, reason: Reason) -> bool {
        self.exclude_reasons.contains(&reason)
    }
}

/// A regular expression (the `regex` crate's syntax) for pod names. It
/// matches anywhere in the name, like kwatch's `ignorePodNames`; anchor it
/// with `^…$` to match whole names. Equal when the pattern texts are equal.
#[derive(Clone)]
pub struct NamePattern(Regex);

impl NamePattern {
    /// Compiles a pattern.
    pub fn new(pattern: &str) -> Result<Self, IncidentsError> {
        Regex::new(pattern)
            .map(NamePattern)
            .map_err(|source| IncidentsError::InvalidPattern {
                pattern: pattern.to_owned(),
                source,
            })
    }

    /// The pattern's text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether the pattern matches somewhere in `name`.
    pub fn is_match(&self, name: &str) -> bool {
        self.0.is_match(name)
    }
}

impl fmt::Debug for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NamePattern").field(&self.as_str()).finish()
    }
}

impl PartialEq for NamePattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for NamePattern {}

impl Serialize for NamePattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for NamePattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let pattern = String::deserialize(deserializer)?;
        NamePattern::new(&pattern).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn check(fleet: Value, cluster: Value, expected: Result<Value, &str>) {
        let parse = |value: &Value| {
            serde_json::from_value::<DetectConfig>(value.clone()).map_err(|e| e.to_string())
        };
        let merged = parse(&fleet).and_then(|fleet| Ok(fleet.merged(&parse(&cluster)?)));
        match (merged, expected) {
            (Ok(merged), Ok(expected)) => {
                assert_eq!(serde_json::to_value(&merged).expect("serialize"), expected);
                assert_eq!(parse(&expected).as_ref(), Ok(&merged));
            }
            (Err(error), Err(expected)) => assert!(error.contains(expected), "{error}"),
            (merged, expected) => panic!("{merged:?} != {expected:?}"),
        }
    }

    #[test]
    fn configs_read_and_merge() {
        let empty = json!({
            "exclude_namespaces": [], "exclude_pod_names": [], "exclude_containers": [],
            "exclude_reasons": [], "pending_threshold_ms": null
        });
        for (fleet, cluster, expected) in [
            (json!({}), json!({}), Ok(empty.clone())),
            (
                json!({"exclude_namespaces": ["kube-system"], "exclude_pod_names": ["^debug-"], "exclude_reasons": ["Evicted"], "pending_threshold_ms": 60000}),
                json!({"exclude_namespaces": ["scratch", "kube-system"], "exclude_pod_names": ["^debug-", "canary"], "exclude_containers": ["istio-proxy"], "exclude_reasons": ["OOMKilled"]}),
                Ok(json!({
                    "exclude_namespaces": ["kube-system", "scratch"], "exclude_pod_names": ["^debug-", "canary"],
                    "exclude_containers": ["istio-proxy"], "exclude_reasons": ["OOMKilled", "Evicted"],
                    "pending_threshold_ms": 60000
                })),
            ),
            (
                json!({"pending_threshold_ms": 60000}),
                json!({"pending_threshold_ms": 1000}),
                Ok(json!({
                    "exclude_namespaces": [], "exclude_pod_names": [], "exclude_containers": [],
                    "exclude_reasons": [], "pending_threshold_ms": 1000
                })),
            ),
            (
                json!({"exclude_pod_names": ["(unclosed"]}),
                json!({}),
                Err("invalid pod name pattern `(unclosed`"),
            ),
            (
                json!({}),
                json!({"exclude_reasons": ["Crashing"]}),
                Err("unknown incident reason `Crashing`"),
            ),
            (
                json!({"exclude_namespace": ["x"]}),
                json!({}),
                Err("unknown field `exclude_namespace`"),
            ),
        ] {
            check(fleet, cluster, expected);
        }
    }

    #[test]
    fn exclusions_and_threshold() {
        let config = DetectConfig {
            exclude_namespaces: ["kube-system".to_owned()].into(),
            exclude_pod_names: vec![NamePattern::new("^debug-").expect("pattern")],
            exclude_containers: ["istio-proxy".to_owned()].into(),
            exclude_reasons: [Reason::Evicted].into(),
            pending_threshold_ms: None,
        };
        assert!(config.excludes_pod("kube-system", "web"));
        assert!(!config.excludes_pod("kube-system-2", "web"));
        assert!(config.excludes_pod("shop", "debug-web"));
        assert!(!config.excludes_pod("shop", "web-debug-1"));
        assert!(config.excludes_container("istio-proxy"));
        assert!(config.excludes_reason(Reason::Evicted));
        assert!(!config.excludes_reason(Reason::OomKilled));
        assert_eq!(config.pending_threshold(), DEFAULT_PENDING_THRESHOLD_MS);
        assert!(
            matches!(NamePattern::new("["), Err(IncidentsError::InvalidPattern { pattern, .. }) if pattern == "[")
        );
    }
}

//! Alert labels and the matchers that select alerts for routes and
//! silences.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{IncidentKey, IncidentsError, Severity};

/// The name of an alert label. The serde form is [`Label::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// The cluster the incident is in.
    Cluster,
    /// The namespace; absent for node incidents.
    Namespace,
    /// The workload's kind (`Deployment`, `Node` …).
    WorkloadKind,
    /// The workload's name.
    Workload,
    /// The container; absent for pod-level and node incidents.
    Container,
    /// The [`Reason`](crate::Reason), in its Kubernetes spelling.
    Reason,
    /// The [`Severity`]: `warning` or `critical`.
    Severity,
}

impl Label {
    /// Every label, in order.
    pub const ALL: [Label; 7] = [
        Label::Cluster,
        Label::Namespace,
        Label::WorkloadKind,
        Label::Workload,
        Label::Container,
        Label::Reason,
        Label::Severity,
    ];

    /// The name: `cluster`, `namespace`, `workload_kind` …
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Cluster => "cluster",
            Label::Namespace => "namespace",
            Label::WorkloadKind => "workload_kind",
            Label::Workload => "workload",
            Label::Container => "container",
            Label::Reason => "reason",
            Label::Severity => "severity",
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Label {
    type Err = IncidentsError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Label::ALL
            .into_iter()
            .find(|label| label.as_str() == value)
            .ok_or_else(|| IncidentsError::UnknownLabel {
                value: value.to_owned(),
            })
    }
}

/// What an alert is about: an incident's key, its cluster and severity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AlertLabels {
    /// The cluster.
    pub cluster: String,
    /// The namespace; `None` for node incidents.
    pub namespace: Option<String>,
    /// The workload's kind.
    pub workload_kind: String,
    /// The workload's name.
    pub workload: String,
    /// The container; `None` for pod-level and node incidents.
    pub container: Option<String>,
    /// The reason, in its Kubernetes spelling (`OOMKilled` …).
    pub reason: String,
    /// How bad it is.
    pub severity: Severity,
}

impl AlertLabels {
    /// The labels of an incident in a cluster (the severity is the
    /// reason's).
    pub fn of_incident(cluster: &str, key: &IncidentKey) -> Self {
        AlertLabels {
            cluster: cluster.to_owned(),
            namespace: key.namespace.clone(),
            workload_kind: key.workload.kind.clone(),
            workload: key.workload.name.clone(),
            container: key.container.clone(),
            reason: key.reason.as_str().to_owned(),
            severity: key.reason.severity(),
        }
    }

    /// A label's value; `None` when the alert does not have it.
    pub fn get(&self, label: Label) -> Option<&str> {
        match label {
            Label::Cluster => Some(&self.cluster),
            Label::Namespace => self.namespace.as_deref(),
            Label::WorkloadKind => Some(&self.workload_kind),
            Label::Workload => Some(&self.workload),
            Label::Container => self.container.as_deref(),
            Label::Reason => Some(&self.reason),
            Label::Severity => Some(self.severity.as_str()),
        }
    }

    /// Whether every matcher matches (no matchers: yes).
    pub fn matches(&self, matchers: &[Matcher]) -> bool {
        matchers.iter().all(|matcher| matcher.matches(self))
    }

    /// The values of `labels` this alert has (a label it lacks or that is
    /// empty is left out, as in Alertmanager), keyed by name.
    pub(crate) fn select(&self, labels: &[Label]) -> BTreeMap<String, String> {
        labels
            .iter()
            .filter_map(|&label| {
                let value = self.get(label).filter(|value| !value.is_empty())?;
                Some((label.as_str().to_owned(), value.to_owned()))
            })
            .collect()
    }
}

/// How a [`Matcher`] compares a label's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MatchOp {
    /// `=`: equal.
    #[serde(rename = "=")]
    Equal,
    /// `!=`: not equal.
    #[serde(rename = "!=")]
    NotEqual,
    /// `=~`: the regular expression matches the whole value.
    #[serde(rename = "=~")]
    Regex,
    /// `!~`: the regular expression does not match the whole value.
    #[serde(rename = "!~")]
    NotRegex,
}

impl MatchOp {
    /// Every operator.
    pub const ALL: [MatchOp; 4] = [
        MatchOp::Equal,
        MatchOp::NotEqual,
        MatchOp::Regex,
        MatchOp::NotRegex,
    ];

    /// `=`, `!=`, `=~` or `!~` (the serde form).
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MatchOp {
    type Err = IncidentsError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        MatchOp::ALL
            .into_iter()
            .find(|op| op.as_str() == value)
            .ok_or_else(|| IncidentsError::UnknownMatchOp {
                value: value.to_owned(),
            })
    }
}

/// A condition on one label, as in Alertmanager: `cluster="aks"`,
/// `reason=~"OOM.*"`. Regular expressions (the `regex` crate's syntax)
/// must match the whole value. A label the alert lacks counts as the empty
/// string: it matches `namespace=""` and `namespace!="shop"`.
///
/// Serde form: `{"label": "cluster", "op": "=", "value": "aks"}`; the
/// pattern is checked while reading. Equal when label, operator and value
/// are.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "MatcherSpec", into = "MatcherSpec")]
pub struct Matcher {
    label: Label,
    op: MatchOp,
    value: String,
    /// The anchored pattern, for the regex operators.
    regex: Option<Regex>,
}

/// The serde form of a [`Matcher`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatcherSpec {
    label: Label,
    op: MatchOp,
    value: String,
}

impl Matcher {
    /// A matcher; fails when `op` is a regex operator and `value` is not a
    /// regular expression.
    pub fn new(
        label: Label,
        op: MatchOp,
        value: impl Into<String>,
    ) -> Result<Self, IncidentsError> {
        let value = value.into();
        let regex = match op {
            MatchOp::Equal | MatchOp::NotEqual => None,
            MatchOp::Regex | MatchOp::NotRegex => {
                Some(Regex::new(&format!("^(?:{value})$")).map_err(|source| {
                    IncidentsError::InvalidMatcherRegex {
                        pattern: value.clone(),
                        source,
                    }
                })?)
            }
        };
        Ok(Matcher {
            label,
            op,
            value,
            regex,
        })
    }

    /// The label it looks at.
    pub fn label(&self) -> Label {
        self.label
    }

    /// How it compares.
    pub fn op(&self) -> MatchOp {
        self.op
    }

    /// The value or pattern it compares with.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether the alert's label satisfies it (a missing label is `""`).
    pub fn matches(&self, labels: &AlertLabels) -> bool {
        let actual = labels.get(self.label).unwrap_or_default();
        let regex_matches = || self.regex.as_ref().is_some_and(|re| re.is_match(actual));
        match self.op {
            MatchOp::Equal => actual == self.value,
            MatchOp::NotEqual => actual != self.value,
            MatchOp::Regex => regex_matches(),
            MatchOp::NotRegex => !regex_matches(),
        }
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Matcher({self})")
    }
}

impl fmt::Display for Matcher {
    /// Alertmanager's spelling: `reason=~"OOM.*"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.label, self.op, quoted(&self.value))
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        (self.label, self.op, &self.value) == (other.label, other.op, &other.value)
    }
}

impl Eq for Matcher {}

impl TryFrom<MatcherSpec> for Matcher {
    type Error = IncidentsError;

    fn try_from(spec: MatcherSpec) -> Result<Self, IncidentsError> {
        Matcher::new(spec.label, spec.op, spec.value)
    }
}

impl From<Matcher> for MatcherSpec {
    fn from(matcher: Matcher) -> Self {
        MatcherSpec {
            label: matcher.label,
            op: matcher.op,
            value: matcher.value,
        }
    }
}

/// Reads a route's `group_by` labels; an unknown label is an error, never
/// left out (which would silently change how incidents are grouped).
pub fn parse_group_by(labels: &[String]) -> Result<Vec<Label>, IncidentsError> {
    labels.iter().map(|label| Label::from_str(label)).collect()
}

/// Reads a stored route's matchers and `group_by` labels, as the API checks
/// them and the dispatcher uses them: the first error of either.
pub fn parse_route(
    matchers: &Value,
    group_by: &[String],
) -> Result<(Vec<Matcher>, Vec<Label>), IncidentsError> {
    Ok((parse_matchers(matchers)?, parse_group_by(group_by)?))
}

/// Reads a list of matchers, `[{"label": "cluster", "op": "=", "value":
/// "aks"}, …]`, checking labels, operators and patterns; an error names the
/// first bad matcher by position and text and says what is wrong with it.
pub fn parse_matchers(value: &Value) -> Result<Vec<Matcher>, IncidentsError> {
    let Value::Array(items) = value else {
        return Err(IncidentsError::NotMatchers {
            found: json_kind(value).to_owned(),
        });
    };
    items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            parse_matcher(item).map_err(|(problem, source)| IncidentsError::InvalidMatcher {
                index,
                matcher: item.to_string(),
                problem,
                source,
            })
        })
        .collect()
}

type MatcherProblem = (String, Option<regex::Error>);

fn parse_matcher(item: &Value) -> Result<Matcher, MatcherProblem> {
    let problem = |text: String| (text, None);
    let Value::Object(fields) = item else {
        return Err(problem(format!(
            "expected an object with `label`, `op` and `value`, not {}",
            json_kind(item)
        )));
    };
    if let Some(unknown) = fields
        .keys()
        .find(|key| !["label", "op", "value"].contains(&key.as_str()))
    {
        return Err(problem(format!(
            "unknown field `{unknown}`; expected `label`, `op` and `value`"
        )));
    }
    let field = |name: &str| match fields.get(name) {
        Some(Value::String(text)) => Ok(text.as_str()),
        Some(other) => Err(problem(format!(
            "`{name}` must be a string, not {}",
            json_kind(other)
        ))),
        None => Err(problem(format!("missing field `{name}`"))),
    };
    let label: Label = field("label")?
        .parse()
        .map_err(|error: IncidentsError| problem(error.to_string()))?;
    let op: MatchOp = field("op")?
        .parse()
        .map_err(|error: IncidentsError| problem(error.to_string()))?;
    Matcher::new(label, op, field("value")?).map_err(|error| match error {
        IncidentsError::InvalidMatcherRegex { pattern, source } => (
            format!("invalid regular expression `{pattern}`"),
            Some(source),
        ),
        other => problem(other.to_string()),
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `value` in double quotes, with `\`, `"` and line breaks escaped.
pub(crate) fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

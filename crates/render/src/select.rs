//! Resource selection: patch targets and replacement targets (regular
//! expressions anchored at both ends, label and annotation selectors).

use serde_json::{Map, Value};

use crate::kustomization::Selector;
use crate::resource::{ResId, Resource};

/// A compiled selector.
pub(crate) struct Matcher {
    group: Option<regex::Regex>,
    version: Option<regex::Regex>,
    kind: Option<regex::Regex>,
    name: Option<regex::Regex>,
    namespace: Option<regex::Regex>,
    labels: Vec<Requirement>,
    annotations: Vec<Requirement>,
}

/// A Go (RE2) pattern in the syntax of the `regex` crate: Go takes a `{`
/// that does not begin a repetition (`{2}`, `{2,}`, `{2,5}`) literally, as
/// in `${CLUSTER_NAME}`; `regex` refuses it.
pub(crate) fn go_pattern(pattern: &str) -> String {
    let bytes = pattern.as_bytes();
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b'\\' && i + 1 < bytes.len() {
            let next = pattern[i + 1..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&pattern[i..i + 1 + next]);
            i += 1 + next;
            continue;
        }
        if c == b'{' && !is_repetition(&pattern[i..]) {
            out.push_str("\\{");
            i += 1;
            continue;
        }
        if c == b'}' && !out.ends_with(|ch: char| ch.is_ascii_digit() || ch == ',') {
            out.push_str("\\}");
            i += 1;
            continue;
        }
        let len = pattern[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&pattern[i..i + len]);
        i += len;
    }
    out
}

/// Whether `s` (starting at `{`) is a repetition `{n}`, `{n,}` or `{n,m}`.
fn is_repetition(s: &str) -> bool {
    let Some(end) = s.find('}') else {
        return false;
    };
    let inner = &s[1..end];
    let (min, max) = match inner.split_once(',') {
        Some((a, b)) => (a, Some(b)),
        None => (inner, None),
    };
    !min.is_empty()
        && min.bytes().all(|b| b.is_ascii_digit())
        && max.is_none_or(|m| m.bytes().all(|b| b.is_ascii_digit()))
}

fn anchored(field: &str, pattern: &str) -> Result<Option<regex::Regex>, String> {
    if pattern.is_empty() {
        return Ok(None);
    }
    regex::Regex::new(&format!("^(?:{})$", go_pattern(pattern)))
        .map(Some)
        .map_err(|e| format!("{field} {pattern:?} is not a valid regular expression: {e}"))
}

fn is_match(re: &Option<regex::Regex>, s: &str) -> bool {
    re.as_ref().is_none_or(|re| re.is_match(s))
}

impl Matcher {
    pub fn new(s: &Selector) -> Result<Self, String> {
        Ok(Matcher {
            group: anchored("group", &s.group)?,
            version: anchored("version", &s.version)?,
            kind: anchored("kind", &s.kind)?,
            name: anchored("name", &s.name)?,
            namespace: anchored("namespace", &s.namespace)?,
            labels: parse_selector(&s.label_selector)?,
            annotations: parse_selector(&s.annotation_selector)?,
        })
    }

    fn matches_id(&self, id: &ResId) -> bool {
        is_match(&self.group, &id.gvk.group)
            && is_match(&self.version, &id.gvk.version)
            && is_match(&self.kind, &id.gvk.kind)
            && is_match(&self.name, &id.name)
            && is_match(&self.namespace, selector_namespace(id))
    }

    fn matches_meta(&self, res: &Resource) -> bool {
        let empty = Map::new();
        let meta = |key: &str| {
            res.obj
                .get("metadata")
                .and_then(|m| m.get(key))
                .and_then(Value::as_object)
                .unwrap_or(&empty)
        };
        (self.labels.is_empty() || matches_all(&self.labels, meta("labels")))
            && (self.annotations.is_empty() || matches_all(&self.annotations, meta("annotations")))
    }

    /// kustomize's patch target semantics: the original or the current
    /// namespace and name, the current group/version/kind.
    pub fn selects_for_patch(&self, res: &Resource) -> bool {
        // borrowed views of the ids: this runs for every resource and patch
        let api_version = res.api_version();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let kind = res.kind();
        if !(is_match(&self.group, group)
            && is_match(&self.version, version)
            && is_match(&self.kind, kind))
        {
            return false;
        }
        let cur_name = res.name();
        let org_name = res
            .prev_ids
            .first()
            .map_or(&*cur_name, |id| id.name.as_str());
        if !(is_match(&self.name, org_name) || is_match(&self.name, &cur_name)) {
            return false;
        }
        if self.namespace.is_some() {
            let cur = res.cur_id();
            let org = res.org_id();
            if !(is_match(&self.namespace, selector_namespace(&org))
                || is_match(&self.namespace, selector_namespace(&cur)))
            {
                return false;
            }
        }
        self.matches_meta(res)
    }

    /// Replacement target semantics: any of the resource's ids (current and
    /// previous) matches.
    pub fn selects_any_id(&self, res: &Resource) -> bool {
        let cur = res.cur_id();
        let any = std::iter::once(&cur)
            .chain(res.prev_ids.iter())
            .any(|id| self.matches_id(id));
        any && self.matches_meta(res)
    }
}

/// The namespace a selector sees: "default" for an empty one, a marker for
/// cluster-scoped kinds.
fn selector_namespace(id: &ResId) -> &str {
    if id.gvk.is_cluster_scoped() {
        "_non_namespaceable_"
    } else if id.namespace.is_empty() {
        "default"
    } else {
        &id.namespace
    }
}

#[derive(Debug, Clone)]
enum Requirement {
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

fn matches_all(reqs: &[Requirement], map: &Map<String, Value>) -> bool {
    let get = |k: &str| {
        map.get(k).map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
    };
    reqs.iter().all(|r| match r {
        Requirement::Exists(k) => map.contains_key(k),
        Requirement::NotExists(k) => !map.contains_key(k),
        Requirement::In(k, vs) => get(k).is_some_and(|v| vs.contains(&v)),
        Requirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.contains(&v)),
    })
}

/// Parses a Kubernetes label selector (`a=b,c!=d,e in (x,y),!f,g`).
fn parse_selector(text: &str) -> Result<Vec<Requirement>, String> {
    let mut out = Vec::new();
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in text.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    for part in parts {
        let p = part.trim();
        if p.is_empty() {
            continue;
        }
        if let Some(k) = p.strip_prefix('!') {
            out.push(Requirement::NotExists(k.trim().to_string()));
        } else if let Some((k, v)) = p.split_once("!=") {
            out.push(Requirement::NotIn(k.trim().into(), vec![v.trim().into()]));
        } else if let Some((k, v)) = p.split_once("==") {
            out.push(Requirement::In(k.trim().into(), vec![v.trim().into()]));
        } else if let Some((k, v)) = p.split_once('=') {
            out.push(Requirement::In(k.trim().into(), vec![v.trim().into()]));
        } else if let Some((k, rest)) = split_set_op(p, " notin ") {
            out.push(Requirement::NotIn(k, parse_set(rest, text)?));
        } else if let Some((k, rest)) = split_set_op(p, " in ") {
            out.push(Requirement::In(k, parse_set(rest, text)?));
        } else if p.chars().all(|c| c.is_alphanumeric() || "-_./".contains(c)) {
            out.push(Requirement::Exists(p.to_string()));
        } else {
            return Err(format!("invalid selector {text:?}"));
        }
    }
    Ok(out)
}

fn split_set_op<'a>(p: &'a str, op: &str) -> Option<(String, &'a str)> {
    let i = p.find(op)?;
    Some((p[..i].trim().to_string(), p[i + op.len()..].trim()))
}

fn parse_set(rest: &str, text: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("invalid selector {text:?}"))?;
    Ok(inner
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(selector: &str, labels: &[(&str, &str)], expected: bool) {
        let reqs = parse_selector(selector).expect("selector");
        let map: Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect();
        assert_eq!(
            matches_all(&reqs, &map),
            expected,
            "{selector} on {labels:?}"
        );
    }

    #[test]
    fn go_patterns() {
        for (pattern, name, matches) in [
            ("${CLUSTER_NAME}", "${CLUSTER_NAME}", false),
            ("a{2}", "aa", true),
            ("a{2,}", "aaa", true),
            ("x{y}", "x{y}", true),
            ("app-.*", "app-web", true),
        ] {
            let re = anchored("name", pattern).expect("compiles").expect("set");
            assert_eq!(re.is_match(name), matches, "{pattern} on {name}");
        }
    }

    #[test]
    fn label_selectors() {
        check("app=web", &[("app", "web")], true);
        check("app=web", &[("app", "db")], false);
        check("app!=web", &[], true);
        check(
            "app in (web, db),tier",
            &[("app", "db"), ("tier", "x")],
            true,
        );
        check("app notin (web)", &[("app", "db")], true);
        check("!app", &[("app", "db")], false);
        check("app", &[("app", "")], true);
    }
}

//! Small helpers.

#![allow(clippy::wildcard_imports)]

use super::*;

/// Problems found in every rendered directory, reported all at once.
#[derive(Default)]
pub(crate) struct Failures(Vec<String>);

impl Failures {
    pub(crate) fn add(&mut self, rel: &str, problems: Vec<String>) {
        self.0
            .extend(problems.into_iter().map(|p| format!("{rel}: {p}")));
    }

    pub(crate) fn assert_none(&self) {
        assert!(
            self.0.is_empty(),
            "{} problem(s):\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}

pub(crate) fn kind(obj: &Value) -> &str {
    str_at(obj, &["kind"]).unwrap_or("")
}

pub(crate) fn name(obj: &Value) -> &str {
    str_at(obj, &["metadata", "name"]).unwrap_or("")
}

pub(crate) fn object_id(obj: &Value) -> String {
    format!("{}/{}", kind(obj), name(obj))
}

pub(crate) fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    str_at(obj, &["metadata", "labels", key])
}

pub(crate) fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |v, key| v.get(*key))?.as_str()
}

pub(crate) fn seq_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    path.iter()
        .try_fold(value, |v, key| v.get(*key))
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice)
}

pub(crate) fn find_object<'a>(
    render: &'a Render,
    kind_: &str,
    name_: &str,
) -> Result<&'a Value, String> {
    render
        .objects
        .iter()
        .find(|o| kind(o) == kind_ && name(o) == name_)
        .ok_or_else(|| format!("no {kind_} {name_}"))
}

pub(crate) fn container<'a>(workload: &'a Value, name_: &str) -> Result<&'a Value, String> {
    seq_at(workload, &["spec", "template", "spec", "containers"])
        .iter()
        .find(|c| str_at(c, &["name"]) == Some(name_))
        .ok_or_else(|| format!("{}: no container {name_}", object_id(workload)))
}

/// The value of `--flag=value` among a container's args.
pub(crate) fn flag_value(container: &Value, flag: &str) -> Option<String> {
    seq_at(container, &["args"])
        .iter()
        .filter_map(Value::as_str)
        .find_map(|arg| {
            arg.strip_prefix(flag)?
                .strip_prefix('=')
                .map(str::to_string)
        })
}

/// The files of the ConfigMap mounted (whole) at `dir` in `container`.
pub(crate) fn mounted_dir(
    render: &Render,
    workload: &Value,
    container: &Value,
    dir: &str,
) -> Result<Vec<(String, String)>, String> {
    let dir = dir.trim_end_matches('/');
    let mount = seq_at(container, &["volumeMounts"])
        .iter()
        .find(|m| str_at(m, &["mountPath"]).map(|p| p.trim_end_matches('/')) == Some(dir))
        .ok_or_else(|| format!("nothing is mounted at {dir}"))?;
    if mount.get("subPath").is_some() {
        return Err(format!(
            "{dir} is a subPath mount (it would not see ConfigMap updates)"
        ));
    }
    let volume_name = str_at(mount, &["name"]).unwrap_or("");
    let volume = seq_at(workload, &["spec", "template", "spec", "volumes"])
        .iter()
        .find(|v| str_at(v, &["name"]) == Some(volume_name))
        .ok_or_else(|| format!("volume {volume_name} is mounted but not defined"))?;
    let cm_name = str_at(volume, &["configMap", "name"])
        .ok_or_else(|| format!("{dir} is not a ConfigMap volume"))?;
    let cm = find_object(render, "ConfigMap", cm_name)?;
    let data = cm
        .get("data")
        .and_then(Value::as_mapping)
        .ok_or_else(|| format!("ConfigMap {cm_name} has no data"))?;
    Ok(data
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
        .collect())
}

/// The content of the file at `path` in `container`, from a ConfigMap volume.
pub(crate) fn mounted_file(
    render: &Render,
    workload: &Value,
    container: &Value,
    path: &str,
) -> Result<String, String> {
    let (dir, file) = split_path(path);
    mounted_dir(render, workload, container, dir)?
        .into_iter()
        .find(|(name, _)| name == file)
        .map(|(_, text)| text)
        .ok_or_else(|| format!("{path}: the ConfigMap mounted at {dir} has no key {file}"))
}

pub(crate) fn split_path(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// Shell-style matching of a file name against a pattern with `*` only.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((prefix, rest)) => {
            let Some(tail) = name.strip_prefix(prefix) else {
                return false;
            };
            (0..=tail.len())
                .filter(|&i| tail.is_char_boundary(i))
                .any(|i| glob_match(rest, &tail[i..]))
        }
    }
}

/// Prometheus durations: `30s`, `5m`, `1h30m`, …
pub(crate) fn is_duration(text: &str) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        match ["ms", "y", "w", "d", "h", "m", "s"]
            .iter()
            .find(|u| rest.starts_with(**u))
        {
            Some(unit) => rest = &rest[unit.len()..],
            None => return false,
        }
    }
    true
}

/// Brackets of a PromQL expression balance outside string literals.
pub(crate) fn balanced(expr: &str) -> Result<(), String> {
    let mut stack = Vec::new();
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => stack.push(c),
            ')' | ']' | '}' => {
                let open = stack.pop();
                let want = match c {
                    ')' => '(',
                    ']' => '[',
                    _ => '{',
                };
                if open != Some(want) {
                    return Err(format!("has an unmatched {c:?}"));
                }
            }
            _ => {}
        }
    }
    if quote.is_some() {
        return Err("has an unterminated string".into());
    }
    if let Some(open) = stack.pop() {
        return Err(format!("has an unclosed {open:?}"));
    }
    Ok(())
}

//! Workloads.

#![allow(clippy::wildcard_imports)]

use super::*;

pub(crate) fn check_workload(obj: &Value, problems: &mut Vec<String>) {
    let id = object_id(obj);
    let pod = obj
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("spec"));
    let Some(pod) = pod else {
        return problems.push(format!("{id}: no pod template"));
    };
    let pod_non_root = pod
        .get("securityContext")
        .and_then(|s| s.get("runAsNonRoot"))
        .and_then(Value::as_bool);
    let containers = seq_at(pod, &["containers"])
        .iter()
        .chain(seq_at(pod, &["initContainers"]));
    for c in containers {
        let at = format!("{id} container {}", str_at(c, &["name"]).unwrap_or("?"));
        let image = str_at(c, &["image"]).unwrap_or("");
        if let Err(e) = pinned_image(image) {
            problems.push(format!("{at}: image {image:?}: {e}"));
        }
        for path in [
            ["resources", "requests", "cpu"],
            ["resources", "requests", "memory"],
            ["resources", "limits", "cpu"],
            ["resources", "limits", "memory"],
        ] {
            if c.get(path[0])
                .and_then(|v| v.get(path[1]))
                .and_then(|v| v.get(path[2]))
                .is_none()
            {
                problems.push(format!("{at}: no {}", path.join(".")));
            }
        }
        for probe in ["readinessProbe", "livenessProbe"] {
            if c.get(probe).is_none() {
                problems.push(format!("{at}: no {probe}"));
            }
        }
        let sc = c.get("securityContext");
        let non_root = sc
            .and_then(|s| s.get("runAsNonRoot"))
            .and_then(Value::as_bool)
            .or(pod_non_root);
        if non_root != Some(true) {
            problems.push(format!("{at}: runAsNonRoot is not true"));
        }
        if sc
            .and_then(|s| s.get("allowPrivilegeEscalation"))
            .and_then(Value::as_bool)
            != Some(false)
        {
            problems.push(format!("{at}: allowPrivilegeEscalation is not false"));
        }
        let drops_all = sc
            .map(|s| seq_at(s, &["capabilities", "drop"]))
            .unwrap_or_default()
            .iter()
            .any(|d| d.as_str() == Some("ALL"));
        if !drops_all {
            problems.push(format!("{at}: capabilities.drop does not include ALL"));
        }
        if sc
            .and_then(|s| s.get("privileged"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            problems.push(format!("{at}: privileged"));
        }
    }
}

/// A fully qualified reference (registry host first) with an exact version
/// tag (`v1.2.3` or `1.2.3`, optionally followed by a digest).
pub(crate) fn pinned_image(image: &str) -> Result<(), String> {
    let without_digest = image.split('@').next().unwrap_or("");
    let (repo, tag) = without_digest.rsplit_once(':').ok_or("no tag")?;
    if tag.contains('/') {
        return Err("no tag".into());
    }
    let host = repo.split('/').next().unwrap_or("");
    if !repo.contains('/') || !(host.contains('.') || host.contains(':')) {
        return Err("not fully qualified (registry host first)".into());
    }
    let version = tag.strip_prefix('v').unwrap_or(tag);
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() != 3
        || !parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(format!("tag {tag:?} is not an exact version"));
    }
    Ok(())
}

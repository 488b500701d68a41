//! Prometheus.

#![allow(clippy::wildcard_imports)]

use super::*;

/// prometheus.yml as mounted in the Prometheus StatefulSet, and its path there.
pub(crate) fn prometheus_config(render: &Render) -> Result<(String, String), String> {
    let sts = find_object(render, "StatefulSet", "prometheus")?;
    let container = container(sts, "prometheus")?;
    let path = flag_value(container, "--config.file").ok_or("prometheus has no --config.file")?;
    let text = mounted_file(render, sts, container, &path)?;
    Ok((text, path))
}

/// The rule files mounted for the `rule_files` globs of prometheus.yml:
/// (file name, content) for every file of every mounted rules directory.
pub(crate) fn prometheus_rule_files(render: &Render) -> Result<Vec<(String, String)>, String> {
    let sts = find_object(render, "StatefulSet", "prometheus")?;
    let container = container(sts, "prometheus")?;
    let (config_text, _) = prometheus_config(render)?;
    let config: Value =
        serde_yaml::from_str(&config_text).map_err(|e| format!("prometheus.yml: {e}"))?;
    let mut files = Vec::new();
    for glob in seq_at(&config, &["rule_files"]) {
        let glob = glob.as_str().ok_or("a rule_files entry is not a string")?;
        let (dir, _) = split_path(glob);
        let data = mounted_dir(render, sts, container, dir)?;
        for (file, text) in data {
            if !files.iter().any(|(f, _): &(String, String)| f == &file) {
                files.push((file, text));
            }
        }
    }
    Ok(files)
}

/// The value Prometheus's external label `cluster` gets in the pod.
pub(crate) fn prometheus_cluster_value(render: &Render) -> Option<String> {
    let sts = find_object(render, "StatefulSet", "prometheus").ok()?;
    let container = container(sts, "prometheus").ok()?;
    let (text, _) = prometheus_config(render).ok()?;
    let config: Value = serde_yaml::from_str(&text).ok()?;
    let raw = str_at(&config, &["global", "external_labels", "cluster"])?;
    let var = raw
        .trim_start_matches("${")
        .trim_end_matches('}')
        .trim_start_matches('$');
    if var == raw {
        return Some(raw.to_string());
    }
    let env = seq_at(container, &["env"])
        .iter()
        .find(|e| str_at(e, &["name"]) == Some(var))?;
    if let Some(value) = str_at(env, &["value"]) {
        return Some(value.to_string());
    }
    let cm = str_at(env, &["valueFrom", "configMapKeyRef", "name"])?;
    let key = str_at(env, &["valueFrom", "configMapKeyRef", "key"])?;
    let cm = find_object(render, "ConfigMap", cm).ok()?;
    str_at(cm, &["data", key]).map(str::to_string)
}

pub(crate) fn check_prometheus(render: &Render, problems: &mut Vec<String>) {
    let (text, config_path) = match prometheus_config(render) {
        Ok(found) => found,
        Err(e) => return problems.push(format!("prometheus config: {e}")),
    };
    let config: Value = match serde_yaml::from_str(&text) {
        Ok(config) => config,
        Err(e) => return problems.push(format!("{config_path}: does not parse: {e}")),
    };
    let p =
        |problems: &mut Vec<String>, msg: String| problems.push(format!("{config_path}: {msg}"));

    // retention and the cluster label
    if str_at(&config, &["storage", "tsdb", "retention", "time"]) != Some("30d") {
        p(problems, "storage.tsdb.retention.time must be 30d".into());
    }
    match prometheus_cluster_value(render) {
        Some(v) if !v.is_empty() => {}
        other => p(
            problems,
            format!("external_labels.cluster resolves to {other:?} in the pod"),
        ),
    }

    // scrape jobs
    let jobs = seq_at(&config, &["scrape_configs"]);
    let mut names = BTreeSet::new();
    for job in jobs {
        let Some(name) = str_at(job, &["job_name"]).filter(|n| !n.is_empty()) else {
            p(problems, "a scrape config has no job_name".into());
            continue;
        };
        if !names.insert(name) {
            p(problems, format!("duplicate scrape job_name {name:?}"));
        }
        for sd in seq_at(job, &["kubernetes_sd_configs"]) {
            let role = str_at(sd, &["role"]).unwrap_or("");
            if ![
                "node",
                "pod",
                "service",
                "endpoints",
                "endpointslice",
                "ingress",
            ]
            .contains(&role)
            {
                p(
                    problems,
                    format!("job {name}: unknown kubernetes_sd role {role:?}"),
                );
            }
        }
    }
    for required in [
        "prometheus",
        "kubelet",
        "cadvisor",
        "kube-state-metrics",
        "node-exporter",
        "kubernetes-pods",
    ] {
        if !names.contains(required) {
            p(problems, format!("no scrape job {required:?}"));
        }
    }
    let cadvisor = jobs
        .iter()
        .find(|j| str_at(j, &["job_name"]) == Some("cadvisor"));
    if cadvisor.and_then(|j| str_at(j, &["metrics_path"])) != Some("/metrics/cadvisor") {
        p(
            problems,
            "the cadvisor job must scrape /metrics/cadvisor through the kubelet".into(),
        );
    }
    if seq_at(&config, &["alerting", "alertmanagers"]).is_empty() {
        p(
            problems,
            "alerting.alertmanagers is empty: alerts would go nowhere".into(),
        );
    }
    check_prometheus_rbac(render, &config, problems);

    // rule_files globs against the mounted rule files
    let globs: Vec<&str> = seq_at(&config, &["rule_files"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if globs.is_empty() {
        p(problems, "no rule_files".into());
    }
    let rules = match prometheus_rule_files(render) {
        Ok(rules) => rules,
        Err(e) => return p(problems, format!("rule files: {e}")),
    };
    for glob in &globs {
        let (_, pattern) = split_path(glob);
        if !rules.iter().any(|(file, _)| glob_match(pattern, file)) {
            p(
                problems,
                format!("rule_files glob {glob:?} matches no mounted file"),
            );
        }
    }
    let mut alerts = BTreeSet::new();
    for (file, text) in &rules {
        if !globs.iter().any(|g| glob_match(split_path(g).1, file)) {
            problems.push(format!(
                "rule file {file} is mounted but no rule_files glob loads it"
            ));
        }
        check_rule_file(file, text, &mut alerts, problems);
    }
    for required in [
        // pod errors
        "KubePodCrashLooping",
        "KubeContainerOOMKilled",
        "KubePodImagePullFailing",
        "KubePodFrequentRestarts",
        // node issues
        "KubeNodeNotReady",
        "KubeNodeMemoryPressure",
        "KubeNodeDiskPressure",
        // resource usage
        "NodeHighCPUUsage",
        "NodeHighMemoryUsage",
        "ContainerCPUNearLimit",
        "ContainerMemoryNearLimit",
        "KubePersistentVolumeFillingUp",
    ] {
        if !alerts.contains(required) {
            problems.push(format!("no alert rule {required}"));
        }
    }
}

/// Least privilege, and enough privilege: the Prometheus ClusterRole grants
/// what its service discovery and kubelet scraping need, read-only.
pub(crate) fn check_prometheus_rbac(render: &Render, config: &Value, problems: &mut Vec<String>) {
    let role = match find_object(render, "ClusterRole", "pilothouse-monitoring-prometheus") {
        Ok(role) => role,
        Err(e) => return problems.push(e),
    };
    let binding_ok = render.objects.iter().any(|o| {
        kind(o) == "ClusterRoleBinding"
            && str_at(o, &["roleRef", "name"]) == Some(name(role))
            && seq_at(o, &["subjects"]).iter().any(|s| {
                str_at(s, &["kind"]) == Some("ServiceAccount")
                    && str_at(s, &["name"]) == Some("prometheus")
                    && str_at(s, &["namespace"]) == Some(NAMESPACE)
            })
    });
    if !binding_ok {
        problems.push(
            "no ClusterRoleBinding gives the prometheus ServiceAccount its ClusterRole".into(),
        );
    }
    let grants = |group: &str, resource: &str, verb: &str| {
        seq_at(role, &["rules"]).iter().any(|rule| {
            let has = |field: &str, want: &str| {
                seq_at(rule, &[field])
                    .iter()
                    .any(|v| v.as_str() == Some(want))
            };
            has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
        })
    };
    for rule in seq_at(role, &["rules"]) {
        for field in ["resources", "verbs", "apiGroups"] {
            for value in seq_at(rule, &[field]).iter().filter_map(Value::as_str) {
                if value == "*"
                    || [
                        "secrets",
                        "nodes/proxy",
                        "create",
                        "update",
                        "patch",
                        "delete",
                    ]
                    .contains(&value)
                {
                    problems.push(format!("prometheus ClusterRole grants {field} {value:?}"));
                }
            }
        }
    }
    let mut needed = BTreeSet::new();
    for job in seq_at(config, &["scrape_configs"])
        .iter()
        .chain(seq_at(config, &["alerting", "alertmanagers"]))
    {
        for sd in seq_at(job, &["kubernetes_sd_configs"]) {
            match str_at(sd, &["role"]).unwrap_or("") {
                "node" => {
                    needed.insert(("", "nodes"));
                    if str_at(job, &["scheme"]) == Some("https") {
                        needed.insert(("", "nodes/metrics"));
                    }
                }
                "pod" => {
                    needed.insert(("", "pods"));
                }
                "service" => {
                    needed.insert(("", "services"));
                }
                "endpointslice" => {
                    needed.extend([
                        ("discovery.k8s.io", "endpointslices"),
                        ("", "services"),
                        ("", "pods"),
                    ]);
                }
                _ => {}
            }
        }
    }
    for (group, resource) in needed {
        let verbs: &[&str] = if resource == "nodes/metrics" {
            &["get"]
        } else {
            &["list", "watch"]
        };
        for verb in verbs {
            if !grants(group, resource, verb) {
                problems.push(format!(
                    "prometheus ClusterRole lacks {verb} on {group:?}/{resource}"
                ));
            }
        }
    }
}

pub(crate) fn check_rule_file(
    file: &str,
    text: &str,
    alerts: &mut BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    let doc: Value = match serde_yaml::from_str(text) {
        Ok(doc) => doc,
        Err(e) => return problems.push(format!("{file}: does not parse: {e}")),
    };
    if let Some(map) = doc.as_mapping() {
        for key in map.keys() {
            if key.as_str() != Some("groups") {
                problems.push(format!("{file}: unknown top-level field {key:?}"));
            }
        }
    }
    let groups = seq_at(&doc, &["groups"]);
    if groups.is_empty() {
        problems.push(format!("{file}: no groups"));
    }
    let mut group_names = BTreeSet::new();
    for group in groups {
        let gname = str_at(group, &["name"]).unwrap_or("");
        if gname.is_empty() || !group_names.insert(gname) {
            problems.push(format!("{file}: group name {gname:?} empty or repeated"));
        }
        let rules = seq_at(group, &["rules"]);
        if rules.is_empty() {
            problems.push(format!("{file}: group {gname} has no rules"));
        }
        let mut seen = BTreeSet::new();
        for rule in rules {
            let Some(alert) = str_at(rule, &["alert"]).filter(|a| !a.is_empty()) else {
                problems.push(format!("{file}: group {gname}: a rule has no `alert` (recording rules belong elsewhere)"));
                continue;
            };
            let at = format!("{file}: alert {alert}");
            alerts.insert(alert.to_string());
            match str_at(rule, &["expr"]) {
                Some(expr) if !expr.trim().is_empty() => {
                    if let Err(e) = balanced(expr) {
                        problems.push(format!("{at}: expr {e}"));
                    }
                }
                _ => problems.push(format!("{at}: no expr")),
            }
            let severity = str_at(rule, &["labels", "severity"]);
            if !matches!(severity, Some("critical" | "warning" | "info")) {
                problems.push(format!(
                    "{at}: labels.severity is {severity:?}, want critical, warning or info"
                ));
            }
            if !seen.insert((alert, severity)) {
                problems.push(format!(
                    "{at}: repeated with the same severity in group {gname}"
                ));
            }
            if str_at(rule, &["annotations", "summary"]).is_none_or(|s| s.trim().is_empty()) {
                problems.push(format!("{at}: no annotations.summary"));
            }
            if let Some(for_) = rule.get("for")
                && !for_.as_str().is_some_and(is_duration)
            {
                problems.push(format!("{at}: `for` {for_:?} is not a duration"));
            }
            if let Some(map) = rule.as_mapping() {
                for key in map.keys().filter_map(Value::as_str) {
                    if ![
                        "alert",
                        "expr",
                        "for",
                        "keep_firing_for",
                        "labels",
                        "annotations",
                    ]
                    .contains(&key)
                    {
                        problems.push(format!("{at}: unknown field {key:?}"));
                    }
                }
            }
        }
    }
}

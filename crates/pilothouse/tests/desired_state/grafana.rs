//! Grafana.

#![allow(clippy::wildcard_imports)]

use super::*;

pub(crate) fn check_grafana(render: &Render, problems: &mut Vec<String>) {
    let deployment = match find_object(render, "Deployment", "grafana") {
        Ok(d) => d,
        Err(e) => return problems.push(e),
    };
    let container = match container(deployment, "grafana") {
        Ok(c) => c,
        Err(e) => return problems.push(e),
    };

    // the admin password comes from a Secret that is not in Git
    for var in ["GF_SECURITY_ADMIN_USER", "GF_SECURITY_ADMIN_PASSWORD"] {
        let env = seq_at(container, &["env"])
            .iter()
            .find(|e| str_at(e, &["name"]) == Some(var));
        match env {
            Some(env) if env.get("value").is_none() => {
                if str_at(env, &["valueFrom", "secretKeyRef", "name"]) != Some("grafana-admin") {
                    problems.push(format!("{var} must come from the Secret grafana-admin"));
                }
            }
            _ => problems.push(format!(
                "{var} must be set from the Secret grafana-admin, not a literal"
            )),
        }
    }
    if render.objects.iter().any(|o| kind(o) == "Secret") {
        problems.push("a Secret is rendered: credentials must not live in Git".into());
    }

    // datasources
    let mut uids = BTreeSet::new();
    let datasources = match mounted_dir(
        render,
        deployment,
        container,
        "/etc/grafana/provisioning/datasources",
    ) {
        Ok(files) => files,
        Err(e) => return problems.push(format!("grafana datasources: {e}")),
    };
    for (file, text) in &datasources {
        let doc: Value = match serde_yaml::from_str(text) {
            Ok(doc) => doc,
            Err(e) => {
                problems.push(format!("datasources/{file}: does not parse: {e}"));
                continue;
            }
        };
        for ds in seq_at(&doc, &["datasources"]) {
            match (
                str_at(ds, &["uid"]),
                str_at(ds, &["type"]),
                str_at(ds, &["url"]),
            ) {
                (Some(uid), Some("prometheus"), Some(url)) if url.starts_with("http") => {
                    uids.insert(uid.to_string());
                }
                other => problems.push(format!(
                    "datasources/{file}: incomplete Prometheus datasource {other:?}"
                )),
            }
        }
    }
    if uids.is_empty() {
        problems.push("no Prometheus datasource is provisioned".into());
    }

    // dashboard providers, and the dashboards at their paths
    let providers = match mounted_dir(
        render,
        deployment,
        container,
        "/etc/grafana/provisioning/dashboards",
    ) {
        Ok(files) => files,
        Err(e) => return problems.push(format!("grafana dashboard providers: {e}")),
    };
    let mut dashboards = 0;
    for (file, text) in &providers {
        let doc: Value = match serde_yaml::from_str(text) {
            Ok(doc) => doc,
            Err(e) => {
                problems.push(format!("dashboards/{file}: does not parse: {e}"));
                continue;
            }
        };
        for provider in seq_at(&doc, &["providers"]) {
            let Some(path) = str_at(provider, &["options", "path"]) else {
                problems.push(format!("dashboards/{file}: a provider has no options.path"));
                continue;
            };
            let files = match mounted_dir(render, deployment, container, path) {
                Ok(files) => files,
                Err(e) => {
                    problems.push(format!("dashboard provider path {path}: {e}"));
                    continue;
                }
            };
            for (name, json) in files.iter().filter(|(n, _)| n.ends_with(".json")) {
                dashboards += 1;
                check_dashboard(name, json, &uids, problems);
            }
        }
    }
    if dashboards == 0 {
        problems.push("no dashboard JSON is provisioned".into());
    }
}

pub(crate) fn check_dashboard(
    file: &str,
    json: &str,
    uids: &BTreeSet<String>,
    problems: &mut Vec<String>,
) {
    let dash: serde_json::Value = match serde_json::from_str(json) {
        Ok(dash) => dash,
        Err(e) => return problems.push(format!("{file}: not valid JSON: {e}")),
    };
    for field in ["uid", "title"] {
        if dash
            .get(field)
            .and_then(serde_json::Value::as_str)
            .is_none_or(str::is_empty)
        {
            problems.push(format!("{file}: no {field}"));
        }
    }
    let check_ds = |what: &str, ds: Option<&serde_json::Value>, problems: &mut Vec<String>| {
        let uid = ds
            .and_then(|d| d.get("uid"))
            .and_then(serde_json::Value::as_str);
        if !uid.is_some_and(|u| uids.contains(u)) {
            problems.push(format!(
                "{file}: {what}: datasource uid {uid:?} is not provisioned (have {uids:?})"
            ));
        }
    };
    for var in dash
        .pointer("/templating/list")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        if var.get("type").and_then(serde_json::Value::as_str) == Some("query") {
            let name = var
                .get("name")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("?");
            check_ds(&format!("variable {name}"), var.get("datasource"), problems);
        }
    }
    let mut panels = Vec::new();
    collect_panels(dash.get("panels"), &mut panels);
    let mut ids = BTreeSet::new();
    let mut kinds = String::new();
    for panel in &panels {
        let title = panel
            .get("title")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("?");
        if let Some(id) = panel.get("id").and_then(serde_json::Value::as_i64)
            && !ids.insert(id)
        {
            problems.push(format!("{file}: panel id {id} repeated"));
        }
        if panel.get("type").and_then(serde_json::Value::as_str) == Some("row") {
            continue;
        }
        check_ds(
            &format!("panel {title:?}"),
            panel.get("datasource"),
            problems,
        );
        let targets = panel.get("targets").and_then(serde_json::Value::as_array);
        if targets.is_none_or(Vec::is_empty) {
            problems.push(format!("{file}: panel {title:?} has no targets"));
        }
        for target in targets.into_iter().flatten() {
            let expr = target
                .get("expr")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("");
            if expr.trim().is_empty() {
                problems.push(format!("{file}: panel {title:?} has a target without expr"));
            } else if let Err(e) = balanced(expr) {
                problems.push(format!("{file}: panel {title:?}: expr {e}"));
            }
            if target.get("datasource").is_some() {
                check_ds(
                    &format!("panel {title:?} target"),
                    target.get("datasource"),
                    problems,
                );
            }
            kinds.push_str(expr);
            kinds.push('\n');
        }
    }
    // what the dashboard is for: pod errors and node resource usage
    for metric in [
        "kube_pod_container_status_restarts_total",
        "CrashLoopBackOff",
        "OOMKilled",
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_filesystem_avail_bytes",
    ] {
        if !kinds.contains(metric) {
            problems.push(format!("{file}: no panel queries {metric}"));
        }
    }
}

pub(crate) fn collect_panels<'a>(
    panels: Option<&'a serde_json::Value>,
    out: &mut Vec<&'a serde_json::Value>,
) {
    for panel in panels
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push(panel);
        collect_panels(panel.get("panels"), out);
    }
}

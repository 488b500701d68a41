//! Alertmanager.

#![allow(clippy::wildcard_imports)]

use super::*;

pub(crate) struct AlertmanagerParts {
    pub(crate) config_text: String,
    /// `url_file` of the Pilothouse webhook, as written in the config.
    pub(crate) url_file: String,
    /// The content of that file in the pod.
    pub(crate) intake_url: String,
}

pub(crate) fn alertmanager_parts(render: &Render) -> Result<AlertmanagerParts, String> {
    let sts = find_object(render, "StatefulSet", "alertmanager")?;
    let container = container(sts, "alertmanager")?;
    let path = flag_value(container, "--config.file").ok_or("alertmanager has no --config.file")?;
    let config_text = mounted_file(render, sts, container, &path)?;
    let config: Value = serde_yaml::from_str(&config_text).map_err(|e| format!("{path}: {e}"))?;
    let webhook = seq_at(&config, &["receivers"])
        .iter()
        .flat_map(|r| seq_at(r, &["webhook_configs"]))
        .next()
        .ok_or("no receiver has a webhook_config")?;
    let url_file = str_at(webhook, &["url_file"])
        .ok_or("the webhook reads no url_file (the intake URL must be overridable per cluster)")?
        .to_string();
    let intake_url = mounted_file(render, sts, container, &url_file)?;
    Ok(AlertmanagerParts {
        config_text,
        url_file,
        intake_url,
    })
}

pub(crate) fn check_alertmanager(render: &Render, problems: &mut Vec<String>) {
    let parts = match alertmanager_parts(render) {
        Ok(parts) => parts,
        Err(e) => return problems.push(format!("alertmanager: {e}")),
    };
    let config: Value = match serde_yaml::from_str(&parts.config_text) {
        Ok(config) => config,
        Err(e) => return problems.push(format!("alertmanager.yml does not parse: {e}")),
    };
    let url = parts.intake_url.trim();
    if !(url.starts_with("http://") || url.starts_with("https://")) || !url.ends_with(INTAKE_PATH) {
        problems.push(format!(
            "intake URL {url:?} is not an http(s) URL ending in {INTAKE_PATH}"
        ));
    }

    let mut receivers = BTreeSet::new();
    for receiver in seq_at(&config, &["receivers"]) {
        let rname = str_at(receiver, &["name"]).unwrap_or("");
        if rname.is_empty() || !receivers.insert(rname) {
            problems.push(format!("receiver name {rname:?} empty or repeated"));
        }
    }
    let Some(route) = config.get("route") else {
        return problems.push("alertmanager.yml has no route".into());
    };
    for (field, want) in [
        ("group_wait", "30s"),
        ("group_interval", "5m"),
        ("repeat_interval", "4h"),
    ] {
        if str_at(route, &[field]) != Some(want) {
            problems.push(format!(
                "route.{field} is {:?}, want {want}",
                str_at(route, &[field])
            ));
        }
    }
    let group_by: BTreeSet<&str> = seq_at(route, &["group_by"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if group_by != BTreeSet::from(["cluster", "namespace", "alertname"]) {
        problems.push(format!(
            "route.group_by is {group_by:?}, want cluster, namespace, alertname"
        ));
    }
    if str_at(route, &["receiver"]).is_none() {
        problems.push("the top-level route has no receiver".into());
    }
    let mut routes = 0;
    check_route(route, "route", &receivers, &mut routes, problems);
    if routes < 2 {
        problems.push("expected at least one child route".into());
    }

    let inhibits = seq_at(&config, &["inhibit_rules"]);
    if inhibits.is_empty() {
        problems.push("no inhibit_rules".into());
    }
    for (i, rule) in inhibits.iter().enumerate() {
        if seq_at(rule, &["source_matchers"]).is_empty()
            || seq_at(rule, &["target_matchers"]).is_empty()
        {
            problems.push(format!(
                "inhibit_rules[{i}] needs source_matchers and target_matchers"
            ));
        }
        if seq_at(rule, &["equal"]).is_empty() {
            problems.push(format!(
                "inhibit_rules[{i}] has no `equal`: it would inhibit across clusters"
            ));
        }
    }
}

pub(crate) fn check_route(
    route: &Value,
    at: &str,
    receivers: &BTreeSet<&str>,
    count: &mut usize,
    problems: &mut Vec<String>,
) {
    *count += 1;
    if let Some(receiver) = str_at(route, &["receiver"])
        && !receivers.contains(receiver)
    {
        problems.push(format!("{at}: receiver {receiver:?} is not defined"));
    }
    for (i, child) in seq_at(route, &["routes"]).iter().enumerate() {
        check_route(
            child,
            &format!("{at}.routes[{i}]"),
            receivers,
            count,
            problems,
        );
    }
}

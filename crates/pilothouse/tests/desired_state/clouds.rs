//! Cloud profiles.

#![allow(clippy::wildcard_imports)]

use super::*;

pub(crate) struct Profile {
    pub(crate) default_class: String,
    pub(crate) lb_annotations: BTreeMap<String, String>,
}

/// `gitops/clouds.yaml`, checked as strictly as Pilothouse parses it: an
/// unknown field anywhere is an error.
pub(crate) fn cloud_profiles() -> BTreeMap<String, Profile> {
    let path = repo_root().join("gitops/clouds.yaml");
    let text = std::fs::read_to_string(&path).expect("reading gitops/clouds.yaml");
    let doc: Value = serde_yaml::from_str(&text).expect("gitops/clouds.yaml parses");
    only_keys(&doc, &["profiles"], "clouds.yaml");
    let profiles = doc
        .get("profiles")
        .and_then(Value::as_mapping)
        .expect("clouds.yaml: profiles is a mapping");
    let mut out = BTreeMap::new();
    for (cloud, profile) in profiles {
        let cloud = cloud
            .as_str()
            .expect("profile names are strings")
            .to_string();
        let at = format!("clouds.yaml: profiles.{cloud}");
        only_keys(profile, &["storageClass", "loadBalancer"], &at);
        let storage = profile
            .get("storageClass")
            .unwrap_or_else(|| panic!("{at}: no storageClass"));
        only_keys(storage, &["default", "map"], &format!("{at}.storageClass"));
        let default_class = storage
            .get("default")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{at}.storageClass.default is not a string"))
            .to_string();
        let map = string_map(storage.get("map"), &format!("{at}.storageClass.map"));
        for (from, to) in &map {
            assert_eq!(
                to, &default_class,
                "{at}.storageClass.map: {from} maps to {to}, not to the cloud's class"
            );
        }
        let lb = profile
            .get("loadBalancer")
            .unwrap_or_else(|| panic!("{at}: no loadBalancer"));
        only_keys(lb, &["annotations"], &format!("{at}.loadBalancer"));
        let lb_annotations = string_map(
            lb.get("annotations"),
            &format!("{at}.loadBalancer.annotations"),
        );
        assert!(
            !lb_annotations.is_empty(),
            "{at}.loadBalancer.annotations is empty"
        );
        out.insert(
            cloud,
            Profile {
                default_class,
                lb_annotations,
            },
        );
    }
    out
}

pub(crate) fn only_keys(value: &Value, allowed: &[&str], at: &str) {
    let map = value
        .as_mapping()
        .unwrap_or_else(|| panic!("{at}: not a mapping"));
    for key in map.keys() {
        let key = key
            .as_str()
            .unwrap_or_else(|| panic!("{at}: a key is not a string"));
        assert!(
            allowed.contains(&key),
            "{at}: unknown field {key:?} (allowed: {allowed:?})"
        );
    }
}

pub(crate) fn string_map(value: Option<&Value>, at: &str) -> BTreeMap<String, String> {
    let Some(value) = value else {
        return BTreeMap::new();
    };
    let map = value
        .as_mapping()
        .unwrap_or_else(|| panic!("{at}: not a mapping"));
    map.iter()
        .map(|(k, v)| {
            let k = k
                .as_str()
                .unwrap_or_else(|| panic!("{at}: a key is not a string"));
            let v = v
                .as_str()
                .unwrap_or_else(|| panic!("{at}.{k}: not a string (quote it)"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The cloud of a rendered directory, from its Namespace's cloud label.
pub(crate) fn render_cloud(render: &Render) -> Option<String> {
    let ns = render.objects.iter().find(|o| kind(o) == "Namespace")?;
    label(ns, CLOUD_LABEL).map(str::to_string)
}

/// The base leaves every cloud choice to the overlays.
pub(crate) fn base_cloud_neutrality_problems(render: &Render) -> Vec<String> {
    let mut problems = Vec::new();
    for obj in &render.objects {
        let id = object_id(obj);
        if label(obj, CLOUD_LABEL).is_some() {
            problems.push(format!("{id}: the base sets {CLOUD_LABEL}"));
        }
        if str_at(obj, &["spec", "storageClassName"]).is_some() {
            problems.push(format!("{id}: the base sets a storageClassName"));
        }
        for vct in seq_at(obj, &["spec", "volumeClaimTemplates"]) {
            if str_at(vct, &["spec", "storageClassName"]).is_some() {
                problems.push(format!(
                    "{id}: the base sets a storageClassName on a volumeClaimTemplate"
                ));
            }
        }
        if kind(obj) == "Service" && str_at(obj, &["spec", "type"]) == Some("LoadBalancer") {
            problems.push(format!(
                "{id}: the base exposes a LoadBalancer (overlays choose an internal one)"
            ));
        }
    }
    problems
}

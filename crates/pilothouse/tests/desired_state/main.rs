//! Checks the desired state this repository ships: `manifests/` (the base
//! monitoring stack), `overlays/<cloud>/` and `gitops/` (cloud profiles and
//! per-cluster directories).
//!
//! `kubectl kustomize` is the oracle: every directory is rendered with it and
//! the rendered objects are checked: cloud storage classes and load balancers
//! against `gitops/clouds.yaml`, the Prometheus, Alertmanager and Grafana
//! configuration (structure here; `promtool` and `amtool` in the last test),
//! and the hardening of every workload.
//!
//! Needs `kubectl` on PATH, and promtool/amtool built by
//! `scripts/install-promtool.sh` (or `PILOTHOUSE_PROMTOOL` / `PILOTHOUSE_AMTOOL`
//! naming the binaries). A missing tool fails the tests; nothing is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_yaml::Value;

#[path = "../support/mod.rs"]
mod support;
use support::{prometheus_tool, repo_root};

mod alertmanager;
mod clouds;
mod common;
mod grafana;
mod prometheus;
mod render;
mod tools;
mod workloads;
use alertmanager::*;
use clouds::*;
use common::*;
use grafana::*;
use prometheus::*;
use render::*;
use tools::*;
use workloads::*;

/// The label each cloud overlay puts on every object.
const CLOUD_LABEL: &str = "pilothouse.dev/cloud";
/// The label the base puts on every object.
const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "pilothouse-monitoring");
const NAMESPACE: &str = "monitoring";
const INTAKE_PATH: &str = "/api/v1/intake/alertmanager";
const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

#[test]
fn every_overlay_and_cluster_directory_renders_without_warnings() {
    let dirs = render_dirs();
    let overlays: BTreeSet<&str> = dirs
        .iter()
        .filter_map(|(_, kind)| match kind {
            DirKind::Overlay(cloud) => Some(cloud.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        overlays,
        BTreeSet::from(["aks", "eks", "gke"]),
        "overlays/ must hold exactly one overlay per supported cloud"
    );
    let clusters = dirs
        .iter()
        .filter(|(_, kind)| matches!(kind, DirKind::Cluster(_)))
        .count();
    assert!(
        clusters >= 3,
        "gitops/clusters/ should hold an example per cloud, found {clusters}"
    );

    let mut failures = Failures::default();
    for render in renders() {
        // rendering itself asserts exit status 0 and an empty stderr
        assert!(
            render.objects.len() >= 20,
            "{}: only {} objects rendered",
            render.rel,
            render.objects.len()
        );
        let mut problems = Vec::new();
        for obj in &render.objects {
            let id = object_id(obj);
            if label(obj, PART_OF.0) != Some(PART_OF.1) {
                problems.push(format!("{id}: no label {}={}", PART_OF.0, PART_OF.1));
            }
            let namespaced = !matches!(
                kind(obj),
                "Namespace" | "ClusterRole" | "ClusterRoleBinding"
            );
            let ns = str_at(obj, &["metadata", "namespace"]);
            if namespaced && ns != Some(NAMESPACE) {
                problems.push(format!("{id}: namespace {ns:?}, want {NAMESPACE}"));
            }
            if !namespaced && ns.is_some() {
                problems.push(format!("{id}: cluster-scoped object with a namespace"));
            }
            let api_version = str_at(obj, &["apiVersion"]).unwrap_or("");
            if api_version.contains("alpha") || api_version.contains("beta") {
                problems.push(format!(
                    "{id}: apiVersion {api_version} is not a stable API"
                ));
            }
        }
        let namespaces: Vec<&str> = render
            .objects
            .iter()
            .filter(|o| kind(o) == "Namespace")
            .map(name)
            .collect();
        if namespaces != [NAMESPACE] {
            problems.push(format!(
                "Namespace objects {namespaces:?}, want [{NAMESPACE}]"
            ));
        }
        failures.add(&render.rel, problems);
    }
    failures.assert_none();
}

#[test]
fn cloud_overlays_and_clusters_follow_their_cloud_profile() {
    let profiles = cloud_profiles();
    let overlay_clouds: BTreeSet<&str> = renders()
        .iter()
        .filter_map(|r| match &r.kind {
            DirKind::Overlay(cloud) => Some(cloud.as_str()),
            _ => None,
        })
        .collect();
    let profile_clouds: BTreeSet<&str> = profiles.keys().map(String::as_str).collect();
    assert_eq!(
        overlay_clouds, profile_clouds,
        "every overlays/<cloud> needs a profile in gitops/clouds.yaml and the other way round"
    );

    let mut failures = Failures::default();
    for render in renders() {
        let cloud = match &render.kind {
            DirKind::Base => {
                failures.add(&render.rel, base_cloud_neutrality_problems(render));
                continue;
            }
            DirKind::Overlay(cloud) => cloud.clone(),
            DirKind::Cluster(_) => render_cloud(render).unwrap_or_else(|| {
                panic!(
                    "{}: the Namespace has no {CLOUD_LABEL} label: a cluster directory must build on \
                     overlays/<cloud>",
                    render.rel
                )
            }),
        };
        let profile = profiles.get(&cloud).unwrap_or_else(|| {
            panic!(
                "{}: cloud {cloud:?} has no profile in gitops/clouds.yaml",
                render.rel
            )
        });
        let mut problems = Vec::new();
        let (mut volumes, mut load_balancers) = (0, 0);

        for obj in &render.objects {
            let id = object_id(obj);
            if label(obj, CLOUD_LABEL) != Some(cloud.as_str()) {
                problems.push(format!(
                    "{id}: label {CLOUD_LABEL} is {:?}, want {cloud}",
                    label(obj, CLOUD_LABEL)
                ));
            }
            let mut check_class = |what: String, class: Option<&str>| {
                volumes += 1;
                if class != Some(profile.default_class.as_str()) {
                    problems.push(format!(
                        "{what}: storageClassName {class:?}, want {:?} (profile {cloud})",
                        profile.default_class
                    ));
                }
            };
            match kind(obj) {
                "PersistentVolumeClaim" => {
                    check_class(id.clone(), str_at(obj, &["spec", "storageClassName"]))
                }
                "StatefulSet" => {
                    for vct in seq_at(obj, &["spec", "volumeClaimTemplates"]) {
                        let what = format!("{id} volumeClaimTemplate {}", name(vct));
                        check_class(what, str_at(vct, &["spec", "storageClassName"]));
                    }
                }
                "Service" if str_at(obj, &["spec", "type"]) == Some("LoadBalancer") => {
                    load_balancers += 1;
                    for (key, want) in &profile.lb_annotations {
                        let got = str_at(obj, &["metadata", "annotations", key]);
                        if got != Some(want.as_str()) {
                            problems
                                .push(format!("{id}: annotation {key} is {got:?}, want {want:?}"));
                        }
                    }
                }
                _ => {}
            }
        }
        // Prometheus's and Alertmanager's volumeClaimTemplates and Grafana's PVC
        if volumes < 3 {
            problems.push(format!("only {volumes} volumes found, expected at least 3"));
        }
        if load_balancers == 0 {
            problems
                .push("no Service of type LoadBalancer (Grafana should be exposed)".to_string());
        }
        failures.add(&render.rel, problems);
    }
    failures.assert_none();
}

#[test]
fn cluster_directories_set_their_own_cluster_label() {
    for render in renders() {
        let DirKind::Cluster(cluster) = &render.kind else {
            continue;
        };
        let value = prometheus_cluster_value(render);
        assert_eq!(
            value.as_deref(),
            Some(cluster.as_str()),
            "{}: Prometheus's external label `cluster` must be the directory name (set it with a \
             configMapGenerator merge of pilothouse-cluster)",
            render.rel
        );
    }
}

#[test]
fn prometheus_config_and_alert_rules_are_well_formed() {
    let mut failures = Failures::default();
    for render in renders() {
        let mut problems = Vec::new();
        check_prometheus(render, &mut problems);
        failures.add(&render.rel, problems);
    }
    failures.assert_none();
}

#[test]
fn alertmanager_config_is_well_formed_and_sends_to_pilothouse() {
    let mut failures = Failures::default();
    for render in renders() {
        let mut problems = Vec::new();
        check_alertmanager(render, &mut problems);
        failures.add(&render.rel, problems);
    }
    failures.assert_none();
}

#[test]
fn grafana_provisioning_and_dashboards_are_well_formed() {
    let mut failures = Failures::default();
    for render in renders() {
        let mut problems = Vec::new();
        check_grafana(render, &mut problems);
        failures.add(&render.rel, problems);
    }
    failures.assert_none();
}

#[test]
fn workloads_are_pinned_limited_probed_and_non_root() {
    let mut failures = Failures::default();
    for render in renders() {
        let mut problems = Vec::new();
        let mut workloads = 0;
        for obj in &render.objects {
            if !matches!(kind(obj), "Deployment" | "StatefulSet" | "DaemonSet") {
                continue;
            }
            workloads += 1;
            check_workload(obj, &mut problems);
        }
        if workloads < 5 {
            problems.push(format!("only {workloads} workloads, expected Prometheus, Alertmanager, Grafana, node-exporter, kube-state-metrics"));
        }
        failures.add(&render.rel, problems);
    }
    failures.assert_none();
}

/// The real checkers: `promtool check config`, `promtool check rules` and
/// `amtool check-config` on the configuration rendered for every directory.
#[test]
fn promtool_and_amtool_accept_the_rendered_configs() {
    let promtool = prometheus_tool("promtool", "PILOTHOUSE_PROMTOOL");
    let amtool = prometheus_tool("amtool", "PILOTHOUSE_AMTOOL");
    for render in renders() {
        let dir = TempDir::new(&format!("promtool-{}", render.rel.replace('/', "-")));

        // Prometheus: the config with rule_files pointing at the rule files
        // written next to it (they are mounted elsewhere in the pod)
        let (config_text, _) =
            prometheus_config(render).unwrap_or_else(|e| panic!("{}: {e}", render.rel));
        let rules = prometheus_rule_files(render).unwrap_or_else(|e| panic!("{}: {e}", render.rel));
        let rules_dir = dir.path().join("rules");
        std::fs::create_dir_all(&rules_dir).expect("creating the rules directory");
        let mut rule_paths = Vec::new();
        for (file, text) in &rules {
            let path = rules_dir.join(file);
            std::fs::write(&path, text).expect("writing a rule file");
            rule_paths.push(path);
        }
        let mut config: Value = serde_yaml::from_str(&config_text).expect("prometheus.yml parses");
        let globs: Vec<Value> = seq_at(&config, &["rule_files"])
            .iter()
            .map(|g| {
                let base = Path::new(g.as_str().unwrap_or_default())
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                Value::String(rules_dir.join(base).to_string_lossy().into_owned())
            })
            .collect();
        assert!(
            !globs.is_empty(),
            "{}: prometheus.yml has no rule_files",
            render.rel
        );
        if let Value::Mapping(map) = &mut config {
            map.insert(Value::from("rule_files"), Value::Sequence(globs));
        }
        // promtool checks that referenced credential files exist: the service
        // account token only exists in the pod, so stand one in
        let token_path = dir.path().join("token");
        std::fs::write(&token_path, "token").expect("writing a stand-in token");
        let config_text = serde_yaml::to_string(&config)
            .expect("serializing prometheus.yml")
            .replace(SERVICE_ACCOUNT_TOKEN, &token_path.to_string_lossy());
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config_text).expect("writing prometheus.yml");
        let cluster = prometheus_cluster_value(render).unwrap_or_default();
        run_checker(
            &render.rel,
            Command::new(&promtool)
                .env("PILOTHOUSE_CLUSTER", &cluster)
                .args(["check", "config", "--lint=all", "--lint-fatal"])
                .arg(&config_path),
        );
        run_checker(
            &render.rel,
            Command::new(&promtool)
                .args(["check", "rules", "--lint=all", "--lint-fatal"])
                .args(&rule_paths),
        );

        // Alertmanager: the config with url_file pointing at the intake URL
        // written next to it
        let am = alertmanager_parts(render).unwrap_or_else(|e| panic!("{}: {e}", render.rel));
        let url_path = dir.path().join("intake-url");
        std::fs::write(&url_path, &am.intake_url).expect("writing the intake URL");
        let rewritten = am
            .config_text
            .replace(&am.url_file, &url_path.to_string_lossy());
        assert_ne!(
            rewritten, am.config_text,
            "{}: url_file not found in alertmanager.yml",
            render.rel
        );
        let am_path = dir.path().join("alertmanager.yml");
        std::fs::write(&am_path, rewritten).expect("writing alertmanager.yml");
        run_checker(
            &render.rel,
            Command::new(&amtool).arg("check-config").arg(&am_path),
        );
    }
}

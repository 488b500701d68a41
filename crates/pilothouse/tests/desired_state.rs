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

mod support;
use support::{prometheus_tool, repo_root};

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

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum DirKind {
    /// `manifests/`
    Base,
    /// `overlays/<cloud>`
    Overlay(String),
    /// `gitops/clusters/<name>`
    Cluster(String),
}

struct Render {
    /// Path relative to the repository root, for messages.
    rel: String,
    kind: DirKind,
    objects: Vec<Value>,
}

/// `manifests/`, every `overlays/*` and every `gitops/clusters/*` that holds a
/// kustomization, in a stable order.
fn render_dirs() -> Vec<(String, DirKind)> {
    let root = repo_root();
    let mut dirs = vec![("manifests".to_string(), DirKind::Base)];
    for (parent, overlay) in [("overlays", true), ("gitops/clusters", false)] {
        let mut found = Vec::new();
        let entries = std::fs::read_dir(root.join(parent))
            .unwrap_or_else(|e| panic!("reading {parent}/: {e}"));
        for entry in entries {
            let entry = entry.expect("reading a directory entry");
            if !entry.path().is_dir() {
                continue;
            }
            let dir_name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                entry.path().join("kustomization.yaml").is_file(),
                "{parent}/{dir_name} has no kustomization.yaml"
            );
            let kind = if overlay {
                DirKind::Overlay(dir_name.clone())
            } else {
                DirKind::Cluster(dir_name.clone())
            };
            found.push((format!("{parent}/{dir_name}"), kind));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        dirs.extend(found);
    }
    dirs
}

/// Every directory rendered once per test binary.
fn renders() -> &'static [Render] {
    static RENDERS: OnceLock<Vec<Render>> = OnceLock::new();
    RENDERS.get_or_init(|| {
        let root = repo_root();
        render_dirs()
            .into_iter()
            .map(|(rel, kind)| {
                let objects = kubectl_kustomize(&root.join(&rel), &rel);
                Render { rel, kind, objects }
            })
            .collect()
    })
}

/// Runs `kubectl kustomize DIR`; asserts it succeeds without a word on stderr
/// (kustomize warns there, e.g. for deprecated fields) and parses the output.
fn kubectl_kustomize(dir: &Path, rel: &str) -> Vec<Value> {
    let output = match Command::new("kubectl").arg("kustomize").arg(dir).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "kubectl is not installed (not found on PATH): install kubectl (v1.32 or newer; it \
             bundles kustomize) — these tests use `kubectl kustomize` as the reference renderer"
        ),
        Err(e) => panic!("running kubectl kustomize {rel}: {e}"),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubectl kustomize {rel} failed ({}):\n{stderr}",
        output.status
    );
    assert!(
        stderr.trim().is_empty(),
        "kubectl kustomize {rel} printed on stderr (warnings?):\n{stderr}"
    );
    let stdout = String::from_utf8(output.stdout).expect("kustomize output is UTF-8");
    parse_documents(&stdout)
        .unwrap_or_else(|e| panic!("parsing the output of kubectl kustomize {rel}: {e}"))
}

/// Splits kustomize's multi-document output on its `---` separator lines
/// (document content is indented or quoted, never a bare `---`).
fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut push = |doc: &str| -> Result<(), String> {
        if doc.trim().is_empty() {
            return Ok(());
        }
        let value: Value = serde_yaml::from_str(doc).map_err(|e| e.to_string())?;
        if !value.is_null() {
            docs.push(value);
        }
        Ok(())
    };
    for line in text.lines() {
        if line == "---" {
            push(&current)?;
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    push(&current)?;
    Ok(docs)
}

// ---------------------------------------------------------------------------
// Cloud profiles
// ---------------------------------------------------------------------------

struct Profile {
    default_class: String,
    lb_annotations: BTreeMap<String, String>,
}

/// `gitops/clouds.yaml`, checked as strictly as Pilothouse parses it: an
/// unknown field anywhere is an error.
fn cloud_profiles() -> BTreeMap<String, Profile> {
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

fn only_keys(value: &Value, allowed: &[&str], at: &str) {
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

fn string_map(value: Option<&Value>, at: &str) -> BTreeMap<String, String> {
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
fn render_cloud(render: &Render) -> Option<String> {
    let ns = render.objects.iter().find(|o| kind(o) == "Namespace")?;
    label(ns, CLOUD_LABEL).map(str::to_string)
}

/// The base leaves every cloud choice to the overlays.
fn base_cloud_neutrality_problems(render: &Render) -> Vec<String> {
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

// ---------------------------------------------------------------------------
// Prometheus
// ---------------------------------------------------------------------------

/// prometheus.yml as mounted in the Prometheus StatefulSet, and its path there.
fn prometheus_config(render: &Render) -> Result<(String, String), String> {
    let sts = find_object(render, "StatefulSet", "prometheus")?;
    let container = container(sts, "prometheus")?;
    let path = flag_value(container, "--config.file").ok_or("prometheus has no --config.file")?;
    let text = mounted_file(render, sts, container, &path)?;
    Ok((text, path))
}

/// The rule files mounted for the `rule_files` globs of prometheus.yml:
/// (file name, content) for every file of every mounted rules directory.
fn prometheus_rule_files(render: &Render) -> Result<Vec<(String, String)>, String> {
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
fn prometheus_cluster_value(render: &Render) -> Option<String> {
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

fn check_prometheus(render: &Render, problems: &mut Vec<String>) {
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
fn check_prometheus_rbac(render: &Render, config: &Value, problems: &mut Vec<String>) {
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

fn check_rule_file(
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

// ---------------------------------------------------------------------------
// Alertmanager
// ---------------------------------------------------------------------------

struct AlertmanagerParts {
    config_text: String,
    /// `url_file` of the Pilothouse webhook, as written in the config.
    url_file: String,
    /// The content of that file in the pod.
    intake_url: String,
}

fn alertmanager_parts(render: &Render) -> Result<AlertmanagerParts, String> {
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

fn check_alertmanager(render: &Render, problems: &mut Vec<String>) {
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

fn check_route(
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

// ---------------------------------------------------------------------------
// Grafana
// ---------------------------------------------------------------------------

fn check_grafana(render: &Render, problems: &mut Vec<String>) {
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

fn check_dashboard(file: &str, json: &str, uids: &BTreeSet<String>, problems: &mut Vec<String>) {
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

fn collect_panels<'a>(panels: Option<&'a serde_json::Value>, out: &mut Vec<&'a serde_json::Value>) {
    for panel in panels
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push(panel);
        collect_panels(panel.get("panels"), out);
    }
}

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

fn check_workload(obj: &Value, problems: &mut Vec<String>) {
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
fn pinned_image(image: &str) -> Result<(), String> {
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

// ---------------------------------------------------------------------------
// promtool / amtool
// ---------------------------------------------------------------------------

fn run_checker(rel: &str, command: &mut Command) {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{rel}: running {shown}: {e}"));
    assert!(
        output.status.success(),
        "{rel}: {shown} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("pilothouse-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("creating a temporary directory");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

/// Problems found in every rendered directory, reported all at once.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn add(&mut self, rel: &str, problems: Vec<String>) {
        self.0
            .extend(problems.into_iter().map(|p| format!("{rel}: {p}")));
    }

    fn assert_none(&self) {
        assert!(
            self.0.is_empty(),
            "{} problem(s):\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}

fn kind(obj: &Value) -> &str {
    str_at(obj, &["kind"]).unwrap_or("")
}

fn name(obj: &Value) -> &str {
    str_at(obj, &["metadata", "name"]).unwrap_or("")
}

fn object_id(obj: &Value) -> String {
    format!("{}/{}", kind(obj), name(obj))
}

fn label<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    str_at(obj, &["metadata", "labels", key])
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |v, key| v.get(*key))?.as_str()
}

fn seq_at<'a>(value: &'a Value, path: &[&str]) -> &'a [Value] {
    path.iter()
        .try_fold(value, |v, key| v.get(*key))
        .and_then(Value::as_sequence)
        .map_or(&[], Vec::as_slice)
}

fn find_object<'a>(render: &'a Render, kind_: &str, name_: &str) -> Result<&'a Value, String> {
    render
        .objects
        .iter()
        .find(|o| kind(o) == kind_ && name(o) == name_)
        .ok_or_else(|| format!("no {kind_} {name_}"))
}

fn container<'a>(workload: &'a Value, name_: &str) -> Result<&'a Value, String> {
    seq_at(workload, &["spec", "template", "spec", "containers"])
        .iter()
        .find(|c| str_at(c, &["name"]) == Some(name_))
        .ok_or_else(|| format!("{}: no container {name_}", object_id(workload)))
}

/// The value of `--flag=value` among a container's args.
fn flag_value(container: &Value, flag: &str) -> Option<String> {
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
fn mounted_dir(
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
fn mounted_file(
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

fn split_path(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// Shell-style matching of a file name against a pattern with `*` only.
fn glob_match(pattern: &str, name: &str) -> bool {
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
fn is_duration(text: &str) -> bool {
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
fn balanced(expr: &str) -> Result<(), String> {
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

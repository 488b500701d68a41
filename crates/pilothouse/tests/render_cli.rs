//! The `pilothouse render` command as a user runs it: exit codes, stdout
//! and stderr.

use std::path::Path;
use std::process::{Command, Output};

fn pilothouse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pilothouse"))
        .args(args)
        .output()
        .expect("the pilothouse binary runs")
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

const BASE: &str = "resources: [app.yaml]\nnamePrefix: demo-\n";
const APP: &str = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec: {accessModes: [ReadWriteOnce]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: LoadBalancer}\n";

#[test]
fn renders_a_kustomization_to_stdout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "kustomization.yaml", BASE);
    write(tmp.path(), "app.yaml", APP);
    let out = pilothouse(&["render", tmp.path().to_str().expect("utf8")]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let docs: Vec<serde_json::Value> = stdout
        .split("\n---\n")
        .map(|d| serde_yaml::from_str(d).expect("yaml document"))
        .collect();
    assert_eq!(docs.len(), 2, "{stdout}");
    assert_eq!(docs[0]["metadata"]["name"], "demo-web");
    assert_eq!(docs[1]["metadata"]["name"], "demo-data");
    assert!(stdout.contains("\n---\n"), "{stdout}");
}

#[test]
fn cloud_profile_maps_storage_and_load_balancers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "overlay/kustomization.yaml", BASE);
    write(tmp.path(), "overlay/app.yaml", APP);
    for (cloud, class, annotation) in [
        ("aks", "managed-premium", "azure-load-balancer-internal"),
        (
            "gke",
            "standard-rwo",
            "networking.gke.io/load-balancer-type",
        ),
        ("eks", "gp2", "aws-load-balancer-scheme"),
    ] {
        let dir = tmp.path().join("overlay");
        let out = pilothouse(&["render", dir.to_str().expect("utf8"), "--cloud", cloud]);
        assert!(
            out.status.success(),
            "{cloud}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).expect("utf8");
        assert!(
            stdout.contains(&format!("storageClassName: {class}")),
            "{cloud}: {stdout}"
        );
        assert!(stdout.contains(annotation), "{cloud}: {stdout}");
    }
}

#[test]
fn clouds_file_is_found_in_the_repository_and_can_be_overridden() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "overlays/gke/kustomization.yaml", BASE);
    write(tmp.path(), "overlays/gke/app.yaml", APP);
    write(
        tmp.path(),
        "gitops/clouds.yaml",
        "profiles:\n  gke:\n    storageClass:\n      default: premium-rwo\n    loadBalancer:\n      annotations: {example.com/lb: internal}\n",
    );
    let dir = tmp.path().join("overlays/gke");
    let out = pilothouse(&["render", dir.to_str().expect("utf8"), "--cloud", "gke"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    assert!(stdout.contains("storageClassName: premium-rwo"), "{stdout}");
    assert!(stdout.contains("example.com/lb: internal"), "{stdout}");

    write(
        tmp.path(),
        "other.yaml",
        "profiles:\n  gke:\n    storageClass: {default: other-class}\n",
    );
    let other = tmp.path().join("other.yaml");
    let out = pilothouse(&[
        "render",
        dir.to_str().expect("utf8"),
        "--cloud",
        "gke",
        "--cloud-profiles",
        other.to_str().expect("utf8"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("storageClassName: other-class"));
}

#[test]
fn invalid_clouds_file_fails_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "overlays/aks/kustomization.yaml", BASE);
    write(tmp.path(), "overlays/aks/app.yaml", APP);
    write(
        tmp.path(),
        "gitops/clouds.yaml",
        "profiles:\n  aks:\n    storageClasses: {}\n",
    );
    let dir = tmp.path().join("overlays/aks");
    let out = pilothouse(&["render", dir.to_str().expect("utf8"), "--cloud", "aks"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("clouds.yaml") && stderr.contains("storageClasses"),
        "{stderr}"
    );
}

#[test]
fn errors_exit_non_zero_with_nothing_on_stdout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "kustomization.yaml",
        "resources: [app.yaml, missing.yaml]\n",
    );
    write(tmp.path(), "app.yaml", APP);
    let out = pilothouse(&["render", tmp.path().to_str().expect("utf8")]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "stdout must be empty on error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("kustomization.yaml"), "{stderr}");
    assert!(stderr.contains("missing.yaml"), "{stderr}");
}

#[test]
fn unknown_field_is_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "kustomization.yaml",
        "resources: []\ncommonLabelz: {a: b}\n",
    );
    let out = pilothouse(&["render", tmp.path().to_str().expect("utf8")]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("commonLabelz") && stderr.contains("kustomization.yaml"),
        "{stderr}"
    );
}

#[test]
fn bad_resource_yaml_names_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "kustomization.yaml",
        "resources: [broken.yaml]\n",
    );
    write(tmp.path(), "broken.yaml", "kind: [\n");
    let out = pilothouse(&["render", tmp.path().to_str().expect("utf8")]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.yaml"));
}

#[test]
fn unknown_cloud_is_a_usage_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = pilothouse(&[
        "render",
        tmp.path().to_str().expect("utf8"),
        "--cloud",
        "azure",
    ]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("azure"));
}

#[test]
fn the_load_restrictor_is_kubectls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // a template directory patching with a file of its parent, as
    // cluster-api's templates do
    write(
        tmp.path(),
        "templates/kustomization.yaml",
        "resources: [app.yaml]\npatches:\n  - path: ../shared/patch.yaml\n",
    );
    write(tmp.path(), "templates/app.yaml", APP);
    write(
        tmp.path(),
        "shared/patch.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {type: ClusterIP}\n",
    );
    let dir = tmp.path().join("templates");
    let dir = dir.to_str().expect("utf8");
    let kubectl = |extra: &[&str]| {
        Command::new("kubectl")
            .arg("kustomize")
            .arg(dir)
            .args(extra)
            .output()
            .expect("kubectl runs")
    };

    let refused = pilothouse(&["render", dir]);
    assert!(!refused.status.success());
    assert!(!kubectl(&[]).status.success(), "kubectl refuses it too");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("patch.yaml"), "{stderr}");

    let none = ["--load-restrictor", "LoadRestrictionsNone"];
    let ours = pilothouse(&[&["render", dir][..], &none[..]].concat());
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let theirs = kubectl(&none);
    assert!(theirs.status.success());
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&theirs.stdout)
    );

    let wrong = pilothouse(&["render", dir, "--load-restrictor", "Off"]);
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.contains("LoadRestrictionsNone"), "{stderr}");
}

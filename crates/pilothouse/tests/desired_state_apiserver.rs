//! Every rendered object of this repository's desired state is accepted by a
//! real kube-apiserver: a server-side apply dry-run of each cloud overlay and
//! each cluster directory against a testenv cluster, through the real `kubectl`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pilothouse_testenv::TestCluster;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `overlays/*` and `gitops/clusters/*`, relative to the repository root.
fn desired_state_dirs() -> Vec<String> {
    let mut dirs = Vec::new();
    for parent in ["overlays", "gitops/clusters"] {
        let entries = std::fs::read_dir(repo_root().join(parent)).unwrap();
        for entry in entries.flatten() {
            if entry.path().join("kustomization.yaml").is_file() {
                dirs.push(format!("{parent}/{}", entry.file_name().to_string_lossy()));
            }
        }
    }
    dirs.sort();
    dirs
}

fn kustomize(dir: &str) -> Vec<u8> {
    let output = Command::new("kubectl")
        .arg("kustomize")
        .arg(repo_root().join(dir))
        .output()
        .expect("kubectl must be installed: it is the reference client of these tests");
    assert!(
        output.status.success(),
        "{dir}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Runs `kubectl ARGS -f -` with `input` on stdin; returns (success, stdout, stderr).
fn kubectl_with_input(
    cluster: &TestCluster,
    args: &[&str],
    input: &[u8],
) -> (bool, String, String) {
    let mut child = cluster
        .kubectl()
        .args(args)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn every_overlay_and_cluster_passes_a_server_side_apply_dry_run() {
    let dirs = desired_state_dirs();
    assert!(
        dirs.len() >= 6,
        "expected 3 overlays and 3 cluster examples: {dirs:?}"
    );
    let cluster = TestCluster::start("desired-state").await.unwrap();
    // A dry run cannot create objects inside a namespace that does not exist
    // yet: create the namespace for real first (it is part of the base).
    cluster.create_namespace("monitoring").await.unwrap();

    for dir in &dirs {
        let rendered = kustomize(dir);
        let (ok, stdout, stderr) = kubectl_with_input(
            &cluster,
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "--field-manager=pilothouse",
            ],
            &rendered,
        );
        assert!(
            ok,
            "{dir}: the apiserver refused the rendered objects:\n{stderr}"
        );
        assert!(
            stderr.trim().is_empty(),
            "{dir}: warnings from the apiserver:\n{stderr}"
        );
        let documents = String::from_utf8_lossy(&rendered)
            .matches("\nkind: ")
            .count()
            + usize::from(String::from_utf8_lossy(&rendered).starts_with("kind: "));
        let applied = stdout
            .lines()
            .filter(|l| l.contains("(server dry run)"))
            .count();
        assert_eq!(
            applied, documents,
            "{dir}: every object must be dry-run applied:\n{stdout}"
        );
    }
}

#[tokio::test]
async fn a_broken_object_is_refused_by_the_dry_run() {
    // the check above can fail: the same path refuses an invalid object
    let cluster = TestCluster::start("refuses").await.unwrap();
    let invalid = b"apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\n  namespace: default\nspec:\n  ports:\n  - port: 70000\n";
    let (ok, _, stderr) = kubectl_with_input(
        &cluster,
        &["apply", "--server-side", "--dry-run=server"],
        invalid,
    );
    assert!(!ok);
    assert!(stderr.contains("port"), "{stderr}");
}

#[test]
fn pilothouse_render_equals_kubectl_kustomize_on_every_directory() {
    for dir in desired_state_dirs() {
        let expected: Vec<serde_json::Value> = parse_stream(&kustomize(&dir));
        let ours = pilothouse_render::render_dir(
            &repo_root().join(&dir),
            &pilothouse_render::RenderOptions::default(),
        )
        .unwrap_or_else(|error| panic!("{dir}: {error}"));
        assert_eq!(ours.len(), expected.len(), "{dir}: object count");
        for (i, (ours, theirs)) in ours.iter().zip(&expected).enumerate() {
            assert_eq!(ours, theirs, "{dir}: object {i} differs");
        }
    }
}

/// Parses multi-document YAML into JSON values.
fn parse_stream(text: &[u8]) -> Vec<serde_json::Value> {
    use serde::Deserialize as _;
    serde_yaml::Deserializer::from_slice(text)
        .map(|document| serde_json::Value::deserialize(document).unwrap())
        .filter(|value| !value.is_null())
        .collect()
}

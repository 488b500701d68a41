//! Rendering.

#![allow(clippy::wildcard_imports)]

use super::*;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DirKind {
    /// `manifests/`
    Base,
    /// `overlays/<cloud>`
    Overlay(String),
    /// `gitops/clusters/<name>`
    Cluster(String),
}

pub(crate) struct Render {
    /// Path relative to the repository root, for messages.
    pub(crate) rel: String,
    pub(crate) kind: DirKind,
    pub(crate) objects: Vec<Value>,
}

/// `manifests/`, every `overlays/*` and every `gitops/clusters/*` that holds a
/// kustomization, in a stable order.
pub(crate) fn render_dirs() -> Vec<(String, DirKind)> {
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
pub(crate) fn renders() -> &'static [Render] {
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
pub(crate) fn kubectl_kustomize(dir: &Path, rel: &str) -> Vec<Value> {
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
pub(crate) fn parse_documents(text: &str) -> Result<Vec<Value>, String> {
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

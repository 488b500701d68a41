//! Differential tests against `kubectl kustomize`.
//!
//! Every directory under `tests/fixtures/` is an input tree. Its
//! `expected.yaml` was produced by `kubectl kustomize` (see
//! `regenerate.sh`); a case whose kustomize run fails holds
//! `error-contains.txt` instead, a substring our error must contain.
//! Outputs are compared as parsed YAML, document by document.

use std::path::{Path, PathBuf};
use std::process::Command;

use pilothouse_render::{RenderOptions, parse_yaml, render_dir, to_yaml};
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Case {
    name: String,
    dir: PathBuf,
    render: PathBuf,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(fixtures_dir()).expect("tests/fixtures exists");
    for entry in entries {
        let dir = entry.expect("readable fixtures dir").path();
        if !dir.is_dir() {
            continue;
        }
        let render = match std::fs::read_to_string(dir.join("render-dir")) {
            Ok(sub) => dir.join(sub.trim()),
            Err(_) => dir.clone(),
        };
        out.push(Case {
            name: dir
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned(),
            dir,
            render,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A line diff of two texts (longest common subsequence), `-` expected,
/// `+` ours.
fn line_diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push_str(&format!("  {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("+ {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("- {}\n", a[i]));
            i += 1;
        }
    }
    out
}

fn doc_name(v: &Value) -> String {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = v
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("{kind}/{name}")
}

/// Compares document lists; answers a readable report of the differences.
fn compare(expected: &[Value], actual: &[Value]) -> Option<String> {
    if expected == actual {
        return None;
    }
    let mut report = String::new();
    if expected.len() != actual.len() {
        report.push_str(&format!(
            "expected {} documents, got {}\n  expected: {:?}\n  got:      {:?}\n",
            expected.len(),
            actual.len(),
            expected.iter().map(doc_name).collect::<Vec<_>>(),
            actual.iter().map(doc_name).collect::<Vec<_>>()
        ));
    }
    for (i, (e, a)) in expected.iter().zip(actual).enumerate() {
        if e != a {
            report.push_str(&format!(
                "document {i} ({} vs {}) differs:\n{}",
                doc_name(e),
                doc_name(a),
                line_diff(
                    &to_yaml(std::slice::from_ref(e)),
                    &to_yaml(std::slice::from_ref(a))
                )
            ));
        }
    }
    Some(report)
}

fn non_null(docs: Vec<Value>) -> Vec<Value> {
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

#[test]
fn fixtures_match_kustomize_output() {
    let cases = cases();
    assert!(
        cases.len() >= 40,
        "expected at least 40 fixtures, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let outcome = render_dir(&case.render, &RenderOptions::default());
        let error_file = case.dir.join("error-contains.txt");
        if let Ok(want) = std::fs::read_to_string(&error_file) {
            let want = want.trim();
            match outcome {
                Ok(objects) => failures.push(format!(
                    "{}: expected an error containing {want:?}, rendered {} objects",
                    case.name,
                    objects.len()
                )),
                Err(e) => {
                    let text = e.to_string();
                    if !text.contains(want) {
                        failures.push(format!(
                            "{}: error {text:?} does not contain {want:?}",
                            case.name
                        ));
                    }
                }
            }
            continue;
        }
        let expected_text =
            std::fs::read_to_string(case.dir.join("expected.yaml")).unwrap_or_else(|e| {
                panic!(
                    "{}: expected.yaml: {e} (run tests/regenerate.sh)",
                    case.name
                )
            });
        let expected = non_null(parse_yaml(&expected_text).expect("expected.yaml parses"));
        match outcome {
            Err(e) => failures.push(format!("{}: render failed: {e}", case.name)),
            Ok(objects) => {
                if let Some(report) = compare(&expected, &objects) {
                    failures.push(format!("{}:\n{report}", case.name));
                }
                // Our own text must read back as the same objects.
                let reread = non_null(parse_yaml(&to_yaml(&objects)).expect("our output parses"));
                if let Some(report) = compare(&objects, &reread) {
                    failures.push(format!(
                        "{}: output does not round-trip:\n{report}",
                        case.name
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} fixtures failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Runs the real `kubectl kustomize` on every fixture, so a stale
/// `expected.yaml` (or a kustomize upgrade) is caught.
#[test]
fn fixtures_are_current_with_live_kubectl() {
    let probe = Command::new("kubectl")
        .args(["version", "--client"])
        .output();
    let probe = match probe {
        Ok(p) if p.status.success() => p,
        _ => panic!(
            "kubectl is not installed or does not run: install kubectl (1.32, which embeds kustomize v5.5) \
             so this test can compare the fixtures with `kubectl kustomize`"
        ),
    };
    let version = String::from_utf8_lossy(&probe.stdout).into_owned();
    let mut failures = Vec::new();
    for case in cases() {
        let out = Command::new("kubectl")
            .arg("kustomize")
            .arg(&case.render)
            .output()
            .expect("kubectl runs");
        let has_error = case.dir.join("error-contains.txt").exists();
        match (out.status.success(), has_error) {
            (true, true) => failures.push(format!("{}: kustomize now succeeds", case.name)),
            (false, false) => failures.push(format!(
                "{}: kustomize fails: {}",
                case.name,
                String::from_utf8_lossy(&out.stderr)
            )),
            (false, true) => {}
            (true, false) => {
                let live = non_null(
                    parse_yaml(&String::from_utf8_lossy(&out.stdout))
                        .expect("kustomize output parses"),
                );
                let stored =
                    std::fs::read_to_string(case.dir.join("expected.yaml")).unwrap_or_default();
                let stored = non_null(parse_yaml(&stored).expect("expected.yaml parses"));
                if let Some(report) = compare(&live, &stored) {
                    failures.push(format!(
                        "{}: expected.yaml is stale (run tests/regenerate.sh):\n{report}",
                        case.name
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "kubectl ({}) disagrees with stored fixtures:\n{}",
        version.trim(),
        failures.join("\n\n")
    );
}

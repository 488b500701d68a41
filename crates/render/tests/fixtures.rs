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

mod common;

use common::{compare, non_null};

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

//! The conformance corpus: kustomizations shaped like what real projects
//! ship, each rendered by `kubectl kustomize` when the corpus was generated
//! (`scripts/render-corpus.py`; the stored output is what this test compares
//! with, so it needs no kubectl).
//!
//! A case holding `expected.yaml` must render to the same documents, in the
//! same order, and the same text byte for byte; a case holding
//! `kustomize-error.txt` must fail. Cases listed
//! in `known-differences.txt` are the known gaps, each with its reason: they
//! must still differ (a fixed one must be taken off the list), so nothing is
//! silently different.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pilothouse_render::{LoadRestrictions, RenderOptions, parse_yaml, render_dir, to_yaml};

mod common;

use common::{compare, line_diff, non_null};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// `case-name  # reason` lines.
fn known_differences() -> BTreeMap<String, String> {
    let text =
        std::fs::read_to_string(corpus_dir().join("known-differences.txt")).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once('#') {
            Some((name, reason)) => (name.trim().to_string(), reason.trim().to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

/// Renders one case; `None` when it matches kubectl, else what differs.
fn check(dir: &Path) -> Option<String> {
    let render = match std::fs::read_to_string(dir.join("render-dir")) {
        Ok(sub) => dir.join(sub.trim()),
        Err(_) => dir.to_path_buf(),
    };
    let mut options = RenderOptions::default();
    if let Ok(restrictor) = std::fs::read_to_string(dir.join("load-restrictor")) {
        options.load_restrictions = match restrictor.trim() {
            "LoadRestrictionsNone" => LoadRestrictions::None,
            _ => LoadRestrictions::RootOnly,
        };
    }
    let outcome = render_dir(&render, &options);
    if let Ok(error) = std::fs::read_to_string(dir.join("kustomize-error.txt")) {
        return match outcome {
            Err(_) => None,
            Ok(objects) => Some(format!(
                "kustomize fails ({}), we rendered {} objects",
                error.trim(),
                objects.len()
            )),
        };
    }
    let expected_text = std::fs::read_to_string(dir.join("expected.yaml"))
        .unwrap_or_else(|e| panic!("{}: expected.yaml: {e}", dir.display()));
    let expected = non_null(parse_yaml(&expected_text).expect("expected.yaml parses"));
    match outcome {
        Err(e) => Some(format!("kustomize renders, we fail: {e}")),
        Ok(objects) => compare(&expected, &objects).or_else(|| {
            // the same documents must also be the same text, byte for byte
            let ours = to_yaml(&objects);
            (ours != expected_text).then(|| {
                format!(
                    "same documents, different text:\n{}",
                    line_diff(&expected_text, &ours)
                )
            })
        }),
    }
}

#[test]
fn corpus_matches_kubectl() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/corpus exists (scripts/render-corpus.py)")
        .map(|e| e.expect("readable corpus").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    assert!(
        dirs.len() >= 300,
        "expected at least 300 corpus cases, found {}",
        dirs.len()
    );
    let known = known_differences();
    let mut failures = Vec::new();
    let mut differing = 0;
    for dir in &dirs {
        let name = dir
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let outcome = check(dir);
        match (outcome, known.get(&name)) {
            (None, None) => {}
            (None, Some(_)) => failures.push(format!(
                "{name}: now matches kubectl; take it off known-differences.txt"
            )),
            (Some(_), Some(_)) => differing += 1,
            (Some(report), None) => failures.push(format!("{name}:\n{report}")),
        }
    }
    for name in known.keys() {
        if !dirs.iter().any(|d| d.ends_with(name)) {
            failures.push(format!(
                "{name}: listed in known-differences.txt but not in the corpus"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus cases fail ({differing} known differences):\n\n{}",
        failures.len(),
        dirs.len(),
        failures.join("\n\n")
    );
}

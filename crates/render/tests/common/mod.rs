//! Helpers shared by the differential tests: comparing rendered documents
//! with kubectl's, and a readable report of the differences.

#![allow(dead_code)]

use pilothouse_render::to_yaml;
use serde_json::Value;

/// A line diff of two texts (longest common subsequence), `-` expected,
/// `+` ours.
pub fn line_diff(expected: &str, actual: &str) -> String {
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

pub fn doc_name(v: &Value) -> String {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = v
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("{kind}/{name}")
}

/// Compares document lists; answers a readable report of the differences.
pub fn compare(expected: &[Value], actual: &[Value]) -> Option<String> {
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

pub fn non_null(docs: Vec<Value>) -> Vec<Value> {
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

//! What the benchmarks share: the objects they sync, the file kubectl reads
//! them from, kubectl's version, and how times are shown.

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

const NAMESPACES: usize = 10;
/// Objects of each kind per namespace (Deployments: one fewer, so that the
/// total with the namespaces is 1,000).
const PER_KIND: usize = 20;

/// 1,000 objects: 10 namespaces, each with 20 ConfigMaps, Secrets,
/// ServiceAccounts and Services and 19 Deployments.
pub fn objects() -> Vec<Value> {
    pilothouse_testenv::bench_workloads(NAMESPACES, PER_KIND, PER_KIND - 1)
}

/// A duration in seconds, to the millisecond.
pub fn seconds(duration: Duration) -> String {
    format!("{:.3} s", duration.as_secs_f64())
}

/// The first line of `kubectl version --client`.
pub fn kubectl_version() -> String {
    let output = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .expect("kubectl runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// Writes `objects` as a JSON List into `scratch/objects.json` for kubectl
/// (creating `scratch`, emptying its kubectl cache) and returns the file.
pub fn write_objects(scratch: &str, objects: &[Value]) -> String {
    std::fs::create_dir_all(scratch).expect("scratch directory");
    let _ = std::fs::remove_dir_all(format!("{scratch}/kubectl-cache"));
    let file = format!("{scratch}/objects.json");
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    std::fs::write(&file, serde_json::to_vec(&list).expect("JSON")).expect("writing the objects");
    file
}

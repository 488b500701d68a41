//! `pilothouse serve` as a real process with zero configuration, driven by the
//! real CLI: registration, listing, restart, graceful shutdown, and no secret in
//! its output or data directory files other than the ones meant to hold them.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pilothouse_testenv::{FakeNode, ProviderCloud, TestCluster};

const BIN: &str = env!("CARGO_BIN_EXE_pilothouse");

struct Server {
    child: Child,
    url: String,
    /// Everything the service printed (stdout), read until it exits.
    stdout: std::thread::JoinHandle<String>,
    /// Everything the service logged (stderr), drained continuously.
    logs: std::thread::JoinHandle<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(workdir: &Path) -> Server {
    let port = free_port();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(workdir)
        .env("PILOTHOUSE_PORT", port.to_string())
        .env_remove("PILOTHOUSE_DATA_DIR")
        .env_remove("PILOTHOUSE_MASTER_KEY")
        .env("PILOTHOUSE_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // drain stderr all the time, or a chatty service blocks on a full pipe
    let mut stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    // stdout carries only the first-admin-token notice, printed before the
    // service listens; all of it is read when the service has exited
    let mut out = child.stdout.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "serve did not listen within 30s");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        stdout,
        logs,
    }
}

/// Stops the service with SIGTERM: whether it exited 0, what it logged and
/// what it printed.
fn stop(mut server: Server) -> (bool, String, String) {
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = server.child.wait().unwrap();
    let logs = server.logs.join().unwrap();
    (status.success(), logs, server.stdout.join().unwrap())
}

fn cli(workdir: &Path, server: &Server, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(workdir)
        .env("PILOTHOUSE_SERVER", &server.url)
        .env_remove("PILOTHOUSE_TOKEN")
        .output()
        .unwrap()
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn serve_with_zero_configuration_keeps_clusters_across_restarts() {
    let workdir = tempfile::tempdir().unwrap();
    let cluster = TestCluster::start("served").await.unwrap();
    cluster
        .create_node(&FakeNode::ready("n1", ProviderCloud::Eks))
        .await
        .unwrap();
    let kubeconfig = workdir.path().join("served.kubeconfig");
    std::fs::write(&kubeconfig, cluster.token_kubeconfig_yaml()).unwrap();

    let server = start(workdir.path());
    let data = workdir.path().join(".pilothouse");
    let token = std::fs::read_to_string(data.join("admin.token")).unwrap();
    assert!(token.trim().len() >= 32, "a token of some length: {token}");
    assert!(data.join("pilothouse.db").is_file());
    #[cfg(unix)]
    {
        assert_eq!(mode(&data.join("master.key")), 0o600);
        assert_eq!(mode(&data.join("admin.token")), 0o600);
        assert_eq!(mode(&data), 0o700);
    }

    let added = stdout_of(&cli(
        workdir.path(),
        &server,
        &[
            "cluster",
            "add",
            "edge",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "-l",
            "env=prod",
        ],
    ));
    assert!(added.contains("edge") && added.contains("eks"), "{added}");
    let listed = stdout_of(&cli(workdir.path(), &server, &["cluster", "list"]));
    assert!(listed.starts_with("NAME"), "{listed}");
    assert!(
        listed.contains("edge") && listed.contains("reachable") && listed.contains("v1.35.4"),
        "{listed}"
    );
    let json = stdout_of(&cli(
        workdir.path(),
        &server,
        &["cluster", "get", "edge", "-o", "json"],
    ));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["labels"]["env"], "prod");
    let yaml = stdout_of(&cli(
        workdir.path(),
        &server,
        &["cluster", "list", "-o", "yaml"],
    ));
    assert!(yaml.contains("name: edge"), "{yaml}");

    // Zero configuration: this repository's own checkout is the desired state.
    let repository: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/repository", server.url))
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let root = std::fs::canonicalize(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).unwrap();
    assert_eq!(
        repository["url"],
        root.display().to_string(),
        "{repository}"
    );
    assert_eq!(repository["credentials"], "none");
    let refused = cli(
        workdir.path(),
        &server,
        &[
            "cluster",
            "add",
            "edge",
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("409"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let (clean, logs, printed) = stop(server);
    assert!(clean, "serve must exit 0 on SIGTERM:\n{logs}");
    // the token is printed once, with where it is saved
    assert!(printed.contains("admin API token"), "{printed}");
    assert_eq!(printed.matches(token.trim()).count(), 1, "{printed}");
    assert!(logs.contains("pilothouse stopped"), "{logs}");
    for secret in [cluster.admin_token(), token.trim()] {
        assert!(!logs.contains(secret), "a secret is in the service's logs");
    }

    // a restart finds everything, and prints no new token
    let server = start(workdir.path());
    let listed = stdout_of(&cli(workdir.path(), &server, &["cluster", "list"]));
    assert!(listed.contains("edge"), "{listed}");
    let removed = stdout_of(&cli(workdir.path(), &server, &["cluster", "rm", "edge"]));
    assert!(removed.contains("removed"), "{removed}");
    let missing = cli(workdir.path(), &server, &["cluster", "get", "edge"]);
    assert!(!missing.status.success());
    let (clean, _, printed) = stop(server);
    assert!(clean);
    assert!(
        !printed.contains("admin API token") && !printed.contains(token.trim()),
        "a restart prints no token: {printed}"
    );
}

#[test]
fn the_cli_without_a_token_says_how_to_get_one() {
    let workdir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["cluster", "list"])
        .current_dir(workdir.path())
        .env_remove("PILOTHOUSE_TOKEN")
        .env("PILOTHOUSE_SERVER", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("PILOTHOUSE_TOKEN"), "{stderr}");
}

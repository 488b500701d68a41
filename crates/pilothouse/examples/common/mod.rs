//! What the service benchmarks share: the release `pilothouse` binary next
//! to them, and a `serve` on a fresh data directory with clusters
//! registered through the API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pilothouse_testenv::TestCluster;
use serde_json::json;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The `pilothouse` binary of the same build (`target/<profile>/`).
pub fn binary() -> Result<PathBuf, Error> {
    std::env::current_exe()?
        .parent()
        .and_then(|examples| examples.parent())
        .map(|dir| dir.join("pilothouse"))
        .ok_or_else(|| "cannot locate the pilothouse binary".into())
}

/// A running `pilothouse serve` on loopback; killed when dropped.
pub struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT/api/v1`.
    pub base: String,
    /// The first admin token.
    pub token: String,
    /// A client for the API.
    pub http: reqwest::Client,
}

impl Serve {
    /// Starts `serve` on `data` and waits until it answers.
    pub async fn start(data: &Path) -> Result<Serve, Error> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(binary()?)
            .args(["serve", "--port", &port.to_string(), "--data-dir"])
            .arg(data)
            .env("PILOTHOUSE_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()?;
        let mut serve = Serve {
            child,
            base: format!("http://127.0.0.1:{port}/api/v1"),
            token: String::new(),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(token) = std::fs::read_to_string(data.join("admin.token"))
                && serve
                    .http
                    .get(format!("{}/clusters", serve.base))
                    .bearer_auth(token.trim())
                    .send()
                    .await
                    .is_ok()
            {
                serve.token = token.trim().to_owned();
                return Ok(serve);
            }
            if Instant::now() > deadline {
                return Err("serve did not come up".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Registers a testenv cluster in manual sync mode.
    pub async fn register(&self, name: &str, cluster: &TestCluster) -> Result<(), Error> {
        let response = self
            .http
            .post(format!("{}/clusters", self.base))
            .bearer_auth(&self.token)
            .json(
                &json!({"name": name, "kubeconfig": cluster.token_kubeconfig_yaml(),
                "cloud": "eks", "sync_mode": "manual"}),
            )
            .send()
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("registering {name}: {}", response.text().await?).into())
        }
    }

    /// The process id (for its memory).
    #[allow(dead_code)] // not every benchmark reads it
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

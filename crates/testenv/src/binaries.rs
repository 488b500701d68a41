//! Where the control-plane binaries live.

use std::path::{Path, PathBuf};

use crate::TestEnvError;

/// The tiny Go module that pins the versions; the install script builds from it.
const GO_MOD: &str = include_str!("../../../testenv-tools/go.mod");

/// Paths of the control-plane binaries of one pinned Kubernetes release.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// The directory holding them.
    pub dir: PathBuf,
    /// The pinned Kubernetes version, e.g. `v1.35.4`.
    pub kubernetes_version: String,
}

impl Binaries {
    /// Finds the binaries: `$PILOTHOUSE_TESTENV_BIN` if set, else the cache directory
    /// that `scripts/install-test-binaries.sh` fills, keyed by the pinned versions.
    pub fn locate() -> Result<Self, TestEnvError> {
        let kubernetes_version = module_version("k8s.io/kubernetes");
        let dir = match std::env::var_os("PILOTHOUSE_TESTENV_BIN") {
            Some(dir) => PathBuf::from(dir),
            None => {
                let cache = std::env::var_os("PILOTHOUSE_CACHE")
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/pilothouse"))
                    })
                    .unwrap_or_else(|| PathBuf::from(".cache/pilothouse"));
                cache.join("testenv").join(format!(
                    "k8s-{kubernetes_version}-etcd-{}",
                    module_version("go.etcd.io/etcd/server/v3")
                ))
            }
        };
        let binaries = Self {
            dir,
            kubernetes_version,
        };
        binaries.path("etcd")?;
        binaries.path("kube-apiserver")?;
        Ok(binaries)
    }

    /// The path of one binary, or [`TestEnvError::MissingBinary`] naming the install script.
    pub fn path(&self, name: &'static str) -> Result<PathBuf, TestEnvError> {
        let path = self.dir.join(name);
        if path.is_file() {
            Ok(path)
        } else {
            Err(TestEnvError::MissingBinary { name, path })
        }
    }
}

/// The version go.mod pins for a module (`require` line), or `unknown`.
fn module_version(module: &str) -> String {
    GO_MOD
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let name = words.next()?;
            let version = words.next()?;
            (name == module && version.starts_with('v')).then(|| version.to_owned())
        })
        .next()
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_pinning_module() {
        assert!(module_version("k8s.io/kubernetes").starts_with("v1."));
        assert!(module_version("go.etcd.io/etcd/server/v3").starts_with("v3."));
        assert_eq!(module_version("example.com/none"), "unknown");
    }

    #[test]
    fn a_missing_binary_names_the_install_script() {
        let binaries = Binaries {
            dir: PathBuf::from("/nonexistent"),
            kubernetes_version: "v1.35.4".into(),
        };
        let message = binaries.path("etcd").unwrap_err().to_string();
        assert!(
            message.contains("scripts/install-test-binaries.sh"),
            "{message}"
        );
        assert!(message.contains("/nonexistent/etcd"), "{message}");
    }
}

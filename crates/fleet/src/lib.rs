//! Talking to clusters: the only Pilothouse crate that does.
//!
//! It owns everything between a kubeconfig and a live Kubernetes API server:
//! - [`validate_kubeconfig`]: uploaded kubeconfigs are untrusted input. They are
//!   read as data (never through kube's file-following loader), refused when
//!   they name files on the server, use exec plugins off the allow-list or
//!   legacy auth providers, and cut down to the one context they register;
//! - [`client_for`]: kube clients built from validated kubeconfigs, with timeouts;
//! - [`probe`]: a bounded connectivity check (server version, an authenticated
//!   list, node provider IDs);
//! - [`detect_cloud`]: which cloud a cluster runs on — pure.
//!
//! It must not: write SQL or keep state (the `store` crate holds credentials,
//! encrypted), serve HTTP (only `api` does), or let a secret (token, key,
//! certificate, exec plugin output) reach an error message, a log line or a
//! `Debug` output.

mod cloud;
mod health;
mod kubeconfig;
mod probe;
mod yaml;

pub use cloud::detect_cloud;
pub use health::{CheckError, CheckSettings, check_and_record, run_checks};
pub use kubeconfig::{
    ALLOWED_EXEC_ENV, DEFAULT_EXEC_COMMANDS, KubeconfigError, KubeconfigPolicy,
    MAX_KUBECONFIG_BYTES, ValidatedKubeconfig, validate_kubeconfig,
};
pub use probe::{Probe, ProbeError, client_for, probe};

//! Real Kubernetes control planes for Pilothouse's tests.
//!
//! A [`TestCluster`] is one simulated cluster: its own etcd and kube-apiserver
//! processes on free loopback ports, with generated certificates, service-account
//! signing keys, RBAC authorization and an admin kubeconfig. Everything is torn
//! down when the value is dropped, even when a test panics; a panicking test also
//! gets the tails of the cluster's apiserver and etcd logs on stderr.
//!
//! Two modes:
//! - **bare** ([`ClusterOptions::bare`]): apiserver + etcd only. Nothing runs
//!   controllers, so tests set pod and node status themselves with the helpers in
//!   [`objects`].
//! - **live** ([`ClusterOptions::live`]): plus kube-controller-manager,
//!   kube-scheduler and a fake kubelet in this process that takes pods scheduled
//!   onto fake nodes to Running, so Deployments roll out as in a real cluster.
//!
//! The binaries are built from Go modules by `scripts/install-test-binaries.sh`
//! into a cache outside the clone; when they are missing every start fails with
//! an error naming that script. This crate is a dev-dependency only: the product
//! never links it.

mod binaries;
mod cluster;
mod error;
mod kubelet;
pub mod objects;
mod pki;

pub use binaries::Binaries;
pub use cluster::{ClusterMode, ClusterOptions, TestCluster, start_fleet};
pub use error::TestEnvError;
pub use kubelet::IGNORE_ANNOTATION;
pub use objects::{FakeNode, PodState, ProviderCloud};

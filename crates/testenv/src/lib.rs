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
//! Container logs work in both modes, through the real apiserver: a fake
//! kubelet log server (HTTPS on 127.0.0.1, certificate from the cluster's test
//! CA, client certificates checked) answers the apiserver's
//! `/containerLogs/{namespace}/{pod}/{container}` calls, and every node made by
//! [`TestCluster::create_node`] advertises it (`InternalIP 127.0.0.1` and its
//! port as the kubelet endpoint). Tests set a container's current or previous log
//! with [`TestCluster::set_container_logs`] and bind pods to a node with
//! [`TestCluster::create_pod_on`] (live mode: the scheduler binds them); then
//! `Api::<Pod>::logs` and `kubectl logs` return the last `tailLines` lines capped
//! at `limitBytes`. A container whose log was never set answers 400 with a
//! kubelet-like message (`container "web" in pod "web-1" is waiting to start`,
//! or `previous terminated container … not found`); `follow`, `timestamps` and
//! `since*` are ignored.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::Pod;
//! use kube::api::{Api, LogParams};
//! use pilothouse_testenv::{FakeNode, ProviderCloud, TestCluster};
//!
//! let cluster = TestCluster::start("logs").await?;
//! cluster.create_node(&FakeNode::ready("node-1", ProviderCloud::None)).await?;
//! cluster.create_namespace("apps").await?;
//! cluster
//!     .create_pod_on("node-1", "apps", "web-1", &[("web", "nginx:1.27")], &[], None)
//!     .await?;
//! cluster.set_container_logs("apps", "web-1", "web", false, "started\nserving\n");
//! let pods: Api<Pod> = Api::namespaced(cluster.client().await?, "apps");
//! let last = pods
//!     .logs("web-1", &LogParams { tail_lines: Some(1), ..LogParams::default() })
//!     .await?;
//! assert_eq!(last, "serving\n");
//! # Ok(())
//! # }
//! ```
//!
//! The binaries are built from Go modules by `scripts/install-test-binaries.sh`
//! into a cache outside the clone; when they are missing every start fails with
//! an error naming that script. This crate is a dev-dependency only: the product
//! never links it.

mod binaries;
mod cluster;
mod container_logs;
mod error;
mod kubelet;
pub mod objects;
mod pki;
mod recording;

pub use binaries::Binaries;
pub use cluster::{ClusterMode, ClusterOptions, TestCluster, start_fleet};
pub use error::TestEnvError;
pub use kubelet::IGNORE_ANNOTATION;
pub use objects::{FakeNode, PodState, ProviderCloud, bench_workloads};
pub use recording::{RecordedRequest, RecordingServer};

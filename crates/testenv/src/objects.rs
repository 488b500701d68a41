//! Helpers that make a cluster look alive without kubelets: nodes with cloud
//! provider IDs whose kubelet endpoint is the fake kubelet's log server, pods
//! whose status tests set through the status subresource, and Warning events.

use k8s_openapi::api::core::v1::{Event, Namespace, Node, Pod};
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::{TestCluster, TestEnvError};

/// The cloud a fake node claims to run on, through its `spec.providerID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderCloud {
    /// `azure:///subscriptions/…` — an AKS node.
    Aks,
    /// `gce://project/zone/instance` — a GKE node.
    Gke,
    /// `aws:///zone/instance-id` — an EKS node.
    Eks,
    /// No provider ID (kind, bare metal, …).
    None,
}

impl ProviderCloud {
    /// The provider ID a node of this cloud carries.
    pub fn provider_id(self, node: &str) -> Option<String> {
        match self {
            Self::Aks => Some(format!(
                "azure:///subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mc_test/providers/\
                 Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1/virtualMachines/{node}"
            )),
            Self::Gke => Some(format!("gce://test-project/europe-west1-b/{node}")),
            Self::Eks => Some(format!("aws:///us-east-1a/i-{:0>17}", hex_of(node))),
            Self::None => None,
        }
    }
}

/// A node to create with [`TestCluster::create_node`].
#[derive(Debug, Clone)]
pub struct FakeNode {
    /// The node's name.
    pub name: String,
    /// Which cloud its provider ID names.
    pub cloud: ProviderCloud,
    /// Whether its Ready condition is True.
    pub ready: bool,
}

impl FakeNode {
    /// A Ready node on the given cloud.
    pub fn ready(name: &str, cloud: ProviderCloud) -> Self {
        Self {
            name: name.to_owned(),
            cloud,
            ready: true,
        }
    }
}

/// A pod status to set with [`TestCluster::set_pod_state`]. Container-level states
/// apply to every container of the pod.
#[derive(Debug, Clone, PartialEq)]
pub enum PodState {
    /// Running; containers ready or not.
    Running {
        /// Whether the containers (and so the pod) are ready.
        ready: bool,
        /// Restart count of each container.
        restarts: i32,
    },
    /// Containers waiting with a reason (CrashLoopBackOff, ImagePullBackOff,
    /// ErrImagePull, CreateContainerConfigError, …). A CrashLoopBackOff carries the
    /// previous termination in `last_terminated`.
    Waiting {
        /// The waiting reason.
        reason: String,
        /// The waiting message.
        message: String,
        /// Restart count of each container.
        restarts: i32,
        /// `(exit code, reason)` of the previous container instance, if any.
        last_terminated: Option<(i32, String)>,
    },
    /// Containers terminated (OOMKilled, Error, …) with an exit code; the pod is Running
    /// (it will restart) unless `pod_failed`.
    Terminated {
        /// The termination reason.
        reason: String,
        /// The exit code.
        exit_code: i32,
        /// Restart count of each container.
        restarts: i32,
        /// Whether the pod phase is Failed (restartPolicy Never) instead of Running.
        pod_failed: bool,
    },
    /// Pending with PodScheduled=False/Unschedulable.
    Unschedulable {
        /// The scheduler's message.
        message: String,
    },
    /// Failed with reason Evicted.
    Evicted {
        /// The kubelet's message.
        message: String,
    },
    /// Succeeded: every container exited 0.
    Succeeded,
}

impl PodState {
    /// Running and ready with no restarts.
    pub fn running() -> Self {
        Self::Running {
            ready: true,
            restarts: 0,
        }
    }

    /// CrashLoopBackOff after `restarts` restarts, the last one exiting with `exit_code`.
    pub fn crash_loop(restarts: i32, exit_code: i32) -> Self {
        Self::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: "back-off 5m0s restarting failed container".into(),
            restarts,
            last_terminated: Some((exit_code, "Error".into())),
        }
    }

    /// Waiting with `reason` (ImagePullBackOff, ErrImagePull, CreateContainerConfigError, …).
    pub fn waiting(reason: &str, message: &str) -> Self {
        Self::Waiting {
            reason: reason.into(),
            message: message.into(),
            restarts: 0,
            last_terminated: None,
        }
    }

    /// The container was OOM-killed (exit code 137) and has restarted `restarts` times.
    pub fn oom_killed(restarts: i32) -> Self {
        Self::Terminated {
            reason: "OOMKilled".into(),
            exit_code: 137,
            restarts,
            pod_failed: false,
        }
    }

    /// The container exited with `exit_code` (reason Error).
    pub fn error(exit_code: i32, restarts: i32) -> Self {
        Self::Terminated {
            reason: "Error".into(),
            exit_code,
            restarts,
            pod_failed: false,
        }
    }

    /// Pending and unschedulable, as the scheduler reports it.
    pub fn unschedulable() -> Self {
        Self::Unschedulable {
            message: "0/3 nodes are available: 3 Insufficient memory.".into(),
        }
    }

    /// Evicted by the kubelet for memory pressure.
    pub fn evicted() -> Self {
        Self::Evicted {
            message: "The node was low on resource: memory.".into(),
        }
    }

    /// The status subresource body for a pod with these containers.
    pub fn status(&self, containers: &[(String, String)]) -> Value {
        let now = now();
        let container = |state: Value,
                         last: Value,
                         ready: bool,
                         restarts: i32,
                         (name, image): &(String, String)| {
            json!({
                "name": name, "image": image, "imageID": "", "ready": ready,
                "restartCount": restarts, "started": state.get("running").is_some(),
                "state": state, "lastState": last,
            })
        };
        let condition = |kind: &str, status: bool| json!({"type": kind, "status": if status { "True" } else { "False" }, "lastTransitionTime": now});
        let running_conditions = |ready: bool| {
            json!([
                condition("PodScheduled", true),
                condition("Initialized", true),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ])
        };
        match self {
            Self::Running { ready, restarts } => json!({
                "phase": "Running", "startTime": now, "hostIP": "10.0.0.10", "podIP": "10.244.0.10",
                "conditions": running_conditions(*ready),
                "containerStatuses": containers.iter().map(|c| container(
                    json!({"running": {"startedAt": now}}), json!({}), *ready, *restarts, c)).collect::<Vec<_>>(),
            }),
            Self::Waiting {
                reason,
                message,
                restarts,
                last_terminated,
            } => {
                let last = last_terminated.as_ref().map_or(json!({}), |(code, why)| {
                    json!({"terminated": {"exitCode": code, "reason": why, "startedAt": now, "finishedAt": now}})
                });
                json!({
                    "phase": "Running", "startTime": now, "hostIP": "10.0.0.10", "podIP": "10.244.0.10",
                    "conditions": running_conditions(false),
                    "containerStatuses": containers.iter().map(|c| container(
                        json!({"waiting": {"reason": reason, "message": message}}), last.clone(), false, *restarts, c))
                        .collect::<Vec<_>>(),
                })
            }
            Self::Terminated {
                reason,
                exit_code,
                restarts,
                pod_failed,
            } => {
                let terminated = json!({"terminated": {
                    "exitCode": exit_code, "reason": reason, "startedAt": now, "finishedAt": now}});
                json!({
                    "phase": if *pod_failed { "Failed" } else { "Running" },
                    "startTime": now, "hostIP": "10.0.0.10", "podIP": "10.244.0.10",
                    "conditions": running_conditions(false),
                    "containerStatuses": containers.iter().map(|c| container(
                        terminated.clone(), terminated.clone(), false, *restarts, c)).collect::<Vec<_>>(),
                })
            }
            Self::Unschedulable { message } => json!({
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                "message": message, "lastTransitionTime": now}],
            }),
            Self::Evicted { message } => json!({
                "phase": "Failed", "reason": "Evicted", "message": message, "startTime": now,
            }),
            Self::Succeeded => {
                let done = json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}});
                json!({
                    "phase": "Succeeded", "startTime": now,
                    "conditions": running_conditions(false),
                    "containerStatuses": containers.iter().map(|c| container(
                        done.clone(), json!({}), false, 0, c)).collect::<Vec<_>>(),
                })
            }
        }
    }
}

impl TestCluster {
    /// Creates a Namespace (no error if it exists already).
    pub async fn create_namespace(&self, name: &str) -> Result<Namespace, TestEnvError> {
        let api: Api<Namespace> = Api::all(self.client().await?);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match api.create(&PostParams::default(), &namespace).await {
            Err(kube::Error::Api(status)) if status.code == 409 => api
                .get(name)
                .await
                .map_err(TestEnvError::kube(format!("reading namespace {name}"))),
            other => other.map_err(TestEnvError::kube(format!("creating namespace {name}"))),
        }
    }

    /// Creates a Node with a cloud provider ID, capacity for scheduling, and a
    /// Ready condition as asked. Its status advertises `InternalIP 127.0.0.1` and
    /// the port of the fake kubelet's log server
    /// ([`kubelet_port`](TestCluster::kubelet_port)), so the apiserver serves the
    /// logs of pods bound to it from [`set_container_logs`](TestCluster::set_container_logs).
    pub async fn create_node(&self, node: &FakeNode) -> Result<Node, TestEnvError> {
        let api: Api<Node> = Api::all(self.client().await?);
        let mut spec = json!({});
        if let Some(id) = node.cloud.provider_id(&node.name) {
            spec["providerID"] = json!(id);
        }
        let body: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": node.name, "labels": {
                "kubernetes.io/hostname": node.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                "type": "pilothouse-testenv-fake-node",
            }},
            "spec": spec,
        }))
        .map_err(|e| TestEnvError::io("building a node")(std::io::Error::other(e)))?;
        api.create(&PostParams::default(), &body)
            .await
            .map_err(TestEnvError::kube(format!("creating node {}", node.name)))?;
        self.set_node_ready(&node.name, node.ready).await
    }

    /// Sets a node's Ready condition (and its capacity, addresses, kubelet
    /// endpoint and pressure conditions, all False).
    pub async fn set_node_ready(&self, name: &str, ready: bool) -> Result<Node, TestEnvError> {
        self.set_node_conditions(name, ready, &[]).await
    }

    /// Sets a node's Ready condition and turns the named pressure conditions
    /// (`MemoryPressure`, `DiskPressure`, `PIDPressure`) True.
    pub async fn set_node_conditions(
        &self,
        name: &str,
        ready: bool,
        pressures: &[&str],
    ) -> Result<Node, TestEnvError> {
        let api: Api<Node> = Api::all(self.client().await?);
        let now = now();
        let mut conditions: Vec<Value> = ["MemoryPressure", "DiskPressure", "PIDPressure"]
            .iter()
            .map(|kind| {
                let on = pressures.contains(kind);
                json!({"type": kind, "status": if on { "True" } else { "False" },
                       "reason": if on { format!("KubeletHas{kind}") } else { format!("KubeletHasNo{kind}") },
                       "lastHeartbeatTime": now, "lastTransitionTime": now})
            })
            .collect();
        conditions.push(json!({
            "type": "Ready", "status": if ready { "True" } else { "False" },
            "reason": if ready { "KubeletReady" } else { "KubeletNotReady" },
            "message": if ready { "kubelet is posting ready status" } else { "container runtime is down" },
            "lastHeartbeatTime": now, "lastTransitionTime": now,
        }));
        let resources =
            json!({"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"});
        let status = json!({"status": {
            "conditions": conditions,
            "capacity": resources, "allocatable": resources,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet_port()}},
            "nodeInfo": {"kubeletVersion": "v1.35.4", "containerRuntimeVersion": "fake://1.0",
                         "operatingSystem": "linux", "architecture": "amd64", "osImage": "testenv",
                         "kernelVersion": "6.0", "kubeProxyVersion": "", "machineID": "", "systemUUID": "",
                         "bootID": ""},
        }});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .map_err(TestEnvError::kube(format!("setting status of node {name}")))?;
        // The TaintNodesByCondition admission plugin taints every new node
        // not-ready; the node lifecycle controller, which would lift it, does not
        // run against fake nodes (they send no heartbeats). Keep the taint in step
        // with the Ready condition here instead.
        let taints = if ready {
            json!([])
        } else {
            json!([{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}])
        };
        api.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"taints": taints}})),
        )
        .await
        .map_err(TestEnvError::kube(format!("setting taints of node {name}")))
    }

    /// Creates a pod with one container per `(name, image)` pair; `owner` is an
    /// optional owner reference (e.g. a ReplicaSet) as JSON.
    pub async fn create_pod(
        &self,
        namespace: &str,
        name: &str,
        containers: &[(&str, &str)],
        labels: &[(&str, &str)],
        owner: Option<Value>,
    ) -> Result<Pod, TestEnvError> {
        self.post_pod(None, namespace, name, containers, labels, owner)
            .await
    }

    /// Creates a pod as [`create_pod`](Self::create_pod) does, already bound to
    /// `node` (`spec.nodeName`, as the scheduler would set it). With a node made
    /// by [`create_node`](Self::create_node) the apiserver serves the pod's logs
    /// from [`set_container_logs`](Self::set_container_logs).
    pub async fn create_pod_on(
        &self,
        node: &str,
        namespace: &str,
        name: &str,
        containers: &[(&str, &str)],
        labels: &[(&str, &str)],
        owner: Option<Value>,
    ) -> Result<Pod, TestEnvError> {
        self.post_pod(Some(node), namespace, name, containers, labels, owner)
            .await
    }

    async fn post_pod(
        &self,
        node: Option<&str>,
        namespace: &str,
        name: &str,
        containers: &[(&str, &str)],
        labels: &[(&str, &str)],
        owner: Option<Value>,
    ) -> Result<Pod, TestEnvError> {
        let api: Api<Pod> = Api::namespaced(self.client().await?, namespace);
        let mut metadata = json!({
            "name": name,
            "labels": labels.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect::<serde_json::Map<_, _>>(),
        });
        if let Some(owner) = owner {
            metadata["ownerReferences"] = json!([owner]);
        }
        let mut spec = json!({"containers": containers.iter()
            .map(|(name, image)| json!({"name": name, "image": image})).collect::<Vec<_>>()});
        if let Some(node) = node {
            spec["nodeName"] = json!(node);
        }
        let body: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec,
        }))
        .map_err(|e| TestEnvError::io("building a pod")(std::io::Error::other(e)))?;
        api.create(&PostParams::default(), &body)
            .await
            .map_err(TestEnvError::kube(format!(
                "creating pod {namespace}/{name}"
            )))
    }

    /// Sets a pod's status through the status subresource.
    pub async fn set_pod_state(
        &self,
        namespace: &str,
        name: &str,
        state: &PodState,
    ) -> Result<Pod, TestEnvError> {
        let api: Api<Pod> = Api::namespaced(self.client().await?, namespace);
        let pod = api.get(name).await.map_err(TestEnvError::kube(format!(
            "reading pod {namespace}/{name}"
        )))?;
        let containers: Vec<(String, String)> = pod
            .spec
            .iter()
            .flat_map(|spec| &spec.containers)
            .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
            .collect();
        let status = json!({"status": state.status(&containers)});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .map_err(TestEnvError::kube(format!(
                "setting status of pod {namespace}/{name}"
            )))
    }

    /// Emits a Warning event about a pod, as the kubelet or scheduler would.
    pub async fn warning_event(
        &self,
        namespace: &str,
        pod: &str,
        reason: &str,
        message: &str,
    ) -> Result<Event, TestEnvError> {
        let api: Api<Event> = Api::namespaced(self.client().await?, namespace);
        let now = now();
        let body: Event = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": format!("{pod}.")},
            "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": pod},
            "reason": reason, "message": message, "type": "Warning", "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": "kubelet", "host": "testenv"},
            "reportingComponent": "kubelet", "reportingInstance": "testenv",
        }))
        .map_err(|e| TestEnvError::io("building an event")(std::io::Error::other(e)))?;
        api.create(&PostParams::default(), &body)
            .await
            .map_err(TestEnvError::kube(format!(
                "creating an event for {namespace}/{pod}"
            )))
    }
}

/// The current time in RFC 3339, as Kubernetes writes timestamps.
fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|b| format!("{:x}", b % 16)).collect()
}

/// An application's worth of objects for benchmarks: `namespaces`
/// namespaces `bench-<n>`, each with `per_kind` ConfigMaps, Secrets,
/// ServiceAccounts and Services `app-<i>` and the first `deployments` of
/// their Deployments (each using its ServiceAccount and ConfigMap). The
/// Namespaces come first, each before its objects.
pub fn bench_workloads(namespaces: usize, per_kind: usize, deployments: usize) -> Vec<Value> {
    let mut objects = Vec::new();
    for n in 0..namespaces {
        let ns = format!("bench-{n}");
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        for i in 0..per_kind {
            let name = format!("app-{i}");
            let meta =
                json!({"name": name, "namespace": ns, "labels": {"app": name, "team": "bench"}});
            objects.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
                "data": {"settings.yaml": format!("replicas: {i}\nmode: fast\n"), "LOG_LEVEL": "info"}}));
            objects.push(
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
                "stringData": {"password": format!("not-a-secret-{i}")}}),
            );
            objects.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}));
            objects.push(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta,
                "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}));
            if i < deployments {
                objects.push(
                    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
                    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                        "template": {"metadata": {"labels": {"app": name}}, "spec": {
                            "serviceAccountName": name,
                            "containers": [{"name": "app", "image": "nginx:1.27",
                                "ports": [{"containerPort": 8080}],
                                "envFrom": [{"configMapRef": {"name": name}}],
                                "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}}}]}}}}),
                );
            }
        }
    }
    objects
}

#[cfg(test)]
mod tests {
    use super::*;

    fn containers() -> Vec<(String, String)> {
        vec![("app".into(), "example/app:1".into())]
    }

    #[test]
    fn crash_loop_status_has_waiting_reason_and_last_exit() {
        let status = PodState::crash_loop(4, 2).status(&containers());
        let c = &status["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(c["lastState"]["terminated"]["exitCode"], 2);
        assert_eq!(c["restartCount"], 4);
        assert_eq!(status["phase"], "Running");
    }

    #[test]
    fn oom_killed_is_exit_137_and_evicted_is_failed() {
        let oom = PodState::oom_killed(1).status(&containers());
        assert_eq!(
            oom["containerStatuses"][0]["state"]["terminated"]["reason"],
            "OOMKilled"
        );
        assert_eq!(
            oom["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            137
        );
        let evicted = PodState::evicted().status(&containers());
        assert_eq!(
            (evicted["phase"].as_str(), evicted["reason"].as_str()),
            (Some("Failed"), Some("Evicted"))
        );
    }

    #[test]
    fn provider_ids_name_their_cloud() {
        for (cloud, prefix) in [
            (ProviderCloud::Aks, "azure://"),
            (ProviderCloud::Gke, "gce://"),
            (ProviderCloud::Eks, "aws://"),
        ] {
            assert!(
                cloud.provider_id("n1").unwrap().starts_with(prefix),
                "{cloud:?}"
            );
        }
        assert_eq!(ProviderCloud::None.provider_id("n1"), None);
    }
}

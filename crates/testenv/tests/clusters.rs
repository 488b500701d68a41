//! The harness itself, against real kube-apiserver + etcd processes.

use std::path::PathBuf;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, LogParams, Patch, PatchParams};
use pilothouse_testenv::{
    ClusterOptions, FakeNode, PodState, ProviderCloud, TestCluster, start_fleet,
};
use serde_json::json;

fn kubectl_namespaces(cluster: &TestCluster) -> Vec<String> {
    let output = cluster
        .kubectl()
        .args(["get", "ns", "-o", "jsonpath={.items[*].metadata.name}"])
        .output()
        .expect(
            "kubectl must be installed (it ships with Kubernetes; e.g. `apt-get install kubectl`)",
        );
    assert!(
        output.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn two_clusters_are_isolated_from_each_other() {
    let fleet = start_fleet(&["alpha", "beta"]).await.unwrap();
    let (alpha, beta) = (&fleet[0], &fleet[1]);
    alpha.create_namespace("only-in-alpha").await.unwrap();
    let beta_client = beta.client().await.unwrap();
    Api::<Namespace>::all(beta_client)
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "only-in-beta"}})).unwrap(),
        )
        .await
        .unwrap();

    let in_alpha = kubectl_namespaces(alpha);
    let in_beta = kubectl_namespaces(beta);
    assert!(
        in_alpha.contains(&"only-in-alpha".to_owned()),
        "{in_alpha:?}"
    );
    assert!(
        !in_alpha.contains(&"only-in-beta".to_owned()),
        "{in_alpha:?}"
    );
    assert!(in_beta.contains(&"only-in-beta".to_owned()), "{in_beta:?}");
    assert!(
        !in_beta.contains(&"only-in-alpha".to_owned()),
        "{in_beta:?}"
    );
    assert_ne!(alpha.server_url(), beta.server_url());
}

#[tokio::test]
async fn pod_status_set_by_a_test_reads_back_through_kube() {
    let cluster = TestCluster::start("pods").await.unwrap();
    cluster.create_namespace("apps").await.unwrap();
    cluster
        .create_pod(
            "apps",
            "web-1",
            &[("web", "nginx:1.27")],
            &[("app", "web")],
            None,
        )
        .await
        .unwrap();
    cluster
        .set_pod_state("apps", "web-1", &PodState::crash_loop(5, 1))
        .await
        .unwrap();

    let pod = Api::<Pod>::namespaced(cluster.client().await.unwrap(), "apps")
        .get("web-1")
        .await
        .unwrap();
    let status = pod.status.unwrap();
    let container = &status.container_statuses.unwrap()[0];
    assert_eq!(container.restart_count, 5);
    let waiting = container.state.as_ref().unwrap().waiting.as_ref().unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    let last = container
        .last_state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .unwrap();
    assert_eq!(last.exit_code, 1);

    // every state the helpers offer is accepted by the real apiserver's validation
    let states = [
        PodState::waiting("ImagePullBackOff", "Back-off pulling image"),
        PodState::waiting("ErrImagePull", "manifest unknown"),
        PodState::waiting("CreateContainerConfigError", "secret \"db\" not found"),
        PodState::oom_killed(2),
        PodState::error(3, 1),
        PodState::running(),
    ];
    for (i, state) in states.iter().enumerate() {
        let name = format!("p{i}");
        cluster
            .create_pod("apps", &name, &[("c", "busybox:1.36")], &[], None)
            .await
            .unwrap();
        let pod = cluster.set_pod_state("apps", &name, state).await.unwrap();
        assert_eq!(
            serde_json::to_value(pod.status.unwrap()).unwrap()["containerStatuses"][0]["name"],
            "c"
        );
    }
    for (name, state, phase) in [
        ("pending", PodState::unschedulable(), "Pending"),
        ("evicted", PodState::evicted(), "Failed"),
    ] {
        cluster
            .create_pod("apps", name, &[("c", "busybox:1.36")], &[], None)
            .await
            .unwrap();
        let pod = cluster.set_pod_state("apps", name, &state).await.unwrap();
        assert_eq!(pod.status.unwrap().phase.as_deref(), Some(phase));
    }
    let event = cluster
        .warning_event(
            "apps",
            "web-1",
            "BackOff",
            "Back-off restarting failed container",
        )
        .await
        .unwrap();
    assert_eq!(event.type_.as_deref(), Some("Warning"));
}

#[tokio::test]
async fn nodes_carry_their_cloud_and_readiness() {
    let cluster = TestCluster::start("nodes").await.unwrap();
    let node = cluster
        .create_node(&FakeNode::ready("aks-1", ProviderCloud::Aks))
        .await
        .unwrap();
    assert!(
        node.spec
            .unwrap()
            .provider_id
            .unwrap()
            .starts_with("azure://")
    );
    let node = cluster
        .set_node_conditions("aks-1", false, &["DiskPressure"])
        .await
        .unwrap();
    let conditions = node.status.unwrap().conditions.unwrap();
    let status_of = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == kind)
            .map(|c| c.status.clone())
    };
    assert_eq!(status_of("Ready").as_deref(), Some("False"));
    assert_eq!(status_of("DiskPressure").as_deref(), Some("True"));
    assert_eq!(status_of("MemoryPressure").as_deref(), Some("False"));
    let taints = node.spec.unwrap().taints.unwrap_or_default();
    assert!(
        taints
            .iter()
            .any(|t| t.key == "node.kubernetes.io/not-ready"),
        "{taints:?}"
    );
    let node = cluster.set_node_ready("aks-1", true).await.unwrap();
    assert!(node.spec.unwrap().taints.unwrap_or_default().is_empty());
}

/// Reads a container's log through the apiserver's `pods/{pod}/log`.
async fn read_logs(
    cluster: &TestCluster,
    namespace: &str,
    pod: &str,
    params: LogParams,
) -> Result<String, kube::Error> {
    Api::<Pod>::namespaced(cluster.client().await.unwrap(), namespace)
        .logs(pod, &params)
        .await
}

#[tokio::test]
async fn container_logs_are_served_through_the_apiserver() {
    let cluster = TestCluster::start("logs").await.unwrap();
    cluster
        .create_node(&FakeNode::ready("node-1", ProviderCloud::None))
        .await
        .unwrap();
    cluster.create_namespace("apps").await.unwrap();
    let pod = cluster
        .create_pod_on(
            "node-1",
            "apps",
            "web-1",
            &[("web", "nginx:1.27"), ("sidecar", "busybox:1.36")],
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(pod.spec.unwrap().node_name.as_deref(), Some("node-1"));
    let current: String = (1..=100).map(|i| format!("line {i}\n")).collect();
    cluster.set_container_logs("apps", "web-1", "web", false, &current);
    cluster.set_container_logs("apps", "web-1", "web", true, "panic: out of cheese\n");
    let web = |tail_lines, previous, limit_bytes| LogParams {
        container: Some("web".to_owned()),
        tail_lines,
        previous,
        limit_bytes,
        ..LogParams::default()
    };

    let last_50 = read_logs(&cluster, "apps", "web-1", web(Some(50), false, None))
        .await
        .unwrap();
    let expected: String = (51..=100).map(|i| format!("line {i}\n")).collect();
    assert_eq!(last_50, expected);
    let all = read_logs(&cluster, "apps", "web-1", web(None, false, None))
        .await
        .unwrap();
    assert_eq!(all, current);
    let capped = read_logs(&cluster, "apps", "web-1", web(Some(50), false, Some(20)))
        .await
        .unwrap();
    assert_eq!(capped, "line 51\nline 52\nline");
    let previous = read_logs(&cluster, "apps", "web-1", web(Some(50), true, None))
        .await
        .unwrap();
    assert_eq!(previous, "panic: out of cheese\n");

    // a container whose log was never set: the kubelet's kind of refusal
    let sidecar = LogParams {
        container: Some("sidecar".to_owned()),
        ..LogParams::default()
    };
    let Err(kube::Error::Api(status)) = read_logs(&cluster, "apps", "web-1", sidecar).await else {
        panic!("logs of a container never set must fail");
    };
    assert_eq!(status.code, 400, "{status:?}");
    assert!(
        status
            .message
            .contains("container \"sidecar\" in pod \"web-1\"")
            && status.message.contains("set_container_logs"),
        "{status:?}"
    );
    cluster.set_container_logs("apps", "web-1", "sidecar", false, "ready\n");
    let sidecar_previous = LogParams {
        container: Some("sidecar".to_owned()),
        previous: true,
        ..LogParams::default()
    };
    let Err(kube::Error::Api(status)) =
        read_logs(&cluster, "apps", "web-1", sidecar_previous).await
    else {
        panic!("previous logs never set must fail");
    };
    assert!(
        status
            .message
            .contains("previous terminated container \"sidecar\" in pod \"web-1\" not found"),
        "{status:?}"
    );

    // kubectl reaches the same endpoint (the server answers on its own runtime,
    // so this blocking call cannot starve it)
    let output = cluster
        .kubectl()
        .args(["logs", "-n", "apps", "web-1", "-c", "web", "--tail=2"])
        .output()
        .expect(
            "kubectl must be installed (it ships with Kubernetes; e.g. `apt-get install kubectl`)",
        );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "line 99\nline 100\n",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn server_side_apply_records_managed_fields() {
    let cluster = TestCluster::start("ssa").await.unwrap();
    cluster.create_namespace("apps").await.unwrap();
    let api: Api<Deployment> = Api::namespaced(cluster.client().await.unwrap(), "apps");
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
    });
    let applied = api
        .patch(
            "web",
            &PatchParams::apply("pilothouse").force(),
            &Patch::Apply(&deployment),
        )
        .await
        .unwrap();
    let managed = applied.metadata.managed_fields.unwrap();
    let ours = managed
        .iter()
        .find(|m| m.manager.as_deref() == Some("pilothouse"))
        .expect("an entry for the field manager");
    assert_eq!(ours.operation.as_deref(), Some("Apply"));
    let fields = serde_json::to_string(&ours.fields_v1).unwrap();
    assert!(fields.contains("f:replicas"), "{fields}");
    assert!(fields.contains("k:{\\\"name\\\":\\\"web\\\"}"), "{fields}");
}

#[tokio::test]
async fn dropping_a_cluster_stops_its_processes_and_removes_its_files() {
    let cluster = TestCluster::start("teardown").await.unwrap();
    let kubeconfig: PathBuf = cluster.kubeconfig_path();
    let kubelet_port = cluster.kubelet_port();
    assert!(std::net::TcpStream::connect(("127.0.0.1", kubelet_port)).is_ok());
    let dir = kubeconfig.parent().unwrap().to_owned();
    assert!(kubeconfig.exists());
    let pids = std::fs::read_to_string(dir.join("children.pid")).unwrap();
    assert_eq!(pids.lines().count(), 2, "etcd and kube-apiserver: {pids}");
    assert!(cluster.apiserver_memory_bytes().unwrap() > 10 << 20);
    assert!(cluster.log_tails(5).contains("kube-apiserver log"));
    drop(cluster);
    assert!(!dir.exists(), "{} still exists", dir.display());
    for pid in pids.lines() {
        assert!(
            !PathBuf::from(format!("/proc/{pid}")).exists(),
            "process {pid} still runs"
        );
    }
    // the fake kubelet's log server stops in the background
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", kubelet_port)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the log server on port {kubelet_port} still answers"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_stopped_apiserver_comes_back_with_its_data() {
    let mut cluster = TestCluster::start("restart").await.unwrap();
    cluster.create_namespace("kept").await.unwrap();
    cluster.stop_apiserver();
    let client = cluster.client().await.unwrap();
    assert!(Api::<Namespace>::all(client).get("kept").await.is_err());
    cluster.restart_apiserver().await.unwrap();
    let client = cluster.client().await.unwrap();
    assert!(Api::<Namespace>::all(client).get("kept").await.is_ok());
}

#[tokio::test]
async fn live_mode_rolls_out_a_deployment_and_serves_its_logs() {
    let cluster = TestCluster::start_with(ClusterOptions::live("live"))
        .await
        .unwrap();
    cluster
        .create_node(&FakeNode::ready("node-1", ProviderCloud::Gke))
        .await
        .unwrap();
    cluster.create_namespace("apps").await.unwrap();
    let client = cluster.client().await.unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
    });
    api.patch(
        "web",
        &PatchParams::apply("test"),
        &Patch::Apply(&deployment),
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let status = api.get("web").await.unwrap().status.unwrap_or_default();
        if status.available_replicas == Some(2) && status.updated_replicas == Some(2) {
            break;
        }
        if std::time::Instant::now() > deadline {
            let pods = cluster
                .kubectl()
                .args(["get", "pods", "-A", "-o", "yaml"])
                .output()
                .unwrap();
            panic!(
                "not rolled out: {status:?}\n{}",
                String::from_utf8_lossy(&pods.stdout)
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let pods = Api::<Pod>::namespaced(client, "apps")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 2);
    for pod in &pods.items {
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.node_name.as_deref(), Some("node-1"));
        assert_eq!(
            pod.status.as_ref().unwrap().phase.as_deref(),
            Some("Running")
        );
    }

    // the scheduler bound the pods to the fake node, whose kubelet endpoint is
    // the log server
    let name = pods.items[0].metadata.name.clone().unwrap();
    cluster.set_container_logs("apps", &name, "web", false, "started\nserving\n");
    let logs = read_logs(
        &cluster,
        "apps",
        &name,
        LogParams {
            tail_lines: Some(1),
            ..LogParams::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(logs, "serving\n");
}

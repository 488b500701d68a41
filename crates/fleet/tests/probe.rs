//! Probes against real kube-apiservers started by testenv (and against ports
//! where nothing, or nothing useful, listens).

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, PostParams};
use pilothouse_fleet::{
    ExecServerPattern, KubeconfigPolicy, ProbeError, ValidatedKubeconfig, client_for, probe,
    validate_kubeconfig,
};
use pilothouse_testenv::{Binaries, FakeNode, ProviderCloud, TestCluster, start_fleet};
use pilothouse_types::Cloud;
use serde_json::json;

/// Generous: the machine running the tests may be busy.
const TIMEOUT: Duration = Duration::from_secs(20);

fn validated(yaml: &str) -> ValidatedKubeconfig {
    validate_kubeconfig(yaml, None, &KubeconfigPolicy::default())
        .unwrap_or_else(|error| panic!("testenv's kubeconfig must validate: {error}"))
}

fn kubernetes_version() -> String {
    Binaries::locate()
        .expect("test binaries (run scripts/install-test-binaries.sh)")
        .kubernetes_version
}

/// A kubeconfig whose server is `server`, trusting a throwaway self-signed
/// certificate, with a token user (no cluster needed: nothing gets that far).
fn kubeconfig_for(server: &str, user: &str) -> String {
    let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("a self-signed certificate")
        .cert
        .pem();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: u\n  user:\n{user}contexts:\n- name: c\n  \
         context:\n    cluster: c\n    user: u\ncurrent-context: c\n",
        ca = BASE64.encode(ca),
    )
}

fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// The token kubeconfig of `cluster`, impersonating `user`.
fn impersonating(cluster: &TestCluster, user: &str) -> String {
    let token_line = format!("    token: {}\n", cluster.admin_token());
    let yaml = cluster.token_kubeconfig_yaml();
    assert!(
        yaml.contains(&token_line),
        "testenv's token kubeconfig changed shape"
    );
    yaml.replace(&token_line, &format!("{token_line}    as: {user}\n"))
}

#[tokio::test]
async fn a_bare_cluster_answers_with_x509_and_token_credentials_and_rejects_a_wrong_token() {
    let cluster = TestCluster::start("probe-basic").await.unwrap();
    for (what, yaml) in [
        ("x509", cluster.kubeconfig_yaml()),
        ("token", cluster.token_kubeconfig_yaml()),
    ] {
        let found = probe(&validated(yaml), TIMEOUT)
            .await
            .unwrap_or_else(|error| panic!("{what}: {error}"));
        assert_eq!(found.kubernetes_version, kubernetes_version(), "{what}");
        assert_eq!(found.kubernetes_version, "v1.35.4", "{what}");
        assert_eq!(found.provider_ids, Vec::<String>::new(), "{what}");
        assert_eq!(found.detected_cloud, None, "{what}");
    }

    let wrong = "wrong-token-0123456789abcdef";
    let yaml = cluster
        .token_kubeconfig_yaml()
        .replace(cluster.admin_token(), wrong);
    let error = probe(&validated(&yaml), TIMEOUT).await.unwrap_err();
    assert_eq!(error, ProbeError::Unauthorized);
    assert!(!format!("{error} {error:?}").contains(wrong));

    // a server whose certificate the kubeconfig's CA did not sign
    let stranger = kubeconfig_for(cluster.server_url(), "    token: some-token\n");
    match probe(&validated(&stranger), TIMEOUT).await.unwrap_err() {
        ProbeError::Unreachable { message } => {
            assert!(message.contains("certificate"), "{message}")
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }

    // a client for the same credentials works on its own too
    let client = client_for(&validated(cluster.kubeconfig_yaml()), TIMEOUT)
        .await
        .unwrap();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.git_version, kubernetes_version());
}

#[tokio::test]
async fn rbac_decides_between_forbidden_and_a_probe_without_provider_ids() {
    let cluster = TestCluster::start("probe-rbac").await.unwrap();
    cluster
        .create_node(&FakeNode::ready("n1", ProviderCloud::Gke))
        .await
        .unwrap();
    let admin = cluster.client().await.unwrap();
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": "namespace-lister"},
        "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]}],
    }))
    .unwrap();
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "namespace-lister"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "namespace-lister"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "lister"}],
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    // the authorizer learns of the binding through its own watch: wait
    // until it allows what the binding grants
    allowed_to_list_namespaces(&admin, "lister").await;

    // may list namespaces but not nodes: a probe, without provider IDs
    let found = probe(&validated(&impersonating(&cluster, "lister")), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(found.provider_ids, Vec::<String>::new());
    assert_eq!(found.detected_cloud, None);

    // may not even list namespaces
    let error = probe(&validated(&impersonating(&cluster, "nobody")), TIMEOUT)
        .await
        .unwrap_err();
    match &error {
        ProbeError::Forbidden { message } => {
            assert!(message.contains("namespaces"), "{message}");
            assert!(!message.contains(cluster.admin_token()), "{message}");
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }

    // the admin sees the node
    let found = probe(&validated(cluster.kubeconfig_yaml()), TIMEOUT)
        .await
        .unwrap();
    assert_eq!(found.detected_cloud, Some(Cloud::Gke));
}

#[tokio::test]
async fn the_cloud_is_detected_from_node_provider_ids() {
    let fleet = start_fleet(&["probe-aks", "probe-gke", "probe-eks"])
        .await
        .unwrap();
    let expected = [
        (ProviderCloud::Aks, Cloud::Aks),
        (ProviderCloud::Gke, Cloud::Gke),
        (ProviderCloud::Eks, Cloud::Eks),
    ];
    for (cluster, (provider, cloud)) in fleet.iter().zip(expected) {
        cluster
            .create_node(&FakeNode::ready("plain", ProviderCloud::None))
            .await
            .unwrap();
        for name in ["n1", "n2"] {
            cluster
                .create_node(&FakeNode::ready(name, provider))
                .await
                .unwrap();
        }
        let found = probe(&validated(cluster.token_kubeconfig_yaml()), TIMEOUT)
            .await
            .unwrap_or_else(|error| panic!("{}: {error}", cluster.name()));
        assert_eq!(found.detected_cloud, Some(cloud), "{}", cluster.name());
        let mut ids = found.provider_ids.clone();
        ids.sort();
        let mut want: Vec<String> = ["n1", "n2"]
            .iter()
            .filter_map(|name| provider.provider_id(name))
            .collect();
        want.sort();
        assert_eq!(ids, want, "{}", cluster.name());
    }
}

#[tokio::test]
async fn a_stopped_apiserver_is_reported_within_the_timeout() {
    let mut cluster = TestCluster::start("probe-stopped").await.unwrap();
    let kubeconfig = validated(cluster.kubeconfig_yaml());
    probe(&kubeconfig, TIMEOUT).await.unwrap();
    cluster.stop_apiserver();

    let timeout = Duration::from_secs(3);
    let started = Instant::now();
    let error = probe(&kubeconfig, timeout).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            error,
            ProbeError::Unreachable { .. } | ProbeError::Timeout { .. }
        ),
        "{error:?}"
    );
    assert!(took < timeout * 3, "took {took:?}");

    cluster.restart_apiserver().await.unwrap();
    probe(&kubeconfig, TIMEOUT).await.unwrap();
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    let server = format!("https://127.0.0.1:{}", closed_port());
    let kubeconfig = validated(&kubeconfig_for(&server, "    token: some-token\n"));
    let error = probe(&kubeconfig, TIMEOUT).await.unwrap_err();
    match &error {
        ProbeError::Unreachable { message } => {
            assert!(message.to_lowercase().contains("refused"), "{message}")
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("https://{}", listener.local_addr().unwrap());
    // accept connections and keep them open without a word
    let holder = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    let kubeconfig = validated(&kubeconfig_for(&server, "    token: some-token\n"));
    let timeout = Duration::from_secs(2);
    let started = Instant::now();
    let error = probe(&kubeconfig, timeout).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(error, ProbeError::Timeout { after: timeout });
    assert!(took < timeout * 3, "took {took:?}");
    holder.abort();
}

#[tokio::test]
async fn a_failing_exec_plugin_is_a_config_error_that_keeps_its_secrets() {
    let secret = "s3cr3t-client-secret-0123456789";
    let user = |command: &str| {
        format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: \"{command}\"\n      \
             env:\n      - name: AAD_SERVICE_PRINCIPAL_CLIENT_SECRET\n        value: {secret}\n"
        )
    };
    let server = format!("https://127.0.0.1:{}", closed_port());
    let policy = KubeconfigPolicy {
        allowed_exec_commands: vec!["false".into(), "true".into(), "no-such-plugin".into()],
        exec_server_patterns: ["false", "true", "no-such-plugin"]
            .iter()
            .map(|plugin| ExecServerPattern::new(plugin, &server).unwrap())
            .collect(),
    };
    for (command, expected) in [
        ("false", "failed"),
        ("true", "no usable credentials"),
        ("no-such-plugin", "cannot start"),
    ] {
        let kubeconfig =
            validate_kubeconfig(&kubeconfig_for(&server, &user(command)), None, &policy).unwrap();
        assert_eq!(kubeconfig.exec_command.as_deref(), Some(command));
        let error = probe(&kubeconfig, TIMEOUT).await.unwrap_err();
        match &error {
            ProbeError::Config { message } => {
                assert!(message.contains(expected), "{command}: {message}");
                assert!(message.contains(command), "{command}: {message}");
            }
            other => panic!("{command}: expected Config, got {other:?}"),
        }
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(!shown.contains("KUBERNETES_EXEC_INFO"), "{shown}");
    }
}

/// Waits until the API server's authorizer lets `user` list namespaces (a
/// SubjectAccessReview says so).
async fn allowed_to_list_namespaces(admin: &kube::Client, user: &str) {
    use k8s_openapi::api::authorization::v1::SubjectAccessReview;
    let reviews: Api<SubjectAccessReview> = Api::all(admin.clone());
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "spec": {"user": user, "resourceAttributes": {"verb": "list", "resource": "namespaces"}},
    }))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .unwrap();
        if answer.status.is_some_and(|status| status.allowed) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user} is never allowed to list namespaces"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! The background checker against a real cluster and a real store: a cluster
//! whose apiserver stops is marked unreachable with a growing failure count,
//! comes back after a restart, and the loop stops when told to.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pilothouse_fleet::{CheckSettings, KubeconfigPolicy, run_checks, validate_kubeconfig};
use pilothouse_store::{
    Cloud, CloudSource, Cluster, MasterKey, NewCluster, Reachability, Store,
    cluster_credentials_context,
};
use pilothouse_testenv::TestCluster;

async fn wait_for(store: &Store, what: &str, done: impl Fn(&Cluster) -> bool) -> Cluster {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let cluster = store.get_cluster("edge").await.unwrap().unwrap();
        if done(&cluster) {
            return cluster;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {cluster:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_checker_marks_a_dead_cluster_unreachable_and_sees_it_recover() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("pilothouse.db"))
        .await
        .unwrap();
    let key = Arc::new(MasterKey::generate().unwrap());
    let policy = Arc::new(KubeconfigPolicy::default());
    let mut cluster = TestCluster::start("checked").await.unwrap();
    let kubeconfig = validate_kubeconfig(cluster.token_kubeconfig_yaml(), None, &policy).unwrap();
    store
        .insert_cluster(&NewCluster {
            name: "edge".into(),
            cloud: Cloud::Other,
            cloud_source: CloudSource::Default,
            server_url: kubeconfig.server_url.clone(),
            context: kubeconfig.context.clone(),
            labels: Default::default(),
            kubernetes_version: None,
            credentials: key
                .seal(
                    kubeconfig.minimized_yaml.as_bytes(),
                    &cluster_credentials_context("edge"),
                )
                .unwrap(),
            check: None,
            sync_mode: pilothouse_store::SyncMode::Manual,
        })
        .await
        .unwrap();

    let settings = CheckSettings {
        timeout: Duration::from_secs(2),
        interval: Duration::from_millis(500),
        ..CheckSettings::default()
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let checker = tokio::spawn(run_checks(
        store.clone(),
        Arc::clone(&key),
        Arc::clone(&policy),
        settings,
        Duration::from_millis(100),
        stopped,
    ));

    let up = wait_for(&store, "the first check", |c| {
        c.reachability == Reachability::Reachable
    })
    .await;
    assert_eq!(up.kubernetes_version.as_deref(), Some("v1.35.4"));

    cluster.stop_apiserver();
    let down = wait_for(&store, "unreachable", |c| c.consecutive_failures >= 2).await;
    assert_eq!(down.reachability, Reachability::Unreachable);
    assert!(down.last_error.as_deref().is_some_and(|e| !e.is_empty()));
    // backoff: the next check is further away than the interval
    assert!(
        down.next_check_at.unwrap() - down.last_check_at.unwrap() >= 1000,
        "{down:?}"
    );

    cluster.restart_apiserver().await.unwrap();
    let back = wait_for(&store, "recovery", |c| {
        c.reachability == Reachability::Reachable
    })
    .await;
    assert_eq!(back.consecutive_failures, 0);
    assert_eq!(back.last_error, None);

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), checker)
        .await
        .expect("the checker stops when told")
        .unwrap();
}

//! Connectivity checks through the real service: the background checker
//! marks a cluster whose apiserver stops unreachable with a growing failure
//! count and a backed-off next check, sees it recover after a restart, and
//! an on-demand check records at once; all against a real apiserver.

mod support;

use pilothouse_testenv::{FakeNode, ProviderCloud, TestCluster};
use support::*;

#[tokio::test]
async fn the_checker_marks_a_dead_cluster_unreachable_and_sees_it_recover() {
    let repo = Repo::new(small_state);
    let mut cluster = TestCluster::start("checked").await.unwrap();
    cluster
        .create_node(&FakeNode::ready("n1", ProviderCloud::Eks))
        .await
        .unwrap();
    let server = serve(
        &repo,
        &["--check-interval", "500ms", "--check-timeout", "2s"],
    );
    server.register("edge", &cluster, "other", &["--sync-mode", "manual"]);
    let up = server
        .wait_cluster("edge", "a check", |c| c["reachability"] == "reachable")
        .await;
    assert_eq!(up["kubernetes_version"], "v1.35.4", "{up}");

    cluster.stop_apiserver();
    let down = server
        .wait_cluster("edge", "two failed checks", |c| {
            c["consecutive_failures"].as_u64() >= Some(2)
        })
        .await;
    assert_eq!(down["reachability"], "unreachable", "{down}");
    assert!(
        down["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{down}"
    );
    // backoff: the next check is further away than the interval
    let at = |field: &str| {
        down[field]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
            .unwrap_or_else(|| panic!("{field}: {down}"))
    };
    let wait = at("next_check_at").duration_since(at("last_check_at"));
    assert!(wait >= jiff::SignedDuration::from_secs(1), "{down}");

    // an on-demand check records at once
    let (status, checked) = server
        .call("POST", "/api/v1/clusters/edge/check", None)
        .await;
    assert_eq!(status, 200, "{checked}");
    assert_eq!(checked["reachability"], "unreachable");
    assert!(
        checked["consecutive_failures"].as_u64() > down["consecutive_failures"].as_u64(),
        "{checked}"
    );

    cluster.restart_apiserver().await.unwrap();
    let back = server
        .wait_cluster("edge", "recovery", |c| c["reachability"] == "reachable")
        .await;
    assert_eq!(back["consecutive_failures"], 0, "{back}");
    assert_eq!(back["last_error"], serde_json::Value::Null, "{back}");
}

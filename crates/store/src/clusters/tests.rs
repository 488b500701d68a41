//! Tests of the cluster registry, against real SQLite files.

use std::collections::BTreeSet;
use std::time::Instant;

use sqlx::Row;

use crate::fixture::{Fixture, db_files, file_contains, labels};
use crate::*;

#[tokio::test]
async fn clusters_are_inserted_read_updated_and_deleted() {
    let f = Fixture::new().await;
    let mut new = f.cluster("prod-eu");
    new.cloud = Cloud::Aks;
    new.cloud_source = CloudSource::Detected;
    new.labels = labels(&[("env", "prod")]);
    new.kubernetes_version = Some("v1.30.0".into());
    let inserted = f.store.insert_cluster(&new).await.unwrap();
    assert_eq!(inserted.name, "prod-eu");
    assert_eq!(inserted.cloud, Cloud::Aks);
    assert_eq!(inserted.cloud_source, CloudSource::Detected);
    assert_eq!(inserted.server_url, "https://prod-eu.example:6443");
    assert_eq!(inserted.context, "prod-eu-context");
    assert_eq!(inserted.labels, labels(&[("env", "prod")]));
    assert_eq!(inserted.kubernetes_version.as_deref(), Some("v1.30.0"));
    assert_eq!(inserted.reachability, Reachability::Unknown);
    assert_eq!(inserted.next_check_at, None);
    assert_eq!(inserted.consecutive_failures, 0);
    assert!(inserted.created_at > 1_600_000_000_000);
    assert_eq!(inserted.created_at, inserted.updated_at);

    assert_eq!(
        f.store.get_cluster("prod-eu").await.unwrap().as_ref(),
        Some(&inserted)
    );
    assert_eq!(f.store.get_cluster("nope").await.unwrap(), None);

    // The serialised form has no credentials.
    let json = serde_json::to_value(&inserted).unwrap();
    assert!(json.get("credentials").is_none(), "{json}");
    assert_eq!(json["cloud"], "aks");
    assert_eq!(json["cloud_source"], "detected");
    assert_eq!(json["reachability"], "unknown");

    let sealed = f
        .store
        .cluster_credentials("prod-eu")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cluster_credentials_context("prod-eu"), "cluster:prod-eu");
    assert_eq!(sealed, new.credentials);
    assert_eq!(
        f.key.open(&sealed, "cluster:prod-eu").unwrap(),
        b"kubeconfig of prod-eu"
    );
    assert_eq!(f.store.cluster_credentials("nope").await.unwrap(), None);

    // Labels are replaced wholesale; setting the cloud declares it.
    let update = ClusterUpdate {
        labels: Some(labels(&[("team", "sre")])),
        cloud: None,
        sync_mode: None,
        incident_settings: None,
    };
    let updated = f
        .store
        .update_cluster("prod-eu", &update)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.labels, labels(&[("team", "sre")]));
    assert_eq!(updated.cloud, Cloud::Aks);
    assert_eq!(updated.cloud_source, CloudSource::Detected);
    assert!(updated.updated_at >= inserted.updated_at);

    let update = ClusterUpdate {
        labels: None,
        cloud: Some(Cloud::Gke),
        sync_mode: None,
        incident_settings: None,
    };
    let updated = f
        .store
        .update_cluster("prod-eu", &update)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.labels, labels(&[("team", "sre")]));
    assert_eq!(updated.cloud, Cloud::Gke);
    assert_eq!(updated.cloud_source, CloudSource::Declared);

    let unchanged = f
        .store
        .update_cluster("prod-eu", &ClusterUpdate::default())
        .await
        .unwrap();
    assert_eq!(unchanged, Some(updated));
    assert_eq!(f.store.update_cluster("nope", &update).await.unwrap(), None);

    // New credentials replace the old ones.
    let rotated = f.key.seal(b"new kubeconfig", "cluster:prod-eu").unwrap();
    f.store
        .set_cluster_credentials("prod-eu", &rotated)
        .await
        .unwrap();
    assert_eq!(
        f.store.cluster_credentials("prod-eu").await.unwrap(),
        Some(rotated.clone())
    );
    let err = f
        .store
        .set_cluster_credentials("nope", &rotated)
        .await
        .unwrap_err();
    assert!(matches!(&err, StoreError::NotFound { what } if what == "cluster `nope`"));

    assert!(f.store.delete_cluster("prod-eu").await.unwrap());
    assert!(!f.store.delete_cluster("prod-eu").await.unwrap());
    assert_eq!(f.store.get_cluster("prod-eu").await.unwrap(), None);
}

#[tokio::test]
async fn duplicate_cluster_name_is_a_conflict() {
    let f = Fixture::new().await;
    f.insert("prod-eu").await;
    let err = f
        .store
        .insert_cluster(&f.cluster("prod-eu"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { what, .. } if what == "cluster `prod-eu`"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "cluster `prod-eu` already exists");
    // A different name is fine.
    f.insert("prod-us").await;
}

#[tokio::test]
async fn clusters_are_filtered_by_cloud_and_labels() {
    let f = Fixture::new().await;
    type Labels<'a> = &'a [(&'a str, &'a str)];
    let rows: [(&str, Cloud, Labels); 5] = [
        (
            "a",
            Cloud::Aks,
            &[("app.kubernetes.io/name", "web"), ("env", "prod")],
        ),
        (
            "b",
            Cloud::Gke,
            &[("app.kubernetes.io/name", "web"), ("env", "dev")],
        ),
        ("c", Cloud::Aks, &[("app.kubernetes.io/name", "db")]),
        // A key that looks like a JSON path must not match nested objects.
        ("d", Cloud::Eks, &[("app", "web"), ("we\"ird'key", "x")]),
        ("e", Cloud::Other, &[]),
    ];
    for (name, cloud, pairs) in rows {
        let mut new = f.cluster(name);
        new.cloud = cloud;
        new.labels = labels(pairs);
        f.store.insert_cluster(&new).await.unwrap();
    }
    let query = |cloud: Option<Cloud>, pairs: &[(&str, &str)]| ClusterQuery {
        cloud,
        labels: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..ClusterQuery::default()
    };

    assert_eq!(f.names(query(None, &[])).await, ["a", "b", "c", "d", "e"]);
    assert_eq!(f.names(query(Some(Cloud::Aks), &[])).await, ["a", "c"]);
    assert_eq!(f.names(query(Some(Cloud::Other), &[])).await, ["e"]);
    assert_eq!(
        f.names(query(None, &[("app.kubernetes.io/name", "web")]))
            .await,
        ["a", "b"]
    );
    assert_eq!(
        f.names(query(
            None,
            &[("app.kubernetes.io/name", "web"), ("env", "prod")]
        ))
        .await,
        ["a"],
        "all labels must match"
    );
    assert_eq!(
        f.names(query(
            Some(Cloud::Gke),
            &[("app.kubernetes.io/name", "web")]
        ))
        .await,
        ["b"]
    );
    assert_eq!(f.names(query(None, &[("app", "web")])).await, ["d"]);
    assert_eq!(f.names(query(None, &[("we\"ird'key", "x")])).await, ["d"]);
    assert!(
        f.names(query(None, &[("app.kubernetes.io", "web")]))
            .await
            .is_empty()
    );
    assert!(f.names(query(None, &[("env", "staging")])).await.is_empty());
    assert!(
        f.names(query(Some(Cloud::Eks), &[("env", "prod")]))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn pagination_visits_every_cluster_once_in_name_order() {
    let f = Fixture::new().await;
    // Inserted out of order, names of varying length.
    let mut expected = BTreeSet::new();
    for i in (0..250).rev() {
        let name = format!("c{}", i * 7 % 250);
        f.insert(&name).await;
        expected.insert(name);
    }

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = f
            .store
            .list_clusters(&ClusterQuery {
                after: after.clone(),
                limit: 100,
                ..ClusterQuery::default()
            })
            .await
            .unwrap();
        pages += 1;
        assert!(page.items.len() <= 100);
        seen.extend(page.items.iter().map(|c| c.name.clone()));
        match page.next {
            Some(next) => {
                assert_eq!(Some(&next), seen.last());
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected.into_iter().collect::<Vec<_>>());

    // Exactly a page's worth left: no empty trailing page.
    let page = f
        .store
        .list_clusters(&ClusterQuery {
            after: Some(seen[149].clone()),
            limit: 100,
            ..ClusterQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 100);
    assert_eq!(page.next, None);

    // The limit is clamped to 1..=500.
    let one = ClusterQuery {
        limit: 0,
        ..ClusterQuery::default()
    };
    let page = f.store.list_clusters(&one).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.next.as_deref(), Some(seen[0].as_str()));
    let all = ClusterQuery {
        limit: 10_000,
        ..ClusterQuery::default()
    };
    let page = f.store.list_clusters(&all).await.unwrap();
    assert_eq!(page.items.len(), 250);
    assert_eq!(page.next, None);
}

#[tokio::test]
async fn checks_are_recorded_and_drive_the_due_list_and_counts() {
    let f = Fixture::new().await;
    for name in ["a", "b", "c", "d"] {
        f.insert(name).await;
    }
    let mut registered = f.cluster("e");
    registered.check = Some(CheckRecord {
        reachable: true,
        kubernetes_version: Some("v1.31.2".into()),
        error: None,
        checked_at: 1_000,
        next_check_at: 61_000,
        consecutive_failures: 0,
    });
    let e = f.store.insert_cluster(&registered).await.unwrap();
    assert_eq!(e.reachability, Reachability::Reachable);
    assert_eq!(e.kubernetes_version.as_deref(), Some("v1.31.2"));
    assert_eq!(e.last_check_at, Some(1_000));
    assert_eq!(e.next_check_at, Some(61_000));

    let reachable = CheckRecord {
        reachable: true,
        kubernetes_version: Some("v1.30.1".into()),
        error: None,
        checked_at: 2_000,
        next_check_at: 62_000,
        consecutive_failures: 0,
    };
    f.store.record_check("a", &reachable).await.unwrap();
    let unreachable = CheckRecord {
        reachable: false,
        kubernetes_version: None,
        error: Some("connection refused".into()),
        checked_at: 3_000,
        next_check_at: 13_000,
        consecutive_failures: 3,
    };
    f.store.record_check("b", &unreachable).await.unwrap();
    // "a" becomes unreachable later: the last known version is kept.
    f.store
        .record_check(
            "a",
            &CheckRecord {
                checked_at: 70_000,
                next_check_at: 80_000,
                consecutive_failures: 1,
                ..unreachable.clone()
            },
        )
        .await
        .unwrap();

    let a = f.store.get_cluster("a").await.unwrap().unwrap();
    assert_eq!(a.reachability, Reachability::Unreachable);
    assert_eq!(a.kubernetes_version.as_deref(), Some("v1.30.1"));
    assert_eq!(a.last_error.as_deref(), Some("connection refused"));
    assert_eq!(a.last_check_at, Some(70_000));
    assert_eq!(a.next_check_at, Some(80_000));
    assert_eq!(a.consecutive_failures, 1);
    let b = f.store.get_cluster("b").await.unwrap().unwrap();
    assert_eq!(b.reachability, Reachability::Unreachable);
    assert_eq!(b.consecutive_failures, 3);

    // A success clears the error.
    f.store.record_check("b", &reachable).await.unwrap();
    let b = f.store.get_cluster("b").await.unwrap().unwrap();
    assert_eq!(b.reachability, Reachability::Reachable);
    assert_eq!(b.last_error, None);
    assert_eq!(b.consecutive_failures, 0);

    let err = f.store.record_check("gone", &reachable).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");

    // Due: never checked first (c, d), then by next_check_at (e 61s, b 62s).
    let due = |now, limit| {
        let store = f.store.clone();
        async move {
            store
                .clusters_due_for_check(now, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(due(0, 10).await, ["c", "d"]);
    assert_eq!(due(62_000, 10).await, ["c", "d", "e", "b"]);
    assert_eq!(due(62_000, 3).await, ["c", "d", "e"]);
    assert_eq!(due(100_000, 10).await, ["c", "d", "e", "b", "a"]);

    assert_eq!(
        f.store.count_clusters_by_reachability().await.unwrap(),
        [
            (Reachability::Unknown, 2),
            (Reachability::Reachable, 2),
            (Reachability::Unreachable, 1),
        ]
    );
    for name in ["a", "b", "c", "d", "e"] {
        f.store.delete_cluster(name).await.unwrap();
    }
    assert_eq!(
        f.store.count_clusters_by_reachability().await.unwrap(),
        [
            (Reachability::Unknown, 0),
            (Reachability::Reachable, 0),
            (Reachability::Unreachable, 0),
        ]
    );
}

#[tokio::test]
async fn sealed_credentials_never_reach_the_disk_in_plaintext() {
    let f = Fixture::new().await;
    let mut new = f.cluster("prod-eu");
    new.credentials = f.key.seal(b"SECRET-TOKEN-123", "cluster:prod-eu").unwrap();
    f.store.insert_cluster(&new).await.unwrap();
    assert!(
        file_contains(&f.db_path().with_extension("db-wal"), b"prod-eu"),
        "the row is in the WAL"
    );
    for file in db_files(&f.db_path()) {
        assert!(
            !file_contains(&file, b"SECRET-TOKEN-123"),
            "{}",
            file.display()
        );
    }
    f.store.close().await;
    assert!(
        file_contains(&f.db_path(), b"prod-eu"),
        "the row is in the database"
    );
    assert!(!file_contains(&f.db_path(), b"SECRET-TOKEN-123"));
}

/// Not a benchmark (that is the lead's harness): prints how long listing a
/// page of 100 out of 1,000 clusters takes, and checks the page.
#[tokio::test]
async fn list_a_page_of_a_thousand_clusters() {
    let f = Fixture::new().await;
    for i in 0..1_000 {
        let mut new = Fixture::cluster_with(&f.key, &format!("cluster-{i:04}"));
        new.labels = labels(&[
            ("app.kubernetes.io/part-of", "fleet"),
            ("region", if i % 2 == 0 { "eu" } else { "us" }),
        ]);
        f.store.insert_cluster(&new).await.unwrap();
    }
    let query = ClusterQuery {
        after: Some("cluster-0449".into()),
        limit: 100,
        ..ClusterQuery::default()
    };
    let filtered = ClusterQuery {
        labels: vec![("region".into(), "eu".into())],
        ..query.clone()
    };
    for (what, query) in [("unfiltered", &query), ("label filter", &filtered)] {
        let page = f.store.list_clusters(query).await.unwrap(); // warm
        assert_eq!(page.items.len(), 100);
        const RUNS: u32 = 200;
        let start = Instant::now();
        for _ in 0..RUNS {
            f.store.list_clusters(query).await.unwrap();
        }
        eprintln!(
            "list_clusters(limit 100 of 1000, {what}): {:?} per call",
            start.elapsed() / RUNS
        );
    }
}

/// The plan SQLite picks for `list_clusters` and `clusters_due_for_check`:
/// a walk of an index, with no table sort.
#[tokio::test]
async fn listing_and_due_checks_use_the_indexes() {
    let f = Fixture::new().await;
    let plan = |sql: String| {
        let store = f.store.clone();
        async move {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(&store.reader)
                .await
                .unwrap();
            rows.iter()
                .map(|row| row.try_get::<String, _>("detail").unwrap())
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let queries = [
        ClusterQuery::default(),
        ClusterQuery {
            after: Some("m".into()),
            cloud: Some(Cloud::Aks),
            labels: vec![("app.kubernetes.io/name".into(), "web".into())],
            ..ClusterQuery::default()
        },
    ];
    for query in &queries {
        let sql = crate::clusters::list_query(query, 100).into_string();
        let plan = plan(sql).await;
        assert!(plan.contains("USING INDEX clusters_name"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }
    let plan = plan(
        "SELECT name FROM clusters WHERE next_check_at IS NULL OR next_check_at <= 5 \
         ORDER BY next_check_at"
            .into(),
    )
    .await;
    assert!(plan.contains("clusters_next_check_at"), "{plan}");
}

//! Tests of drift reports, episodes and ignore rules.

use crate::fixture::Fixture;
use crate::*;

fn drifted(kind: &str, name: &str, state: DriftState, live: i64) -> DriftObjectRecord {
    DriftObjectRecord {
        api_version: "apps/v1".into(),
        kind: kind.into(),
        namespace: Some("shop".into()),
        name: name.into(),
        state,
        diffs: match state {
            DriftState::Modified => vec![FieldDiffRecord {
                path: "/spec/replicas".into(),
                live: Some(live.into()),
                desired: Some(2.into()),
            }],
            _ => Vec::new(),
        },
        message: None,
        unified: String::new(),
        since: None,
    }
}

fn scan(status: ScanStatus, objects: Vec<DriftObjectRecord>) -> NewDriftReport {
    let mut counts = DriftCounts {
        in_sync: 10,
        ..DriftCounts::default()
    };
    for object in &objects {
        match object.state {
            DriftState::Modified => counts.modified += 1,
            DriftState::Missing => counts.missing += 1,
            DriftState::Extra => counts.extra += 1,
            DriftState::Unknown => counts.unknown += 1,
            DriftState::InSync => counts.in_sync += 1,
        }
    }
    NewDriftReport {
        trigger: ScanTrigger::Schedule,
        status,
        revision: Some("a1".into()),
        error: None,
        counts,
        objects,
        started_at: 1,
    }
}

#[tokio::test]
async fn drift_reports_store_changes_only_and_track_episodes() {
    let f = Fixture::new().await;
    f.insert("edge").await;
    f.insert("core").await;
    assert_eq!(f.store.latest_drift_report("edge").await.unwrap(), None);
    assert!(matches!(
        f.store
            .record_drift_report("nope", &scan(ScanStatus::InSync, vec![]))
            .await,
        Err(StoreError::NotFound { .. })
    ));

    let (first, new) = f
        .store
        .record_drift_report("edge", &scan(ScanStatus::InSync, vec![]))
        .await
        .unwrap();
    assert!(new);
    assert_eq!(first.status, ScanStatus::InSync);
    // The same result again adds no row.
    let (again, new) = f
        .store
        .record_drift_report("edge", &scan(ScanStatus::InSync, vec![]))
        .await
        .unwrap();
    assert!(!new);
    assert_eq!(again.id, first.id);
    assert_eq!(again.scans, 2);

    // Someone scales a Deployment: drift starts.
    let scaled = vec![drifted("Deployment", "web", DriftState::Modified, 5)];
    let (report, new) = f
        .store
        .record_drift_report("edge", &scan(ScanStatus::Drifted, scaled.clone()))
        .await
        .unwrap();
    assert!(new);
    assert_eq!(report.counts.modified, 1);
    assert_eq!(report.objects[0].diffs, scaled[0].diffs);
    let since = report.objects[0].since.expect("since when");
    // Still drifted, the same way: same report, same start.
    let (same, new) = f
        .store
        .record_drift_report("edge", &scan(ScanStatus::Drifted, scaled.clone()))
        .await
        .unwrap();
    assert!(!new);
    assert_eq!(same.objects[0].since, Some(since));
    // Scaled further: a new report, but the episode continues.
    let further = vec![drifted("Deployment", "web", DriftState::Modified, 7)];
    let (report, new) = f
        .store
        .record_drift_report("edge", &scan(ScanStatus::Drifted, further))
        .await
        .unwrap();
    assert!(new);
    assert_eq!(report.objects[0].since, Some(since));
    // An unknown scan (cluster unreachable) changes no episode.
    let mut unknown = scan(ScanStatus::Unknown, vec![]);
    unknown.error = Some("the cluster did not answer".into());
    f.store.record_drift_report("edge", &unknown).await.unwrap();
    let episodes = f.store.drift_episodes("edge", 10).await.unwrap();
    assert_eq!(episodes.len(), 1);
    assert_eq!(episodes[0].ended_at, None);
    let summary = f.store.drift_summary().await.unwrap();
    assert_eq!(
        summary
            .iter()
            .map(|c| (c.cluster.as_str(), c.status, c.oldest_drift_since))
            .collect::<Vec<_>>(),
        [
            ("core", None, None),
            ("edge", Some(ScanStatus::Unknown), Some(since)),
        ]
    );

    // Fixed by hand: the episode ends; history keeps every distinct result.
    f.store
        .record_drift_report("edge", &scan(ScanStatus::InSync, vec![]))
        .await
        .unwrap();
    let episodes = f.store.drift_episodes("edge", 10).await.unwrap();
    assert!(episodes[0].ended_at.is_some());
    let history = f.store.drift_history("edge", None, 100).await.unwrap();
    assert_eq!(
        history.iter().map(|r| r.status).collect::<Vec<_>>(),
        [
            ScanStatus::InSync,
            ScanStatus::Unknown,
            ScanStatus::Drifted,
            ScanStatus::Drifted,
            ScanStatus::InSync,
        ]
    );
    let older = f
        .store
        .drift_history("edge", Some(history[1].id), 100)
        .await
        .unwrap();
    assert_eq!(older.len(), 3);
    assert_eq!(
        f.store.drift_summary().await.unwrap()[1].oldest_drift_since,
        None
    );
    f.store.close().await;
}

#[tokio::test]
async fn ignore_rules_are_global_or_per_cluster() {
    let f = Fixture::new().await;
    f.insert("edge").await;
    f.insert("core").await;
    let rule =
        |cluster: Option<&str>, pointer: Option<&str>, managed_by: Option<&str>| IgnoreRuleRecord {
            id: 0,
            cluster: cluster.map(Into::into),
            api_group: "apps".into(),
            kind: "Deployment".into(),
            namespace: None,
            name: "*".into(),
            pointer: pointer.map(Into::into),
            managed_by: managed_by.map(Into::into),
        };
    let global = f
        .store
        .add_ignore_rule(&rule(None, Some("/spec/replicas"), None))
        .await
        .unwrap();
    let edge = f
        .store
        .add_ignore_rule(&rule(Some("edge"), None, Some("hpa-controller")))
        .await
        .unwrap();
    assert!(matches!(
        f.store
            .add_ignore_rule(&rule(Some("nope"), Some("/x"), None))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    // Exactly one of pointer and manager.
    assert!(
        f.store
            .add_ignore_rule(&rule(None, Some("/x"), Some("y")))
            .await
            .is_err()
    );
    let ids = |rules: Vec<IgnoreRuleRecord>| rules.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(f.store.ignore_rules(Some("edge")).await.unwrap()),
        [global.id, edge.id]
    );
    assert_eq!(
        ids(f.store.ignore_rules(Some("core")).await.unwrap()),
        [global.id]
    );
    assert_eq!(
        ids(f.store.ignore_rules(None).await.unwrap()),
        [global.id, edge.id]
    );
    assert!(f.store.delete_ignore_rule(edge.id).await.unwrap());
    assert!(!f.store.delete_ignore_rule(edge.id).await.unwrap());
    // Deleting a cluster deletes its rules and reports.
    f.store
        .add_ignore_rule(&rule(Some("core"), Some("/a"), None))
        .await
        .unwrap();
    f.store
        .record_drift_report("core", &scan(ScanStatus::InSync, vec![]))
        .await
        .unwrap();
    assert!(f.store.delete_cluster("core").await.unwrap());
    assert_eq!(ids(f.store.ignore_rules(None).await.unwrap()), [global.id]);
    f.store.close().await;
}

//! Tests of incidents: batched writes, queries, silence marks.

use std::collections::BTreeSet;

use crate::fixture::{Fixture, silence};
use crate::*;

fn incident(
    cluster: &str,
    workload: &str,
    reason: &str,
    count: u64,
    pods: &[&str],
) -> IncidentWrite {
    IncidentWrite {
        cluster: cluster.into(),
        namespace: Some("shop".into()),
        workload_kind: "Deployment".into(),
        workload_name: workload.into(),
        container: Some("web".into()),
        reason: reason.into(),
        severity: Severity::Warning,
        status: IncidentStatus::Open,
        count,
        reopen_count: 0,
        first_seen_at: 1_000,
        last_seen_at: 1_000 + i64::try_from(count).unwrap(),
        resolved_at: None,
        last_exit_code: Some(137),
        message: Some("OOMKilled".into()),
        image: Some("nginx:1.27".into()),
        pods: pods.iter().map(|p| (*p).to_owned()).collect(),
        nodes: BTreeSet::new(),
        revision: Some("a1".into()),
    }
}

#[tokio::test]
async fn incidents_are_written_in_batches_one_row_per_group_and_queried() {
    let f = Fixture::new().await;
    f.insert("edge").await;
    f.insert("core").await;
    // A storm: three updates of one group and one of another, one batch;
    // a write for an unknown cluster is skipped.
    let ids = f
        .store
        .write_incidents(&[
            incident("edge", "web", "OOMKilled", 1, &["web-1"]),
            incident("edge", "web", "OOMKilled", 2, &["web-1", "web-2"]),
            incident("edge", "web", "OOMKilled", 3, &["web-1", "web-2", "web-3"]),
            incident("core", "web", "OOMKilled", 1, &["web-9"]),
            incident("gone", "web", "OOMKilled", 1, &["x"]),
        ])
        .await
        .unwrap();
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[1], ids[2]);
    assert_ne!(ids[0], ids[3]);
    assert_eq!(ids[4], None);
    let edge = f
        .store
        .get_incident(ids[0].unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(edge.incident.count, 3);
    assert_eq!(
        edge.incident
            .pods
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["web-1", "web-2", "web-3"]
    );
    assert_eq!(edge.incident.revision.as_deref(), Some("a1"));
    assert_eq!(edge.incident.container.as_deref(), Some("web"));

    // Both clusters' incidents in one query, latest first; filters and pages.
    let all = f
        .store
        .list_incidents(&IncidentQuery {
            limit: 10,
            ..IncidentQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter()
            .map(|i| i.incident.cluster.as_str())
            .collect::<Vec<_>>(),
        ["edge", "core"]
    );
    let page = f
        .store
        .list_incidents(&IncidentQuery {
            limit: 1,
            after: Some((all[0].incident.last_seen_at, all[0].id)),
            ..IncidentQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page[0].incident.cluster, "core");
    let filtered = |query: IncidentQuery| {
        let store = f.store.clone();
        async move {
            store
                .list_incidents(&IncidentQuery { limit: 10, ..query })
                .await
                .unwrap()
                .len()
        }
    };
    assert_eq!(
        filtered(IncidentQuery {
            cluster: Some("core".into()),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        filtered(IncidentQuery {
            reason: Some("CrashLoopBackOff".into()),
            ..Default::default()
        })
        .await,
        0
    );
    assert_eq!(
        filtered(IncidentQuery {
            status: Some(IncidentStatus::Open),
            ..Default::default()
        })
        .await,
        2
    );
    assert_eq!(
        filtered(IncidentQuery {
            since: Some(1_002),
            ..Default::default()
        })
        .await,
        1
    );
    assert_eq!(
        filtered(IncidentQuery {
            until: Some(1_002),
            ..Default::default()
        })
        .await,
        1
    );

    // Captured once; acknowledged; counted for metrics.
    let id = ids[0].unwrap();
    let events = serde_json::json!([{"reason": "BackOff"}]);
    assert!(
        f.store
            .capture_incident(id, "line 1\nline 2\n", &events)
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .capture_incident(id, "later", &events)
            .await
            .unwrap()
    );
    assert!(f.store.ack_incident(id, "ada").await.unwrap());
    assert!(!f.store.ack_incident(999, "ada").await.unwrap());
    let edge = f.store.get_incident(id).await.unwrap().unwrap();
    assert_eq!(edge.logs.as_deref(), Some("line 1\nline 2\n"));
    assert_eq!(edge.events, Some(events));
    assert_eq!(edge.acked_by.as_deref(), Some("ada"));
    assert_eq!(
        f.store.count_open_incidents().await.unwrap(),
        [
            ("core".to_owned(), "OOMKilled".to_owned(), 1),
            ("edge".to_owned(), "OOMKilled".to_owned(), 1)
        ]
    );

    // Resolved, then reopened: the same row; purged only once resolved and old.
    let mut resolved = incident("edge", "web", "OOMKilled", 3, &["web-1"]);
    resolved.status = IncidentStatus::Resolved;
    resolved.resolved_at = Some(5_000);
    f.store.write_incidents(&[resolved.clone()]).await.unwrap();
    let mut reopened = incident("edge", "web", "OOMKilled", 4, &["web-4"]);
    reopened.reopen_count = 1;
    assert_eq!(
        f.store.write_incidents(&[reopened]).await.unwrap()[0],
        Some(id)
    );
    assert_eq!(f.store.purge_incidents(10_000).await.unwrap(), 0);
    f.store.write_incidents(&[resolved]).await.unwrap();
    assert_eq!(f.store.purge_incidents(4_000).await.unwrap(), 0);
    assert_eq!(f.store.purge_incidents(10_000).await.unwrap(), 1);
    assert_eq!(f.store.get_incident(id).await.unwrap(), None);

    // Deleting a cluster deletes its incidents.
    assert!(f.store.delete_cluster("core").await.unwrap());
    assert!(
        f.store
            .list_incidents(&IncidentQuery {
                limit: 10,
                ..IncidentQuery::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
    f.store.close().await;
}

#[tokio::test]
async fn incidents_are_marked_silenced_and_reloaded_by_id_and_status() {
    let f = Fixture::new().await;
    f.insert("edge").await;
    let mut resolved = incident("edge", "db", "OOMKilled", 1, &["db-0"]);
    resolved.status = IncidentStatus::Resolved;
    resolved.resolved_at = Some(2_000);
    let mut unknown = incident("edge", "cache", "OOMKilled", 1, &["cache-0"]);
    unknown.status = IncidentStatus::Unknown;
    let ids: Vec<i64> = f
        .store
        .write_incidents(&[
            incident("edge", "web", "OOMKilled", 1, &["web-1"]),
            resolved,
            unknown,
            incident("edge", "api", "CrashLoopBackOff", 1, &["api-1"]),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let quiet = f.store.create_silence(&silence(0, 10_000)).await.unwrap();

    assert_eq!(
        f.store
            .set_incident_silences(&[
                (ids[0], Some(quiet.id)),
                (ids[1], Some(quiet.id)),
                (999, None)
            ])
            .await
            .unwrap(),
        2
    );
    let web = f.store.get_incident(ids[0]).await.unwrap().unwrap();
    assert_eq!(web.silenced_by, Some(quiet.id));
    // An unknown silence changes nothing, not even the valid pairs before it.
    let err = f
        .store
        .set_incident_silences(&[(ids[0], None), (ids[2], Some(999))])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what } if what == "silence 999"),
        "{err:?}"
    );
    assert_eq!(
        f.store
            .get_incident(ids[0])
            .await
            .unwrap()
            .unwrap()
            .silenced_by,
        Some(quiet.id)
    );
    // A write of the group's state keeps the mark.
    f.store
        .write_incidents(&[incident("edge", "web", "OOMKilled", 2, &["web-1"])])
        .await
        .unwrap();

    let by_ids = f
        .store
        .incidents_by_ids(&[ids[3], ids[0], 999, ids[0]])
        .await
        .unwrap();
    assert_eq!(
        by_ids.iter().map(|i| i.id).collect::<Vec<_>>(),
        [ids[0], ids[3]]
    );
    assert_eq!(by_ids[0].silenced_by, Some(quiet.id));
    assert_eq!(by_ids[0].incident.count, 2);
    assert_eq!(by_ids[1].silenced_by, None);
    assert!(by_ids[0].logs.is_none() && by_ids[0].events.is_none());
    assert!(f.store.incidents_by_ids(&[]).await.unwrap().is_empty());
    let many: Vec<i64> = (0..1_200).chain(ids.iter().copied()).collect();
    assert_eq!(f.store.incidents_by_ids(&many).await.unwrap().len(), 4);

    // Every open or unknown incident, one page at a time.
    let statuses = [IncidentStatus::Open, IncidentStatus::Unknown];
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = f
            .store
            .list_incidents_with_status(&statuses, after, 2)
            .await
            .unwrap();
        seen.extend(page.iter().map(|i| i.id));
        after = page.last().map(|i| i.id);
        if page.len() < 2 {
            break;
        }
    }
    assert_eq!(seen, [ids[0], ids[2], ids[3]]);
    assert!(
        f.store
            .list_incidents_with_status(&[], None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Purging the silence unmarks its incidents.
    assert_eq!(f.store.purge_silences(20_000).await.unwrap(), 1);
    assert_eq!(
        f.store
            .get_incident(ids[0])
            .await
            .unwrap()
            .unwrap()
            .silenced_by,
        None
    );
    f.store.close().await;
}

#[tokio::test]
async fn a_count_out_of_range_is_an_error_not_clamped() {
    let f = Fixture::new().await;
    f.insert("edge").await;
    let written = f
        .store
        .write_incidents(&[incident("edge", "web", "OOMKilled", 3, &["web-1"])])
        .await
        .unwrap();
    let id = written[0].unwrap();
    assert_eq!(
        f.store
            .get_incident(id)
            .await
            .unwrap()
            .unwrap()
            .incident
            .count,
        3
    );

    // Read back as 0 before: a count that is not one is refused.
    f.write_unchecked("UPDATE incidents SET count = -1").await;
    let error = f.store.get_incident(id).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::InvalidRow { column: "incidents.count", reason }
            if reason == "-1 is out of range"),
        "{error:?}"
    );
    let error = f
        .store
        .list_incidents(&IncidentQuery {
            limit: 10,
            ..IncidentQuery::default()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::InvalidRow {
                column: "incidents.count",
                ..
            }
        ),
        "{error:?}"
    );
    f.store.close().await;
}

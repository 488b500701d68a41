//! Tests of the sync queue, sync results, inventories and health.

use crate::fixture::{Fixture, labels};
use crate::*;

fn object(kind: &str, name: &str, action: ObjectAction) -> SyncObjectRecord {
    SyncObjectRecord {
        api_version: "v1".into(),
        kind: kind.into(),
        namespace: Some("monitoring".into()),
        name: name.into(),
        action,
        message: None,
        health: Some(Health::Healthy),
        health_message: None,
    }
}

fn owned(kind: &str, name: &str) -> InventoryRecord {
    InventoryRecord {
        api_group: "".into(),
        kind: kind.into(),
        namespace: Some("monitoring".into()),
        name: name.into(),
        api_version: "v1".into(),
        manifest_sha256: format!("sha-{name}"),
        resource_version: "1".into(),
        uid: format!("uid-{name}"),
        health: Some(Health::Healthy),
        health_message: None,
    }
}

#[tokio::test]
async fn syncs_queue_once_record_objects_inventory_and_cluster_state() {
    let f = Fixture::new().await;
    f.insert("edge").await;
    assert_eq!(
        f.store
            .queue_sync("nope", SyncTrigger::Manual)
            .await
            .unwrap(),
        None
    );
    let queued = f
        .store
        .queue_sync("edge", SyncTrigger::Manual)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(queued.status, SyncStatus::Queued);
    // Queuing again (a replayed webhook, a second click) returns the same sync.
    let again = f
        .store
        .queue_sync("edge", SyncTrigger::Auto)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, queued.id);
    assert_eq!(again.trigger, SyncTrigger::Manual);
    assert_eq!(f.store.queued_syncs(10).await.unwrap().len(), 1);

    assert!(f.store.start_sync(queued.id, Some("a1")).await.unwrap());
    assert!(!f.store.start_sync(queued.id, Some("a1")).await.unwrap());
    // While it runs, a new sync can be queued.
    let next = f
        .store
        .queue_sync("edge", SyncTrigger::Auto)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(next.id, queued.id);

    let result = SyncResult {
        succeeded: true,
        revision: Some("a1".into()),
        error: None,
        health: Some(Health::Progressing),
        objects: vec![
            object("ConfigMap", "rules", ObjectAction::Created),
            object("Service", "grafana", ObjectAction::Created),
            object("Secret", "old", ObjectAction::Pruned),
        ],
        inventory: Some(vec![
            owned("ConfigMap", "rules"),
            owned("Service", "grafana"),
        ]),
        retry_at: None,
    };
    f.store.finish_sync(queued.id, &result).await.unwrap();
    // Finishing twice is refused.
    assert!(matches!(
        f.store.finish_sync(queued.id, &result).await,
        Err(StoreError::NotFound { .. })
    ));
    let (record, objects) = f.store.get_sync("edge", queued.id).await.unwrap().unwrap();
    assert_eq!(record.status, SyncStatus::Succeeded);
    assert_eq!(record.counts.created, 2);
    assert_eq!(record.counts.pruned, 1);
    assert_eq!(objects, result.objects);
    assert_eq!(f.store.get_sync("other", queued.id).await.unwrap(), None);
    let inventory = f.store.inventory("edge").await.unwrap();
    assert_eq!(inventory, result.inventory.clone().unwrap());
    let cluster = f.store.get_cluster("edge").await.unwrap().unwrap();
    assert_eq!(cluster.sync.revision.as_deref(), Some("a1"));
    assert_eq!(cluster.sync.status, ClusterSyncStatus::Succeeded);
    assert_eq!(cluster.sync.health, Health::Progressing);
    assert_eq!(cluster.sync.last_sync_id, Some(queued.id));

    // A failed sync keeps the synced revision and the inventory, counts the
    // failure and sets the retry time.
    assert!(f.store.start_sync(next.id, Some("b2")).await.unwrap());
    let failed = SyncResult {
        succeeded: false,
        revision: Some("b2".into()),
        error: Some("overlays/aks/kustomization.yaml: bad YAML".into()),
        health: None,
        objects: vec![],
        inventory: None,
        retry_at: Some(42),
    };
    f.store.finish_sync(next.id, &failed).await.unwrap();
    let cluster = f.store.get_cluster("edge").await.unwrap().unwrap();
    assert_eq!(cluster.sync.revision.as_deref(), Some("a1"));
    assert_eq!(cluster.sync.status, ClusterSyncStatus::Failed);
    assert_eq!(cluster.sync.failures, 1);
    assert_eq!(cluster.sync.next_sync_at, Some(42));
    assert_eq!(cluster.sync.health, Health::Progressing);
    assert_eq!(f.store.inventory("edge").await.unwrap(), inventory);

    let page = f
        .store
        .list_syncs(
            "edge",
            &SyncQuery {
                before: None,
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.iter().map(|s| s.id).collect::<Vec<_>>(), [next.id]);
    let page = f
        .store
        .list_syncs(
            "edge",
            &SyncQuery {
                before: Some(next.id),
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.iter().map(|s| s.id).collect::<Vec<_>>(), [queued.id]);

    // Health assessments update the cluster and its objects.
    let mut healthy = inventory.clone();
    healthy[0].health = Some(Health::Degraded);
    healthy[0].health_message = Some("job failed".into());
    f.store
        .record_health("edge", Health::Degraded, &healthy)
        .await
        .unwrap();
    assert_eq!(f.store.inventory("edge").await.unwrap(), healthy);
    let cluster = f.store.get_cluster("edge").await.unwrap().unwrap();
    assert_eq!(cluster.sync.health, Health::Degraded);

    // A sync left running by a stopped service is failed and retried.
    let third = f
        .store
        .queue_sync("edge", SyncTrigger::Retry)
        .await
        .unwrap()
        .unwrap();
    assert!(f.store.start_sync(third.id, Some("b2")).await.unwrap());
    assert_eq!(f.store.fail_interrupted_syncs().await.unwrap(), 1);
    let (record, _) = f.store.get_sync("edge", third.id).await.unwrap().unwrap();
    assert_eq!(record.status, SyncStatus::Failed);

    // Sync mode is part of the registration.
    let update = ClusterUpdate {
        sync_mode: Some(SyncMode::SelfHeal),
        ..ClusterUpdate::default()
    };
    let updated = f
        .store
        .update_cluster("edge", &update)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.sync.mode, SyncMode::SelfHeal);
    assert_eq!(updated.incident_settings, None);

    // So are its incident settings: set, kept by other updates, removed.
    let settings = serde_json::json!({"ignore_namespaces": ["batch"]});
    let update = ClusterUpdate {
        incident_settings: Some(settings.clone()),
        ..ClusterUpdate::default()
    };
    let updated = f
        .store
        .update_cluster("edge", &update)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.incident_settings.as_ref(), Some(&settings));
    assert!(updated.updated_at >= updated.created_at);
    let update = ClusterUpdate {
        labels: Some(labels(&[("team", "sre")])),
        ..ClusterUpdate::default()
    };
    let updated = f
        .store
        .update_cluster("edge", &update)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.incident_settings.as_ref(), Some(&settings));
    let update = ClusterUpdate {
        incident_settings: Some(serde_json::Value::Null),
        ..ClusterUpdate::default()
    };
    let updated = f
        .store
        .update_cluster("edge", &update)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.incident_settings, None);

    // Deleting the cluster deletes its syncs and inventory.
    assert!(f.store.delete_cluster("edge").await.unwrap());
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM syncs) + (SELECT COUNT(*) FROM sync_objects) \
             + (SELECT COUNT(*) FROM inventory)",
    )
    .fetch_one(&f.store.reader)
    .await
    .unwrap();
    assert_eq!(left, 0);
    f.store.close().await;
}

#[tokio::test]
async fn an_action_this_version_does_not_know_is_an_error_not_left_out_of_the_counts() {
    let f = Fixture::new().await;
    f.insert("edge").await;
    let sync = f
        .store
        .queue_sync("edge", SyncTrigger::Manual)
        .await
        .unwrap()
        .unwrap();
    assert!(f.store.start_sync(sync.id, Some("a1")).await.unwrap());
    let result = SyncResult {
        succeeded: true,
        revision: Some("a1".into()),
        error: None,
        health: Some(Health::Healthy),
        objects: vec![
            object("ConfigMap", "rules", ObjectAction::Created),
            object("Service", "web", ObjectAction::Created),
        ],
        inventory: None,
        retry_at: None,
    };
    f.store.finish_sync(sync.id, &result).await.unwrap();
    let query = SyncQuery {
        before: None,
        limit: 10,
    };
    let listed = f.store.list_syncs("edge", &query).await.unwrap();
    assert_eq!(listed[0].counts.created, 2);

    f.write_unchecked("UPDATE sync_objects SET action = 'adopted' WHERE name = 'web'")
        .await;
    let unreadable = |error: StoreError| match error {
        StoreError::InvalidRow { column, reason } => (column, reason),
        other => panic!("{other:?}"),
    };
    let (column, reason) = unreadable(f.store.list_syncs("edge", &query).await.unwrap_err());
    assert_eq!(column, "sync_objects.action");
    assert!(reason.contains("`adopted`"), "{reason}");
    let (column, _) = unreadable(f.store.get_sync("edge", sync.id).await.unwrap_err());
    assert_eq!(column, "sync_objects.action");
    f.store.close().await;
}

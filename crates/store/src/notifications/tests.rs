//! Tests of receivers, routes, silences, group states and the outbox.

use crate::fixture::{Fixture, db_files, file_contains, silence};
use crate::*;

/// An empty list of ids, to compare with.
const NO_IDS: [i64; 0] = [];

fn receiver(name: &str, kind: ReceiverKind) -> ReceiverWrite {
    ReceiverWrite {
        name: name.into(),
        kind,
        config: serde_json::json!({"url": format!("https://hooks.example/{name}/SECRET-{name}")}),
        summary: serde_json::json!({"target": format!("#{name}")}),
    }
}

fn route_to(receiver: &str) -> RouteWrite {
    RouteWrite {
        receiver: receiver.into(),
        matchers: serde_json::json!([{"label": "severity", "op": "=", "value": "critical"}]),
        group_by: vec!["cluster".into(), "reason".into()],
        group_wait_ms: 30_000,
        group_interval_ms: 300_000,
        repeat_interval_ms: 14_400_000,
        send_resolved: true,
        continue_matching: false,
        position: None,
    }
}

#[tokio::test]
async fn receivers_are_created_read_renamed_and_deleted() {
    let f = Fixture::new().await;
    let slack = f
        .store
        .create_receiver(&f.key, &receiver("oncall", ReceiverKind::Slack))
        .await
        .unwrap();
    assert_eq!(slack.name, "oncall");
    assert_eq!(slack.kind, ReceiverKind::Slack);
    assert_eq!(slack.summary, serde_json::json!({"target": "#oncall"}));
    let err = f
        .store
        .create_receiver(&f.key, &receiver("oncall", ReceiverKind::Email))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { what, .. } if what == "receiver `oncall`"),
        "{err:?}"
    );
    let hook = f
        .store
        .create_receiver(&f.key, &receiver("audit", ReceiverKind::Webhook))
        .await
        .unwrap();
    assert_eq!(
        f.store.list_receivers().await.unwrap(),
        [hook.clone(), slack.clone()],
        "in name order"
    );
    assert_eq!(
        f.store.get_receiver("oncall").await.unwrap(),
        Some(slack.clone())
    );
    assert_eq!(f.store.get_receiver("nobody").await.unwrap(), None);

    // The configuration comes back only through receiver_config.
    let (record, config) = f
        .store
        .receiver_config(&f.key, slack.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record, slack);
    assert_eq!(config, receiver("oncall", ReceiverKind::Slack).config);
    assert_eq!(f.store.receiver_config(&f.key, 999).await.unwrap(), None);
    let debug = format!("{:?}", receiver("oncall", ReceiverKind::Slack));
    assert!(!debug.contains("SECRET"), "{debug}");

    // Update replaces everything and may rename; the config is resealed.
    let mut write = receiver("pager", ReceiverKind::Email);
    write.config = serde_json::json!({"to": "pager@example.com"});
    let renamed = f
        .store
        .update_receiver(&f.key, "oncall", &write)
        .await
        .unwrap();
    assert_eq!(renamed.id, slack.id);
    assert_eq!(renamed.name, "pager");
    assert_eq!(renamed.kind, ReceiverKind::Email);
    assert_eq!(renamed.created_at, slack.created_at);
    let (_, config) = f
        .store
        .receiver_config(&f.key, slack.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(config, serde_json::json!({"to": "pager@example.com"}));
    let err = f
        .store
        .update_receiver(&f.key, "oncall", &write)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what } if what == "receiver `oncall`"),
        "{err:?}"
    );
    let err = f
        .store
        .update_receiver(&f.key, "audit", &write)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict { what, .. } if what == "receiver `pager`"),
        "{err:?}"
    );

    assert!(f.store.delete_receiver("audit").await.unwrap());
    assert!(!f.store.delete_receiver("audit").await.unwrap());
    assert_eq!(f.store.get_receiver("audit").await.unwrap(), None);

    assert_eq!("email".parse::<ReceiverKind>(), Ok(ReceiverKind::Email));
    assert_eq!(
        "sms".parse::<ReceiverKind>().unwrap_err(),
        "unknown receiver kind `sms` (expected one of: slack, webhook, email)"
    );
    f.store.close().await;
}

#[tokio::test]
async fn receiver_configs_are_sealed_and_bound_to_their_receiver() {
    let f = Fixture::new().await;
    let a = f
        .store
        .create_receiver(&f.key, &receiver("alpha", ReceiverKind::Webhook))
        .await
        .unwrap();
    let b = f
        .store
        .create_receiver(&f.key, &receiver("bravo", ReceiverKind::Webhook))
        .await
        .unwrap();
    for file in db_files(&f.db_path()) {
        assert!(!file_contains(&file, b"SECRET-alpha"), "{}", file.display());
    }
    assert!(
        file_contains(&f.db_path().with_extension("db-wal"), b"#alpha"),
        "the summary is stored in the clear"
    );

    // Another master key cannot open it.
    let other = MasterKey::generate().unwrap();
    let err = f.store.receiver_config(&other, a.id).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err:?}");

    // Ciphertext copied into another row does not open there.
    sqlx::query(
        "UPDATE receivers SET config_nonce = (SELECT config_nonce FROM receivers WHERE id = ?1), \
             config_ciphertext = (SELECT config_ciphertext FROM receivers WHERE id = ?1) \
         WHERE id = ?2",
    )
    .bind(a.id)
    .bind(b.id)
    .execute(&f.store.writer)
    .await
    .unwrap();
    let err = f.store.receiver_config(&f.key, b.id).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Decrypt { context, .. } if context == "receiver:bravo"),
        "{err:?}"
    );
    assert!(f.store.receiver_config(&f.key, a.id).await.is_ok());

    f.store.close().await;
    assert!(
        file_contains(&f.db_path(), b"alpha"),
        "the row is in the database"
    );
    assert!(!file_contains(&f.db_path(), b"SECRET-alpha"));
    assert!(!file_contains(&f.db_path(), b"hooks.example"));
}

#[tokio::test]
async fn routes_keep_their_order_and_their_receivers_in_use() {
    let f = Fixture::new().await;
    f.store
        .create_receiver(&f.key, &receiver("oncall", ReceiverKind::Slack))
        .await
        .unwrap();
    let audit = f
        .store
        .create_receiver(&f.key, &receiver("audit", ReceiverKind::Webhook))
        .await
        .unwrap();

    let first = f.store.create_route(&route_to("oncall")).await.unwrap();
    let second = f.store.create_route(&route_to("audit")).await.unwrap();
    assert_eq!((first.position, second.position), (0, 1), "None appends");
    assert_eq!(second.receiver, "audit");
    assert_eq!(second.receiver_id, audit.id);
    assert_eq!(second.group_by, ["cluster", "reason"]);
    assert!(second.send_resolved && !second.continue_matching);
    let front = f
        .store
        .create_route(&RouteWrite {
            position: Some(0),
            continue_matching: true,
            ..route_to("audit")
        })
        .await
        .unwrap();
    let order = |routes: Vec<RouteRecord>| routes.iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        order(f.store.list_routes().await.unwrap()),
        [first.id, front.id, second.id],
        "by position, then id"
    );
    assert_eq!(
        f.store.get_route(front.id).await.unwrap(),
        Some(front.clone())
    );

    // Refused input.
    let err = f.store.create_route(&route_to("nobody")).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what } if what == "receiver `nobody`"),
        "{err:?}"
    );
    let bad = [
        RouteWrite {
            matchers: serde_json::json!({"severity": "critical"}),
            ..route_to("audit")
        },
        RouteWrite {
            group_wait_ms: -1,
            ..route_to("audit")
        },
        RouteWrite {
            repeat_interval_ms: 0,
            ..route_to("audit")
        },
    ];
    for write in &bad {
        let err = f.store.create_route(write).await.unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidInput { what: "route", .. }),
            "{err:?}"
        );
    }

    // Update: everything but a None position; the receiver may change.
    let updated = f
        .store
        .update_route(
            second.id,
            &RouteWrite {
                group_by: vec![],
                send_resolved: false,
                ..route_to("oncall")
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.position, 1);
    assert_eq!(updated.receiver, "oncall");
    assert!(updated.group_by.is_empty() && !updated.send_resolved);
    assert_eq!(updated.created_at, second.created_at);
    let err = f
        .store
        .update_route(999, &route_to("oncall"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what } if what == "route 999"),
        "{err:?}"
    );
    let err = f
        .store
        .update_route(second.id, &route_to("nobody"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
    let err = f.store.update_route(second.id, &bad[0]).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err:?}");

    // A receiver is in use while a route sends to it.
    let err = f.store.delete_receiver("oncall").await.unwrap_err();
    let by = format!("routes {}, {}", first.id, second.id);
    assert!(
        matches!(&err, StoreError::InUse { what, by: b } if what == "receiver `oncall`" && *b == by),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("receiver `oncall` is still used by {by}")
    );
    assert!(f.store.delete_route(first.id).await.unwrap());
    assert!(!f.store.delete_route(first.id).await.unwrap());
    assert_eq!(f.store.get_route(first.id).await.unwrap(), None);
    let err = f.store.delete_receiver("oncall").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::InUse { by, .. } if *by == format!("route {}", second.id)),
        "{err:?}"
    );
    assert!(f.store.delete_route(second.id).await.unwrap());
    assert!(f.store.delete_receiver("oncall").await.unwrap());
    f.store.close().await;
}

#[tokio::test]
async fn silences_are_active_in_their_window_until_expired() {
    let f = Fixture::new().await;
    let current = f
        .store
        .create_silence(&silence(1_000, 2_000))
        .await
        .unwrap();
    let later = f
        .store
        .create_silence(&silence(5_000, 6_000))
        .await
        .unwrap();
    assert_eq!(current.author, "ada");
    assert_eq!(current.expired_at, None);
    assert_eq!(
        f.store.get_silence(current.id).await.unwrap(),
        Some(current.clone())
    );
    assert_eq!(f.store.get_silence(999).await.unwrap(), None);
    for bad in [
        silence(2_000, 2_000),
        SilenceWrite {
            matchers: serde_json::json!("cluster=edge"),
            ..silence(1_000, 2_000)
        },
    ] {
        let err = f.store.create_silence(&bad).await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::InvalidInput {
                    what: "silence",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    let active = |at: Option<i64>| {
        let store = f.store.clone();
        async move {
            let silences = store.list_silences(at).await.unwrap();
            silences.iter().map(|s| s.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(active(None).await, [current.id, later.id]);
    assert_eq!(active(Some(999)).await, NO_IDS);
    assert_eq!(
        active(Some(1_000)).await,
        [current.id],
        "starts_at is inside"
    );
    assert_eq!(active(Some(2_000)).await, NO_IDS, "ends_at is outside");
    assert_eq!(active(Some(5_500)).await, [later.id]);

    // Expiring ends it now; only once; not when missing or already over.
    assert!(f.store.expire_silence(current.id, 1_500).await.unwrap());
    assert!(!f.store.expire_silence(current.id, 1_600).await.unwrap());
    assert!(!f.store.expire_silence(999, 1_600).await.unwrap());
    let expired = f.store.get_silence(current.id).await.unwrap().unwrap();
    assert_eq!((expired.starts_at, expired.ends_at), (1_000, 1_500));
    assert_eq!(expired.expired_at, Some(1_500));
    assert_eq!(
        active(Some(1_200)).await,
        NO_IDS,
        "an expired silence is never active"
    );
    let over = f.store.create_silence(&silence(100, 200)).await.unwrap();
    assert!(!f.store.expire_silence(over.id, 300).await.unwrap());

    // A silence that had not started becomes empty.
    assert!(f.store.expire_silence(later.id, 3_000).await.unwrap());
    let empty = f.store.get_silence(later.id).await.unwrap().unwrap();
    assert_eq!((empty.starts_at, empty.ends_at), (3_000, 3_000));
    assert_eq!(active(Some(5_500)).await, NO_IDS);

    assert_eq!(
        f.store.purge_silences(1_000).await.unwrap(),
        1,
        "the one over at 200"
    );
    assert_eq!(f.store.purge_silences(10_000).await.unwrap(), 2);
    assert_eq!(active(None).await, NO_IDS);
    f.store.close().await;
}

#[tokio::test]
async fn notification_commits_are_atomic_and_survive_a_reopen() {
    let f = Fixture::new().await;
    let oncall = f
        .store
        .create_receiver(&f.key, &receiver("oncall", ReceiverKind::Slack))
        .await
        .unwrap();
    let route = f.store.create_route(&route_to("oncall")).await.unwrap();
    let other = f.store.create_route(&route_to("oncall")).await.unwrap();
    let group = |route_id: i64, key: &str, sent: u32| NotificationGroup {
        route_id,
        group_key: key.into(),
        state: serde_json::json!({"sent": sent}),
    };
    let delivery = |receiver_id: i64, route_id: Option<i64>, key: &str| OutboxWrite {
        receiver_id,
        route_id,
        group_key: key.into(),
        payload: serde_json::json!({"text": format!("{key} is failing")}),
    };

    let ids = f
        .store
        .commit_notifications(
            &[
                group(route.id, "edge/OOMKilled", 1),
                group(other.id, "core", 1),
            ],
            &[],
            &[
                delivery(oncall.id, Some(route.id), "edge/OOMKilled"),
                delivery(oncall.id, Some(other.id), "core"),
            ],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1]);
    assert_eq!(
        f.store.load_notification_groups().await.unwrap(),
        [
            group(route.id, "edge/OOMKilled", 1),
            group(other.id, "core", 1)
        ]
    );

    // A delivery to a receiver that does not exist fails the whole commit.
    let err = f
        .store
        .commit_notifications(
            &[
                group(route.id, "edge/OOMKilled", 2),
                group(route.id, "new", 1),
            ],
            &[(other.id, "core".into())],
            &[
                delivery(oncall.id, Some(route.id), "edge/OOMKilled"),
                delivery(999, Some(route.id), "new"),
            ],
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::NotFound { what } if what == "receiver 999"),
        "{err:?}"
    );
    assert_eq!(
        f.store.load_notification_groups().await.unwrap(),
        [
            group(route.id, "edge/OOMKilled", 1),
            group(other.id, "core", 1)
        ],
        "group states unchanged"
    );
    assert_eq!(f.store.list_deliveries(None, 10).await.unwrap().len(), 2);

    // Upsert, delete, and a group of a route deleted meanwhile is skipped
    // while its delivery is queued without route.
    assert!(f.store.delete_route(other.id).await.unwrap());
    let ids = f
        .store
        .commit_notifications(
            &[
                group(route.id, "edge/OOMKilled", 2),
                group(other.id, "core", 2),
            ],
            &[(route.id, "gone".into())],
            &[delivery(oncall.id, Some(other.id), "core")],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        f.store.load_notification_groups().await.unwrap(),
        [group(route.id, "edge/OOMKilled", 2)],
        "the deleted route's groups went with it"
    );
    let deliveries = f.store.list_deliveries(None, 10).await.unwrap();
    assert_eq!(deliveries[0].id, ids[0]);
    assert_eq!(deliveries[0].route_id, None);
    assert_eq!(
        deliveries[1].route_id, None,
        "deleting the route cleared it"
    );
    assert_eq!(deliveries[2].route_id, Some(route.id));
    f.store
        .commit_notifications(&[], &[(route.id, "edge/OOMKilled".into())], &[], &[])
        .await
        .unwrap();
    assert!(f.store.load_notification_groups().await.unwrap().is_empty());
    f.store
        .commit_notifications(&[group(route.id, "edge/OOMKilled", 3)], &[], &[], &[])
        .await
        .unwrap();

    // Everything committed is there after a restart.
    f.store.close().await;
    let reopened = Store::open(&f.db_path()).await.unwrap();
    assert_eq!(
        reopened.load_notification_groups().await.unwrap(),
        [group(route.id, "edge/OOMKilled", 3)]
    );
    assert_eq!(
        reopened.list_deliveries(None, 10).await.unwrap(),
        deliveries
    );
    reopened.close().await;
}

#[tokio::test]
async fn deliveries_are_retried_given_up_listed_and_purged() {
    let f = Fixture::new().await;
    let oncall = f
        .store
        .create_receiver(&f.key, &receiver("oncall", ReceiverKind::Slack))
        .await
        .unwrap();
    let audit = f
        .store
        .create_receiver(&f.key, &receiver("audit", ReceiverKind::Webhook))
        .await
        .unwrap();
    assert_eq!(f.store.next_delivery_at().await.unwrap(), None);
    let write = |receiver_id: i64, key: &str| OutboxWrite {
        receiver_id,
        route_id: None,
        group_key: key.into(),
        payload: serde_json::json!({"key": key}),
    };
    let ids = f
        .store
        .commit_notifications(
            &[],
            &[],
            &[
                write(oncall.id, "a"),
                write(audit.id, "b"),
                write(oncall.id, "c"),
            ],
            &[],
        )
        .await
        .unwrap();
    let queued = f.store.list_deliveries(None, 10).await.unwrap();
    let now = queued[0].created_at;
    assert_eq!(
        queued[2].next_attempt_at, queued[2].created_at,
        "due at once"
    );
    assert_eq!(queued[1].receiver, "audit");
    assert_eq!(queued[1].receiver_kind, ReceiverKind::Webhook);
    assert_eq!(queued[1].payload, serde_json::json!({"key": "b"}));
    assert_eq!(queued[1].attempts, 0);
    assert_eq!(
        f.store.next_delivery_at().await.unwrap(),
        Some(queued[2].next_attempt_at)
    );
    let due = |at: i64| {
        let store = f.store.clone();
        async move {
            let due = store.due_deliveries(at, 10).await.unwrap();
            due.iter().map(|d| d.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(due(now).await, ids, "oldest first");
    assert_eq!(due(queued[2].created_at - 1).await, NO_IDS);
    assert_eq!(f.store.due_deliveries(now, 1).await.unwrap().len(), 1);

    // a: delivered. b: retried, then given up. c: retried later.
    assert!(f.store.delivery_succeeded(ids[0], now + 1).await.unwrap());
    assert!(!f.store.delivery_succeeded(ids[0], now + 2).await.unwrap());
    assert!(
        f.store
            .delivery_failed(ids[1], now + 1, "HTTP 503", Some(now + 60_000))
            .await
            .unwrap()
    );
    assert!(
        f.store
            .delivery_failed(ids[2], now + 1, "timeout", Some(now + 30_000))
            .await
            .unwrap()
    );
    assert_eq!(due(now + 29_999).await, NO_IDS);
    assert_eq!(
        f.store.next_delivery_at().await.unwrap(),
        Some(now + 30_000)
    );
    assert_eq!(due(now + 60_000).await, [ids[1], ids[2]]);
    assert!(
        f.store
            .delivery_failed(ids[1], now + 60_001, "HTTP 404", None)
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .delivery_failed(ids[1], now + 60_002, "again", None)
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .delivery_succeeded(ids[1], now + 60_002)
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .delivery_failed(999, now, "missing", None)
            .await
            .unwrap()
    );
    assert_eq!(due(i64::MAX).await, [ids[2]]);

    let all = f.store.list_deliveries(None, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|d| d.id).collect::<Vec<_>>(),
        [ids[2], ids[1], ids[0]]
    );
    let (c, b, a) = (&all[0], &all[1], &all[2]);
    assert_eq!(
        (a.attempts, a.delivered_at, a.failed_at),
        (1, Some(now + 1), None)
    );
    assert_eq!(
        (b.attempts, b.delivered_at, b.failed_at),
        (2, None, Some(now + 60_001))
    );
    assert_eq!(b.last_error.as_deref(), Some("HTTP 404"));
    assert_eq!((c.attempts, c.next_attempt_at), (1, now + 30_000));
    assert_eq!(c.last_error.as_deref(), Some("timeout"));
    let of_audit = f.store.list_deliveries(Some("audit"), 10).await.unwrap();
    assert_eq!(of_audit.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[1]]);
    assert!(
        f.store
            .list_deliveries(Some("nobody"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        f.store.list_deliveries(None, 0).await.unwrap().len(),
        1,
        "limit clamped to 1"
    );

    // Purged once delivered or given up before the cutoff; pending stays.
    assert_eq!(f.store.purge_deliveries(now + 1).await.unwrap(), 0);
    assert_eq!(f.store.purge_deliveries(now + 2).await.unwrap(), 1);
    assert_eq!(f.store.purge_deliveries(i64::MAX).await.unwrap(), 1);
    assert_eq!(due(i64::MAX).await, [ids[2]]);
    // Deleting a receiver deletes its deliveries.
    assert!(f.store.delete_receiver("oncall").await.unwrap());
    assert!(f.store.list_deliveries(None, 10).await.unwrap().is_empty());
    assert_eq!(f.store.next_delivery_at().await.unwrap(), None);
    f.store.close().await;
}

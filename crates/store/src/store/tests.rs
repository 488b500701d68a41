//! Tests of opening, closing and snapshotting the database file.

use sqlx::Row;

use crate::fixture::{Fixture, labels};
use crate::*;

async fn pragma(store: &Store, name: &str) -> String {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA {name}")))
        .fetch_one(&store.reader)
        .await
        .unwrap();
    match row.try_get::<String, _>(0) {
        Ok(text) => text,
        Err(_) => row.try_get::<i64, _>(0).unwrap().to_string(),
    }
}

#[tokio::test]
async fn open_creates_a_wal_database_with_the_schema_and_reopen_keeps_data() {
    let f = Fixture::new().await;
    assert_eq!(pragma(&f.store, "journal_mode").await, "wal");
    assert_eq!(pragma(&f.store, "foreign_keys").await, "1");
    assert_eq!(pragma(&f.store, "busy_timeout").await, "5000");
    assert_eq!(pragma(&f.store, "synchronous").await, "1", "NORMAL");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&f.store.reader)
        .await
        .unwrap();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations"))
        .unwrap()
        .count();
    assert_eq!(applied, i64::try_from(migrations).unwrap());

    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(f.db_path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the database is readable by its owner only");
    f.insert("written-to-the-wal").await;
    let wal = f.db_path().with_extension("db-wal");
    let mode = std::fs::metadata(&wal).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "SQLite gives the WAL the database's permissions"
    );

    let inserted = f.insert("prod-eu").await;
    f.store.close().await;
    assert!(
        !f.db_path().with_extension("db-wal").exists()
            || std::fs::metadata(f.db_path().with_extension("db-wal"))
                .unwrap()
                .len()
                == 0,
        "close checkpoints the WAL"
    );

    let reopened = Store::open(&f.db_path()).await.unwrap();
    assert_eq!(
        reopened.get_cluster("prod-eu").await.unwrap(),
        Some(inserted)
    );
    reopened.close().await;
}

#[tokio::test]
async fn open_reports_a_missing_parent_directory() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open(&dir.path().join("missing/pilothouse.db"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::CreateFile { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_is_a_consistent_database_while_writes_go_on() {
    let f = Fixture::new().await;
    for i in 0..50 {
        f.insert(&format!("before-{i:03}")).await;
    }
    let (started, writing) = tokio::sync::oneshot::channel();
    let writer = {
        let store = f.store.clone();
        let key = f.key.clone();
        tokio::spawn(async move {
            let mut started = Some(started);
            for i in 0..200 {
                if i == 20 {
                    let _ = started.take().map(|s| s.send(()));
                }
                let name = format!("during-{i:03}");
                let mut new = Fixture::cluster_with(&key, &name);
                new.labels = labels(&[("i", &i.to_string())]);
                store.insert_cluster(&new).await.unwrap();
            }
        })
    };
    let snapshot = f.dir.path().join("snapshot.db");
    writing.await.unwrap();
    f.store.snapshot_to(&snapshot).await.unwrap();
    writer.await.unwrap();

    // A second snapshot to the same path is refused, not overwritten.
    let size = std::fs::metadata(&snapshot).unwrap().len();
    let err = f.store.snapshot_to(&snapshot).await.unwrap_err();
    assert!(matches!(err, StoreError::CreateFile { .. }), "{err:?}");
    assert_eq!(std::fs::metadata(&snapshot).unwrap().len(), size);
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&snapshot).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let copy = Store::open(&snapshot).await.unwrap();
    let page = copy
        .list_clusters(&ClusterQuery {
            limit: 500,
            ..ClusterQuery::default()
        })
        .await
        .unwrap();
    let before = page
        .items
        .iter()
        .filter(|c| c.name.starts_with("before-"))
        .count();
    let during: Vec<_> = page
        .items
        .iter()
        .filter(|c| c.name.starts_with("during-"))
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(before, 50);
    assert!(during.len() >= 20, "{} concurrent inserts", during.len());
    eprintln!(
        "the snapshot holds {} of 200 concurrent inserts",
        during.len()
    );
    // Consistent: a prefix of the concurrent inserts, with no gaps.
    let expected: Vec<_> = (0..during.len())
        .map(|i| format!("during-{i:03}"))
        .collect();
    assert_eq!(during, expected);
    let sealed = copy
        .cluster_credentials("before-007")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        f.key.open(&sealed, "cluster:before-007").unwrap(),
        b"kubeconfig of before-007"
    );
    copy.close().await;
    f.store.close().await;
}

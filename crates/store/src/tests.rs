//! Tests against real SQLite files in temporary directories.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use sqlx::Row;
use tempfile::TempDir;

use crate::*;

struct Fixture {
    dir: TempDir,
    store: Store,
    key: MasterKey,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("pilothouse.db"))
            .await
            .unwrap();
        Fixture {
            dir,
            store,
            key: MasterKey::generate().unwrap(),
        }
    }

    fn db_path(&self) -> PathBuf {
        self.dir.path().join("pilothouse.db")
    }

    fn cluster(&self, name: &str) -> NewCluster {
        Fixture::cluster_with(&self.key, name)
    }

    async fn insert(&self, name: &str) -> Cluster {
        self.store
            .insert_cluster(&self.cluster(name))
            .await
            .unwrap()
    }

    async fn names(&self, query: ClusterQuery) -> Vec<String> {
        let page = self.store.list_clusters(&query).await.unwrap();
        page.items.into_iter().map(|c| c.name).collect()
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn file_contains(path: &Path, needle: &[u8]) -> bool {
    match std::fs::read(path) {
        Ok(bytes) => bytes.windows(needle.len()).any(|w| w == needle),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

/// The database file and its WAL and shared-memory files.
fn db_files(db: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", db.display())))
        .collect()
}

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
async fn tokens_authenticate_by_secret_until_revoked() {
    let f = Fixture::new().await;
    assert_eq!(f.store.count_tokens().await.unwrap(), 0);
    let (reader, read_secret) = f.store.create_token("grafana", Scope::Read).await.unwrap();
    let (writer, write_secret) = f.store.create_token("ci", Scope::Write).await.unwrap();
    assert!(read_secret.starts_with(TOKEN_PREFIX));
    assert_eq!(read_secret.len(), TOKEN_PREFIX.len() + 43);
    assert_ne!(read_secret, write_secret);
    assert_eq!(reader.name, "grafana");
    assert_eq!(reader.scope, Scope::Read);
    assert_eq!(reader.last_used_at, None);
    assert_eq!(f.store.count_tokens().await.unwrap(), 2);
    assert_eq!(
        f.store.list_tokens().await.unwrap(),
        [reader.clone(), writer.clone()]
    );

    let authenticated = f.store.authenticate(&read_secret).await.unwrap().unwrap();
    assert_eq!(authenticated.id, reader.id);
    assert_eq!(authenticated.scope, Scope::Read);
    let used = authenticated
        .last_used_at
        .expect("the first use is recorded");
    // Within the minute the use is not written again.
    let again = f.store.authenticate(&read_secret).await.unwrap().unwrap();
    assert_eq!(again.last_used_at, Some(used));
    let listed = f.store.list_tokens().await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(used));

    let authenticated = f.store.authenticate(&write_secret).await.unwrap().unwrap();
    assert_eq!(authenticated.scope, Scope::Write);

    assert_eq!(f.store.authenticate("ph_wrong").await.unwrap(), None);
    assert_eq!(f.store.authenticate("").await.unwrap(), None);
    let mut almost = read_secret.clone();
    almost.pop();
    assert_eq!(f.store.authenticate(&almost).await.unwrap(), None);

    assert!(f.store.revoke_token(reader.id).await.unwrap());
    assert!(!f.store.revoke_token(reader.id).await.unwrap());
    assert!(!f.store.revoke_token(9_999).await.unwrap());
    assert_eq!(f.store.authenticate(&read_secret).await.unwrap(), None);
    assert!(f.store.authenticate(&write_secret).await.unwrap().is_some());
    assert_eq!(f.store.count_tokens().await.unwrap(), 1);
    assert_eq!(
        f.store
            .list_tokens()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        [writer.id]
    );

    // Ids are not reused after revocation.
    let (third, _) = f.store.create_token("third", Scope::Read).await.unwrap();
    assert!(third.id > writer.id);

    // Only hashes reach the disk.
    for file in db_files(&f.db_path()) {
        for secret in [&read_secret, &write_secret] {
            assert!(
                !file_contains(&file, secret.as_bytes()),
                "{}",
                file.display()
            );
        }
    }
    f.store.close().await;
    for secret in [&read_secret, &write_secret] {
        assert!(!file_contains(&f.db_path(), secret.as_bytes()));
    }
}

#[test]
fn scopes_parse_display_and_imply() {
    assert_eq!("read".parse::<Scope>(), Ok(Scope::Read));
    assert_eq!("write".parse::<Scope>(), Ok(Scope::Write));
    assert_eq!("admin".parse::<Scope>(), Err(UnknownScope("admin".into())));
    assert_eq!(Scope::Write.to_string(), "write");
    assert_eq!(serde_json::to_string(&Scope::Read).unwrap(), "\"read\"");
    assert!(Scope::Write.allows(Scope::Read));
    assert!(Scope::Write.allows(Scope::Write));
    assert!(Scope::Read.allows(Scope::Read));
    assert!(!Scope::Read.allows(Scope::Write));
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

impl Fixture {
    fn cluster_with(key: &MasterKey, name: &str) -> NewCluster {
        NewCluster {
            name: name.to_owned(),
            cloud: Cloud::Other,
            cloud_source: CloudSource::Default,
            server_url: format!("https://{name}.example:6443"),
            context: format!("{name}-context"),
            labels: BTreeMap::new(),
            kubernetes_version: None,
            credentials: key
                .seal(
                    format!("kubeconfig of {name}").as_bytes(),
                    &format!("cluster:{name}"),
                )
                .unwrap(),
            check: None,
            sync_mode: SyncMode::Auto,
        }
    }
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

fn revision(id: &str, summary: &str) -> RevisionRecord {
    RevisionRecord {
        id: id.into(),
        author: "Ada Ops <ada@example.com>".into(),
        summary: summary.into(),
        committed_at: 1_700_000_000_000,
        seen_at: 0,
    }
}

#[tokio::test]
async fn repository_settings_secrets_fetches_and_events() {
    let f = Fixture::new().await;
    assert_eq!(f.store.get_repository().await.unwrap(), None);
    // A fetch before the repository exists is refused.
    assert!(matches!(
        f.store.record_fetch(&revision("a1", "x")).await,
        Err(StoreError::NotFound { .. })
    ));

    let settings = RepositorySettings {
        url: "https://git.example/ops/desired.git".into(),
        branch: "main".into(),
        path: "".into(),
        poll_interval_secs: 60,
    };
    let token = f
        .key
        .seal(b"{\"kind\":\"token\"}", REPOSITORY_CREDENTIALS_CONTEXT)
        .unwrap();
    let webhook = f.key.seal(b"hook-secret", WEBHOOK_SECRET_CONTEXT).unwrap();
    let repo = f
        .store
        .put_repository(
            &settings,
            SecretChange::Set((CredentialsKind::Token, token.clone())),
            SecretChange::Set(webhook.clone()),
        )
        .await
        .unwrap();
    assert_eq!(repo.settings, settings);
    assert_eq!(repo.credentials_kind, CredentialsKind::Token);
    assert!(repo.has_webhook_secret);
    assert_eq!(
        f.store.repository_credentials().await.unwrap(),
        Some((CredentialsKind::Token, token))
    );
    assert_eq!(f.store.webhook_secret().await.unwrap(), Some(webhook));
    // Secrets never reach the file in clear.
    assert!(!file_contains(&f.db_path(), b"hook-secret"));

    // A new head is recorded once; the same head again is no change.
    assert!(
        f.store
            .record_fetch(&revision("a1", "first"))
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .record_fetch(&revision("a1", "first"))
            .await
            .unwrap()
    );
    f.store
        .record_fetch_failure("remote unreachable")
        .await
        .unwrap();
    let repo = f.store.get_repository().await.unwrap().unwrap();
    assert_eq!(repo.head_revision.as_deref(), Some("a1"));
    assert_eq!(repo.last_fetch_error.as_deref(), Some("remote unreachable"));
    assert_eq!(repo.consecutive_fetch_failures, 1);
    assert!(
        f.store
            .record_fetch(&revision("b2", "second"))
            .await
            .unwrap()
    );
    let repo = f.store.get_repository().await.unwrap().unwrap();
    assert_eq!(repo.last_fetch_error, None);
    assert_eq!(repo.consecutive_fetch_failures, 0);
    let kinds: Vec<_> = f
        .store
        .list_repository_events(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.revision))
        .collect();
    assert_eq!(
        kinds,
        [
            (RepositoryEventKind::Fetched, Some("b2".into())),
            (RepositoryEventKind::FetchFailed, None),
            (RepositoryEventKind::Fetched, Some("a1".into())),
        ]
    );
    assert_eq!(
        f.store.get_revision("a1").await.unwrap().unwrap().summary,
        "first"
    );

    // Keeping secrets keeps them; changing the branch forgets the head;
    // clearing removes them.
    let other = RepositorySettings {
        branch: "release".into(),
        ..settings
    };
    let repo = f
        .store
        .put_repository(&other, SecretChange::Keep, SecretChange::Clear)
        .await
        .unwrap();
    assert_eq!(repo.credentials_kind, CredentialsKind::Token);
    assert!(!repo.has_webhook_secret);
    assert_eq!(repo.head_revision, None);
    let repo = f
        .store
        .put_repository(&other, SecretChange::Clear, SecretChange::Keep)
        .await
        .unwrap();
    assert_eq!(repo.credentials_kind, CredentialsKind::None);
    assert_eq!(f.store.repository_credentials().await.unwrap(), None);
    f.store.close().await;
}

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

#[test]
fn text_enums_round_trip_and_name_the_allowed_values() {
    for mode in SyncMode::ALL {
        assert_eq!(mode.as_str().parse::<SyncMode>().unwrap(), *mode);
    }
    let error = "sometimes".parse::<SyncMode>().unwrap_err();
    assert_eq!(
        error,
        "unknown sync mode `sometimes` (expected one of: manual, auto, self_heal)"
    );
    assert_eq!(
        serde_json::to_string(&ObjectAction::PruneSkipped).unwrap(),
        "\"prune_skipped\""
    );
    assert_eq!(
        Health::worst([Health::Healthy, Health::Degraded, Health::Missing]),
        Health::Degraded
    );
    assert_eq!(
        Health::worst([Health::Progressing, Health::Unknown]),
        Health::Unknown
    );
    assert_eq!(Health::worst([]), Health::Healthy);
}

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

fn silence(starts_at: i64, ends_at: i64) -> SilenceWrite {
    SilenceWrite {
        matchers: serde_json::json!([{"label": "cluster", "op": "=", "value": "edge"}]),
        starts_at,
        ends_at,
        author: "ada".into(),
        comment: "maintenance".into(),
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

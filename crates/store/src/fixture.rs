//! What the store's tests share: a store in a temporary directory with a
//! master key, a cluster to register, and looks at the files on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::*;

/// A store in a fresh temporary directory (removed on drop) and a master key.
pub(crate) struct Fixture {
    pub(crate) dir: TempDir,
    pub(crate) store: Store,
    pub(crate) key: MasterKey,
}

impl Fixture {
    pub(crate) async fn new() -> Fixture {
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

    pub(crate) fn db_path(&self) -> PathBuf {
        self.dir.path().join("pilothouse.db")
    }

    pub(crate) fn cluster(&self, name: &str) -> NewCluster {
        Fixture::cluster_with(&self.key, name)
    }

    pub(crate) async fn insert(&self, name: &str) -> Cluster {
        self.store
            .insert_cluster(&self.cluster(name))
            .await
            .unwrap()
    }

    pub(crate) async fn names(&self, query: ClusterQuery) -> Vec<String> {
        let page = self.store.list_clusters(&query).await.unwrap();
        page.items.into_iter().map(|c| c.name).collect()
    }

    /// Runs `sql` on the writer with CHECK constraints off: a row as a hand
    /// edit (or another version) could leave it, which the store must refuse
    /// to read rather than skip or repair.
    pub(crate) async fn write_unchecked(&self, sql: &'static str) {
        let mut connection = self.store.writer.acquire().await.unwrap();
        sqlx::query("PRAGMA ignore_check_constraints = ON")
            .execute(&mut *connection)
            .await
            .unwrap();
        let written = sqlx::query(sql).execute(&mut *connection).await;
        sqlx::query("PRAGMA ignore_check_constraints = OFF")
            .execute(&mut *connection)
            .await
            .unwrap();
        assert!(written.unwrap().rows_affected() > 0, "{sql}");
    }

    /// A cluster to register, its kubeconfig sealed with `key`.
    pub(crate) fn cluster_with(key: &MasterKey, name: &str) -> NewCluster {
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

pub(crate) fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub(crate) fn file_contains(path: &Path, needle: &[u8]) -> bool {
    match std::fs::read(path) {
        Ok(bytes) => bytes.windows(needle.len()).any(|w| w == needle),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("cannot read {}: {e}", path.display()),
    }
}

/// The database file and its WAL and shared-memory files.
pub(crate) fn db_files(db: &Path) -> Vec<PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", db.display())))
        .collect()
}

/// A silence of the `edge` cluster.
pub(crate) fn silence(starts_at: i64, ends_at: i64) -> SilenceWrite {
    SilenceWrite {
        matchers: serde_json::json!([{"label": "cluster", "op": "=", "value": "edge"}]),
        starts_at,
        ends_at,
        author: "ada".into(),
        comment: "maintenance".into(),
    }
}

//! The database handle: opening, migrations, closing and snapshots.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection as _, SqliteConnection, SqlitePool};

use crate::StoreError;

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections that only read; WAL lets them run beside the writer.
const READERS: u32 = 4;

/// Pilothouse's database: a SQLite file in WAL mode.
///
/// Cloning is cheap and shares the connections. Writes go through a single
/// connection, so they queue in the process instead of contending for
/// SQLite's lock; reads use a small pool of read-only connections that run
/// beside the writer.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
    /// Options of a plain connection (for snapshots).
    options: SqliteConnectOptions,
}

impl Store {
    /// Opens (creating if missing, with owner-only permissions) the database
    /// file at `path` and applies the migrations. The parent directory must
    /// exist. Connections use WAL journaling, foreign keys, a 5 s busy
    /// timeout and `synchronous = NORMAL`.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        create_owner_only(path, true)?;
        let open_error = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let base = SqliteConnectOptions::new()
            .filename(path)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Normal);

        // The writer sets WAL mode (a persistent property of the file), so it
        // connects first; readers only ever read.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
            )
            .await
            .map_err(open_error)?;
        sqlx::migrate!("../../migrations")
            .run(&writer)
            .await
            .map_err(StoreError::Migrate)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(base.clone().pragma("query_only", "ON"))
            .await
            .map_err(open_error)?;
        Ok(Store {
            writer,
            reader,
            options: base,
        })
    }

    /// Closes every connection, checkpointing the WAL into the database file
    /// first. Calls made after this fail.
    pub async fn close(&self) {
        self.reader.close().await;
        // Best effort: closing the last connection checkpoints as well.
        let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer)
            .await;
        self.writer.close().await;
    }

    /// Writes a consistent copy of the whole database to `dest` while the
    /// store stays in use (`VACUUM INTO`). `dest` must not exist; it is
    /// created readable by its owner only. The copy is compact and
    /// self-contained, with no WAL to go with it.
    pub async fn snapshot_to(&self, dest: &Path) -> Result<(), StoreError> {
        let snapshot_error = |source| StoreError::Snapshot {
            dest: dest.to_owned(),
            source,
        };
        let dest_str = dest.to_str().ok_or_else(|| {
            snapshot_error(sqlx::Error::Configuration(
                "the snapshot path is not valid UTF-8".into(),
            ))
        })?;
        // VACUUM INTO accepts an empty file: creating it first gives it
        // owner-only permissions and refuses an existing one.
        create_owner_only(dest, false)?;
        // A connection of its own: readers are query-only (which refuses
        // VACUUM INTO), and the writer must stay free for writes meanwhile.
        let result = async {
            let mut connection = SqliteConnection::connect_with(&self.options).await?;
            let result = sqlx::query("VACUUM INTO ?")
                .bind(dest_str)
                .execute(&mut connection)
                .await;
            let _ = connection.close().await;
            result
        }
        .await;
        if let Err(source) = result {
            let _ = std::fs::remove_file(dest);
            return Err(snapshot_error(source));
        }
        Ok(())
    }
}

/// Creates an empty database file with mode 0600, so the database (and the
/// WAL and shared-memory files SQLite derives from its permissions) is
/// readable by its owner only. An existing file is kept if `may_exist`, else
/// refused.
fn create_owner_only(path: &Path, may_exist: bool) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if may_exist && e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::CreateFile {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The current time in unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests;

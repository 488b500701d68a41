//! The one error type of the store.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the store and with the master key.
///
/// The API maps [`StoreError::Conflict`] and [`StoreError::InUse`] to 409,
/// [`StoreError::NotFound`] to 404 and [`StoreError::InvalidInput`] to 422;
/// every other variant is a server-side failure. No variant ever
/// carries key material, plaintext or ciphertext.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open the database {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite (or the file system) said.
        #[source]
        source: sqlx::Error,
    },

    /// The database file could not be created with owner-only permissions.
    #[error("cannot create the database file {}", path.display())]
    CreateFile {
        /// The database file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },

    /// Applying the schema migrations failed, e.g. the database was written by
    /// a newer Pilothouse or a landed migration was edited.
    #[error("cannot apply the database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),

    /// A row with the same unique key already exists (e.g. a duplicate
    /// cluster name).
    #[error("{what} already exists")]
    Conflict {
        /// What collided, e.g. "cluster `prod-eu`".
        what: String,
        /// The constraint violation reported by SQLite.
        #[source]
        source: sqlx::Error,
    },

    /// The row an operation needs does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What is missing, e.g. "cluster `prod-eu`".
        what: String,
    },

    /// A row cannot be deleted while other rows still refer to it (e.g. a
    /// receiver that routes send to).
    #[error("{what} is still used by {by}")]
    InUse {
        /// What was to be deleted, e.g. "receiver `on-call`".
        what: String,
        /// What still refers to it, e.g. "routes 3, 7".
        by: String,
    },

    /// A value given to the store breaks a rule of the schema (e.g. a silence
    /// that ends before it starts); nothing was written.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// What was refused, e.g. "route".
        what: &'static str,
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// A query failed.
    #[error("database query failed")]
    Database(#[source] sqlx::Error),

    /// A row holds a value this version of Pilothouse does not understand
    /// (the database was edited by hand or written by a newer version).
    #[error("unexpected value in column `{column}`: {reason}")]
    InvalidRow {
        /// The column (table.column).
        column: &'static str,
        /// Why the value was refused (never contains secrets).
        reason: String,
    },

    /// A consistent copy of the database could not be written.
    #[error("cannot write a snapshot of the database to {}", dest.display())]
    Snapshot {
        /// The destination file.
        dest: PathBuf,
        /// What SQLite said (e.g. the destination already exists).
        #[source]
        source: sqlx::Error,
    },

    /// The master key file could not be read, created or written.
    #[error("cannot {action} the master key file {}", path.display())]
    KeyFile {
        /// What was being done: "read", "create", "write".
        action: &'static str,
        /// The key file (or its directory).
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: io::Error,
    },

    /// The master key file can be read or written by other users.
    #[error(
        "the master key file {} is accessible by group or others (mode {mode:04o}); \
         restrict it with `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The master key (from the file or the environment) is not base64 of 32
    /// bytes.
    #[error(
        "the master key from {origin} is invalid: {reason} \
         (expected 32 random bytes in base64, e.g. `head -c 32 /dev/urandom | base64`)"
    )]
    InvalidKey {
        /// Where the key came from: the file path or `PILOTHOUSE_MASTER_KEY`.
        origin: String,
        /// What is wrong with it (never contains key material).
        reason: &'static str,
    },

    /// A secret was sealed with another master key than the loaded one.
    #[error(
        "the secret was sealed with master key `{sealed_with}`, \
         but the loaded master key is `{loaded}`"
    )]
    WrongKey {
        /// The key id recorded with the secret.
        sealed_with: String,
        /// The key id of the loaded master key.
        loaded: String,
    },

    /// A secret could not be decrypted with the right key: it was tampered
    /// with, or it belongs to another record (context).
    #[error(
        "cannot decrypt the secret for `{context}` with master key `{key_id}`: \
         it was modified or belongs to another record"
    )]
    Decrypt {
        /// The key id of the loaded master key.
        key_id: String,
        /// The context the secret was opened for, e.g. "cluster:prod-eu".
        context: String,
    },

    /// The system random number generator or the cipher failed.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}

impl StoreError {
    /// Maps a query failure, recognising unique-constraint violations as
    /// [`StoreError::Conflict`] about `what`.
    pub(crate) fn from_write(source: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
        let unique = matches!(&source, sqlx::Error::Database(e) if e.is_unique_violation());
        if unique {
            StoreError::Conflict {
                what: what(),
                source,
            }
        } else {
            StoreError::Database(source)
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(source: sqlx::Error) -> Self {
        StoreError::Database(source)
    }
}

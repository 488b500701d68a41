//! The desired-state repository: its settings and sealed credentials, the
//! revisions fetched from it, and a log of what happened to it.

use crate::decode::{self, SealedRow};
use crate::store::now_ms;
use crate::text_enum::text_enum;
use crate::{SealedSecret, Store, StoreError};

/// Events kept in `repository_events`; older ones are trimmed.
const EVENTS_KEPT: i64 = 1000;

/// The context the repository's Git credentials were sealed with before
/// they were bound to the remote's origin; only read to re-seal them with
/// [`repository_credentials_context`].
pub const REPOSITORY_CREDENTIALS_CONTEXT: &str = "repository:credentials";

/// The context the repository's Git credentials are sealed with: bound to
/// the remote's origin (`scheme://host:port`, as `pilothouse_gitops::remote_origin`
/// gives it), so that credentials sealed for one host can never be opened
/// for another — a repository URL that moves to another origin needs new
/// credentials.
pub fn repository_credentials_context(origin: &str) -> String {
    format!("{REPOSITORY_CREDENTIALS_CONTEXT}:{origin}")
}
/// The context the webhook secret is sealed with.
pub const WEBHOOK_SECRET_CONTEXT: &str = "repository:webhook-secret";

text_enum! {
    /// Which kind of Git credentials the repository uses.
    pub enum CredentialsKind ("credentials kind") {
        /// Anonymous access (local paths, public repositories).
        None = "none",
        /// HTTPS with a token.
        Token = "token",
        /// SSH with a private key.
        SshKey = "ssh_key",
    }
}

text_enum! {
    /// What happened to the repository.
    pub enum RepositoryEventKind ("repository event kind") {
        /// A fetch found a new branch head.
        Fetched = "fetched",
        /// A fetch failed; the last good revision stays in force.
        FetchFailed = "fetch_failed",
        /// A webhook delivery was accepted.
        Webhook = "webhook",
        /// Pilothouse pushed a commit.
        Pushed = "pushed",
        /// A push was refused or failed; nothing changed.
        PushFailed = "push_failed",
    }
}

/// Where the desired state comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepositorySettings {
    /// Local path, `file://`, `https://` or SSH URL.
    pub url: String,
    /// The branch followed.
    pub branch: String,
    /// Sub-path inside the repository holding `manifests/`, `overlays/` and
    /// `gitops/` (`""`: the root).
    pub path: String,
    /// Seconds between polls (jitter is added by the poller).
    pub poll_interval_secs: u32,
}

/// A change to one of the repository's secrets.
#[derive(Debug, Clone)]
pub enum SecretChange<T> {
    /// Leave it as it is.
    Keep,
    /// Remove it.
    Clear,
    /// Replace it.
    Set(T),
}

/// The repository as stored. Secrets are not part of it: only whether they
/// are set.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Repository {
    /// Where the desired state comes from.
    pub settings: RepositorySettings,
    /// The kind of credentials stored.
    pub credentials_kind: CredentialsKind,
    /// Whether a webhook secret is set (webhooks are refused without one).
    pub has_webhook_secret: bool,
    /// The branch head at the last successful fetch.
    pub head_revision: Option<String>,
    /// When the repository was last fetched, successfully or not (unix ms).
    pub last_fetch_at: Option<i64>,
    /// Why the last fetch failed, if it did.
    pub last_fetch_error: Option<String>,
    /// Failed fetches in a row.
    pub consecutive_fetch_failures: u32,
    /// When the settings last changed (unix ms).
    pub updated_at: i64,
}

/// A commit fetched as a branch head.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RevisionRecord {
    /// Full commit id.
    pub id: String,
    /// `Name <email>`.
    pub author: String,
    /// First line of the message.
    pub summary: String,
    /// Commit time (unix ms).
    pub committed_at: i64,
    /// When Pilothouse first fetched it (unix ms); ignored on insert.
    pub seen_at: i64,
}

/// One entry of the repository's log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RepositoryEvent {
    /// Increasing id.
    pub id: i64,
    /// When it happened (unix ms).
    pub at: i64,
    /// What happened.
    pub kind: RepositoryEventKind,
    /// The revision concerned, if any.
    pub revision: Option<String>,
    /// Details (never secrets).
    pub message: String,
}

impl Store {
    /// The repository, if configured.
    pub async fn get_repository(&self) -> Result<Option<Repository>, StoreError> {
        let row = sqlx::query_as::<_, RepositoryRow>(
            "SELECT url, branch, path, poll_interval_secs, credentials_kind, \
                 webhook_secret_ciphertext IS NOT NULL AS has_webhook_secret, head_revision, \
                 last_fetch_at, last_fetch_error, consecutive_fetch_failures, updated_at \
             FROM repository WHERE id = 1",
        )
        .fetch_optional(&self.reader)
        .await?;
        row.map(Repository::try_from).transpose()
    }

    /// Creates or changes the repository. Changing the URL or the branch
    /// forgets the fetched head (the next fetch starts over). Credentials are
    /// sealed with [`REPOSITORY_CREDENTIALS_CONTEXT`], the webhook secret with
    /// [`WEBHOOK_SECRET_CONTEXT`].
    pub async fn put_repository(
        &self,
        settings: &RepositorySettings,
        credentials: SecretChange<(CredentialsKind, SealedSecret)>,
        webhook_secret: SecretChange<SealedSecret>,
    ) -> Result<Repository, StoreError> {
        let mut tx = self.writer.begin().await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO repository (id, url, branch, path, poll_interval_secs, updated_at) \
             VALUES (1, ?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (id) DO UPDATE SET \
                 head_revision = CASE WHEN url = ?1 AND branch = ?2 THEN head_revision END, \
                 url = ?1, branch = ?2, path = ?3, poll_interval_secs = ?4, updated_at = ?5",
        )
        .bind(&settings.url)
        .bind(&settings.branch)
        .bind(&settings.path)
        .bind(i64::from(settings.poll_interval_secs))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let (kind, sealed) = match credentials {
            SecretChange::Keep => (None, None),
            SecretChange::Clear => (Some(CredentialsKind::None), None),
            SecretChange::Set((kind, sealed)) => (Some(kind), Some(sealed)),
        };
        if let Some(kind) = kind {
            sqlx::query(
                "UPDATE repository SET credentials_kind = ?, credentials_key_id = ?, \
                     credentials_nonce = ?, credentials_ciphertext = ? WHERE id = 1",
            )
            .bind(kind.as_str())
            .bind(sealed.as_ref().map(|s| &s.key_id))
            .bind(sealed.as_ref().map(|s| &s.nonce))
            .bind(sealed.as_ref().map(|s| &s.ciphertext))
            .execute(&mut *tx)
            .await?;
        }
        let secret = match webhook_secret {
            SecretChange::Keep => None,
            SecretChange::Clear => Some(None),
            SecretChange::Set(sealed) => Some(Some(sealed)),
        };
        if let Some(secret) = secret {
            sqlx::query(
                "UPDATE repository SET webhook_secret_key_id = ?, webhook_secret_nonce = ?, \
                     webhook_secret_ciphertext = ? WHERE id = 1",
            )
            .bind(secret.as_ref().map(|s| &s.key_id))
            .bind(secret.as_ref().map(|s| &s.nonce))
            .bind(secret.as_ref().map(|s| &s.ciphertext))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.get_repository()
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "the repository".into(),
            })
    }

    /// The sealed Git credentials, if any.
    pub async fn repository_credentials(
        &self,
    ) -> Result<Option<(CredentialsKind, SealedSecret)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct CredentialsRow {
            credentials_kind: String,
            #[sqlx(flatten)]
            sealed: SealedRow,
        }
        let row = sqlx::query_as::<_, CredentialsRow>(
            "SELECT credentials_kind, credentials_key_id AS key_id, credentials_nonce AS nonce, \
                 credentials_ciphertext AS ciphertext \
             FROM repository WHERE id = 1 AND credentials_ciphertext IS NOT NULL",
        )
        .fetch_optional(&self.reader)
        .await?;
        row.map(|row| {
            Ok((
                decode::text(&row.credentials_kind, "repository.credentials_kind")?,
                row.sealed.into(),
            ))
        })
        .transpose()
    }

    /// The sealed webhook secret, if set.
    pub async fn webhook_secret(&self) -> Result<Option<SealedSecret>, StoreError> {
        let row = sqlx::query_as::<_, SealedRow>(
            "SELECT webhook_secret_key_id AS key_id, webhook_secret_nonce AS nonce, \
                 webhook_secret_ciphertext AS ciphertext \
             FROM repository WHERE id = 1 AND webhook_secret_ciphertext IS NOT NULL",
        )
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(SealedSecret::from))
    }

    /// Records a successful fetch whose branch head is `head`: the revision
    /// is kept, the head moves, the failure count resets, and a `fetched`
    /// event is logged when the head changed. Returns whether it changed.
    pub async fn record_fetch(&self, head: &RevisionRecord) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO revisions (id, author, summary, committed_at, seen_at) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&head.id)
        .bind(&head.author)
        .bind(&head.summary)
        .bind(head.committed_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let previous: Option<Option<String>> =
            sqlx::query_scalar("SELECT head_revision FROM repository WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await?;
        let Some(previous) = previous else {
            return Err(StoreError::NotFound {
                what: "the repository".into(),
            });
        };
        let changed = previous.as_deref() != Some(head.id.as_str());
        sqlx::query(
            "UPDATE repository SET head_revision = ?, last_fetch_at = ?, last_fetch_error = NULL, \
                 consecutive_fetch_failures = 0 WHERE id = 1",
        )
        .bind(&head.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if changed {
            let message = format!("new head: {}", head.summary);
            insert_event(
                &mut tx,
                now,
                RepositoryEventKind::Fetched,
                Some(&head.id),
                &message,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Records a failed fetch: the head stays, the error is kept and logged.
    pub async fn record_fetch_failure(&self, error: &str) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        let now = now_ms();
        sqlx::query(
            "UPDATE repository SET last_fetch_at = ?, last_fetch_error = ?, \
                 consecutive_fetch_failures = consecutive_fetch_failures + 1 WHERE id = 1",
        )
        .bind(now)
        .bind(error)
        .execute(&mut *tx)
        .await?;
        insert_event(&mut tx, now, RepositoryEventKind::FetchFailed, None, error).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a webhook delivery, known by `keys` (its delivery id, a
    /// digest of its body, …), as seen now; `false`, recording nothing,
    /// when any of the keys was recorded within `window_ms` before (a
    /// replay). Keys older than the window are forgotten.
    pub async fn record_webhook_delivery(
        &self,
        keys: &[String],
        window_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let now = now_ms();
        sqlx::query("DELETE FROM webhook_deliveries WHERE seen_at < ?")
            .bind(now.saturating_sub(window_ms))
            .execute(&mut *tx)
            .await?;
        for key in keys {
            let inserted = sqlx::query(
                "INSERT INTO webhook_deliveries (delivery_id, seen_at) VALUES (?, ?) \
                 ON CONFLICT (delivery_id) DO NOTHING",
            )
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Logs an event about the repository.
    pub async fn record_repository_event(
        &self,
        kind: RepositoryEventKind,
        revision: Option<&str>,
        message: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        insert_event(&mut tx, now_ms(), kind, revision, message).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The most recent repository events, newest first.
    pub async fn list_repository_events(
        &self,
        limit: u32,
    ) -> Result<Vec<RepositoryEvent>, StoreError> {
        let rows = sqlx::query_as::<_, EventRow>(
            "SELECT id, at, kind, revision, message FROM repository_events \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(RepositoryEvent::try_from).collect()
    }

    /// A fetched revision.
    pub async fn get_revision(&self, id: &str) -> Result<Option<RevisionRecord>, StoreError> {
        let row = sqlx::query_as::<_, RevisionRow>(
            "SELECT id, author, summary, committed_at, seen_at FROM revisions WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(RevisionRecord::from))
    }

    /// The most recently fetched revisions, newest first.
    pub async fn list_revisions(&self, limit: u32) -> Result<Vec<RevisionRecord>, StoreError> {
        let rows = sqlx::query_as::<_, RevisionRow>(
            "SELECT id, author, summary, committed_at, seen_at FROM revisions \
             ORDER BY seen_at DESC, committed_at DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(RevisionRecord::from).collect())
    }
}

async fn insert_event(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    at: i64,
    kind: RepositoryEventKind,
    revision: Option<&str>,
    message: &str,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO repository_events (at, kind, revision, message) VALUES (?, ?, ?, ?)")
        .bind(at)
        .bind(kind.as_str())
        .bind(revision)
        .bind(message)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "DELETE FROM repository_events WHERE id <= (SELECT MAX(id) FROM repository_events) - ?",
    )
    .bind(EVENTS_KEPT)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The row of `repository` as [`Store::get_repository`] selects it.
#[derive(sqlx::FromRow)]
struct RepositoryRow {
    url: String,
    branch: String,
    path: String,
    poll_interval_secs: i64,
    credentials_kind: String,
    has_webhook_secret: bool,
    head_revision: Option<String>,
    last_fetch_at: Option<i64>,
    last_fetch_error: Option<String>,
    consecutive_fetch_failures: i64,
    updated_at: i64,
}

impl TryFrom<RepositoryRow> for Repository {
    type Error = StoreError;

    fn try_from(row: RepositoryRow) -> Result<Repository, StoreError> {
        Ok(Repository {
            settings: RepositorySettings {
                url: row.url,
                branch: row.branch,
                path: row.path,
                poll_interval_secs: decode::number(
                    row.poll_interval_secs,
                    "repository.poll_interval_secs",
                )?,
            },
            credentials_kind: decode::text(&row.credentials_kind, "repository.credentials_kind")?,
            has_webhook_secret: row.has_webhook_secret,
            head_revision: row.head_revision,
            last_fetch_at: row.last_fetch_at,
            last_fetch_error: row.last_fetch_error,
            consecutive_fetch_failures: decode::number(
                row.consecutive_fetch_failures,
                "repository.consecutive_fetch_failures",
            )?,
            updated_at: row.updated_at,
        })
    }
}

/// A row of `repository_events`.
#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    at: i64,
    kind: String,
    revision: Option<String>,
    message: String,
}

impl TryFrom<EventRow> for RepositoryEvent {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<RepositoryEvent, StoreError> {
        Ok(RepositoryEvent {
            id: row.id,
            at: row.at,
            kind: decode::text(&row.kind, "repository_events.kind")?,
            revision: row.revision,
            message: row.message,
        })
    }
}

/// A row of `revisions`.
#[derive(sqlx::FromRow)]
struct RevisionRow {
    id: String,
    author: String,
    summary: String,
    committed_at: i64,
    seen_at: i64,
}

impl From<RevisionRow> for RevisionRecord {
    fn from(row: RevisionRow) -> RevisionRecord {
        RevisionRecord {
            id: row.id,
            author: row.author,
            summary: row.summary,
            committed_at: row.committed_at,
            seen_at: row.seen_at,
        }
    }
}

#[cfg(test)]
mod tests;

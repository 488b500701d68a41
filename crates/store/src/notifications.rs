//! Incident notifications, after Alertmanager: receivers with their sealed
//! configuration, routes, silences, the notifier's group states and the
//! outbox of deliveries.
//!
//! Group states and the deliveries they lead to are committed together
//! ([`Store::commit_notifications`]): after a restart the notifier finds
//! exactly the deliveries its saved state says were made, so none is lost
//! and none is sent twice.

use std::fmt;

use sqlx::SqliteConnection;

use crate::decode::{self, SealedRow};
use crate::store::now_ms;
use crate::text_enum::text_enum;
use crate::{MasterKey, SealedSecret, Store, StoreError};

text_enum! {
    /// How a receiver is reached.
    pub enum ReceiverKind ("receiver kind") {
        /// A Slack incoming webhook.
        Slack = "slack",
        /// An HTTP POST of JSON.
        Webhook = "webhook",
        /// Mail.
        Email = "email",
    }
}

/// The context a receiver's configuration is sealed with (bound as
/// associated data): `receiver:NAME`. The store seals and opens with it
/// itself; it is public for tools that re-seal secrets after a key rotation.
pub fn receiver_config_context(name: &str) -> String {
    format!("receiver:{name}")
}

/// A receiver to create, or what replaces one. Its `Debug` output leaves
/// the configuration out.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceiverWrite {
    /// Unique name (validated by the caller).
    pub name: String,
    /// How it is reached.
    pub kind: ReceiverKind,
    /// Its configuration (URLs, tokens, credentials): secret, stored only
    /// sealed with the master key under [`receiver_config_context`].
    pub config: serde_json::Value,
    /// A description without secrets, returned by the API.
    pub summary: serde_json::Value,
}

impl fmt::Debug for ReceiverWrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceiverWrite")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("config", &format_args!("<redacted>"))
            .field("summary", &self.summary)
            .finish()
    }
}

/// A stored receiver. It deliberately has no configuration: that is read
/// only through [`Store::receiver_config`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReceiverRecord {
    /// Id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// How it is reached.
    pub kind: ReceiverKind,
    /// A description without secrets.
    pub summary: serde_json::Value,
    /// When it was created (unix ms).
    pub created_at: i64,
    /// When it was last changed (unix ms).
    pub updated_at: i64,
}

/// A route to create, or what replaces one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteWrite {
    /// The name of the receiver it sends to.
    pub receiver: String,
    /// Label matchers, a JSON array (interpreted by the notifier).
    pub matchers: serde_json::Value,
    /// The labels incidents are grouped by.
    pub group_by: Vec<String>,
    /// Wait before a new group's first notification (ms, `>= 0`).
    pub group_wait_ms: i64,
    /// Wait before notifying about changes of a notified group (ms, `> 0`).
    pub group_interval_ms: i64,
    /// Wait before repeating an unchanged notification (ms, `> 0`).
    pub repeat_interval_ms: i64,
    /// Whether resolutions are notified too.
    pub send_resolved: bool,
    /// Whether the next routes are evaluated after this one matched.
    pub continue_matching: bool,
    /// Evaluation order (lower first, ties by id). On create `None` puts it
    /// after every route; on update `None` keeps its position.
    pub position: Option<i64>,
}

/// A stored route.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RouteRecord {
    /// Id.
    pub id: i64,
    /// Evaluation order (lower first, ties by id).
    pub position: i64,
    /// Id of the receiver it sends to.
    pub receiver_id: i64,
    /// Name of the receiver it sends to.
    pub receiver: String,
    /// Label matchers, a JSON array.
    pub matchers: serde_json::Value,
    /// The labels incidents are grouped by.
    pub group_by: Vec<String>,
    /// Wait before a new group's first notification (ms).
    pub group_wait_ms: i64,
    /// Wait before notifying about changes of a notified group (ms).
    pub group_interval_ms: i64,
    /// Wait before repeating an unchanged notification (ms).
    pub repeat_interval_ms: i64,
    /// Whether resolutions are notified too.
    pub send_resolved: bool,
    /// Whether the next routes are evaluated after this one matched.
    pub continue_matching: bool,
    /// When it was created (unix ms).
    pub created_at: i64,
    /// When it was last changed (unix ms).
    pub updated_at: i64,
}

/// A silence to create.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SilenceWrite {
    /// Label matchers, a JSON array (interpreted by the notifier).
    pub matchers: serde_json::Value,
    /// When it starts (unix ms).
    pub starts_at: i64,
    /// When it ends (unix ms), after `starts_at`.
    pub ends_at: i64,
    /// Who created it.
    pub author: String,
    /// Why.
    pub comment: String,
}

/// A stored silence. It is active at `t` when `starts_at <= t < ends_at`
/// and it has not been expired.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SilenceRecord {
    /// Id.
    pub id: i64,
    /// Label matchers, a JSON array.
    pub matchers: serde_json::Value,
    /// When it starts (unix ms).
    pub starts_at: i64,
    /// When it ends (unix ms); moved to the expiry time when expired early.
    pub ends_at: i64,
    /// Who created it.
    pub author: String,
    /// Why.
    pub comment: String,
    /// When it was created (unix ms).
    pub created_at: i64,
    /// When it was expired by hand (unix ms).
    pub expired_at: Option<i64>,
}

/// The notifier's state of one group of a route, opaque to the store.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NotificationGroup {
    /// The route the group belongs to.
    pub route_id: i64,
    /// The group's key (its values of the route's `group_by` labels).
    pub group_key: String,
    /// What the notifier keeps about the group.
    pub state: serde_json::Value,
}

/// A notification to deliver.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutboxWrite {
    /// The receiver to deliver to.
    pub receiver_id: i64,
    /// The route that produced it.
    pub route_id: Option<i64>,
    /// The key of the group it is about.
    pub group_key: String,
    /// The notification, as the delivery worker needs it.
    pub payload: serde_json::Value,
}

/// A delivery in the outbox: pending (neither `delivered_at` nor
/// `failed_at`), delivered, or given up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OutboxRecord {
    /// Increasing id.
    pub id: i64,
    /// The receiver to deliver to.
    pub receiver_id: i64,
    /// The receiver's name.
    pub receiver: String,
    /// How the receiver is reached.
    pub receiver_kind: ReceiverKind,
    /// The route that produced it (`None` once that route is deleted).
    pub route_id: Option<i64>,
    /// The key of the group it is about.
    pub group_key: String,
    /// The notification.
    pub payload: serde_json::Value,
    /// When it was queued (unix ms).
    pub created_at: i64,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// When it is due for the next attempt (unix ms), while pending.
    pub next_attempt_at: i64,
    /// When it was delivered (unix ms).
    pub delivered_at: Option<i64>,
    /// When delivery was given up (unix ms).
    pub failed_at: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
}

/// Columns of a [`ReceiverRow`]. A macro so queries stay `&'static str`.
macro_rules! receiver_columns {
    () => {
        "id, name, kind, summary, created_at, updated_at"
    };
}

/// Columns of a [`RouteRow`] (routes `t` joined with receivers `r`).
macro_rules! route_columns {
    () => {
        "t.id, t.position, t.receiver_id, r.name AS receiver, t.matchers, t.group_by, t.group_wait_ms, \
         t.group_interval_ms, t.repeat_interval_ms, t.send_resolved, t.continue_matching, \
         t.created_at, t.updated_at"
    };
}

/// Columns of a [`SilenceRow`].
macro_rules! silence_columns {
    () => {
        "id, matchers, starts_at, ends_at, author, comment, created_at, expired_at"
    };
}

/// Columns of an [`OutboxRow`] (outbox `o` joined with receivers `r`).
macro_rules! outbox_columns {
    () => {
        "o.id, o.receiver_id, r.name AS receiver, r.kind AS receiver_kind, o.route_id, o.group_key, o.payload, o.created_at, \
         o.attempts, o.next_attempt_at, o.delivered_at, o.failed_at, o.last_error"
    };
}

/// Delivery rows that are neither delivered nor given up (matches the
/// partial index `outbox_due`).
macro_rules! pending {
    () => {
        "o.delivered_at IS NULL AND o.failed_at IS NULL"
    };
}

impl RouteWrite {
    fn validate(&self) -> Result<(), StoreError> {
        let invalid = |reason| {
            Err(StoreError::InvalidInput {
                what: "route",
                reason,
            })
        };
        if !self.matchers.is_array() {
            return invalid("matchers must be a JSON array");
        }
        if self.group_wait_ms < 0 {
            return invalid("group_wait_ms must not be negative");
        }
        if self.group_interval_ms <= 0 || self.repeat_interval_ms <= 0 {
            return invalid("group_interval_ms and repeat_interval_ms must be positive");
        }
        Ok(())
    }
}

impl SilenceWrite {
    fn validate(&self) -> Result<(), StoreError> {
        let invalid = |reason| {
            Err(StoreError::InvalidInput {
                what: "silence",
                reason,
            })
        };
        if !self.matchers.is_array() {
            return invalid("matchers must be a JSON array");
        }
        if self.ends_at <= self.starts_at {
            return invalid("it must end after it starts");
        }
        Ok(())
    }
}

impl Store {
    /// Creates a receiver, sealing its configuration with `key` under
    /// [`receiver_config_context`]. A receiver of the same name is
    /// [`StoreError::Conflict`].
    pub async fn create_receiver(
        &self,
        key: &MasterKey,
        write: &ReceiverWrite,
    ) -> Result<ReceiverRecord, StoreError> {
        let sealed = key.seal(
            write.config.to_string().as_bytes(),
            &receiver_config_context(&write.name),
        )?;
        let now = now_ms();
        let sql = concat!(
            "INSERT INTO receivers (name, kind, config_key_id, config_nonce, config_ciphertext, \
                 summary, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
            receiver_columns!()
        );
        let row = sqlx::query_as::<_, ReceiverRow>(sql)
            .bind(&write.name)
            .bind(write.kind.as_str())
            .bind(&sealed.key_id)
            .bind(&sealed.nonce)
            .bind(&sealed.ciphertext)
            .bind(write.summary.to_string())
            .bind(now)
            .bind(now)
            .fetch_one(&self.writer)
            .await
            .map_err(|e| StoreError::from_write(e, || format!("receiver `{}`", write.name)))?;
        row.try_into()
    }

    /// Replaces the receiver called `name` with `write`: kind, summary and
    /// configuration (sealed anew with `key`), and its name, so `write.name`
    /// may rename it (routes follow, they refer to it by id).
    /// [`StoreError::NotFound`] if there is no such receiver,
    /// [`StoreError::Conflict`] if the new name is taken.
    pub async fn update_receiver(
        &self,
        key: &MasterKey,
        name: &str,
        write: &ReceiverWrite,
    ) -> Result<ReceiverRecord, StoreError> {
        let sealed = key.seal(
            write.config.to_string().as_bytes(),
            &receiver_config_context(&write.name),
        )?;
        let sql = concat!(
            "UPDATE receivers SET name = ?, kind = ?, config_key_id = ?, config_nonce = ?, \
                 config_ciphertext = ?, summary = ?, updated_at = ? \
             WHERE name = ? RETURNING ",
            receiver_columns!()
        );
        let row = sqlx::query_as::<_, ReceiverRow>(sql)
            .bind(&write.name)
            .bind(write.kind.as_str())
            .bind(&sealed.key_id)
            .bind(&sealed.nonce)
            .bind(&sealed.ciphertext)
            .bind(write.summary.to_string())
            .bind(now_ms())
            .bind(name)
            .fetch_optional(&self.writer)
            .await
            .map_err(|e| StoreError::from_write(e, || format!("receiver `{}`", write.name)))?
            .ok_or_else(|| StoreError::NotFound {
                what: format!("receiver `{name}`"),
            })?;
        row.try_into()
    }

    /// Deletes a receiver and its deliveries; `false` if there was none of
    /// this name. A receiver that routes still send to is
    /// [`StoreError::InUse`], naming the routes.
    pub async fn delete_receiver(&self, name: &str) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM receivers WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(id) = id else {
            return Ok(false);
        };
        let routes: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM routes WHERE receiver_id = ? ORDER BY id")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        if !routes.is_empty() {
            let ids: Vec<String> = routes.iter().map(i64::to_string).collect();
            return Err(StoreError::InUse {
                what: format!("receiver `{name}`"),
                by: format!(
                    "{} {}",
                    if routes.len() == 1 { "route" } else { "routes" },
                    ids.join(", ")
                ),
            });
        }
        sqlx::query("DELETE FROM receivers WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every receiver, in name order.
    pub async fn list_receivers(&self) -> Result<Vec<ReceiverRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            receiver_columns!(),
            " FROM receivers ORDER BY name"
        );
        let rows = sqlx::query_as::<_, ReceiverRow>(sql)
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(ReceiverRecord::try_from).collect()
    }

    /// The receiver of this name, if any.
    pub async fn get_receiver(&self, name: &str) -> Result<Option<ReceiverRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            receiver_columns!(),
            " FROM receivers WHERE name = ?"
        );
        let row = sqlx::query_as::<_, ReceiverRow>(sql)
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        row.map(ReceiverRecord::try_from).transpose()
    }

    /// A receiver with its configuration opened with `key`, for the delivery
    /// worker only; `None` if there is no receiver with this id. A
    /// configuration sealed with another key is [`StoreError::WrongKey`], a
    /// tampered one (or one copied from another receiver)
    /// [`StoreError::Decrypt`].
    pub async fn receiver_config(
        &self,
        key: &MasterKey,
        id: i64,
    ) -> Result<Option<(ReceiverRecord, serde_json::Value)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct SealedReceiverRow {
            #[sqlx(flatten)]
            receiver: ReceiverRow,
            #[sqlx(flatten)]
            config: SealedRow,
        }
        let sql = concat!(
            "SELECT ",
            receiver_columns!(),
            ", config_key_id AS key_id, config_nonce AS nonce, config_ciphertext AS ciphertext \
             FROM receivers WHERE id = ?"
        );
        let Some(row) = sqlx::query_as::<_, SealedReceiverRow>(sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
        else {
            return Ok(None);
        };
        let receiver = ReceiverRecord::try_from(row.receiver)?;
        let sealed = SealedSecret::from(row.config);
        let plaintext = key.open(&sealed, &receiver_config_context(&receiver.name))?;
        // The reason is fixed: a parse error could quote the secret.
        let config = serde_json::from_slice(&plaintext).map_err(|_| StoreError::InvalidRow {
            column: "receivers.config_ciphertext",
            reason: "the opened configuration is not JSON".to_owned(),
        })?;
        Ok(Some((receiver, config)))
    }

    /// Creates a route to the receiver named in `write`
    /// ([`StoreError::NotFound`] if there is none).
    /// [`StoreError::InvalidInput`] if the matchers are not a JSON array or
    /// an interval is out of range.
    pub async fn create_route(&self, write: &RouteWrite) -> Result<RouteRecord, StoreError> {
        write.validate()?;
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let receiver_id = receiver_id(&mut tx, &write.receiver).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO routes (position, receiver_id, matchers, group_by, group_wait_ms, \
                 group_interval_ms, repeat_interval_ms, send_resolved, continue_matching, \
                 created_at, updated_at) \
             VALUES (COALESCE(?, (SELECT COALESCE(MAX(position) + 1, 0) FROM routes)), \
                 ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             RETURNING id",
        )
        .bind(write.position)
        .bind(receiver_id)
        .bind(write.matchers.to_string())
        .bind(names_json(&write.group_by))
        .bind(write.group_wait_ms)
        .bind(write.group_interval_ms)
        .bind(write.repeat_interval_ms)
        .bind(write.send_resolved)
        .bind(write.continue_matching)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let route = route_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(route)
    }

    /// Replaces route `id` with `write` (a `None` position keeps its
    /// position). [`StoreError::NotFound`] if there is no such route or no
    /// such receiver; [`StoreError::InvalidInput`] as for
    /// [`Store::create_route`].
    pub async fn update_route(
        &self,
        id: i64,
        write: &RouteWrite,
    ) -> Result<RouteRecord, StoreError> {
        write.validate()?;
        let mut tx = self.writer.begin().await?;
        let receiver_id = receiver_id(&mut tx, &write.receiver).await?;
        let result = sqlx::query(
            "UPDATE routes SET position = COALESCE(?, position), receiver_id = ?, matchers = ?, \
                 group_by = ?, group_wait_ms = ?, group_interval_ms = ?, repeat_interval_ms = ?, \
                 send_resolved = ?, continue_matching = ?, updated_at = ? \
             WHERE id = ?",
        )
        .bind(write.position)
        .bind(receiver_id)
        .bind(write.matchers.to_string())
        .bind(names_json(&write.group_by))
        .bind(write.group_wait_ms)
        .bind(write.group_interval_ms)
        .bind(write.repeat_interval_ms)
        .bind(write.send_resolved)
        .bind(write.continue_matching)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if result.rows_affected() == 0 {
            return Err(route_not_found(id));
        }
        let route = route_in(&mut tx, id).await?;
        tx.commit().await?;
        Ok(route)
    }

    /// Deletes a route with its group states (its deliveries stay, without
    /// route); `false` if there was none with this id.
    pub async fn delete_route(&self, id: i64) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM routes WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected() > 0)
    }

    /// Every route in evaluation order (position, then id).
    pub async fn list_routes(&self) -> Result<Vec<RouteRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            route_columns!(),
            " FROM routes t JOIN receivers r ON r.id = t.receiver_id ORDER BY t.position, t.id"
        );
        let rows = sqlx::query_as::<_, RouteRow>(sql)
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(RouteRecord::try_from).collect()
    }

    /// The route with this id, if any.
    pub async fn get_route(&self, id: i64) -> Result<Option<RouteRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            route_columns!(),
            " FROM routes t JOIN receivers r ON r.id = t.receiver_id WHERE t.id = ?"
        );
        let row = sqlx::query_as::<_, RouteRow>(sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(RouteRecord::try_from).transpose()
    }

    /// Creates a silence. [`StoreError::InvalidInput`] if the matchers are
    /// not a JSON array or it does not end after it starts.
    pub async fn create_silence(&self, write: &SilenceWrite) -> Result<SilenceRecord, StoreError> {
        write.validate()?;
        let sql = concat!(
            "INSERT INTO silences (matchers, starts_at, ends_at, author, comment, created_at) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING ",
            silence_columns!()
        );
        let row = sqlx::query_as::<_, SilenceRow>(sql)
            .bind(write.matchers.to_string())
            .bind(write.starts_at)
            .bind(write.ends_at)
            .bind(&write.author)
            .bind(&write.comment)
            .bind(now_ms())
            .fetch_one(&self.writer)
            .await?;
        row.try_into()
    }

    /// Silences in id order: all of them with `None`, with `Some(t)` only
    /// those active at `t` (`starts_at <= t < ends_at`, not expired).
    pub async fn list_silences(
        &self,
        active_at: Option<i64>,
    ) -> Result<Vec<SilenceRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            silence_columns!(),
            " FROM silences \
             WHERE ?1 IS NULL OR (starts_at <= ?1 AND ?1 < ends_at AND expired_at IS NULL) \
             ORDER BY id"
        );
        let rows = sqlx::query_as::<_, SilenceRow>(sql)
            .bind(active_at)
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(SilenceRecord::try_from).collect()
    }

    /// The silence with this id, if any.
    pub async fn get_silence(&self, id: i64) -> Result<Option<SilenceRecord>, StoreError> {
        let sql = concat!("SELECT ", silence_columns!(), " FROM silences WHERE id = ?");
        let row = sqlx::query_as::<_, SilenceRow>(sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(SilenceRecord::try_from).transpose()
    }

    /// Ends a silence at `now` (unix ms): sets `expired_at`, and `ends_at`
    /// to `now` when later. A silence that had not started yet becomes
    /// empty (`starts_at = ends_at = now`). `false` if there is none with
    /// this id, or it was already expired or over (`ends_at <= now`).
    pub async fn expire_silence(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        let result = sqlx::query(
            "UPDATE silences SET expired_at = ?1, ends_at = MIN(ends_at, ?1), \
                 starts_at = MIN(starts_at, ?1) \
             WHERE id = ?2 AND expired_at IS NULL AND ends_at > ?1",
        )
        .bind(now)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Deletes silences that ended (or were expired) before `cutoff` (unix
    /// ms); incidents they muted are no longer marked. Returns how many.
    pub async fn purge_silences(&self, cutoff: i64) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM silences WHERE ends_at < ?")
            .bind(cutoff)
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected())
    }

    /// Every saved group state, by route and group key (for the notifier at
    /// startup).
    pub async fn load_notification_groups(&self) -> Result<Vec<NotificationGroup>, StoreError> {
        let rows = sqlx::query_as::<_, GroupRow>(
            "SELECT route_id, group_key, state FROM notification_groups \
             ORDER BY route_id, group_key",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(NotificationGroup::try_from).collect()
    }

    /// Commits one step of the notifier in one transaction: saves the
    /// `groups`' states (inserted or replaced), forgets `deleted_groups`
    /// (route id, group key), queues `outbox`, due now, and marks which
    /// silence mutes each incident of `silences` (as
    /// [`Store::set_incident_silences`]). Returns the new deliveries' ids, in
    /// order.
    ///
    /// Either all of it is written or nothing: a delivery to a receiver that
    /// does not exist is [`StoreError::NotFound`] and leaves every group
    /// state as it was. Group states of routes deleted meanwhile are
    /// skipped, and deliveries from such routes are queued without route.
    pub async fn commit_notifications(
        &self,
        groups: &[NotificationGroup],
        deleted_groups: &[(i64, String)],
        outbox: &[OutboxWrite],
        silences: &[(i64, Option<i64>)],
    ) -> Result<Vec<i64>, StoreError> {
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        crate::incidents::mark_silenced(&mut tx, silences).await?;
        for group in groups {
            sqlx::query(
                "INSERT INTO notification_groups (route_id, group_key, state, updated_at) \
                 SELECT id, ?, ?, ? FROM routes WHERE id = ? \
                 ON CONFLICT (route_id, group_key) \
                 DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
            )
            .bind(&group.group_key)
            .bind(group.state.to_string())
            .bind(now)
            .bind(group.route_id)
            .execute(&mut *tx)
            .await?;
        }
        for (route_id, group_key) in deleted_groups {
            sqlx::query("DELETE FROM notification_groups WHERE route_id = ? AND group_key = ?")
                .bind(route_id)
                .bind(group_key)
                .execute(&mut *tx)
                .await?;
        }
        let mut ids = Vec::with_capacity(outbox.len());
        for write in outbox {
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO outbox (receiver_id, route_id, group_key, payload, created_at, \
                     next_attempt_at) \
                 SELECT id, (SELECT id FROM routes WHERE id = ?), ?, ?, ?, ? \
                 FROM receivers WHERE id = ? \
                 RETURNING id",
            )
            .bind(write.route_id)
            .bind(&write.group_key)
            .bind(write.payload.to_string())
            .bind(now)
            .bind(now)
            .bind(write.receiver_id)
            .fetch_optional(&mut *tx)
            .await?;
            // Dropping the transaction rolls everything back.
            ids.push(id.ok_or_else(|| StoreError::NotFound {
                what: format!("receiver {}", write.receiver_id),
            })?);
        }
        tx.commit().await?;
        Ok(ids)
    }

    /// Up to `limit` pending deliveries due at `now` (unix ms), oldest
    /// first.
    pub async fn due_deliveries(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox o JOIN receivers r ON r.id = o.receiver_id WHERE ",
            pending!(),
            " AND o.next_attempt_at <= ? ORDER BY o.id LIMIT ?"
        );
        let rows = sqlx::query_as::<_, OutboxRow>(sql)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(OutboxRecord::try_from).collect()
    }

    /// When the earliest pending delivery is due (unix ms); `None` when
    /// nothing is pending.
    pub async fn next_delivery_at(&self) -> Result<Option<i64>, StoreError> {
        let sql = concat!(
            "SELECT MIN(o.next_attempt_at) FROM outbox o WHERE ",
            pending!()
        );
        Ok(sqlx::query_scalar(sql).fetch_one(&self.reader).await?)
    }

    /// Records a successful attempt of a pending delivery at `now` (unix
    /// ms); `false` if there is no such delivery or it is not pending.
    pub async fn delivery_succeeded(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        let sql = concat!(
            "UPDATE outbox AS o SET delivered_at = ?, attempts = attempts + 1 WHERE o.id = ? AND ",
            pending!()
        );
        let result = sqlx::query(sql)
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Records a failed attempt of a pending delivery at `now` (unix ms)
    /// and why: it is retried at `retry_at`, or with `None` given up
    /// (`failed_at = now`). `false` if there is no such delivery or it is
    /// not pending.
    pub async fn delivery_failed(
        &self,
        id: i64,
        now: i64,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<bool, StoreError> {
        let sql = concat!(
            "UPDATE outbox AS o SET attempts = attempts + 1, last_error = ?1, \
                 next_attempt_at = COALESCE(?2, next_attempt_at), \
                 failed_at = CASE WHEN ?2 IS NULL THEN ?3 END \
             WHERE o.id = ?4 AND ",
            pending!()
        );
        let result = sqlx::query(sql)
            .bind(error)
            .bind(retry_at)
            .bind(now)
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// The latest deliveries, newest first, of one receiver or of all;
    /// `limit` is clamped to 1–500.
    pub async fn list_deliveries(
        &self,
        receiver: Option<&str>,
        limit: u32,
    ) -> Result<Vec<OutboxRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox o JOIN receivers r ON r.id = o.receiver_id \
             WHERE ?1 IS NULL OR r.name = ?1 ORDER BY o.id DESC LIMIT ?2"
        );
        let rows = sqlx::query_as::<_, OutboxRow>(sql)
            .bind(receiver)
            .bind(i64::from(limit.clamp(1, 500)))
            .fetch_all(&self.reader)
            .await?;
        rows.into_iter().map(OutboxRecord::try_from).collect()
    }

    /// Deletes deliveries delivered or given up before `cutoff` (unix ms);
    /// pending ones stay. Returns how many.
    pub async fn purge_deliveries(&self, cutoff: i64) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM outbox WHERE delivered_at < ?1 OR failed_at < ?1")
            .bind(cutoff)
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected())
    }
}

/// The id of the receiver called `name`, or [`StoreError::NotFound`].
async fn receiver_id(connection: &mut SqliteConnection, name: &str) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT id FROM receivers WHERE name = ?")
        .bind(name)
        .fetch_optional(connection)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: format!("receiver `{name}`"),
        })
}

/// Route `id` read on `connection` (inside the transaction that wrote it).
async fn route_in(connection: &mut SqliteConnection, id: i64) -> Result<RouteRecord, StoreError> {
    let sql = concat!(
        "SELECT ",
        route_columns!(),
        " FROM routes t JOIN receivers r ON r.id = t.receiver_id WHERE t.id = ?"
    );
    let row = sqlx::query_as::<_, RouteRow>(sql)
        .bind(id)
        .fetch_optional(connection)
        .await?
        .ok_or_else(|| route_not_found(id))?;
    row.try_into()
}

fn route_not_found(id: i64) -> StoreError {
    StoreError::NotFound {
        what: format!("route {id}"),
    }
}

fn names_json(names: &[String]) -> String {
    serde_json::to_string(names).expect("a list of strings always serialises")
}

/// A row of `receivers` as [`receiver_columns!`] selects it.
#[derive(sqlx::FromRow)]
struct ReceiverRow {
    id: i64,
    name: String,
    kind: String,
    summary: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ReceiverRow> for ReceiverRecord {
    type Error = StoreError;

    fn try_from(row: ReceiverRow) -> Result<ReceiverRecord, StoreError> {
        Ok(ReceiverRecord {
            id: row.id,
            name: row.name,
            kind: decode::text(&row.kind, "receivers.kind")?,
            summary: decode::json(&row.summary, "receivers.summary")?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A row of `routes` as [`route_columns!`] selects it.
#[derive(sqlx::FromRow)]
struct RouteRow {
    id: i64,
    position: i64,
    receiver_id: i64,
    receiver: String,
    matchers: String,
    group_by: String,
    group_wait_ms: i64,
    group_interval_ms: i64,
    repeat_interval_ms: i64,
    send_resolved: bool,
    continue_matching: bool,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<RouteRow> for RouteRecord {
    type Error = StoreError;

    fn try_from(row: RouteRow) -> Result<RouteRecord, StoreError> {
        Ok(RouteRecord {
            id: row.id,
            position: row.position,
            receiver_id: row.receiver_id,
            receiver: row.receiver,
            matchers: decode::json(&row.matchers, "routes.matchers")?,
            group_by: decode::json(&row.group_by, "routes.group_by")?,
            group_wait_ms: row.group_wait_ms,
            group_interval_ms: row.group_interval_ms,
            repeat_interval_ms: row.repeat_interval_ms,
            send_resolved: row.send_resolved,
            continue_matching: row.continue_matching,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A row of `silences` as [`silence_columns!`] selects it.
#[derive(sqlx::FromRow)]
struct SilenceRow {
    id: i64,
    matchers: String,
    starts_at: i64,
    ends_at: i64,
    author: String,
    comment: String,
    created_at: i64,
    expired_at: Option<i64>,
}

impl TryFrom<SilenceRow> for SilenceRecord {
    type Error = StoreError;

    fn try_from(row: SilenceRow) -> Result<SilenceRecord, StoreError> {
        Ok(SilenceRecord {
            id: row.id,
            matchers: decode::json(&row.matchers, "silences.matchers")?,
            starts_at: row.starts_at,
            ends_at: row.ends_at,
            author: row.author,
            comment: row.comment,
            created_at: row.created_at,
            expired_at: row.expired_at,
        })
    }
}

/// A row of `notification_groups`.
#[derive(sqlx::FromRow)]
struct GroupRow {
    route_id: i64,
    group_key: String,
    state: String,
}

impl TryFrom<GroupRow> for NotificationGroup {
    type Error = StoreError;

    fn try_from(row: GroupRow) -> Result<NotificationGroup, StoreError> {
        Ok(NotificationGroup {
            route_id: row.route_id,
            group_key: row.group_key,
            state: decode::json(&row.state, "notification_groups.state")?,
        })
    }
}

/// A row of `outbox` as [`outbox_columns!`] selects it.
#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    receiver_id: i64,
    receiver: String,
    receiver_kind: String,
    route_id: Option<i64>,
    group_key: String,
    payload: String,
    created_at: i64,
    attempts: i64,
    next_attempt_at: i64,
    delivered_at: Option<i64>,
    failed_at: Option<i64>,
    last_error: Option<String>,
}

impl TryFrom<OutboxRow> for OutboxRecord {
    type Error = StoreError;

    fn try_from(row: OutboxRow) -> Result<OutboxRecord, StoreError> {
        Ok(OutboxRecord {
            id: row.id,
            receiver_id: row.receiver_id,
            receiver: row.receiver,
            receiver_kind: decode::text(&row.receiver_kind, "receivers.kind")?,
            route_id: row.route_id,
            group_key: row.group_key,
            payload: decode::json(&row.payload, "outbox.payload")?,
            created_at: row.created_at,
            attempts: decode::number(row.attempts, "outbox.attempts")?,
            next_attempt_at: row.next_attempt_at,
            delivered_at: row.delivered_at,
            failed_at: row.failed_at,
            last_error: row.last_error,
        })
    }
}

#[cfg(test)]
mod tests;

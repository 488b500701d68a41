//! Incident notifications, after Alertmanager: receivers with their sealed
//! configuration, routes, silences, the notifier's group states and the
//! outbox of deliveries.
//!
//! Group states and the deliveries they lead to are committed together
//! ([`Store::commit_notifications`]): after a restart the notifier finds
//! exactly the deliveries its saved state says were made, so none is lost
//! and none is sent twice.

use std::fmt;

use serde::de::DeserializeOwned;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::clusters::{parse, sealed_from_row};
use crate::store::now_ms;
use crate::text_enum::text_enum;
use crate::{MasterKey, Store, StoreError};

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

/// Columns of a [`ReceiverRecord`], read by [`receiver_from_row`]. A macro
/// so queries stay `&'static str`.
macro_rules! receiver_columns {
    () => {
        "id, name, kind, summary, created_at, updated_at"
    };
}

/// Columns of a [`RouteRecord`] (routes `t` joined with receivers `r`),
/// read by [`route_from_row`].
macro_rules! route_columns {
    () => {
        "t.id, t.position, t.receiver_id, r.name, t.matchers, t.group_by, t.group_wait_ms, \
         t.group_interval_ms, t.repeat_interval_ms, t.send_resolved, t.continue_matching, \
         t.created_at, t.updated_at"
    };
}

/// Columns of a [`SilenceRecord`], read by [`silence_from_row`].
macro_rules! silence_columns {
    () => {
        "id, matchers, starts_at, ends_at, author, comment, created_at, expired_at"
    };
}

/// Columns of an [`OutboxRecord`] (outbox `o` joined with receivers `r`),
/// read by [`outbox_from_row`].
macro_rules! outbox_columns {
    () => {
        "o.id, o.receiver_id, r.name, r.kind, o.route_id, o.group_key, o.payload, o.created_at, \
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
        let row = sqlx::query(sql)
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
        receiver_from_row(&row)
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
        let row = sqlx::query(sql)
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
        receiver_from_row(&row)
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
        let rows = sqlx::query(sql).fetch_all(&self.reader).await?;
        rows.iter().map(receiver_from_row).collect()
    }

    /// The receiver of this name, if any.
    pub async fn get_receiver(&self, name: &str) -> Result<Option<ReceiverRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            receiver_columns!(),
            " FROM receivers WHERE name = ?"
        );
        let row = sqlx::query(sql)
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(receiver_from_row).transpose()
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
        let sql = concat!(
            "SELECT ",
            receiver_columns!(),
            ", config_key_id, config_nonce, config_ciphertext FROM receivers WHERE id = ?"
        );
        let Some(row) = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
        else {
            return Ok(None);
        };
        let receiver = receiver_from_row(&row)?;
        let sealed = sealed_from_row(&row, 6)?;
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
        let rows = sqlx::query(sql).fetch_all(&self.reader).await?;
        rows.iter().map(route_from_row).collect()
    }

    /// The route with this id, if any.
    pub async fn get_route(&self, id: i64) -> Result<Option<RouteRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            route_columns!(),
            " FROM routes t JOIN receivers r ON r.id = t.receiver_id WHERE t.id = ?"
        );
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(route_from_row).transpose()
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
        let row = sqlx::query(sql)
            .bind(write.matchers.to_string())
            .bind(write.starts_at)
            .bind(write.ends_at)
            .bind(&write.author)
            .bind(&write.comment)
            .bind(now_ms())
            .fetch_one(&self.writer)
            .await?;
        silence_from_row(&row)
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
        let rows = sqlx::query(sql)
            .bind(active_at)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(silence_from_row).collect()
    }

    /// The silence with this id, if any.
    pub async fn get_silence(&self, id: i64) -> Result<Option<SilenceRecord>, StoreError> {
        let sql = concat!("SELECT ", silence_columns!(), " FROM silences WHERE id = ?");
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(silence_from_row).transpose()
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
        let rows = sqlx::query(
            "SELECT route_id, group_key, state FROM notification_groups \
             ORDER BY route_id, group_key",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(NotificationGroup {
                    route_id: row.try_get(0)?,
                    group_key: row.try_get(1)?,
                    state: json(row, 2, "notification_groups.state")?,
                })
            })
            .collect()
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
        let rows = sqlx::query(sql)
            .bind(now)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(outbox_from_row).collect()
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
        let rows = sqlx::query(sql)
            .bind(receiver)
            .bind(i64::from(limit.clamp(1, 500)))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(outbox_from_row).collect()
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
    let row = sqlx::query(sql)
        .bind(id)
        .fetch_optional(connection)
        .await?
        .ok_or_else(|| route_not_found(id))?;
    route_from_row(&row)
}

fn route_not_found(id: i64) -> StoreError {
    StoreError::NotFound {
        what: format!("route {id}"),
    }
}

fn names_json(names: &[String]) -> String {
    serde_json::to_string(names).expect("a list of strings always serialises")
}

/// Reads a JSON TEXT column.
fn json<T: DeserializeOwned>(
    row: &SqliteRow,
    index: usize,
    column: &'static str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(index)?;
    serde_json::from_str(&text).map_err(|e| StoreError::InvalidRow {
        column,
        reason: e.to_string(),
    })
}

fn receiver_from_row(row: &SqliteRow) -> Result<ReceiverRecord, StoreError> {
    Ok(ReceiverRecord {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        kind: parse(row, 2, "receivers.kind")?,
        summary: json(row, 3, "receivers.summary")?,
        created_at: row.try_get(4)?,
        updated_at: row.try_get(5)?,
    })
}

fn route_from_row(row: &SqliteRow) -> Result<RouteRecord, StoreError> {
    Ok(RouteRecord {
        id: row.try_get(0)?,
        position: row.try_get(1)?,
        receiver_id: row.try_get(2)?,
        receiver: row.try_get(3)?,
        matchers: json(row, 4, "routes.matchers")?,
        group_by: json(row, 5, "routes.group_by")?,
        group_wait_ms: row.try_get(6)?,
        group_interval_ms: row.try_get(7)?,
        repeat_interval_ms: row.try_get(8)?,
        send_resolved: row.try_get(9)?,
        continue_matching: row.try_get(10)?,
        created_at: row.try_get(11)?,
        updated_at: row.try_get(12)?,
    })
}

fn silence_from_row(row: &SqliteRow) -> Result<SilenceRecord, StoreError> {
    Ok(SilenceRecord {
        id: row.try_get(0)?,
        matchers: json(row, 1, "silences.matchers")?,
        starts_at: row.try_get(2)?,
        ends_at: row.try_get(3)?,
        author: row.try_get(4)?,
        comment: row.try_get(5)?,
        created_at: row.try_get(6)?,
        expired_at: row.try_get(7)?,
    })
}

fn outbox_from_row(row: &SqliteRow) -> Result<OutboxRecord, StoreError> {
    let attempts: i64 = row.try_get(8)?;
    Ok(OutboxRecord {
        id: row.try_get(0)?,
        receiver_id: row.try_get(1)?,
        receiver: row.try_get(2)?,
        receiver_kind: parse(row, 3, "receivers.kind")?,
        route_id: row.try_get(4)?,
        group_key: row.try_get(5)?,
        payload: json(row, 6, "outbox.payload")?,
        created_at: row.try_get(7)?,
        attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
        next_attempt_at: row.try_get(9)?,
        delivered_at: row.try_get(10)?,
        failed_at: row.try_get(11)?,
        last_error: row.try_get(12)?,
    })
}

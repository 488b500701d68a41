//! `/api/v1/receivers`, `/routes` and `/silences`: where incident
//! notifications go (Slack, generic webhook, email), which incidents go
//! where with what grouping and throttling, and what is muted for a while.
//! Receiver configurations hold secrets (webhook URLs, SMTP passwords): they
//! are write-only, sealed by the store, and answered as a summary.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use pilothouse_incidents::{parse_group_by, parse_matchers, parse_route};
use pilothouse_notify::ReceiverConfig;
use pilothouse_store::{
    ApiToken, OutboxRecord, ReceiverKind, ReceiverRecord, ReceiverWrite, RouteRecord, RouteWrite,
    SilenceRecord, SilenceWrite,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::clusters::{check_name, now_ms, rfc3339};
use crate::error::{ApiQuery, Problem, page_limit};
use crate::incidents::timestamp;
use crate::{ApiError, ApiJson, AppState};

/// The default grouping of a route: one notification per cluster and reason.
const DEFAULT_GROUP_BY: [&str; 2] = ["cluster", "reason"];

/// A receiver, without its secrets.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiverView {
    /// Its name.
    pub name: String,
    /// `slack`, `webhook` or `email`.
    pub kind: String,
    /// What it sends to, without secrets (scheme, host and port of a URL;
    /// SMTP server, sender and recipients).
    #[schema(value_type = Object)]
    pub summary: Value,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
}

impl From<ReceiverRecord> for ReceiverView {
    fn from(record: ReceiverRecord) -> Self {
        Self {
            name: record.name,
            kind: record.kind.as_str().to_owned(),
            summary: record.summary,
            created_at: rfc3339(record.created_at),
            updated_at: rfc3339(record.updated_at),
        }
    }
}

/// A receiver to create or replace. `Debug` leaves the configuration out
/// (it holds secrets).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiverBody {
    /// A DNS-1123 label.
    pub name: String,
    /// `{"kind": "slack", "url": …}`, `{"kind": "webhook", "url": …,
    /// "headers": {…}, "hmac_secret": …}` or `{"kind": "email", "smtp_host":
    /// …, "smtp_port": 587, "tls": "starttls", "username": …, "password":
    /// …, "from": …, "to": […]}`. Write-only.
    #[schema(value_type = Object)]
    pub config: Value,
}

impl std::fmt::Debug for ReceiverBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverBody")
            .field("name", &self.name)
            .field("config", &"<redacted>")
            .finish()
    }
}

/// A delivery of a notification to a receiver.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Id (also the `Idempotency-Key` of webhook deliveries).
    pub id: i64,
    /// The receiver.
    pub receiver: String,
    /// The notification group.
    pub group_key: String,
    /// `pending`, `delivered` or `failed` (given up).
    pub state: String,
    /// Attempts so far.
    pub attempts: u32,
    /// When it was enqueued (RFC 3339).
    pub created_at: String,
    /// The next attempt, while pending (RFC 3339).
    pub next_attempt_at: Option<String>,
    /// When it was delivered (RFC 3339).
    pub delivered_at: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
    /// What was (or will be) sent: the generic webhook body.
    #[schema(value_type = Object)]
    pub payload: Value,
}

impl From<OutboxRecord> for DeliveryView {
    fn from(record: OutboxRecord) -> Self {
        let state = if record.delivered_at.is_some() {
            "delivered"
        } else if record.failed_at.is_some() {
            "failed"
        } else {
            "pending"
        };
        Self {
            id: record.id,
            receiver: record.receiver,
            group_key: record.group_key,
            state: state.to_owned(),
            attempts: record.attempts,
            created_at: rfc3339(record.created_at),
            next_attempt_at: (state == "pending").then(|| rfc3339(record.next_attempt_at)),
            delivered_at: record.delivered_at.map(rfc3339),
            last_error: record.last_error,
            payload: record.payload,
        }
    }
}

/// Receivers, by name.
#[utoipa::path(get, path = "/api/v1/receivers", operation_id = "listReceivers", tag = "notifications",
    responses((status = 200, description = "Receivers", body = [ReceiverView])))]
pub async fn list_receivers(
    State(state): State<AppState>,
) -> Result<ApiJson<Vec<ReceiverView>>, ApiError> {
    let receivers = state.store.list_receivers().await?;
    Ok(ApiJson(
        receivers.into_iter().map(ReceiverView::from).collect(),
    ))
}

/// Create a receiver.
#[utoipa::path(post, path = "/api/v1/receivers", operation_id = "createReceiver", tag = "notifications",
    request_body = ReceiverBody,
    responses((status = 201, description = "Created", body = ReceiverView),
              (status = 400, description = "Bad configuration", body = Problem),
              (status = 409, description = "The name is taken", body = Problem)))]
pub async fn create_receiver(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ReceiverBody>,
) -> Result<(StatusCode, ApiJson<ReceiverView>), ApiError> {
    let write = receiver_write(&state, body).await?;
    let record = state
        .store
        .create_receiver(&state.master_key, &write)
        .await?;
    state.incidents.notifications_changed();
    Ok((StatusCode::CREATED, ApiJson(record.into())))
}

/// One receiver.
#[utoipa::path(get, path = "/api/v1/receivers/{name}", operation_id = "getReceiver", tag = "notifications",
    params(("name" = String, Path, description = "Receiver name")),
    responses((status = 200, description = "The receiver", body = ReceiverView),
              (status = 404, description = "No such receiver", body = Problem)))]
pub async fn get_receiver(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<ApiJson<ReceiverView>, ApiError> {
    let record = state
        .store
        .get_receiver(&name)
        .await?
        .ok_or_else(|| no_receiver(&name))?;
    Ok(ApiJson(record.into()))
}

/// Replace a receiver's configuration (and name).
#[utoipa::path(put, path = "/api/v1/receivers/{name}", operation_id = "replaceReceiver", tag = "notifications",
    params(("name" = String, Path, description = "Receiver name")),
    request_body = ReceiverBody,
    responses((status = 200, description = "Replaced", body = ReceiverView),
              (status = 400, description = "Bad configuration", body = Problem),
              (status = 404, description = "No such receiver", body = Problem)))]
pub async fn replace_receiver(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ReceiverBody>,
) -> Result<ApiJson<ReceiverView>, ApiError> {
    let write = receiver_write(&state, body).await?;
    let record = state
        .store
        .update_receiver(&state.master_key, &name, &write)
        .await?;
    state.incidents.notifications_changed();
    Ok(ApiJson(record.into()))
}

/// Delete a receiver; one still used by a route is refused (409).
#[utoipa::path(delete, path = "/api/v1/receivers/{name}", operation_id = "deleteReceiver", tag = "notifications",
    params(("name" = String, Path, description = "Receiver name")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such receiver", body = Problem),
              (status = 409, description = "A route uses it", body = Problem)))]
pub async fn delete_receiver(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_receiver(&name).await? {
        return Err(no_receiver(&name));
    }
    state.incidents.notifications_changed();
    Ok(StatusCode::NO_CONTENT)
}

/// Page size of `GET /api/v1/receivers/{name}/deliveries`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListDeliveries {
    /// Page size, 1–500 (default 50).
    pub limit: Option<u32>,
}

/// A receiver's latest deliveries, newest first: pending, delivered and
/// failed, with attempts and the last error.
#[utoipa::path(get, path = "/api/v1/receivers/{name}/deliveries", operation_id = "listDeliveries", tag = "notifications",
    params(("name" = String, Path, description = "Receiver name"), ListDeliveries),
    responses((status = 200, description = "Deliveries", body = [DeliveryView]),
              (status = 404, description = "No such receiver", body = Problem)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<ListDeliveries>,
) -> Result<ApiJson<Vec<DeliveryView>>, ApiError> {
    let limit = page_limit(query.limit, 50)?;
    if state.store.get_receiver(&name).await?.is_none() {
        return Err(no_receiver(&name));
    }
    let deliveries = state.store.list_deliveries(Some(&name), limit).await?;
    Ok(ApiJson(
        deliveries.into_iter().map(DeliveryView::from).collect(),
    ))
}

/// A receiver to store: its configuration checked, and its destination
/// resolved and refused when it is a loopback, private, link-local or
/// metadata address the operator did not allow (checked again at every
/// delivery).
async fn receiver_write(state: &AppState, body: ReceiverBody) -> Result<ReceiverWrite, ApiError> {
    check_name(&body.name)?;
    let config: ReceiverConfig = serde_json::from_value(body.config.clone())
        .map_err(|error| ApiError::bad_field("config", error.to_string()))?;
    config
        .validate()
        .map_err(|error| ApiError::bad_field("config", error.to_string()))?;
    pilothouse_notify::check_destination(&config, &state.outbound.receiver_destinations)
        .await
        .map_err(|error| ApiError::bad_field("config", error.to_string()))?;
    let kind = match &config {
        ReceiverConfig::Slack { .. } => ReceiverKind::Slack,
        ReceiverConfig::Webhook { .. } => ReceiverKind::Webhook,
        ReceiverConfig::Email { .. } => ReceiverKind::Email,
    };
    Ok(ReceiverWrite {
        name: body.name,
        kind,
        summary: config.summary(),
        config: body.config,
    })
}

fn no_receiver(name: &str) -> ApiError {
    ApiError::NotFound(format!("no receiver named `{name}`"))
}

/// A route: which incidents go to which receiver, grouped and throttled.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteView {
    /// Id.
    pub id: i64,
    /// Evaluation order (lowest first).
    pub position: i64,
    /// The receiver's name.
    pub receiver: String,
    /// All must match: `[{"label": "cluster", "op": "=", "value": "aks"}]`.
    #[schema(value_type = Vec<Object>)]
    pub matchers: Value,
    /// Labels whose values make a notification group.
    pub group_by: Vec<String>,
    /// Wait before a new group's first notification (e.g. `30s`).
    pub group_wait: String,
    /// Wait between notifications about changes of a group (e.g. `5m`).
    pub group_interval: String,
    /// Wait before re-sending an unchanged, still firing group (e.g. `4h`).
    pub repeat_interval: String,
    /// Notify when incidents resolve.
    pub send_resolved: bool,
    /// Go on to later routes after this one matched.
    #[serde(rename = "continue")]
    pub continue_matching: bool,
    /// Why the stored route cannot be used (its matchers or labels do not
    /// read any more, after an upgrade, say): it routes nothing until it is
    /// replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<RouteRecord> for RouteView {
    fn from(record: RouteRecord) -> Self {
        let error = parse_route(&record.matchers, &record.group_by)
            .err()
            .map(|error| error.to_string());
        Self {
            error,
            id: record.id,
            position: record.position,
            receiver: record.receiver,
            matchers: record.matchers,
            group_by: record.group_by,
            group_wait: friendly(record.group_wait_ms),
            group_interval: friendly(record.group_interval_ms),
            repeat_interval: friendly(record.repeat_interval_ms),
            send_resolved: record.send_resolved,
            continue_matching: record.continue_matching,
        }
    }
}

/// A route to create or replace.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteBody {
    /// The receiver's name.
    pub receiver: String,
    /// Label matchers (labels `cluster`, `namespace`, `workload_kind`,
    /// `workload`, `container`, `reason`, `severity`; ops `=`, `!=`, `=~`,
    /// `!~`, regexes anchored); none = every incident.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub matchers: Option<Value>,
    /// Default `["cluster", "reason"]`; `[]` = one group per incident.
    pub group_by: Option<Vec<String>>,
    /// Default `30s`.
    pub group_wait: Option<String>,
    /// Default `5m`.
    pub group_interval: Option<String>,
    /// Default `4h`.
    pub repeat_interval: Option<String>,
    /// Default true.
    pub send_resolved: Option<bool>,
    /// Default false.
    #[serde(rename = "continue")]
    pub continue_matching: Option<bool>,
    /// Evaluation order; default: after every other route.
    pub position: Option<i64>,
}

/// Routes in evaluation order.
#[utoipa::path(get, path = "/api/v1/routes", operation_id = "listRoutes", tag = "notifications",
    responses((status = 200, description = "Routes", body = [RouteView])))]
pub async fn list_routes(
    State(state): State<AppState>,
) -> Result<ApiJson<Vec<RouteView>>, ApiError> {
    let routes = state.store.list_routes().await?;
    Ok(ApiJson(routes.into_iter().map(RouteView::from).collect()))
}

/// Create a route.
#[utoipa::path(post, path = "/api/v1/routes", operation_id = "createRoute", tag = "notifications",
    request_body = RouteBody,
    responses((status = 201, description = "Created", body = RouteView),
              (status = 400, description = "Bad matcher, label or duration", body = Problem),
              (status = 404, description = "No such receiver", body = Problem)))]
pub async fn create_route(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RouteBody>,
) -> Result<(StatusCode, ApiJson<RouteView>), ApiError> {
    let write = route_write(body)?;
    let record = state.store.create_route(&write).await?;
    state.incidents.notifications_changed();
    Ok((StatusCode::CREATED, ApiJson(record.into())))
}

/// One route.
#[utoipa::path(get, path = "/api/v1/routes/{id}", operation_id = "getRoute", tag = "notifications",
    params(("id" = i64, Path, description = "Route id")),
    responses((status = 200, description = "The route", body = RouteView),
              (status = 404, description = "No such route", body = Problem)))]
pub async fn get_route(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<ApiJson<RouteView>, ApiError> {
    let record = state
        .store
        .get_route(id)
        .await?
        .ok_or_else(|| no_route(id))?;
    Ok(ApiJson(record.into()))
}

/// Replace a route.
#[utoipa::path(put, path = "/api/v1/routes/{id}", operation_id = "replaceRoute", tag = "notifications",
    params(("id" = i64, Path, description = "Route id")),
    request_body = RouteBody,
    responses((status = 200, description = "Replaced", body = RouteView),
              (status = 400, description = "Bad matcher, label or duration", body = Problem),
              (status = 404, description = "No such route or receiver", body = Problem)))]
pub async fn replace_route(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    ApiJson(body): ApiJson<RouteBody>,
) -> Result<ApiJson<RouteView>, ApiError> {
    let write = route_write(body)?;
    let record = state.store.update_route(id, &write).await?;
    state.incidents.notifications_changed();
    Ok(ApiJson(record.into()))
}

/// Delete a route (its pending groups are dropped; queued deliveries still
/// go out).
#[utoipa::path(delete, path = "/api/v1/routes/{id}", operation_id = "deleteRoute", tag = "notifications",
    params(("id" = i64, Path, description = "Route id")),
    responses((status = 204, description = "Deleted"),
              (status = 404, description = "No such route", body = Problem)))]
pub async fn delete_route(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_route(id).await? {
        return Err(no_route(id));
    }
    state.incidents.notifications_changed();
    Ok(StatusCode::NO_CONTENT)
}

fn route_write(body: RouteBody) -> Result<RouteWrite, ApiError> {
    let matchers = body.matchers.unwrap_or_else(|| Value::Array(Vec::new()));
    parse_matchers(&matchers)
        .map_err(|error| ApiError::bad_field("matchers", error.to_string()))?;
    let group_by = body
        .group_by
        .unwrap_or_else(|| DEFAULT_GROUP_BY.map(str::to_owned).to_vec());
    parse_group_by(&group_by)
        .map_err(|error| ApiError::bad_field("group_by", error.to_string()))?;
    Ok(RouteWrite {
        receiver: body.receiver,
        matchers,
        group_by,
        group_wait_ms: duration("group_wait", body.group_wait.as_deref(), "30s")?,
        group_interval_ms: positive(
            "group_interval",
            duration("group_interval", body.group_interval.as_deref(), "5m")?,
        )?,
        repeat_interval_ms: positive(
            "repeat_interval",
            duration("repeat_interval", body.repeat_interval.as_deref(), "4h")?,
        )?,
        send_resolved: body.send_resolved.unwrap_or(true),
        continue_matching: body.continue_matching.unwrap_or(false),
        position: body.position,
    })
}

fn no_route(id: i64) -> ApiError {
    ApiError::NotFound(format!("no route {id}"))
}

/// A duration like `30s`, `5m`, `4h`, `1h30m` or `2d` in milliseconds (the
/// CLI's flags read durations the same way).
fn duration(field: &str, text: Option<&str>, default: &str) -> Result<i64, ApiError> {
    let text = text.unwrap_or(default);
    let parsed = pilothouse_types::parse_duration(text)
        .map_err(|error| ApiError::bad_field(field, error.to_string()))?;
    i64::try_from(parsed.as_millis())
        .map_err(|_| ApiError::bad_field(field, format!("`{text}` is too long")))
}

fn positive(field: &str, ms: i64) -> Result<i64, ApiError> {
    if ms > 0 {
        Ok(ms)
    } else {
        Err(ApiError::bad_field(
            field,
            format!("{field} must be longer than zero"),
        ))
    }
}

/// A duration in milliseconds as people write it (`30s`, `4h`, `1h 30m`).
fn friendly(ms: i64) -> String {
    pilothouse_types::format_duration(std::time::Duration::from_millis(
        u64::try_from(ms).unwrap_or(0),
    ))
}

/// A silence: incidents matching it are recorded but not notified between
/// its start and end.
#[derive(Debug, Serialize, ToSchema)]
pub struct SilenceView {
    /// Id.
    pub id: i64,
    /// All must match (as routes' matchers).
    #[schema(value_type = Vec<Object>)]
    pub matchers: Value,
    /// From (RFC 3339).
    pub starts_at: String,
    /// Until (RFC 3339).
    pub ends_at: String,
    /// Who created it (default: the token's name).
    pub author: String,
    /// Why.
    pub comment: String,
    /// `pending`, `active` or `expired`.
    pub state: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Why the stored silence cannot be used (its matchers do not read any
    /// more): it mutes nothing until it is replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl SilenceView {
    fn of(record: SilenceRecord, now: i64) -> Self {
        let state = if record.expired_at.is_some() || record.ends_at <= now {
            "expired"
        } else if record.starts_at > now {
            "pending"
        } else {
            "active"
        };
        Self {
            id: record.id,
            starts_at: rfc3339(record.starts_at),
            ends_at: rfc3339(record.ends_at),
            author: record.author,
            comment: record.comment,
            state: state.to_owned(),
            created_at: rfc3339(record.created_at),
            error: parse_matchers(&record.matchers)
                .err()
                .map(|error| error.to_string()),
            matchers: record.matchers,
        }
    }
}

/// A silence to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceBody {
    /// At least one matcher (as routes' matchers).
    #[schema(value_type = Vec<Object>)]
    pub matchers: Value,
    /// From (RFC 3339); default now.
    pub starts_at: Option<String>,
    /// Until (RFC 3339); or give `duration`.
    pub ends_at: Option<String>,
    /// How long from the start (e.g. `2h`); or give `ends_at`.
    pub duration: Option<String>,
    /// Who; default the token's name.
    pub author: Option<String>,
    /// Why (required).
    pub comment: String,
}

/// Which silences to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListSilences {
    /// Only silences active now.
    pub active: Option<bool>,
}

/// Silences, newest first.
#[utoipa::path(get, path = "/api/v1/silences", operation_id = "listSilences", tag = "notifications",
    params(ListSilences),
    responses((status = 200, description = "Silences", body = [SilenceView])))]
pub async fn list_silences(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListSilences>,
) -> Result<ApiJson<Vec<SilenceView>>, ApiError> {
    let now = now_ms();
    let active_at = query.active.unwrap_or(false).then_some(now);
    let silences = state.store.list_silences(active_at).await?;
    Ok(ApiJson(
        silences
            .into_iter()
            .map(|silence| SilenceView::of(silence, now))
            .collect(),
    ))
}

/// Create a silence.
#[utoipa::path(post, path = "/api/v1/silences", operation_id = "createSilence", tag = "notifications",
    request_body = SilenceBody,
    responses((status = 201, description = "Created", body = SilenceView),
              (status = 400, description = "Bad matcher or time", body = Problem)))]
pub async fn create_silence(
    State(state): State<AppState>,
    Extension(token): Extension<ApiToken>,
    ApiJson(body): ApiJson<SilenceBody>,
) -> Result<(StatusCode, ApiJson<SilenceView>), ApiError> {
    let matchers = parse_matchers(&body.matchers)
        .map_err(|error| ApiError::bad_field("matchers", error.to_string()))?;
    if matchers.is_empty() {
        return Err(ApiError::bad_field(
            "matchers",
            "a silence needs at least one matcher (it would mute everything)",
        ));
    }
    if body.comment.trim().is_empty() {
        return Err(ApiError::bad_field(
            "comment",
            "say why the silence is needed",
        ));
    }
    let now = now_ms();
    let starts_at = match body.starts_at.as_deref() {
        Some(text) => timestamp("starts_at", text)?,
        None => now,
    };
    let ends_at = match (body.ends_at.as_deref(), body.duration.as_deref()) {
        (Some(text), None) => timestamp("ends_at", text)?,
        (None, Some(text)) => starts_at
            .checked_add(positive(
                "duration",
                duration("duration", Some(text), "0s")?,
            )?)
            .ok_or_else(|| ApiError::bad_field("duration", format!("`{text}` is too long")))?,
        _ => {
            return Err(ApiError::bad_field(
                "ends_at",
                "give either ends_at or duration",
            ));
        }
    };
    if ends_at <= starts_at.max(now) {
        return Err(ApiError::bad_field(
            "ends_at",
            "the silence must end after it starts, and in the future",
        ));
    }
    let write = SilenceWrite {
        matchers: body.matchers,
        starts_at,
        ends_at,
        author: body.author.unwrap_or(token.name),
        comment: body.comment,
    };
    let record = state.store.create_silence(&write).await?;
    state.incidents.notifications_changed();
    Ok((StatusCode::CREATED, ApiJson(SilenceView::of(record, now))))
}

/// One silence.
#[utoipa::path(get, path = "/api/v1/silences/{id}", operation_id = "getSilence", tag = "notifications",
    params(("id" = i64, Path, description = "Silence id")),
    responses((status = 200, description = "The silence", body = SilenceView),
              (status = 404, description = "No such silence", body = Problem)))]
pub async fn get_silence(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<ApiJson<SilenceView>, ApiError> {
    let record = state
        .store
        .get_silence(id)
        .await?
        .ok_or_else(|| no_silence(id))?;
    Ok(ApiJson(SilenceView::of(record, now_ms())))
}

/// Expire a silence now (it stays listed, as expired).
#[utoipa::path(delete, path = "/api/v1/silences/{id}", operation_id = "expireSilence", tag = "notifications",
    params(("id" = i64, Path, description = "Silence id")),
    responses((status = 204, description = "Expired"),
              (status = 404, description = "No such silence, or already expired", body = Problem)))]
pub async fn expire_silence(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if !state.store.expire_silence(id, now_ms()).await? {
        return Err(ApiError::NotFound(format!(
            "no silence {id} that has not expired yet"
        )));
    }
    state.incidents.notifications_changed();
    Ok(StatusCode::NO_CONTENT)
}

fn no_silence(id: i64) -> ApiError {
    ApiError::NotFound(format!("no silence {id}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_friendly_both_ways() {
        assert_eq!(duration("x", None, "30s").ok(), Some(30_000));
        assert_eq!(duration("x", Some("4h"), "30s").ok(), Some(4 * 3_600_000));
        assert_eq!(duration("x", Some("1h30m"), "30s").ok(), Some(5_400_000));
        assert!(duration("x", Some("soon"), "30s").is_err());
        assert!(duration("x", Some("-5m"), "30s").is_err());
        assert_eq!(friendly(30_000), "30s");
        assert_eq!(friendly(4 * 3_600_000), "4h");
    }

    #[test]
    fn stored_entries_that_no_longer_read_say_why() {
        let route = |matchers: Value, group_by: &[&str]| {
            RouteView::from(RouteRecord {
                id: 1,
                position: 0,
                receiver_id: 1,
                receiver: "hook".into(),
                matchers,
                group_by: group_by.iter().map(|l| (*l).to_owned()).collect(),
                group_wait_ms: 30_000,
                group_interval_ms: 300_000,
                repeat_interval_ms: 14_400_000,
                send_resolved: true,
                continue_matching: false,
                created_at: 0,
                updated_at: 0,
            })
            .error
        };
        let good = serde_json::json!([{"label": "cluster", "op": "=", "value": "a"}]);
        assert_eq!(route(good.clone(), &["cluster"]), None);
        let error = route(good.clone(), &["cluster", "pod"]).expect("an unknown label");
        assert!(error.contains("`pod`"), "{error}");
        let bad = serde_json::json!([{"label": "cluster", "op": "=~", "value": "(a"}]);
        assert!(route(bad.clone(), &["cluster"]).is_some());
        let silence = |matchers: Value| {
            SilenceView::of(
                SilenceRecord {
                    id: 1,
                    matchers,
                    starts_at: 0,
                    ends_at: 10,
                    author: "me".into(),
                    comment: "x".into(),
                    created_at: 0,
                    expired_at: None,
                },
                5,
            )
            .error
        };
        assert_eq!(silence(good), None);
        assert!(silence(bad).is_some());
    }
}

//! `/api/v1/tokens`: API tokens (the secret is shown once, at creation).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use pilothouse_store::{ApiToken, Scope};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Problem;
use crate::{ApiError, ApiJson, AppState};

/// Body of `POST /api/v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A name to recognise the token by.
    pub name: String,
    /// `read` or `write` (write implies read).
    pub scope: String,
}

/// A token as listed (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Identifier, for revocation.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// `read` or `write`.
    pub scope: String,
    /// Creation time (unix milliseconds).
    pub created_at: i64,
    /// Last use (unix milliseconds, updated at most once a minute).
    pub last_used_at: Option<i64>,
}

/// A newly created token, with its secret (which `Debug` leaves out).
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    /// The token.
    #[serde(flatten)]
    pub token: TokenView,
    /// The bearer secret. Shown only here; store it now.
    pub secret: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("token", &self.token)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl From<ApiToken> for TokenView {
    fn from(token: ApiToken) -> Self {
        Self {
            id: token.id,
            name: token.name,
            scope: token.scope.to_string(),
            created_at: token.created_at,
            last_used_at: token.last_used_at,
        }
    }
}

/// Create a token.
#[utoipa::path(post, path = "/api/v1/tokens", operation_id = "createToken", tag = "tokens", request_body = CreateToken,
    responses((status = 201, description = "Created; the secret is in the body", body = CreatedToken),
              (status = 400, description = "Bad scope or name", body = Problem)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateToken>,
) -> Result<(StatusCode, ApiJson<CreatedToken>), ApiError> {
    let scope: Scope = body.scope.parse().map_err(|_| {
        ApiError::bad_field(
            "scope",
            format!("`{}` is not a scope (read or write)", body.scope),
        )
    })?;
    if body.name.trim().is_empty() || body.name.len() > 128 {
        return Err(ApiError::bad_field(
            "name",
            "a token name is 1 to 128 characters",
        ));
    }
    let (token, secret) = state.store.create_token(&body.name, scope).await?;
    tracing::info!(token = %token.name, scope = %token.scope, "API token created");
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedToken {
            token: token.into(),
            secret,
        }),
    ))
}

/// List tokens (without secrets).
#[utoipa::path(get, path = "/api/v1/tokens", operation_id = "listTokens", tag = "tokens",
    responses((status = 200, description = "Every token", body = [TokenView])))]
pub async fn list(State(state): State<AppState>) -> Result<ApiJson<Vec<TokenView>>, ApiError> {
    Ok(ApiJson(
        state
            .store
            .list_tokens()
            .await?
            .into_iter()
            .map(TokenView::from)
            .collect(),
    ))
}

/// Revoke a token.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", operation_id = "revokeToken", tag = "tokens",
    params(("id" = i64, Path, description = "Token id")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such token", body = Problem)))]
pub async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if state.store.revoke_token(id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no token with id {id}")))
    }
}

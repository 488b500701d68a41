//! Bearer-token authentication with `read` and `write` scopes.
//!
//! Safe methods (GET, HEAD) need `read`; everything else needs `write` (which
//! implies `read`). Tokens are stored hashed by the store; the authenticated
//! token is put into the request's extensions for handlers that want it.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use pilothouse_store::Scope;

use crate::{ApiError, AppState};

/// Middleware: refuses requests without a valid token (401) or with too small a scope (403).
pub async fn require_token(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let secret = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|secret| !secret.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let token = state
        .store
        .authenticate(secret)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let needs_write = !matches!(*request.method(), Method::GET | Method::HEAD);
    let needed = if needs_write {
        Scope::Write
    } else {
        Scope::Read
    };
    if !token.scope.allows(needed) {
        return Err(ApiError::Forbidden(format!(
            "token `{}` has scope `read`; {} needs `write`",
            token.name,
            request.method()
        )));
    }
    request.extensions_mut().insert(token);
    Ok(next.run(request).await)
}

//! The API's one error type, answered as RFC 7807 `application/problem+json`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

/// An RFC 7807 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type (`about:blank` when the status says it all).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// The request field at fault, when one is (e.g. `name`, `kubeconfig: users[admin].user.client-key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Everything a handler can answer instead of success.
#[derive(Debug)]
pub enum ApiError {
    /// 400: malformed input.
    BadRequest {
        /// What is wrong.
        detail: String,
        /// The field at fault.
        field: Option<String>,
    },
    /// 401: no or unknown bearer token.
    Unauthorized,
    /// 401: a request that authenticates otherwise (e.g. a webhook
    /// signature) did not.
    BadCredentials(String),
    /// 403: the token lacks the scope.
    Forbidden(String),
    /// 404: no such resource.
    NotFound(String),
    /// 409: conflicts with an existing resource.
    Conflict(String),
    /// 413: the body is larger than the limit.
    PayloadTooLarge(String),
    /// 415: not JSON.
    UnsupportedMediaType(String),
    /// 422: well-formed but refused (e.g. the cluster cannot be reached with these credentials).
    Unprocessable {
        /// Why.
        detail: String,
        /// The field at fault.
        field: Option<String>,
    },
    /// 502: a service we depend on (the Git remote) failed.
    BadGateway(String),
    /// 503: overloaded or timed out.
    Unavailable(String),
    /// 500: our fault. The detail is logged once, never sent.
    Internal(String),
}

impl ApiError {
    /// A 400 naming a field.
    pub fn bad_field(field: &str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            detail: detail.into(),
            field: Some(field.to_owned()),
        }
    }

    /// A 500 from any error; the text goes to the log only.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        Self::Internal(error.to_string())
    }

    fn parts(&self) -> (StatusCode, String, Option<String>) {
        match self {
            Self::BadRequest { detail, field } => {
                (StatusCode::BAD_REQUEST, detail.clone(), field.clone())
            }
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required (Authorization: Bearer <token>)".to_owned(),
                None,
            ),
            Self::BadCredentials(detail) => (StatusCode::UNAUTHORIZED, detail.clone(), None),
            Self::Forbidden(detail) => (StatusCode::FORBIDDEN, detail.clone(), None),
            Self::NotFound(detail) => (StatusCode::NOT_FOUND, detail.clone(), None),
            Self::Conflict(detail) => (StatusCode::CONFLICT, detail.clone(), None),
            Self::PayloadTooLarge(detail) => (StatusCode::PAYLOAD_TOO_LARGE, detail.clone(), None),
            Self::UnsupportedMediaType(detail) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, detail.clone(), None)
            }
            Self::Unprocessable { detail, field } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                detail.clone(),
                field.clone(),
            ),
            Self::BadGateway(detail) => (StatusCode::BAD_GATEWAY, detail.clone(), None),
            Self::Unavailable(detail) => (StatusCode::SERVICE_UNAVAILABLE, detail.clone(), None),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; it has been logged".to_owned(),
                None,
            ),
        }
    }
}

impl From<pilothouse_store::StoreError> for ApiError {
    fn from(error: pilothouse_store::StoreError) -> Self {
        match error {
            pilothouse_store::StoreError::Conflict { .. } => Self::Conflict(error.to_string()),
            pilothouse_store::StoreError::NotFound { .. } => Self::NotFound(error.to_string()),
            pilothouse_store::StoreError::InUse { .. } => Self::Conflict(error.to_string()),
            pilothouse_store::StoreError::InvalidInput { .. } => Self::Unprocessable {
                detail: error.to_string(),
                field: None,
            },
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(message) = &self {
            tracing::error!(error = %message, "internal error answering a request");
        }
        let (status, detail, field) = self.parts();
        let mut response = problem(status, detail, field);
        if matches!(self, Self::BadCredentials(_)) {
            // not a bearer-token challenge
            response.headers_mut().remove(header::WWW_AUTHENTICATE);
        }
        response
    }
}

/// Builds a problem+json response.
pub fn problem(status: StatusCode, detail: String, field: Option<String>) -> Response {
    let body = Problem {
        kind: "about:blank".to_owned(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        field,
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// `Json` whose rejections (bad JSON, unknown fields, wrong content type, too
/// large) are problem+json like every other error.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                    "the body must be JSON (Content-Type: application/json)".into(),
                ),
                JsonRejection::BytesRejection(ref inner)
                    if inner.status() == StatusCode::PAYLOAD_TOO_LARGE =>
                {
                    ApiError::PayloadTooLarge("the request body is larger than the limit".into())
                }
                JsonRejection::JsonDataError(error) => ApiError::BadRequest {
                    detail: error.body_text(),
                    field: None,
                },
                JsonRejection::JsonSyntaxError(error) => ApiError::BadRequest {
                    detail: error.body_text(),
                    field: None,
                },
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge("the request body is larger than the limit".into())
                }
                other => ApiError::BadRequest {
                    detail: other.body_text(),
                    field: None,
                },
            }),
        }
    }
}

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Query` whose rejections (unknown or malformed parameters) are problem+json.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::BadRequest {
                detail: rejection.body_text(),
                field: None,
            }),
        }
    }
}

/// The largest page any list returns.
pub const MAX_PAGE: u32 = 500;

/// A page size from a `limit` parameter: `default` when absent, else
/// 1–[`MAX_PAGE`] or a 400 naming `limit`.
pub fn page_limit(limit: Option<u32>, default: u32) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(default);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_field(
            "limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ))
    }
}

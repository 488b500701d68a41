//! The HTTP surface of Pilothouse: routes, authentication, limits, errors,
//! OpenAPI and metrics.
//!
//! Only this crate knows HTTP. It reads and writes state through the store and
//! asks `fleet` for request-scoped work (validating a kubeconfig, probing a
//! cluster); it keeps no Kubernetes client in its state and runs no watchers.

mod auth;
mod clusters;
mod drift;
mod error;
mod gitops;
mod incidents;
mod metrics;
mod notifications;
mod server;
mod syncs;
mod tokens;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{BoxError, Json, Router, middleware};
use pilothouse_fleet::{CheckSettings, KubeconfigPolicy};
use pilothouse_store::{MasterKey, Store};
use serde::Serialize;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use clusters::{ClusterChecks, ClusterView, ClusterWatchView, KindWatchView, RegisterCluster};
pub use error::{ApiError, ApiJson, Problem};
pub use gitops::{
    BoxFuture, GitCredentials, GitOpsControl, ScaffoldError, Scaffolded,
    open_repository_credentials,
};
pub use incidents::{IncidentControl, UnreadableEntries};
pub use metrics::HttpMetrics;
pub use server::{ServerOptions, ServerTls, TlsSetupError, serve};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The key that seals cluster credentials.
    pub master_key: Arc<MasterKey>,
    /// Which kubeconfigs are accepted.
    pub kubeconfig_policy: Arc<KubeconfigPolicy>,
    /// Timeouts and intervals of connectivity checks.
    pub checks: Arc<CheckSettings>,
    /// The connectivity checker: check a cluster now.
    pub checker: Arc<dyn ClusterChecks>,
    /// HTTP request metrics.
    pub metrics: Arc<HttpMetrics>,
    /// The GitOps controller: fetch now, sync now, scaffold.
    pub gitops: Arc<dyn GitOpsControl>,
    /// The incident monitor: reload notification settings.
    pub incidents: Arc<dyn IncidentControl>,
    /// Where a write token may point the service: local repositories,
    /// receiver destinations.
    pub outbound: Arc<OutboundPolicy>,
}

/// Where the API lets a token holder point the service, beyond the public
/// network. [`Default`]: nowhere.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// Directories below which a local path or `file://` URL may be set as
    /// the desired-state repository through the API
    /// (`serve --allow-local-repo-root`); the one set with `serve --repo`
    /// stays accepted unchanged.
    pub local_repo_roots: Vec<PathBuf>,
    /// Which loopback, private or link-local ranges receivers may target
    /// (`serve --allow-receiver-network`).
    pub receiver_destinations: pilothouse_notify::DestinationPolicy,
}

/// Limits applied to every request.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted request body, in bytes.
    pub body_bytes: usize,
    /// Time a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// Requests handled at once; more wait for a slot (until the timeout).
    pub concurrency: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: 2 << 20,
            request_timeout: Duration::from_secs(30),
            concurrency: 256,
        }
    }
}

/// Security scheme of the OpenAPI document: bearer tokens.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Pilothouse API", description = "Multi-cluster GitOps monitoring control plane"),
    security(("bearer" = [])),
    modifiers(&BearerAuth),
    components(schemas(Problem))
)]
struct ApiDoc;

/// The OpenAPI document of every `/api/v1` route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = api_routes().split_for_parts().1;
    document.merge(public_routes().split_for_parts().1);
    document
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(clusters::register, clusters::list))
        .routes(routes!(clusters::get, clusters::patch, clusters::delete))
        .routes(routes!(clusters::check))
        .routes(routes!(syncs::sync))
        .routes(routes!(syncs::list))
        .routes(routes!(syncs::get))
        .routes(routes!(syncs::resources))
        .routes(routes!(gitops::get_repository, gitops::put_repository))
        .routes(routes!(gitops::list_revisions))
        .routes(routes!(drift::latest))
        .routes(routes!(drift::scan))
        .routes(routes!(drift::history))
        .routes(routes!(drift::summary))
        .routes(routes!(drift::list_rules, drift::add_rule))
        .routes(routes!(drift::delete_rule))
        .routes(routes!(incidents::list))
        .routes(routes!(incidents::get))
        .routes(routes!(incidents::ack))
        .routes(routes!(
            notifications::list_receivers,
            notifications::create_receiver
        ))
        .routes(routes!(
            notifications::get_receiver,
            notifications::replace_receiver,
            notifications::delete_receiver
        ))
        .routes(routes!(notifications::list_deliveries))
        .routes(routes!(
            notifications::list_routes,
            notifications::create_route
        ))
        .routes(routes!(
            notifications::get_route,
            notifications::replace_route,
            notifications::delete_route
        ))
        .routes(routes!(
            notifications::list_silences,
            notifications::create_silence
        ))
        .routes(routes!(
            notifications::get_silence,
            notifications::expire_silence
        ))
        .routes(routes!(tokens::create, tokens::list))
        .routes(routes!(tokens::revoke))
}

/// Routes that authenticate otherwise than by bearer token.
fn public_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(gitops::webhook))
}

/// Builds the service's router with its layers.
pub fn router(state: AppState, limits: &Limits) -> Router {
    let (api, mut document) = api_routes().split_for_parts();
    let (public, public_document) = public_routes().split_for_parts();
    document.merge(public_document);
    // routes outside the OpenAPI router, documented by hand
    document.paths.paths.insert(
        "/api/v1/openapi.json".to_owned(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("This OpenAPI document"))
                .response("200", utoipa::openapi::Response::new("The document")),
        ),
    );
    let document = Arc::new(document);
    let authenticated = api
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = Arc::clone(&document);
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .route("/metrics", get(metrics::metrics))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(public)
        .merge(authenticated)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), RandomRequestId))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                        let id = request
                            .extensions()
                            .get::<RequestId>()
                            .and_then(|id| id.header_value().to_str().ok())
                            .unwrap_or("-");
                        tracing::info_span!("request", method = %request.method(), uri = %request.uri().path(), request_id = %id)
                    }),
                )
                .layer(PropagateRequestIdLayer::new(request_id))
                .layer(HandleErrorLayer::new(middleware_error))
                .timeout(limits.request_timeout)
                .concurrency_limit(limits.concurrency),
        )
        .with_state(state)
}

/// Answers errors of the timeout and concurrency layers as problems.
async fn middleware_error(error: BoxError) -> Response {
    if error.is::<tower::timeout::error::Elapsed>() {
        ApiError::Unavailable("the request took longer than the server's time limit".into())
            .into_response()
    } else {
        ApiError::internal(error).into_response()
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

/// Liveness answer.
#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
}

async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

/// Ready when the store answers.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.count_tokens().await {
        Ok(_) => Json(Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
        })
        .into_response(),
        Err(error) => {
            tracing::warn!(%error, "not ready: the store does not answer");
            error::problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store does not answer".into(),
                None,
            )
        }
    }
}

/// Request ids: 16 random hex characters.
#[derive(Debug, Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let id = format!("{:016x}", rand_u64());
        axum::http::HeaderValue::from_str(&id)
            .ok()
            .map(RequestId::new)
    }
}

/// A random u64 from the standard library's randomly seeded hasher.
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    hasher.finish()
}

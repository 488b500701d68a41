//! The desired-state repository over HTTP: its settings (`/api/v1/repository`),
//! the revisions fetched (`/api/v1/revisions`), and the push webhook
//! (`/api/v1/webhooks/git`), which authenticates by signature, not by token.
//!
//! The API never touches the Git mirror itself: it asks the controller the
//! binary runs, through [`GitOpsControl`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use pilothouse_gitops::webhook::{self, WebhookError};
use pilothouse_gitops::{RemoteKind, RepoCredentials};
use pilothouse_store::{
    CredentialsKind, MasterKey, Repository, RepositoryEvent, RepositoryEventKind,
    RepositorySettings, RevisionRecord, SealedSecret, SecretChange, WEBHOOK_SECRET_CONTEXT,
    repository_credentials_context,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::clusters::rfc3339;
use crate::error::{ApiQuery, Problem, page_limit};
use crate::{ApiError, ApiJson, AppState};

/// The repository's Git credentials as sealed in the store (JSON under
/// [`REPOSITORY_CREDENTIALS_CONTEXT`]). `Debug` shows no secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GitCredentials {
    /// How to authenticate.
    pub credentials: RepoCredentials,
    /// A PEM CA to trust for HTTPS instead of the system roots.
    #[serde(default)]
    pub ca_certificate: Option<String>,
}

/// Outcome of committing a cluster's overlay to the repository.
#[derive(Debug, Clone)]
pub struct Scaffolded {
    /// The commit pushed.
    pub revision: String,
    /// The file it added, relative to the repository root.
    pub path: String,
}

/// Why a cluster's overlay could not be committed. Nothing was pushed and
/// nothing changed locally.
#[derive(Debug, Clone)]
pub enum ScaffoldError {
    /// The cluster already has a directory in the repository.
    AlreadyExists(String),
    /// The remote refused the push (e.g. not a fast-forward).
    Rejected(String),
    /// No repository is configured, or it cannot be pushed to.
    NotPossible(String),
    /// The remote could not be reached, or Git failed.
    Failed(String),
}

/// A boxed future, for the object-safe [`GitOpsControl`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What the API asks of the GitOps controller. The binary implements it;
/// handlers only call it.
pub trait GitOpsControl: Send + Sync + 'static {
    /// Fetch the repository now (a push webhook arrived, or the settings
    /// changed).
    fn fetch_now(&self);
    /// A sync was queued: look at the queue now.
    fn sync_queued(&self);
    /// Commit `gitops/clusters/<cluster>/kustomization.yaml`, building on
    /// `overlays/<cloud>/`, and push it to the branch.
    fn scaffold(
        &self,
        cluster: String,
        cloud: String,
    ) -> BoxFuture<Result<Scaffolded, ScaffoldError>>;
    /// Scan `cluster` for drift now and record the report; resolves when it
    /// is recorded, or with why the scan could not run.
    fn scan_drift(&self, cluster: String) -> BoxFuture<Result<(), String>>;
}

impl From<ScaffoldError> for ApiError {
    fn from(error: ScaffoldError) -> Self {
        match error {
            ScaffoldError::AlreadyExists(detail) | ScaffoldError::Rejected(detail) => {
                ApiError::Conflict(detail)
            }
            ScaffoldError::NotPossible(detail) => ApiError::Unprocessable {
                detail,
                field: Some("scaffold".into()),
            },
            ScaffoldError::Failed(detail) => ApiError::BadGateway(detail),
        }
    }
}

/// The repository as the API shows it. Credentials and the webhook secret
/// are never returned: only which kind is set.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryView {
    /// Local path, `file://`, `https://` or SSH URL.
    pub url: String,
    /// The branch followed.
    pub branch: String,
    /// Sub-path holding `manifests/`, `overlays/` and `gitops/` (`""`: root).
    pub path: String,
    /// Seconds between polls (plus up to 10% jitter).
    pub poll_interval_seconds: u32,
    /// `none`, `token` or `ssh_key`.
    pub credentials: String,
    /// Whether webhooks can be verified (they are refused without a secret).
    pub webhook_secret_set: bool,
    /// The branch head at the last successful fetch.
    pub head: Option<RevisionView>,
    /// When it was last fetched (RFC 3339).
    pub last_fetch_at: Option<String>,
    /// Why the last fetch failed; the last good revision stays in force.
    pub last_fetch_error: Option<String>,
    /// Failed fetches in a row.
    pub consecutive_fetch_failures: u32,
    /// The most recent events: fetches, failures, webhooks, pushes.
    pub events: Vec<RepositoryEventView>,
}

/// A fetched revision.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevisionView {
    /// Full commit id.
    pub id: String,
    /// `Name <email>`.
    pub author: String,
    /// First line of the commit message.
    pub summary: String,
    /// Commit time (RFC 3339).
    pub committed_at: String,
    /// When Pilothouse first fetched it (RFC 3339).
    pub seen_at: String,
}

impl From<RevisionRecord> for RevisionView {
    fn from(revision: RevisionRecord) -> Self {
        Self {
            committed_at: rfc3339(revision.committed_at),
            seen_at: rfc3339(revision.seen_at),
            id: revision.id,
            author: revision.author,
            summary: revision.summary,
        }
    }
}

/// Something that happened to the repository.
#[derive(Debug, Serialize, ToSchema)]
pub struct RepositoryEventView {
    /// When (RFC 3339).
    pub at: String,
    /// `fetched`, `fetch_failed`, `webhook`, `pushed` or `push_failed`.
    pub kind: String,
    /// The revision concerned.
    pub revision: Option<String>,
    /// Details.
    pub message: String,
}

impl From<RepositoryEvent> for RepositoryEventView {
    fn from(event: RepositoryEvent) -> Self {
        Self {
            at: rfc3339(event.at),
            kind: event.kind.to_string(),
            revision: event.revision,
            message: event.message,
        }
    }
}

/// Git credentials as submitted (write-only; `Debug` shows no secret).
#[derive(Clone, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialsInput {
    /// Anonymous access: removes stored credentials.
    None,
    /// HTTPS with a token (e.g. a GitHub or GitLab access token).
    Token {
        /// The user name sent with the token (default `x-access-token`).
        username: Option<String>,
        /// The token.
        token: String,
        /// A PEM CA certificate to trust for this server instead of the
        /// system roots.
        ca_certificate: Option<String>,
    },
    /// SSH with a private key.
    SshKey {
        /// The private key (OpenSSH or PEM).
        private_key: String,
        /// Its passphrase, if it has one.
        passphrase: Option<String>,
        /// `known_hosts` lines for the server: its host key is checked
        /// against them.
        known_hosts: String,
    },
}

impl std::fmt::Debug for CredentialsInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // as stored: the same redactions
        GitCredentials::from(self.clone()).fmt(f)
    }
}

/// Body of `PUT /api/v1/repository` (`Debug` shows no secret).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRepository {
    /// Local absolute path, `file://`, `https://` or SSH
    /// (`ssh://user@host/path`, `user@host:path`) URL, without credentials.
    pub url: String,
    /// The branch to follow (default `main`).
    pub branch: Option<String>,
    /// Sub-path holding `manifests/`, `overlays/` and `gitops/`.
    pub path: Option<String>,
    /// Seconds between polls, 10–86400 (default 60).
    pub poll_interval_seconds: Option<u32>,
    /// Replaces the credentials when present; kept when absent.
    pub credentials: Option<CredentialsInput>,
    /// Replaces the webhook secret when present (`""` removes it); kept
    /// when absent.
    pub webhook_secret: Option<String>,
}

impl std::fmt::Debug for PutRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutRepository")
            .field("url", &self.url)
            .field("branch", &self.branch)
            .field("path", &self.path)
            .field("poll_interval_seconds", &self.poll_interval_seconds)
            .field("credentials", &self.credentials)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Query of `GET /api/v1/revisions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListRevisions {
    /// How many, 1–500 (default 50).
    pub limit: Option<u32>,
}

/// How long a webhook delivery id is remembered, to refuse replays.
const WEBHOOK_REPLAY_WINDOW_MS: i64 = 60 * 60 * 1000;

/// Answer to a webhook delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAnswer {
    /// `accepted` (a fetch was started), `ignored` (not the followed branch,
    /// or not a push) or `pong`.
    pub status: String,
    /// Why, for `ignored`.
    pub detail: Option<String>,
}

/// The desired-state repository: settings, fetch state and recent events.
#[utoipa::path(get, path = "/api/v1/repository", operation_id = "getRepository", tag = "gitops",
    responses((status = 200, description = "The repository", body = RepositoryView),
              (status = 404, description = "No repository configured", body = Problem)))]
pub async fn get_repository(
    State(state): State<AppState>,
) -> Result<ApiJson<RepositoryView>, ApiError> {
    let repository =
        state.store.get_repository().await?.ok_or_else(|| {
            ApiError::NotFound("no desired-state repository is configured".into())
        })?;
    Ok(ApiJson(repository_view(&state, repository).await?))
}

/// Configure the desired-state repository. Secrets are sealed and never
/// returned; the repository is fetched at once.
#[utoipa::path(put, path = "/api/v1/repository", operation_id = "putRepository", tag = "gitops",
    request_body = PutRepository,
    responses((status = 200, description = "The repository", body = RepositoryView),
              (status = 400, description = "Bad URL, branch or credentials", body = Problem)))]
pub async fn put_repository(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<PutRepository>,
) -> Result<ApiJson<RepositoryView>, ApiError> {
    let branch = body.branch.unwrap_or_else(|| "main".into());
    check_branch(&branch)?;
    let path = body.path.unwrap_or_default();
    check_sub_path(&path)?;
    let poll_interval_secs = body.poll_interval_seconds.unwrap_or(60);
    if !(10..=86_400).contains(&poll_interval_secs) {
        return Err(ApiError::bad_field(
            "poll_interval_seconds",
            "poll_interval_seconds must be between 10 and 86400",
        ));
    }
    if body
        .webhook_secret
        .as_deref()
        .is_some_and(|secret| !secret.is_empty() && secret.len() < 16)
    {
        return Err(ApiError::bad_field(
            "webhook_secret",
            "the webhook secret must be at least 16 characters",
        ));
    }
    let credentials = body.credentials.map(GitCredentials::from);
    let stored = state.store.get_repository().await?;
    // The URL is checked against the credentials it will be used with: the
    // new ones, or the stored ones when they are kept.
    let effective = match &credentials {
        Some(credentials) => credentials.credentials.clone(),
        None => stored_credentials(&state).await?.credentials,
    };
    let kind = pilothouse_gitops::validate_remote_url(&body.url, &effective)
        .map_err(|error| ApiError::bad_field("url", error.to_string()))?;
    let stored_url = stored.as_ref().map(|r| r.settings.url.as_str());
    if matches!(kind, RemoteKind::LocalPath | RemoteKind::File) && stored_url != Some(&body.url) {
        check_local_remote(&body.url, &state.outbound.local_repo_roots)?;
    }
    let origin = pilothouse_gitops::remote_origin(&kind);
    // Kept credentials stay with the origin they were given for.
    if credentials.is_none()
        && let Some(stored) = &stored
        && stored.credentials_kind != CredentialsKind::None
    {
        let stored_origin = pilothouse_gitops::url_origin(&stored.settings.url)
            .unwrap_or_else(|_| "an unknown origin".to_owned());
        if stored_origin != origin {
            return Err(ApiError::bad_field(
                "credentials",
                format!(
                    "the stored credentials were given for {stored_origin} and are never sent \
                     to another host: moving the repository to {origin} needs its own \
                     `credentials` (or {{\"kind\": \"none\"}} for anonymous access)"
                ),
            ));
        }
    }
    let credentials = match credentials {
        None => SecretChange::Keep,
        Some(credentials) => match credentials.credentials {
            RepoCredentials::None => SecretChange::Clear,
            ref kind => {
                let kind = match kind {
                    RepoCredentials::Token { .. } => CredentialsKind::Token,
                    _ => CredentialsKind::SshKey,
                };
                let json = serde_json::to_vec(&credentials).map_err(ApiError::internal)?;
                let sealed = state
                    .master_key
                    .seal(&json, &repository_credentials_context(&origin))?;
                SecretChange::Set((kind, sealed))
            }
        },
    };
    let webhook_secret = match body.webhook_secret.as_deref() {
        None => SecretChange::Keep,
        Some("") => SecretChange::Clear,
        Some(secret) => SecretChange::Set(
            state
                .master_key
                .seal(secret.as_bytes(), WEBHOOK_SECRET_CONTEXT)?,
        ),
    };
    let settings = RepositorySettings {
        url: body.url,
        branch,
        path,
        poll_interval_secs,
    };
    let repository = state
        .store
        .put_repository(&settings, credentials, webhook_secret)
        .await?;
    tracing::info!(url = %pilothouse_gitops::redact_url(&repository.settings.url), branch = %repository.settings.branch, "repository configured");
    state.gitops.fetch_now();
    Ok(ApiJson(repository_view(&state, repository).await?))
}

/// Revisions fetched as branch heads, newest first.
#[utoipa::path(get, path = "/api/v1/revisions", operation_id = "listRevisions", tag = "gitops",
    params(ListRevisions),
    responses((status = 200, description = "Revisions", body = [RevisionView]),
              (status = 400, description = "Bad limit", body = Problem)))]
pub async fn list_revisions(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListRevisions>,
) -> Result<ApiJson<Vec<RevisionView>>, ApiError> {
    let limit = page_limit(query.limit, 50)?;
    let revisions = state.store.list_revisions(limit).await?;
    Ok(ApiJson(
        revisions.into_iter().map(RevisionView::from).collect(),
    ))
}

/// Push webhook from GitHub (`X-Hub-Signature-256`) or GitLab
/// (`X-Gitlab-Token`). Authenticated by the signature, not a bearer token;
/// a bad or missing signature is 401 and changes nothing (the same 401
/// whether or not a secret is configured). A push to the followed branch
/// starts a fetch; a delivery id (`X-GitHub-Delivery`, `X-Gitlab-Event-UUID`)
/// seen within the last hour is a replay, refused with 409.
#[utoipa::path(post, path = "/api/v1/webhooks/git", operation_id = "gitWebhook", tag = "gitops",
    security(()),
    request_body(content = String, description = "The provider's push event (JSON)", content_type = "application/json"),
    responses((status = 202, description = "Accepted or ignored", body = WebhookAnswer),
              (status = 200, description = "Ping answered", body = WebhookAnswer),
              (status = 400, description = "Not a push event payload", body = Problem),
              (status = 401, description = "Bad or missing signature", body = Problem),
              (status = 409, description = "A replayed delivery", body = Problem)))]
pub async fn webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, ApiJson<WebhookAnswer>), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // The same answer whether or not a secret is configured: a caller
    // learns nothing about the service's set-up from a 401.
    let refused = || {
        ApiError::BadCredentials(
            "the webhook signature is missing or does not match \
             (GitHub: X-Hub-Signature-256, GitLab: X-Gitlab-Token)"
                .into(),
        )
    };
    let Some(sealed) = state.store.webhook_secret().await? else {
        tracing::warn!(
            "webhook refused: no webhook secret is configured (PUT /api/v1/repository with `webhook_secret`)"
        );
        return Err(refused());
    };
    let secret = state.master_key.open(&sealed, WEBHOOK_SECRET_CONTEXT)?;
    let (provider, verified) =
        if header("x-github-event").is_some() || header("x-hub-signature-256").is_some() {
            (
                "github",
                webhook::verify_github_signature(&secret, &body, header("x-hub-signature-256")),
            )
        } else if header("x-gitlab-token").is_some() || header("x-gitlab-event").is_some() {
            (
                "gitlab",
                webhook::verify_gitlab_token(&secret, header("x-gitlab-token")),
            )
        } else {
            ("unknown", false)
        };
    if !verified {
        tracing::warn!(provider, "webhook refused: bad or missing signature");
        return Err(refused());
    }
    if header("x-github-event") == Some("ping") {
        return Ok((
            StatusCode::OK,
            ApiJson(WebhookAnswer {
                status: "pong".into(),
                detail: None,
            }),
        ));
    }
    let event = match webhook::parse_push_event(&body) {
        Ok(event) => event,
        Err(WebhookError::NotAPush { .. }) => {
            return Ok(ignored("not a push event".into()));
        }
        Err(error) => {
            return Err(ApiError::BadRequest {
                detail: format!("cannot read the push event: {error}"),
                field: None,
            });
        }
    };
    let repository =
        state.store.get_repository().await?.ok_or_else(|| {
            ApiError::NotFound("no desired-state repository is configured".into())
        })?;
    if event.branch() != Some(repository.settings.branch.as_str()) {
        return Ok(ignored(format!(
            "push to `{}`, but the followed branch is `{}`",
            event.git_ref, repository.settings.branch
        )));
    }
    // A delivery seen before is a replay, refused for an hour: known by its
    // delivery id and by its signed body (an id is not covered by the
    // signature, so a replay under a new id is still the same body). Only
    // deliveries that are acted on are remembered.
    let delivery = header("x-github-delivery").or_else(|| header("x-gitlab-event-uuid"));
    if delivery.is_some_and(|id| {
        id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_graphic())
    }) {
        return Err(ApiError::BadRequest {
            detail: "the delivery id header is not a delivery id".into(),
            field: Some("X-GitHub-Delivery".into()),
        });
    }
    let digest: String = Sha256::digest(&body)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let keys: Vec<String> = std::iter::once(format!("{provider}:body:{digest}"))
        .chain(delivery.map(|id| format!("{provider}:id:{id}")))
        .collect();
    if !state
        .store
        .record_webhook_delivery(&keys, WEBHOOK_REPLAY_WINDOW_MS)
        .await?
    {
        tracing::warn!(provider, delivery = ?delivery, "webhook refused: a replayed delivery");
        return Err(ApiError::Conflict(
            "this delivery was already received within the last hour: a replay is refused".into(),
        ));
    }
    let message = format!(
        "{provider} push to `{}`{}",
        repository.settings.branch,
        event
            .after
            .as_deref()
            .map(|after| format!(" (now {after})"))
            .unwrap_or_default()
    );
    state
        .store
        .record_repository_event(
            RepositoryEventKind::Webhook,
            event.after.as_deref(),
            &message,
        )
        .await?;
    state.gitops.fetch_now();
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(WebhookAnswer {
            status: "accepted".into(),
            detail: None,
        }),
    ))
}

fn ignored(detail: String) -> (StatusCode, ApiJson<WebhookAnswer>) {
    (
        StatusCode::ACCEPTED,
        ApiJson(WebhookAnswer {
            status: "ignored".into(),
            detail: Some(detail),
        }),
    )
}

async fn repository_view(
    state: &AppState,
    repository: Repository,
) -> Result<RepositoryView, ApiError> {
    let head = match &repository.head_revision {
        Some(id) => state.store.get_revision(id).await?.map(RevisionView::from),
        None => None,
    };
    let events = state.store.list_repository_events(20).await?;
    Ok(RepositoryView {
        url: repository.settings.url,
        branch: repository.settings.branch,
        path: repository.settings.path,
        poll_interval_seconds: repository.settings.poll_interval_secs,
        credentials: repository.credentials_kind.to_string(),
        webhook_secret_set: repository.has_webhook_secret,
        head,
        last_fetch_at: repository.last_fetch_at.map(rfc3339),
        last_fetch_error: repository.last_fetch_error,
        consecutive_fetch_failures: repository.consecutive_fetch_failures,
        events: events.into_iter().map(RepositoryEventView::from).collect(),
    })
}

/// The stored credentials, opened for the stored URL's origin (anonymous
/// when none are stored).
async fn stored_credentials(state: &AppState) -> Result<GitCredentials, ApiError> {
    let Some((_, sealed)) = state.store.repository_credentials().await? else {
        return Ok(GitCredentials::default());
    };
    let url = state
        .store
        .get_repository()
        .await?
        .map(|repository| repository.settings.url)
        .unwrap_or_default();
    let json = open_repository_credentials(&state.master_key, &sealed, &url)?;
    serde_json::from_slice(&json).map_err(ApiError::internal)
}

/// Opens sealed repository credentials for the remote `url`: they open
/// only under the origin (scheme, host, port) they were sealed for.
pub fn open_repository_credentials(
    key: &MasterKey,
    sealed: &SealedSecret,
    url: &str,
) -> Result<Vec<u8>, pilothouse_store::StoreError> {
    let origin = pilothouse_gitops::url_origin(url).unwrap_or_else(|_| "unknown".to_owned());
    key.open(sealed, &repository_credentials_context(&origin))
}

/// A local repository through the API only below a root the operator named
/// (`serve --allow-local-repo-root`): a write token must not be able to
/// mirror any repository on the host. Judged on the path as written (made
/// absolute, `.` and `..` folded), then again with links resolved; the
/// answer does not tell whether a path outside the roots exists.
fn check_local_remote(url: &str, roots: &[PathBuf]) -> Result<(), ApiError> {
    let refused = || {
        ApiError::bad_field(
            "url",
            "local repositories (paths and file:// URLs) are accepted through the API only \
             below a directory the operator allows (serve --allow-local-repo-root DIR); \
             otherwise set them with serve --repo",
        )
    };
    let path = match url.strip_prefix("file://") {
        Some(_) => url::Url::parse(url)
            .ok()
            .and_then(|parsed| parsed.to_file_path().ok())
            .ok_or_else(refused)?,
        None => PathBuf::from(url),
    };
    let folded = fold(&path);
    let under = |path: &Path, canonical: bool| {
        roots.iter().any(|root| {
            let root = match canonical {
                true => std::fs::canonicalize(root).unwrap_or_else(|_| fold(root)),
                false => fold(root),
            };
            path.starts_with(root)
        })
    };
    if !under(&folded, false) {
        return Err(refused());
    }
    let canonical = std::fs::canonicalize(&folded)
        .map_err(|_| ApiError::bad_field("url", "no repository exists at this path"))?;
    if !under(&canonical, true) {
        return Err(refused());
    }
    Ok(())
}

/// `path` with `.` and `..` folded, without touching the file system.
fn fold(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl From<CredentialsInput> for GitCredentials {
    fn from(input: CredentialsInput) -> Self {
        match input {
            CredentialsInput::None => GitCredentials::default(),
            CredentialsInput::Token {
                username,
                token,
                ca_certificate,
            } => GitCredentials {
                credentials: RepoCredentials::Token { username, token },
                ca_certificate,
            },
            CredentialsInput::SshKey {
                private_key,
                passphrase,
                known_hosts,
            } => GitCredentials {
                credentials: RepoCredentials::SshKey {
                    private_key,
                    passphrase,
                    known_hosts,
                },
                ca_certificate: None,
            },
        }
    }
}

/// A branch name Git accepts, without refs/ prefixes or revision syntax.
fn check_branch(branch: &str) -> Result<(), ApiError> {
    let valid = !branch.is_empty()
        && branch.len() <= 255
        && !branch.starts_with(['-', '/', '.'])
        && !branch.ends_with(['/', '.'])
        && !branch.ends_with(".lock")
        && !branch.contains("..")
        && !branch.contains("//")
        && !branch.contains("@{")
        && branch
            .chars()
            .all(|c| !c.is_control() && !" ~^:?*[\\".contains(c));
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_field(
            "branch",
            format!("`{branch}` is not a valid branch name"),
        ))
    }
}

/// A relative path inside the repository, without `..`.
fn check_sub_path(path: &str) -> Result<(), ApiError> {
    let valid = !path.starts_with('/')
        && path
            .split('/')
            .all(|part| part != ".." && part != "." && part != ".git");
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_field(
            "path",
            format!("`{path}` must be a relative path inside the repository, without `..`"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_open_only_for_the_origin_they_were_sealed_for() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load_or_create(&dir.path().join("master.key"), None).unwrap();
        let url = "https://git.example.com/ops/desired.git";
        let origin = pilothouse_gitops::url_origin(url).unwrap();
        let sealed = key
            .seal(
                b"{\"credentials\":{\"kind\":\"none\"}}",
                &repository_credentials_context(&origin),
            )
            .unwrap();
        assert!(open_repository_credentials(&key, &sealed, url).is_ok());
        // the same host and port by another path, or spelled in capitals
        assert!(
            open_repository_credentials(&key, &sealed, "https://GIT.example.com:443/other.git")
                .is_ok()
        );
        for elsewhere in [
            "https://evil.example.com/ops/desired.git",
            "https://git.example.com:8443/ops/desired.git",
            "http://git.example.com/ops/desired.git",
            "git@git.example.com:ops/desired.git",
            "/srv/git/desired.git",
        ] {
            assert!(
                open_repository_credentials(&key, &sealed, elsewhere).is_err(),
                "{elsewhere}"
            );
        }
    }

    #[test]
    fn request_bodies_print_without_their_secrets() {
        let body: PutRepository = serde_json::from_value(serde_json::json!({
            "url": "https://git.example.com/d.git",
            "credentials": {"kind": "token", "token": "glpat-SECRET-1"},
            "webhook_secret": "SECRET-2-of-some-length",
        }))
        .unwrap();
        let ssh: CredentialsInput = serde_json::from_value(serde_json::json!({
            "kind": "ssh_key", "private_key": "SECRET-3", "passphrase": "SECRET-4",
            "known_hosts": "git.example.com ssh-ed25519 AAAA",
        }))
        .unwrap();
        let cluster: crate::RegisterCluster = serde_json::from_value(serde_json::json!({
            "name": "prod", "kubeconfig": "users: [{user: {token: SECRET-5}}]",
        }))
        .unwrap();
        let shown = format!("{body:?} {ssh:?} {cluster:?}");
        for secret in ["SECRET-1", "SECRET-2", "SECRET-3", "SECRET-4", "SECRET-5"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("git.example.com/d.git"), "{shown}");
    }

    #[test]
    fn branches_and_paths_are_checked() {
        for ok in ["main", "release/1.2", "feature-x"] {
            assert!(check_branch(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "a..b",
            "a b",
            "x.lock",
            "a:b",
            "refs/../x",
            "@{1}",
        ] {
            assert!(check_branch(bad).is_err(), "{bad}");
        }
        for ok in ["", "deploy", "deploy/fleet"] {
            assert!(check_sub_path(ok).is_ok(), "{ok}");
        }
        for bad in ["/abs", "../up", "a/../../b", ".git/x"] {
            assert!(check_sub_path(bad).is_err(), "{bad}");
        }
    }
}

//! The desired-state repository: polling and fetching (the last good
//! revision stays in force when a fetch fails), checkouts of a revision for
//! rendering, and commits of cluster overlays.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use pilothouse_api::{GitCredentials, ScaffoldError, Scaffolded, open_repository_credentials};
use pilothouse_gitops::{CommitAuthor, GitError, Mirror, RemoteOptions, Revision};
use pilothouse_store::{Repository, RepositoryEventKind, RevisionRecord};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use super::{Controller, stopped};

/// Checkouts kept besides the ones in use.
const CHECKOUTS_KEPT: usize = 8;

impl Controller {
    /// Fetches at start, then every poll interval (plus up to 10% jitter so
    /// many instances do not hit the remote together) and whenever woken.
    pub(super) async fn poll(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(error) = self.fetch().await {
                tracing::warn!(%error, "fetching the desired-state repository failed");
            }
            let interval = match self.store.get_repository().await {
                Ok(Some(repository)) => {
                    Duration::from_secs(u64::from(repository.settings.poll_interval_secs))
                }
                _ => Duration::from_secs(60),
            };
            let wait = pilothouse_types::jittered(interval, 0.1);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.fetch_wanted.notified() => {}
                () = stopped(&mut stop) => return,
            }
        }
    }

    /// Fetches the branch once. A new head is recorded (and the scheduler
    /// woken to queue auto-syncs); the same head changes nothing; a failure
    /// is recorded and the head in force stays.
    pub(super) async fn fetch(&self) -> anyhow::Result<()> {
        let Some(repository) = self.store.get_repository().await? else {
            return Ok(());
        };
        let options = self.remote_options(&repository.settings.url).await?;
        let mirror_dir = self.mirror_dir(&repository);
        let url = repository.settings.url.clone();
        let branch = repository.settings.branch.clone();
        let fetched = {
            let _guard = self.mirror_lock.lock().await;
            tokio::task::spawn_blocking(move || {
                Mirror::open_with(&mirror_dir, &url, &branch, options)?.fetch()
            })
            .await?
        };
        match fetched {
            Ok(head) => {
                if self.store.record_fetch(&revision_record(&head)).await? {
                    tracing::info!(revision = %head.id, summary = %head.summary, "new desired-state revision");
                    self.queue_changed.notify_one();
                }
            }
            Err(error) => {
                let message = error.to_string();
                tracing::warn!(error = %message, "fetch failed; the last good revision stays in force");
                self.store.record_fetch_failure(&message).await?;
            }
        }
        Ok(())
    }

    /// The directory holding revision `id` checked out, made once and reused.
    pub(super) async fn checkout(
        &self,
        repository: &Repository,
        id: &str,
    ) -> anyhow::Result<PathBuf> {
        let dir = self.settings.git_dir.join("checkouts").join(id);
        if dir.is_dir() {
            return Ok(dir);
        }
        let options = self.remote_options(&repository.settings.url).await?;
        let mirror_dir = self.mirror_dir(repository);
        let url = repository.settings.url.clone();
        let branch = repository.settings.branch.clone();
        let id = id.to_owned();
        let root = self.settings.git_dir.join("checkouts");
        let _guard = self.mirror_lock.lock().await;
        let dir = tokio::task::spawn_blocking(move || -> anyhow::Result<PathBuf> {
            let dir = root.join(&id);
            if dir.is_dir() {
                return Ok(dir);
            }
            std::fs::create_dir_all(&root)?;
            // written aside, then renamed: a checkout is complete or absent
            let partial = root.join(format!(".partial-{id}"));
            if partial.exists() {
                std::fs::remove_dir_all(&partial)?;
            }
            let mirror = Mirror::open_with(&mirror_dir, &url, &branch, options)?;
            mirror.checkout(&id, &partial)?;
            std::fs::rename(&partial, &dir)?;
            prune_checkouts(&root, &id);
            Ok(dir)
        })
        .await??;
        Ok(dir)
    }

    /// Commits `gitops/clusters/<cluster>/kustomization.yaml` building on
    /// `overlays/<cloud>/` on top of the freshly fetched head, and pushes it.
    pub(super) async fn scaffold(
        &self,
        cluster: &str,
        cloud: &str,
    ) -> Result<Scaffolded, ScaffoldError> {
        let failed = |error: anyhow::Error| ScaffoldError::Failed(format!("{error:#}"));
        let repository = self
            .store
            .get_repository()
            .await
            .map_err(|e| failed(e.into()))?
            .ok_or_else(|| {
                ScaffoldError::NotPossible("no desired-state repository is configured".into())
            })?;
        let options = self
            .remote_options(&repository.settings.url)
            .await
            .map_err(failed)?;
        let prefix = if repository.settings.path.is_empty() {
            String::new()
        } else {
            format!("{}/", repository.settings.path.trim_end_matches('/'))
        };
        let overlay = format!("{prefix}overlays/{cloud}");
        let path = format!("{prefix}gitops/clusters/{cluster}/kustomization.yaml");
        let content = scaffold_kustomization(cluster, cloud);
        let mirror_dir = self.mirror_dir(&repository);
        let url = repository.settings.url.clone();
        let branch = repository.settings.branch.clone();
        let cluster_owned = cluster.to_owned();
        let file = path.clone();
        let pushed = {
            let _guard = self.mirror_lock.lock().await;
            tokio::task::spawn_blocking(move || -> Result<Revision, ScaffoldError> {
                let git = |error: GitError| match error {
                    GitError::PushRejected { .. } => ScaffoldError::Rejected(error.to_string()),
                    other => ScaffoldError::Failed(other.to_string()),
                };
                let mirror = Mirror::open_with(&mirror_dir, &url, &branch, options).map_err(git)?;
                let head = mirror.fetch().map_err(git)?;
                if !mirror.file_exists(&head.id, &overlay).map_err(git)? {
                    return Err(ScaffoldError::NotPossible(format!(
                        "the repository has no `{overlay}` to build on"
                    )));
                }
                let dir = file.trim_end_matches("/kustomization.yaml");
                if mirror.file_exists(&head.id, dir).map_err(git)? {
                    return Err(ScaffoldError::AlreadyExists(format!(
                        "`{dir}` already exists in the repository"
                    )));
                }
                mirror
                    .commit_and_push(
                        &head.id,
                        &[(file, content.into_bytes())],
                        &format!("Scaffold cluster {cluster_owned}\n\nAdded by Pilothouse when the cluster was registered."),
                        &CommitAuthor {
                            name: "Pilothouse".into(),
                            email: "pilothouse@localhost".into(),
                        },
                    )
                    .map_err(git)
            })
            .await
            .map_err(|e| failed(e.into()))?
        };
        match pushed {
            Ok(revision) => {
                // the commit is pushed whatever happens next: a record that
                // cannot be written is an error in the log (the next fetch
                // records the head again), not a failed scaffold
                let message = format!("scaffolded {path}");
                if let Err(error) = self
                    .store
                    .record_repository_event(
                        RepositoryEventKind::Pushed,
                        Some(&revision.id),
                        &message,
                    )
                    .await
                {
                    tracing::error!(%error, revision = %revision.id, "recording the scaffold push failed");
                }
                if let Err(error) = self.store.record_fetch(&revision_record(&revision)).await {
                    tracing::error!(%error, revision = %revision.id, "recording the pushed revision failed; the next fetch records it");
                }
                tracing::info!(cluster, revision = %revision.id, "scaffold pushed");
                Ok(Scaffolded {
                    revision: revision.id,
                    path,
                })
            }
            Err(error) => {
                let message = match &error {
                    ScaffoldError::AlreadyExists(m)
                    | ScaffoldError::Rejected(m)
                    | ScaffoldError::NotPossible(m)
                    | ScaffoldError::Failed(m) => m.clone(),
                };
                if let Err(store) = self
                    .store
                    .record_repository_event(RepositoryEventKind::PushFailed, None, &message)
                    .await
                {
                    tracing::error!(error = %store, "recording the failed scaffold push failed");
                }
                Err(error)
            }
        }
    }

    /// How to reach the remote at `url` (the URL the caller will use, read
    /// with it): the stored credentials, opened only if they were given for
    /// that URL's origin.
    async fn remote_options(&self, url: &str) -> anyhow::Result<RemoteOptions> {
        let stored = match self.store.repository_credentials().await? {
            None => GitCredentials::default(),
            Some((_, sealed)) => {
                let json = open_repository_credentials(&self.key, &sealed, url).context(
                    "the stored Git credentials are bound to another host than the \
                     repository's: set them again with PUT /api/v1/repository",
                )?;
                serde_json::from_slice(&json)?
            }
        };
        Ok(RemoteOptions {
            credentials: stored.credentials,
            ca_certificate: stored.ca_certificate,
            timeout: self.settings.git_timeout,
        })
    }

    /// One mirror per remote and branch, so changing either starts afresh.
    fn mirror_dir(&self, repository: &Repository) -> PathBuf {
        let digest = Sha256::digest(
            format!(
                "{}\n{}",
                repository.settings.url, repository.settings.branch
            )
            .as_bytes(),
        );
        let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        self.settings.git_dir.join(format!("mirror-{name}"))
    }
}

fn revision_record(revision: &Revision) -> RevisionRecord {
    RevisionRecord {
        id: revision.id.clone(),
        author: revision.author.clone(),
        summary: revision.summary.clone(),
        committed_at: revision.time.saturating_mul(1000),
        seen_at: 0,
    }
}

/// The overlay a new cluster starts from: its cloud's overlay and its name
/// as Prometheus' `cluster` label.
fn scaffold_kustomization(cluster: &str, cloud: &str) -> String {
    format!(
        "# Desired state of cluster `{cluster}`, scaffolded by Pilothouse.\n\
         # Add what only this cluster needs below; see gitops/README.md.\n\
         apiVersion: kustomize.config.k8s.io/v1beta1\n\
         kind: Kustomization\n\
         resources:\n  - ../../../overlays/{cloud}\n\
         configMapGenerator:\n  - name: pilothouse-cluster\n    behavior: merge\n    literals:\n      - cluster={cluster}\n"
    )
}

/// Removes the oldest checkouts beyond [`CHECKOUTS_KEPT`], never `keep`.
fn prune_checkouts(root: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| e.file_name() != keep)
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if dirs.len() <= CHECKOUTS_KEPT {
        return;
    }
    dirs.sort();
    for (_, dir) in dirs.iter().take(dirs.len() - CHECKOUTS_KEPT) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

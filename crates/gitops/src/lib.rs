//! The desired-state Git repository: a bare mirror of one branch of a remote,
//! kept in the data directory, fetched on demand; the revisions it holds; and
//! checkouts of a revision's tree for rendering.
//!
//! This crate knows Git and nothing else: it does not render, apply, store or
//! serve. It is blocking (libgit2); async callers run it on `spawn_blocking`.
//! So far it speaks the local and `file://` transports; HTTPS and SSH with
//! stored credentials, webhooks and pushes come with GitOps sync.

use std::fs;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository, TreeWalkMode, TreeWalkResult};

/// What can go wrong with the desired-state repository.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// A libgit2 operation failed.
    #[error("{context}: {source}")]
    Git {
        /// What was being done.
        context: String,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },
    /// Writing a checkout failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The remote has no such branch.
    #[error("the remote {url} has no branch `{branch}`")]
    BranchNotFound {
        /// The remote.
        url: String,
        /// The branch asked for.
        branch: String,
    },
    /// The mirror has no such commit.
    #[error("no commit `{0}` in the mirror")]
    RevisionNotFound(String),
    /// The tree holds something a checkout cannot represent.
    #[error("{path}: {what} is not supported in the desired-state repository")]
    Unsupported {
        /// The entry's path in the tree.
        path: String,
        /// What it is (e.g. a submodule).
        what: &'static str,
    },
}

fn git(context: impl Into<String>) -> impl FnOnce(git2::Error) -> GitError {
    let context = context.into();
    move |source| GitError::Git { context, source }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> GitError {
    let context = context.into();
    move |source| GitError::Io { context, source }
}

/// A commit Pilothouse acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    /// The full commit id (hex).
    pub id: String,
    /// `Name <email>` of the author.
    pub author: String,
    /// The first line of the message.
    pub summary: String,
    /// Commit time, unix seconds.
    pub time: i64,
}

/// A bare mirror of one branch of a remote repository.
pub struct Mirror {
    repo: Repository,
    url: String,
    branch: String,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("path", &self.repo.path())
            .field("url", &self.url)
            .field("branch", &self.branch)
            .finish()
    }
}

impl Mirror {
    /// Opens the bare mirror in `dir`, creating it when it does not exist yet.
    /// `url` is a local path or a `file://` URL.
    pub fn open(dir: &Path, url: &str, branch: &str) -> Result<Self, GitError> {
        let repo = if dir.join("HEAD").exists() {
            Repository::open_bare(dir)
                .map_err(git(format!("opening the mirror {}", dir.display())))?
        } else {
            fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
            Repository::init_bare(dir)
                .map_err(git(format!("creating the mirror {}", dir.display())))?
        };
        Ok(Self {
            repo,
            url: url.to_owned(),
            branch: branch.to_owned(),
        })
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }

    /// Fetches the branch from the remote (following force-pushes) and returns
    /// its head revision.
    pub fn fetch(&self) -> Result<Revision, GitError> {
        let mut remote = self
            .repo
            .remote_anonymous(&self.url)
            .map_err(git(format!("opening the remote {}", self.url)))?;
        let refspec = format!("+refs/heads/{}:{}", self.branch, self.tracking_ref());
        remote
            .fetch(&[refspec.as_str()], None, None)
            .map_err(git(format!("fetching `{}` from {}", self.branch, self.url)))?;
        self.head()?.ok_or_else(|| GitError::BranchNotFound {
            url: self.url.clone(),
            branch: self.branch.clone(),
        })
    }

    /// The branch head last fetched, if any.
    pub fn head(&self) -> Result<Option<Revision>, GitError> {
        match self.repo.refname_to_id(&self.tracking_ref()) {
            Ok(id) => self.revision(&id.to_string()).map(Some),
            Err(error) if error.code() == git2::ErrorCode::NotFound => Ok(None),
            Err(error) => Err(git("reading the branch head")(error)),
        }
    }

    /// The commit `id` (full or abbreviated hex).
    pub fn revision(&self, id: &str) -> Result<Revision, GitError> {
        let commit = self.commit(id)?;
        let author = commit.author();
        Ok(Revision {
            id: commit.id().to_string(),
            author: format!(
                "{} <{}>",
                author.name().unwrap_or(""),
                author.email().unwrap_or("")
            ),
            summary: commit.summary().ok().flatten().unwrap_or("").to_owned(),
            time: commit.time().seconds(),
        })
    }

    fn commit(&self, id: &str) -> Result<git2::Commit<'_>, GitError> {
        let object = self
            .repo
            .revparse_single(id)
            .map_err(|_| GitError::RevisionNotFound(id.to_owned()))?;
        object
            .peel_to_commit()
            .map_err(|_| GitError::RevisionNotFound(id.to_owned()))
    }

    /// Writes the tree of revision `id` into `dest`, which must not exist yet:
    /// regular and executable files, directories and symlinks. A submodule is
    /// an error, not skipped.
    pub fn checkout(&self, id: &str, dest: &Path) -> Result<PathBuf, GitError> {
        let tree = self
            .commit(id)?
            .tree()
            .map_err(git(format!("reading the tree of {id}")))?;
        fs::create_dir(dest).map_err(io(format!("creating {}", dest.display())))?;
        let mut failure = None;
        tree.walk(TreeWalkMode::PreOrder, |parent, entry| {
            let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
            let relative = format!("{parent}{name}");
            let target = dest.join(&relative);
            let outcome = match entry.kind() {
                Some(ObjectType::Tree) => {
                    fs::create_dir(&target).map_err(io(format!("creating {relative}")))
                }
                Some(ObjectType::Blob) => {
                    self.write_blob(entry.id(), entry.filemode(), &target, &relative)
                }
                Some(ObjectType::Commit) => Err(GitError::Unsupported {
                    path: relative,
                    what: "a submodule",
                }),
                _ => Err(GitError::Unsupported {
                    path: relative,
                    what: "this kind of tree entry",
                }),
            };
            match outcome {
                Ok(()) => TreeWalkResult::Ok,
                Err(error) => {
                    failure = Some(error);
                    TreeWalkResult::Abort
                }
            }
        })
        .or_else(|error| match failure.is_some() {
            true => Ok(()),
            false => Err(git("walking the tree")(error)),
        })?;
        match failure {
            Some(error) => Err(error),
            None => Ok(dest.to_owned()),
        }
    }

    fn write_blob(
        &self,
        id: Oid,
        mode: i32,
        target: &Path,
        relative: &str,
    ) -> Result<(), GitError> {
        let blob = self
            .repo
            .find_blob(id)
            .map_err(git(format!("reading {relative}")))?;
        if mode == 0o120000 {
            let link = String::from_utf8_lossy(blob.content()).into_owned();
            #[cfg(unix)]
            return std::os::unix::fs::symlink(link, target)
                .map_err(io(format!("linking {relative}")));
            #[cfg(not(unix))]
            return Err(GitError::Unsupported {
                path: relative.to_owned(),
                what: "a symlink on this platform",
            });
        }
        fs::write(target, blob.content()).map_err(io(format!("writing {relative}")))?;
        #[cfg(unix)]
        if mode == 0o100755 {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(target, fs::Permissions::from_mode(0o755))
                .map_err(io(format!("making {relative} executable")))?;
        }
        Ok(())
    }
}

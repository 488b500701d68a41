//! The desired-state Git repository: a bare mirror of one branch of a remote,
//! kept in the data directory, fetched on demand; the revisions it holds;
//! checkouts of a revision's tree for rendering; commits pushed back to the
//! branch (scaffolding a cluster's overlay); and the checks on the webhooks a
//! Git host sends when the branch moves ([`webhook`]).
//!
//! Remotes are local paths, `file://`, `https://` (a token as credentials, the
//! system's CA roots or a pinned CA) and SSH (a private key, the server's host
//! key pinned by `known_hosts` lines); see [`validate_remote_url`]. Secrets
//! never reach an error, a log line or a `Debug` output.
//!
//! This crate knows Git and nothing else: it does not render, apply, store or
//! serve, and it stores no credentials (the caller hands them in). It is
//! blocking (libgit2); async callers run it on `spawn_blocking`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use git2::{
    AutotagOption, ErrorCode, FetchOptions, ObjectType, Oid, PushOptions, RemoteRedirect,
    Repository, TreeWalkMode, TreeWalkResult,
};

mod known_hosts;
mod remote;
pub mod webhook;

pub use remote::{
    RemoteKind, RemoteOptions, RepoCredentials, redact_url, remote_origin, url_origin,
    validate_remote_url,
};

use remote::Connection;

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
        /// The remote (redacted).
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
    /// The remote's URL, credentials or trust settings are refused before
    /// anything is sent.
    #[error("the remote {url_redacted} is refused: {reason}")]
    InvalidRemote {
        /// The URL, without password, query or HTTP user name.
        url_redacted: String,
        /// Why.
        reason: String,
    },
    /// The branch name is not a valid Git ref name.
    #[error("`{0}` is not a valid branch name")]
    InvalidBranch(String),
    /// The server refused the credentials, or asked for some and none are
    /// configured. Reported after the first refusal; never retried.
    #[error("authentication failed at {url_redacted}: {reason}")]
    AuthenticationFailed {
        /// The remote (redacted).
        url_redacted: String,
        /// What the server or libgit2 said.
        reason: String,
    },
    /// The HTTPS server's certificate is not trusted.
    #[error("the TLS certificate of {host} is not trusted: {reason}")]
    Tls {
        /// The host connected to.
        host: String,
        /// Why (not issued by the configured CA, wrong host name, expired...).
        reason: String,
    },
    /// The SSH server's host key is not the one pinned in `known_hosts`.
    #[error("the SSH host key of {host} is refused: {reason}")]
    HostKey {
        /// The host as `known_hosts` names it (`host` or `[host]:port`).
        host: String,
        /// Which key was presented (type and SHA256 fingerprint) and why it
        /// is refused.
        reason: String,
    },
    /// A fetch or push took longer than [`RemoteOptions::timeout`].
    #[error("{url_redacted} did not answer within {after:?}")]
    Timeout {
        /// The remote (redacted).
        url_redacted: String,
        /// The time limit.
        after: Duration,
    },
    /// The remote did not move the branch: not a fast-forward of what it
    /// holds, or refused by a hook. The mirror is left as it was.
    #[error("the push to `{branch}` was rejected: {reason}")]
    PushRejected {
        /// The branch pushed to.
        branch: String,
        /// What libgit2 or the server said.
        reason: String,
    },
    /// A path given for a commit or a lookup is not a plain, normalized,
    /// relative path inside the repository.
    #[error("invalid path `{path}`: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Why.
        reason: &'static str,
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

/// Who authors a commit Pilothouse makes (also its committer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitAuthor {
    /// The name, e.g. `Pilothouse`.
    pub name: String,
    /// The e-mail address.
    pub email: String,
}

/// A bare mirror of one branch of a remote repository.
pub struct Mirror {
    repo: Repository,
    remote: Arc<Connection>,
    branch: String,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror")
            .field("path", &self.repo.path())
            .field("url", &self.remote.url_redacted)
            .field("kind", &self.remote.kind)
            .field("branch", &self.branch)
            .finish()
    }
}

impl Mirror {
    /// Opens the bare mirror in `dir`, creating it when it does not exist yet,
    /// for a remote that needs no credentials (a local path, `file://`, or a
    /// public HTTPS repository). See [`Mirror::open_with`].
    pub fn open(dir: &Path, url: &str, branch: &str) -> Result<Self, GitError> {
        Self::open_with(dir, url, branch, RemoteOptions::default())
    }

    /// Opens the bare mirror in `dir`, creating it when it does not exist yet.
    /// `url` and the credentials in `options` are checked first
    /// ([`validate_remote_url`]), as are the CA certificate and `known_hosts`;
    /// fetches and pushes then use `options`.
    pub fn open_with(
        dir: &Path,
        url: &str,
        branch: &str,
        options: RemoteOptions,
    ) -> Result<Self, GitError> {
        let remote = Arc::new(Connection::new(url, options)?);
        if !git2::Reference::is_valid_name(&format!("refs/heads/{branch}")) {
            return Err(GitError::InvalidBranch(branch.to_owned()));
        }
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
            remote,
            branch: branch.to_owned(),
        })
    }

    fn tracking_ref(&self) -> String {
        format!("refs/remotes/origin/{}", self.branch)
    }

    /// Fetches the branch from the remote (following force-pushes) and returns
    /// its head revision.
    ///
    /// A refused credential is [`GitError::AuthenticationFailed`] after one
    /// attempt, an untrusted server [`GitError::Tls`] or
    /// [`GitError::HostKey`] (before any credential is sent), and a remote
    /// slower than [`RemoteOptions::timeout`] [`GitError::Timeout`].
    pub fn fetch(&self) -> Result<Revision, GitError> {
        let refspec = format!("+refs/heads/{}:{}", self.branch, self.tracking_ref());
        let context = format!(
            "fetching `{}` from {}",
            self.branch, self.remote.url_redacted
        );
        self.remote.run(
            self.repo.path().to_owned(),
            context,
            move |remote, callbacks| {
                let mut options = FetchOptions::new();
                // a redirect would take the credentials to another host
                options
                    .remote_callbacks(callbacks)
                    .download_tags(AutotagOption::None)
                    .follow_redirects(RemoteRedirect::None);
                remote.fetch(&[refspec.as_str()], Some(&mut options), None)
            },
        )?;
        self.head()?.ok_or_else(|| GitError::BranchNotFound {
            url: self.remote.url_redacted.clone(),
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

    /// The commit `id` names: [`GitError::RevisionNotFound`] when nothing
    /// (or no commit) goes by that name, libgit2's own error otherwise (an
    /// unreadable object store is not a missing revision).
    fn commit(&self, id: &str) -> Result<git2::Commit<'_>, GitError> {
        let missing_or = |error: git2::Error, doing: &str| {
            if matches!(
                error.code(),
                git2::ErrorCode::NotFound
                    | git2::ErrorCode::Ambiguous
                    | git2::ErrorCode::InvalidSpec
                    | git2::ErrorCode::Peel
            ) || error.class() == git2::ErrorClass::Object
                && error.code() == git2::ErrorCode::GenericError
            {
                GitError::RevisionNotFound(id.to_owned())
            } else {
                GitError::Git {
                    context: format!("{doing} {id}"),
                    source: error,
                }
            }
        };
        let object = self
            .repo
            .revparse_single(id)
            .map_err(|error| missing_or(error, "reading revision"))?;
        object
            .peel_to_commit()
            .map_err(|error| missing_or(error, "reading the commit of"))
    }

    /// Writes the tree of revision `id` into `dest`, which must not exist yet:
    /// regular and executable files, directories and symlinks. A submodule is
    /// an error, not skipped. So is a symbolic link that does not resolve to
    /// something inside the checkout (absolute, climbing out with `..`,
    /// through other links, or dangling): a commit must not make the service
    /// read files elsewhere on its host. Nothing is left in `dest` then.
    pub fn checkout(&self, id: &str, dest: &Path) -> Result<PathBuf, GitError> {
        let tree = self
            .commit(id)?
            .tree()
            .map_err(git(format!("reading the tree of {id}")))?;
        fs::create_dir(dest).map_err(io(format!("creating {}", dest.display())))?;
        let mut failure = None;
        let mut links = Vec::new();
        let mut seen = std::collections::HashSet::new();
        tree.walk(TreeWalkMode::PreOrder, |parent, entry| {
            let name = String::from_utf8_lossy(entry.name_bytes()).into_owned();
            let relative = format!("{parent}{name}");
            let target = dest.join(&relative);
            // a crafted tree must not write outside the checkout or through
            // a link: no name that climbs or nests, no name twice
            if !safe_entry_name(entry.name_bytes()) || !seen.insert(relative.clone()) {
                failure = Some(GitError::Unsupported {
                    path: relative,
                    what: "an entry name that is empty, `.`, `..`, `.git`, holds a `/`, or repeats",
                });
                return TreeWalkResult::Abort;
            }
            if entry.filemode() == 0o120000 {
                links.push(relative.clone());
            }
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
        if let Some(error) = failure {
            return Err(error);
        }
        if let Err(error) = links_stay_inside(dest, &links) {
            let _ = fs::remove_dir_all(dest);
            return Err(error);
        }
        Ok(dest.to_owned())
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
        // never through an existing entry (a link above all)
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(target)
            .and_then(|mut file| std::io::Write::write_all(&mut file, blob.content()))
            .map_err(io(format!("writing {relative}")))?;
        #[cfg(unix)]
        if mode == 0o100755 {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(target, fs::Permissions::from_mode(0o755))
                .map_err(io(format!("making {relative} executable")))?;
        }
        Ok(())
    }
}

/// Whether a tree entry's name is one plain path component.
fn safe_entry_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name != b"."
        && name != b".."
        && !name.eq_ignore_ascii_case(b".git")
        && !name.iter().any(|b| matches!(b, b'/' | b'\\' | 0))
}

/// Checks that every symbolic link of a checkout resolves, through any
/// other links, to an entry inside it.
fn links_stay_inside(dest: &Path, links: &[String]) -> Result<(), GitError> {
    if links.is_empty() {
        return Ok(());
    }
    let root = fs::canonicalize(dest).map_err(io(format!("resolving {}", dest.display())))?;
    for link in links {
        match fs::canonicalize(dest.join(link)) {
            Ok(target) if target.starts_with(&root) => {}
            _ => {
                return Err(GitError::Unsupported {
                    path: link.clone(),
                    what: "a symbolic link that leads outside the repository (or nowhere)",
                });
            }
        }
    }
    Ok(())
}

impl Mirror {
    /// Whether `path` (relative to the repository root, as for
    /// [`Mirror::commit_and_push`]) names an entry (a file, a directory or a
    /// symlink) in the tree of revision `rev`.
    pub fn file_exists(&self, rev: &str, path: &str) -> Result<bool, GitError> {
        check_path(path)?;
        let tree = self
            .commit(rev)?
            .tree()
            .map_err(git(format!("reading the tree of {rev}")))?;
        match tree.get_path(Path::new(path)) {
            Ok(_) => Ok(true),
            Err(error) if error.code() == ErrorCode::NotFound => Ok(false),
            Err(error) => Err(git(format!("looking up {path} in {rev}"))(error)),
        }
    }

    /// Commits `files` (repository-relative paths and their contents, written
    /// as regular files; an executable file stays executable) on top of
    /// `parent`, normally the fetched head, and pushes the commit to the
    /// branch without force.
    ///
    /// The tree is built in memory from `parent`'s; nothing else changes. On
    /// success the mirror's branch head moves to the new commit, which is
    /// returned. When the remote refuses — `parent` is not what it holds any
    /// more (fetch, then decide again), or a hook declined — the result is
    /// [`GitError::PushRejected`] and the mirror's head stays where it was
    /// (the unreferenced commit is left for Git's garbage collection).
    ///
    /// A push that outlasts [`RemoteOptions::timeout`] is [`GitError::Timeout`]:
    /// the mirror's head stays, but the remote may still have taken the
    /// commit; fetch to find out.
    ///
    /// When `files` already hold exactly this content in `parent`, nothing is
    /// committed or pushed and `parent`'s revision is returned.
    ///
    /// A path that is empty, absolute, not normalized (`.`, `..`, `//`, a
    /// trailing `/`), contains a backslash or a `.git` component, or runs
    /// into a file where a directory is needed (or the reverse) is
    /// [`GitError::InvalidPath`], checked before anything is written.
    pub fn commit_and_push(
        &self,
        parent: &str,
        files: &[(String, Vec<u8>)],
        message: &str,
        author: &CommitAuthor,
    ) -> Result<Revision, GitError> {
        let mut changes = BTreeMap::new();
        for (path, _) in files {
            insert_change(&mut changes, path)?;
        }
        let parent_commit = self.commit(parent)?;
        let parent_tree = parent_commit
            .tree()
            .map_err(git(format!("reading the tree of {parent}")))?;
        let contents: BTreeMap<&str, &[u8]> = files
            .iter()
            .map(|(path, content)| (path.as_str(), content.as_slice()))
            .collect();
        let tree_id = self.write_tree(Some(&parent_tree), &changes, "", &contents)?;
        if tree_id == parent_tree.id() {
            return self.revision(&parent_commit.id().to_string());
        }
        let tree = self
            .repo
            .find_tree(tree_id)
            .map_err(git("reading the new tree"))?;
        let signature = git2::Signature::now(&author.name, &author.email)
            .map_err(git("making the commit's signature"))?;
        let commit_id = self
            .repo
            .commit(
                None,
                &signature,
                &signature,
                message,
                &tree,
                &[&parent_commit],
            )
            .map_err(git("writing the commit"))?;

        let destination = format!("refs/heads/{}", self.branch);
        let refspec = format!("{commit_id}:{destination}");
        let context = format!(
            "pushing to `{}` at {}",
            self.branch, self.remote.url_redacted
        );
        let rejected = |reason: String| GitError::PushRejected {
            branch: self.branch.clone(),
            reason,
        };
        let ((), operation) = self
            .remote
            .run(
                self.repo.path().to_owned(),
                context,
                move |remote, callbacks| {
                    let mut options = PushOptions::new();
                    options
                        .remote_callbacks(callbacks)
                        .follow_redirects(RemoteRedirect::None);
                    remote.push(&[refspec.as_str()], Some(&mut options))
                },
            )
            .map_err(|error| match error {
                GitError::Git { source, .. } if source.code() == ErrorCode::NotFastForward => {
                    rejected(format!(
                        "{} (fetch and base the change on the new head)",
                        source.message()
                    ))
                }
                other => other,
            })?;
        if let Some((_, reason)) = operation
            .push_rejections()
            .into_iter()
            .find(|(reference, _)| *reference == destination)
        {
            let messages = operation.remote_messages();
            return Err(rejected(match messages.is_empty() {
                true => reason,
                false => format!("{reason} (the remote said: {})", messages.join(" / ")),
            }));
        }
        self.repo
            .reference(
                &self.tracking_ref(),
                commit_id,
                true,
                &format!("pushed {commit_id}"),
            )
            .map_err(git("moving the branch head to the pushed commit"))?;
        self.revision(&commit_id.to_string())
    }

    /// Writes the tree `base` with `changes` applied; `prefix` is the path of
    /// `base` with a trailing `/` (empty at the root).
    fn write_tree(
        &self,
        base: Option<&git2::Tree<'_>>,
        changes: &BTreeMap<String, Change>,
        prefix: &str,
        contents: &BTreeMap<&str, &[u8]>,
    ) -> Result<Oid, GitError> {
        let mut builder = self
            .repo
            .treebuilder(base)
            .map_err(git(format!("reading the tree {prefix}")))?;
        for (name, change) in changes {
            let path = format!("{prefix}{name}");
            let existing = base.and_then(|tree| tree.get_name(name));
            let existing_kind = existing.as_ref().map(|entry| entry.kind());
            match change {
                Change::File => {
                    let mode = match &existing {
                        None => 0o100644,
                        Some(entry) => match entry.kind() {
                            Some(ObjectType::Blob) if entry.filemode() == 0o100755 => 0o100755,
                            Some(ObjectType::Blob) => 0o100644,
                            Some(ObjectType::Tree) => {
                                return Err(invalid_path(
                                    &path,
                                    "is a directory in the parent revision",
                                ));
                            }
                            _ => {
                                return Err(invalid_path(
                                    &path,
                                    "is a submodule in the parent revision",
                                ));
                            }
                        },
                    };
                    let content = contents.get(path.as_str()).copied().unwrap_or_default();
                    let blob = self
                        .repo
                        .blob(content)
                        .map_err(git(format!("writing {path}")))?;
                    builder
                        .insert(name, blob, mode)
                        .map_err(git(format!("adding {path}")))?;
                }
                Change::Directory(children) => {
                    let subtree = match (existing_kind, &existing) {
                        (None, _) => None,
                        (Some(Some(ObjectType::Tree)), Some(entry)) => Some(
                            self.repo
                                .find_tree(entry.id())
                                .map_err(git(format!("reading the tree {path}")))?,
                        ),
                        _ => {
                            return Err(invalid_path(
                                &path,
                                "is a file in the parent revision, not a directory",
                            ));
                        }
                    };
                    let id =
                        self.write_tree(subtree.as_ref(), children, &format!("{path}/"), contents)?;
                    builder
                        .insert(name, id, 0o040000)
                        .map_err(git(format!("adding {path}")))?;
                }
            }
        }
        builder
            .write()
            .map_err(git(format!("writing the tree {prefix}")))
    }
}

/// One name in a tree that a commit writes to.
enum Change {
    File,
    Directory(BTreeMap<String, Change>),
}

fn invalid_path(path: &str, reason: &'static str) -> GitError {
    GitError::InvalidPath {
        path: path.to_owned(),
        reason,
    }
}

/// Checks that `path` is relative, normalized and stays out of `.git`; returns
/// its components.
fn check_path(path: &str) -> Result<Vec<&str>, GitError> {
    let reason = if path.is_empty() {
        Some("it is empty")
    } else if path.starts_with('/') {
        Some("it is absolute; give a path relative to the repository root")
    } else if path.contains('\\') {
        Some("it contains a backslash")
    } else if path.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        path.split('/').find_map(|component| match component {
            "" => Some("it has an empty component (`//` or a trailing `/`)"),
            "." => Some("it has a `.` component"),
            ".." => Some("it climbs out with `..`"),
            name if name.eq_ignore_ascii_case(".git") => Some("it has a `.git` component"),
            _ => None,
        })
    };
    match reason {
        Some(reason) => Err(invalid_path(path, reason)),
        None => Ok(path.split('/').collect()),
    }
}

fn insert_change(changes: &mut BTreeMap<String, Change>, path: &str) -> Result<(), GitError> {
    let components = check_path(path)?;
    let (file, directories) = components
        .split_last()
        .ok_or_else(|| invalid_path(path, "it is empty"))?;
    let mut level = changes;
    for directory in directories {
        let entry = level
            .entry((*directory).to_owned())
            .or_insert_with(|| Change::Directory(BTreeMap::new()));
        level = match entry {
            Change::Directory(children) => children,
            Change::File => {
                return Err(invalid_path(
                    path,
                    "a file given in the same commit is in the way",
                ));
            }
        };
    }
    match level.insert((*file).to_owned(), Change::File) {
        None => Ok(()),
        Some(Change::File) => Err(invalid_path(path, "it is given twice")),
        Some(Change::Directory(_)) => Err(invalid_path(
            path,
            "it is also a directory of other files in the same commit",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_paths_must_be_plain_and_relative() {
        for (path, expected) in [
            ("clusters/aks-1/kustomization.yaml", None),
            ("README", None),
            (".gitignore", None),
            ("a/.github/x", None),
            ("", Some("empty")),
            ("/etc/passwd", Some("absolute")),
            ("../x", Some("`..`")),
            ("a/../../x", Some("`..`")),
            ("a/./x", Some("`.` component")),
            ("a//x", Some("empty component")),
            ("a/", Some("empty component")),
            (".git/config", Some("`.git`")),
            ("a/.GIT/hooks/pre-commit", Some("`.git`")),
            ("a\\..\\x", Some("backslash")),
            ("a\nb", Some("control")),
        ] {
            match (check_path(path), expected) {
                (Ok(_), None) => {}
                (Err(GitError::InvalidPath { reason, .. }), Some(expected)) => {
                    assert!(reason.contains(expected), "{path:?}: {reason}")
                }
                (outcome, expected) => panic!("{path:?}: {outcome:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn files_of_one_commit_must_not_collide() {
        for (paths, expected) in [
            (&["a/b", "a/c", "d"][..], None),
            (&["a/b", "a/b"], Some("given twice")),
            (&["a", "a/b"], Some("in the way")),
            (&["a/b", "a"], Some("also a directory")),
        ] {
            let mut changes = BTreeMap::new();
            let outcome = paths
                .iter()
                .try_for_each(|path| insert_change(&mut changes, path));
            match (outcome, expected) {
                (Ok(()), None) => {}
                (Err(GitError::InvalidPath { reason, .. }), Some(expected)) => {
                    assert!(reason.contains(expected), "{paths:?}: {reason}")
                }
                (outcome, expected) => panic!("{paths:?}: {outcome:?}, expected {expected:?}"),
            }
        }
    }
}

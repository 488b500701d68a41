//! The file-loading layer: the only module that touches the file system.
//! It enforces kustomize's load restriction (files must lie in or below
//! the kustomization root once symbolic links are resolved) and the size
//! limit.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use crate::error::RenderError;

/// What a kustomization entry points at.
#[derive(Debug)]
pub(crate) enum Target {
    /// A local directory (canonical path).
    Dir(PathBuf),
    /// A local file (canonical path).
    File(PathBuf),
}

/// Reads files with limits.
#[derive(Debug, Clone)]
pub(crate) struct Loader {
    pub max_file_bytes: u64,
    /// Canonical directory every read must stay in, when confined.
    pub boundary: Option<PathBuf>,
    /// kustomize's root-only load restriction.
    pub restrict_to_root: bool,
}

/// Whether an entry names a remote resource (URL or git repository).
pub(crate) fn looks_remote(entry: &str) -> bool {
    let lower = entry.to_ascii_lowercase();
    lower.contains("://")
        || lower.starts_with("git@")
        || lower.starts_with("git::")
        || lower.starts_with("github.com/")
        || lower.starts_with("gitlab.com/")
        || lower.starts_with("bitbucket.org/")
        || lower.contains("?ref=")
        || lower.contains(".git//")
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

/// The canonical form of `dir.join(entry)` where `dir` is canonical: the
/// components `entry` adds are checked with one `lstat` each, and only a
/// path through a symbolic link takes the full `canonicalize` (what the
/// C library's `realpath` does for every component of the whole path).
fn canonical_below(
    dir: &Path,
    entry: &str,
    joined: &Path,
) -> std::io::Result<(PathBuf, fs::Metadata)> {
    let full = || -> std::io::Result<(PathBuf, fs::Metadata)> {
        let canonical = fs::canonicalize(joined)?;
        let meta = fs::metadata(&canonical)?;
        Ok((canonical, meta))
    };
    let entry = Path::new(entry);
    if entry.is_absolute() {
        return full();
    }
    let mut cur = dir.to_path_buf();
    let mut last = None;
    for component in entry.components() {
        match component {
            std::path::Component::Normal(part) => {
                cur.push(part);
                let meta = fs::symlink_metadata(&cur)?;
                if meta.file_type().is_symlink() {
                    return full();
                }
                last = Some(meta);
            }
            std::path::Component::ParentDir => {
                cur.pop();
                last = None;
            }
            std::path::Component::CurDir => {}
            _ => return full(),
        }
    }
    let meta = match last {
        Some(meta) => meta,
        None => fs::metadata(&cur)?,
    };
    Ok((cur, meta))
}

impl Loader {
    /// Resolves `entry` (from the kustomization `file` in directory `dir`,
    /// field `field`) to a directory or a file. Files must stay within
    /// `root`; directories may be anywhere (they are kustomizations).
    pub fn resolve(
        &self,
        dir: &Path,
        root: &Path,
        entry: &str,
        file: &Path,
        field: &str,
    ) -> Result<Target, RenderError> {
        let joined = dir.join(entry);
        // outside the boundary as written: refused without looking, so the
        // answer does not tell what exists on the host
        if let Some(boundary) = &self.boundary {
            let folded = fold(&joined);
            if !folded.starts_with(boundary) {
                return Err(RenderError::OutsideRoot {
                    file: file.to_path_buf(),
                    field: field.to_string(),
                    entry: entry.to_string(),
                    target: folded,
                    root: boundary.clone(),
                });
            }
        }
        let (canonical, meta) = match canonical_below(dir, entry, &joined) {
            Ok(found) => found,
            Err(_) => {
                if looks_remote(entry) {
                    return Err(RenderError::RemoteNotSupported {
                        file: file.to_path_buf(),
                        field: field.to_string(),
                        target: entry.to_string(),
                    });
                }
                return Err(RenderError::NotFound {
                    file: file.to_path_buf(),
                    field: field.to_string(),
                    target: joined,
                });
            }
        };
        if let Some(boundary) = &self.boundary
            && !canonical.starts_with(boundary)
        {
            return Err(RenderError::OutsideRoot {
                file: file.to_path_buf(),
                field: field.to_string(),
                entry: entry.to_string(),
                target: canonical,
                root: boundary.clone(),
            });
        }
        if meta.is_dir() {
            return Ok(Target::Dir(canonical));
        }
        if self.restrict_to_root && !canonical.starts_with(root) {
            return Err(RenderError::OutsideRoot {
                file: file.to_path_buf(),
                field: field.to_string(),
                entry: entry.to_string(),
                target: canonical,
                root: root.to_path_buf(),
            });
        }
        Ok(Target::File(canonical))
    }

    /// Resolves an entry that must be a file within the root.
    pub fn resolve_file(
        &self,
        dir: &Path,
        entry: &str,
        file: &Path,
        field: &str,
    ) -> Result<PathBuf, RenderError> {
        match self.resolve(dir, dir, entry, file, field)? {
            Target::File(p) => Ok(p),
            Target::Dir(p) => Err(RenderError::InvalidKustomization {
                file: file.to_path_buf(),
                field: field.to_string(),
                message: format!("{} is a directory, a file is expected", p.display()),
            }),
        }
    }

    /// Reads a file's bytes, refusing files over the size limit.
    pub fn read_bytes(&self, path: &Path) -> Result<Vec<u8>, RenderError> {
        let io = |source| RenderError::Io {
            path: path.to_path_buf(),
            source,
        };
        let f = fs::File::open(path).map_err(io)?;
        let size = f.metadata().map_err(io)?.len();
        if size > self.max_file_bytes {
            return Err(RenderError::TooLarge {
                path: path.to_path_buf(),
                size,
                limit: self.max_file_bytes,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        // Read at most one byte past the limit, in case the file grows.
        f.take(self.max_file_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > self.max_file_bytes {
            return Err(RenderError::TooLarge {
                path: path.to_path_buf(),
                size: bytes.len() as u64,
                limit: self.max_file_bytes,
            });
        }
        Ok(bytes)
    }

    /// Reads a UTF-8 text file.
    pub fn read_text(&self, path: &Path) -> Result<String, RenderError> {
        let bytes = self.read_bytes(path)?;
        String::from_utf8(bytes).map_err(|e| RenderError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        })
    }

    /// Finds the kustomization file of a directory (canonical). Like every
    /// other file, it must lie in the directory once symbolic links are
    /// resolved, as kustomize requires.
    pub fn kustomization_file(&self, dir: &Path) -> Result<PathBuf, RenderError> {
        // one lstat per name; a symbolic link is followed (and checked below)
        let found: Vec<(&str, bool)> = crate::kustomization::FILE_NAMES
            .iter()
            .copied()
            .filter_map(|name| {
                let meta = fs::symlink_metadata(dir.join(name)).ok()?;
                if meta.file_type().is_symlink() {
                    fs::metadata(dir.join(name))
                        .ok()
                        .filter(|m| m.is_file())
                        .map(|_| (name, true))
                } else {
                    meta.is_file().then_some((name, false))
                }
            })
            .collect();
        match found.as_slice() {
            [] => Err(RenderError::MissingKustomization {
                dir: dir.to_path_buf(),
            }),
            [(one, is_link)] => {
                let file = dir.join(one);
                let canonical = if *is_link {
                    fs::canonicalize(&file).map_err(|source| RenderError::Io {
                        path: file.clone(),
                        source,
                    })?
                } else {
                    file.clone()
                };
                let root = self
                    .boundary
                    .as_deref()
                    .filter(|b| !canonical.starts_with(b));
                let root = match root {
                    Some(boundary) => Some(boundary),
                    None if self.restrict_to_root && !canonical.starts_with(dir) => Some(dir),
                    None => None,
                };
                match root {
                    Some(root) => Err(RenderError::OutsideRoot {
                        file: file.clone(),
                        field: "(kustomization file)".into(),
                        entry: (*one).to_string(),
                        target: canonical,
                        root: root.to_path_buf(),
                    }),
                    None => Ok(file),
                }
            }
            many => Err(RenderError::MultipleKustomizations {
                dir: dir.to_path_buf(),
                names: many.iter().map(|(s, _)| s.to_string()).collect(),
            }),
        }
    }
}

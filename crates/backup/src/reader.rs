//! Verifying an archive, and extracting a verified one.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::error::{BackupError, Result};
use crate::manifest::{ClusterEntry, Manifest};
use crate::path::{EntryKind, MANIFEST_PATH, classify, hex, sanitize_segment};

/// No real manifest comes near this: 64 MiB.
const MANIFEST_LIMIT: u64 = 64 << 20;

/// Reads the whole archive at `archive` and checks it: a zstd stream with
/// its checksum, a tar stream of regular files with safe paths in the
/// layout, each path once, `manifest.json` last, a supported format
/// version, a manifest consistent with itself, and every entry's size and
/// SHA-256 equal to the manifest's, with no entry missing or unlisted.
/// Returns the manifest; nothing is written anywhere.
pub fn verify(archive: &Path) -> Result<Manifest> {
    scan(archive, &mut Target::Discard).map(|(manifest, _)| manifest)
}

/// Verifies `archive` (as [`verify`]) while extracting every entry into
/// `dest` (as `tar -xf` would, plus `manifest.json`), which must be empty
/// or not exist. On any error what was extracted is removed again (and
/// `dest` too when this call created it), so a caller sees either a
/// completely verified tree or nothing. Extracted files are not synced.
pub fn extract_verified(archive: &Path, dest: &Path) -> Result<Manifest> {
    let created = match fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::DestinationNotEmpty {
                    path: dest.to_owned(),
                });
            }
            false
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).map_err(|source| BackupError::io("create", dest, source))?;
            true
        }
        Err(error) => return Err(BackupError::io("read", dest, error)),
    };
    let result = scan(archive, &mut Target::Directory(dest)).and_then(|(manifest, bytes)| {
        let file = dest.join(MANIFEST_PATH);
        write_new(&file, &mut &bytes[..])
            .map_err(|error| error.into_backup_error(archive))
            .map(|_| manifest)
    });
    if result.is_err() {
        // best effort: the error to report is the verification's
        if created {
            let _ = fs::remove_dir_all(dest);
        } else if let Ok(entries) = fs::read_dir(dest) {
            for entry in entries.flatten() {
                let _ = fs::remove_dir_all(entry.path());
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    result
}

/// A verified archive, ready for a restore that may now start changing
/// things: the manifest, the objects (held in memory, as the JSON bytes the
/// archive has: their uncompressed size) and the store copy (written to a
/// private temporary directory, removed on drop). Its `Debug` output shows
/// the manifest and object paths, never the objects (they may be Secrets).
pub struct VerifiedArchive {
    manifest: Manifest,
    /// Path inside the archive -> content, for every object.
    objects: BTreeMap<String, Vec<u8>>,
    store_file: Option<PathBuf>,
    /// Holds the store copy; removed on drop.
    _work: TempDir,
    /// Sanitised cluster directory -> index into `manifest.clusters`.
    cluster_dirs: HashMap<String, usize>,
}

impl std::fmt::Debug for VerifiedArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedArchive")
            .field("manifest", &self.manifest)
            .field("objects", &self.objects.keys().collect::<Vec<_>>())
            .field("store_file", &self.store_file)
            .finish_non_exhaustive()
    }
}

impl VerifiedArchive {
    /// Reads and verifies `archive` completely (as [`verify`]); the store
    /// copy goes to a new directory under the system's temporary directory.
    /// Nothing is kept when verification fails.
    pub fn open(archive: &Path) -> Result<Self> {
        let work = tempfile::Builder::new()
            .prefix(".pilothouse-restore-")
            .tempdir()
            .map_err(|source| BackupError::io("create", std::env::temp_dir(), source))?;
        Self::read(archive, work)
    }

    /// As [`open`](Self::open), with the temporary directory made in
    /// `work_dir`: on the file system of the restore's target, the store
    /// file can then be renamed into place.
    pub fn open_in(archive: &Path, work_dir: &Path) -> Result<Self> {
        let work = tempfile::Builder::new()
            .prefix(".pilothouse-restore-")
            .tempdir_in(work_dir)
            .map_err(|source| BackupError::io("create", work_dir, source))?;
        Self::read(archive, work)
    }

    fn read(archive: &Path, work: TempDir) -> Result<Self> {
        let mut objects = BTreeMap::new();
        let (manifest, _) = scan(
            archive,
            &mut Target::Memory {
                store_dir: work.path(),
                objects: &mut objects,
            },
        )?;
        let cluster_dirs = manifest
            .clusters
            .iter()
            .enumerate()
            .map(|(index, cluster)| (sanitize_segment(&cluster.name), index))
            .collect();
        let store_file = manifest.store.then(|| work.path().join(STORE_FILE_NAME));
        Ok(Self {
            manifest,
            objects,
            store_file,
            _work: work,
            cluster_dirs,
        })
    }

    /// The verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The store copy, when the archive has one. The caller may move it
    /// away; otherwise it is removed when `self` is dropped.
    pub fn store_file(&self) -> Option<&Path> {
        self.store_file.as_deref()
    }

    /// The source clusters, as in the manifest.
    pub fn clusters(&self) -> &[ClusterEntry] {
        &self.manifest.clusters
    }

    /// Every object of every cluster, in path order.
    pub fn objects(&self) -> Objects<'_> {
        Objects {
            archive: self,
            only: None,
            entries: self.objects.iter(),
        }
    }

    /// The objects of one cluster, in path order; `None` when the archive
    /// has no such cluster.
    pub fn cluster_objects(&self, cluster: &str) -> Option<Objects<'_>> {
        let index = *self.cluster_dirs.get(&sanitize_segment(cluster))?;
        (self.manifest.clusters[index].name == cluster).then(|| Objects {
            archive: self,
            only: Some(index),
            entries: self.objects.iter(),
        })
    }

    fn cluster_of(&self, path: &str) -> Option<usize> {
        match classify(path) {
            Ok(EntryKind::Object { cluster_dir, .. }) => {
                self.cluster_dirs.get(cluster_dir).copied()
            }
            _ => None,
        }
    }
}

/// One object read back from a verified archive. Its `Debug` output names
/// the object, never its content (it may be a Secret).
#[derive(Clone, PartialEq)]
pub struct ArchivedObject {
    /// The source cluster's name.
    pub cluster: String,
    /// The object's path inside the archive.
    pub path: String,
    /// The object.
    pub object: Value,
}

impl std::fmt::Debug for ArchivedObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchivedObject")
            .field("cluster", &self.cluster)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Iterates over objects of a [`VerifiedArchive`], parsing each when
/// reached (an object that is not JSON is an error item, not the end).
pub struct Objects<'a> {
    archive: &'a VerifiedArchive,
    only: Option<usize>,
    entries: std::collections::btree_map::Iter<'a, String, Vec<u8>>,
}

impl Iterator for Objects<'_> {
    type Item = Result<ArchivedObject>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (path, bytes) = self.entries.next()?;
            let Some(index) = self.archive.cluster_of(path) else {
                continue;
            };
            if self.only.is_some_and(|only| only != index) {
                continue;
            }
            let cluster = &self.archive.manifest.clusters[index].name;
            return Some(
                serde_json::from_slice(bytes)
                    .map(|object| ArchivedObject {
                        cluster: cluster.clone(),
                        path: path.clone(),
                        object,
                    })
                    .map_err(|source| BackupError::ObjectJson {
                        path: path.clone(),
                        source,
                    }),
            );
        }
    }
}

/// Where the store copy goes in a [`VerifiedArchive`]'s directory.
const STORE_FILE_NAME: &str = "pilothouse.db";

/// Where [`scan`] puts entries.
enum Target<'a> {
    /// Nowhere: verification only.
    Discard,
    /// Every entry as a file under this directory.
    Directory(&'a Path),
    /// The store file into this directory, objects into the map.
    Memory {
        store_dir: &'a Path,
        objects: &'a mut BTreeMap<String, Vec<u8>>,
    },
}

/// Size and SHA-256 of an entry as read.
struct Seen {
    size: u64,
    sha256: String,
}

/// Reads and checks the whole archive, putting entries into `target`.
/// Returns the manifest and its bytes.
fn scan(archive: &Path, target: &mut Target<'_>) -> Result<(Manifest, Vec<u8>)> {
    let file = File::open(archive).map_err(|source| BackupError::io("open", archive, source))?;
    let length = file
        .metadata()
        .map_err(|source| BackupError::io("read", archive, source))?
        .len();
    if length == 0 {
        return Err(BackupError::Empty {
            archive: archive.to_owned(),
        });
    }
    let decoder = zstd::stream::read::Decoder::new(ErrorTap::new(file))
        .map_err(|source| BackupError::io("start decompressing", archive, source))?;
    let mut tar = tar::Archive::new(ErrorTap::new(decoder));
    let read = read_entries(archive, &mut tar, target);
    let mut decompressed = tar.into_inner();
    // A corrupt stream often shows first as a tar, JSON or checksum error;
    // reading on to the end of the zstd frame names the real cause.
    let trailing = drain(&mut decompressed);
    let file_error = decompressed.inner.get_mut().get_mut().error.take();
    if let Some(source) = file_error {
        return Err(BackupError::io("read", archive, source));
    }
    if let Some(source) = decompressed.error.take() {
        return Err(if source.kind() == io::ErrorKind::UnexpectedEof {
            BackupError::Truncated {
                archive: archive.to_owned(),
                source,
            }
        } else {
            BackupError::Decompress {
                archive: archive.to_owned(),
                source,
            }
        });
    }
    let Entries {
        manifest: manifest_bytes,
        mut seen,
    } = read?;
    if trailing {
        return Err(BackupError::TrailingData {
            archive: archive.to_owned(),
        });
    }
    let manifest_bytes = manifest_bytes.ok_or_else(|| BackupError::MissingManifest {
        archive: archive.to_owned(),
    })?;
    let manifest = Manifest::parse(&manifest_bytes)?;
    manifest.check_consistency()?;
    for file in &manifest.files {
        let Some(found) = seen.remove(&file.path) else {
            return Err(BackupError::MissingEntry {
                path: file.path.clone(),
            });
        };
        if found.size != file.size {
            return Err(BackupError::SizeMismatch {
                path: file.path.clone(),
                expected: file.size,
                actual: found.size,
            });
        }
        if found.sha256 != file.sha256 {
            return Err(BackupError::ChecksumMismatch {
                path: file.path.clone(),
                expected: file.sha256.clone(),
                actual: found.sha256,
            });
        }
    }
    if let Some(path) = seen.into_keys().min() {
        return Err(BackupError::UnlistedEntry { path });
    }
    Ok((manifest, manifest_bytes))
}

/// Reads every tar entry: the manifest's bytes, and size and digest of the
/// others (put into `target`).
fn read_entries<R: Read>(
    archive: &Path,
    tar: &mut tar::Archive<R>,
    target: &mut Target<'_>,
) -> Result<Entries> {
    let tar_error = |source| BackupError::Tar {
        archive: archive.to_owned(),
        source,
    };
    let mut manifest: Option<Vec<u8>> = None;
    let mut seen: HashMap<String, Seen> = HashMap::new();
    for entry in tar.entries().map_err(tar_error)? {
        let mut entry = entry.map_err(tar_error)?;
        let path = String::from_utf8(entry.path_bytes().into_owned()).map_err(|error| {
            BackupError::InvalidPath {
                path: String::from_utf8_lossy(error.as_bytes()).into_owned(),
                reason: "not UTF-8",
            }
        })?;
        if manifest.is_some() {
            return Err(BackupError::EntryAfterManifest { path });
        }
        let kind = classify(&path)?;
        let entry_type = entry.header().entry_type();
        if !entry_type.is_file() {
            return Err(BackupError::UnsupportedEntryType {
                path,
                entry_type: describe(entry_type),
            });
        }
        let size = entry.size();
        if kind == EntryKind::Manifest {
            if size > MANIFEST_LIMIT {
                return Err(BackupError::ManifestTooLarge {
                    size,
                    limit: MANIFEST_LIMIT,
                });
            }
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).map_err(tar_error)?;
            manifest = Some(bytes);
            continue;
        }
        if seen.contains_key(&path) {
            return Err(BackupError::DuplicateEntry { path });
        }
        let copied = match target {
            Target::Discard => copy_hashing(&mut entry, &mut io::sink()).map_err(CopyError::Read),
            Target::Directory(dest) => write_new(&dest.join(&path), &mut entry),
            Target::Memory { store_dir, .. } if kind == EntryKind::Store => {
                write_new(&store_dir.join(STORE_FILE_NAME), &mut entry)
            }
            Target::Memory { objects, .. } => {
                // the header's size is not trusted for the allocation
                let mut bytes = Vec::with_capacity(size.min(1 << 20) as usize);
                let copied = copy_hashing(&mut entry, &mut bytes).map_err(CopyError::Read);
                objects.insert(path.clone(), bytes);
                copied
            }
        };
        let found = copied.map_err(|error| error.into_backup_error(archive))?;
        if found.size != size {
            return Err(tar_error(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "entry `{path}` ends after {} of its {size} bytes",
                    found.size
                ),
            )));
        }
        seen.insert(path, found);
    }
    Ok(Entries { manifest, seen })
}

/// What [`read_entries`] found.
struct Entries {
    /// The bytes of `manifest.json`, when it was there.
    manifest: Option<Vec<u8>>,
    /// Every other entry by path.
    seen: HashMap<String, Seen>,
}

/// Why copying an entry failed.
enum CopyError {
    /// Reading the archive.
    Read(io::Error),
    /// Writing the extracted file.
    Write(PathBuf, io::Error),
}

impl CopyError {
    fn into_backup_error(self, archive: &Path) -> BackupError {
        match self {
            Self::Read(source) => BackupError::Tar {
                archive: archive.to_owned(),
                source,
            },
            Self::Write(file, source) => BackupError::io("write", file, source),
        }
    }
}

/// Writes `content` to `file`, a new file (mode 0600 on Unix), making
/// directories as needed.
fn write_new(file: &Path, content: &mut impl Read) -> Result<Seen, CopyError> {
    let write_error = |source| CopyError::Write(file.to_owned(), source);
    if let Some(parent) = file.parent() {
        fs::create_dir_all(parent).map_err(|source| CopyError::Write(parent.to_owned(), source))?;
    }
    let mut open = OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let out = open.open(file).map_err(write_error)?;
    let mut out = BufWriter::new(out);
    let seen = copy_hashing(content, &mut out).map_err(|error| match error.kind() {
        // copy_hashing tags write failures with this kind
        io::ErrorKind::WriteZero => write_error(error),
        _ => CopyError::Read(error),
    })?;
    out.flush().map_err(write_error)?;
    Ok(seen)
}

/// Copies `from` to `to`, returning size and SHA-256. A failure to write is
/// returned with [`io::ErrorKind::WriteZero`] (its message kept).
fn copy_hashing(from: &mut impl Read, to: &mut impl Write) -> io::Result<Seen> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(&buf[..read]);
        size += read as u64;
        to.write_all(&buf[..read])
            .map_err(|error| io::Error::new(io::ErrorKind::WriteZero, error))?;
    }
    Ok(Seen {
        size,
        sha256: hex(&hasher.finalize()),
    })
}

/// Reads `reader` to its end; whether anything but zero bytes (tar's end
/// of archive blocks) came. Errors are left in the taps.
fn drain(reader: &mut impl Read) -> bool {
    let mut trailing = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return trailing,
            Ok(read) => trailing |= buf[..read].iter().any(|byte| *byte != 0),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return trailing,
        }
    }
}

/// A readable name for a tar entry type.
fn describe(entry_type: tar::EntryType) -> String {
    match entry_type {
        tar::EntryType::Link => "hard link".to_owned(),
        tar::EntryType::Symlink => "symbolic link".to_owned(),
        tar::EntryType::Char => "character device".to_owned(),
        tar::EntryType::Block => "block device".to_owned(),
        tar::EntryType::Directory => "directory".to_owned(),
        tar::EntryType::Fifo => "FIFO".to_owned(),
        other => format!("entry of type {:?}", other.as_byte() as char),
    }
}

/// Keeps the first error its reader returns (later reads repeat it), so
/// that errors surfacing through tar can be traced to the layer that
/// caused them.
struct ErrorTap<R> {
    inner: R,
    error: Option<io::Error>,
}

impl<R> ErrorTap<R> {
    fn new(inner: R) -> Self {
        Self { inner, error: None }
    }
}

impl<R: Read> Read for ErrorTap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(error) = &self.error {
            return Err(io::Error::new(error.kind(), error.to_string()));
        }
        match self.inner.read(buf) {
            Err(error) if error.kind() != io::ErrorKind::Interrupted => {
                let copy = io::Error::new(error.kind(), error.to_string());
                self.error = Some(error);
                Err(copy)
            }
            other => other,
        }
    }
}

//! Verifying an archive, and extracting a verified one.
//!
//! Everything here reads the archive as a stream, once, and never holds an
//! entry's content in memory: entries are hashed (and written where they
//! go) through a fixed buffer, and every entry is checked against the
//! [`ReadLimits`] before and while it is read.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::error::{BackupError, Result};
use crate::limits::{ReadLimit, ReadLimits};
use crate::manifest::{ClusterEntry, Manifest};
use crate::path::{EntryKind, MANIFEST_PATH, MAX_PATH, classify, hex, sanitize_segment};

/// No real manifest comes near this: 64 MiB.
const MANIFEST_LIMIT: u64 = 64 << 20;

/// The most zero bytes accepted after the end of the tar archive (tar's end
/// of archive blocks, and padding to a record size): 1 MiB.
const TRAILER_LIMIT: u64 = 1 << 20;

/// The largest zstd window accepted, as a power of two: 128 MiB (zstd's own
/// default, made explicit), which bounds the decoder's memory. The writer's
/// levels 1 to 19 use at most 8 MiB.
const WINDOW_LOG_MAX: u32 = 27;

/// How much of an entry is held in memory at once.
const COPY_BUFFER: usize = 64 * 1024;

/// Reads the whole archive at `archive` and checks it: a zstd stream with
/// its checksum, a tar stream of regular files with safe paths in the
/// layout, each path once, `manifest.json` last, a supported format
/// version, a manifest consistent with itself, and every entry's size and
/// SHA-256 equal to the manifest's, with no entry missing or unlisted.
/// Returns the manifest; nothing is written anywhere. Uses
/// [`ReadLimits::default`].
pub fn verify(archive: &Path) -> Result<Manifest> {
    verify_with_limits(archive, &ReadLimits::default())
}

/// As [`verify`], with the given limits instead of the defaults.
pub fn verify_with_limits(archive: &Path, limits: &ReadLimits) -> Result<Manifest> {
    scan(archive, limits, &mut Target::Discard).map(|(manifest, _)| manifest)
}

/// Verifies `archive` (as [`verify`]) while extracting every entry into
/// `dest` (as `tar -xf` would, plus `manifest.json`), which must be empty
/// or not exist. On any error, a passed limit included, what was extracted
/// is removed again (and `dest` too when this call created it), so a caller
/// sees either a completely verified tree or nothing. Extracted files are
/// not synced. Uses [`ReadLimits::default`].
pub fn extract_verified(archive: &Path, dest: &Path) -> Result<Manifest> {
    extract_verified_with_limits(archive, dest, &ReadLimits::default())
}

/// As [`extract_verified`], with the given limits instead of the defaults.
pub fn extract_verified_with_limits(
    archive: &Path,
    dest: &Path,
    limits: &ReadLimits,
) -> Result<Manifest> {
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
    let result =
        scan(archive, limits, &mut Target::Directory(dest)).and_then(|(manifest, bytes)| {
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
/// things: the manifest, the objects and the store copy. Objects and store
/// copy are written, as they are read and verified, to a private temporary
/// directory (removed on drop, and at once when verification fails); the
/// objects are read back and parsed one at a time by [`Objects`]. Memory
/// use therefore does not grow with the size of the archive's content,
/// only with its number of entries (a path and a digest each). Its `Debug`
/// output shows the manifest and object paths, never the objects (they may
/// be Secrets).
pub struct VerifiedArchive {
    manifest: Manifest,
    /// Path inside the archive -> number of its file in `work`, for every
    /// object.
    objects: BTreeMap<String, u64>,
    store_file: Option<PathBuf>,
    /// Holds the store copy and the objects; removed on drop.
    work: TempDir,
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
    /// copy and the objects go to a new directory under the system's
    /// temporary directory. Nothing is kept when verification fails. Uses
    /// [`ReadLimits::default`].
    pub fn open(archive: &Path) -> Result<Self> {
        Self::open_with_limits(archive, &ReadLimits::default())
    }

    /// As [`open`](Self::open), with the given limits instead of the
    /// defaults.
    pub fn open_with_limits(archive: &Path, limits: &ReadLimits) -> Result<Self> {
        let work = tempfile::Builder::new()
            .prefix(".pilothouse-restore-")
            .tempdir()
            .map_err(|source| BackupError::io("create", std::env::temp_dir(), source))?;
        Self::read(archive, work, limits)
    }

    /// As [`open`](Self::open), with the temporary directory made in
    /// `work_dir`: on the file system of the restore's target, the store
    /// file can then be renamed into place.
    pub fn open_in(archive: &Path, work_dir: &Path) -> Result<Self> {
        Self::open_in_with_limits(archive, work_dir, &ReadLimits::default())
    }

    /// As [`open_in`](Self::open_in), with the given limits instead of the
    /// defaults.
    pub fn open_in_with_limits(
        archive: &Path,
        work_dir: &Path,
        limits: &ReadLimits,
    ) -> Result<Self> {
        let work = tempfile::Builder::new()
            .prefix(".pilothouse-restore-")
            .tempdir_in(work_dir)
            .map_err(|source| BackupError::io("create", work_dir, source))?;
        Self::read(archive, work, limits)
    }

    fn read(archive: &Path, work: TempDir, limits: &ReadLimits) -> Result<Self> {
        let mut objects = BTreeMap::new();
        // on an error `work` is dropped here, with everything written to it
        let (manifest, _) = scan(
            archive,
            limits,
            &mut Target::Work {
                dir: work.path(),
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
            work,
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

/// Iterates over objects of a [`VerifiedArchive`], reading each from the
/// archive's temporary directory and parsing it when reached (an object
/// that is not JSON, or cannot be read, is an error item, not the end).
pub struct Objects<'a> {
    archive: &'a VerifiedArchive,
    only: Option<usize>,
    entries: std::collections::btree_map::Iter<'a, String, u64>,
}

impl Iterator for Objects<'_> {
    type Item = Result<ArchivedObject>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (path, number) = self.entries.next()?;
            let Some(index) = self.archive.cluster_of(path) else {
                continue;
            };
            if self.only.is_some_and(|only| only != index) {
                continue;
            }
            let cluster = &self.archive.manifest.clusters[index].name;
            let file = object_file(self.archive.work.path(), *number);
            let bytes = match fs::read(&file) {
                Ok(bytes) => bytes,
                Err(source) => return Some(Err(BackupError::io("read", file, source))),
            };
            return Some(
                serde_json::from_slice(&bytes)
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

/// Where the objects go in a [`VerifiedArchive`]'s directory, one file
/// each, named by number in archive order.
const OBJECTS_DIR: &str = "objects";

/// The file of object `number` in the directory `work`.
fn object_file(work: &Path, number: u64) -> PathBuf {
    work.join(OBJECTS_DIR).join(number.to_string())
}

/// Where [`scan`] puts entries.
enum Target<'a> {
    /// Nowhere: verification only.
    Discard,
    /// Every entry as a file under this directory, at its archive path.
    Directory(&'a Path),
    /// The store file into `dir`, and every object as a numbered file
    /// under it, recorded in `objects`.
    Work {
        dir: &'a Path,
        objects: &'a mut BTreeMap<String, u64>,
    },
}

/// Size and SHA-256 of an entry as read.
struct Seen {
    size: u64,
    sha256: [u8; 32],
}

/// Reads and checks the whole archive, putting entries into `target`.
/// Returns the manifest and its bytes.
fn scan(
    archive: &Path,
    limits: &ReadLimits,
    target: &mut Target<'_>,
) -> Result<(Manifest, Vec<u8>)> {
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
    let mut decoder = zstd::stream::read::Decoder::new(ErrorTap::new(file))
        .map_err(|source| BackupError::io("start decompressing", archive, source))?;
    decoder
        .window_log_max(WINDOW_LOG_MAX)
        .map_err(|source| BackupError::io("start decompressing", archive, source))?;
    let mut tar = tar::Archive::new(ErrorTap::new(decoder));
    let mut tally = Tally {
        limits,
        entries: 0,
        bytes: 0,
    };
    let read = read_entries(archive, &mut tar, target, &mut tally);
    let mut decompressed = tar.into_inner();
    let drained = match &read {
        // final: decompressing on is what the limits guard against
        Err(BackupError::LimitExceeded { .. } | BackupError::ManifestTooLarge { .. }) => {
            Drained::default()
        }
        // A corrupt stream often shows first as a tar, JSON or checksum
        // error; reading on to the end of the zstd frame (within the total
        // limit) names the real cause.
        Err(_) => drain(&mut decompressed, tally.remaining()),
        Ok(_) => drain(&mut decompressed, TRAILER_LIMIT),
    };
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
    if drained.trailing || drained.cut_short {
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
        let actual = hex(&found.sha256);
        if actual != file.sha256 {
            return Err(BackupError::ChecksumMismatch {
                path: file.path.clone(),
                expected: file.sha256.clone(),
                actual,
            });
        }
    }
    if let Some(path) = seen.into_keys().min() {
        return Err(BackupError::UnlistedEntry { path });
    }
    Ok((manifest, manifest_bytes))
}

/// Entries and bytes read so far, against the limits.
struct Tally<'a> {
    limits: &'a ReadLimits,
    /// Entries met, long name entries not counted.
    entries: u64,
    /// Content bytes read, the manifest's included.
    bytes: u64,
}

impl Tally<'_> {
    /// Counts the entry at `path`, failing when it is one too many.
    fn count_entry(&mut self, path: &str) -> Result<()> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(BackupError::LimitExceeded {
                what: ReadLimit::Entries,
                path: path.to_owned(),
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    /// What remains of the total limit.
    fn remaining(&self) -> u64 {
        self.limits.max_total_bytes.saturating_sub(self.bytes)
    }

    /// The cap for the content of the next entry, of `kind`.
    fn cap(&self, kind: EntryKind<'_>) -> EntryCap {
        let (own, limit) = match kind {
            EntryKind::Manifest => (MANIFEST_LIMIT, None),
            EntryKind::Store => (self.limits.max_store_bytes, Some(ReadLimit::StoreBytes)),
            EntryKind::Object { .. } => (self.limits.max_entry_bytes, Some(ReadLimit::EntryBytes)),
        };
        EntryCap {
            own,
            limit,
            remaining: self.remaining(),
            total: self.limits.max_total_bytes,
        }
    }
}

/// The most one entry's content may be: the smaller of its own cap and
/// what remains of the total.
struct EntryCap {
    /// The entry's own cap: the manifest's, the store's or an object's.
    own: u64,
    /// Which limit `own` is; `None` for the manifest's fixed one.
    limit: Option<ReadLimit>,
    /// What remains of the total limit.
    remaining: u64,
    /// The total limit.
    total: u64,
}

impl EntryCap {
    fn max(&self) -> u64 {
        self.own.min(self.remaining)
    }

    /// The error for the entry at `path` being `size` bytes (declared, or
    /// counted so far), more than [`max`](Self::max). Its own cap is named
    /// when it is passed, the total otherwise.
    fn exceeded(&self, path: &str, size: u64) -> BackupError {
        match self.limit {
            None if size > self.own => BackupError::ManifestTooLarge {
                size,
                limit: self.own,
            },
            Some(what) if size > self.own => BackupError::LimitExceeded {
                what,
                path: path.to_owned(),
                limit: self.own,
            },
            _ => BackupError::LimitExceeded {
                what: ReadLimit::TotalBytes,
                path: path.to_owned(),
                limit: self.total,
            },
        }
    }
}

/// Reads every tar entry: the manifest's bytes, and size and digest of the
/// others (put into `target`), counting them in `tally`.
fn read_entries<R: Read>(
    archive: &Path,
    tar: &mut tar::Archive<R>,
    target: &mut Target<'_>,
    tally: &mut Tally<'_>,
) -> Result<Entries> {
    let tar_error = |source| BackupError::Tar {
        archive: archive.to_owned(),
        source,
    };
    let mut manifest: Option<Vec<u8>> = None;
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut long_name: Option<Vec<u8>> = None;
    // Raw: the tar crate would read a GNU long name or PAX entry whole into
    // memory, whatever its size. Long names are read here, within the path
    // limit; any other extension entry is refused as not a regular file.
    for entry in tar.entries().map_err(tar_error)?.raw(true) {
        let mut entry = entry.map_err(tar_error)?;
        let header = entry.header();
        let entry_type = header.entry_type();
        let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
        if recognized && entry_type.is_gnu_longname() {
            if long_name.is_some() {
                return Err(tar_error(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "two long name entries describe the same entry",
                )));
            }
            long_name = Some(read_long_name(archive, &mut entry)?);
            continue;
        }
        let path_bytes = match long_name.take() {
            Some(name) => name,
            None => entry.path_bytes().into_owned(),
        };
        let path = String::from_utf8(path_bytes).map_err(|error| BackupError::InvalidPath {
            path: String::from_utf8_lossy(error.as_bytes()).into_owned(),
            reason: "not UTF-8",
        })?;
        if manifest.is_some() {
            return Err(BackupError::EntryAfterManifest { path });
        }
        tally.count_entry(&path)?;
        if !entry_type.is_file() {
            return Err(BackupError::UnsupportedEntryType {
                path,
                entry_type: describe(entry_type),
            });
        }
        let kind = classify(&path)?;
        let size = entry.size();
        // the header's size first, so that nothing of a bomb is read
        let cap = tally.cap(kind);
        if size > cap.max() {
            return Err(cap.exceeded(&path, size));
        }
        // then the bytes as they come, in case the header lies
        let mut content = Capped::new(&mut entry, cap.max());
        if kind == EntryKind::Manifest {
            let mut bytes = Vec::new();
            if let Err(error) = content.read_to_end(&mut bytes) {
                return Err(if content.passed() {
                    cap.exceeded(&path, content.read)
                } else {
                    tar_error(error)
                });
            }
            tally.bytes += content.read;
            if content.read != size {
                return Err(tar_error(ended_early(&path, content.read, size)));
            }
            manifest = Some(bytes);
            continue;
        }
        if seen.contains_key(&path) {
            return Err(BackupError::DuplicateEntry { path });
        }
        let copied = match target {
            Target::Discard => copy_hashing(&mut content, &mut io::sink()).map_err(CopyError::Read),
            Target::Directory(dest) => write_new(&dest.join(&path), &mut content),
            Target::Work { dir, .. } if kind == EntryKind::Store => {
                write_new(&dir.join(STORE_FILE_NAME), &mut content)
            }
            Target::Work { dir, objects } => {
                // paths are unique (checked above), so numbers are too
                let number = objects.len() as u64;
                let copied = write_new(&object_file(dir, number), &mut content);
                objects.insert(path.clone(), number);
                copied
            }
        };
        let found = match copied {
            Ok(found) => found,
            Err(_) if content.passed() => return Err(cap.exceeded(&path, content.read)),
            Err(error) => return Err(error.into_backup_error(archive)),
        };
        tally.bytes += found.size;
        if found.size != size {
            return Err(tar_error(ended_early(&path, found.size, size)));
        }
        seen.insert(path, found);
    }
    if long_name.is_some() {
        return Err(tar_error(io::Error::new(
            io::ErrorKind::InvalidData,
            "a long name entry is not followed by the entry it names",
        )));
    }
    Ok(Entries { manifest, seen })
}

/// Reads a GNU long name entry: the path of the next entry, NUL-terminated,
/// refused when longer than the format's path limit.
fn read_long_name<R: Read>(archive: &Path, entry: &mut tar::Entry<'_, R>) -> Result<Vec<u8>> {
    let header_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
    let too_long = || BackupError::InvalidPath {
        path: header_path.clone(),
        reason: "a GNU long name of more than 4096 bytes",
    };
    // the path and its NUL
    let max = MAX_PATH as u64 + 1;
    let size = entry.size();
    if size > max {
        return Err(too_long());
    }
    let mut name = Vec::new();
    let mut content = Capped::new(&mut *entry, max);
    if let Err(source) = content.read_to_end(&mut name) {
        return Err(if content.passed() {
            too_long()
        } else {
            BackupError::Tar {
                archive: archive.to_owned(),
                source,
            }
        });
    }
    if content.read != size {
        return Err(BackupError::Tar {
            archive: archive.to_owned(),
            source: ended_early(&header_path, content.read, size),
        });
    }
    if name.last() == Some(&0) {
        name.pop();
    }
    Ok(name)
}

/// The error of an entry whose content ends before its header's size.
fn ended_early(path: &str, read: u64, size: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("entry `{path}` ends after {read} of its {size} bytes"),
    )
}

/// Reads at most `max` bytes of `inner` and fails as soon as more come,
/// without reading on: a running count that an entry's header cannot lie
/// to.
struct Capped<R> {
    inner: R,
    max: u64,
    /// Bytes read so far; past `max` once the cap is passed.
    read: u64,
}

impl<R: Read> Capped<R> {
    fn new(inner: R, max: u64) -> Self {
        Self {
            inner,
            max,
            read: 0,
        }
    }

    /// Whether more than `max` bytes came.
    fn passed(&self) -> bool {
        self.read > self.max
    }
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let passed = || io::Error::other("the entry is larger than its limit");
        if self.passed() {
            return Err(passed());
        }
        // one byte more than allowed shows whether there is more
        let room = (self.max - self.read).saturating_add(1);
        let len = usize::try_from(room).map_or(buf.len(), |room| room.min(buf.len()));
        let read = self.inner.read(&mut buf[..len])?;
        self.read += read as u64;
        if self.passed() {
            return Err(passed());
        }
        Ok(read)
    }
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

/// Copies `from` to `to` through a fixed buffer, returning size and
/// SHA-256. A failure to write is returned with
/// [`io::ErrorKind::WriteZero`] (its message kept).
fn copy_hashing(from: &mut impl Read, to: &mut impl Write) -> io::Result<Seen> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; COPY_BUFFER];
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
        sha256: hasher.finalize().into(),
    })
}

/// What [`drain`] found.
#[derive(Default)]
struct Drained {
    /// Something but zero bytes came.
    trailing: bool,
    /// More than the budget came; the rest was not read.
    cut_short: bool,
}

/// Reads `reader` to its end, or until more than `budget` bytes came;
/// whether anything but zero bytes (tar's end of archive blocks) came.
/// Errors are left in the taps.
fn drain(reader: &mut impl Read, budget: u64) -> Drained {
    let mut drained = Drained::default();
    let mut total = 0u64;
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return drained,
            Ok(read) => {
                drained.trailing |= buf[..read].iter().any(|byte| *byte != 0);
                total += read as u64;
                if total > budget {
                    drained.cut_short = true;
                    return drained;
                }
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return drained,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what is read from it.
    struct Counting<'a> {
        inner: &'a [u8],
        read: usize,
    }

    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let read = self.inner.read(buf)?;
            self.read += read;
            Ok(read)
        }
    }

    #[test]
    fn capped_stops_one_byte_past_the_cap() {
        let data = vec![7u8; 1 << 20];
        let mut source = Counting {
            inner: &data,
            read: 0,
        };
        let mut capped = Capped::new(&mut source, 1000);
        let error = copy_hashing(&mut capped, &mut io::sink())
            .err()
            .expect("a megabyte passes a cap of 1000 bytes");
        assert_eq!(error.kind(), io::ErrorKind::Other);
        assert!(capped.passed());
        assert_eq!(capped.read, 1001);
        // the rest of the entry was never read
        assert_eq!(source.read, 1001);
    }

    #[test]
    fn capped_passes_content_up_to_the_cap() {
        for (len, max) in [(0, 0), (1000, 1000), (999, 1000), (5, u64::MAX)] {
            let data = vec![1u8; len];
            let mut capped = Capped::new(&data[..], max);
            let seen = copy_hashing(&mut capped, &mut io::sink()).expect("within the cap");
            assert_eq!((seen.size, capped.passed()), (len as u64, false));
        }
    }
}

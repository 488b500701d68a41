//! Writing an archive: entries streamed through tar and zstd into
//! `<archive>.partial`, renamed into place by [`ArchiveWriter::finish`].

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{BackupError, Result};
use crate::manifest::{ClusterEntry, FORMAT_VERSION, FileEntry, Manifest, ManifestInfo};
use crate::path::{
    EntryKind, MANIFEST_PATH, ObjectLocation, STORE_PATH, classify, hex, sanitize_segment,
};

/// The compression level used unless told otherwise: zstd's default, fast
/// and already much smaller than the JSON.
pub const DEFAULT_COMPRESSION_LEVEL: i32 = 3;

/// A streamed file reports progress after every this many bytes.
const PROGRESS_STEP: u64 = 1 << 20;

/// How [`ArchiveWriter::create`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterOptions {
    /// Replace an existing archive (and a stale `.partial` file) at the
    /// path; without it both are refused.
    pub overwrite: bool,
    /// The zstd level, 1 (fastest) to 19 ([`DEFAULT_COMPRESSION_LEVEL`]).
    pub compression_level: i32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            overwrite: false,
            compression_level: DEFAULT_COMPRESSION_LEVEL,
        }
    }
}

/// How far a write has come, for progress bars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Objects added.
    pub objects: u64,
    /// Entries added (objects and the store file).
    pub files: u64,
    /// Uncompressed bytes added.
    pub bytes_in: u64,
    /// Compressed bytes written to disk so far (zstd buffers, so this lags
    /// behind `bytes_in`; exact after [`ArchiveWriter::finish`]).
    pub bytes_out: u64,
}

/// A callback given every [`Progress`] update.
type ProgressCallback = Box<dyn FnMut(&Progress) + Send>;

/// The stack the entries go through: tar, zstd, a byte counter, the file.
type Sink = tar::Builder<zstd::stream::write::Encoder<'static, CountingWriter<File>>>;

/// Writes one archive.
///
/// Entries go to `<path>.partial`; only [`finish`](Self::finish) renames it
/// to `path`, after the manifest is written and the file is synced, so a
/// file at `path` is always complete. Dropping the writer without finishing
/// (an error, a cancelled backup) removes the `.partial` file; a killed
/// process leaves it behind, and the next `create` refuses to start until it
/// is removed (or [`WriterOptions::overwrite`] is set).
///
/// The archive depends only on what is added, in which order, and the
/// [`ManifestInfo`]: entries carry mode 0600, owner 0, mtime 0. On Unix the
/// file is created with mode 0600, as it may hold Secrets.
pub struct ArchiveWriter {
    path: PathBuf,
    partial: PathBuf,
    overwrite: bool,
    sink: Option<Sink>,
    files: BTreeMap<String, FileEntry>,
    clusters: BTreeMap<String, ClusterEntry>,
    /// Sanitised cluster directory -> cluster name.
    cluster_dirs: HashMap<String, String>,
    progress: Progress,
    on_progress: Option<ProgressCallback>,
    failed: bool,
    finished: bool,
}

impl std::fmt::Debug for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("path", &self.path)
            .field("progress", &self.progress)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl ArchiveWriter {
    /// Starts an archive to be finished at `path`, writing to
    /// `<path>.partial` meanwhile. Refuses when `path` or the `.partial`
    /// file exists, unless `options.overwrite`.
    pub fn create(path: &Path, options: WriterOptions) -> Result<Self> {
        let partial = partial_path(path);
        if !options.overwrite && fs::symlink_metadata(path).is_ok() {
            return Err(BackupError::AlreadyExists {
                path: path.to_owned(),
            });
        }
        let mut open = OpenOptions::new();
        open.write(true);
        // objects may include Secrets: readable by the owner only
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
        if options.overwrite {
            open.create(true).truncate(true);
        } else {
            open.create_new(true);
        }
        let file = open.open(&partial).map_err(|source| {
            if source.kind() == io::ErrorKind::AlreadyExists {
                BackupError::PartialExists {
                    path: partial.clone(),
                }
            } else {
                BackupError::io("create", &partial, source)
            }
        })?;
        // from here on, dropping the writer removes the partial file
        let mut writer = Self {
            path: path.to_owned(),
            partial,
            overwrite: options.overwrite,
            sink: None,
            files: BTreeMap::new(),
            clusters: BTreeMap::new(),
            cluster_dirs: HashMap::new(),
            progress: Progress::default(),
            on_progress: None,
            failed: false,
            finished: false,
        };
        let mut encoder = zstd::stream::write::Encoder::new(
            CountingWriter {
                inner: file,
                count: 0,
            },
            options.compression_level,
        )
        .map_err(|source| BackupError::io("start compressing", &writer.partial, source))?;
        encoder
            .include_checksum(true)
            .map_err(|source| BackupError::io("start compressing", &writer.partial, source))?;
        writer.sink = Some(tar::Builder::new(encoder));
        Ok(writer)
    }

    /// Where the finished archive will be.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the archive is written until it is finished.
    pub fn partial_path(&self) -> &Path {
        &self.partial
    }

    /// Progress so far.
    pub fn progress(&self) -> Progress {
        self.progress
    }

    /// Calls `callback` after every entry and every MiB of a streamed file.
    pub fn on_progress(&mut self, callback: impl FnMut(&Progress) + Send + 'static) {
        self.on_progress = Some(Box::new(callback));
    }

    /// Declares a source cluster: its cloud and the namespaces backed up
    /// (`None` for all). Must come before its objects; declaring it again
    /// updates cloud and namespaces and keeps the counts. A declared cluster
    /// is in the manifest even with no objects.
    pub fn set_cluster(
        &mut self,
        name: &str,
        cloud: &str,
        namespaces: Option<Vec<String>>,
    ) -> Result<()> {
        if name.is_empty() {
            return Err(BackupError::InvalidObject {
                reason: "the cluster name is empty".to_owned(),
            });
        }
        let dir = sanitize_segment(name);
        if let Some(other) = self.cluster_dirs.get(&dir).filter(|other| *other != name) {
            return Err(BackupError::ClusterNameClash {
                first: other.clone(),
                second: name.to_owned(),
                dir,
            });
        }
        self.cluster_dirs.insert(dir, name.to_owned());
        let entry = self
            .clusters
            .entry(name.to_owned())
            .or_insert_with(|| ClusterEntry {
                name: name.to_owned(),
                cloud: String::new(),
                namespaces: None,
                objects: 0,
                kinds: BTreeMap::new(),
            });
        entry.cloud = cloud.to_owned();
        entry.namespaces = namespaces;
        Ok(())
    }

    /// Adds one object of a declared cluster as pretty JSON at
    /// [`object_path`](crate::object_path), and counts it. Returns the
    /// path. The object is written as given: cleaning it for re-creation is
    /// the caller's job.
    pub fn add_object(&mut self, cluster: &str, object: &Value) -> Result<String> {
        if !self.clusters.contains_key(cluster) {
            return Err(BackupError::UnknownCluster {
                cluster: cluster.to_owned(),
            });
        }
        let location = ObjectLocation::of(cluster, object)?;
        let mut bytes =
            serde_json::to_vec_pretty(object).map_err(|source| BackupError::ObjectJson {
                path: location.path.clone(),
                source,
            })?;
        bytes.push(b'\n');
        let size = bytes.len() as u64;
        self.append(&location.path, size, &bytes[..], None)?;
        if let Some(entry) = self.clusters.get_mut(cluster) {
            entry.objects += 1;
            *entry.kinds.entry(location.kind).or_default() += 1;
        }
        self.progress.objects += 1;
        self.report();
        Ok(location.path)
    }

    /// Streams the store copy at `source` (a consistent copy made by the
    /// caller, e.g. with `VACUUM INTO`) into `store/pilothouse.db`. Fails,
    /// leaving the writer unusable, when the file changes size meanwhile.
    pub fn add_store_file(&mut self, source: &Path) -> Result<()> {
        let file = File::open(source).map_err(|error| BackupError::io("open", source, error))?;
        let size = file
            .metadata()
            .map_err(|error| BackupError::io("read", source, error))?
            .len();
        self.append(STORE_PATH, size, file.take(size), Some(source))?;
        self.report();
        Ok(())
    }

    /// Adds `bytes` as `store/pilothouse.db`.
    pub fn add_store_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.append(STORE_PATH, bytes.len() as u64, bytes, None)?;
        self.report();
        Ok(())
    }

    /// Appends the manifest (built from what was added and `info`), ends
    /// the tar and zstd streams, syncs the file, renames it to the archive
    /// path and syncs the directory. Returns the manifest written.
    pub fn finish(mut self, info: ManifestInfo) -> Result<Manifest> {
        if self.failed {
            return Err(BackupError::WriterFailed);
        }
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            pilothouse_version: info.pilothouse_version,
            created_at: info.created_at,
            store: self.files.contains_key(STORE_PATH),
            include_secrets: info.include_secrets,
            clusters: self.clusters.values().cloned().collect(),
            files: self.files.values().cloned().collect(),
        };
        let mut json =
            serde_json::to_vec_pretty(&manifest).map_err(|source| BackupError::ObjectJson {
                path: MANIFEST_PATH.to_owned(),
                source,
            })?;
        json.push(b'\n');
        let partial = self.partial.clone();
        let write_error = |source| BackupError::io("write", &partial, source);
        let mut sink = self.sink.take().ok_or(BackupError::WriterFailed)?;
        sink.append_data(&mut header(json.len() as u64), MANIFEST_PATH, &json[..])
            .map_err(write_error)?;
        let encoder = sink.into_inner().map_err(write_error)?;
        let counting = encoder.finish().map_err(write_error)?;
        self.progress.bytes_out = counting.count;
        counting
            .inner
            .sync_all()
            .map_err(|source| BackupError::io("sync", &partial, source))?;
        drop(counting);
        if !self.overwrite && fs::symlink_metadata(&self.path).is_ok() {
            return Err(BackupError::AlreadyExists {
                path: self.path.clone(),
            });
        }
        fs::rename(&partial, &self.path)
            .map_err(|source| BackupError::io("rename", &partial, source))?;
        self.finished = true;
        sync_parent(&self.path)?;
        self.report();
        Ok(manifest)
    }

    /// Appends one entry, at most `size` bytes read from `data`, hashing it.
    fn append(
        &mut self,
        path: &str,
        size: u64,
        data: impl Read,
        source: Option<&Path>,
    ) -> Result<()> {
        if self.failed {
            return Err(BackupError::WriterFailed);
        }
        if classify(path)? == EntryKind::Manifest {
            return Err(BackupError::InvalidPath {
                path: path.to_owned(),
                reason: "manifest.json is written by finish",
            });
        }
        if self.files.contains_key(path) {
            return Err(BackupError::DuplicatePath {
                path: path.to_owned(),
            });
        }
        let Some(sink) = self.sink.as_mut() else {
            return Err(BackupError::WriterFailed);
        };
        let mut reader = HashingReader {
            inner: data.take(size),
            hasher: Sha256::new(),
            count: 0,
            progress: &mut self.progress,
            on_progress: self.on_progress.as_mut(),
            unreported: 0,
            read_failed: false,
        };
        let appended = sink.append_data(&mut header(size), path, &mut reader);
        let HashingReader {
            hasher,
            count,
            read_failed,
            ..
        } = reader;
        // tar wrote a header for `size` bytes: anything else breaks the stream
        if let Err(error) = appended {
            self.failed = true;
            return Err(match source {
                Some(source) if read_failed => BackupError::io("read", source, error),
                _ => BackupError::io("write", &self.partial, error),
            });
        }
        if count != size {
            self.failed = true;
            return Err(BackupError::SourceChanged {
                path: source.map_or_else(|| PathBuf::from(path), Path::to_owned),
                expected: size,
                actual: count,
            });
        }
        self.progress.files += 1;
        self.progress.bytes_out = sink.get_ref().get_ref().count;
        self.files.insert(
            path.to_owned(),
            FileEntry {
                path: path.to_owned(),
                size,
                sha256: hex(&hasher.finalize()),
            },
        );
        Ok(())
    }

    fn report(&mut self) {
        if let Some(callback) = self.on_progress.as_mut() {
            callback(&self.progress);
        }
    }
}

impl Drop for ArchiveWriter {
    fn drop(&mut self) {
        if !self.finished {
            drop(self.sink.take());
            // best effort: the file is incomplete whether or not this works
            let _ = fs::remove_file(&self.partial);
        }
    }
}

/// `<path>.partial`.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".partial");
    PathBuf::from(name)
}

/// The header of every entry: a regular file of `size` bytes, mode 0600,
/// owner 0, mtime 0 (tar fills in path and checksum).
fn header(size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o600);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

/// Makes the rename of `path` durable by syncing its directory.
fn sync_parent(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)
            .and_then(|directory| directory.sync_all())
            .map_err(|source| BackupError::io("sync", parent, source))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Counts the bytes written through it.
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.count += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes and counts what is read through it, reporting progress.
struct HashingReader<'a, R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    progress: &'a mut Progress,
    on_progress: Option<&'a mut ProgressCallback>,
    unreported: u64,
    read_failed: bool,
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf).inspect_err(|error| {
            self.read_failed |= error.kind() != io::ErrorKind::Interrupted;
        })?;
        self.hasher.update(&buf[..read]);
        self.count += read as u64;
        self.progress.bytes_in += read as u64;
        self.unreported += read as u64;
        if self.unreported >= PROGRESS_STEP {
            self.unreported = 0;
            if let Some(callback) = self.on_progress.as_mut() {
                callback(self.progress);
            }
        }
        Ok(read)
    }
}

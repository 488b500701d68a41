//! The crate's one error type.

use std::io;
use std::path::PathBuf;

use crate::limits::{LimitMessage, ReadLimit};

/// What can go wrong writing, verifying or reading a backup archive.
///
/// Every variant that is about an archive's content names the entry (its
/// path inside the archive) or the archive file, so the message alone tells
/// an operator what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// A file or directory on disk could not be created, read, written,
    /// synced or renamed.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        /// What was being done, e.g. "create", "read", "rename".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },

    /// The archive to write already exists and overwriting was not asked for.
    #[error("`{}` already exists (refusing to overwrite it)", path.display())]
    AlreadyExists {
        /// The archive path.
        path: PathBuf,
    },

    /// The `.partial` file of the archive to write exists: an earlier backup
    /// to the same path was interrupted, or another one is running.
    #[error(
        "`{}` exists: an earlier backup to the same path was interrupted or another one is running; remove it and try again",
        path.display()
    )]
    PartialExists {
        /// The `.partial` path.
        path: PathBuf,
    },

    /// An earlier error left the archive being written unusable; the writer
    /// must be dropped (which removes the `.partial` file).
    #[error("an earlier error left the archive being written unusable")]
    WriterFailed,

    /// A path inside an archive is not one the format allows (absolute,
    /// `..`, characters outside the format's alphabet, or outside the
    /// documented layout).
    #[error("unsafe or invalid path `{path}` in the archive: {reason}")]
    InvalidPath {
        /// The path, lossily decoded when it is not UTF-8.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The same path was added to an archive twice.
    #[error("`{path}` is already in the archive")]
    DuplicatePath {
        /// The path inside the archive.
        path: String,
    },

    /// An object to back up lacks what its path is made of.
    #[error("cannot back up object: {reason}")]
    InvalidObject {
        /// What is missing or wrong (`kind`, `apiVersion`, `metadata.name`).
        reason: String,
    },

    /// An object was added for a cluster that was not declared first with
    /// [`ArchiveWriter::set_cluster`](crate::ArchiveWriter::set_cluster).
    #[error("object for cluster `{cluster}`, which was not declared with set_cluster")]
    UnknownCluster {
        /// The cluster name given.
        cluster: String,
    },

    /// Two declared cluster names map to the same directory in the archive.
    #[error("clusters `{first}` and `{second}` would share the directory `clusters/{dir}`")]
    ClusterNameClash {
        /// The cluster declared first.
        first: String,
        /// The cluster declared second.
        second: String,
        /// The shared directory name.
        dir: String,
    },

    /// A JSON object could not be serialised, or an extracted object file
    /// could not be parsed.
    #[error("JSON of `{path}`: {source}")]
    ObjectJson {
        /// The path inside the archive.
        path: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },

    /// A file streamed into the archive changed size while it was read (the
    /// caller must hand over a stable copy, e.g. the result of `VACUUM INTO`).
    #[error(
        "`{}` changed while it was archived (expected {expected} bytes, read {actual})",
        path.display()
    )]
    SourceChanged {
        /// The source file.
        path: PathBuf,
        /// Its size when the entry was started.
        expected: u64,
        /// The bytes actually read.
        actual: u64,
    },

    /// The archive file is empty.
    #[error("`{}` is empty", archive.display())]
    Empty {
        /// The archive file.
        archive: PathBuf,
    },

    /// The compressed stream ends before it is complete: the file was
    /// truncated (e.g. an interrupted copy).
    #[error("`{}` is truncated: the compressed stream ends early ({source})", archive.display())]
    Truncated {
        /// The archive file.
        archive: PathBuf,
        /// The decompressor's report.
        #[source]
        source: io::Error,
    },

    /// The compressed stream is not valid zstd or fails its checksum: the
    /// file is corrupt or not a Pilothouse archive.
    #[error("`{}` is corrupt: zstd decompression failed ({source})", archive.display())]
    Decompress {
        /// The archive file.
        archive: PathBuf,
        /// The decompressor's report.
        #[source]
        source: io::Error,
    },

    /// The decompressed stream is not a valid tar archive (bad header
    /// checksum, impossible size, …).
    #[error("`{}` is corrupt: invalid tar structure ({source})", archive.display())]
    Tar {
        /// The archive file.
        archive: PathBuf,
        /// The tar reader's report.
        #[source]
        source: io::Error,
    },

    /// Non-zero bytes, or more than 1 MiB of zero bytes, follow the end of
    /// the tar archive.
    #[error("`{}` has data after the end of the tar archive", archive.display())]
    TrailingData {
        /// The archive file.
        archive: PathBuf,
    },

    /// An entry is a link, device, directory or other non-regular file.
    #[error("entry `{path}` is a {entry_type}, only regular files are allowed")]
    UnsupportedEntryType {
        /// The path inside the archive.
        path: String,
        /// The entry type found.
        entry_type: String,
    },

    /// The archive has no `manifest.json`.
    #[error("`{}` has no manifest.json (not a Pilothouse backup, or truncated)", archive.display())]
    MissingManifest {
        /// The archive file.
        archive: PathBuf,
    },

    /// An entry follows `manifest.json`, which must be the last entry.
    #[error("entry `{path}` follows manifest.json, which must be the last entry")]
    EntryAfterManifest {
        /// The path inside the archive.
        path: String,
    },

    /// `manifest.json` is larger than any real manifest: 64 MiB, a fixed
    /// cap beside the [`ReadLimits`](crate::ReadLimits). Found from its
    /// header, before it is read.
    #[error("manifest.json is {size} bytes, more than the limit of {limit}")]
    ManifestTooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },

    /// `manifest.json` is not valid JSON or misses a field.
    #[error("manifest.json is invalid: {source}")]
    ManifestJson {
        /// The cause.
        #[source]
        source: serde_json::Error,
    },

    /// The archive was written in a format version this build cannot read.
    #[error(
        "archive format version {found} is not supported (this Pilothouse reads version {supported})"
    )]
    UnsupportedFormatVersion {
        /// The version in the manifest.
        found: u64,
        /// The version this build reads.
        supported: u32,
    },

    /// The manifest contradicts itself or the archive's layout (unsorted or
    /// repeated file list, wrong object counts, `store` flag wrong, …).
    #[error("manifest.json is inconsistent: {reason}")]
    ManifestInconsistent {
        /// What does not add up.
        reason: String,
    },

    /// An entry's size differs from the manifest's.
    #[error("entry `{path}` is {actual} bytes, the manifest says {expected}")]
    SizeMismatch {
        /// The path inside the archive.
        path: String,
        /// The manifest's size.
        expected: u64,
        /// The entry's size.
        actual: u64,
    },

    /// An entry's SHA-256 differs from the manifest's: its content was
    /// changed.
    #[error("entry `{path}` fails its checksum (manifest sha256 {expected}, content {actual})")]
    ChecksumMismatch {
        /// The path inside the archive.
        path: String,
        /// The manifest's digest.
        expected: String,
        /// The content's digest.
        actual: String,
    },

    /// A file the manifest lists is not in the archive.
    #[error("entry `{path}` is listed in the manifest but missing from the archive")]
    MissingEntry {
        /// The path inside the archive.
        path: String,
    },

    /// An entry is in the archive but not in the manifest.
    #[error("entry `{path}` is in the archive but not listed in the manifest")]
    UnlistedEntry {
        /// The path inside the archive.
        path: String,
    },

    /// An entry occurs more than once in the archive.
    #[error("entry `{path}` occurs more than once in the archive")]
    DuplicateEntry {
        /// The path inside the archive.
        path: String,
    },

    /// The archive exceeds one of the [`ReadLimits`](crate::ReadLimits):
    /// an entry, the store copy or all entries together are larger, or
    /// there are more entries, than allowed. It may be a decompression
    /// bomb. Found while decompressing, from the entry's header or as soon
    /// as its content passes the limit, without reading on; nothing is
    /// kept.
    #[error("{}", LimitMessage { what: *what, path, limit: *limit })]
    LimitExceeded {
        /// Which limit.
        what: ReadLimit,
        /// The entry at which the limit was passed: its path inside the
        /// archive.
        path: String,
        /// The limit's value (bytes, or entries for [`ReadLimit::Entries`]).
        limit: u64,
    },

    /// The directory to extract into exists and is not empty.
    #[error("`{}` is not empty (extraction needs an empty or new directory)", path.display())]
    DestinationNotEmpty {
        /// The directory.
        path: PathBuf,
    },
}

impl BackupError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = BackupError> = std::result::Result<T, E>;

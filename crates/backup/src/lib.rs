//! The archive format of `pilothouse backup` and `pilothouse restore`.
//!
//! This crate owns the file format and nothing else: writing an archive
//! ([`ArchiveWriter`]), and verifying one ([`verify`]) or verifying while
//! reading it ([`VerifiedArchive`]: objects and the store copy in a private
//! temporary directory, objects parsed one at a time as they are iterated)
//! or extracting it ([`extract_verified`]), so that a restore has checked
//! everything before it changes anything, and within [`ReadLimits`], so
//! that a small crafted archive cannot make a restore exhaust memory or
//! disk.
//!
//! It must not talk to a cluster, run SQL, or decide what goes into a
//! backup: the caller hands it a consistent copy of the store (SQLite
//! `VACUUM INTO` or the online backup API, never the live file) and objects
//! already cleaned for re-creation, and decides what to do with what it
//! reads back. It does file I/O only, does not log, and reads no clock: the
//! backup time is given in [`ManifestInfo`].
//!
//! # Format, version 1
//!
//! An archive (by convention `*.tar.zst`) is one zstd frame, with a content
//! checksum, holding a tar stream (GNU headers; paths longer than 100 bytes
//! use GNU long-name entries). Any `tar --zstd -xf` can unpack it. Every
//! entry is a regular file with mode 0600, owner 0 and mtime 0; there are no
//! directory, link or device entries (and the archive file itself is created
//! with mode 0600 on Unix, since it may hold Secrets). Entries, in the order
//! written:
//!
//! | path | content |
//! | --- | --- |
//! | `store/pilothouse.db` | optional: a consistent copy of the SQLite store (secrets in it stay encrypted; the master key is never in an archive) |
//! | `clusters/<cluster>/<namespace>/<group>/<kind>/<name>.json` | one Kubernetes object, pretty JSON with a final newline |
//! | `manifest.json` | always last: describes the archive and holds every other entry's checksum |
//!
//! In object paths `<namespace>` is `_cluster` for cluster-scoped objects
//! and `<group>` is `core` for the core group (`apiVersion: v1`); the API
//! version is not in the path. Every segment is escaped by
//! [`sanitize_segment`]: letters, digits and `-` stay, `.` and `_` stay
//! except as the first character, any other byte becomes `%XX`, so no
//! segment can be `.`, `..`, hidden or contain `/` (a segment longer than
//! 200 bytes is cut and suffixed `--` and 16 hex digits of its SHA-256).
//! Paths therefore only contain `[A-Za-z0-9._%-]` and `/`.
//!
//! `manifest.json` (pretty JSON):
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "pilothouse_version": "0.1.0",
//!   "created_at": "2026-05-01T12:00:00Z",
//!   "store": true,
//!   "include_secrets": false,
//!   "clusters": [
//!     { "name": "prod-aks", "cloud": "aks", "namespaces": ["shop"],
//!       "objects": 2, "kinds": { "ConfigMap": 1, "Deployment": 1 } }
//!   ],
//!   "files": [
//!     { "path": "clusters/prod-aks/shop/apps/Deployment/web.json",
//!       "size": 812, "sha256": "<64 lower-case hex digits>" }
//!   ]
//! }
//! ```
//!
//! - `format_version`: [`FORMAT_VERSION`]; a reader refuses any other.
//! - `created_at`: RFC 3339, UTC.
//! - `store`: whether `store/pilothouse.db` is present.
//! - `clusters`: sorted by name; `namespaces` is `null` when all were backed
//!   up; `objects` and `kinds` count the cluster's object files.
//! - `files`: every entry but the manifest, sorted by path (byte order),
//!   each with its size in bytes and the SHA-256 of its content.
//!
//! A reader accepts an archive only when all of this holds: the zstd frame
//! decodes completely (with a window of at most 128 MiB) and its checksum
//! matches; nothing but zero blocks, at most 1 MiB of them, follows the tar
//! end; every entry is a regular file (GNU long-name entries of at most
//! 4097 bytes aside; PAX and other extension entries are refused) whose
//! path is UTF-8, relative, free of empty, `.` and `..` components, within
//! the alphabet above and in the layout of the table; no path occurs
//! twice; the entries are within the [limits](#limits); the manifest
//! is present and last, of a supported version, and consistent (sorted
//! unique files, `store` true exactly when the store file is listed, every
//! object under a listed cluster, counts matching the files); and each
//! listed file is present with the listed size and SHA-256, with no other
//! entry. Unknown manifest fields are ignored.
//!
//! The writer streams into `<archive>.partial`, fsyncs it and renames it
//! into place (then fsyncs the directory), so a file at the archive path
//! is always complete. With the same entries added in the same order and
//! the same [`ManifestInfo`], it writes identical bytes.
//!
//! # Limits
//!
//! The manifest, which alone says what sizes to expect, is the last entry,
//! so everything before it is read untrusted. A reader therefore enforces
//! [`ReadLimits`] while it decompresses, and refuses an archive that passes
//! one with [`BackupError::LimitExceeded`] naming the entry and the limit:
//!
//! | limit | default | caps |
//! | --- | --- | --- |
//! | [`max_entry_bytes`](ReadLimits::max_entry_bytes) | 16 MiB | one object entry |
//! | [`max_store_bytes`](ReadLimits::max_store_bytes) | 16 GiB | `store/pilothouse.db` |
//! | [`max_total_bytes`](ReadLimits::max_total_bytes) | 32 GiB | the content of all entries, manifest included |
//! | [`max_entries`](ReadLimits::max_entries) | 2,000,000 | entries, manifest included |
//!
//! and `manifest.json` has a fixed cap of 64 MiB
//! ([`BackupError::ManifestTooLarge`]). Each entry's size in its tar header
//! is checked before any of its content is read, and its content is
//! counted as it is read: reading stops as soon as a cap is passed, and
//! nothing of the archive is decompressed after that. Entries are counted
//! as they are met, and the total kept as they are read. No entry's
//! content is held in memory (the manifest's aside): it is hashed, and
//! written where it goes, through a 64 KiB buffer, so memory does not grow
//! with the archive's content, only with its number of entries (a path and
//! a digest each), beside the zstd window (at most 128 MiB, 8 MiB at the
//! writer's levels) and the manifest. A refused archive leaves nothing behind:
//! [`extract_verified`] removes what it extracted, [`VerifiedArchive`]
//! its temporary directory. The functions without a `_with_limits` suffix
//! use [`ReadLimits::default`].
//!
//! # Example
//!
//! ```no_run
//! use std::path::Path;
//!
//! use pilothouse_backup::{ArchiveWriter, ManifestInfo, VerifiedArchive, WriterOptions};
//!
//! # fn main() -> Result<(), pilothouse_backup::BackupError> {
//! let out = Path::new("backup.tar.zst");
//! let mut writer = ArchiveWriter::create(out, WriterOptions::default())?;
//! writer.on_progress(|progress| eprintln!("{} objects", progress.objects));
//! writer.add_store_file(Path::new("/tmp/pilothouse-copy.db"))?;
//! writer.set_cluster("prod-aks", "aks", None)?;
//! # let object = serde_json::Value::Null;
//! writer.add_object("prod-aks", &object)?;
//! let manifest = writer.finish(ManifestInfo {
//!     pilothouse_version: "0.1.0".to_owned(),
//!     created_at: jiff::Timestamp::now(),
//!     include_secrets: false,
//! })?;
//!
//! // restore: nothing is changed until this has succeeded
//! let verified = VerifiedArchive::open(out)?;
//! for object in verified.objects() {
//!     let object = object?;
//!     println!("{} {}", object.cluster, object.path);
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod limits;
mod manifest;
mod path;
mod reader;
mod writer;

pub use crate::error::{BackupError, Result};
pub use crate::limits::{ReadLimit, ReadLimits};
pub use crate::manifest::{ClusterEntry, FORMAT_VERSION, FileEntry, Manifest, ManifestInfo};
pub use crate::path::{
    CLUSTER_SCOPE_DIR, CLUSTERS_DIR, CORE_GROUP_DIR, MANIFEST_PATH, STORE_PATH, object_path,
    sanitize_segment,
};
pub use crate::reader::{
    ArchivedObject, Objects, VerifiedArchive, extract_verified, extract_verified_with_limits,
    verify, verify_with_limits,
};
pub use crate::writer::{ArchiveWriter, DEFAULT_COMPRESSION_LEVEL, Progress, WriterOptions};

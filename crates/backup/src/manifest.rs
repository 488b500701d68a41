//! `manifest.json`: what an archive holds, with a checksum for every file.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{BackupError, Result};
use crate::path::{EntryKind, STORE_PATH, classify, sanitize_segment};

/// The archive format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The content of `manifest.json`, the last entry of every archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The archive format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The version of the Pilothouse that wrote the archive.
    pub pilothouse_version: String,
    /// When the backup was taken (RFC 3339 in the JSON).
    pub created_at: Timestamp,
    /// Whether `store/pilothouse.db` is in the archive.
    pub store: bool,
    /// Whether Secrets were backed up (`--include-secrets`).
    pub include_secrets: bool,
    /// The clusters whose objects are in the archive, sorted by name.
    pub clusters: Vec<ClusterEntry>,
    /// Every entry but `manifest.json`, sorted by path.
    pub files: Vec<FileEntry>,
}

/// One source cluster in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterEntry {
    /// The cluster's name in the Pilothouse registry.
    pub name: String,
    /// Its cloud (`aks`, `eks`, `gke`, `kind` …), as the registry has it.
    pub cloud: String,
    /// The namespaces backed up; `None` (`null`) for all of them.
    pub namespaces: Option<Vec<String>>,
    /// How many objects of the cluster are in the archive.
    pub objects: u64,
    /// How many objects of each kind.
    pub kinds: BTreeMap<String, u64>,
}

/// One entry of the archive other than `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The path inside the archive.
    pub path: String,
    /// The size in bytes.
    pub size: u64,
    /// The SHA-256 of the content, lower-case hex.
    pub sha256: String,
}

/// The fields of the manifest the writer cannot know; given to
/// [`ArchiveWriter::finish`](crate::ArchiveWriter::finish).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestInfo {
    /// The version of the Pilothouse writing the archive.
    pub pilothouse_version: String,
    /// When the backup was taken.
    pub created_at: Timestamp,
    /// Whether Secrets were backed up.
    pub include_secrets: bool,
}

impl Manifest {
    /// Parses `manifest.json`, checking the format version before anything
    /// else so an archive of a newer format is refused as such, not as bad
    /// JSON.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|source| BackupError::ManifestJson { source })?;
        match value
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
        {
            Some(version) if version == u64::from(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(BackupError::UnsupportedFormatVersion {
                    found,
                    supported: FORMAT_VERSION,
                });
            }
            None => {
                return Err(BackupError::ManifestInconsistent {
                    reason: "no numeric `format_version`".to_owned(),
                });
            }
        }
        serde_json::from_value(value).map_err(|source| BackupError::ManifestJson { source })
    }

    /// Checks that the manifest agrees with itself and with the layout:
    /// files sorted and unique, every path safe and in the layout, `store`
    /// true exactly when the store file is listed, cluster names unique, and
    /// every cluster's object and kind counts equal to its files.
    pub(crate) fn check_consistency(&self) -> Result<()> {
        let inconsistent = |reason: String| BackupError::ManifestInconsistent { reason };
        for pair in self.files.windows(2) {
            if pair[0].path >= pair[1].path {
                return Err(inconsistent(format!(
                    "`files` is not sorted by path or repeats a path (`{}` before `{}`)",
                    pair[0].path, pair[1].path
                )));
            }
        }
        // cluster directory -> kind directory -> count of files
        let mut clusters: HashMap<String, BTreeMap<String, u64>> = HashMap::new();
        for cluster in &self.clusters {
            let dir = sanitize_segment(&cluster.name);
            if cluster.name.is_empty() || clusters.contains_key(&dir) {
                return Err(inconsistent(format!(
                    "cluster name `{}` is empty or repeated",
                    cluster.name
                )));
            }
            clusters.insert(dir, BTreeMap::new());
        }
        let mut has_store = false;
        for file in &self.files {
            match classify(&file.path)? {
                EntryKind::Manifest => {
                    return Err(inconsistent("`files` lists manifest.json".to_owned()));
                }
                EntryKind::Store => has_store = true,
                EntryKind::Object {
                    cluster_dir,
                    kind_dir,
                } => {
                    let kinds = clusters.get_mut(cluster_dir).ok_or_else(|| {
                        inconsistent(format!(
                            "`{}` belongs to no cluster listed in `clusters`",
                            file.path
                        ))
                    })?;
                    *kinds.entry(kind_dir.to_owned()).or_default() += 1;
                }
            }
            if file.sha256.len() != 64
                || !file
                    .sha256
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
            {
                return Err(inconsistent(format!(
                    "the sha256 of `{}` is not 64 lower-case hex digits",
                    file.path
                )));
            }
        }
        if has_store != self.store {
            return Err(inconsistent(format!(
                "`store` is {} but {STORE_PATH} is {}listed",
                self.store,
                if has_store { "" } else { "not " }
            )));
        }
        for cluster in &self.clusters {
            // counts come from the file: saturate rather than overflow
            let mut declared: BTreeMap<String, u64> = BTreeMap::new();
            for (kind, count) in &cluster.kinds {
                let slot = declared.entry(sanitize_segment(kind)).or_default();
                *slot = slot.saturating_add(*count);
            }
            let declared_total = declared.values().fold(0u64, |a, b| a.saturating_add(*b));
            let empty = BTreeMap::new();
            let found = clusters
                .get(&sanitize_segment(&cluster.name))
                .unwrap_or(&empty);
            let found_total: u64 = found.values().sum();
            if found_total != cluster.objects
                || declared_total != cluster.objects
                || *found != declared
            {
                return Err(inconsistent(format!(
                    "cluster `{}` claims {} objects {:?} but the archive lists {found_total} files for it {found:?}",
                    cluster.name, cluster.objects, cluster.kinds
                )));
            }
        }
        Ok(())
    }
}

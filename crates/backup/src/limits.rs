//! How much reading one archive may expand to.

use std::fmt;

/// Caps on what reading one archive may expand to, enforced while it is
/// decompressed: an archive of a few KiB can declare and hold gigabytes of
/// zeros, and without caps a restore would decompress (and write) all of
/// it before the manifest, the last entry, can be checked.
///
/// Every entry's size in its tar header is checked against its cap before
/// any of its content is read, and the content is counted as it is read
/// (reading stops as soon as the count passes the cap). Exceeding any cap
/// is [`BackupError::LimitExceeded`](crate::BackupError::LimitExceeded),
/// and the archive is refused with nothing kept. A size equal to a cap is
/// accepted.
///
/// [`Default`] is sized for real fleets; raise a cap only for an archive
/// that is trusted and known to need it. `manifest.json` has its own fixed
/// cap of 64 MiB, which also bounds how many objects an archive can list
/// (some 350,000 at about 190 bytes of manifest each).
///
/// ```no_run
/// use std::path::Path;
///
/// use pilothouse_backup::{ReadLimits, VerifiedArchive};
///
/// # fn main() -> Result<(), pilothouse_backup::BackupError> {
/// let limits = ReadLimits {
///     max_store_bytes: 64 << 30,
///     ..ReadLimits::default()
/// };
/// let verified = VerifiedArchive::open_with_limits(Path::new("backup.tar.zst"), &limits)?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// The largest object entry (`clusters/…/<name>.json`), in bytes.
    /// Default 16 MiB: Kubernetes objects are at most about 1.5 MiB (etcd's
    /// default request size limit), a few MiB as pretty JSON.
    pub max_entry_bytes: u64,
    /// The largest `store/pilothouse.db` entry, in bytes. Default 16 GiB.
    pub max_store_bytes: u64,
    /// The most all entries together may expand to, in bytes: the content
    /// of every entry, `manifest.json` included, plus anything decompressed
    /// after the end of the tar archive (tar headers and padding are not
    /// counted). Default 32 GiB.
    pub max_total_bytes: u64,
    /// The most entries an archive may have, counting objects, the store
    /// copy and `manifest.json`. Default 2,000,000.
    pub max_entries: u64,
}

impl ReadLimits {
    /// The defaults: objects up to 16 MiB each, the store copy up to
    /// 16 GiB, 32 GiB in total and 2,000,000 entries.
    pub const DEFAULT: Self = Self {
        max_entry_bytes: 16 << 20,
        max_store_bytes: 16 << 30,
        max_total_bytes: 32 << 30,
        max_entries: 2_000_000,
    };

    /// The value of one of the caps.
    pub fn get(&self, limit: ReadLimit) -> u64 {
        match limit {
            ReadLimit::EntryBytes => self.max_entry_bytes,
            ReadLimit::StoreBytes => self.max_store_bytes,
            ReadLimit::TotalBytes => self.max_total_bytes,
            ReadLimit::Entries => self.max_entries,
        }
    }
}

impl Default for ReadLimits {
    /// [`ReadLimits::DEFAULT`].
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One of the caps of [`ReadLimits`], as named in
/// [`BackupError::LimitExceeded`](crate::BackupError::LimitExceeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadLimit {
    /// [`ReadLimits::max_entry_bytes`]: the size of one object entry.
    EntryBytes,
    /// [`ReadLimits::max_store_bytes`]: the size of the store copy.
    StoreBytes,
    /// [`ReadLimits::max_total_bytes`]: the size of all entries together.
    TotalBytes,
    /// [`ReadLimits::max_entries`]: the number of entries.
    Entries,
}

impl ReadLimit {
    /// The name of the [`ReadLimits`] field, e.g. `max_entry_bytes`.
    pub fn field(self) -> &'static str {
        match self {
            Self::EntryBytes => "max_entry_bytes",
            Self::StoreBytes => "max_store_bytes",
            Self::TotalBytes => "max_total_bytes",
            Self::Entries => "max_entries",
        }
    }
}

/// The message of [`BackupError::LimitExceeded`](crate::BackupError::LimitExceeded).
pub(crate) struct LimitMessage<'a> {
    pub(crate) what: ReadLimit,
    pub(crate) path: &'a str,
    pub(crate) limit: u64,
}

impl fmt::Display for LimitMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { what, path, limit } = *self;
        match what {
            ReadLimit::EntryBytes => write!(
                f,
                "entry `{path}` is larger than the limit of {} for one object",
                Bytes(limit)
            )?,
            ReadLimit::StoreBytes => write!(
                f,
                "entry `{path}` is larger than the limit of {} for the store copy",
                Bytes(limit)
            )?,
            ReadLimit::TotalBytes => write!(
                f,
                "the archive expands to more than the limit of {} in total (passed at entry `{path}`)",
                Bytes(limit)
            )?,
            ReadLimit::Entries => write!(
                f,
                "the archive has more than the limit of {limit} entries (passed at entry `{path}`)"
            )?,
        }
        write!(
            f,
            "; refused as a possible decompression bomb (if the archive is trusted, raise {} with restore's --max-… flags)",
            what.field()
        )
    }
}

/// A size in bytes, with its binary unit when that is shorter.
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.0;
        write!(f, "{bytes} bytes")?;
        let units = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
        if let Some((shift, unit)) = units.into_iter().find(|(shift, _)| bytes >> shift > 0) {
            if bytes.is_multiple_of(1 << shift) {
                write!(f, " ({} {unit})", bytes >> shift)?;
            } else {
                let value = bytes as f64 / (1u64 << shift) as f64;
                write!(f, " ({value:.1} {unit})")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        for (bytes, expected) in [
            (0, "0 bytes"),
            (1000, "1000 bytes"),
            (1024, "1024 bytes (1 KiB)"),
            (16 << 20, "16777216 bytes (16 MiB)"),
            (32 << 30, "34359738368 bytes (32 GiB)"),
            (1536, "1536 bytes (1.5 KiB)"),
        ] {
            assert_eq!(Bytes(bytes).to_string(), expected);
        }
    }
}

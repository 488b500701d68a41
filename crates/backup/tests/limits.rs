//! A decompression bomb: a few KiB of archive whose one object entry
//! expands to 256 MiB of zeros. It is refused from the entry's header,
//! without reading the entry, and reading it stays in constant memory even
//! when its limit is raised.
//!
//! This file holds a single test on purpose: it measures the process's
//! peak memory (`VmHWM`), which tests running beside it in the same process
//! would disturb.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use pilothouse_backup::{
    ArchiveWriter, BackupError, ManifestInfo, ReadLimit, ReadLimits, VerifiedArchive,
    WriterOptions, extract_verified, extract_verified_with_limits, verify, verify_with_limits,
};
use serde_json::json;
use sha2::{Digest, Sha256};

const BOMB: &str = "clusters/aks/shop/core/ConfigMap/bomb.json";
const BOMB_SIZE: u64 = 256 << 20;
const DEFAULT_ENTRY_LIMIT: u64 = 16 << 20;

/// The process's peak resident memory so far, in bytes (Linux).
fn peak_memory() -> u64 {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmHWM in kB");
    kib * 1024
}

/// Hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.hasher.update(&buf[..read]);
        Ok(read)
    }
}

/// Writes the bomb: an archive that is valid in every way (the manifest
/// lists the entry with its true size and SHA-256) but the size of its one
/// object. The zeros are streamed through zstd, never held in memory.
fn write_bomb(dir: &Path) -> PathBuf {
    // a real manifest to start from
    let template = dir.join("template.tar.zst");
    let mut writer = ArchiveWriter::create(&template, WriterOptions::default()).expect("create");
    writer.set_cluster("aks", "aks", None).expect("cluster");
    let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "bomb", "namespace": "shop"}});
    writer.add_object("aks", &object).expect("object");
    let mut manifest = serde_json::to_value(
        writer
            .finish(ManifestInfo {
                pilothouse_version: "0.1.0".to_owned(),
                created_at: "2026-05-01T12:00:00Z".parse().expect("timestamp"),
                include_secrets: false,
            })
            .expect("finish"),
    )
    .expect("json");
    assert_eq!(manifest["files"][0]["path"], BOMB);

    let path = dir.join("bomb.tar.zst");
    let file = fs::File::create(&path).expect("create");
    let mut builder =
        tar::Builder::new(zstd::stream::write::Encoder::new(file, 3).expect("encoder"));
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o600);
    header.set_size(BOMB_SIZE);
    let mut zeros = Hashing {
        inner: io::repeat(0).take(BOMB_SIZE),
        hasher: Sha256::new(),
    };
    builder
        .append_data(&mut header, BOMB, &mut zeros)
        .expect("bomb");
    let sha256: String = zeros
        .hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    manifest["files"][0]["size"] = json!(BOMB_SIZE);
    manifest["files"][0]["sha256"] = json!(sha256);
    let manifest = serde_json::to_vec_pretty(&manifest).expect("json");
    let mut header = tar::Header::new_gnu();
    header.set_mode(0o600);
    header.set_size(manifest.len() as u64);
    builder
        .append_data(&mut header, "manifest.json", &manifest[..])
        .expect("manifest");
    builder
        .into_inner()
        .expect("tar end")
        .finish()
        .expect("zstd end");
    path
}

fn assert_entry_limit(error: &BackupError) {
    match error {
        BackupError::LimitExceeded { what, path, limit } => {
            assert_eq!(
                (*what, path.as_str(), *limit),
                (ReadLimit::EntryBytes, BOMB, DEFAULT_ENTRY_LIMIT)
            );
        }
        other => panic!("not refused for the entry limit: {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains(BOMB), "{message}");
    assert!(message.contains("16777216 bytes (16 MiB)"), "{message}");
    assert!(message.contains("restore's --max-"), "{message}");
}

#[test]
fn decompression_bomb_is_refused_in_constant_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bomb = write_bomb(dir.path());
    let compressed = fs::metadata(&bomb).expect("stat").len();
    eprintln!("{BOMB_SIZE} bytes of entry in {compressed} bytes of archive");
    assert!(compressed < 64 << 10, "a small archive: {compressed} bytes");
    let before = peak_memory();

    assert_entry_limit(&verify(&bomb).expect_err("bomb verified"));
    assert_entry_limit(&VerifiedArchive::open(&bomb).expect_err("bomb opened"));
    let work = dir.path().join("work");
    fs::create_dir(&work).expect("mkdir");
    assert_entry_limit(&VerifiedArchive::open_in(&bomb, &work).expect_err("bomb opened"));
    assert_eq!(fs::read_dir(&work).expect("ls").count(), 0, "work left");
    let dest = dir.path().join("dest");
    assert_entry_limit(&extract_verified(&bomb, &dest).expect_err("bomb extracted"));
    assert!(!dest.exists(), "extraction left {}", dest.display());
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    assert_entry_limit(&extract_verified(&bomb, &empty).expect_err("bomb extracted"));
    assert_eq!(fs::read_dir(&empty).expect("ls").count(), 0, "files left");

    // Refused from the header, before the entry is read: with the archive
    // cut after its first 4 KiB the refusal is the same (reading into the
    // entry would find the cut and call the archive truncated).
    let cut = dir.path().join("cut.tar.zst");
    let bytes = fs::read(&bomb).expect("read");
    fs::write(&cut, &bytes[..4096]).expect("write");
    assert_entry_limit(&verify(&cut).expect_err("cut bomb verified"));
    assert!(matches!(
        verify_with_limits(
            &cut,
            &ReadLimits {
                max_entry_bytes: BOMB_SIZE,
                ..ReadLimits::default()
            }
        ),
        Err(BackupError::Truncated { .. })
    ));

    // Otherwise the archive is sound: with the entry limit raised it is
    // accepted, and still read in constant memory, straight to disk.
    let raised = ReadLimits {
        max_entry_bytes: BOMB_SIZE,
        ..ReadLimits::default()
    };
    let manifest = verify_with_limits(&bomb, &raised).expect("verify with a raised limit");
    assert_eq!(manifest.files[0].size, BOMB_SIZE);
    let opened = VerifiedArchive::open_in_with_limits(&bomb, &work, &raised).expect("open");
    assert_eq!(opened.manifest(), &manifest);
    drop(opened);
    assert_eq!(fs::read_dir(&work).expect("ls").count(), 0, "work left");
    let tree = dir.path().join("tree");
    extract_verified_with_limits(&bomb, &tree, &raised).expect("extract");
    assert_eq!(
        fs::metadata(tree.join(BOMB)).expect("stat").len(),
        BOMB_SIZE
    );
    fs::remove_dir_all(&tree).expect("rm");

    let growth = peak_memory().saturating_sub(before);
    eprintln!("peak memory grew by {} KiB", growth >> 10);
    assert!(
        growth < 64 << 20,
        "reading a {BOMB_SIZE}-byte entry raised peak memory by {growth} bytes"
    );

    // the total limit holds the same bomb too
    let total = ReadLimits {
        max_entry_bytes: BOMB_SIZE,
        max_total_bytes: 1 << 20,
        ..ReadLimits::default()
    };
    match verify_with_limits(&bomb, &total) {
        Err(BackupError::LimitExceeded {
            what: ReadLimit::TotalBytes,
            path,
            limit,
        }) => assert_eq!((path.as_str(), limit), (BOMB, 1 << 20)),
        other => panic!("{other:?}"),
    }
}

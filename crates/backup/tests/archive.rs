//! Writing, verifying and extracting archives, and every way a damaged or
//! crafted archive is refused.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pilothouse_backup::{
    ArchiveWriter, BackupError, FORMAT_VERSION, MANIFEST_PATH, Manifest, ManifestInfo, ReadLimit,
    ReadLimits, STORE_PATH, VerifiedArchive, WriterOptions, extract_verified,
    extract_verified_with_limits, object_path, sanitize_segment, verify, verify_with_limits,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn info() -> ManifestInfo {
    ManifestInfo {
        pilothouse_version: "0.1.0".to_owned(),
        created_at: "2026-05-01T12:00:00Z".parse().expect("timestamp"),
        include_secrets: true,
    }
}

/// 300 KiB that compress a little but not to nothing.
fn store_bytes() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..300 * 1024)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if i % 3 == 0 {
                b'x'
            } else {
                (state >> 56) as u8
            }
        })
        .collect()
}

fn object(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Value {
    let mut object = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"replicas": 2, "note": "ünïcode ✓"},
    });
    if let Some(namespace) = namespace {
        object["metadata"]["namespace"] = json!(namespace);
    }
    object
}

/// The objects of the two sample clusters.
fn sample_objects() -> Vec<(&'static str, Value)> {
    vec![
        ("aks", object("v1", "Namespace", None, "shop")),
        ("aks", object("v1", "ConfigMap", Some("shop"), "cfg-0")),
        ("aks", object("v1", "ConfigMap", Some("shop"), "cfg-1")),
        ("aks", object("apps/v1", "Deployment", Some("shop"), "web")),
        ("aks", object("v1", "Service", Some("shop"), "web")),
        ("eks", object("v1", "Namespace", None, "ops")),
        ("eks", object("v1", "Secret", Some("ops"), "token")),
        (
            "eks",
            object(
                "rbac.authorization.k8s.io/v1",
                "ClusterRole",
                None,
                "system:x",
            ),
        ),
    ]
}

/// Writes the sample archive (store file and two clusters) to `path`.
fn write_sample(path: &Path) -> Manifest {
    write_sample_with(path, WriterOptions::default())
}

fn write_sample_with(path: &Path, options: WriterOptions) -> Manifest {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("copy.db");
    fs::write(&store, store_bytes()).expect("store copy");
    let mut writer = ArchiveWriter::create(path, options).expect("create");
    writer.add_store_file(&store).expect("store");
    writer
        .set_cluster("aks", "aks", Some(vec!["shop".to_owned()]))
        .expect("cluster");
    writer.set_cluster("eks", "eks", None).expect("cluster");
    for (cluster, object) in sample_objects() {
        writer.add_object(cluster, &object).expect("object");
    }
    writer.finish(info()).expect("finish")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
fn round_trip_of_store_and_two_clusters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backup.tar.zst");
    let written = write_sample(&path);

    assert_eq!(written.format_version, FORMAT_VERSION);
    assert!(written.store && written.include_secrets);
    let names: Vec<_> = written.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["aks", "eks"]);
    let aks = &written.clusters[0];
    assert_eq!((aks.cloud.as_str(), aks.objects), ("aks", 5));
    assert_eq!(aks.namespaces, Some(vec!["shop".to_owned()]));
    assert_eq!(aks.kinds.get("ConfigMap"), Some(&2));
    assert_eq!(written.clusters[1].namespaces, None);
    assert_eq!(written.clusters[1].objects, 3);
    assert_eq!(written.files.len(), 1 + 8);
    let store = written
        .files
        .iter()
        .find(|file| file.path == STORE_PATH)
        .expect("store listed");
    assert_eq!(store.size, 300 * 1024);
    assert_eq!(store.sha256, sha256_hex(&store_bytes()));
    let mut sorted = written.files.clone();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(sorted, written.files);
    assert!(!dir.path().join("backup.tar.zst.partial").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the archive may hold Secrets");
    }

    assert_eq!(verify(&path).expect("verify"), written);

    let extracted = VerifiedArchive::open(&path).expect("extract");
    assert_eq!(extracted.manifest(), &written);
    let store_file = extracted.store_file().expect("store file").to_owned();
    assert_eq!(fs::read(&store_file).expect("read store"), store_bytes());
    let mut expected: Vec<(String, String, Value)> = sample_objects()
        .into_iter()
        .map(|(cluster, object)| {
            let path = object_path(cluster, &object).expect("path");
            (cluster.to_owned(), path, object)
        })
        .collect();
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    let read: Vec<(String, String, Value)> = extracted
        .objects()
        .map(|object| {
            let object = object.expect("object");
            (object.cluster, object.path, object.object)
        })
        .collect();
    assert_eq!(read, expected);
    for (_, path, object) in &expected {
        let mut bytes = serde_json::to_vec_pretty(object).expect("json");
        bytes.push(b'\n');
        let listed = written
            .files
            .iter()
            .find(|f| &f.path == path)
            .expect("listed");
        assert_eq!(
            (listed.size, &listed.sha256),
            (bytes.len() as u64, &sha256_hex(&bytes))
        );
    }
    let eks: Vec<_> = extracted
        .cluster_objects("eks")
        .expect("eks")
        .map(|object| object.expect("object").object["kind"].clone())
        .collect();
    // path order: _cluster/core/… before _cluster/rbac…, before ops/…
    assert_eq!(
        eks,
        [json!("Namespace"), json!("ClusterRole"), json!("Secret")]
    );
    assert!(extracted.cluster_objects("gke").is_none());

    drop(extracted);
    assert!(
        !store_file.parent().expect("dir").exists(),
        "the temporary directory is removed on drop"
    );

    // the same, as files
    let dest = dir.path().join("tree");
    assert_eq!(extract_verified(&path, &dest).expect("extract"), written);
    assert_eq!(
        fs::read(dest.join(STORE_PATH)).expect("store"),
        store_bytes()
    );
    for (_, path, object) in &expected {
        let bytes = fs::read(dest.join(path)).expect("object file");
        let read: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(&read, object);
    }
    let manifest: Manifest =
        serde_json::from_slice(&fs::read(dest.join("manifest.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest, written);
}

#[test]
fn archive_unpacks_with_plain_tar_paths() {
    // the layout as a generic tar reader sees it
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backup.tar.zst");
    write_sample(&path);
    let entries = read_entries(&path);
    let paths: Vec<_> = entries.iter().map(|(path, _)| path.as_str()).collect();
    assert_eq!(paths.first(), Some(&STORE_PATH));
    assert_eq!(paths.last(), Some(&"manifest.json"));
    assert!(paths.contains(&"clusters/aks/shop/apps/Deployment/web.json"));
    assert!(paths.contains(&"clusters/aks/_cluster/core/Namespace/shop.json"));
    assert!(
        paths.contains(
            &"clusters/eks/_cluster/rbac.authorization.k8s.io/ClusterRole/system%3Ax.json"
        )
    );
}

/// Whether `error` is one of the ways a damaged file is reported.
fn is_damage(error: &BackupError) -> bool {
    matches!(
        error,
        BackupError::Empty { .. }
            | BackupError::Truncated { .. }
            | BackupError::Decompress { .. }
            | BackupError::Tar { .. }
            | BackupError::TrailingData { .. }
            | BackupError::InvalidPath { .. }
            | BackupError::ManifestJson { .. }
            | BackupError::MissingManifest { .. }
            | BackupError::SizeMismatch { .. }
            | BackupError::ChecksumMismatch { .. }
    )
}

#[test]
fn flipped_bytes_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.tar.zst");
    write_sample(&good);
    let bytes = fs::read(&good).expect("read");
    let len = bytes.len();
    for offset in [
        0,
        1,
        3,
        4,
        5,
        8,
        20,
        len / 4,
        len / 2,
        3 * len / 4,
        len - 8,
        len - 5,
        len - 1,
    ] {
        let mut damaged = bytes.clone();
        damaged[offset] ^= 0x5a;
        let path = dir.path().join(format!("flip-{offset}.tar.zst"));
        fs::write(&path, &damaged).expect("write");
        let error = verify(&path).expect_err("flipped byte accepted");
        assert!(is_damage(&error), "offset {offset}: {error:?}");
        eprintln!("flip at {offset}/{len}: {error}");
        assert_extract_refused(&path, dir.path());
    }
}

#[test]
fn truncated_archives_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.tar.zst");
    write_sample(&good);
    let bytes = fs::read(&good).expect("read");
    let len = bytes.len();
    for keep in [0, 1, 3, 4, 10, 100, len / 2, len - 100, len - 4, len - 1] {
        let path = dir.path().join(format!("cut-{keep}.tar.zst"));
        fs::write(&path, &bytes[..keep]).expect("write");
        let error = verify(&path).expect_err("truncated archive accepted");
        assert!(
            matches!(
                error,
                BackupError::Empty { .. } | BackupError::Truncated { .. }
            ),
            "{keep} bytes: {error:?}"
        );
        eprintln!("cut at {keep}/{len}: {error}");
        assert_extract_refused(&path, dir.path());
    }
}

/// Extraction of a bad archive fails and leaves nothing behind.
fn assert_extract_refused(archive: &Path, scratch: &Path) {
    let work = scratch.join("work");
    fs::create_dir_all(&work).expect("mkdir");
    assert!(VerifiedArchive::open_in(archive, &work).is_err());
    assert_eq!(fs::read_dir(&work).expect("ls").count(), 0);
    let dest = scratch.join("extract");
    assert!(extract_verified(archive, &dest).is_err());
    assert!(!dest.exists(), "extraction left {}", dest.display());
    let existing = scratch.join("existing-empty");
    fs::create_dir_all(&existing).expect("mkdir");
    assert!(extract_verified(archive, &existing).is_err());
    assert_eq!(fs::read_dir(&existing).expect("ls").count(), 0);
}

/// Every way of reading `archive` with `limits` fails with the same error,
/// leaving nothing behind; that error.
fn refused_with(archive: &Path, scratch: &Path, limits: &ReadLimits) -> BackupError {
    let error = verify_with_limits(archive, limits).expect_err("archive accepted");
    let same = |other: BackupError| assert_eq!(other.to_string(), error.to_string());
    same(VerifiedArchive::open_with_limits(archive, limits).expect_err("opened"));
    let work = scratch.join("limited-work");
    fs::create_dir_all(&work).expect("mkdir");
    same(VerifiedArchive::open_in_with_limits(archive, &work, limits).expect_err("opened"));
    assert_eq!(
        fs::read_dir(&work).expect("ls").count(),
        0,
        "work files left"
    );
    let dest = scratch.join("limited-extract");
    same(extract_verified_with_limits(archive, &dest, limits).expect_err("extracted"));
    assert!(!dest.exists(), "extraction left {}", dest.display());
    let existing = scratch.join("limited-existing-empty");
    fs::create_dir_all(&existing).expect("mkdir");
    same(extract_verified_with_limits(archive, &existing, limits).expect_err("extracted"));
    assert_eq!(
        fs::read_dir(&existing).expect("ls").count(),
        0,
        "files left"
    );
    error
}

/// Every way of reading `archive` with `limits` succeeds.
fn accepted_with(archive: &Path, scratch: &Path, limits: &ReadLimits) -> Manifest {
    let manifest = verify_with_limits(archive, limits).expect("verify");
    let opened = VerifiedArchive::open_with_limits(archive, limits).expect("open");
    assert_eq!(opened.manifest(), &manifest);
    assert!(opened.objects().all(|object| object.is_ok()));
    let dest = scratch.join("accepted-extract");
    assert_eq!(
        extract_verified_with_limits(archive, &dest, limits).expect("extract"),
        manifest
    );
    fs::remove_dir_all(&dest).expect("rm");
    manifest
}

/// `error` is the given limit passed at `path`.
fn assert_limit(error: &BackupError, what: ReadLimit, at: &str, value: u64) {
    match error {
        BackupError::LimitExceeded {
            what: found,
            path,
            limit,
        } => {
            assert_eq!(
                (*found, path.as_str(), *limit),
                (what, at, value),
                "{error}"
            );
        }
        other => panic!("not {what:?} at {at}: {other:?}"),
    }
    let message = error.to_string();
    assert!(message.contains(&format!("`{at}`")), "{message}");
    assert!(message.contains(&value.to_string()), "{message}");
    assert!(message.contains(what.field()), "{message}");
    assert!(message.contains("restore's --max-"), "{message}");
}

// -- crafting archives with tar and zstd directly ---------------------------

/// One tar entry: path, content, type.
struct Raw {
    path: String,
    data: Vec<u8>,
    entry_type: tar::EntryType,
}

fn read_entries(archive: &Path) -> Vec<(String, Vec<u8>)> {
    let decoder =
        zstd::stream::read::Decoder::new(fs::File::open(archive).expect("open")).expect("decoder");
    let mut tar = tar::Archive::new(decoder);
    tar.entries()
        .expect("entries")
        .map(|entry| {
            let mut entry = entry.expect("entry");
            let path = String::from_utf8(entry.path_bytes().into_owned()).expect("utf-8");
            let mut data = Vec::new();
            entry.read_to_end(&mut data).expect("read");
            (path, data)
        })
        .collect()
}

fn raw_entries(archive: &Path) -> Vec<Raw> {
    read_entries(archive)
        .into_iter()
        .map(|(path, data)| Raw {
            path,
            data,
            entry_type: tar::EntryType::Regular,
        })
        .collect()
}

/// Writes entries with names put in the header as given (the tar crate's
/// own path setters refuse `..`).
fn write_raw(archive: &Path, entries: &[Raw]) {
    write_raw_with_trailer(archive, entries, 0);
}

/// As [`write_raw`], with `zeros` zero bytes after the tar end.
fn write_raw_with_trailer(archive: &Path, entries: &[Raw], zeros: u64) {
    let encoder = zstd::stream::write::Encoder::new(fs::File::create(archive).expect("create"), 3)
        .expect("encoder");
    let mut builder = tar::Builder::new(encoder);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let name = &mut header.as_gnu_mut().expect("gnu").name;
        assert!(entry.path.len() <= name.len(), "test paths fit the header");
        name[..entry.path.len()].copy_from_slice(entry.path.as_bytes());
        header.set_entry_type(entry.entry_type);
        header.set_mode(0o644);
        header.set_size(entry.data.len() as u64);
        if entry.entry_type == tar::EntryType::Symlink {
            header.set_link_name("/etc/passwd").expect("link name");
            header.set_size(0);
        }
        header.set_cksum();
        builder.append(&header, &entry.data[..]).expect("append");
    }
    let mut encoder = builder.into_inner().expect("tar end");
    io::copy(&mut io::repeat(0).take(zeros), &mut encoder).expect("trailer");
    encoder.finish().expect("zstd end");
}

/// The sample archive rewritten after `change` edits its entries.
fn crafted(dir: &Path, name: &str, change: impl FnOnce(&mut Vec<Raw>)) -> PathBuf {
    let good = dir.join(format!("{name}-source.tar.zst"));
    write_sample(&good);
    let mut entries = raw_entries(&good);
    change(&mut entries);
    let path = dir.join(format!("{name}.tar.zst"));
    write_raw(&path, &entries);
    path
}

fn rewrite_manifest(entries: &mut [Raw], edit: impl FnOnce(&mut Value)) {
    let manifest = entries.last_mut().expect("manifest");
    assert_eq!(manifest.path, "manifest.json");
    let mut value: Value = serde_json::from_slice(&manifest.data).expect("json");
    edit(&mut value);
    manifest.data = serde_json::to_vec_pretty(&value).expect("json");
}

/// Sets the manifest's size and SHA-256 of every file to its entry's.
fn relist(entries: &mut [Raw]) {
    let actual: Vec<(String, usize, String)> = entries
        .iter()
        .map(|entry| {
            (
                entry.path.clone(),
                entry.data.len(),
                sha256_hex(&entry.data),
            )
        })
        .collect();
    rewrite_manifest(entries, |manifest| {
        for file in manifest["files"].as_array_mut().expect("files") {
            let (_, size, sha256) = actual
                .iter()
                .find(|(path, ..)| file["path"] == path.as_str())
                .expect("entry of listed file");
            file["size"] = json!(size);
            file["sha256"] = json!(sha256);
        }
    });
}

const WEB: &str = "clusters/aks/shop/apps/Deployment/web.json";

fn position(entries: &[Raw], path: &str) -> usize {
    entries
        .iter()
        .position(|entry| entry.path == path)
        .expect("entry")
}

#[test]
fn unchanged_rewrite_verifies() {
    // the crafting itself does not break anything
    let dir = tempfile::tempdir().expect("tempdir");
    let path = crafted(dir.path(), "same", |_| {});
    assert!(verify(&path).is_ok());
}

#[test]
fn tampered_entry_fails_its_checksum() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = crafted(dir.path(), "tampered", |entries| {
        let web = position(entries, WEB);
        let data = &mut entries[web].data;
        let at = data
            .iter()
            .position(|byte| *byte == b'2')
            .expect("replicas");
        data[at] = b'9';
    });
    match verify(&path) {
        Err(BackupError::ChecksumMismatch { path, .. }) => assert_eq!(path, WEB),
        other => panic!("{other:?}"),
    }
    assert_extract_refused(&path, dir.path());

    let path = crafted(dir.path(), "longer", |entries| {
        let web = position(entries, WEB);
        entries[web].data.push(b' ');
    });
    match verify(&path) {
        Err(BackupError::SizeMismatch {
            path,
            expected,
            actual,
        }) => {
            assert_eq!(path, WEB);
            assert_eq!(actual, expected + 1);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn extra_missing_and_repeated_entries_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "clusters/aks/shop/core/ConfigMap/extra.json";
    let path = crafted(dir.path(), "extra", |entries| {
        let at = entries.len() - 1;
        entries.insert(
            at,
            Raw {
                path: extra.to_owned(),
                data: b"{}".to_vec(),
                entry_type: tar::EntryType::Regular,
            },
        );
    });
    match verify(&path) {
        Err(BackupError::UnlistedEntry { path }) => assert_eq!(path, extra),
        other => panic!("{other:?}"),
    }

    let path = crafted(dir.path(), "missing", |entries| {
        entries.remove(position(entries, WEB));
    });
    match verify(&path) {
        Err(BackupError::MissingEntry { path }) => assert_eq!(path, WEB),
        other => panic!("{other:?}"),
    }

    let path = crafted(dir.path(), "repeated", |entries| {
        let web = position(entries, WEB);
        let copy = Raw {
            path: WEB.to_owned(),
            data: entries[web].data.clone(),
            entry_type: tar::EntryType::Regular,
        };
        entries.insert(web, copy);
    });
    match verify(&path) {
        Err(BackupError::DuplicateEntry { path }) => assert_eq!(path, WEB),
        other => panic!("{other:?}"),
    }

    let path = crafted(dir.path(), "no-manifest", |entries| {
        entries.pop();
    });
    assert!(matches!(
        verify(&path),
        Err(BackupError::MissingManifest { .. })
    ));

    let path = crafted(dir.path(), "after-manifest", |entries| {
        let web = entries.remove(position(entries, WEB));
        entries.push(web);
    });
    match verify(&path) {
        Err(BackupError::EntryAfterManifest { path }) => assert_eq!(path, WEB),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = crafted(dir.path(), "v2", |entries| {
        rewrite_manifest(entries, |manifest| manifest["format_version"] = json!(2));
    });
    let error = verify(&path).expect_err("v2 accepted");
    assert!(
        matches!(
            error,
            BackupError::UnsupportedFormatVersion {
                found: 2,
                supported: 1
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "archive format version 2 is not supported (this Pilothouse reads version 1)"
    );
}

#[test]
fn inconsistent_manifests_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    type Edit = fn(&mut Value);
    let edits: [(&str, Edit); 5] = [
        ("count", |m| m["clusters"][0]["objects"] = json!(4)),
        ("kinds", |m| {
            m["clusters"][0]["kinds"]["ConfigMap"] = json!(1)
        }),
        ("store", |m| m["store"] = json!(false)),
        ("cluster", |m| {
            m["clusters"].as_array_mut().expect("clusters").remove(1);
        }),
        ("order", |m| {
            m["files"].as_array_mut().expect("files").reverse();
        }),
    ];
    for (name, edit) in edits {
        let path = crafted(dir.path(), name, |entries| rewrite_manifest(entries, edit));
        let error = verify(&path).expect_err("inconsistent manifest accepted");
        assert!(
            matches!(error, BackupError::ManifestInconsistent { .. }),
            "{name}: {error:?}"
        );
    }
    let path = crafted(dir.path(), "garbage", |entries| {
        let manifest = entries.last_mut().expect("manifest");
        manifest.data = b"{\"format_version\": 1, \"files\": 7}".to_vec();
    });
    assert!(matches!(
        verify(&path),
        Err(BackupError::ManifestJson { .. })
    ));
}

#[test]
fn unsafe_paths_and_links_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    for evil in [
        "../evil.json",
        "/tmp/evil.json",
        "clusters/aks/../../../evil.json",
        "clusters/aks/shop/core/ConfigMap/..",
        "clusters/aks/shop/core/ConfigMap/a\\b.json",
        "clusters/aks/.shop/core/ConfigMap/a.json",
        "notes.txt",
    ] {
        let name = format!("evil-{}", sanitize_segment(evil));
        let path = crafted(dir.path(), &name, |entries| {
            entries.insert(
                0,
                Raw {
                    path: evil.to_owned(),
                    data: b"{}".to_vec(),
                    entry_type: tar::EntryType::Regular,
                },
            );
        });
        match verify(&path) {
            Err(BackupError::InvalidPath { path, reason }) => {
                assert_eq!(path, evil);
                eprintln!("{evil}: {reason}");
            }
            other => panic!("{evil}: {other:?}"),
        }
        let dest = dir.path().join("dest");
        assert!(extract_verified(&path, &dest).is_err());
        assert!(!dest.exists());
        assert!(!dir.path().join("evil.json").exists());
    }

    for (entry_type, described) in [
        (tar::EntryType::Symlink, "symbolic link"),
        (tar::EntryType::Link, "hard link"),
        (tar::EntryType::Char, "character device"),
        (tar::EntryType::Directory, "directory"),
    ] {
        let path = crafted(dir.path(), described, |entries| {
            entries.insert(
                0,
                Raw {
                    path: "clusters/aks/shop/core/ConfigMap/link.json".to_owned(),
                    data: Vec::new(),
                    entry_type,
                },
            );
        });
        match verify(&path) {
            Err(BackupError::UnsupportedEntryType {
                entry_type: found, ..
            }) => assert_eq!(found, described),
            other => panic!("{described}: {other:?}"),
        }
    }
}

#[test]
fn interrupted_write_leaves_no_final_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backup.tar.zst");
    let partial = dir.path().join("backup.tar.zst.partial");

    // dropped midway (an error or a cancelled backup): nothing stays
    let mut writer = ArchiveWriter::create(&path, WriterOptions::default()).expect("create");
    assert_eq!(writer.partial_path(), partial);
    writer.add_store_bytes(&store_bytes()).expect("store");
    assert!(partial.exists() && !path.exists());
    drop(writer);
    assert!(!partial.exists() && !path.exists());

    // killed midway (no destructor): only the .partial file stays, refused
    let mut writer = ArchiveWriter::create(&path, WriterOptions::default()).expect("create");
    writer.add_store_bytes(&store_bytes()).expect("store");
    std::mem::forget(writer);
    assert!(partial.exists() && !path.exists());
    assert!(verify(&partial).is_err());
    assert!(matches!(
        ArchiveWriter::create(&path, WriterOptions::default()),
        Err(BackupError::PartialExists { .. })
    ));
    let overwrite = WriterOptions {
        overwrite: true,
        ..WriterOptions::default()
    };
    write_sample_with(&path, overwrite);
    assert!(!partial.exists());
    assert!(verify(&path).is_ok());
}

#[test]
fn existing_archive_is_not_overwritten_unless_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backup.tar.zst");
    fs::write(&path, b"precious").expect("write");
    assert!(matches!(
        ArchiveWriter::create(&path, WriterOptions::default()),
        Err(BackupError::AlreadyExists { .. })
    ));
    assert_eq!(fs::read(&path).expect("read"), b"precious");

    // appearing while the backup runs
    fs::remove_file(&path).expect("rm");
    let writer = ArchiveWriter::create(&path, WriterOptions::default()).expect("create");
    fs::write(&path, b"precious").expect("write");
    assert!(matches!(
        writer.finish(info()),
        Err(BackupError::AlreadyExists { .. })
    ));
    assert_eq!(fs::read(&path).expect("read"), b"precious");
    assert!(!dir.path().join("backup.tar.zst.partial").exists());

    let overwrite = WriterOptions {
        overwrite: true,
        ..WriterOptions::default()
    };
    write_sample_with(&path, overwrite);
    assert!(verify(&path).is_ok());
}

#[test]
fn writer_refuses_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backup.tar.zst");
    let mut writer = ArchiveWriter::create(&path, WriterOptions::default()).expect("create");
    let pod = object("v1", "Pod", Some("a"), "p");
    assert!(matches!(
        writer.add_object("undeclared", &pod),
        Err(BackupError::UnknownCluster { .. })
    ));
    writer.set_cluster("a/b", "kind", None).expect("cluster");
    // escaping is one-to-one: these get distinct directories
    writer.set_cluster("a%2Fb", "kind", None).expect("cluster");
    let long = "l".repeat(300);
    writer.set_cluster(&long, "kind", None).expect("cluster");
    writer
        .set_cluster(&sanitize_segment(&long), "kind", None)
        .expect("cluster");
    writer.add_object("a/b", &pod).expect("object");
    assert!(matches!(
        writer.add_object("a/b", &pod),
        Err(BackupError::DuplicatePath { .. })
    ));
    assert!(matches!(
        writer.add_object("a/b", &json!({"kind": "Pod"})),
        Err(BackupError::InvalidObject { .. })
    ));
    writer.add_store_bytes(b"db").expect("store");
    assert!(matches!(
        writer.add_store_bytes(b"db"),
        Err(BackupError::DuplicatePath { .. })
    ));
    // none of these errors broke the archive
    let manifest = writer.finish(info()).expect("finish");
    assert_eq!(manifest.clusters.len(), 4);
    assert_eq!(manifest.clusters[0].name, "a%2Fb");
    assert_eq!(manifest.clusters[1].name, "a/b");
    assert_eq!(manifest.clusters[1].objects, 1);
    assert_eq!(manifest.clusters[0].objects, 0);
    assert_eq!(verify(&path).expect("verify"), manifest);
    let extracted = VerifiedArchive::open(&path).expect("extract");
    assert_eq!(extracted.cluster_objects("a/b").expect("a/b").count(), 1);
}

#[test]
fn same_inputs_give_identical_archives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = dir.path().join("first.tar.zst");
    let second = dir.path().join("second.tar.zst");
    assert_eq!(write_sample(&first), write_sample(&second));
    assert_eq!(
        fs::read(&first).expect("read"),
        fs::read(&second).expect("read")
    );
    assert_eq!(
        verify(&first).expect("verify"),
        verify(&second).expect("verify")
    );
}

#[test]
fn extraction_needs_an_empty_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backup.tar.zst");
    write_sample(&path);
    let dest = dir.path().join("dest");
    fs::create_dir(&dest).expect("mkdir");
    fs::write(dest.join("keep"), b"x").expect("write");
    assert!(matches!(
        extract_verified(&path, &dest),
        Err(BackupError::DestinationNotEmpty { .. })
    ));
    assert_eq!(fs::read(dest.join("keep")).expect("kept"), b"x");

    let work = dir.path().join("data");
    fs::create_dir(&work).expect("mkdir");
    let extracted = VerifiedArchive::open_in(&path, &work).expect("extract");
    let store = extracted.store_file().expect("store");
    assert!(store.starts_with(&work));
    // the caller may move the store file into place
    fs::rename(store, work.join("pilothouse.db")).expect("rename");
    drop(extracted);
    assert_eq!(fs::read_dir(&work).expect("ls").count(), 1);
}

#[test]
fn progress_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backup.tar.zst");
    let store = dir.path().join("big.db");
    fs::write(&store, vec![7u8; 3 << 20]).expect("write");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut writer = ArchiveWriter::create(&path, WriterOptions::default()).expect("create");
    let sink = Arc::clone(&seen);
    writer.on_progress(move |progress| sink.lock().expect("lock").push(*progress));
    writer.add_store_file(&store).expect("store");
    writer.set_cluster("c", "kind", None).expect("cluster");
    writer
        .add_object("c", &object("v1", "ConfigMap", Some("a"), "b"))
        .expect("object");
    assert_eq!(writer.progress().objects, 1);
    assert_eq!(writer.progress().files, 2);
    writer.finish(info()).expect("finish");
    let seen = seen.lock().expect("lock");
    // three MiB steps of the store, the store entry, the object, the finish
    assert!(seen.len() >= 5, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].bytes_in <= w[1].bytes_in));
    let last = seen.last().expect("last");
    assert_eq!(last.bytes_out, fs::metadata(&path).expect("stat").len());
    assert!(last.bytes_in > 3 << 20);
}

#[test]
fn two_thousand_objects() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.tar.zst");
    let started = Instant::now();
    let mut writer = ArchiveWriter::create(&path, WriterOptions::default()).expect("create");
    writer.set_cluster("aks", "aks", None).expect("cluster");
    let mut json_bytes = 0;
    for i in 0..2000 {
        let mut object = object(
            "apps/v1",
            "Deployment",
            Some(&format!("ns-{}", i % 20)),
            &format!("app-{i}"),
        );
        object["spec"]["template"] = json!({
            "metadata": {"labels": {"app": format!("app-{i}")}},
            "spec": {"containers": [{"name": "main", "image": format!("registry.example/app-{i}:1.2.{i}"),
                "env": [{"name": "MODE", "value": "production"}, {"name": "INDEX", "value": i.to_string()}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
        });
        json_bytes += serde_json::to_vec_pretty(&object).expect("json").len() + 1;
        writer.add_object("aks", &object).expect("object");
    }
    let manifest = writer.finish(info()).expect("finish");
    let written = started.elapsed();
    let started = Instant::now();
    assert_eq!(verify(&path).expect("verify"), manifest);
    let verified = started.elapsed();
    let started = Instant::now();
    let verified_archive = VerifiedArchive::open(&path).expect("open");
    assert_eq!(
        verified_archive.objects().filter(Result::is_ok).count(),
        2000
    );
    let opened = started.elapsed();
    let started = Instant::now();
    extract_verified(&path, &dir.path().join("tree")).expect("extract");
    let extracted = started.elapsed();
    eprintln!(
        "2000 objects: {json_bytes} bytes of JSON -> {} bytes archived; write {written:?}, verify {verified:?}, open+parse {opened:?}, extract to files {extracted:?}",
        fs::metadata(&path).expect("stat").len()
    );
}

// -- read limits ------------------------------------------------------------

/// Limits that let everything through but what `edit` sets.
fn limits(edit: impl FnOnce(&mut ReadLimits)) -> ReadLimits {
    let mut limits = ReadLimits {
        max_entry_bytes: u64::MAX,
        max_store_bytes: u64::MAX,
        max_total_bytes: u64::MAX,
        max_entries: u64::MAX,
    };
    edit(&mut limits);
    limits
}

#[test]
fn default_limits_are_sized_for_real_fleets() {
    let defaults = ReadLimits::default();
    assert_eq!(defaults, ReadLimits::DEFAULT);
    assert_eq!(
        (
            defaults.max_entry_bytes,
            defaults.max_store_bytes,
            defaults.max_total_bytes,
            defaults.max_entries
        ),
        (16 << 20, 16 << 30, 32 << 30, 2_000_000)
    );
    assert_eq!(defaults.get(ReadLimit::TotalBytes), 32 << 30);
}

#[test]
fn object_entry_limit_is_enforced_on_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backup.tar.zst");
    write_sample(&path);
    let entries = raw_entries(&path);
    let largest = entries
        .iter()
        .filter(|entry| entry.path.starts_with("clusters/"))
        .map(|entry| entry.data.len() as u64)
        .max()
        .expect("objects");
    // the first in archive order of the largest objects
    let first_largest = entries
        .iter()
        .find(|entry| entry.path.starts_with("clusters/") && entry.data.len() as u64 == largest)
        .expect("largest");
    // the store copy (300 KiB) is no object: this cap is not its cap
    accepted_with(&path, dir.path(), &limits(|l| l.max_entry_bytes = largest));
    let error = refused_with(
        &path,
        dir.path(),
        &limits(|l| l.max_entry_bytes = largest - 1),
    );
    assert_limit(
        &error,
        ReadLimit::EntryBytes,
        &first_largest.path,
        largest - 1,
    );
}

#[test]
fn store_limit_is_enforced_on_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backup.tar.zst");
    write_sample(&path);
    accepted_with(
        &path,
        dir.path(),
        &limits(|l| l.max_store_bytes = 300 * 1024),
    );
    let error = refused_with(&path, dir.path(), &limits(|l| l.max_store_bytes = 1024));
    assert_limit(&error, ReadLimit::StoreBytes, STORE_PATH, 1024);
    assert_eq!(
        error.to_string(),
        "entry `store/pilothouse.db` is larger than the limit of 1024 bytes (1 KiB) for the store copy; \
         refused as a possible decompression bomb (if the archive is trusted, raise max_store_bytes \
         with restore's --max-… flags)"
    );
    // it is not an object's cap: a 4 KiB object passes it, and the object
    // cap is not the store's
    let big = crafted(dir.path(), "big-object", |entries| {
        let web = position(entries, WEB);
        let mut object: Value = serde_json::from_slice(&entries[web].data).expect("json");
        object["data"] = json!("x".repeat(4096));
        entries[web].data = serde_json::to_vec_pretty(&object).expect("json");
        relist(entries);
    });
    accepted_with(
        &big,
        dir.path(),
        &limits(|l| l.max_store_bytes = 1024 * 300),
    );
    let error = refused_with(&big, dir.path(), &limits(|l| l.max_entry_bytes = 1024));
    assert_limit(&error, ReadLimit::EntryBytes, WEB, 1024);
}

#[test]
fn total_limit_is_enforced_on_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backup.tar.zst");
    write_sample(&path);
    let entries = raw_entries(&path);
    let total: u64 = entries.iter().map(|entry| entry.data.len() as u64).sum();
    // every entry and the manifest counted, tar headers not
    accepted_with(&path, dir.path(), &limits(|l| l.max_total_bytes = total));
    let error = refused_with(
        &path,
        dir.path(),
        &limits(|l| l.max_total_bytes = total - 1),
    );
    assert_limit(&error, ReadLimit::TotalBytes, MANIFEST_PATH, total - 1);

    // passed in the middle: the store fits, the first object does not
    assert_eq!(entries[0].path, STORE_PATH);
    let store = entries[0].data.len() as u64;
    let error = refused_with(
        &path,
        dir.path(),
        &limits(|l| l.max_total_bytes = store + 10),
    );
    assert_limit(&error, ReadLimit::TotalBytes, &entries[1].path, store + 10);
    assert!(
        error.to_string().starts_with(&format!(
            "the archive expands to more than the limit of {} bytes (300.0 KiB) in total (passed at entry `{}`)",
            store + 10,
            entries[1].path
        )),
        "{error}"
    );

    // the entry's own cap is named when both are passed
    let both = limits(|l| {
        l.max_total_bytes = 1024;
        l.max_store_bytes = 1024;
    });
    let error = refused_with(&path, dir.path(), &both);
    assert_limit(&error, ReadLimit::StoreBytes, STORE_PATH, 1024);
}

#[test]
fn entry_count_limit_is_enforced_on_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backup.tar.zst");
    write_sample(&path);
    // eight objects, the store copy and the manifest
    assert_eq!(raw_entries(&path).len(), 10);
    accepted_with(&path, dir.path(), &limits(|l| l.max_entries = 10));
    let error = refused_with(&path, dir.path(), &limits(|l| l.max_entries = 9));
    assert_limit(&error, ReadLimit::Entries, MANIFEST_PATH, 9);

    // eleven entries against ten: refused when the eleventh is met, before
    // it could be found unlisted
    let extra = "clusters/aks/shop/core/ConfigMap/extra.json";
    let eleven = crafted(dir.path(), "eleven", |entries| {
        entries.insert(
            1,
            Raw {
                path: extra.to_owned(),
                data: b"{}\n".to_vec(),
                entry_type: tar::EntryType::Regular,
            },
        );
    });
    let error = refused_with(&eleven, dir.path(), &limits(|l| l.max_entries = 10));
    assert_limit(&error, ReadLimit::Entries, MANIFEST_PATH, 10);
    assert_eq!(
        error.to_string(),
        "the archive has more than the limit of 10 entries (passed at entry `manifest.json`); \
         refused as a possible decompression bomb (if the archive is trusted, raise max_entries \
         with restore's --max-… flags)"
    );
    assert!(matches!(
        verify_with_limits(&eleven, &limits(|l| l.max_entries = 11)),
        Err(BackupError::UnlistedEntry { .. })
    ));
}

#[test]
fn oversized_object_is_refused_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = (16 << 20) + 1;
    let path = crafted(dir.path(), "16-mib-and-a-byte", |entries| {
        let web = position(entries, WEB);
        let mut data = b"{\"spaces\": 1".to_vec();
        data.resize(big - 2, b' ');
        data.extend_from_slice(b"}\n");
        entries[web].data = data;
        relist(entries);
    });
    let error = verify(&path).expect_err("accepted");
    assert_limit(&error, ReadLimit::EntryBytes, WEB, 16 << 20);
    assert_eq!(
        error.to_string(),
        format!(
            "entry `{WEB}` is larger than the limit of 16777216 bytes (16 MiB) for one object; \
             refused as a possible decompression bomb (if the archive is trusted, raise \
             max_entry_bytes with restore's --max-… flags)"
        )
    );
    assert_extract_refused(&path, dir.path());
    // an honest archive otherwise: accepted with the cap raised
    let raised = ReadLimits {
        max_entry_bytes: big as u64,
        ..ReadLimits::default()
    };
    accepted_with(&path, dir.path(), &raised);
}

#[test]
fn long_names_and_extension_entries_are_not_read_into_memory() {
    let dir = tempfile::tempdir().expect("tempdir");

    // a GNU long name entry declaring 1 GiB, holding 64 KiB: refused from
    // its header (the tar crate alone would try to read all of it)
    let path = dir.path().join("long-name.tar.zst");
    let mut encoder =
        zstd::stream::write::Encoder::new(fs::File::create(&path).expect("create"), 3)
            .expect("encoder");
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().expect("gnu").name[..13].copy_from_slice(b"././@LongLink");
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_mode(0o644);
    header.set_size(1 << 30);
    header.set_cksum();
    encoder.write_all(header.as_bytes()).expect("header");
    io::copy(&mut io::repeat(b'a').take(64 << 10), &mut encoder).expect("name");
    encoder.finish().expect("zstd end");
    match verify(&path) {
        Err(BackupError::InvalidPath { path, reason }) => {
            assert_eq!(path, "././@LongLink");
            assert!(reason.contains("long name"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_extract_refused(&path, dir.path());

    // a long name at the path limit is read (and then checked as a path)
    let long = format!("clusters/aks/shop/core/ConfigMap/{}.json", "n".repeat(300));
    let path = crafted(dir.path(), "long-segment", |entries| {
        let mut name = long.as_bytes().to_vec();
        name.push(0);
        entries.insert(
            0,
            Raw {
                path: "././@LongLink".to_owned(),
                data: name,
                entry_type: tar::EntryType::GNULongName,
            },
        );
        entries.insert(
            1,
            Raw {
                path: long[..99].to_owned(),
                data: b"{}\n".to_vec(),
                entry_type: tar::EntryType::Regular,
            },
        );
    });
    // its long path was taken from the long name: the entry is unlisted
    match verify(&path) {
        Err(BackupError::UnlistedEntry { path }) => assert_eq!(path, long),
        other => panic!("{other:?}"),
    }

    // a PAX header (which could override the next entry's size) is refused
    let path = crafted(dir.path(), "pax", |entries| {
        entries.insert(
            0,
            Raw {
                path: "PaxHeaders/web.json".to_owned(),
                data: b"19 size=1073741824\n".to_vec(),
                entry_type: tar::EntryType::XHeader,
            },
        );
    });
    match verify(&path) {
        Err(BackupError::UnsupportedEntryType { path, entry_type }) => {
            assert_eq!(path, "PaxHeaders/web.json");
            assert_eq!(entry_type, "entry of type 'x'");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn zeros_after_the_tar_end_are_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.tar.zst");
    write_sample(&good);
    let entries = raw_entries(&good);
    // padding to a tar record, as GNU tar writes it
    let padded = dir.path().join("padded.tar.zst");
    write_raw_with_trailer(&padded, &entries, 10240);
    assert!(verify(&padded).is_ok());
    // a gigabyte of zeros is not decompressed to its end
    let padded = dir.path().join("gigabyte.tar.zst");
    write_raw_with_trailer(&padded, &entries, 1 << 30);
    assert!(
        fs::metadata(&padded).expect("stat").len() < 1 << 20,
        "a small file"
    );
    assert!(matches!(
        verify(&padded),
        Err(BackupError::TrailingData { .. })
    ));
    assert_extract_refused(&padded, dir.path());
}

#[test]
fn normal_archive_reads_back_identically_through_files() {
    // VerifiedArchive keeps objects in files: reading twice gives the same
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("backup.tar.zst");
    write_sample(&path);
    let verified = VerifiedArchive::open(&path).expect("open");
    let first: Vec<_> = verified
        .objects()
        .map(|object| object.expect("object"))
        .collect();
    let second: Vec<_> = verified
        .objects()
        .map(|object| object.expect("object"))
        .collect();
    assert_eq!(first.len(), 8);
    assert_eq!(first, second);
    let debug = format!("{verified:?}");
    assert!(
        debug.contains(WEB) && !debug.contains("replicas"),
        "{debug}"
    );
}

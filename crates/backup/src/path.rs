//! Paths inside an archive: building an object's path from the object, and
//! checking that a path read from an archive is safe and in the layout.

use std::fmt::Write as _;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{BackupError, Result};

/// The path of the manifest, the last entry.
pub const MANIFEST_PATH: &str = "manifest.json";
/// The path of the store copy, when present.
pub const STORE_PATH: &str = "store/pilothouse.db";
/// The directory holding one directory per cluster.
pub const CLUSTERS_DIR: &str = "clusters";
/// The namespace directory of cluster-scoped objects.
pub const CLUSTER_SCOPE_DIR: &str = "_cluster";
/// The group directory of objects of the core API group (`apiVersion: v1`).
pub const CORE_GROUP_DIR: &str = "core";

/// The longest path accepted in an archive, in bytes.
pub(crate) const MAX_PATH: usize = 4096;
/// Past this many bytes a sanitised segment is shortened and given a hash
/// suffix, so that `<segment>.json` stays within the usual 255-byte file
/// name limit.
const MAX_SEGMENT: usize = 200;

/// Where an entry belongs in the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryKind<'a> {
    /// `manifest.json`.
    Manifest,
    /// `store/pilothouse.db`.
    Store,
    /// `clusters/<cluster>/<namespace>/<group>/<kind>/<name>.json`.
    Object {
        /// The sanitised cluster directory.
        cluster_dir: &'a str,
        /// The sanitised kind directory.
        kind_dir: &'a str,
    },
}

/// Makes one path segment out of a name: ASCII letters, digits and `-` are
/// kept, `.` and `_` too except as the first character, every other byte is
/// written `%XX` (upper-case hex). The result never is `.`, `..`, empty
/// (unless the input is), hidden or contains `/`; different inputs give
/// different segments, except for inputs longer than 200 bytes once
/// escaped, which are cut and given a `--<16 hex digits of SHA-256>` suffix.
pub fn sanitize_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, byte) in name.bytes().enumerate() {
        let keep = byte.is_ascii_alphanumeric()
            || byte == b'-'
            || (i > 0 && (byte == b'.' || byte == b'_'));
        let piece_len = if keep { 1 } else { 3 };
        if out.len() + piece_len > MAX_SEGMENT {
            let digest = Sha256::digest(name.as_bytes());
            out.push_str("--");
            out.push_str(&hex(&digest[..8]));
            return out;
        }
        if keep {
            out.push(char::from(byte));
        } else {
            // writing to a String cannot fail
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// The path of `object` of `cluster` in an archive:
/// `clusters/<cluster>/<namespace or _cluster>/<group or core>/<kind>/<name>.json`,
/// every part passed through [`sanitize_segment`]. The API version is not
/// part of the path (an object has one name per group and kind).
///
/// Fails when the object has no string `apiVersion`, `kind` or
/// `metadata.name`, or the cluster name is empty.
pub fn object_path(cluster: &str, object: &Value) -> Result<String> {
    Ok(ObjectLocation::of(cluster, object)?.path)
}

/// An object's path and its kind.
pub(crate) struct ObjectLocation {
    pub(crate) path: String,
    pub(crate) kind: String,
}

impl ObjectLocation {
    pub(crate) fn of(cluster: &str, object: &Value) -> Result<Self> {
        let invalid = |reason: &str| BackupError::InvalidObject {
            reason: reason.to_owned(),
        };
        if cluster.is_empty() {
            return Err(invalid("the cluster name is empty"));
        }
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .filter(|value| !value.is_empty())
        };
        let api_version = text("/apiVersion").ok_or_else(|| invalid("no string `apiVersion`"))?;
        let kind = text("/kind").ok_or_else(|| invalid("no string `kind`"))?;
        let name = text("/metadata/name")
            .ok_or_else(|| invalid(&format!("{kind} has no string `metadata.name`")))?;
        let group = match api_version.rsplit_once('/') {
            Some((group, _)) if !group.is_empty() => sanitize_segment(group),
            Some(_) => {
                return Err(invalid(&format!(
                    "{kind} {name}: invalid apiVersion `{api_version}`"
                )));
            }
            None => CORE_GROUP_DIR.to_owned(),
        };
        let namespace = text("/metadata/namespace")
            .map(sanitize_segment)
            .unwrap_or_else(|| CLUSTER_SCOPE_DIR.to_owned());
        let path = format!(
            "{CLUSTERS_DIR}/{}/{namespace}/{group}/{}/{}.json",
            sanitize_segment(cluster),
            sanitize_segment(kind),
            sanitize_segment(name),
        );
        Ok(Self {
            path,
            kind: kind.to_owned(),
        })
    }
}

/// Checks that `path` is safe (relative, no `.`/`..`/empty components, only
/// `[A-Za-z0-9._%-]` and `/`, no component starting with `.`) and in the
/// format's layout, and says where it belongs.
pub(crate) fn classify(path: &str) -> Result<EntryKind<'_>> {
    let invalid = |reason| BackupError::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() {
        return Err(invalid("empty path"));
    }
    if path.len() > MAX_PATH {
        return Err(invalid("longer than 4096 bytes"));
    }
    if path.starts_with('/') {
        return Err(invalid("absolute path"));
    }
    let components: Vec<&str> = path.split('/').collect();
    for component in &components {
        match *component {
            "" => return Err(invalid("empty component (`//` or a trailing `/`)")),
            "." | ".." => return Err(invalid("`.` or `..` component")),
            _ if component.starts_with('.') => {
                return Err(invalid("component starting with `.`"));
            }
            _ => {}
        }
        let allowed =
            |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'%' | b'-');
        if !component.bytes().all(allowed) {
            return Err(invalid("character outside [A-Za-z0-9._%-]"));
        }
    }
    match components.as_slice() {
        [MANIFEST_PATH] => Ok(EntryKind::Manifest),
        _ if path == STORE_PATH => Ok(EntryKind::Store),
        [
            CLUSTERS_DIR,
            cluster_dir,
            _namespace,
            _group,
            kind_dir,
            file,
        ] if file.len() > ".json".len() && file.ends_with(".json") => Ok(EntryKind::Object {
            cluster_dir,
            kind_dir,
        }),
        _ => Err(invalid(
            "not in the layout (manifest.json, store/pilothouse.db, clusters/<cluster>/<namespace>/<group>/<kind>/<name>.json)",
        )),
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // writing to a String cannot fail
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn segments() {
        fn check(input: &str, expected: &str) {
            assert_eq!(sanitize_segment(input), expected, "input {input:?}");
        }
        check("nginx-7d9f", "nginx-7d9f");
        check("Deployment", "Deployment");
        check("a.b_c", "a.b_c");
        check("..", "%2E.");
        check(".", "%2E");
        check(".hidden", "%2Ehidden");
        check("_cluster", "%5Fcluster");
        check("../../etc/passwd", "%2E.%2F..%2Fetc%2Fpasswd");
        check("system:controller:x", "system%3Acontroller%3Ax");
        check("a/b\\c", "a%2Fb%5Cc");
        check("50%", "50%25");
        check("é", "%C3%A9");
        check("", "");
    }

    #[test]
    fn long_segments_are_cut_with_a_hash() {
        let long = "a".repeat(253);
        let segment = sanitize_segment(&long);
        assert_eq!(segment.len(), MAX_SEGMENT + 2 + 16);
        assert!(segment.starts_with(&"a".repeat(MAX_SEGMENT)));
        assert_ne!(segment, sanitize_segment(&"a".repeat(254)));
        assert!(classify(&format!("clusters/c/_cluster/core/Kind/{segment}.json")).is_ok());
    }

    #[test]
    fn object_paths() {
        fn check(object: Value, expected: &str) {
            assert_eq!(object_path("prod", &object).ok().as_deref(), Some(expected));
        }
        check(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}}),
            "clusters/prod/shop/apps/Deployment/web.json",
        );
        check(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
            "clusters/prod/_cluster/core/Namespace/shop.json",
        );
        check(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "system:x", "namespace": ""}}),
            "clusters/prod/_cluster/rbac.authorization.k8s.io/ClusterRole/system%3Ax.json",
        );
        check(
            json!({"apiVersion": "../v1", "kind": "../K", "metadata": {"name": "../../x", "namespace": ".."}}),
            "clusters/prod/%2E./%2E./%2E.%2FK/%2E.%2F..%2Fx.json",
        );
    }

    #[test]
    fn objects_without_identity_are_refused() {
        for object in [
            json!({"kind": "Pod", "metadata": {"name": "a"}}),
            json!({"apiVersion": "v1", "metadata": {"name": "a"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": ""}}),
            json!({"apiVersion": "/v1", "kind": "Pod", "metadata": {"name": "a"}}),
            json!("not an object"),
        ] {
            assert!(
                matches!(
                    object_path("c", &object),
                    Err(BackupError::InvalidObject { .. })
                ),
                "{object}"
            );
        }
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}});
        assert!(matches!(
            object_path("", &pod),
            Err(BackupError::InvalidObject { .. })
        ));
    }

    #[test]
    fn classification() {
        fn check(path: &str, expected: Result<EntryKind<'_>, &str>) {
            let got = classify(path).map_err(|error| match error {
                BackupError::InvalidPath { reason, .. } => reason,
                other => panic!("unexpected error {other}"),
            });
            assert_eq!(got, expected, "path {path:?}");
        }
        check("manifest.json", Ok(EntryKind::Manifest));
        check("store/pilothouse.db", Ok(EntryKind::Store));
        check(
            "clusters/a/_cluster/core/Namespace/x.json",
            Ok(EntryKind::Object {
                cluster_dir: "a",
                kind_dir: "Namespace",
            }),
        );
        check("", Err("empty path"));
        check("/etc/passwd", Err("absolute path"));
        check("../evil", Err("`.` or `..` component"));
        check("clusters/a/../../../x.json", Err("`.` or `..` component"));
        check(
            "clusters//a",
            Err("empty component (`//` or a trailing `/`)"),
        );
        check("store/", Err("empty component (`//` or a trailing `/`)"));
        check(".hidden", Err("component starting with `.`"));
        check("a\\b", Err("character outside [A-Za-z0-9._%-]"));
        check("C:x", Err("character outside [A-Za-z0-9._%-]"));
        check(
            "store/other.db",
            Err(
                "not in the layout (manifest.json, store/pilothouse.db, clusters/<cluster>/<namespace>/<group>/<kind>/<name>.json)",
            ),
        );
        check("clusters/a/b/c/d/.json", Err("component starting with `.`"));
        check(
            "clusters/a/b/c/d/e.yaml",
            Err(
                "not in the layout (manifest.json, store/pilothouse.db, clusters/<cluster>/<namespace>/<group>/<kind>/<name>.json)",
            ),
        );
    }
}

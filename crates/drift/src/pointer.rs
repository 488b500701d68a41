//! JSON pointers (RFC 6901): the paths of field differences and of ignore rules.

use crate::DriftError;

/// Writes path segments as a JSON pointer: `""` for the whole document,
/// otherwise `/a/b` with `~` written `~0` and `/` written `~1`.
pub(crate) fn encode(segments: &[String]) -> String {
    let mut pointer = String::new();
    for segment in segments {
        pointer.push('/');
        pointer.push_str(&segment.replace('~', "~0").replace('/', "~1"));
    }
    pointer
}

/// Reads a JSON pointer into its segments.
pub(crate) fn decode(pointer: &str) -> Result<Vec<String>, DriftError> {
    let invalid = |reason| DriftError::InvalidPointer {
        pointer: pointer.to_owned(),
        reason,
    };
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(invalid(
            "a pointer starts with `/` (or is empty: the whole object)",
        ));
    };
    rest.split('/')
        .map(|segment| {
            let mut out = String::with_capacity(segment.len());
            let mut chars = segment.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => return Err(invalid("`~` is written `~0` and `/` is written `~1`")),
                }
            }
            Ok(out)
        })
        .collect()
}

/// Whether a pattern (decoded pointer segments, `*` matching any one segment)
/// is the path itself or one of its ancestors.
pub(crate) fn is_prefix(pattern: &[String], path: &[String]) -> bool {
    pattern.len() <= path.len()
        && pattern
            .iter()
            .zip(path)
            .all(|(want, have)| want == "*" || want == have)
}

/// The path of a child: the parent's segments and one more.
pub(crate) fn child(path: &[String], segment: &str) -> Vec<String> {
    let mut out = Vec::with_capacity(path.len() + 1);
    out.extend_from_slice(path);
    out.push(segment.to_owned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pointer: &str, expected: Result<&[&str], ()>) {
        let got = decode(pointer).map_err(|_| ());
        let want = expected.map(|s| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        assert_eq!(got, want, "{pointer}");
        if let Ok(segments) = got {
            assert_eq!(encode(&segments), pointer, "round trip");
        }
    }

    #[test]
    fn pointers_decode_and_encode() {
        check("", Ok(&[]));
        check("/spec/replicas", Ok(&["spec", "replicas"]));
        check(
            "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
            Ok(&[
                "metadata",
                "annotations",
                "kubectl.kubernetes.io/last-applied-configuration",
            ]),
        );
        check("/a~0b/~01", Ok(&["a~b", "~1"]));
        check("/", Ok(&[""]));
        check("spec", Err(()));
        check("/a~2", Err(()));
        check("/a~", Err(()));
    }

    #[test]
    fn patterns_match_paths_and_descendants() {
        let seg = |p: &str| decode(p).expect("pointer");
        for (pattern, path, expected) in [
            ("/spec", "/spec/replicas", true),
            ("/spec/replicas", "/spec/replicas", true),
            ("/spec/replicas", "/spec", false),
            ("/spec/*/image", "/spec/0/image", true),
            ("/spec/*/image", "/spec/0/name", false),
            ("", "/anything", true),
            ("/spec/rep", "/spec/replicas", false),
        ] {
            assert_eq!(
                is_prefix(&seg(pattern), &seg(path)),
                expected,
                "{pattern} {path}"
            );
        }
    }
}

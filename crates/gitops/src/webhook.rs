//! Checks on the webhooks a Git host sends when the desired-state repository
//! changes: the GitHub signature, the GitLab token, and the push they announce.
//! Pure: bytes in, answers out; no Git, no clock, no network.

use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::Deserialize;

/// A push announced by a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// The full ref pushed, e.g. `refs/heads/main`.
    pub git_ref: String,
    /// The commit the ref points to now; `None` when the ref was deleted or
    /// the payload does not say.
    pub after: Option<String>,
}

impl PushEvent {
    /// The branch pushed (`main` for `refs/heads/main`); `None` for a tag or
    /// another kind of ref.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }
}

/// Why a webhook body is not a push.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body is not a JSON object of the expected shape.
    #[error("the webhook body is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// A valid event that is not a push: GitHub's `ping`, or another kind of
    /// GitLab event. The caller decides (a ping is answered with success).
    #[error("the webhook event is not a push{}", .kind.as_ref().map(|kind| format!(" (`{kind}`)")).unwrap_or_default())]
    NotAPush {
        /// GitLab's `object_kind`, or `ping` for GitHub's ping.
        kind: Option<String>,
    },
    /// A push whose ref is not a full ref name.
    #[error("the pushed ref `{0}` is not a full ref name (refs/...)")]
    InvalidRef(String),
}

/// Whether `header` (GitHub's `X-Hub-Signature-256`, `sha256=<hex>`) is the
/// HMAC-SHA256 of `body` under `secret`, compared in constant time. A missing
/// or malformed header, or an empty secret, is `false`.
pub fn verify_github_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Some(tag) = header
        .and_then(|header| header.strip_prefix("sha256="))
        .and_then(decode_hex)
    else {
        return false;
    };
    if tag.len() != 32 {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hmac::verify(&key, body, &tag).is_ok()
}

/// Whether `header` (GitLab's `X-Gitlab-Token`) equals `secret`, compared in
/// constant time (both sides go through an HMAC under a fresh random key, so
/// neither their contents nor their lengths leak through timing). A missing
/// header, or an empty secret, is `false`.
pub fn verify_gitlab_token(secret: &[u8], header: Option<&str>) -> bool {
    let Some(header) = header else {
        return false;
    };
    if secret.is_empty() {
        return false;
    }
    let mut random_key = [0u8; 32];
    if SystemRandom::new().fill(&mut random_key).is_err() {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, &random_key);
    let expected = hmac::sign(&key, secret);
    hmac::verify(&key, header.as_bytes(), expected.as_ref()).is_ok()
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default, rename = "ref")]
    git_ref: Option<String>,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    object_kind: Option<String>,
    #[serde(default)]
    zen: Option<String>,
}

/// Reads a GitHub or GitLab push payload (GitLab's `push` and `tag_push`).
/// GitHub's `ping` and other GitLab events are [`WebhookError::NotAPush`].
/// An all-zero `after` (a deleted ref) reads as `None`.
pub fn parse_push_event(body: &[u8]) -> Result<PushEvent, WebhookError> {
    let payload: Payload = serde_json::from_slice(body).map_err(WebhookError::InvalidJson)?;
    if let Some(kind) = &payload.object_kind
        && kind != "push"
        && kind != "tag_push"
    {
        return Err(WebhookError::NotAPush {
            kind: Some(kind.clone()),
        });
    }
    let Some(git_ref) = payload.git_ref else {
        let kind = match (payload.object_kind, payload.zen) {
            (Some(kind), _) => Some(kind),
            (None, Some(_)) => Some("ping".to_owned()),
            (None, None) => None,
        };
        return Err(WebhookError::NotAPush { kind });
    };
    if !git_ref.starts_with("refs/") {
        return Err(WebhookError::InvalidRef(git_ref));
    }
    let after = payload
        .after
        .filter(|id| !id.is_empty() && !id.bytes().all(|byte| byte == b'0'));
    Ok(PushEvent { git_ref, after })
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let digit = |byte: u8| match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"It's a Secret to Everybody";

    #[test]
    fn github_signatures() {
        // GitHub's documented example, and vectors from
        // `printf BODY | openssl dgst -sha256 -hmac SECRET`
        let hello = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let push = "sha256=6a42699496d8c4fb346af1c930df527931a321e28ada69dbc5ee82f438517fd2";
        let empty_body = "sha256=8bb990c40a7d61cb97597a942125025be50ac8beb74436e3735b98893a7f6620";
        let push_body = br#"{"ref":"refs/heads/main"}"#;
        let upper = hello.to_ascii_uppercase().replace("SHA256=", "sha256=");
        let check = |secret: &[u8], body: &[u8], header: Option<&str>, expected: bool| {
            assert_eq!(
                verify_github_signature(secret, body, header),
                expected,
                "{header:?} over {:?}",
                String::from_utf8_lossy(body)
            );
        };
        check(SECRET, b"Hello, World!", Some(hello), true);
        check(SECRET, b"Hello, World!", Some(&upper), true);
        check(SECRET, push_body, Some(push), true);
        check(b"k", b"", Some(empty_body), true);
        // tampered body, other secret, other header forms
        check(SECRET, b"Hello, World?", Some(hello), false);
        check(b"another secret", b"Hello, World!", Some(hello), false);
        check(SECRET, b"Hello, World!", Some(&hello[7..]), false);
        check(
            SECRET,
            b"Hello, World!",
            Some(&hello.replace("sha256", "sha1")),
            false,
        );
        check(
            SECRET,
            b"Hello, World!",
            Some(&hello[..hello.len() - 2]),
            false,
        );
        check(SECRET, b"Hello, World!", Some(&format!("{hello}00")), false);
        check(
            SECRET,
            b"Hello, World!",
            Some(&hello.replace('7', "g")),
            false,
        );
        check(SECRET, b"Hello, World!", Some("sha256="), false);
        check(SECRET, b"Hello, World!", None, false);
        check(b"", b"Hello, World!", Some(hello), false);
    }

    #[test]
    fn gitlab_tokens() {
        for (secret, header, expected) in [
            (&b"s3cret-token"[..], Some("s3cret-token"), true),
            (b"s3cret-token", Some("s3cret-toke"), false),
            (b"s3cret-token", Some("s3cret-token "), false),
            (b"s3cret-token", Some("S3CRET-TOKEN"), false),
            (b"s3cret-token", Some(""), false),
            (b"s3cret-token", None, false),
            (b"", Some(""), false),
            (b"", None, false),
        ] {
            assert_eq!(verify_gitlab_token(secret, header), expected, "{header:?}");
        }
    }

    fn push(git_ref: &str, after: Option<&str>) -> PushEvent {
        PushEvent {
            git_ref: git_ref.to_owned(),
            after: after.map(str::to_owned),
        }
    }

    #[test]
    fn push_events() {
        let id = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";
        for (body, expected) in [
            // GitHub push (trimmed)
            (
                format!(
                    r#"{{"ref":"refs/heads/main","before":"{}","after":"{id}","repository":{{"full_name":"acme/desired"}},"pusher":{{"name":"ada"}}}}"#,
                    "0".repeat(40)
                ),
                push("refs/heads/main", Some(id)),
            ),
            // GitLab push (trimmed)
            (
                format!(
                    r#"{{"object_kind":"push","event_name":"push","ref":"refs/heads/release/1","after":"{id}","checkout_sha":"{id}","project":{{"path_with_namespace":"acme/desired"}}}}"#
                ),
                push("refs/heads/release/1", Some(id)),
            ),
            // GitLab tag push
            (
                format!(r#"{{"object_kind":"tag_push","ref":"refs/tags/v1","after":"{id}"}}"#),
                push("refs/tags/v1", Some(id)),
            ),
            // a deleted branch
            (
                format!(
                    r#"{{"ref":"refs/heads/old","after":"{}","deleted":true}}"#,
                    "0".repeat(40)
                ),
                push("refs/heads/old", None),
            ),
        ] {
            assert_eq!(
                parse_push_event(body.as_bytes()).unwrap(),
                expected,
                "{body}"
            );
        }
        assert_eq!(push("refs/heads/main", None).branch(), Some("main"));
        assert_eq!(
            push("refs/heads/release/1", None).branch(),
            Some("release/1")
        );
        assert_eq!(push("refs/tags/v1", None).branch(), None);
    }

    #[test]
    fn other_bodies_are_not_pushes() {
        let not_a_push = |body: &str| match parse_push_event(body.as_bytes()) {
            Err(WebhookError::NotAPush { kind }) => kind,
            other => panic!("{body}: {other:?}"),
        };
        assert_eq!(
            not_a_push(r#"{"zen":"Keep it logically awesome.","hook_id":1,"hook":{}}"#),
            Some("ping".to_owned())
        );
        assert_eq!(
            not_a_push(r#"{"object_kind":"merge_request","ref":"refs/heads/x"}"#),
            Some("merge_request".to_owned())
        );
        assert_eq!(not_a_push("{}"), None);
        assert!(matches!(
            parse_push_event(b"not json"),
            Err(WebhookError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_push_event(b"[1,2]"),
            Err(WebhookError::InvalidJson(_))
        ));
        assert!(matches!(
            parse_push_event(br#"{"ref":"main"}"#),
            Err(WebhookError::InvalidRef(r)) if r == "main"
        ));
        assert!(
            parse_push_event(b"{}")
                .unwrap_err()
                .to_string()
                .contains("not a push")
        );
    }
}

//! The `known_hosts` lines pinned for an SSH remote, and the check of the host
//! key a server presents against them (OpenSSH's format: `host[,host2] type
//! base64-key [comment]`, `[host]:port` for other ports than 22, hashed names
//! `|1|salt|hash`, `*`/`?` wildcards, `!` negation and the `@revoked` marker).

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use ring::{digest, hmac};

/// The parsed lines of a `known_hosts` text.
#[derive(Debug, Clone, Default)]
pub(crate) struct KnownHosts {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    marker: Marker,
    patterns: Vec<Pattern>,
    key_type: String,
    key: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
enum Pattern {
    Plain { negated: bool, glob: String },
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

/// What `known_hosts` says about the key a server presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A line for this host lists exactly this key.
    Trusted,
    /// No line is about this host.
    UnknownHost,
    /// Lines for this host list other keys (their types).
    Mismatch(Vec<String>),
    /// The key is marked `@revoked`.
    Revoked,
}

impl KnownHosts {
    /// Parses `text`; a malformed line is an error naming its number, so a
    /// pasted fragment does not silently pin nothing.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut entries = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let entry =
                parse_line(line).map_err(|reason| format!("line {}: {reason}", index + 1))?;
            entries.push(entry);
        }
        Ok(Self { entries })
    }

    /// Whether any line (other than `@revoked` and `@cert-authority`) is about
    /// `host` on `port`.
    pub(crate) fn knows_host(&self, host: &str, port: u16) -> bool {
        let name = host_name(host, port);
        self.entries
            .iter()
            .any(|entry| entry.marker == Marker::None && entry.matches(&name))
    }

    /// Checks the raw key blob (SSH wire format, as in the base64 of a line)
    /// presented by `host` on `port`.
    pub(crate) fn check(&self, host: &str, port: u16, key: &[u8]) -> Verdict {
        if self
            .entries
            .iter()
            .any(|entry| entry.marker == Marker::Revoked && entry.key == key)
        {
            return Verdict::Revoked;
        }
        let name = host_name(host, port);
        let for_host: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|entry| entry.marker == Marker::None && entry.matches(&name))
            .collect();
        if for_host.iter().any(|entry| entry.key == key) {
            Verdict::Trusted
        } else if for_host.is_empty() {
            Verdict::UnknownHost
        } else {
            let mut types: Vec<String> = for_host.iter().map(|e| e.key_type.clone()).collect();
            types.dedup();
            Verdict::Mismatch(types)
        }
    }
}

/// How `known_hosts` names `host` on `port`: the bare name on 22,
/// `[host]:port` otherwise; lowercase.
pub(crate) fn host_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    match port {
        22 => host,
        _ => format!("[{host}]:{port}"),
    }
}

/// OpenSSH's fingerprint of a key blob: `SHA256:` and unpadded base64.
pub(crate) fn fingerprint(key: &[u8]) -> String {
    let hash = digest::digest(&digest::SHA256, key);
    format!("SHA256:{}", STANDARD_NO_PAD.encode(hash.as_ref()))
}

fn parse_line(line: &str) -> Result<Entry, String> {
    let mut fields = line.split_whitespace();
    let mut first = fields.next().ok_or("empty line")?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        other if other.starts_with('@') => return Err(format!("unknown marker `{other}`")),
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next().ok_or("no host names after the marker")?;
    }
    let patterns = first
        .split(',')
        .map(parse_pattern)
        .collect::<Result<Vec<_>, _>>()?;
    let key_type = fields
        .next()
        .ok_or("no key type (expected `host type base64-key`)")?;
    let encoded = fields
        .next()
        .ok_or("no key (expected `host type base64-key`)")?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| "the key is not valid base64".to_owned())?;
    // the blob starts with its own type: a line whose type and blob disagree
    // was mangled
    if blob_type(&key) != Some(key_type.as_bytes()) {
        return Err(format!("the key is not a `{key_type}` key"));
    }
    Ok(Entry {
        marker,
        patterns,
        key_type: key_type.to_owned(),
        key,
    })
}

fn blob_type(blob: &[u8]) -> Option<&[u8]> {
    let length = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    blob.get(4..4 + length)
}

fn parse_pattern(pattern: &str) -> Result<Pattern, String> {
    if let Some(hashed) = pattern.strip_prefix("|1|") {
        let (salt, hash) = hashed
            .split_once('|')
            .ok_or("a hashed host name is `|1|salt|hash`")?;
        let decode = |text: &str| {
            STANDARD
                .decode(text)
                .map_err(|_| "a hashed host name is not valid base64".to_owned())
        };
        return Ok(Pattern::Hashed {
            salt: decode(salt)?,
            hash: decode(hash)?,
        });
    }
    let (negated, glob) = match pattern.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    if glob.is_empty() {
        return Err("an empty host name".to_owned());
    }
    Ok(Pattern::Plain {
        negated,
        glob: glob.to_ascii_lowercase(),
    })
}

impl Entry {
    fn matches(&self, name: &str) -> bool {
        let mut matched = false;
        for pattern in &self.patterns {
            match pattern {
                Pattern::Plain { negated, glob } => {
                    if glob_matches(glob.as_bytes(), name.as_bytes()) {
                        if *negated {
                            return false;
                        }
                        matched = true;
                    }
                }
                Pattern::Hashed { salt, hash } => {
                    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
                    if hmac::verify(&key, name.as_bytes(), hash).is_ok() {
                        matched = true;
                    }
                }
            }
        }
        matched
    }
}

/// `*` matches any run of characters, `?` exactly one.
fn glob_matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    // two ed25519 public keys (blobs of 51 bytes: type string and 32-byte key)
    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIETYjLvEN+D0Mgky27E7mimF+7dEYWY/qLV1sMzt0Sa6";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIMdemF/R2h3twN29IKdrGAQAvq0d80Pzb273K5MpZUqw";

    fn blob(encoded: &str) -> Vec<u8> {
        STANDARD.decode(encoded).unwrap()
    }

    fn check(known_hosts: &str, host: &str, port: u16, key: &str, expected: Verdict) {
        let parsed = KnownHosts::parse(known_hosts).unwrap();
        assert_eq!(
            parsed.check(host, port, &blob(key)),
            expected,
            "{known_hosts:?} for {host}:{port}"
        );
    }

    #[test]
    fn host_keys_are_checked_against_the_lines_for_the_host() {
        use Verdict::*;
        let mismatch = || Mismatch(vec!["ssh-ed25519".to_owned()]);
        let a = format!("git.example.com ssh-ed25519 {KEY_A}");
        check(&a, "git.example.com", 22, KEY_A, Trusted);
        check(&a, "GIT.example.com", 22, KEY_A, Trusted);
        check(&a, "git.example.com", 22, KEY_B, mismatch());
        check(&a, "other.example.com", 22, KEY_A, UnknownHost);
        // a line without a port is only about port 22
        check(&a, "git.example.com", 2222, KEY_A, UnknownHost);
        let ported = format!("[127.0.0.1]:2222 ssh-ed25519 {KEY_A} a comment");
        check(&ported, "127.0.0.1", 2222, KEY_A, Trusted);
        check(&ported, "127.0.0.1", 22, KEY_A, UnknownHost);
        let several = format!(
            "# comment\n\nold.example.com,git.example.com ssh-ed25519 {KEY_B}\n\
             git.example.com ssh-ed25519 {KEY_A}\n"
        );
        check(&several, "git.example.com", 22, KEY_A, Trusted);
        check(&several, "old.example.com", 22, KEY_A, mismatch());
        let wildcard = format!("*.example.com,!evil.example.com ssh-ed25519 {KEY_A}");
        check(&wildcard, "git.example.com", 22, KEY_A, Trusted);
        check(&wildcard, "evil.example.com", 22, KEY_A, UnknownHost);
        check(&wildcard, "example.com", 22, KEY_A, UnknownHost);
        let revoked =
            format!("@revoked * ssh-ed25519 {KEY_A}\ngit.example.com ssh-ed25519 {KEY_A}");
        check(&revoked, "git.example.com", 22, KEY_A, Revoked);
        // a CA line pins no host key by itself
        let ca = format!("@cert-authority git.example.com ssh-ed25519 {KEY_A}");
        check(&ca, "git.example.com", 22, KEY_A, UnknownHost);
    }

    #[test]
    fn hashed_host_names_match() {
        // "git.example.com" hashed by `ssh-keygen -H`; "[127.0.0.1]:2222" by
        // python3's hmac (sha1) with the salt "saltsaltsaltsaltsalt"
        let hashed = format!(
            "|1|umXKWa4UEwR2XptU1D5afcXaQGU=|5y/3VD3oASlpjwgn+ef5ongEtfw= ssh-ed25519 {KEY_A}\n\
             |1|c2FsdHNhbHRzYWx0c2FsdHNhbHQ=|iebyi1cfsh9nkBkSyjb/Fnl3o2M= ssh-ed25519 {KEY_B}"
        );
        check(&hashed, "git.example.com", 22, KEY_A, Verdict::Trusted);
        check(&hashed, "127.0.0.1", 2222, KEY_B, Verdict::Trusted);
        check(&hashed, "127.0.0.1", 22, KEY_B, Verdict::UnknownHost);
    }

    #[test]
    fn malformed_lines_are_errors_with_their_number() {
        for (text, expected) in [
            ("git.example.com", "line 1: no key type"),
            ("git.example.com ssh-ed25519", "line 1: no key"),
            (
                "\ngit.example.com ssh-ed25519 !!!",
                "line 2: the key is not valid base64",
            ),
            (
                &format!("git.example.com ssh-rsa {KEY_A}") as &str,
                "line 1: the key is not a `ssh-rsa` key",
            ),
            (
                "@pinned git.example.com",
                "line 1: unknown marker `@pinned`",
            ),
        ] {
            let error = KnownHosts::parse(text).unwrap_err();
            assert!(error.starts_with(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn globs() {
        for (pattern, name, expected) in [
            ("*", "anything", true),
            ("git.example.com", "git.example.com", true),
            ("git.example.co", "git.example.com", false),
            ("*.example.com", "a.b.example.com", true),
            ("git?.example.com", "git1.example.com", true),
            ("git?.example.com", "git.example.com", false),
            ("[10.0.0.?]:*", "[10.0.0.7]:2222", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ] {
            assert_eq!(
                glob_matches(pattern.as_bytes(), name.as_bytes()),
                expected,
                "{pattern} ~ {name}"
            );
        }
    }

    #[test]
    fn fingerprints_are_openssh_style() {
        // `ssh-keygen -lf` on a file holding the KEY_A line
        assert_eq!(
            fingerprint(&blob(KEY_A)),
            "SHA256:jkmShjZy58Qtr425NR8lBt57rTBgLFSdRzNOUkBEpH0"
        );
    }
}

//! Encryption of secrets at rest: the master key and sealed secrets.
//!
//! Secrets (cluster kubeconfigs) are sealed with ChaCha20-Poly1305 under a
//! 256-bit master key that lives in a file or in the environment, never in
//! the database. Each secret gets a fresh random 96-bit nonce, and a context
//! string (e.g. `cluster:prod-eu`) is bound as associated data, so a
//! ciphertext copied into another row does not decrypt there.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::StoreError;

/// The environment variable the caller reads the master key from.
pub const MASTER_KEY_ENV: &str = "PILOTHOUSE_MASTER_KEY";

/// Length of the master key in bytes.
const KEY_LEN: usize = 32;

/// Prefix of the associated data, so these ciphertexts cannot be confused
/// with any other use of the same key.
const AAD_PREFIX: &[u8] = b"pilothouse-secret-v1\0";

/// The master key for secrets at rest: 32 random bytes, never stored in the
/// database. Its `Debug` output shows only the key id.
#[derive(Clone)]
pub struct MasterKey {
    key: LessSafeKey,
    key_id: String,
}

impl MasterKey {
    /// Loads the key from `env` (the value of `PILOTHOUSE_MASTER_KEY`, base64)
    /// if it is `Some`, else from the file at `path`, creating the file
    /// (mode 0600, missing parent directories 0700) with a fresh random key
    /// when it does not exist. A key file that group or others can access is
    /// refused.
    pub fn load_or_create(path: &Path, env: Option<&str>) -> Result<MasterKey, StoreError> {
        if let Some(encoded) = env {
            return MasterKey::from_base64(encoded, MASTER_KEY_ENV);
        }
        match fs::File::open(path) {
            Ok(file) => MasterKey::read_file(path, file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => MasterKey::create_file(path),
            Err(source) => Err(StoreError::KeyFile {
                action: "read",
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// A fresh random key that lives only in memory (for tests and tools).
    pub fn generate() -> Result<MasterKey, StoreError> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| StoreError::Crypto("the system random number generator failed"))?;
        MasterKey::from_bytes(&bytes)
    }

    /// The key's identifier: the first 16 hex digits of
    /// SHA-256("pilothouse-master-key-id\0" ‖ key). It names the key in
    /// sealed secrets and errors (for rotation) without revealing it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Encrypts `plaintext`, binding `context` (e.g. `cluster:NAME`) as
    /// associated data: the result opens only with this key and this context.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Result<SealedSecret, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| StoreError::Crypto("the system random number generator failed"))?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                aad(context),
                &mut in_out,
            )
            .map_err(|_| StoreError::Crypto("sealing failed"))?;
        Ok(SealedSecret {
            key_id: self.key_id.clone(),
            nonce: nonce.to_vec(),
            ciphertext: in_out,
        })
    }

    /// Decrypts a secret sealed by [`MasterKey::seal`] with the same
    /// `context`. A secret sealed with another key is refused with
    /// [`StoreError::WrongKey`] naming both key ids; a modified secret or a
    /// wrong context with [`StoreError::Decrypt`].
    pub fn open(&self, sealed: &SealedSecret, context: &str) -> Result<Vec<u8>, StoreError> {
        if sealed.key_id != self.key_id {
            return Err(StoreError::WrongKey {
                sealed_with: sealed.key_id.clone(),
                loaded: self.key_id.clone(),
            });
        }
        let decrypt_error = || StoreError::Decrypt {
            key_id: self.key_id.clone(),
            context: context.to_owned(),
        };
        let nonce = Nonce::try_assume_unique_for_key(&sealed.nonce).map_err(|_| decrypt_error())?;
        let mut in_out = sealed.ciphertext.clone();
        let plaintext = self
            .key
            .open_in_place(nonce, aad(context), &mut in_out)
            .map_err(|_| decrypt_error())?;
        Ok(plaintext.to_vec())
    }

    fn from_bytes(bytes: &[u8]) -> Result<MasterKey, StoreError> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .map_err(|_| StoreError::Crypto("the key was refused by the cipher"))?;
        let digest = Sha256::new()
            .chain_update(b"pilothouse-master-key-id\0")
            .chain_update(bytes)
            .finalize();
        Ok(MasterKey {
            key: LessSafeKey::new(unbound),
            key_id: hex(&digest[..8]),
        })
    }

    fn from_base64(encoded: &str, origin: &str) -> Result<MasterKey, StoreError> {
        let invalid = |reason| StoreError::InvalidKey {
            origin: origin.to_owned(),
            reason,
        };
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| invalid("it is not valid base64"))?;
        if bytes.len() != KEY_LEN {
            return Err(invalid("it does not decode to 32 bytes"));
        }
        MasterKey::from_bytes(&bytes)
    }

    fn read_file(path: &Path, mut file: fs::File) -> Result<MasterKey, StoreError> {
        let read_error = |source| StoreError::KeyFile {
            action: "read",
            path: path.to_owned(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = file.metadata().map_err(read_error)?.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(StoreError::KeyFilePermissions {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        let mut encoded = String::new();
        io::Read::read_to_string(&mut file, &mut encoded).map_err(read_error)?;
        MasterKey::from_base64(&encoded, &path.display().to_string())
    }

    fn create_file(path: &Path) -> Result<MasterKey, StoreError> {
        let create_error = |source| StoreError::KeyFile {
            action: "create",
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            let mut builder = fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(|source| StoreError::KeyFile {
                action: "create the directory of",
                path: path.to_owned(),
                source,
            })?;
        }

        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| StoreError::Crypto("the system random number generator failed"))?;

        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = match options.open(path) {
            Ok(file) => file,
            // Another process created it in the meantime: use theirs.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let file = fs::File::open(path).map_err(create_error)?;
                return MasterKey::read_file(path, file);
            }
            Err(source) => return Err(create_error(source)),
        };
        let mut encoded = STANDARD.encode(bytes);
        encoded.push('\n');
        file.write_all(encoded.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| StoreError::KeyFile {
                action: "write",
                path: path.to_owned(),
                source,
            })?;
        MasterKey::from_bytes(&bytes)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A secret encrypted with a [`MasterKey`]: what the database stores.
/// Its `Debug` output shows the key id and lengths, never the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    /// Id of the master key that sealed it ([`MasterKey::key_id`]).
    pub key_id: String,
    /// The random 96-bit nonce.
    pub nonce: Vec<u8>,
    /// The ciphertext followed by the 16-byte authentication tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedSecret")
            .field("key_id", &self.key_id)
            .field("nonce", &format_args!("<{} bytes>", self.nonce.len()))
            .field(
                "ciphertext",
                &format_args!("<{} bytes, redacted>", self.ciphertext.len()),
            )
            .finish()
    }
}

fn aad(context: &str) -> Aad<Vec<u8>> {
    let mut data = Vec::with_capacity(AAD_PREFIX.len() + context.len());
    data.extend_from_slice(AAD_PREFIX);
    data.extend_from_slice(context.as_bytes());
    Aad::from(data)
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn key_in(dir: &Path) -> MasterKey {
        MasterKey::load_or_create(&dir.join("keys/master.key"), None).unwrap()
    }

    #[test]
    fn key_file_is_created_owner_only_and_reloads_to_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/master.key");
        let key = MasterKey::load_or_create(&path, None).unwrap();

        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(key.key_id().len(), 16);
        assert!(key.key_id().bytes().all(|b| b.is_ascii_hexdigit()));

        let again = MasterKey::load_or_create(&path, None).unwrap();
        assert_eq!(again.key_id(), key.key_id());
        let sealed = key.seal(b"kubeconfig", "cluster:a").unwrap();
        assert_eq!(again.open(&sealed, "cluster:a").unwrap(), b"kubeconfig");
    }

    #[test]
    fn key_from_the_environment_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let encoded = STANDARD.encode([7u8; 32]);
        let key = MasterKey::load_or_create(&path, Some(&encoded)).unwrap();
        assert!(
            !path.exists(),
            "no file is created when the key comes from the environment"
        );
        let same = MasterKey::load_or_create(&path, Some(&format!("{encoded}\n"))).unwrap();
        assert_eq!(key.key_id(), same.key_id());

        let err = MasterKey::load_or_create(&path, Some("not base64!")).unwrap_err();
        assert!(
            matches!(&err, StoreError::InvalidKey { origin, .. } if origin == MASTER_KEY_ENV),
            "{err:?}"
        );
        let short = STANDARD.encode([7u8; 16]);
        let err = MasterKey::load_or_create(&path, Some(&short)).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidKey { reason, .. } if reason.contains("32 bytes"))
        );
    }

    #[test]
    fn group_readable_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::load_or_create(&path, None).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();

        let err = MasterKey::load_or_create(&path, None).unwrap_err();
        assert!(
            matches!(&err, StoreError::KeyFilePermissions { mode: 0o640, .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("chmod 600"), "{message}");
        assert!(message.contains("0640"), "{message}");
    }

    #[test]
    fn seal_and_open_round_trip_bound_to_the_context() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal(b"SECRET-TOKEN-123", "cluster:prod").unwrap();
        assert_eq!(sealed.key_id, key.key_id());
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        assert!(!contains(&sealed.ciphertext, b"SECRET-TOKEN-123"));
        assert_eq!(
            key.open(&sealed, "cluster:prod").unwrap(),
            b"SECRET-TOKEN-123"
        );

        // Two seals of the same plaintext differ (fresh nonce).
        let again = key.seal(b"SECRET-TOKEN-123", "cluster:prod").unwrap();
        assert_ne!(again.nonce, sealed.nonce);
        assert_ne!(again.ciphertext, sealed.ciphertext);

        let err = key.open(&sealed, "cluster:staging").unwrap_err();
        assert!(
            matches!(&err, StoreError::Decrypt { context, .. } if context == "cluster:staging"),
            "{err:?}"
        );
    }

    #[test]
    fn tampered_secret_is_refused() {
        let key = MasterKey::generate().unwrap();
        let sealed = key.seal(b"kubeconfig", "cluster:a").unwrap();
        for i in 0..sealed.ciphertext.len() {
            let mut tampered = sealed.clone();
            tampered.ciphertext[i] ^= 0x01;
            let err = key.open(&tampered, "cluster:a").unwrap_err();
            assert!(
                matches!(err, StoreError::Decrypt { .. }),
                "byte {i}: {err:?}"
            );
        }
        let mut tampered = sealed.clone();
        tampered.nonce[0] ^= 0x80;
        assert!(matches!(
            key.open(&tampered, "cluster:a"),
            Err(StoreError::Decrypt { .. })
        ));
        let mut truncated = sealed;
        truncated.nonce.pop();
        assert!(matches!(
            key.open(&truncated, "cluster:a"),
            Err(StoreError::Decrypt { .. })
        ));
    }

    #[test]
    fn secret_sealed_with_another_key_names_both_key_ids() {
        let dir_a = tempfile::tempdir().unwrap();
        let dir_b = tempfile::tempdir().unwrap();
        let a = key_in(dir_a.path());
        let b = key_in(dir_b.path());
        assert_ne!(a.key_id(), b.key_id());

        let sealed = a.seal(b"kubeconfig", "cluster:x").unwrap();
        let err = b.open(&sealed, "cluster:x").unwrap_err();
        assert!(
            matches!(&err, StoreError::WrongKey { sealed_with, loaded }
                if sealed_with == a.key_id() && loaded == b.key_id()),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(a.key_id()) && message.contains(b.key_id()),
            "{message}"
        );
    }

    #[test]
    fn debug_output_shows_no_key_or_ciphertext_bytes() {
        let encoded = STANDARD.encode([0xabu8; 32]);
        let key = MasterKey::load_or_create(Path::new("/nonexistent"), Some(&encoded)).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains(key.key_id()), "{debug}");
        assert!(!debug.contains(&encoded), "{debug}");
        assert!(!debug.contains(&hex(&[0xab; 32])), "{debug}");
        assert!(!debug.contains("171, 171"), "{debug}");

        let sealed = key.seal(b"SECRET-TOKEN-123", "cluster:a").unwrap();
        let debug = format!("{sealed:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        let bytes_listed = format!("{:?}", &sealed.ciphertext[..4]);
        assert!(
            !debug.contains(bytes_listed.trim_end_matches(']')),
            "{debug}"
        );
        assert!(!debug.contains(&hex(&sealed.ciphertext[..4])), "{debug}");
        assert!(
            !debug.contains(&STANDARD.encode(&sealed.ciphertext)[..8]),
            "{debug}"
        );
        assert!(debug.contains("redacted"), "{debug}");
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }
}

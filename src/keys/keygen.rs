//! `usher keygen`: makes an ES256 key pair for an operator. The private key goes to a file that
//! is mode 0600 from the moment it exists; usher itself keeps only the public half.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use serde_json::Value;

use super::KeyAlg;
use super::material::{es256_jwk_members, finish_public_jwk};

/// Longest kid `keygen` accepts (it becomes a file name).
pub const MAX_KEYGEN_KID_CHARS: usize = 128;

/// Why a key pair could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    /// The kid is not 1..=128 chars of `[A-Za-z0-9._-]`.
    #[error(
        "kid must be 1..={MAX_KEYGEN_KID_CHARS} characters of A-Z a-z 0-9 . _ - and not . or .."
    )]
    BadKid,
    /// Only ES256 key pairs are generated.
    #[error("keygen makes ES256 keys only, not {0}")]
    UnsupportedAlg(KeyAlg),
    /// A target file exists already; nothing was written.
    #[error("{} exists already; refusing to overwrite it", .0.display())]
    Exists(PathBuf),
    /// Encoding the key failed (not expected).
    #[error("could not encode the key: {0}")]
    Encode(String),
    /// The file system refused.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// A freshly generated key pair. `Debug` never prints the private key.
pub struct Es256KeyPair {
    /// PKCS#8 PEM (`BEGIN PRIVATE KEY`); zeroized on drop.
    pub private_pem: p256::elliptic_curve::zeroize::Zeroizing<String>,
    /// SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`).
    pub public_pem: String,
    /// The public JWK with `kid`, `alg` and `use`.
    pub public_jwk: Value,
}

impl std::fmt::Debug for Es256KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Es256KeyPair")
            .field("public_jwk", &self.public_jwk)
            .finish_non_exhaustive()
    }
}

/// What [`write_key_files`] wrote.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// `DIR/K.key.pem`, mode 0600.
    pub private_key: PathBuf,
    /// `DIR/K.pub.pem`.
    pub public_key: PathBuf,
    /// `DIR/K.jwk.json`.
    pub jwk: PathBuf,
    /// The public JWK written to `jwk`.
    pub public_jwk: Value,
}

/// Checks that a kid is 1..=128 chars of `[A-Za-z0-9._-]` (so it is a safe file name).
pub fn validate_kid(kid: &str) -> Result<(), KeygenError> {
    let charset_ok = kid
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if kid.is_empty()
        || kid.len() > MAX_KEYGEN_KID_CHARS
        || !charset_ok
        || kid == "."
        || kid == ".."
    {
        return Err(KeygenError::BadKid);
    }
    Ok(())
}

/// Generates an ES256 key pair from the operating system's random source.
pub fn generate_es256(kid: &str) -> Result<Es256KeyPair, KeygenError> {
    let secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let private_pem = secret
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeygenError::Encode(e.to_string()))?;
    let public = secret.public_key();
    let public_pem = public
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeygenError::Encode(e.to_string()))?;
    let mut jwk = es256_jwk_members(&public);
    finish_public_jwk(&mut jwk, kid, KeyAlg::Es256);
    Ok(Es256KeyPair {
        private_pem,
        public_pem,
        public_jwk: Value::Object(jwk),
    })
}

/// Generates a key pair and writes `DIR/K.key.pem` (mode 0600), `DIR/K.pub.pem` and
/// `DIR/K.jwk.json`, creating `dir` (mode 0700) if missing. Refuses to overwrite any of them.
pub fn write_key_files(dir: &Path, kid: &str, alg: KeyAlg) -> Result<KeyFiles, KeygenError> {
    validate_kid(kid)?;
    if alg != KeyAlg::Es256 {
        return Err(KeygenError::UnsupportedAlg(alg));
    }
    let files = KeyFiles {
        private_key: dir.join(format!("{kid}.key.pem")),
        public_key: dir.join(format!("{kid}.pub.pem")),
        jwk: dir.join(format!("{kid}.jwk.json")),
        public_jwk: Value::Null,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| KeygenError::Io {
            path: dir.to_owned(),
            source,
        })?;
    for path in [&files.private_key, &files.public_key, &files.jwk] {
        if path.symlink_metadata().is_ok() {
            return Err(KeygenError::Exists(path.clone()));
        }
    }
    let pair = generate_es256(kid)?;
    write_new(&files.private_key, 0o600, pair.private_pem.as_bytes())?;
    write_new(&files.public_key, 0o644, pair.public_pem.as_bytes())?;
    let mut jwk_text = serde_json::to_string_pretty(&pair.public_jwk)
        .map_err(|e| KeygenError::Encode(e.to_string()))?;
    jwk_text.push('\n');
    write_new(&files.jwk, 0o644, jwk_text.as_bytes())?;
    Ok(KeyFiles {
        public_jwk: pair.public_jwk,
        ..files
    })
}

/// Creates a file that must not exist yet, with `mode` from the start (umask may only narrow it).
fn write_new(path: &Path, mode: u32, contents: &[u8]) -> Result<(), KeygenError> {
    let io_err = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            KeygenError::Exists(path.to_owned())
        } else {
            KeygenError::Io {
                path: path.to_owned(),
                source,
            }
        }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err)?;
    file.write_all(contents).map_err(io_err)?;
    file.sync_all().map_err(io_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn kid_must_be_a_safe_file_name() {
        for good in ["k1", "tenant-1.key_2", &"a".repeat(128)] {
            assert!(validate_kid(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "k 1",
            "k\n",
            "ké",
            &"a".repeat(129),
        ] {
            assert!(validate_kid(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keygen_writes_private_key_with_mode_0600_and_public_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new/keys");
        let files = write_key_files(&out, "k1", KeyAlg::Es256).unwrap();
        let mode = std::fs::metadata(&files.private_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let private = std::fs::read_to_string(&files.private_key).unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
        let public = std::fs::read_to_string(&files.public_key).unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
        let jwk: Value =
            serde_json::from_str(&std::fs::read_to_string(&files.jwk).unwrap()).unwrap();
        assert_eq!(jwk, files.public_jwk);
        assert_eq!(jwk["kid"], "k1");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["crv"], "P-256");
        assert!(jwk.get("d").is_none());
    }

    #[test]
    fn keygen_refuses_to_overwrite_an_existing_key() {
        let dir = tempfile::tempdir().unwrap();
        write_key_files(dir.path(), "k1", KeyAlg::Es256).unwrap();
        let before = std::fs::read(dir.path().join("k1.key.pem")).unwrap();
        let err = write_key_files(dir.path(), "k1", KeyAlg::Es256).unwrap_err();
        assert!(matches!(err, KeygenError::Exists(_)), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join("k1.key.pem")).unwrap(),
            before
        );
    }

    #[test]
    fn keygen_refuses_algorithms_other_than_es256() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_key_files(dir.path(), "k1", KeyAlg::Rs256).unwrap_err();
        assert!(matches!(err, KeygenError::UnsupportedAlg(KeyAlg::Rs256)));
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }

    #[test]
    fn generated_key_pair_debug_hides_the_private_key() {
        let pair = generate_es256("k1").unwrap();
        assert!(!format!("{pair:?}").contains("PRIVATE"));
    }
}

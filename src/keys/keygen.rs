//! `usher keygen`: makes a key for an operator, of any algorithm usher verifies. A private key or a
//! shared secret goes to a file that is mode 0600 from the moment it exists; usher itself keeps
//! only the public half (or, for HS*, the secret the control plane sets).

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::elliptic_curve::zeroize::Zeroizing;
use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use serde_json::Value;

use super::material::{self, KeyMaterial, es256_jwk_members, finish_public_jwk};
use super::{KeyAlg, KeyFamily, KeySource};

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
    /// `--bits` names a size usher does not make, or is given for a key that is not RSA.
    #[error("RSA keys are 2048, 3072 or 4096 bits; --bits goes with RS* and PS* only")]
    BadBits,
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

/// RSA key sizes `keygen` makes, in bits; the first is the default.
pub const RSA_BITS: [u32; 3] = [2048, 3072, 4096];

/// What [`write_key_files`] wrote.
#[derive(Debug, Clone)]
pub struct KeyFiles {
    /// `DIR/K.key.pem` (a private key), or for HS* `DIR/K.secret` (the secret's raw bytes, as
    /// `usher sign --key` and the config's `secret_file` read it); mode 0600.
    pub private_key: PathBuf,
    /// `DIR/K.pub.pem`; `None` for HS*, which has no public half.
    pub public_key: Option<PathBuf>,
    /// `DIR/K.jwk.json`: the public JWK, or for HS* the `oct` JWK with the secret (mode 0600),
    /// which is what `PUT /v1/keys/{kid}` takes.
    pub jwk: PathBuf,
    /// What may be printed of the JWK: the public JWK, or for HS* the `oct` JWK with `k` masked.
    pub shown_jwk: Value,
}

/// A freshly generated key of any algorithm. `Debug` never prints the private part.
pub struct GeneratedKey {
    pub alg: KeyAlg,
    /// A PKCS#8 PEM private key, or for HS* the raw secret; zeroized on drop.
    pub private: Zeroizing<Vec<u8>>,
    /// The SubjectPublicKeyInfo PEM; `None` for HS*.
    pub public_pem: Option<String>,
    /// The public JWK, or for HS* the `oct` JWK holding the secret (zeroized on drop).
    pub jwk: Zeroizing<String>,
    /// The JWK as it may be shown (HS*: `k` masked).
    pub shown_jwk: Value,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("alg", &self.alg)
            .field("shown_jwk", &self.shown_jwk)
            .finish_non_exhaustive()
    }
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

/// Generates a key of `alg` (`bits`: RSA only, 2048 by default) from the operating system's
/// random source. Its public JWK is what usher itself makes of the public PEM, so a key `keygen`
/// makes is one usher takes.
pub fn generate(kid: &str, alg: KeyAlg, bits: Option<u32>) -> Result<GeneratedKey, KeygenError> {
    if bits.is_some() && alg.family() != KeyFamily::Rsa {
        return Err(KeygenError::BadBits);
    }
    let encode = |e: aws_lc_rs::error::Unspecified| KeygenError::Encode(e.to_string());
    let (private_der, public_der): (Zeroizing<Vec<u8>>, Vec<u8>) = match alg.family() {
        KeyFamily::Hmac => return generate_secret(kid, alg),
        KeyFamily::Ec if alg == KeyAlg::Es256 => {
            let pair = generate_es256(kid)?;
            let private = Zeroizing::new(pair.private_pem.as_bytes().to_vec());
            return finish_generated(kid, alg, private, pair.public_pem);
        }
        KeyFamily::Ec => {
            let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
                &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            )
            .map_err(encode)?;
            let private = pair.to_pkcs8v1().map_err(encode)?;
            let public = pair.public_key().as_der().map_err(encode)?;
            (
                Zeroizing::new(private.as_ref().to_vec()),
                public.as_ref().to_vec(),
            )
        }
        KeyFamily::Okp => {
            let pair = aws_lc_rs::signature::Ed25519KeyPair::generate().map_err(encode)?;
            let private = pair.to_pkcs8v1().map_err(encode)?;
            let public = pair.public_key().as_der().map_err(encode)?;
            (
                Zeroizing::new(private.as_ref().to_vec()),
                public.as_ref().to_vec(),
            )
        }
        KeyFamily::Rsa => {
            use aws_lc_rs::rsa::KeySize;
            let size = match bits.unwrap_or(RSA_BITS[0]) {
                2048 => KeySize::Rsa2048,
                3072 => KeySize::Rsa3072,
                4096 => KeySize::Rsa4096,
                _ => return Err(KeygenError::BadBits),
            };
            let pair = aws_lc_rs::rsa::KeyPair::generate(size).map_err(encode)?;
            let private: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().map_err(encode)?;
            let public = pair.public_key().as_der().map_err(encode)?;
            (
                Zeroizing::new(private.as_ref().to_vec()),
                public.as_ref().to_vec(),
            )
        }
    };
    let pem = |label: &str, der: &[u8]| {
        p256::pkcs8::der::pem::encode_string(label, LineEnding::LF, der)
            .map_err(|e| KeygenError::Encode(e.to_string()))
    };
    let private = Zeroizing::new(pem("PRIVATE KEY", &private_der)?.into_bytes());
    finish_generated(kid, alg, private, pem("PUBLIC KEY", &public_der)?)
}

/// The public JWK of a generated key, made by usher's own loader from the public PEM.
fn finish_generated(
    kid: &str,
    alg: KeyAlg,
    private: Zeroizing<Vec<u8>>,
    public_pem: String,
) -> Result<GeneratedKey, KeygenError> {
    let key = load_made(kid, alg, KeyMaterial::Pem(&public_pem))?;
    let shown_jwk = key.public_jwk.unwrap_or_default();
    let jwk = Zeroizing::new(pretty(&shown_jwk)?);
    Ok(GeneratedKey {
        alg,
        private,
        public_pem: Some(public_pem),
        jwk,
        shown_jwk,
    })
}

/// A made key as usher loads it (with the API's rules, the strictest).
fn load_made(
    kid: &str,
    alg: KeyAlg,
    made: KeyMaterial<'_>,
) -> Result<super::VerifyingKey, KeygenError> {
    material::load(kid, "", Some(alg), made, KeySource::Api)
        .map_err(|e| KeygenError::Encode(e.to_string()))
}

/// An HS* secret as long as the algorithm's hash (RFC 7518 §3.2), and its `oct` JWK.
fn generate_secret(kid: &str, alg: KeyAlg) -> Result<GeneratedKey, KeygenError> {
    let mut secret = Zeroizing::new(vec![0u8; alg.hash_bytes()]);
    aws_lc_rs::rand::fill(&mut secret).map_err(|e| KeygenError::Encode(e.to_string()))?;
    let key = load_made(kid, alg, KeyMaterial::Secret(&secret))?;
    let k = Zeroizing::new(URL_SAFE_NO_PAD.encode(&*secret));
    let with_secret = material::hmac_jwk(&key, &k).unwrap_or_default();
    let jwk = Zeroizing::new(pretty(&with_secret)?);
    drop(with_secret);
    Ok(GeneratedKey {
        alg,
        private: secret,
        public_pem: None,
        jwk,
        shown_jwk: material::hmac_jwk(&key, super::MASK).unwrap_or_default(),
    })
}

fn pretty(jwk: &Value) -> Result<String, KeygenError> {
    let mut text =
        serde_json::to_string_pretty(jwk).map_err(|e| KeygenError::Encode(e.to_string()))?;
    text.push('\n');
    Ok(text)
}

/// Generates a key and writes `DIR/K.key.pem` (mode 0600), `DIR/K.pub.pem` and `DIR/K.jwk.json`
/// — for HS* `DIR/K.secret` and `DIR/K.jwk.json`, both 0600 —, creating `dir` (mode 0700) if
/// missing. Refuses to overwrite any of them.
pub fn write_key_files(
    dir: &Path,
    kid: &str,
    alg: KeyAlg,
    bits: Option<u32>,
) -> Result<KeyFiles, KeygenError> {
    validate_kid(kid)?;
    let secret = alg.family() == KeyFamily::Hmac;
    let files = KeyFiles {
        private_key: dir.join(if secret {
            format!("{kid}.secret")
        } else {
            format!("{kid}.key.pem")
        }),
        public_key: (!secret).then(|| dir.join(format!("{kid}.pub.pem"))),
        jwk: dir.join(format!("{kid}.jwk.json")),
        shown_jwk: Value::Null,
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| KeygenError::Io {
            path: dir.to_owned(),
            source,
        })?;
    let paths = [
        Some(&files.private_key),
        files.public_key.as_ref(),
        Some(&files.jwk),
    ];
    for path in paths.into_iter().flatten() {
        if path.symlink_metadata().is_ok() {
            return Err(KeygenError::Exists(path.clone()));
        }
    }
    let key = generate(kid, alg, bits)?;
    write_new(&files.private_key, 0o600, &key.private)?;
    if let (Some(path), Some(pem)) = (&files.public_key, &key.public_pem) {
        write_new(path, 0o644, pem.as_bytes())?;
    }
    write_new(
        &files.jwk,
        if secret { 0o600 } else { 0o644 },
        key.jwk.as_bytes(),
    )?;
    Ok(KeyFiles {
        shown_jwk: key.shown_jwk.clone(),
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
        let files = write_key_files(&out, "k1", KeyAlg::Es256, None).unwrap();
        let mode = std::fs::metadata(&files.private_key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let private = std::fs::read_to_string(&files.private_key).unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
        let public = std::fs::read_to_string(files.public_key.as_ref().unwrap()).unwrap();
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----"));
        let jwk: Value =
            serde_json::from_str(&std::fs::read_to_string(&files.jwk).unwrap()).unwrap();
        assert_eq!(jwk, files.shown_jwk);
        assert_eq!(jwk["kid"], "k1");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["crv"], "P-256");
        assert!(jwk.get("d").is_none());
    }

    #[test]
    fn keygen_refuses_to_overwrite_an_existing_key() {
        let dir = tempfile::tempdir().unwrap();
        write_key_files(dir.path(), "k1", KeyAlg::Es256, None).unwrap();
        let before = std::fs::read(dir.path().join("k1.key.pem")).unwrap();
        let err = write_key_files(dir.path(), "k1", KeyAlg::Es256, None).unwrap_err();
        assert!(matches!(err, KeygenError::Exists(_)), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join("k1.key.pem")).unwrap(),
            before
        );
    }

    #[test]
    fn keygen_makes_every_algorithm_and_usher_loads_what_it_made() {
        let dir = tempfile::tempdir().unwrap();
        for alg in KeyAlg::ALL {
            let kid = format!("k-{alg}");
            let files = write_key_files(dir.path(), &kid, alg, None).unwrap();
            let jwk: Value =
                serde_json::from_str(&std::fs::read_to_string(&files.jwk).unwrap()).unwrap();
            assert_eq!(jwk["alg"], alg.as_str(), "{alg}");
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&files.private_key), 0o600, "{alg}");
            let key = if alg.family() == KeyFamily::Hmac {
                assert_eq!(mode(&files.jwk), 0o600, "{alg}: the JWK holds the secret");
                assert!(files.public_key.is_none());
                assert_eq!(files.shown_jwk["k"], crate::keys::MASK, "{alg}");
                let secret = std::fs::read(&files.private_key).unwrap();
                assert_eq!(secret.len(), alg.hash_bytes(), "{alg}");
                assert_eq!(URL_SAFE_NO_PAD.encode(&secret), jwk["k"].as_str().unwrap());
                material::load(&kid, "t", None, KeyMaterial::Jwk(&jwk), KeySource::Api).unwrap()
            } else {
                assert_eq!(jwk, files.shown_jwk, "{alg}");
                assert!(jwk.get("d").is_none(), "{alg}");
                let pem = std::fs::read_to_string(files.public_key.unwrap()).unwrap();
                material::load(&kid, "t", Some(alg), KeyMaterial::Pem(&pem), KeySource::Api)
                    .unwrap()
            };
            assert_eq!(key.alg, alg);
        }
    }

    #[test]
    fn rsa_keys_come_in_2048_3072_and_4096_bits_only() {
        for bits in RSA_BITS {
            let key = generate("k1", KeyAlg::Ps384, Some(bits)).unwrap();
            let n = URL_SAFE_NO_PAD
                .decode(key.shown_jwk["n"].as_str().unwrap())
                .unwrap();
            assert_eq!(n.len() * 8, bits as usize);
        }
        assert!(matches!(
            generate("k1", KeyAlg::Rs256, Some(1024)),
            Err(KeygenError::BadBits)
        ));
        assert!(matches!(
            generate("k1", KeyAlg::Es256, Some(2048)),
            Err(KeygenError::BadBits)
        ));
    }

    #[test]
    fn generated_key_pair_debug_hides_the_private_key() {
        let pair = generate_es256("k1").unwrap();
        assert!(!format!("{pair:?}").contains("PRIVATE"));
        let rsa = generate("k1", KeyAlg::Rs256, None).unwrap();
        assert!(!format!("{rsa:?}").contains("PRIVATE"));
        let hs = generate("k1", KeyAlg::Hs512, None).unwrap();
        let k = URL_SAFE_NO_PAD.encode(&*hs.private);
        assert!(!format!("{hs:?}").contains(&k));
    }
}

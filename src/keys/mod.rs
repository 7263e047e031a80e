//! Signing keys: the algorithm is pinned by the key, never taken from a token.
//!
//! `material` turns PEM, JWK or a shared secret into a [`VerifyingKey`]; `keygen` and `sign` serve
//! the CLI (operators and tests make keys and tokens with them). usher never stores a private key.

pub mod keygen;
pub mod material;
pub mod sign;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ParsedPublicKey};

/// The algorithms a key may carry (SPEC §2, and every algorithm the moq-token CLI signs with).
/// ES256 is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyAlg {
    #[default]
    Es256,
    Es384,
    EdDsa,
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Hs256,
    Hs384,
    Hs512,
}

/// What kind of key material an algorithm takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// A P-256 or P-384 public key (ES256, ES384).
    Ec,
    /// An Ed25519 public key (EdDSA).
    Okp,
    /// An RSA public key of at least 2048 bits (RS*, PS*).
    Rsa,
    /// A shared secret (HS*): the only family whose key is secret.
    Hmac,
}

impl KeyAlg {
    /// Every algorithm, in the order the README's table lists them.
    pub const ALL: [KeyAlg; 12] = [
        KeyAlg::Es256,
        KeyAlg::Es384,
        KeyAlg::EdDsa,
        KeyAlg::Rs256,
        KeyAlg::Rs384,
        KeyAlg::Rs512,
        KeyAlg::Ps256,
        KeyAlg::Ps384,
        KeyAlg::Ps512,
        KeyAlg::Hs256,
        KeyAlg::Hs384,
        KeyAlg::Hs512,
    ];

    /// The JOSE name (`ES256`, …), as written in a token header and in config files.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyAlg::Es256 => "ES256",
            KeyAlg::Es384 => "ES384",
            KeyAlg::EdDsa => "EdDSA",
            KeyAlg::Rs256 => "RS256",
            KeyAlg::Rs384 => "RS384",
            KeyAlg::Rs512 => "RS512",
            KeyAlg::Ps256 => "PS256",
            KeyAlg::Ps384 => "PS384",
            KeyAlg::Ps512 => "PS512",
            KeyAlg::Hs256 => "HS256",
            KeyAlg::Hs384 => "HS384",
            KeyAlg::Hs512 => "HS512",
        }
    }

    /// Parses the JOSE name, exactly as spelled by RFC 7518 (case-sensitive).
    pub fn parse(name: &str) -> Option<KeyAlg> {
        KeyAlg::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The kind of key material the algorithm takes.
    pub const fn family(self) -> KeyFamily {
        match self {
            KeyAlg::Es256 | KeyAlg::Es384 => KeyFamily::Ec,
            KeyAlg::EdDsa => KeyFamily::Okp,
            KeyAlg::Rs256
            | KeyAlg::Rs384
            | KeyAlg::Rs512
            | KeyAlg::Ps256
            | KeyAlg::Ps384
            | KeyAlg::Ps512 => KeyFamily::Rsa,
            KeyAlg::Hs256 | KeyAlg::Hs384 | KeyAlg::Hs512 => KeyFamily::Hmac,
        }
    }

    /// The size of the algorithm's hash in bytes: 32, 48 or 64 (EdDSA: SHA-512's 64). RFC 7518
    /// §3.2 asks an HS* secret to be at least this long.
    pub const fn hash_bytes(self) -> usize {
        match self {
            KeyAlg::Es256 | KeyAlg::Rs256 | KeyAlg::Ps256 | KeyAlg::Hs256 => 32,
            KeyAlg::Es384 | KeyAlg::Rs384 | KeyAlg::Ps384 | KeyAlg::Hs384 => 48,
            KeyAlg::EdDsa | KeyAlg::Rs512 | KeyAlg::Ps512 | KeyAlg::Hs512 => 64,
        }
    }

    /// The matching `jsonwebtoken` algorithm.
    pub const fn jwt_algorithm(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            KeyAlg::Es256 => A::ES256,
            KeyAlg::Es384 => A::ES384,
            KeyAlg::EdDsa => A::EdDSA,
            KeyAlg::Rs256 => A::RS256,
            KeyAlg::Rs384 => A::RS384,
            KeyAlg::Rs512 => A::RS512,
            KeyAlg::Ps256 => A::PS256,
            KeyAlg::Ps384 => A::PS384,
            KeyAlg::Ps512 => A::PS512,
            KeyAlg::Hs256 => A::HS256,
            KeyAlg::Hs384 => A::HS384,
            KeyAlg::Hs512 => A::HS512,
        }
    }
}

impl fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What every view shows in place of a secret (an HS* key's, a webhook's).
pub const MASK: &str = "********";

/// Where a key came from; config-file keys are read-only to the control API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Config,
    Api,
    Jwks,
}

/// A key usher can verify tokens with. Holds public material only, or an HS* shared secret,
/// which `Debug` never prints and no view shows.
#[derive(Clone)]
pub struct VerifyingKey {
    pub kid: String,
    pub tenant: String,
    pub alg: KeyAlg,
    pub decoding: jsonwebtoken::DecodingKey,
    /// ES256 and ES384 keys parsed once by aws-lc-rs, so a verify does not rebuild and re-check
    /// the curve point as `jsonwebtoken::crypto::verify` does on every call; `None` for the other
    /// algorithms, which go through `jsonwebtoken`. Built by [`VerifyingKey::parse_ecdsa`].
    pub parsed: Option<ParsedPublicKey>,
    /// The public key as a JWK, for `GET /v1/keys`; `None` for HS* (a secret has no public half).
    pub public_jwk: Option<serde_json::Value>,
    pub source: KeySource,
    /// Names this key's material as loaded (see [`VerifyingKey::serial`]).
    serial: u64,
}

/// The last [`VerifyingKey::serial`] given out.
static SERIALS: AtomicU64 = AtomicU64::new(0);

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("tenant", &self.tenant)
            .field("alg", &self.alg)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// A number no other key loaded by this process has (never 0): every load of key material
    /// (config, API, JWKS) makes a new one, and only a clone of this very key shares it. A
    /// signature once verified with the key of serial `n` therefore verifies with any key of
    /// serial `n`, so the decision cache can remember the serial instead of the key.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// A serial for newly loaded material.
    fn next_serial() -> u64 {
        SERIALS.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Whether `other` verifies exactly what this key verifies: same algorithm, same public JWK
    /// and same key bytes (the secret itself for HS*). The one equality of keys, used by the
    /// control API (a replaced key), reloads and JWKS refreshes alike.
    pub fn same_material(&self, other: &VerifyingKey) -> bool {
        self.alg == other.alg
            && self.public_jwk == other.public_jwk
            && self.decoding.try_get_as_bytes().ok() == other.decoding.try_get_as_bytes().ok()
    }

    /// The aws-lc-rs key for [`VerifyingKey::parsed`]: the point of an ES256 or ES384 key, parsed
    /// and validated once. `None` for other algorithms (and for a point aws-lc-rs refuses, which
    /// then fails in `jsonwebtoken` as before).
    pub fn parse_ecdsa(
        alg: KeyAlg,
        decoding: &jsonwebtoken::DecodingKey,
    ) -> Option<ParsedPublicKey> {
        let algorithm = match alg {
            KeyAlg::Es256 => &ECDSA_P256_SHA256_FIXED,
            KeyAlg::Es384 => &ECDSA_P384_SHA384_FIXED,
            _ => return None,
        };
        ParsedPublicKey::new(algorithm, decoding.try_get_as_bytes().ok()?).ok()
    }
}

/// The active keys of one tenant, by kid.
#[derive(Debug, Clone, Default)]
pub struct TenantKeys {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
}

/// A tenant may hold at most this many active keys (SPEC §2).
pub const MAX_ACTIVE_KEYS_PER_TENANT: usize = 10;

impl TenantKeys {
    /// The active key with this kid, if any.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.by_kid.get(kid)
    }

    /// How many keys are active.
    pub fn len(&self) -> usize {
        self.by_kid.len()
    }

    /// No active key at all.
    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty()
    }

    /// Adds or replaces a key; the caller enforces [`MAX_ACTIVE_KEYS_PER_TENANT`].
    pub fn insert(&mut self, key: Arc<VerifyingKey>) {
        self.by_kid.insert(key.kid.clone(), key);
    }

    /// Removes a key (revocation).
    pub fn remove(&mut self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.by_kid.remove(kid)
    }

    /// All active keys, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<VerifyingKey>> {
        self.by_kid.values()
    }

    /// The same kids with the same material ([`VerifyingKey::same_material`]).
    pub fn same_as(&self, other: &TenantKeys) -> bool {
        self.len() == other.len()
            && self.iter().all(|a| {
                other
                    .get(&a.kid)
                    .is_some_and(|b| Arc::ptr_eq(a, b) || a.same_material(b))
            })
    }
}

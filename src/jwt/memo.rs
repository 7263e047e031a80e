//! Remembers tokens whose signature verified, by a hash of the whole token and the exact key
//! object that verified it, so a re-check of the same token (MistServer re-runs `USER_NEW` for
//! every viewer after an invalidation) costs the claim checks only, not another ECDSA verify.
//!
//! A remembered signature only counts while the very same key is still one of the tenant's
//! active keys: revoking or replacing a key builds a new key object, so `Arc::ptr_eq` fails and
//! the signature is verified again (and fails, or not, on its merits). The header and the
//! `allowed_kids` rule are still checked every time; the memo only stands in for the verify.
//! It lives in the same compact LRU store as the decision cache (about 100 bytes an entry).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use sha2::{Digest, Sha256};

use crate::cache::lru::{Expiring, Lru};
use crate::keys::VerifyingKey;

/// Default number of remembered signatures.
pub const DEFAULT_CAPACITY: u64 = 262_144;
/// How long a signature is remembered.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

struct Remembered {
    key: Arc<VerifyingKey>,
    expires_at: Instant,
}

impl Expiring for Remembered {
    fn expired(&self, now: Instant) -> bool {
        now >= self.expires_at
    }
}

/// A bounded memo of verified signatures. Cheap to clone.
#[derive(Clone)]
pub struct VerifiedSignatures {
    memo: Arc<Lru<Remembered>>,
    ttl: Duration,
}

impl Default for VerifiedSignatures {
    fn default() -> Self {
        VerifiedSignatures::new(DEFAULT_CAPACITY, DEFAULT_TTL)
    }
}

impl VerifiedSignatures {
    /// A memo of at most `capacity` tokens, each kept for `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> VerifiedSignatures {
        VerifiedSignatures {
            memo: Arc::new(Lru::new(capacity)),
            ttl,
        }
    }

    /// The memo key of a token: the first 128 bits of SHA-256 over all of it (header, payload
    /// and signature).
    pub fn fingerprint(token: &str) -> u128 {
        let digest = Sha256::digest(token.as_bytes());
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        u128::from_le_bytes(first)
    }

    /// Whether this token's signature was verified with exactly this key object.
    pub fn verified_with(&self, fingerprint: &u128, key: &Arc<VerifyingKey>) -> bool {
        self.memo
            .get(
                *fingerprint,
                Instant::now(),
                |r| Arc::ptr_eq(&r.key, key),
                drop,
            )
            .unwrap_or(false)
    }

    /// Records a verified signature.
    pub fn remember(&self, fingerprint: u128, key: &Arc<VerifyingKey>) {
        let now = Instant::now();
        let entry = Remembered {
            key: key.clone(),
            expires_at: now + self.ttl,
        };
        drop(self.memo.insert(fingerprint, entry, now));
    }

    /// Number of remembered signatures.
    pub fn len(&self) -> u64 {
        self.memo.len()
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memo_is_bounded() {
        let memo = VerifiedSignatures::new(4, DEFAULT_TTL);
        let pair = crate::keys::keygen::generate_es256("k1").unwrap();
        let key = Arc::new(
            crate::keys::material::load(
                "k1",
                "t1",
                None,
                crate::keys::material::KeyMaterial::Pem(&pair.public_pem),
                crate::keys::KeySource::Config,
            )
            .unwrap(),
        );
        for i in 0..100 {
            memo.remember(VerifiedSignatures::fingerprint(&format!("token{i}")), &key);
        }
        assert!(memo.len() <= 4, "{} remembered", memo.len());
    }
}

//! Remembers tokens whose signature verified, by a hash of the whole token and the exact key
//! object that verified it, so a re-check of the same token (MistServer re-runs `USER_NEW` for
//! every viewer after an invalidation) costs the claim checks only, not another ECDSA verify.
//!
//! A remembered signature only counts while the very same key is still one of the tenant's
//! active keys: revoking or replacing a key builds a new key object, so `Arc::ptr_eq` fails and
//! the signature is verified again (and fails, or not, on its merits). The header and the
//! `allowed_kids` rule are still checked every time; the memo only stands in for the verify.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::keys::VerifyingKey;

/// Default number of remembered signatures.
pub const DEFAULT_CAPACITY: u64 = 262_144;
/// How long a signature is remembered.
pub const DEFAULT_TTL: Duration = Duration::from_secs(600);

/// A bounded memo of verified signatures. Cheap to clone.
#[derive(Clone)]
pub struct VerifiedSignatures {
    memo: moka::sync::Cache<[u8; 32], Arc<VerifyingKey>>,
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
            memo: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The memo key of a token: SHA-256 of all of it (header, payload and signature).
    pub fn fingerprint(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// Whether this token's signature was verified with exactly this key object.
    pub fn verified_with(&self, fingerprint: &[u8; 32], key: &Arc<VerifyingKey>) -> bool {
        self.memo
            .get(fingerprint)
            .is_some_and(|k| Arc::ptr_eq(&k, key))
    }

    /// Records a verified signature.
    pub fn remember(&self, fingerprint: [u8; 32], key: &Arc<VerifyingKey>) {
        self.memo.insert(fingerprint, key.clone());
    }

    /// Approximate number of remembered signatures.
    pub fn len(&self) -> u64 {
        self.memo.entry_count()
    }

    /// Settles pending bookkeeping so `len` is exact (tests).
    pub fn memo_sync(&self) {
        self.memo.run_pending_tasks();
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

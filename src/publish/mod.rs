//! What publishing rests on (SPEC §10): a stream key held only as its SHA-256, and the permission
//! claim tokens carry for reading and publishing. The `publish` rule a policy carries is part of
//! the policy model (`policy::model::PublishRule`, built by `policy::publish_rule`); the push
//! triggers are parsed in `trigger::push` and decided by `Evaluator::evaluate_push`. Nothing here
//! does I/O, and nothing here depends on the rest of usher.

pub mod permission;

use std::fmt;

use sha2::Digest;
use subtle::ConstantTimeEq;

/// The SHA-256 of a stream key. The key itself is never stored; `Debug` never shows the hash
/// either (a short key could be found from it).
#[derive(Clone, PartialEq, Eq)]
pub struct StreamKeyHash([u8; 32]);

impl StreamKeyHash {
    /// The hash of `key`.
    pub fn of(key: &str) -> StreamKeyHash {
        StreamKeyHash(sha2::Sha256::digest(key.as_bytes()).into())
    }

    /// Parses 64 hex digits (either case).
    pub fn from_hex(hex_digits: &str) -> Option<StreamKeyHash> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_digits, &mut out).ok()?;
        Some(StreamKeyHash(out))
    }

    /// The lower-case hex form, for the state database and the config file.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether `key` is the stream key, compared in constant time (over the hashes, so neither
    /// the key's length nor its first wrong byte shows in the timing).
    pub fn matches(&self, key: &str) -> bool {
        StreamKeyHash::of(key).0.ct_eq(&self.0).into()
    }
}

impl fmt::Debug for StreamKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamKeyHash(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_key_matches_only_itself() {
        let h = StreamKeyHash::of("s3cret-key");
        assert!(h.matches("s3cret-key"));
        assert!(!h.matches("s3cret-kez"));
        assert!(!h.matches(""));
        assert!(!h.matches("s3cret-key "));
    }

    #[test]
    fn the_hex_form_round_trips_and_refuses_garbage() {
        let h = StreamKeyHash::of("k");
        assert_eq!(StreamKeyHash::from_hex(&h.to_hex()), Some(h.clone()));
        assert_eq!(
            StreamKeyHash::from_hex(&h.to_hex().to_uppercase()),
            Some(h.clone())
        );
        assert_eq!(StreamKeyHash::from_hex("abc"), None);
        assert_eq!(StreamKeyHash::from_hex(&"g".repeat(64)), None);
        assert!(!format!("{h:?}").contains(&h.to_hex()[..8]));
    }
}

//! Who may push a stream into MistServer (SPEC §10): the `publish` rule a policy may carry, the
//! stream key it may hold (only as a SHA-256), and the permission claim tokens carry for reading
//! and publishing. The push triggers are parsed in `trigger::push` and decided by
//! `Evaluator::evaluate_push`; nothing here does I/O.

pub mod permission;
pub mod spec;

use std::fmt;

use sha2::Digest;
use subtle::ConstantTimeEq;

use crate::policy::model::{JwtPolicy, WebhookPolicy};

/// Who may publish the streams a policy covers. Absent means [`PublishRule::Deny`].
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PublishRule {
    /// Nobody may publish (the default).
    #[default]
    Deny,
    /// Anyone may publish.
    Public,
    /// A token signed by one of the tenant's keys, whose permission claim lists the stream
    /// under `publish`.
    Jwt(JwtPolicy),
    /// The customer's webhook decides (`"action": "publish"`).
    Webhook(WebhookPolicy),
    /// The push URL's `key` query parameter must hash to this.
    StreamKey(StreamKeyHash),
}

impl PublishRule {
    /// The rule's type name as written in config files, the API and logs.
    pub fn type_name(&self) -> &'static str {
        match self {
            PublishRule::Deny => "deny",
            PublishRule::Public => "public",
            PublishRule::Jwt(_) => "jwt",
            PublishRule::Webhook(_) => "webhook",
            PublishRule::StreamKey(_) => "stream_key",
        }
    }
}

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

    #[test]
    fn the_default_rule_is_deny() {
        assert_eq!(PublishRule::default(), PublishRule::Deny);
    }
}

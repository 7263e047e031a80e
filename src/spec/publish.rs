//! How a `publish` rule is written down (SPEC §10) — inside a `[[policies]]` entry, under
//! `"publish"` in the control API's policy body, and in the state database. The API takes the
//! stream key itself (`stream_key`); everything that is stored holds only its SHA-256
//! (`stream_key_sha256`). `policy::publish_rule` builds the rule it describes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PublishKind;
use crate::publish::StreamKeyHash;

/// Longest stream key accepted (it travels in a URL query).
pub const MAX_STREAM_KEY_BYTES: usize = 1024;

/// A `publish` rule: `type` is `deny`, `public`, `jwt` (the `jwt` fields of a viewer policy),
/// `webhook` (`url`, `secret`, `timeout_ms`) or `stream_key`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishSpec {
    #[serde(rename = "type")]
    pub kind: PublishKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_kids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_audience: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_claims: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_claim: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The webhook's HMAC key; never shown back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Control API only: the stream key itself, replaced by its hash before anything stores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_key: Option<String>,
    /// The SHA-256 of the stream key, 64 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_key_sha256: Option<String>,
}

impl PublishSpec {
    /// Replaces a given `stream_key` by its hash (the control API calls this before the change
    /// is applied, so the key reaches neither the database nor the fleet).
    pub fn hash_stream_key(&mut self) {
        if let Some(key) = self.stream_key.take() {
            if key.is_empty() || key.len() > MAX_STREAM_KEY_BYTES {
                // Left for `policy::publish_rule::build` to refuse; the key itself is dropped.
                self.stream_key_sha256 = Some(String::from("invalid"));
                self.stream_key = Some(String::new());
                return;
            }
            self.stream_key_sha256 = Some(StreamKeyHash::of(&key).to_hex());
        }
    }

    /// How the rule is stored: the spec as given, the hash in lower case.
    pub fn stored(mut self) -> PublishSpec {
        if let Some(h) = self
            .stream_key_sha256
            .as_deref()
            .and_then(StreamKeyHash::from_hex)
        {
            self.stream_key_sha256 = Some(h.to_hex());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_stream_key_is_replaced_by_its_hash_before_anything_stores_it() {
        let mut s: PublishSpec =
            serde_json::from_str(r#"{"type":"stream_key","stream_key":"s3cret"}"#).unwrap();
        s.hash_stream_key();
        assert_eq!(s.stream_key, None);
        let stored = serde_json::to_string(&s).unwrap();
        assert!(!stored.contains("s3cret"), "{stored}");
        assert_eq!(
            s.stream_key_sha256,
            Some(StreamKeyHash::of("s3cret").to_hex())
        );
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let err = serde_json::from_str::<PublishSpec>(r#"{"type":"deny","colour":1}"#).unwrap_err();
        assert!(err.to_string().contains("colour"));
    }
}

//! How a `publish` rule is written down (SPEC §10) — inside a `[[policies]]` entry, under
//! `"publish"` in the control API's policy body, and in the state database — and how it becomes a
//! [`PublishRule`]. The API takes the stream key itself (`stream_key`); everything that is
//! stored holds only its SHA-256 (`stream_key_sha256`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{PublishRule, StreamKeyHash};
use crate::policy::build::policy_from_spec;
use crate::policy::model::Policy;
use crate::spec::PolicySpec;

/// Longest stream key accepted (it travels in a URL query).
pub const MAX_STREAM_KEY_BYTES: usize = 1024;

/// A `publish` rule: `type` is `deny`, `public`, `jwt` (the `jwt` fields of a viewer policy),
/// `webhook` (`url`, `secret`, `timeout_ms`) or `stream_key`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishSpec {
    #[serde(rename = "type")]
    pub kind: String,
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
                // Left for `rule` to refuse with a message; the key itself is dropped.
                self.stream_key_sha256 = Some(String::from("invalid"));
                self.stream_key = Some(String::new());
                return;
            }
            self.stream_key_sha256 = Some(StreamKeyHash::of(&key).to_hex());
        }
    }

    /// Keeps what an update omitted from the rule it replaces: a webhook's secret, a stream
    /// key's hash (both are never shown back, so a control plane cannot send them again).
    pub fn keep_secrets_of(&mut self, old: &PublishRule) {
        match (self.kind.as_str(), old) {
            ("webhook", PublishRule::Webhook(hook)) if self.secret.is_none() => {
                self.secret = Some(hook.secret.expose().to_owned());
            }
            ("stream_key", PublishRule::StreamKey(hash))
                if self.stream_key.is_none() && self.stream_key_sha256.is_none() =>
            {
                self.stream_key_sha256 = Some(hash.to_hex());
            }
            _ => {}
        }
    }

    /// The rule this spec describes; every field that does not belong is a problem.
    pub fn rule(&self) -> Result<PublishRule, Vec<String>> {
        let key_fields = self.stream_key.is_some() || self.stream_key_sha256.is_some();
        if self.kind == "stream_key" {
            return self.stream_key_rule();
        }
        if key_fields {
            return Err(vec![
                "publish: stream_key and stream_key_sha256 belong to stream_key rules".into(),
            ]);
        }
        if !matches!(self.kind.as_str(), "deny" | "public" | "jwt" | "webhook") {
            return Err(vec![format!(
                "publish: type {:?} is not one of \"deny\", \"public\", \"jwt\", \"webhook\", \"stream_key\"",
                self.kind
            )]);
        }
        let as_policy = PolicySpec {
            kind: self.kind.clone(),
            allowed_kids: self.allowed_kids.clone(),
            required_audience: self.required_audience.clone(),
            required_claims: self.required_claims.clone(),
            object_claim: self.object_claim.clone(),
            max_lifetime_s: self.max_lifetime_s,
            url: self.url.clone(),
            secret: self.secret.clone(),
            timeout_ms: self.timeout_ms,
            ..PolicySpec::default()
        };
        let policy = policy_from_spec(&as_policy).map_err(|errs| {
            errs.into_iter()
                .map(|e| format!("publish: {e}"))
                .collect::<Vec<_>>()
        })?;
        Ok(match policy {
            Policy::Public => PublishRule::Public,
            Policy::Deny => PublishRule::Deny,
            Policy::Jwt(rules) => PublishRule::Jwt(rules),
            Policy::Webhook(hook) => PublishRule::Webhook(hook),
        })
    }

    fn stream_key_rule(&self) -> Result<PublishRule, Vec<String>> {
        let other = !self.allowed_kids.is_empty()
            || self.required_audience.is_some()
            || !self.required_claims.is_empty()
            || self.object_claim.is_some()
            || self.max_lifetime_s.is_some()
            || self.url.is_some()
            || self.secret.is_some()
            || self.timeout_ms.is_some();
        if other {
            return Err(vec![
                "publish: a stream_key rule takes no other fields".into(),
            ]);
        }
        if self.stream_key.is_some() {
            return Err(vec![
                "publish: stream_key is taken by the control API only (1..=1024 bytes); \
                 write stream_key_sha256 (the key's SHA-256 in hex) in the config file"
                    .into(),
            ]);
        }
        let Some(hex) = &self.stream_key_sha256 else {
            return Err(vec![
                "publish: a stream_key rule needs stream_key_sha256".into(),
            ]);
        };
        StreamKeyHash::from_hex(hex)
            .map(PublishRule::StreamKey)
            .ok_or_else(|| vec!["publish: stream_key_sha256 must be 64 hex digits".into()])
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

    fn spec(json: &str) -> PublishSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_api_stream_key_is_replaced_by_its_hash() {
        let mut s = spec(r#"{"type":"stream_key","stream_key":"s3cret"}"#);
        s.hash_stream_key();
        assert_eq!(s.stream_key, None);
        let stored = serde_json::to_string(&s).unwrap();
        assert!(!stored.contains("s3cret"), "{stored}");
        let PublishRule::StreamKey(h) = s.rule().unwrap() else {
            panic!("not a stream key rule");
        };
        assert!(h.matches("s3cret"));
    }

    #[test]
    fn a_plain_stream_key_is_refused_where_it_would_be_stored() {
        let s = spec(r#"{"type":"stream_key","stream_key":"s3cret"}"#);
        let errs = s.rule().unwrap_err();
        assert!(errs[0].contains("stream_key_sha256"), "{errs:?}");
        assert!(!errs[0].contains("s3cret"));
    }

    #[test]
    fn an_empty_api_stream_key_is_refused_without_echoing_it() {
        let mut s = spec(r#"{"type":"stream_key","stream_key":""}"#);
        s.hash_stream_key();
        assert!(s.rule().is_err());
        let mut long = PublishSpec {
            kind: "stream_key".into(),
            stream_key: Some("x".repeat(MAX_STREAM_KEY_BYTES + 1)),
            ..PublishSpec::default()
        };
        long.hash_stream_key();
        assert!(long.rule().is_err());
    }

    #[test]
    fn every_type_builds_and_mixed_fields_are_refused() {
        assert_eq!(
            spec(r#"{"type":"deny"}"#).rule().unwrap(),
            PublishRule::Deny
        );
        assert_eq!(
            spec(r#"{"type":"public"}"#).rule().unwrap(),
            PublishRule::Public
        );
        assert!(matches!(
            spec(r#"{"type":"jwt","allowed_kids":["k1"]}"#)
                .rule()
                .unwrap(),
            PublishRule::Jwt(_)
        ));
        assert!(matches!(
            spec(r#"{"type":"webhook","url":"https://h.example/p","secret":"s"}"#)
                .rule()
                .unwrap(),
            PublishRule::Webhook(_)
        ));
        assert!(
            spec(r#"{"type":"public","url":"https://h.example"}"#)
                .rule()
                .is_err()
        );
        assert!(
            spec(r#"{"type":"jwt","stream_key_sha256":"00"}"#)
                .rule()
                .is_err()
        );
        assert!(
            spec(&format!(
                r#"{{"type":"stream_key","stream_key_sha256":"{}","allowed_kids":["k"]}}"#,
                "0".repeat(64)
            ))
            .rule()
            .is_err()
        );
        assert!(spec(r#"{"type":"open"}"#).rule().is_err());
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let err = serde_json::from_str::<PublishSpec>(r#"{"type":"deny","colour":1}"#).unwrap_err();
        assert!(err.to_string().contains("colour"));
    }

    #[test]
    fn an_update_without_secrets_keeps_the_old_ones() {
        let old = spec(&format!(
            r#"{{"type":"stream_key","stream_key_sha256":"{}"}}"#,
            StreamKeyHash::of("k").to_hex()
        ))
        .rule()
        .unwrap();
        let mut update = spec(r#"{"type":"stream_key"}"#);
        update.keep_secrets_of(&old);
        assert_eq!(update.rule().unwrap(), old);
        let hook = spec(r#"{"type":"webhook","url":"https://h.example/p","secret":"s"}"#)
            .rule()
            .unwrap();
        let mut update = spec(r#"{"type":"webhook","url":"https://h.example/q"}"#);
        update.keep_secrets_of(&hook);
        assert_eq!(update.secret.as_deref(), Some("s"));
    }
}

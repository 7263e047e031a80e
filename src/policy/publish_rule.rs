//! How a written `publish` rule ([`PublishSpec`]) becomes the [`PublishRule`] usher enforces
//! (SPEC §10): a `jwt` or `webhook` rule is built like a viewer policy of that type.

use super::build::policy_from_spec;
use super::model::{Policy, PublishRule};
use crate::publish::StreamKeyHash;
use crate::spec::{PolicySpec, PublishKind, PublishSpec};

/// The rule `spec` describes; every field that does not belong is a problem.
pub fn build(spec: &PublishSpec) -> Result<PublishRule, Vec<String>> {
    let key_fields = spec.stream_key.is_some() || spec.stream_key_sha256.is_some();
    let Some(kind) = spec.kind.policy() else {
        return stream_key_rule(spec);
    };
    if key_fields {
        return Err(vec![
            "publish: stream_key and stream_key_sha256 belong to stream_key rules".into(),
        ]);
    }
    let as_policy = PolicySpec {
        kind,
        allowed_kids: spec.allowed_kids.clone(),
        required_audience: spec.required_audience.clone(),
        required_claims: spec.required_claims.clone(),
        object_claim: spec.object_claim.clone(),
        max_lifetime_s: spec.max_lifetime_s,
        url: spec.url.clone(),
        secret: spec.secret.clone(),
        timeout_ms: spec.timeout_ms,
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

fn stream_key_rule(spec: &PublishSpec) -> Result<PublishRule, Vec<String>> {
    let other = !spec.allowed_kids.is_empty()
        || spec.required_audience.is_some()
        || !spec.required_claims.is_empty()
        || spec.object_claim.is_some()
        || spec.max_lifetime_s.is_some()
        || spec.url.is_some()
        || spec.secret.is_some()
        || spec.timeout_ms.is_some();
    if other {
        return Err(vec![
            "publish: a stream_key rule takes no other fields".into(),
        ]);
    }
    if spec.stream_key.is_some() {
        return Err(vec![
            "publish: stream_key is taken by the control API only (1..=1024 bytes); \
             write stream_key_sha256 (the key's SHA-256 in hex) in the config file"
                .into(),
        ]);
    }
    let Some(hex) = &spec.stream_key_sha256 else {
        return Err(vec![
            "publish: a stream_key rule needs stream_key_sha256".into(),
        ]);
    };
    StreamKeyHash::from_hex(hex)
        .map(PublishRule::StreamKey)
        .ok_or_else(|| vec!["publish: stream_key_sha256 must be 64 hex digits".into()])
}

/// Keeps what an update omitted from the rule it replaces: a webhook's secret, a stream
/// key's hash (both are never shown back, so a control plane cannot send them again).
pub fn keep_secrets(spec: &mut PublishSpec, old: &PublishRule) {
    match (spec.kind, old) {
        (PublishKind::Webhook, PublishRule::Webhook(hook)) if spec.secret.is_none() => {
            spec.secret = Some(hook.secret.expose().to_owned());
        }
        (PublishKind::StreamKey, PublishRule::StreamKey(hash))
            if spec.stream_key.is_none() && spec.stream_key_sha256.is_none() =>
        {
            spec.stream_key_sha256 = Some(hash.to_hex());
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::MAX_STREAM_KEY_BYTES;

    fn parse(json: &str) -> PublishSpec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_api_stream_key_builds_a_rule_that_holds_only_its_hash() {
        let mut s = parse(r#"{"type":"stream_key","stream_key":"s3cret"}"#);
        s.hash_stream_key();
        assert_eq!(s.stream_key, None);
        let stored = serde_json::to_string(&s).unwrap();
        assert!(!stored.contains("s3cret"), "{stored}");
        let PublishRule::StreamKey(h) = build(&s).unwrap() else {
            panic!("not a stream key rule");
        };
        assert!(h.matches("s3cret"));
    }

    #[test]
    fn a_plain_stream_key_is_refused_where_it_would_be_stored() {
        let s = parse(r#"{"type":"stream_key","stream_key":"s3cret"}"#);
        let errs = build(&s).unwrap_err();
        assert!(errs[0].contains("stream_key_sha256"), "{errs:?}");
        assert!(!errs[0].contains("s3cret"));
    }

    #[test]
    fn an_empty_api_stream_key_is_refused_without_echoing_it() {
        let mut s = parse(r#"{"type":"stream_key","stream_key":""}"#);
        s.hash_stream_key();
        assert!(build(&s).is_err());
        let mut long = PublishSpec {
            kind: crate::spec::PublishKind::StreamKey,
            stream_key: Some("x".repeat(MAX_STREAM_KEY_BYTES + 1)),
            ..PublishSpec::default()
        };
        long.hash_stream_key();
        assert!(build(&long).is_err());
    }

    #[test]
    fn every_type_builds_and_mixed_fields_are_refused() {
        assert_eq!(
            build(&parse(r#"{"type":"deny"}"#)).unwrap(),
            PublishRule::Deny
        );
        assert_eq!(
            build(&parse(r#"{"type":"public"}"#)).unwrap(),
            PublishRule::Public
        );
        assert!(matches!(
            build(&parse(r#"{"type":"jwt","allowed_kids":["k1"]}"#)).unwrap(),
            PublishRule::Jwt(_)
        ));
        assert!(matches!(
            build(&parse(
                r#"{"type":"webhook","url":"https://h.example/p","secret":"s"}"#
            ))
            .unwrap(),
            PublishRule::Webhook(_)
        ));
        assert!(build(&parse(r#"{"type":"public","url":"https://h.example"}"#)).is_err());
        assert!(build(&parse(r#"{"type":"jwt","stream_key_sha256":"00"}"#)).is_err());
        assert!(
            build(&parse(&format!(
                r#"{{"type":"stream_key","stream_key_sha256":"{}","allowed_kids":["k"]}}"#,
                "0".repeat(64)
            )))
            .is_err()
        );
        assert!(serde_json::from_str::<PublishSpec>(r#"{"type":"open"}"#).is_err());
    }

    #[test]
    fn the_default_rule_is_deny() {
        assert_eq!(PublishRule::default(), PublishRule::Deny);
    }

    #[test]
    fn an_update_without_secrets_keeps_the_old_ones() {
        let old = build(&parse(&format!(
            r#"{{"type":"stream_key","stream_key_sha256":"{}"}}"#,
            StreamKeyHash::of("k").to_hex()
        )))
        .unwrap();
        let mut update = parse(r#"{"type":"stream_key"}"#);
        keep_secrets(&mut update, &old);
        assert_eq!(build(&update).unwrap(), old);
        let hook = build(&parse(
            r#"{"type":"webhook","url":"https://h.example/p","secret":"s"}"#,
        ))
        .unwrap();
        let mut update = parse(r#"{"type":"webhook","url":"https://h.example/q"}"#);
        keep_secrets(&mut update, &hook);
        assert_eq!(update.secret.as_deref(), Some("s"));
    }
}

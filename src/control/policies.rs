//! `PUT`, `GET`, `DELETE /v1/policies/{object}`: playback policies set over the API. A webhook's
//! secret is never shown back, and omitting it on an update keeps the old one.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::writer;
use super::{ApiError, Control, Reply, merge, parse};
use crate::enforce::Change;
use crate::fleet::record::Role;
use crate::policy::model::{Policy, PolicyEntry, PublishRule, Source};
use crate::spec::{PolicySpec, valid_object};

pub use crate::keys::MASK;

/// `PUT /v1/policies/{object}`: sets the policy (201 when new, 200 when replaced) and invalidates
/// every stream that looks the name up.
pub async fn put(ctl: &Control, object: &str, body: &[u8], expected: Option<u64>) -> Reply {
    let mut spec: PolicySpec = parse(body)?;
    // From here on only the hash exists: the change, the database and the fleet never see the key.
    if let Some(publish) = spec.publish.as_mut() {
        publish.hash_stream_key();
    }
    let change = Change::PutPolicy {
        object: object.to_owned(),
        spec,
    };
    let stored = writer::write(ctl, change, expected).await?;
    let shown = match stored.applied.as_ref().and_then(|a| a.policy.as_deref()) {
        Some(entry) => view(entry),
        None => ctl
            .app
            .snapshot()
            .policy(object)
            .map_or(Value::Null, |e| view(e)),
    };
    tracing::info!(object, "policy set");
    stored.answer(stored.status(), shown, stored.invalidated())
}

/// `GET /v1/policies/{object}`: the policy attached to exactly this name, secret masked; in a
/// fleet with the revision to send back in `If-Match` when this node's copy holds the bucket's
/// latest record of it.
pub async fn get(ctl: &Control, object: &str) -> Reply {
    if !valid_object(object) {
        return Err(ApiError::BadName(
            "object must be 1..=256 printable characters without whitespace".into(),
        ));
    }
    let snapshot = ctl.app.snapshot();
    let entry = snapshot
        .policy(object)
        .ok_or_else(|| ApiError::NotFound(format!("no policy for {object:?}")))?;
    let shown = view(entry);
    let Some(fleet) = ctl.app.fleet() else {
        return Ok((StatusCode::OK, shown));
    };
    let revision = match entry.source {
        Source::Api => fleet.revision_here(Role::Policies, object).await,
        _ => None,
    };
    Ok((
        StatusCode::OK,
        merge(shown, json!({ "revision": revision })),
    ))
}

/// `DELETE /v1/policies/{object}`: removes an API policy; the name falls back to the next one in
/// the lookup order (SPEC §2). Its streams are invalidated.
pub async fn delete(ctl: &Control, object: &str, expected: Option<u64>) -> Reply {
    let change = Change::DeletePolicy {
        object: object.to_owned(),
    };
    let stored = writer::write(ctl, change, expected).await?;
    tracing::info!(object, "policy deleted");
    let shown = json!({ "object": object, "deleted": true });
    stored.answer(StatusCode::OK, shown, stored.invalidated())
}

/// How a policy is shown: the body that would set it, plus `object` and `source`; a webhook
/// secret is always [`MASK`].
pub fn view(entry: &PolicyEntry) -> Value {
    let source = match entry.source {
        Source::Config => "config",
        Source::Api => "api",
    };
    let mut v = json!({
        "object": entry.object,
        "tenant": entry.tenant,
        "type": entry.policy.kind(),
        "source": source,
    });
    let extra = match &entry.policy {
        Policy::Public | Policy::Deny => json!({}),
        Policy::Jwt(rules) => json!({
            "allowed_kids": rules.allowed_kids,
            "required_audience": rules.required_audience,
            "required_claims": rules.required_claims,
            "object_claim": rules.object_claim,
            "max_lifetime_s": rules.max_lifetime_s,
            "cut_at_exp": rules.sessions.cut_at_exp,
            "max_sessions_per_viewer": rules.sessions.max_per_viewer,
            "on_exceed": rules.sessions.on_exceed.as_str(),
        }),
        Policy::Webhook(hook) => json!({
            "url": hook.url.as_str(),
            "secret": MASK,
            "timeout_ms": hook.timeout_ms,
        }),
    };
    if let (Some(map), Value::Object(more)) = (v.as_object_mut(), extra) {
        map.extend(more);
        if let Policy::Jwt(rules) = &entry.policy {
            map.insert("require_permission".into(), rules.require_permission.into());
        }
        map.insert("publish".into(), publish_view(&entry.publish));
    }
    v
}

/// How a `publish` rule is shown: its type and fields; a webhook secret and a stream key (not
/// even its hash) are never shown back.
fn publish_view(rule: &PublishRule) -> Value {
    let mut v = json!({ "type": rule.kind() });
    let extra = match rule {
        PublishRule::Deny | PublishRule::Public => json!({}),
        PublishRule::StreamKey(_) => json!({ "stream_key": MASK }),
        PublishRule::Jwt(rules) => json!({
            "allowed_kids": rules.allowed_kids,
            "required_audience": rules.required_audience,
            "required_claims": rules.required_claims,
            "object_claim": rules.object_claim,
            "max_lifetime_s": rules.max_lifetime_s,
        }),
        PublishRule::Webhook(hook) => json!({
            "url": hook.url.as_str(),
            "secret": MASK,
            "timeout_ms": hook.timeout_ms,
        }),
    };
    if let (Some(map), Value::Object(more)) = (v.as_object_mut(), extra) {
        map.extend(more);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> PolicySpec {
        parse(json.as_bytes()).unwrap()
    }

    fn entry(object: &str, spec: &PolicySpec) -> Result<PolicyEntry, Vec<String>> {
        crate::policy::build::entry(object, spec, Source::Api)
    }

    #[test]
    fn webhook_secret_is_masked() {
        let r = record(
            r#"{"tenant":"t1","type":"webhook","url":"https://hook.example/x","secret":"s3cret"}"#,
        );
        let shown = view(&entry("abc", &r).unwrap());
        assert_eq!(shown["secret"], MASK);
        assert_eq!(shown["url"], "https://hook.example/x");
        assert_eq!(shown["timeout_ms"], 3000);
        assert!(!shown.to_string().contains("s3cret"));
    }

    #[test]
    fn jwt_policy_is_shown_with_its_rules() {
        let r = record(
            r#"{"tenant":"t1","type":"jwt","allowed_kids":["k1"],"required_claims":{"tier":"pro"}}"#,
        );
        let shown = view(&entry("live", &r).unwrap());
        assert_eq!(shown["type"], "jwt");
        assert_eq!(shown["allowed_kids"], json!(["k1"]));
        assert_eq!(shown["required_claims"]["tier"], "pro");
        assert_eq!(shown["source"], "api");
    }

    #[test]
    fn unknown_policy_field_is_refused_naming_it() {
        let err =
            parse::<PolicySpec>(br#"{"tenant":"t1","type":"public","colour":1}"#).unwrap_err();
        assert!(matches!(err, ApiError::BadBody(ref m) if m.contains("colour")));
    }

    #[test]
    fn a_stream_key_is_never_shown_back_not_even_hashed() {
        let mut r = record(
            r#"{"tenant":"t1","type":"public","publish":{"type":"stream_key","stream_key":"s3cret"}}"#,
        );
        r.publish.as_mut().unwrap().hash_stream_key();
        let hash = r
            .publish
            .as_ref()
            .unwrap()
            .stream_key_sha256
            .clone()
            .unwrap();
        let shown = view(&entry("live", &r).unwrap()).to_string();
        assert!(shown.contains(r#""stream_key":"********""#), "{shown}");
        assert!(
            !shown.contains("s3cret") && !shown.contains(&hash),
            "{shown}"
        );
    }

    #[test]
    fn a_policy_without_publish_shows_publish_deny() {
        let shown = view(&entry("live", &record(r#"{"tenant":"t1","type":"public"}"#)).unwrap());
        assert_eq!(shown["publish"], json!({"type": "deny"}));
    }

    #[test]
    fn mixed_fields_make_an_invalid_policy() {
        let r = record(r#"{"tenant":"t1","type":"public","allowed_kids":["k1"]}"#);
        assert!(entry("abc", &r).is_err());
    }
}

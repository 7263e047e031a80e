//! `PUT`, `GET`, `DELETE /v1/policies/{object}`: playback policies set over the API. A webhook's
//! secret is never shown back, and omitting it on an update keeps the old one.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::keys::check_name;
use super::{ApiError, Control, Reply, merge, parse};
use crate::invalidation::{self, Scope};
use crate::policy::build::valid_object;
use crate::policy::model::{Policy, PolicyEntry, Secret, Source};
use crate::policy::store::Snapshot;
use crate::state::{PolicyRecord, Write};
use crate::webhook::validate_webhook_policy;

/// What a secret is shown as.
pub const MASK: &str = "********";

fn check_object(object: &str) -> Result<(), ApiError> {
    if valid_object(object) {
        Ok(())
    } else {
        Err(ApiError::BadName(
            "object must be 1..=256 printable characters without whitespace".into(),
        ))
    }
}

fn read_only(snapshot: &Snapshot, object: &str) -> Result<(), ApiError> {
    match snapshot.policy(object) {
        Some(e) if e.source == Source::Config => Err(ApiError::ReadOnly(format!(
            "the policy of {object:?} is defined in the config file"
        ))),
        _ => Ok(()),
    }
}

/// The secret of the API webhook policy currently attached to `object`, if any.
fn current_secret(snapshot: &Snapshot, object: &str) -> Option<String> {
    match &snapshot.policy(object)?.policy {
        Policy::Webhook(hook) => Some(hook.secret.expose().to_owned()),
        _ => None,
    }
}

/// Checks a policy body (the SSRF guard included) and builds the entry it sets.
async fn build(
    ctl: &Control,
    object: &str,
    record: &PolicyRecord,
) -> Result<PolicyEntry, ApiError> {
    check_name("tenant", &record.tenant)?;
    let mut entry = record
        .entry(object)
        .map_err(|errs| ApiError::InvalidPolicy(errs.join("; ")))?;
    if let (Policy::Webhook(_), Some(url)) = (&entry.policy, &record.url) {
        let guard = ctl.app.evaluator.webhooks().guard();
        let hook = validate_webhook_policy(guard, url, record.secret.as_deref(), record.timeout_ms)
            .await?;
        entry.policy = Policy::Webhook(hook);
    }
    Ok(entry)
}

/// `PUT /v1/policies/{object}`: sets the policy (201 when new, 200 when replaced) and invalidates
/// every stream that looks the name up.
pub async fn put(ctl: &Control, object: &str, body: &[u8]) -> Reply {
    check_object(object)?;
    let mut record: PolicyRecord = parse(body)?;
    let app = &ctl.app;
    read_only(&app.store.load(), object)?;
    let keep_secret = record.kind == "webhook" && record.secret.is_none();
    if keep_secret {
        record.secret = current_secret(&app.store.load(), object);
    }
    let mut entry = build(ctl, object, &record).await?;

    let writes = app.writes.lock().await;
    let old = app.store.load();
    read_only(&old, object)?;
    if keep_secret {
        // The old policy may have changed while the URL was being checked: keep the latest secret.
        let secret = current_secret(&old, object).ok_or_else(|| {
            ApiError::InvalidPolicy("a webhook policy needs a non-empty secret".into())
        })?;
        if let Policy::Webhook(hook) = &mut entry.policy {
            hook.secret = Secret::new(secret.clone());
        }
        record.secret = Some(secret);
    }
    if let Policy::Webhook(hook) = &entry.policy {
        record.url = Some(hook.url.to_string());
    }
    let created = old.policy(object).is_none();
    ctl.db
        .write(Write::PutPolicy(object.to_owned(), record))
        .await?;
    let shown = view(&entry);
    let mut new = (*old).clone();
    new.set_policy(entry);
    app.store.replace(new);
    drop(writes);
    tracing::info!(object, "policy set");

    let invalidated = invalidation::invalidate(app, &[Scope::Object(object)], &old).await;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, merge(shown, invalidated)))
}

/// `GET /v1/policies/{object}`: the policy attached to exactly this name, secret masked.
pub fn get(ctl: &Control, object: &str) -> Reply {
    check_object(object)?;
    let snapshot = ctl.app.store.load();
    let entry = snapshot
        .policy(object)
        .ok_or_else(|| ApiError::NotFound(format!("no policy for {object:?}")))?;
    Ok((StatusCode::OK, view(entry)))
}

/// `DELETE /v1/policies/{object}`: removes an API policy; the name falls back to the next one in
/// the lookup order (SPEC §2). Its streams are invalidated.
pub async fn delete(ctl: &Control, object: &str) -> Reply {
    check_object(object)?;
    let app = &ctl.app;
    let writes = app.writes.lock().await;
    let old = app.store.load();
    if old.policy(object).is_none() {
        return Err(ApiError::NotFound(format!("no policy for {object:?}")));
    }
    read_only(&old, object)?;
    ctl.db.write(Write::DeletePolicy(object.to_owned())).await?;
    let mut new = (*old).clone();
    new.remove_policy(object);
    app.store.replace(new);
    drop(writes);
    tracing::info!(object, "policy deleted");
    let invalidated = invalidation::invalidate(app, &[Scope::Object(object)], &old).await;
    Ok((
        StatusCode::OK,
        merge(json!({ "object": object, "deleted": true }), invalidated),
    ))
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
        "type": entry.policy.type_name(),
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
        }),
        Policy::Webhook(hook) => json!({
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

    fn record(json: &str) -> PolicyRecord {
        parse(json.as_bytes()).unwrap()
    }

    #[test]
    fn webhook_secret_is_masked() {
        let r = record(
            r#"{"tenant":"t1","type":"webhook","url":"https://hook.example/x","secret":"s3cret"}"#,
        );
        let shown = view(&r.entry("abc").unwrap());
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
        let shown = view(&r.entry("live").unwrap());
        assert_eq!(shown["type"], "jwt");
        assert_eq!(shown["allowed_kids"], json!(["k1"]));
        assert_eq!(shown["required_claims"]["tier"], "pro");
        assert_eq!(shown["source"], "api");
    }

    #[test]
    fn unknown_policy_field_is_refused_naming_it() {
        let err =
            parse::<PolicyRecord>(br#"{"tenant":"t1","type":"public","colour":1}"#).unwrap_err();
        assert!(matches!(err, ApiError::BadBody(ref m) if m.contains("colour")));
    }

    #[test]
    fn mixed_fields_make_an_invalid_policy() {
        let r = record(r#"{"tenant":"t1","type":"public","allowed_kids":["k1"]}"#);
        assert!(r.entry("abc").is_err());
    }
}

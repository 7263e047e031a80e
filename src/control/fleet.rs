//! The control API with the fleet on (SPEC §11): key and policy writes, viewer revocations and
//! invalidations go to
//! JetStream instead of straight to this node's change path, conditional on `If-Match`; and
//! `GET /v1/fleet` lists every node. Reads are served from this node's copy as always.

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::IF_MATCH;
use hyper::{Method, Request, StatusCode};
use serde_json::{Value, json};

use super::invalidate::InvalidateBody;
use super::keys::{check_name, parse_key};
use super::{ApiError, Control, Reply, merge, parse};
use crate::enforce::{Applied, Change, Invalidated, Outcome};
use crate::fleet::record::Role;
use crate::fleet::write::Written;
use crate::fleet::{Fleet, events};
use crate::policy::model::Policy;
use crate::spec::{KeySpec, KeyStatus, PolicySpec, valid_object};

/// How long `POST /v1/invalidate` waits for this node's own application of the event.
const LOCAL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /v1/fleet`: every node's id, applied revisions, lag, pending invalidations, last seen.
pub fn list(ctl: &Control) -> Reply {
    match ctl.app.fleet() {
        Some(fleet) => Ok((StatusCode::OK, fleet.view())),
        None => Err(ApiError::NotFound(
            "this node is not part of a fleet (no [fleet] section)".into(),
        )),
    }
}

/// Handles the writes that go through the fleet; hands any other request back.
pub async fn intercept(
    ctl: &Control,
    segments: &[&str],
    req: Request<Incoming>,
) -> Result<Reply, Request<Incoming>> {
    let Some(fleet) = ctl.app.fleet() else {
        return Err(req);
    };
    let method = req.method().clone();
    if let (["policies", object], &Method::GET) = (segments, &method) {
        return Ok(get_policy(ctl, fleet, object).await);
    }
    let handled = matches!(
        (segments, &method),
        (["keys", _], &Method::PUT)
            | (["keys", _, "revoke"], &Method::POST)
            | (["policies", _], &Method::PUT | &Method::DELETE)
            | (["invalidate"], &Method::POST)
            | (["viewers", "revoke"], &Method::POST)
    );
    if !handled {
        return Err(req);
    }
    Ok(write(ctl, fleet, segments, &method, req).await)
}

async fn write(
    ctl: &Control,
    fleet: &Fleet,
    segments: &[&str],
    method: &Method,
    req: Request<Incoming>,
) -> Reply {
    let expected = if_match(req.headers().get(IF_MATCH))?;
    let body = body(req).await?;
    match (segments, method) {
        (["keys", kid], &Method::PUT) => put_key(ctl, fleet, kid, &body, expected).await,
        (["keys", kid, "revoke"], _) => revoke_key(ctl, fleet, kid, expected).await,
        (["policies", object], &Method::PUT) => {
            put_policy(ctl, fleet, object, &body, expected).await
        }
        (["policies", object], _) => delete_policy(ctl, fleet, object, expected).await,
        (["viewers", "revoke"], _) => {
            super::viewers::revoke_through(ctl, fleet, &body, expected).await
        }
        _ => invalidate(fleet, &body).await,
    }
}

/// `If-Match: <revision>` (quotes allowed): the revision the client read; `0`: must not exist.
fn if_match(header: Option<&hyper::header::HeaderValue>) -> Result<Option<u64>, ApiError> {
    let Some(value) = header else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| ApiError::BadBody("If-Match must be a revision number".into()))
}

async fn body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(req.into_body(), super::MAX_BODY_BYTES);
    match tokio::time::timeout(std::time::Duration::from_secs(10), limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(_)) => Err(ApiError::BadBody(
            "body over 64 KiB or could not be read".into(),
        )),
        Err(_) => Err(ApiError::BadBody("body timed out".into())),
    }
}

/// The answer of a stored write: `shown`, the revision, whether this node applied it, and what
/// it invalidated here.
fn answer(status: StatusCode, shown: Value, written: &Written) -> Reply {
    let invalidated = written
        .applied
        .as_ref()
        .map_or_else(Invalidated::nothing, |a| a.invalidated.clone());
    let shown = if shown.is_object() { shown } else { json!({}) };
    let shown = merge(
        shown,
        json!({ "revision": written.revision, "applied": written.applied_here }),
    );
    Ok((status, merge(shown, invalidated)))
}

fn created(written: &Written) -> StatusCode {
    match written.applied.as_ref().map(|a| a.outcome) {
        Some(Outcome::Created) => StatusCode::CREATED,
        _ => StatusCode::OK,
    }
}

async fn put_key(
    ctl: &Control,
    fleet: &Fleet,
    kid: &str,
    body: &[u8],
    expected: Option<u64>,
) -> Reply {
    check_name("kid", kid)?;
    let spec = parse_key(body)?;
    let change = Change::PutKey {
        kid: kid.to_owned(),
        spec: spec.clone(),
    };
    ctl.app.enforcer().check(&change).await?;
    let record = KeySpec {
        status: Some(KeyStatus::Active),
        ..spec
    };
    let value = Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
    let written = fleet.write(Role::Keys, kid, Some(value), expected).await?;
    let shown = shown_key(ctl, written.applied.as_ref(), kid);
    answer(created(&written), shown, &written)
}

async fn revoke_key(ctl: &Control, fleet: &Fleet, kid: &str, expected: Option<u64>) -> Reply {
    check_name("kid", kid)?;
    let change = Change::RevokeKey {
        kid: kid.to_owned(),
    };
    ctl.app.enforcer().check(&change).await?;
    let snapshot = ctl.app.snapshot();
    let key = crate::enforce::layers::find_kid(&snapshot, kid)
        .map(|(k, _)| k.clone())
        .ok_or_else(|| ApiError::NotFound(format!("no key {kid:?}")))?;
    let record = KeySpec::stored(&key, &KeySpec::default(), KeyStatus::Revoked);
    let value = Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
    let written = fleet.write(Role::Keys, kid, Some(value), expected).await?;
    let shown = super::keys::view(&key, KeyStatus::Revoked);
    answer(StatusCode::OK, shown, &written)
}

async fn put_policy(
    ctl: &Control,
    fleet: &Fleet,
    object: &str,
    body: &[u8],
    expected: Option<u64>,
) -> Reply {
    check_object(object)?;
    let mut spec: PolicySpec = parse(body)?;
    check_name("tenant", &spec.tenant)?;
    if spec.kind == "webhook" && spec.secret.is_none() {
        // Omitted on update: the record carries the secret of the policy it replaces, so every
        // node keeps the same one.
        if let Some(Policy::Webhook(hook)) = ctl.app.snapshot().policy(object).map(|e| &e.policy) {
            spec.secret = Some(hook.secret.expose().to_owned());
        }
    }
    let change = Change::PutPolicy {
        object: object.to_owned(),
        spec: spec.clone(),
    };
    ctl.app.enforcer().check(&change).await?;
    let value = Bytes::from(serde_json::to_vec(&spec).unwrap_or_default());
    let written = fleet
        .write(Role::Policies, object, Some(value), expected)
        .await?;
    let shown = written
        .applied
        .as_ref()
        .and_then(|a| a.policy.as_deref())
        .or(ctl.app.snapshot().policy(object).map(|e| &**e))
        .map_or(Value::Null, super::policies::view);
    answer(created(&written), shown, &written)
}

async fn delete_policy(ctl: &Control, fleet: &Fleet, object: &str, expected: Option<u64>) -> Reply {
    check_object(object)?;
    let change = Change::DeletePolicy {
        object: object.to_owned(),
    };
    ctl.app.enforcer().check(&change).await?;
    let written = fleet.write(Role::Policies, object, None, expected).await?;
    answer(
        StatusCode::OK,
        json!({ "object": object, "deleted": true }),
        &written,
    )
}

/// `GET /v1/policies/{object}` from this node's copy, with the revision to send back in
/// `If-Match` when this node's copy holds the bucket's latest record of it.
async fn get_policy(ctl: &Control, fleet: &Fleet, object: &str) -> Reply {
    let (status, shown) = super::policies::get(ctl, object)?;
    let source = shown["source"].as_str().unwrap_or_default();
    let revision = match source {
        "api" => fleet.revision_here(Role::Policies, object).await,
        _ => None,
    };
    Ok((status, merge(shown, json!({ "revision": revision }))))
}

async fn invalidate(fleet: &Fleet, body: &[u8]) -> Reply {
    let target = parse::<InvalidateBody>(body)?.target()?;
    if !fleet.connected() {
        // Not handed to the client at all: it would send it after reconnecting, unasked.
        return Err(ApiError::FleetUnavailable(
            "NATS is not connected; the invalidation was not sent: retry".into(),
        ));
    }
    let seq = events::publish(fleet, &target).await.map_err(|_| {
        ApiError::FleetUnavailable(
            "the fleet's JetStream did not confirm the invalidation; retry".into(),
        )
    })?;
    let invalidated = events::local_result(fleet, seq, LOCAL_WAIT)
        .await
        .map_or_else(Invalidated::nothing, |a| a.invalidated);
    let shown = json!({ "sequence": seq });
    Ok((StatusCode::OK, merge(shown, invalidated)))
}

fn shown_key(ctl: &Control, applied: Option<&Applied>, kid: &str) -> Value {
    if let Some(key) = applied.and_then(|a| a.key.as_deref()) {
        return super::keys::view(key, KeyStatus::Active);
    }
    let snapshot = ctl.app.snapshot();
    crate::enforce::layers::find_kid(&snapshot, kid).map_or(Value::Null, |(k, active)| {
        let status = if active {
            KeyStatus::Active
        } else {
            KeyStatus::Revoked
        };
        super::keys::view(k, status)
    })
}

fn check_object(object: &str) -> Result<(), ApiError> {
    if valid_object(object) {
        Ok(())
    } else {
        Err(ApiError::BadName(
            "object must be 1..=256 printable characters without whitespace".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn parsed(v: &str) -> Result<Option<u64>, ApiError> {
        if_match(Some(&HeaderValue::from_str(v).unwrap()))
    }

    #[test]
    fn if_match_takes_a_revision_quoted_or_not() {
        assert_eq!(if_match(None).unwrap(), None);
        assert_eq!(parsed("7").unwrap(), Some(7));
        assert_eq!(parsed("\"7\"").unwrap(), Some(7));
        assert_eq!(parsed("W/\"0\"").unwrap(), Some(0));
        for bad in ["*", "abc", "-1", "\"\""] {
            assert!(matches!(parsed(bad), Err(ApiError::BadBody(_))), "{bad}");
        }
    }
}

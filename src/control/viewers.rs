//! `POST /v1/viewers/revoke` (SPEC §9): refuse a viewer's tokens issued before a moment and end
//! the viewer's live sessions. The change goes through the change path like every other
//! (`Change::RevokeViewer`): stored first, then in force, then MistServer ends the sessions.
//! With the fleet on (SPEC §11) it is written to the revocations bucket instead, and every node
//! (this one included) applies it from there, ending its own sessions through its own MistServer.

#![allow(dead_code)] // the `*_doc` functions only carry OpenAPI descriptions

use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::keys::check_name;
use super::openapi::ErrorBody;
use super::{ApiError, Control, Reply, merge, parse};
use crate::decision::now_unix_s;
use crate::enforce::{Applied, Change};
use crate::fleet::Fleet;
use crate::fleet::record::{RevocationRecord, Role, revocation_key};
use crate::fleet::write::WriteError;

/// How many times a revocation without `If-Match` is merged and written again when another
/// write of the same viewer came first.
const FLEET_RETRIES: usize = 3;

/// Longest viewer id accepted (the same bound as the viewer claim).
const MAX_VIEWER_ID: usize = 256;

/// The body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeViewerBody {
    pub tenant: String,
    /// The viewer id, as the tenant's viewer claim (`sub` by default) carries it.
    pub viewer: String,
    /// Tokens with `iat` before this (seconds since the Unix epoch) are refused; default: now,
    /// the current second included (now + 1).
    #[serde(default)]
    pub before: Option<u64>,
}

/// The answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ViewerRevoked {
    pub tenant: String,
    pub viewer: String,
    /// In force: tokens issued before this are refused (a later revocation keeps the later one).
    pub before: u64,
    /// When the revocation is forgotten: `before` + the tenant's longest token lifetime + 60 s.
    pub forget_at: u64,
    /// Live sessions of the viewer ended through MistServer.
    pub sessions_ended: usize,
    /// Cached decisions of the tenant dropped.
    pub dropped: u64,
    /// Whether MistServer acknowledged the ended sessions within `[mist] ack_wait_ms`.
    pub mist_acknowledged: bool,
}

/// The body, parsed and checked.
fn checked(body: &[u8]) -> Result<RevokeViewerBody, ApiError> {
    let body = parse::<RevokeViewerBody>(body)?;
    check_name("tenant", &body.tenant)?;
    let printable = body.viewer.chars().all(|c| !c.is_control());
    if body.viewer.is_empty() || body.viewer.len() > MAX_VIEWER_ID || !printable {
        return Err(ApiError::BadName(format!(
            "viewer must be 1..={MAX_VIEWER_ID} bytes without control characters"
        )));
    }
    Ok(body)
}

/// `POST /v1/viewers/revoke`.
pub async fn revoke(ctl: &Control, body: &[u8]) -> Reply {
    let body = checked(body)?;
    let applied = ctl
        .app
        .enforcer()
        .apply(Change::RevokeViewer {
            tenant: body.tenant.clone(),
            viewer: body.viewer.clone(),
            before: body.before,
        })
        .await?;
    let (revocation, ended) = applied.revocation.unwrap_or_default();
    let answer = ViewerRevoked {
        tenant: body.tenant,
        viewer: body.viewer,
        before: revocation.before,
        forget_at: revocation.forget_at,
        sessions_ended: ended,
        dropped: applied.invalidated.dropped,
        mist_acknowledged: applied.invalidated.mist_acknowledged,
    };
    Ok((
        StatusCode::OK,
        serde_json::to_value(answer).unwrap_or_default(),
    ))
}

/// `POST /v1/viewers/revoke` with the fleet on: checked against this node's copy, written to the
/// revocations bucket (its `before` fixed here and never lowered: the record's and this one's
/// later), answered once JetStream stored it, with this node's application of it.
pub async fn revoke_through(
    ctl: &Control,
    fleet: &Fleet,
    body: &[u8],
    expected: Option<u64>,
) -> Reply {
    let body = checked(body)?;
    let change = Change::RevokeViewer {
        tenant: body.tenant.clone(),
        viewer: body.viewer.clone(),
        before: body.before,
    };
    ctl.app.enforcer().check(&change).await?;
    // The default as a single node takes it: every token issued up to and including this second.
    let wanted = body
        .before
        .unwrap_or_else(|| now_unix_s().unwrap_or(0.0) as u64 + 1);
    let key = revocation_key(&body.tenant, &body.viewer);
    let mut tries = 0;
    let written = loop {
        let latest = fleet.latest_record(Role::Revocations, &key).await?;
        let (revision, held) = match latest {
            Some((revision, value)) => (
                revision,
                serde_json::from_slice::<RevocationRecord>(&value)
                    .ok()
                    .map(|r| r.before),
            ),
            None => (0, None),
        };
        let record = RevocationRecord {
            tenant: body.tenant.clone(),
            viewer: body.viewer.clone(),
            before: held.map_or(wanted, |h| h.max(wanted)),
        };
        let value = bytes::Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
        let at = expected.unwrap_or(revision);
        match fleet
            .write_key(
                Role::Revocations,
                &key,
                "the viewer's revocation",
                Some(value),
                Some(at),
            )
            .await
        {
            Err(WriteError::Conflict(_)) if expected.is_none() && tries < FLEET_RETRIES => {
                tries += 1
            }
            written => break written?,
        }
    };
    let mist_acknowledged = match written.applied.as_ref().and_then(|a| a.ticket) {
        Some(ticket) => {
            let wait = std::time::Duration::from_millis(ctl.app.config().mist.ack_wait_ms);
            ctl.app.enforcer().mist_acknowledged(ticket, wait).await
        }
        None => written.applied_here,
    };
    let held = ctl
        .app
        .enforcer()
        .sessions()
        .revocations()
        .get(&body.tenant, &body.viewer)
        .unwrap_or_default();
    let answer = ViewerRevoked {
        tenant: body.tenant,
        viewer: body.viewer,
        before: held.before,
        forget_at: held.forget_at,
        sessions_ended: ended(written.applied.as_ref()),
        dropped: written
            .applied
            .as_ref()
            .map_or(0, |a| a.invalidated.dropped),
        mist_acknowledged,
    };
    let shown = serde_json::to_value(answer).unwrap_or_default();
    let extra =
        serde_json::json!({ "revision": written.revision, "applied": written.applied_here });
    Ok((StatusCode::OK, merge(shown, extra)))
}

fn ended(applied: Option<&Applied>) -> usize {
    applied.and_then(|a| a.revocation).map_or(0, |(_, n)| n)
}

#[utoipa::path(post, path = "/v1/viewers/revoke", tag = "sessions", request_body = RevokeViewerBody,
    params(("If-Match" = Option<String>, Header, description = "Fleet only: the revision of the viewer's revocation record the client read. Without it, the latest record's (merged: `before` is never lowered).")),
    responses(
        (status = 200, description = "Stored and in force; the viewer's live sessions ended through MistServer. Fleet: written to the revocations bucket, with `revision` and `applied` as for keys", body = ViewerRevoked),
        (status = 400, description = "`bad-body`, `bad-name`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`not-found`: no such tenant", body = ErrorBody),
        (status = 409, description = "`too-many-revocations`; fleet: `revision-conflict`", body = ErrorBody),
        (status = 500, description = "`storage-error`", body = ErrorBody),
        (status = 503, description = "fleet: `fleet-unavailable`", body = ErrorBody),
    ))]
pub fn revoke_doc() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_refuses_unknown_fields_and_takes_before_as_optional() {
        let b: RevokeViewerBody = parse(br#"{"tenant":"t1","viewer":"u-1"}"#).unwrap();
        assert_eq!(b.before, None);
        assert!(parse::<RevokeViewerBody>(br#"{"tenant":"t1","viewer":"u","x":1}"#).is_err());
    }
}

//! `POST /v1/viewers/revoke` (SPEC §9): refuse a viewer's tokens issued before a moment and end
//! the viewer's live sessions. The change goes through the change path like every other
//! (`Change::RevokeViewer`): stored first, then in force, then MistServer ends the sessions.
//! With the fleet on (SPEC §11) it is written to the revocations bucket instead, and every node
//! (this one included) applies it from there, ending its own sessions through its own MistServer.

#![allow(dead_code)] // the `*_doc` functions only carry OpenAPI descriptions

use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::openapi::ErrorBody;
use super::writer;
use super::{Control, Reply, parse};
use crate::enforce::Change;

/// The body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeViewerBody {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
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

/// `POST /v1/viewers/revoke`: stored (in a fleet: written to the revocations bucket, merged
/// with the record already there) and in force, then the viewer's live sessions end through
/// MistServer; answers what is now held and what this node did.
pub async fn revoke(ctl: &Control, body: &[u8], expected: Option<u64>) -> Reply {
    let body = parse::<RevokeViewerBody>(body)?;
    let change = Change::RevokeViewer {
        tenant: body.tenant.clone(),
        viewer: body.viewer.clone(),
        before: body.before,
    };
    let stored = writer::write(ctl, change, expected).await?;
    let wait = std::time::Duration::from_millis(ctl.app.config().mist.ack_wait_ms);
    let mist_acknowledged = stored.mist_acknowledged(ctl, wait).await;
    let applied = stored.applied.as_ref();
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
        sessions_ended: applied.and_then(|a| a.revocation).map_or(0, |(_, n)| n),
        dropped: applied.map_or(0, |a| a.invalidated.dropped),
        mist_acknowledged,
    };
    let shown = serde_json::to_value(answer).unwrap_or_default();
    stored.answer(StatusCode::OK, shown, serde_json::json!({}))
}

#[utoipa::path(post, path = "/v1/viewers/revoke", tag = "sessions", request_body = RevokeViewerBody,
    params(("If-Match" = Option<String>, Header, pattern = r#"^(W/)?"?[0-9]+"?$"#, description = "Fleet only: the revision of the viewer's revocation record the client read. Without it, the latest record's (merged: `before` is never lowered).")),
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

//! `POST /v1/viewers/revoke` (SPEC §9): refuse a viewer's tokens issued before a moment and end
//! the viewer's live sessions. The change goes through the change path like every other
//! (`Change::RevokeViewer`): stored first, then in force, then MistServer ends the sessions.

#![allow(dead_code)] // the `*_doc` functions only carry OpenAPI descriptions

use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::keys::check_name;
use super::openapi::ErrorBody;
use super::{ApiError, Control, Reply, parse};
use crate::enforce::Change;

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

/// `POST /v1/viewers/revoke`.
pub async fn revoke(ctl: &Control, body: &[u8]) -> Reply {
    let body = parse::<RevokeViewerBody>(body)?;
    check_name("tenant", &body.tenant)?;
    let printable = body.viewer.chars().all(|c| !c.is_control());
    if body.viewer.is_empty() || body.viewer.len() > MAX_VIEWER_ID || !printable {
        return Err(ApiError::BadName(format!(
            "viewer must be 1..={MAX_VIEWER_ID} bytes without control characters"
        )));
    }
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

#[utoipa::path(post, path = "/v1/viewers/revoke", tag = "sessions", request_body = RevokeViewerBody,
    responses(
        (status = 200, description = "Stored and in force; the viewer's live sessions ended through MistServer", body = ViewerRevoked),
        (status = 400, description = "`bad-body`, `bad-name`", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "`not-found`: no such tenant", body = ErrorBody),
        (status = 409, description = "`too-many-revocations`", body = ErrorBody),
        (status = 500, description = "`storage-error`", body = ErrorBody),
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

//! `GET /v1/sessions/count` (SPEC §9): how many live sessions usher tracks, per tenant and
//! stream. Counts only: never a session id or a viewer id.

#![allow(dead_code)] // the `*_doc` functions only carry OpenAPI descriptions

use hyper::StatusCode;
use serde::Serialize;

use super::openapi::ErrorBody;
use super::{Control, Reply};

/// The answer.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct SessionCounts {
    /// Sessions tracked.
    pub total: u64,
    /// Per tenant, sorted by tenant.
    pub tenants: Vec<TenantSessions>,
}

/// One tenant's sessions.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct TenantSessions {
    pub tenant: String,
    pub sessions: u64,
    /// Per stream, sorted by stream name.
    pub streams: Vec<StreamSessions>,
}

/// One stream's sessions.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct StreamSessions {
    pub stream: String,
    pub sessions: u64,
}

/// Groups sorted (tenant, stream, count) rows.
pub fn group(rows: Vec<(String, String, u32)>) -> SessionCounts {
    let mut out = SessionCounts::default();
    for (tenant, stream, n) in rows {
        let n = u64::from(n);
        out.total += n;
        if out.tenants.last().is_none_or(|t| t.tenant != tenant) {
            out.tenants.push(TenantSessions {
                tenant,
                ..TenantSessions::default()
            });
        }
        if let Some(t) = out.tenants.last_mut() {
            t.sessions += n;
            t.streams.push(StreamSessions {
                stream,
                sessions: n,
            });
        }
    }
    out
}

/// `GET /v1/sessions/count`.
pub fn count(ctl: &Control) -> Reply {
    let counts = group(ctl.app.enforcer().sessions().counts());
    Ok((
        StatusCode::OK,
        serde_json::to_value(counts).unwrap_or_default(),
    ))
}

#[utoipa::path(get, path = "/v1/sessions/count", tag = "sessions",
    responses(
        (status = 200, description = "Live sessions usher tracks, per tenant and stream (no ids)", body = SessionCounts),
        (status = 401, body = ErrorBody),
    ))]
pub fn count_doc() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_grouped_per_tenant_with_totals() {
        let c = group(vec![
            ("t1".into(), "a".into(), 2),
            ("t1".into(), "b".into(), 1),
            ("t2".into(), "a".into(), 4),
        ]);
        assert_eq!(c.total, 7);
        assert_eq!(c.tenants.len(), 2);
        assert_eq!((c.tenants[0].sessions, c.tenants[0].streams.len()), (3, 2));
    }
}

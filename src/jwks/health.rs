//! How each tenant's JWKS fetches are going, for `usher status` and the failing-tenants gauge:
//! the last good fetch and the failures since. Updated by the fetch that holds the tenant's lock;
//! read at scrape time.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// One tenant's JWKS state as shown to operators. Carries no URL path, key or error text
/// (an error may quote what the remote server sent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JwksTenantStatus {
    /// The tenant id.
    pub tenant: String,
    /// The host of the JWKS URL.
    pub host: String,
    /// `ok` (the last fetch succeeded), `failing` (it failed; the last good set stays) or
    /// `pending` (no fetch has finished yet).
    pub state: String,
    /// Keys in the set in use (`None`: no good fetch yet).
    pub keys: Option<usize>,
    /// Fetches failed since the last good one.
    pub consecutive_failures: u64,
    /// Seconds since the last good fetch (`None`: never).
    pub last_ok_s_ago: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Record {
    consecutive_failures: u64,
    last_ok: Option<Instant>,
    attempted: bool,
}

/// The fetch record of one tenant.
#[derive(Debug, Default)]
pub(super) struct Health(Mutex<Record>);

impl Health {
    fn with<R>(&self, f: impl FnOnce(&mut Record) -> R) -> R {
        // A few field writes: consistent even if a holder panicked.
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A fetch succeeded (a `304` included) at `now`.
    pub(super) fn ok(&self, now: Instant) {
        self.with(|r| {
            *r = Record {
                consecutive_failures: 0,
                last_ok: Some(now),
                attempted: true,
            }
        });
    }

    /// A fetch failed.
    pub(super) fn failed(&self) {
        self.with(|r| {
            r.consecutive_failures = r.consecutive_failures.saturating_add(1);
            r.attempted = true;
        });
    }

    /// Whether the last fetch failed.
    pub(super) fn failing(&self) -> bool {
        self.with(|r| r.consecutive_failures > 0)
    }

    /// The record as shown, at `now`.
    pub(super) fn status(
        &self,
        tenant: &str,
        host: &str,
        keys: Option<usize>,
        now: Instant,
    ) -> JwksTenantStatus {
        let r = self.with(|r| *r);
        let state = match (r.attempted, r.consecutive_failures) {
            (false, _) => "pending",
            (true, 0) => "ok",
            (true, _) => "failing",
        };
        JwksTenantStatus {
            tenant: tenant.to_owned(),
            host: host.to_owned(),
            state: state.to_owned(),
            keys,
            consecutive_failures: r.consecutive_failures,
            last_ok_s_ago: r
                .last_ok
                .map(|at| now.saturating_duration_since(at))
                .map(|d: Duration| d.as_secs()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_after_a_good_fetch_is_failing_and_keeps_the_last_good_time() {
        let h = Health::default();
        let t0 = Instant::now();
        assert_eq!(h.status("t1", "h", None, t0).state, "pending");
        h.ok(t0);
        assert!(!h.failing());
        h.failed();
        h.failed();
        let s = h.status("t1", "h", Some(2), t0 + Duration::from_secs(90));
        assert_eq!(s.state, "failing");
        assert_eq!(s.consecutive_failures, 2);
        assert_eq!(s.last_ok_s_ago, Some(90));
        assert!(h.failing());
        h.ok(t0 + Duration::from_secs(100));
        assert_eq!(h.status("t1", "h", Some(2), t0).consecutive_failures, 0);
    }
}

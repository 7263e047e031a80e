//! Viewer revocations (SPEC §9): per tenant and viewer id, tokens issued before a moment are
//! refused with `viewer-revoked`. Written only by the change path (`Change::RevokeViewer`, stored
//! in the state database first), read by every fresh `jwt` evaluation and by session admission.
//!
//! A revocation is forgotten at `forget_at` (its `before` plus the tenant's longest token lifetime
//! and the leeway): no token it covers can still be valid then. Until it is swept it is simply
//! ignored past that moment. The set is bounded by [`MAX_REVOCATIONS`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

/// Most revocations held at once; more are refused (HTTP 409) until old ones are forgotten.
pub const MAX_REVOCATIONS: usize = 100_000;

/// One revocation, times in seconds since the Unix epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revocation {
    /// Tokens with `iat` before this (or without `iat`) are refused.
    pub before: u64,
    /// When the revocation no longer matters and is forgotten.
    pub forget_at: u64,
}

/// The revocations in force; cheap to clone (one shared set).
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    inner: Arc<RwLock<HashMap<String, HashMap<String, Revocation>>>>,
}

impl Revocations {
    /// Whether a token of `viewer` in `tenant` issued at `iat` is revoked at `now`.
    pub fn covers(&self, tenant: &str, viewer: &str, iat: Option<f64>, now: u64) -> bool {
        let map = self.read();
        let Some(r) = map.get(tenant).and_then(|v| v.get(viewer)) else {
            return false;
        };
        now < r.forget_at && iat.is_none_or(|iat| iat < r.before as f64)
    }

    /// The revocation of `viewer` in `tenant`, if one is held.
    pub fn get(&self, tenant: &str, viewer: &str) -> Option<Revocation> {
        self.read().get(tenant)?.get(viewer).copied()
    }

    /// Holds `r` (merged with one already held: the later `before`, the later `forget_at`).
    pub fn insert(&self, tenant: &str, viewer: &str, r: Revocation) -> Revocation {
        let mut map = self.write();
        let slot = map
            .entry(tenant.to_owned())
            .or_default()
            .entry(viewer.to_owned())
            .or_insert(r);
        slot.before = slot.before.max(r.before);
        slot.forget_at = slot.forget_at.max(r.forget_at);
        *slot
    }

    /// Forgets one revocation.
    pub fn remove(&self, tenant: &str, viewer: &str) {
        let mut map = self.write();
        if let Some(viewers) = map.get_mut(tenant) {
            viewers.remove(viewer);
            if viewers.is_empty() {
                map.remove(tenant);
            }
        }
    }

    /// The (tenant, viewer) pairs whose revocation no longer matters at `now`.
    pub fn expired(&self, now: u64) -> Vec<(String, String)> {
        let map = self.read();
        let mut out = Vec::new();
        for (tenant, viewers) in map.iter() {
            for (viewer, r) in viewers {
                if r.forget_at <= now {
                    out.push((tenant.clone(), viewer.clone()));
                }
            }
        }
        out
    }

    /// Revocations held.
    pub fn len(&self) -> usize {
        self.read().values().map(HashMap::len).sum()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    // A poisoned lock only means a panic elsewhere; the map itself stays consistent.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, HashMap<String, Revocation>>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(
        &self,
    ) -> std::sync::RwLockWriteGuard<'_, HashMap<String, HashMap<String, Revocation>>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_issued_before_or_without_iat_are_covered_until_forgotten() {
        let r = Revocations::default();
        r.insert(
            "t1",
            "v",
            Revocation {
                before: 100,
                forget_at: 500,
            },
        );
        assert!(r.covers("t1", "v", Some(99.0), 200));
        assert!(r.covers("t1", "v", None, 200));
        assert!(
            !r.covers("t1", "v", Some(100.0), 200),
            "issued at `before`: a new token"
        );
        assert!(!r.covers("t1", "w", Some(1.0), 200));
        assert!(!r.covers("t2", "v", Some(1.0), 200));
        assert!(!r.covers("t1", "v", Some(1.0), 500), "forgotten");
        assert_eq!(r.expired(500), vec![("t1".to_string(), "v".to_string())]);
    }

    #[test]
    fn a_second_revocation_of_a_viewer_extends_the_first() {
        let r = Revocations::default();
        r.insert(
            "t1",
            "v",
            Revocation {
                before: 100,
                forget_at: 500,
            },
        );
        let merged = r.insert(
            "t1",
            "v",
            Revocation {
                before: 90,
                forget_at: 900,
            },
        );
        assert_eq!(
            merged,
            Revocation {
                before: 100,
                forget_at: 900
            }
        );
        r.remove("t1", "v");
        assert!(r.is_empty());
    }
}

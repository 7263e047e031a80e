//! `[sessions]` in the config file: the size of the live-session table and how long a viewer
//! revocation is kept when a tenant's tokens have no bounded lifetime.

use serde::Deserialize;

/// `[sessions]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsConfig {
    /// Most sessions tracked at once; 0 turns tracking off (policies with `cut_at_exp` or
    /// `max_sessions_per_viewer` then refuse their sessions).
    pub max_entries: usize,
    /// How long a viewer revocation is kept when some `jwt` policy of the tenant has no
    /// `max_lifetime_s` (so no token lifetime bounds it).
    pub revocation_max_age_s: u64,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            max_entries: 1_000_000,
            revocation_max_age_s: 7 * 24 * 3600,
        }
    }
}

/// With tracking off (`max_entries = 0`), one warning per `jwt` policy whose session rules need
/// it: its sessions are refused with `viewer-session-limit`.
pub fn untracked_rules(snapshot: &crate::policy::store::Snapshot) -> Vec<String> {
    snapshot
        .policies()
        .filter(|e| match &e.policy {
            crate::policy::model::Policy::Jwt(rules) => rules.sessions.need_tracking(),
            _ => false,
        })
        .map(|e| {
            format!(
                "policies[object={:?}]: cut_at_exp or max_sessions_per_viewer with \
                 [sessions] max_entries = 0: its sessions are refused (viewer-session-limit)",
                e.object
            )
        })
        .collect()
}

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

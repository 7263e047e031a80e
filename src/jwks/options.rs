//! The tunables of [`JwksKeys`](super::JwksKeys) (defaults from SPEC §2) and its fetch counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::schedule::RefreshBounds;
use crate::keys::MAX_ACTIVE_KEYS_PER_TENANT;

/// Tunables. `Default` is what SPEC §2 says; tests shorten them.
#[derive(Debug, Clone)]
pub struct JwksOptions {
    /// The whole exchange (DNS, connect, TLS, headers, body) must finish within this (5 s).
    pub fetch_timeout: Duration,
    /// At most this much body is read; a larger set is a failed fetch (256 KiB).
    pub max_body_bytes: usize,
    /// At most this many keys are taken from one set, in document order (10).
    pub max_keys: usize,
    /// The refresh window and its default.
    pub refresh: RefreshBounds,
    /// The first retry delay after a failed fetch; it doubles up to the refresh interval (5 s).
    pub first_backoff: Duration,
    /// An unknown kid forces a refetch at most this often per tenant (30 s).
    pub unknown_kid_interval: Duration,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            fetch_timeout: Duration::from_secs(5),
            max_body_bytes: 256 * 1024,
            max_keys: MAX_ACTIVE_KEYS_PER_TENANT,
            refresh: RefreshBounds::default(),
            first_backoff: Duration::from_secs(5),
            unknown_kid_interval: Duration::from_secs(30),
        }
    }
}

/// Fetch counters since start, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JwksStats {
    /// `200` with a JWK Set (changed or not).
    pub ok: u64,
    /// `304 Not Modified`.
    pub not_modified: u64,
    /// Network error, timeout, refused by the SSRF guard, other status, too large, not a set.
    pub error: u64,
    /// Unknown-kid refetches refused because one ran less than 30 s ago (no fetch made).
    pub rate_limited: u64,
    /// Unknown-kid refetches that waited for a fetch already in flight and took its result.
    pub joined: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) ok: AtomicU64,
    pub(super) not_modified: AtomicU64,
    pub(super) error: AtomicU64,
    pub(super) rate_limited: AtomicU64,
    pub(super) joined: AtomicU64,
}

pub(super) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

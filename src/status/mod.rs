//! `usher status` and `GET /v1/status`: what an operator on an edge node asks first — is usher
//! deciding, what is it denying and why, is the cache working, is MistServer keeping up, are the
//! JWKS fetches healthy. One report type, built by the daemon and read back by the command.
//!
//! - this file: the report's shape and [`build`], from the daemon's state and [`Recent`].
//! - [`text`]: the report for a terminal.
//! - [`client`]: the command's side: find the control listener and its token, ask, print.

pub mod client;
pub mod text;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::jwks::JwksTenantStatus;
use crate::recent::Recent;

/// Deny reasons listed at most.
pub const TOP_REASONS: usize = 5;

/// The body of `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StatusReport {
    /// usher's version.
    pub version: String,
    /// Seconds since the daemon started.
    pub uptime_s: u64,
    /// The seconds the rates below cover (up to 60; less just after start).
    pub window_s: f64,
    /// `USER_NEW` answers within the window.
    pub decisions: DecisionRates,
    /// The most frequent deny reasons within the window, most frequent first.
    pub top_deny_reasons: Vec<ReasonCount>,
    /// The decision cache.
    pub cache: CacheStatus,
    /// Stream names waiting for MistServer's `invalidate_sessions`.
    pub invalidations: InvalidationStatus,
    /// Each tenant with a JWKS URL (empty when none has one).
    pub jwks: Vec<JwksTenantStatus>,
    /// Webhook calls in flight now.
    pub webhooks_in_flight: u64,
}

/// Allowed and denied answers within the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DecisionRates {
    pub allow_per_s: f64,
    pub deny_per_s: f64,
    pub allowed: u64,
    pub denied: u64,
}

/// One deny reason within the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReasonCount {
    /// The reason code (SPEC §3).
    pub reason: String,
    pub count: u64,
    pub per_s: f64,
}

/// The decision cache now, and its hit ratio within the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CacheStatus {
    pub entries: u64,
    pub max_entries: u64,
    /// Hits over lookups within the window (`null`: no lookup).
    pub hit_ratio: Option<f64>,
    pub hits: u64,
    pub misses: u64,
}

/// The MistServer invalidation queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct InvalidationStatus {
    /// Names not yet accepted by MistServer.
    pub pending: u64,
    /// Seconds the oldest of them has waited (`null`: none waits).
    pub oldest_pending_s: Option<u64>,
    /// Whether the last call to MistServer failed.
    pub mist_failing: bool,
    /// Failed MistServer API calls since start.
    pub mist_api_errors: u64,
    /// Names refused because the queue was full, since start.
    pub refused: u64,
}

/// The report, now.
pub fn build(app: &App, recent: &Recent) -> StatusReport {
    let w = recent.window();
    let top_deny_reasons = w
        .top_denials(TOP_REASONS)
        .into_iter()
        .map(|(reason, count)| ReasonCount {
            reason: reason.as_str().to_owned(),
            count,
            per_s: w.per_second(count),
        })
        .collect();
    let queue = app.enforcer().mist_status();
    StatusReport {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_s: recent.uptime().as_secs(),
        window_s: w.span.as_secs_f64(),
        decisions: DecisionRates {
            allow_per_s: w.per_second(w.allowed()),
            deny_per_s: w.per_second(w.denied()),
            allowed: w.allowed(),
            denied: w.denied(),
        },
        top_deny_reasons,
        cache: CacheStatus {
            entries: app.cache_entries(),
            max_entries: app.config().cache.max_entries,
            hit_ratio: w.hit_ratio(),
            hits: w.cache_hits,
            misses: w.cache_misses,
        },
        invalidations: InvalidationStatus {
            pending: queue.as_ref().map_or(0, |q| q.pending as u64),
            oldest_pending_s: queue
                .as_ref()
                .and_then(|q| q.oldest_wait)
                .map(|d| d.as_secs()),
            mist_failing: queue.as_ref().is_some_and(|q| q.last_error.is_some()),
            mist_api_errors: queue.as_ref().map_or(0, |q| q.api_errors),
            refused: queue.as_ref().map_or(0, |q| q.refused),
        },
        jwks: app
            .evaluator()
            .jwks()
            .map(|j| j.tenant_status())
            .unwrap_or_default(),
        webhooks_in_flight: app.evaluator().webhooks().in_flight() as u64,
    }
}

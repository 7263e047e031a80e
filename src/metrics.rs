//! Prometheus metrics. Counters are plain atomics indexed by small enums, so counting on the
//! `USER_NEW` path is a few relaxed adds; gauges owned by other parts are read at scrape time.
//! No label ever carries a playback id, session id, viewer IP or token.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::protocol::Trigger;
use crate::reason::DecidedBy;
use crate::reason::Reason;

/// Policy types as metric labels; `none` for requests that never reached a policy.
pub const POLICY_TYPES: [DecidedBy; 5] = [
    DecidedBy::Public,
    DecidedBy::Deny,
    DecidedBy::Jwt,
    DecidedBy::Webhook,
    DecidedBy::None,
];

/// Upper bounds of the latency histograms, in seconds.
const BUCKETS_S: [f64; 14] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25,
    1.0, 5.0,
];

/// A latency histogram with fixed buckets.
#[derive(Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_S.len()],
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS_S.iter().position(|b| s <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (b, n) in BUCKETS_S.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// Every counter and histogram usher keeps.
pub struct Metrics {
    decisions: [[AtomicU64; Reason::ALL.len()]; POLICY_TYPES.len()],
    /// USER_NEW latency, cache hit (index 0) and miss (index 1; joined waits count as misses).
    decision_latency: [Histogram; 2],
    webhook_latency: Histogram,
    user_end: AtomicU64,
    invalidations: AtomicU64,
    invalidated_decisions: AtomicU64,
    signatures_known: AtomicU64,
    /// Push answers (SPEC §10) by trigger ([`Trigger::PUSHES`]) and reason.
    pushes: [[AtomicU64; Reason::ALL.len()]; Trigger::PUSHES.len()],
    /// 1 when the config file, as last reloaded, changes a section only a restart applies.
    restart_required: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            decisions: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            decision_latency: Default::default(),
            webhook_latency: Histogram::default(),
            user_end: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            invalidated_decisions: AtomicU64::new(0),
            signatures_known: AtomicU64::new(0),
            pushes: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            restart_required: AtomicU64::new(0),
        }
    }
}

/// Values owned elsewhere, read when `/metrics` is scraped.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub cache_entries: u64,
    pub webhooks_in_flight: u64,
    /// (result label, count) pairs of JWKS fetches.
    pub jwks_fetches: Vec<(&'static str, u64)>,
    pub mist_calls_ok: u64,
    pub mist_api_errors: u64,
    pub mist_pending_streams: u64,
    /// Seconds the oldest stream name still waiting for MistServer has waited (0: none waits).
    pub mist_pending_oldest_s: u64,
    /// Tenants with a JWKS URL whose last fetch failed.
    pub jwks_tenants_failing: u64,
}

/// The decision counters at one moment, summed over policy types (for [`crate::recent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Answers by reason, indexed by [`Reason::index`].
    pub by_reason: [u64; Reason::ALL.len()],
    /// Answers from the cache.
    pub cache_hits: u64,
    /// Answers that needed an evaluation (joined waits included).
    pub cache_misses: u64,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            by_reason: [0; Reason::ALL.len()],
            cache_hits: 0,
            cache_misses: 0,
        }
    }
}

impl Metrics {
    /// Whether the config file, as last reloaded, changes a section only a restart applies.
    pub fn set_restart_required(&self, required: bool) {
        self.restart_required
            .store(u64::from(required), Ordering::Relaxed);
    }

    /// Counts one answered `USER_NEW` and its latency.
    pub fn decision(
        &self,
        policy_type: DecidedBy,
        reason: Reason,
        cache_hit: bool,
        took: Duration,
    ) {
        let p = POLICY_TYPES
            .iter()
            .position(|t| *t == policy_type)
            .unwrap_or(POLICY_TYPES.len() - 1);
        let r = reason.index();
        self.decisions[p][r].fetch_add(1, Ordering::Relaxed);
        self.decision_latency[usize::from(!cache_hit)].observe(took);
    }

    /// Counts one answered push trigger (one of [`Trigger::PUSHES`]).
    pub fn push(&self, trigger: Trigger, reason: Reason) {
        if let Some(t) = Trigger::PUSHES.iter().position(|p| *p == trigger) {
            self.pushes[t][reason.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one webhook call's latency.
    pub fn webhook(&self, took: Duration) {
        self.webhook_latency.observe(took);
    }

    /// Counts one token signature taken as verified without a verify (a re-check).
    pub fn signature_known(&self) {
        self.signatures_known.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one `USER_END`.
    pub fn user_end(&self) {
        self.user_end.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one invalidation and the cached decisions it dropped.
    pub fn invalidation(&self, dropped: u64) {
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        self.invalidated_decisions
            .fetch_add(dropped, Ordering::Relaxed);
    }

    /// How many `USER_NEW` answers carried `reason` (all policy types), for tests and tools.
    pub fn decisions_with(&self, reason: Reason) -> u64 {
        let r = reason.index();
        self.decisions
            .iter()
            .map(|row| row[r].load(Ordering::Relaxed))
            .sum()
    }

    /// Every decision counter now, summed over policy types (read off the hot path).
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for row in &self.decisions {
            for (sum, n) in t.by_reason.iter_mut().zip(row) {
                *sum += n.load(Ordering::Relaxed);
            }
        }
        t.cache_hits = self.decision_latency[0].count();
        t.cache_misses = self.decision_latency[1].count();
        t
    }

    /// `usher_push_decisions_total`: publisher answers, apart from the viewers' decisions.
    fn render_pushes(&self, out: &mut String) {
        header(
            out,
            "usher_push_decisions_total",
            "counter",
            "STREAM_PUSH and PUSH_REWRITE answers by result and reason.",
        );
        let rows = Trigger::PUSHES.iter().zip(&self.pushes);
        reason_rows(
            out,
            "usher_push_decisions_total",
            rows.map(|(t, row)| (format!("trigger=\"{t}\""), &row[..])),
        );
    }

    /// The Prometheus text exposition.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(16 * 1024);
        header(&mut out, "usher_build_info", "gauge", "Build information.");
        let _ = writeln!(
            out,
            "usher_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        header(
            &mut out,
            "usher_decisions_total",
            "counter",
            "USER_NEW answers by policy type, result and reason.",
        );
        let rows = POLICY_TYPES.iter().zip(&self.decisions);
        reason_rows(
            &mut out,
            "usher_decisions_total",
            rows.map(|(p, row)| (format!("trigger=\"USER_NEW\",policy=\"{p}\""), &row[..])),
        );
        self.render_pushes(&mut out);
        header(
            &mut out,
            "usher_decision_duration_seconds",
            "histogram",
            "USER_NEW latency inside usher, by cache outcome.",
        );
        for (i, cache) in ["hit", "miss"].iter().enumerate() {
            self.decision_latency[i].render(
                &mut out,
                "usher_decision_duration_seconds",
                &format!("cache=\"{cache}\""),
            );
        }
        header(
            &mut out,
            "usher_webhook_duration_seconds",
            "histogram",
            "Webhook call latency.",
        );
        self.webhook_latency
            .render(&mut out, "usher_webhook_duration_seconds", "");
        let simple = [
            (
                "usher_user_end_total",
                "counter",
                "USER_END triggers handled.",
                self.user_end.load(Ordering::Relaxed),
            ),
            (
                "usher_signatures_known_total",
                "counter",
                "Token signatures not verified again: the same token verified with the same key \
                 when its session was decided before the stream was invalidated.",
                self.signatures_known.load(Ordering::Relaxed),
            ),
            (
                "usher_invalidations_total",
                "counter",
                "Stream invalidations.",
                self.invalidations.load(Ordering::Relaxed),
            ),
            (
                "usher_invalidated_decisions_total",
                "counter",
                "Cached decisions dropped by invalidations.",
                self.invalidated_decisions.load(Ordering::Relaxed),
            ),
            (
                "usher_cache_entries",
                "gauge",
                "Cached decisions.",
                gauges.cache_entries,
            ),
            (
                "usher_reload_restart_required",
                "gauge",
                "1 when the config file, as last reloaded, changes a section only a restart applies.",
                self.restart_required.load(Ordering::Relaxed),
            ),
            (
                "usher_webhooks_in_flight",
                "gauge",
                "Webhook calls in flight.",
                gauges.webhooks_in_flight,
            ),
            (
                "usher_mist_api_calls_total",
                "counter",
                "Accepted MistServer invalidate_sessions calls.",
                gauges.mist_calls_ok,
            ),
            (
                "usher_mist_api_errors_total",
                "counter",
                "Failed MistServer API calls.",
                gauges.mist_api_errors,
            ),
            (
                "usher_mist_pending_streams",
                "gauge",
                "Stream names waiting to reach MistServer.",
                gauges.mist_pending_streams,
            ),
            (
                "usher_mist_pending_oldest_seconds",
                "gauge",
                "How long the oldest stream name waiting for MistServer has waited.",
                gauges.mist_pending_oldest_s,
            ),
            (
                "usher_jwks_tenants_failing",
                "gauge",
                "Tenants with a JWKS URL whose last fetch failed.",
                gauges.jwks_tenants_failing,
            ),
        ];
        for (name, kind, help, value) in simple {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        header(
            &mut out,
            "usher_jwks_fetches_total",
            "counter",
            "JWKS fetches by result.",
        );
        for (result, n) in &gauges.jwks_fetches {
            let _ = writeln!(out, "usher_jwks_fetches_total{{result=\"{result}\"}} {n}");
        }
        out
    }
}

/// One sample per reason counted so far: `metric{labels,result="allow|deny",reason="…"} n`, for
/// each (labels, counters by reason) row.
fn reason_rows<'a>(
    out: &mut String,
    metric: &str,
    rows: impl Iterator<Item = (String, &'a [AtomicU64])>,
) {
    for (labels, row) in rows {
        for (reason, n) in Reason::ALL.iter().zip(row) {
            let n = n.load(Ordering::Relaxed);
            if n == 0 {
                continue;
            }
            let result = if *reason == Reason::Allowed {
                "allow"
            } else {
                "deny"
            };
            let _ = writeln!(
                out,
                "{metric}{{{labels},result=\"{result}\",reason=\"{reason}\"}} {n}"
            );
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_render_with_policy_result_and_reason_labels() {
        let m = Metrics::default();
        m.decision(
            DecidedBy::Jwt,
            Reason::JwtExpired,
            false,
            Duration::from_micros(80),
        );
        m.decision(
            DecidedBy::Public,
            Reason::Allowed,
            true,
            Duration::from_micros(3),
        );
        let text = m.render(&Gauges::default());
        assert!(text.contains(
            "usher_decisions_total{trigger=\"USER_NEW\",policy=\"jwt\",result=\"deny\",reason=\"jwt-expired\"} 1"
        ));
        assert!(text.contains("usher_decision_duration_seconds_count{cache=\"hit\"} 1"));
        assert!(
            text.contains("usher_decision_duration_seconds_bucket{cache=\"miss\",le=\"0.0001\"} 1")
        );
        assert_eq!(m.decisions_with(Reason::JwtExpired), 1);
    }

    #[test]
    fn push_answers_render_by_trigger_result_and_reason_apart_from_viewers() {
        let m = Metrics::default();
        m.push(Trigger::StreamPush, Reason::Allowed);
        m.push(Trigger::PushRewrite, Reason::StreamKeyMismatch);
        m.push(Trigger::PushRewrite, Reason::StreamKeyMismatch);
        m.push(Trigger::UserNew, Reason::Allowed); // not a push: not counted here
        let text = m.render(&Gauges::default());
        assert!(text.contains(
            "usher_push_decisions_total{trigger=\"STREAM_PUSH\",result=\"allow\",reason=\"allowed\"} 1"
        ));
        assert!(text.contains(
            "usher_push_decisions_total{trigger=\"PUSH_REWRITE\",result=\"deny\",reason=\"stream-key-mismatch\"} 2"
        ));
        assert_eq!(
            text.matches("usher_push_decisions_total{").count(),
            2,
            "{text}"
        );
        assert!(!text.contains("usher_decisions_total{"), "{text}");
    }

    #[test]
    fn totals_sum_reasons_over_policy_types_and_split_hits_from_misses() {
        let m = Metrics::default();
        m.decision(
            DecidedBy::Jwt,
            Reason::Allowed,
            false,
            Duration::from_micros(80),
        );
        m.decision(
            DecidedBy::Public,
            Reason::Allowed,
            true,
            Duration::from_micros(3),
        );
        m.decision(
            DecidedBy::Jwt,
            Reason::JwtSigFail,
            false,
            Duration::from_micros(90),
        );
        let t = m.totals();
        assert_eq!(t.by_reason[Reason::Allowed.index()], 2);
        assert_eq!(t.by_reason[Reason::JwtSigFail.index()], 1);
        assert_eq!((t.cache_hits, t.cache_misses), (1, 2));
    }

    #[test]
    fn pending_age_and_failing_jwks_gauges_are_rendered() {
        let gauges = Gauges {
            mist_pending_oldest_s: 301,
            jwks_tenants_failing: 2,
            ..Gauges::default()
        };
        let text = Metrics::default().render(&gauges);
        assert!(
            text.contains("\nusher_mist_pending_oldest_seconds 301\n"),
            "{text}"
        );
        assert!(text.contains("\nusher_jwks_tenants_failing 2\n"), "{text}");
        assert!(text.contains("# TYPE usher_mist_pending_oldest_seconds gauge"));
    }
}

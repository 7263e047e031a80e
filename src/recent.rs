//! The last minute of decisions, for `usher status`: Prometheus keeps history for dashboards, but
//! an operator on an edge node wants "what is happening now" without one. A task samples the
//! cumulative decision counters once a second into a fixed ring of [`SLOTS`] samples; a window
//! is the difference between the newest and the oldest sample, so it costs nothing on the hot path
//! and its memory is fixed (a few KiB).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::metrics::{Metrics, Totals};
use crate::reason::Reason;

/// Samples kept: 60 one-second intervals.
pub const SLOTS: usize = 61;
/// How often the sampler reads the counters.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// The ring of recent samples. Cheap to clone.
#[derive(Clone)]
pub struct Recent {
    ring: Arc<Mutex<VecDeque<(Instant, Totals)>>>,
    started: Instant,
}

impl Default for Recent {
    fn default() -> Self {
        Recent {
            ring: Arc::new(Mutex::new(VecDeque::with_capacity(SLOTS))),
            started: Instant::now(),
        }
    }
}

/// What changed between the oldest and the newest sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The time between the two samples (zero until two samples exist).
    pub span: Duration,
    /// Decisions by reason within the window, indexed by [`Reason::index`].
    pub by_reason: [u64; Reason::ALL.len()],
    /// Cache hits within the window.
    pub cache_hits: u64,
    /// Cache misses within the window.
    pub cache_misses: u64,
}

impl Window {
    /// Allowed answers within the window.
    pub fn allowed(&self) -> u64 {
        self.by_reason[Reason::Allowed.index()]
    }

    /// Denied answers within the window.
    pub fn denied(&self) -> u64 {
        self.by_reason.iter().sum::<u64>() - self.allowed()
    }

    /// `n` per second over the window (0 for an empty window).
    pub fn per_second(&self, n: u64) -> f64 {
        let s = self.span.as_secs_f64();
        if s > 0.0 { n as f64 / s } else { 0.0 }
    }

    /// Deny reasons seen in the window, most frequent first (ties by reason code), at most `n`.
    pub fn top_denials(&self, n: usize) -> Vec<(Reason, u64)> {
        let mut seen: Vec<(Reason, u64)> = Reason::ALL
            .iter()
            .zip(self.by_reason)
            .filter(|(r, count)| **r != Reason::Allowed && *count > 0)
            .map(|(r, count)| (*r, count))
            .collect();
        seen.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.as_str().cmp(b.0.as_str())));
        seen.truncate(n);
        seen
    }

    /// Hits over lookups within the window (`None`: no lookup).
    pub fn hit_ratio(&self) -> Option<f64> {
        let all = self.cache_hits + self.cache_misses;
        (all > 0).then(|| self.cache_hits as f64 / all as f64)
    }
}

impl Recent {
    /// Time since this window was made (the daemon's uptime).
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Adds a sample taken at `at`, dropping the oldest beyond [`SLOTS`].
    pub fn record(&self, at: Instant, totals: Totals) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == SLOTS {
            ring.pop_front();
        }
        ring.push_back((at, totals));
    }

    /// The window between the oldest and the newest sample.
    pub fn window(&self) -> Window {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let (Some((t0, first)), Some((t1, last))) = (ring.front(), ring.back()) else {
            return Window {
                span: Duration::ZERO,
                by_reason: [0; Reason::ALL.len()],
                cache_hits: 0,
                cache_misses: 0,
            };
        };
        let mut by_reason = [0; Reason::ALL.len()];
        for ((d, a), b) in by_reason
            .iter_mut()
            .zip(first.by_reason)
            .zip(last.by_reason)
        {
            *d = b.saturating_sub(a);
        }
        Window {
            span: t1.saturating_duration_since(*t0),
            by_reason,
            cache_hits: last.cache_hits.saturating_sub(first.cache_hits),
            cache_misses: last.cache_misses.saturating_sub(first.cache_misses),
        }
    }

    /// Samples `metrics` every [`INTERVAL`] until the task is dropped or aborted.
    pub async fn sample(self, metrics: Arc<Metrics>) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.record(Instant::now(), metrics.totals());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(allowed: u64, sig_fail: u64, expired: u64, hits: u64) -> Totals {
        let mut t = Totals::default();
        t.by_reason[Reason::Allowed.index()] = allowed;
        t.by_reason[Reason::JwtSigFail.index()] = sig_fail;
        t.by_reason[Reason::JwtExpired.index()] = expired;
        t.cache_hits = hits;
        t.cache_misses = allowed + sig_fail + expired - hits;
        t
    }

    #[test]
    fn the_window_is_the_difference_between_oldest_and_newest_sample() {
        let r = Recent::default();
        let t0 = Instant::now();
        r.record(t0, totals(100, 5, 1, 50));
        r.record(t0 + Duration::from_secs(10), totals(300, 25, 11, 200));
        let w = r.window();
        assert_eq!(w.span, Duration::from_secs(10));
        assert_eq!((w.allowed(), w.denied()), (200, 30));
        assert_eq!(w.per_second(w.allowed()), 20.0);
        assert_eq!(
            w.top_denials(5),
            vec![(Reason::JwtSigFail, 20), (Reason::JwtExpired, 10)]
        );
        assert_eq!(w.hit_ratio(), Some(150.0 / 230.0));
    }

    #[test]
    fn the_ring_keeps_at_most_sixty_one_samples() {
        let r = Recent::default();
        let t0 = Instant::now();
        for i in 0..500u64 {
            r.record(t0 + Duration::from_secs(i), totals(i, 0, 0, 0));
        }
        assert_eq!(r.ring.lock().unwrap().len(), SLOTS);
        let w = r.window();
        assert_eq!(w.span, Duration::from_secs(60));
        assert_eq!(w.allowed(), 60);
    }

    #[test]
    fn an_empty_or_single_sample_window_is_zero_and_divides_safely() {
        let r = Recent::default();
        let w = r.window();
        assert_eq!(
            (w.span, w.allowed(), w.per_second(5)),
            (Duration::ZERO, 0, 0.0)
        );
        assert_eq!(w.hit_ratio(), None);
        r.record(Instant::now(), totals(7, 0, 0, 0));
        assert_eq!(r.window().allowed(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_sampler_reads_the_counters_every_second() {
        let metrics = Arc::new(Metrics::default());
        let r = Recent::default();
        let task = tokio::spawn(r.clone().sample(metrics.clone()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        for _ in 0..30 {
            metrics.decision(
                crate::reason::DecidedBy::Jwt,
                Reason::Allowed,
                true,
                Duration::from_micros(5),
            );
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let w = r.window();
        task.abort();
        assert_eq!(w.span, Duration::from_secs(3));
        assert_eq!(w.allowed(), 30);
        assert_eq!(w.per_second(w.allowed()), 10.0);
        assert_eq!(w.hit_ratio(), Some(1.0));
    }
}

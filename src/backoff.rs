//! How long a retrying loop waits — the invalidation queue retrying MistServer, the fleet's
//! watches, consumer and set-up retrying NATS: capped exponential growth with jitter, so a
//! restarted server is not hit by every usher of a fleet in the same instant.

use std::time::Duration;

use rand::Rng;

/// Floor for the first delay, so a zero `initial` cannot make a hot retry loop.
const MIN_DELAY: Duration = Duration::from_millis(1);

/// Capped exponential backoff with "equal jitter": the n-th retry waits a uniformly random time in
/// `[base/2, base]`, where `base = min(max, initial · 2ⁿ)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The base delay of the first retry.
    pub initial: Duration,
    /// The largest base delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 100 ms, doubling up to 30 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The base delay (before jitter) of retry number `attempt` (0 for the first retry).
    pub fn base(&self, attempt: u32) -> Duration {
        let initial = self.initial.max(MIN_DELAY);
        let max = self.max.max(initial);
        let factor = 2u32.saturating_pow(attempt.min(31));
        initial.saturating_mul(factor).min(max)
    }

    /// The delay of retry number `attempt` for a jitter draw `unit` in `[0, 1]`: `base · (1 + unit) / 2`.
    pub fn delay_with(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.base(attempt);
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            1.0
        };
        base.mul_f64(0.5 + unit / 2.0).max(MIN_DELAY)
    }

    /// The delay of retry number `attempt`, with a fresh random jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        let unit = rand::rng().random_range(0.0..=1.0);
        self.delay_with(attempt, unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn base_doubles_from_initial_and_stops_at_max() {
        let b = Backoff::default();
        assert_eq!(b.base(0), MS(100));
        assert_eq!(b.base(1), MS(200));
        assert_eq!(b.base(4), MS(1600));
        assert_eq!(b.base(8), MS(25_600));
        assert_eq!(b.base(9), Duration::from_secs(30));
        assert_eq!(b.base(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn jitter_keeps_the_delay_between_half_base_and_base() {
        let b = Backoff::default();
        assert_eq!(b.delay_with(3, 0.0), MS(400));
        assert_eq!(b.delay_with(3, 1.0), MS(800));
        assert_eq!(b.delay_with(3, f64::NAN), MS(800));
        assert_eq!(b.delay_with(3, 7.0), MS(800));
        for attempt in 0..40 {
            for _ in 0..50 {
                let d = b.delay(attempt);
                assert!(d >= b.base(attempt) / 2 && d <= b.base(attempt), "{d:?}");
                assert!(d <= Duration::from_secs(30));
            }
        }
    }

    #[test]
    fn a_zero_or_inverted_configuration_still_waits() {
        let b = Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
        };
        assert!(b.delay(0) >= MIN_DELAY);
        let inverted = Backoff {
            initial: Duration::from_secs(2),
            max: Duration::from_secs(1),
        };
        assert_eq!(inverted.base(5), Duration::from_secs(2));
    }
}

//! When to fetch a tenant's JWKS next: the server's `Cache-Control: max-age` bounded to the
//! configured window, and the backoff after a failed fetch. Pure functions, unit-tested here.

use std::time::Duration;

/// The refresh window and the fallback when the server gives no usable `max-age`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshBounds {
    /// Never refresh more often than this (SPEC §2: 60 s).
    pub min: Duration,
    /// Never keep a set longer than this without asking again (SPEC §2: 1 h).
    pub max: Duration,
    /// Used when `Cache-Control` is absent, has no `max-age`, or it is not a number (5 min).
    pub default: Duration,
}

impl Default for RefreshBounds {
    fn default() -> Self {
        RefreshBounds {
            min: Duration::from_secs(60),
            max: Duration::from_secs(3600),
            default: Duration::from_secs(300),
        }
    }
}

/// How long the fetched set is fresh: `max-age` of `cache_control` (case-insensitive, quoted or
/// not) clamped to `bounds.min..=bounds.max`; `bounds.default` (itself clamped) when the header
/// is absent or carries no valid `max-age`. `no-cache`/`no-store` without `max-age` count as
/// absent: asking at the floor rate would only load the server.
pub fn refresh_interval(cache_control: Option<&str>, bounds: &RefreshBounds) -> Duration {
    let max_age = cache_control.and_then(max_age_s).map(Duration::from_secs);
    clamp(max_age.unwrap_or(bounds.default), bounds)
}

fn clamp(d: Duration, bounds: &RefreshBounds) -> Duration {
    // Not `Duration::clamp`: it panics when min > max, and bounds may come from a caller.
    d.min(bounds.max).max(bounds.min)
}

/// The `max-age` directive in seconds; `None` when absent or not a non-negative integer. A
/// value too large for `u64` counts as `u64::MAX` (RFC 9111 §1.2.2: treat as "infinity").
fn max_age_s(header: &str) -> Option<u64> {
    header.split(',').find_map(|directive| {
        let (name, value) = directive.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(value.parse::<u64>().unwrap_or(u64::MAX))
    })
}

/// The delay before the next retry after a failed fetch: `first` after the first failure, then
/// doubling, never above `cap` (the refresh interval: failing never makes usher ask less often
/// than it would when all is well).
pub fn next_backoff(previous: Option<Duration>, first: Duration, cap: Duration) -> Duration {
    let next = match previous {
        None => first,
        Some(d) => d.saturating_mul(2),
    };
    next.min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn interval(h: Option<&str>) -> Duration {
        refresh_interval(h, &RefreshBounds::default())
    }

    #[test]
    fn max_age_below_the_floor_is_raised_to_60_s() {
        assert_eq!(interval(Some("max-age=5")), secs(60));
        assert_eq!(interval(Some("max-age=0")), secs(60));
    }

    #[test]
    fn max_age_above_the_ceiling_is_lowered_to_1_h() {
        assert_eq!(interval(Some("max-age=999999")), secs(3600));
        assert_eq!(
            interval(Some("max-age=99999999999999999999999")),
            secs(3600)
        );
    }

    #[test]
    fn max_age_inside_the_window_is_taken() {
        assert_eq!(interval(Some("public, max-age=120")), secs(120));
        assert_eq!(
            interval(Some("Max-Age=\"900\", must-revalidate")),
            secs(900)
        );
        assert_eq!(interval(Some("no-transform , max-age = 61")), secs(61));
    }

    #[test]
    fn no_or_invalid_max_age_means_5_min() {
        for h in [
            None,
            Some(""),
            Some("public"),
            Some("no-cache"),
            Some("max-age=-5"),
            Some("max-age=ten"),
            Some("max-age=1.5"),
            Some("max-age="),
            Some("s-maxage=30"),
        ] {
            assert_eq!(interval(h), secs(300), "{h:?}");
        }
    }

    #[test]
    fn inverted_bounds_do_not_panic() {
        let odd = RefreshBounds {
            min: secs(10),
            max: secs(5),
            default: secs(7),
        };
        assert_eq!(refresh_interval(Some("max-age=1"), &odd), secs(10));
    }

    #[test]
    fn backoff_starts_at_5_s_doubles_and_stops_at_the_refresh_interval() {
        let (first, cap) = (secs(5), secs(60));
        let mut d = None;
        let mut seen = Vec::new();
        for _ in 0..6 {
            let next = next_backoff(d, first, cap);
            seen.push(next.as_secs());
            d = Some(next);
        }
        assert_eq!(seen, [5, 10, 20, 40, 60, 60]);
        assert_eq!(next_backoff(Some(Duration::MAX), first, cap), cap);
    }
}

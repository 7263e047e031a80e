//! The status report for a terminal: one screen, fixed labels in a left column, figures right.

use std::fmt::Write;

use super::StatusReport;

/// Renders `r` as plain text (no colour, no control characters: safe to pipe and paste).
pub fn render(r: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "usher {}, up {}, rates over the last {:.0} s",
        r.version,
        duration(r.uptime_s),
        r.window_s
    );
    let d = &r.decisions;
    let _ = writeln!(
        out,
        "{:<12}{:>10.1}/s allowed  {:>10.1}/s denied  ({} allowed, {} denied)",
        "decisions", d.allow_per_s, d.deny_per_s, d.allowed, d.denied
    );
    if r.top_deny_reasons.is_empty() {
        let _ = writeln!(out, "{:<12}none", "denials");
    }
    for (i, reason) in r.top_deny_reasons.iter().enumerate() {
        let label = if i == 0 { "denials" } else { "" };
        let _ = writeln!(
            out,
            "{label:<12}{:<24}{:>10.1}/s  ({})",
            reason.reason, reason.per_s, reason.count
        );
    }
    let c = &r.cache;
    let ratio = c
        .hit_ratio
        .map_or("-".to_owned(), |x| format!("{:.1}%", x * 100.0));
    let _ = writeln!(
        out,
        "{:<12}{} / {} entries, hit ratio {ratio} ({} hits, {} misses)",
        "cache", c.entries, c.max_entries, c.hits, c.misses
    );
    let inv = &r.invalidations;
    let mut line = format!("{} pending", inv.pending);
    if let Some(s) = inv.oldest_pending_s {
        let _ = write!(line, ", oldest {}", duration(s));
    }
    if inv.mist_failing {
        let _ = write!(
            line,
            ", MistServer failing ({} errors since start)",
            inv.mist_api_errors
        );
    }
    if inv.refused > 0 {
        let _ = write!(line, ", {} refused (queue full)", inv.refused);
    }
    let _ = writeln!(out, "{:<12}{line}", "mist");
    if r.jwks.is_empty() {
        let _ = writeln!(out, "{:<12}no tenant has a JWKS URL", "jwks");
    }
    for (i, t) in r.jwks.iter().enumerate() {
        let label = if i == 0 { "jwks" } else { "" };
        let keys = t
            .keys
            .map_or("no keys yet".to_owned(), |n| format!("{n} keys"));
        let mut line = format!("{:<16}{:<28}{:<9}{keys}", t.tenant, t.host, t.state);
        if t.consecutive_failures > 0 {
            let _ = write!(line, ", {} failures", t.consecutive_failures);
        }
        if let Some(s) = t.last_ok_s_ago {
            let _ = write!(line, ", last good fetch {} ago", duration(s));
        }
        let _ = writeln!(out, "{label:<12}{line}");
    }
    let _ = writeln!(out, "{:<12}{} in flight", "webhooks", r.webhooks_in_flight);
    out
}

/// `3h 04m`, `4m 05s`, `7s`.
fn duration(s: u64) -> String {
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::JwksTenantStatus;
    use crate::status::{CacheStatus, DecisionRates, InvalidationStatus, ReasonCount};

    fn report() -> StatusReport {
        StatusReport {
            version: "0.1.0".into(),
            uptime_s: 7_500,
            window_s: 60.0,
            decisions: DecisionRates {
                allow_per_s: 1234.5,
                deny_per_s: 10.0,
                allowed: 74_070,
                denied: 600,
            },
            top_deny_reasons: vec![
                ReasonCount {
                    reason: "jwt-expired".into(),
                    count: 480,
                    per_s: 8.0,
                },
                ReasonCount {
                    reason: "jwt-sig-fail".into(),
                    count: 120,
                    per_s: 2.0,
                },
            ],
            cache: CacheStatus {
                entries: 45_210,
                max_entries: 1_000_000,
                hit_ratio: Some(0.973),
                hits: 72_000,
                misses: 1_980,
            },
            invalidations: InvalidationStatus {
                pending: 12,
                oldest_pending_s: Some(312),
                mist_failing: true,
                mist_api_errors: 4,
                refused: 0,
            },
            jwks: vec![JwksTenantStatus {
                tenant: "t2".into(),
                host: "keys.example.net".into(),
                state: "failing".into(),
                keys: Some(2),
                consecutive_failures: 3,
                last_ok_s_ago: Some(912),
            }],
            webhooks_in_flight: 0,
        }
    }

    #[test]
    fn the_text_shows_rates_reasons_cache_queue_and_jwks() {
        let text = render(&report());
        assert!(text.starts_with("usher 0.1.0, up 2h 05m, rates over the last 60 s\n"));
        assert!(text.contains("1234.5/s allowed"), "{text}");
        assert!(text.contains("denials     jwt-expired"), "{text}");
        assert!(
            text.contains("45210 / 1000000 entries, hit ratio 97.3%"),
            "{text}"
        );
        assert!(
            text.contains("12 pending, oldest 5m 12s, MistServer failing (4 errors since start)"),
            "{text}"
        );
        assert!(text.contains("failing  2 keys, 3 failures, last good fetch 15m 12s ago"));
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'));
    }

    #[test]
    fn an_idle_daemon_says_none_rather_than_leaving_blanks() {
        let mut r = report();
        r.top_deny_reasons.clear();
        r.jwks.clear();
        r.cache.hit_ratio = None;
        r.invalidations = InvalidationStatus {
            pending: 0,
            oldest_pending_s: None,
            mist_failing: false,
            mist_api_errors: 0,
            refused: 0,
        };
        let text = render(&r);
        assert!(text.contains("denials     none\n"), "{text}");
        assert!(text.contains("hit ratio -"), "{text}");
        assert!(text.contains("mist        0 pending\n"), "{text}");
        assert!(
            text.contains("jwks        no tenant has a JWKS URL\n"),
            "{text}"
        );
    }
}

//! systemd integration: `READY=1` once listeners are bound and state is loaded, `WATCHDOG=1`
//! pings from the tokio runtime (a stalled runtime stops pinging and gets restarted),
//! `RELOADING=1`/`STOPPING=1` around SIGHUP and SIGTERM. Without `NOTIFY_SOCKET` all of it is a no-op.

use std::time::Duration;

use sd_notify::NotifyState;

/// Tells systemd usher is ready, with a status line.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd a reload started.
pub fn reloading() {
    notify(&[NotifyState::Reloading]);
}

/// Tells systemd a reload finished.
pub fn reloaded() {
    notify(&[NotifyState::Ready]);
}

/// Tells systemd usher is stopping.
pub fn stopping() {
    notify(&[NotifyState::Stopping]);
}

fn notify(state: &[NotifyState<'_>]) {
    // unset_env = false: removing variables is not thread-safe once the runtime runs.
    if let Err(e) = sd_notify::notify(false, state) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// The watchdog interval systemd asked for: `WATCHDOG_USEC`, when `WATCHDOG_PID` is unset or is
/// this process (sd_watchdog_enabled(3)).
pub fn watchdog_interval(env: impl Fn(&str) -> Option<String>) -> Option<Duration> {
    let usec: u64 = env("WATCHDOG_USEC")?.parse().ok()?;
    if let Some(pid) = env("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Pings the watchdog at half the interval systemd asked for, forever. Spawn it on the runtime.
pub async fn watchdog(interval: Duration) {
    let mut tick = tokio::time::interval(interval / 2);
    loop {
        tick.tick().await;
        notify(&[NotifyState::Watchdog]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_follows_sd_watchdog_enabled() {
        let env = |usec: &'static str, pid: Option<String>| {
            move |k: &str| match k {
                "WATCHDOG_USEC" => Some(usec.to_string()),
                "WATCHDOG_PID" => pid.clone(),
                _ => None,
            }
        };
        let me = std::process::id().to_string();
        assert_eq!(
            watchdog_interval(env("2000000", None)),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            watchdog_interval(env("2000000", Some(me))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(watchdog_interval(env("2000000", Some("1".into()))), None);
        assert_eq!(watchdog_interval(env("0", None)), None);
        assert_eq!(watchdog_interval(|_| None), None);
    }
}

//! The one task that acts on session deadlines: it sleeps until the earliest one (or until an
//! earlier deadline is added), then ends the sessions whose token expired through MistServer and
//! forgets the ones that aged out. Each round costs O(k log n) for k due sessions, whatever the
//! number n of deadlines pending.

use std::sync::Arc;

use tokio::time::Instant;

use super::Sessions;
use crate::mist::BoxFuture;

/// Ends sessions through MistServer (the durable queue); implemented by the enforcer.
pub trait SessionStopper: Send + Sync + 'static {
    /// Queues `stop_sessid` for `ids`; resolves once they are stored and queued.
    fn stop_sessions(&self, ids: Vec<String>) -> BoxFuture<'_, ()>;
}

/// Runs until the process ends.
pub async fn run(sessions: Sessions, stopper: Arc<dyn SessionStopper>) {
    loop {
        // Registered before the deadline is read, so an earlier deadline added meanwhile wakes us.
        let woken = sessions.inner.wake.notified();
        match sessions.next_due() {
            Some(at) if at <= Instant::now() => {}
            Some(at) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = woken => continue,
                }
            }
            None => {
                woken.await;
                continue;
            }
        }
        let cut = sessions.take_due(Instant::now());
        if !cut.is_empty() {
            tracing::info!(sessions = cut.len(), "ending sessions whose token expired");
            stopper.stop_sessions(cut).await;
        }
    }
}

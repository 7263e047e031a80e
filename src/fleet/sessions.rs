//! Concurrent-session limits across nodes (SPEC §9 "across the fleet", §11): each node reports,
//! for every viewer it holds sessions of under a `max_sessions_per_viewer` policy, how many it
//! holds (`<prefix>_sessions`, one key per viewer and node, renewed every third of the bucket's
//! age limit so a dead node's counts leave), and watches every other node's reports into the
//! session table's remote counts, which admission adds to its own. The trigger path makes no
//! NATS call. Eventually consistent: two nodes admitting the same viewer at one instant can both
//! pass (README, "Where the contract is silent").

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::kv::{Entry, Operation};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::Fleet;
use super::record::{self, Role};
use crate::sessions::remote::MAX_AGE;

/// How often this node's counts are compared with what it last reported.
const TICK: Duration = Duration::from_millis(100);
/// Most reports written in one tick (the rest follow on the next).
const MAX_PER_TICK: usize = 1000;
/// How often the counts are looked at even without a change in the table (to renew them).
const RENEW_CHECK: Duration = Duration::from_secs(5);
/// How long one report may take before the round gives up (NATS away).
const PUT_WAIT: Duration = Duration::from_secs(2);

/// One node's report of a viewer's sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub sessions: u32,
}

/// Reports this node's counts for as long as the node runs.
pub async fn publish(fleet: Fleet) {
    // viewer → (count reported, when).
    let mut reported: HashMap<(String, String), (u32, Instant)> = HashMap::new();
    // The table's change number last reported in full, and when.
    let mut last: Option<(u64, Instant)> = None;
    loop {
        tokio::time::sleep(TICK).await;
        if !fleet.connected() {
            continue;
        }
        let Some(objects) = fleet.objects() else {
            continue;
        };
        let kv = objects.bucket(Role::Sessions);
        let now = Instant::now();
        let sessions = fleet.enforcer().sessions();
        let changes = sessions.changes();
        let quiet =
            last.is_some_and(|(seen, at)| seen == changes && now.duration_since(at) < RENEW_CHECK);
        if quiet {
            continue;
        }
        let mut written = 0;
        let mut complete = true;
        for (viewer, count) in sessions.limited_counts() {
            // A viewer never reported at zero: nothing to delete, stop reporting it.
            let due = match reported.get(&viewer) {
                Some((n, at)) => *n != count || now.duration_since(*at) >= MAX_AGE / 3,
                None if count == 0 => {
                    sessions.forget_limited(&viewer.0, &viewer.1);
                    false
                }
                None => true,
            };
            if !due {
                continue;
            }
            if written >= MAX_PER_TICK {
                complete = false;
                break;
            }
            written += 1;
            let key = record::sessions_key(&viewer.0, &viewer.1, fleet.node_id());
            let put = async {
                if count == 0 {
                    kv.delete(&key).await.map(drop).map_err(|e| e.to_string())
                } else {
                    let value = serde_json::to_vec(&Count { sessions: count }).unwrap_or_default();
                    kv.put(&key, value.into())
                        .await
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
            };
            match tokio::time::timeout(PUT_WAIT, put).await {
                Ok(Ok(())) if count == 0 => {
                    sessions.forget_limited(&viewer.0, &viewer.1);
                    reported.remove(&viewer);
                }
                Ok(Ok(())) => {
                    reported.insert(viewer, (count, now));
                }
                failed => {
                    let error = failed
                        .map_or_else(|_| "timed out".to_owned(), |r| r.err().unwrap_or_default());
                    tracing::debug!(
                        error = error.as_str(),
                        "fleet: cannot report session counts"
                    );
                    break;
                }
            }
        }
        reported.retain(|_, (_, at)| now.duration_since(*at) < MAX_AGE);
        last = complete.then_some((changes, now));
    }
}

/// Keeps the session table's remote counts up to date from the other nodes' reports.
pub async fn watch(fleet: Fleet) {
    super::follow::watch_latest(fleet, Role::Sessions, "session counts", remote_count).await;
}

/// One entry of the session-count bucket: another node's count of one viewer's sessions.
fn remote_count(fleet: &Fleet, entry: &Entry) {
    let Some((tenant, viewer, node)) = record::decode_sessions_key(&entry.key) else {
        return;
    };
    if node == fleet.node_id() {
        return;
    }
    let count = match entry.operation {
        Operation::Put => match serde_json::from_slice::<Count>(&entry.value) {
            Ok(c) => c.sessions,
            Err(_) => {
                tracing::debug!("fleet: unreadable session count ignored");
                return;
            }
        },
        Operation::Delete | Operation::Purge => 0,
    };
    if !fleet
        .enforcer()
        .sessions()
        .set_remote(&tenant, &viewer, &node, count)
    {
        tracing::warn!("fleet: too many remote session counts; one not held");
    }
}

//! The bucket watchers: each follows one key-value bucket from the revision this node last
//! applied, hands every record to the one change path as `Change::Remote` (the revision is
//! committed with the change), and starts again from the stored revision whenever the watch
//! breaks (NATS away, a server restart), so nothing is applied twice and nothing is skipped.
//! The buckets that only say what is true now (node status, session counts) are watched with
//! [`watch_latest`] instead: their latest values, again from the start after every break.

use async_nats::jetstream::kv::{Entry, Operation};
use futures_util::StreamExt as _;

use super::Fleet;
use super::record::{self, Record, Role};

/// Follows `role`'s bucket for as long as the node runs.
pub async fn follow(fleet: Fleet, role: Role) {
    let mut attempt = 0;
    loop {
        match follow_once(&fleet, role).await {
            Ok(applied) if applied > 0 => attempt = 0,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "fleet: watch interrupted; resuming"),
        }
        tokio::time::sleep(super::RETRY.delay(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

/// Hands every latest value of `role`'s bucket (each key's last one first, then each change) to
/// `each` for as long as the node runs; `what` names the watch in the log when it breaks.
pub async fn watch_latest(
    fleet: Fleet,
    role: Role,
    what: &'static str,
    mut each: impl FnMut(&Fleet, &Entry) + Send,
) {
    let mut attempt = 0;
    loop {
        if let Err(e) = watch_latest_once(&fleet, role, &mut each).await {
            tracing::debug!(error = %e, watch = what, "fleet: watch interrupted");
        }
        tokio::time::sleep(super::RETRY.delay(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

async fn watch_latest_once(
    fleet: &Fleet,
    role: Role,
    each: &mut (impl FnMut(&Fleet, &Entry) + Send),
) -> anyhow::Result<()> {
    let objects = fleet
        .objects()
        .ok_or_else(|| anyhow::anyhow!("not set up"))?;
    let mut watch = objects.bucket(role).watch_with_history(">").await?;
    while let Some(entry) = watch.next().await {
        each(fleet, &entry?);
    }
    Ok(())
}

/// Watches until the watch ends or fails; returns how many records it applied.
async fn follow_once(fleet: &Fleet, role: Role) -> anyhow::Result<u64> {
    let objects = fleet
        .objects()
        .ok_or_else(|| anyhow::anyhow!("not set up"))?;
    fleet.recheck().await?;
    let kv = objects.bucket(role);
    let feed = objects.bucket_name(role).to_owned();
    let mut from = fleet.progress().applied(&feed);
    let last = fleet
        .js()
        .get_stream(format!("KV_{feed}"))
        .await?
        .info()
        .await?
        .state
        .last_sequence;
    if last < from {
        // The bucket holds fewer revisions than this node applied: it was made anew (a new NATS
        // store). Its revisions start again, so follow it from its start.
        tracing::error!(
            feed = feed.as_str(),
            applied = from,
            last,
            "fleet: the bucket is behind this node (recreated?); following it from its start"
        );
        fleet.progress().reset(&feed);
        from = 0;
    }
    let mut watch = kv.watch_all_from_revision(from + 1).await?;
    let mut applied = 0;
    while let Some(entry) = watch.next().await {
        let entry = entry?;
        if entry.revision <= fleet.progress().applied(&feed) {
            continue;
        }
        let data = match entry.operation {
            Operation::Put => Record::Put(&entry.value),
            Operation::Delete | Operation::Purge => Record::Deleted,
        };
        let (change, problem) = record::change_for(role, &feed, &entry.key, entry.revision, data);
        if let Some(problem) = problem {
            tracing::warn!(
                feed = feed.as_str(),
                revision = entry.revision,
                problem,
                "fleet: record skipped"
            );
        }
        let result = fleet.enforcer().apply(change).await?;
        fleet.progress().record(&feed, entry.revision, Some(result));
        applied += 1;
    }
    Ok(applied)
}

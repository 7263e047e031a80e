//! Where invalidated stream names go after the cache is dropped: MistServer's retrying queue,
//! reached through [`MistNotifier`] so the change path does not depend on how the queue is built
//! (tests plug in a recorder). Also the glue that forgets a name on disk once MistServer
//! acknowledged it.

use std::time::Duration;

use crate::mist::{AckSink, BoxFuture, InvalidationQueue, QueueStatus, Ticket};
use crate::state::StateDb;

/// Tells MistServer to re-run `USER_NEW` for every session of some streams (`invalidate_sessions`),
/// retrying until it succeeds.
pub trait MistNotifier: Send + Sync {
    /// Queues the stream names, each with the sequence number it is stored under on disk (merged
    /// with anything pending); returns a ticket to wait on.
    fn enqueue(&self, streams: Vec<(String, u64)>) -> Ticket;
    /// Whether MistServer acknowledged everything queued up to `ticket` within `timeout`.
    fn wait_acknowledged(&self, ticket: Ticket, timeout: Duration) -> BoxFuture<'_, bool>;
    /// The queue's state, for metrics; `None` when there is no queue.
    fn status(&self) -> Option<QueueStatus>;
}

impl MistNotifier for InvalidationQueue {
    fn enqueue(&self, streams: Vec<(String, u64)>) -> Ticket {
        InvalidationQueue::enqueue(self, streams)
    }

    fn wait_acknowledged(&self, ticket: Ticket, timeout: Duration) -> BoxFuture<'_, bool> {
        Box::pin(InvalidationQueue::wait_acknowledged(self, ticket, timeout))
    }

    fn status(&self) -> Option<QueueStatus> {
        Some(InvalidationQueue::status(self))
    }
}

/// MistServer acknowledged names: forget them in the state database. A failure only means they
/// are sent once more after a restart (invalidations are idempotent).
impl AckSink for StateDb {
    fn acknowledged(&self, names: Vec<(String, u64)>) -> BoxFuture<'static, ()> {
        let db = self.clone();
        Box::pin(async move {
            if let Err(e) = db.acknowledge(names).await {
                tracing::error!(error = %e, "cannot forget acknowledged invalidations");
            }
        })
    }
}

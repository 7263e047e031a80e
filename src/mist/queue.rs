//! The retrying invalidation queue (SPEC §5): stream names to invalidate are merged into one
//! pending set and a single worker task sends them to MistServer until it acknowledges, retrying with
//! backoff. Nothing is lost while usher runs: a failed batch waits again, merged with newer names.
//!
//! Each name may carry the sequence number under which its owner stored it durably; once
//! MistServer accepted it, the worker hands it to the [`AckSink`] (which forgets it on disk)
//! before the ticket counts as acknowledged.
//!
//! The worker and the handles share the `Book` behind a `std::sync::Mutex` that is only held for
//! map updates, never across an `.await`; acknowledgements are published through a `watch` channel
//! so callers can wait for their ticket without polling.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::book::{Book, MAX_PENDING, Ticket};
use super::client::MistClient;
use crate::backoff::Backoff;

/// A boxed future, as trait objects return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Told which names MistServer accepted, each with the sequence number it was enqueued under.
pub trait AckSink: Send + Sync + 'static {
    /// Called once per accepted chunk, before the chunk's tickets count as acknowledged.
    fn acknowledged(&self, names: Vec<(String, u64)>) -> BoxFuture<'static, ()>;
}

/// An [`AckSink`] that keeps nothing (names are not stored anywhere).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSink;

impl AckSink for NoSink {
    fn acknowledged(&self, _names: Vec<(String, u64)>) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// A snapshot of the queue for metrics and the control API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStatus {
    /// Names not yet accepted by MistServer (waiting, or in the call on the wire).
    pub pending: usize,
    /// Every ticket up to this sequence number has been acknowledged.
    pub acknowledged_through: u64,
    /// The last failure, cleared when a call succeeds.
    pub last_error: Option<String>,
    /// Failed API calls since start.
    pub api_errors: u64,
    /// Accepted API calls since start.
    pub calls_ok: u64,
    /// Names refused because the pending set was full (see [`Ticket::refused`]).
    pub refused: u64,
    /// How long the oldest name not yet accepted has waited (`None`: nothing waits).
    pub oldest_wait: Option<Duration>,
}

struct Shared {
    book: Mutex<Book>,
    wake: Notify,
    acked: watch::Sender<u64>,
}

impl Shared {
    fn book(&self) -> MutexGuard<'_, Book> {
        // The book stays consistent across a panic elsewhere: every update is a few map operations.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the book, then publishes the acknowledged ticket (after the lock is released).
    fn update<R>(&self, f: impl FnOnce(&mut Book) -> R) -> R {
        let (out, through) = {
            let mut book = self.book();
            let out = f(&mut book);
            (out, book.acknowledged_through())
        };
        self.acked.send_if_modified(|v| {
            let newer = through > *v;
            if newer {
                *v = through;
            }
            newer
        });
        out
    }
}

/// Stops the worker when the last handle goes away.
struct Stopper(watch::Sender<bool>);

impl Drop for Stopper {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

/// A handle on the invalidation queue. Cheap to clone; the worker stops on [`shutdown`] or when
/// the last handle is dropped.
///
/// [`shutdown`]: InvalidationQueue::shutdown
#[derive(Clone)]
pub struct InvalidationQueue {
    shared: Arc<Shared>,
    stopper: Arc<Stopper>,
}

impl InvalidationQueue {
    /// Starts the worker task on the current tokio runtime; accepted names go to `sink`.
    pub fn spawn(
        client: MistClient,
        backoff: Backoff,
        sink: Arc<dyn AckSink>,
    ) -> InvalidationQueue {
        let (acked, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            book: Mutex::new(Book::default()),
            wake: Notify::new(),
            acked,
        });
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(run(shared.clone(), client, backoff, sink, stop_rx));
        InvalidationQueue {
            shared,
            stopper: Arc::new(Stopper(stop)),
        }
    }

    /// Merges `streams` (each with the sequence number it is stored under, 0 when it is not) into
    /// the pending set and wakes the worker. Never blocks on MistServer.
    pub fn enqueue(&self, streams: impl IntoIterator<Item = (String, u64)>) -> Ticket {
        let ticket = self.shared.update(|book| book.enqueue(streams));
        if ticket.refused() > 0 {
            tracing::error!(
                refused = ticket.refused(),
                max_pending = MAX_PENDING,
                "mist invalidation queue full"
            );
        }
        self.shared.wake.notify_one();
        ticket
    }

    /// Queues `stop_sessid` for these sessions (each with the sequence number it is stored under,
    /// 0 when it is not), merged and retried like invalidations (SPEC §9).
    pub fn stop_sessions(&self, sessions: impl IntoIterator<Item = (String, u64)>) -> Ticket {
        self.enqueue(
            sessions
                .into_iter()
                .map(|(id, seq)| (super::command::stop_key(&id), seq)),
        )
    }

    /// Whether MistServer has accepted every name enqueued up to `ticket`.
    pub fn is_acknowledged(&self, ticket: Ticket) -> bool {
        ticket.refused() == 0 && *self.shared.acked.borrow() >= ticket.seq()
    }

    /// Waits up to `timeout` for [`is_acknowledged`](Self::is_acknowledged).
    pub async fn wait_acknowledged(&self, ticket: Ticket, timeout: Duration) -> bool {
        if ticket.refused() > 0 {
            return false;
        }
        let mut rx = self.shared.acked.subscribe();
        let done = rx.wait_for(|&through| through >= ticket.seq());
        matches!(tokio::time::timeout(timeout, done).await, Ok(Ok(_)))
    }

    /// Counters and the backlog, for metrics and the API.
    pub fn status(&self) -> QueueStatus {
        let book = self.shared.book();
        QueueStatus {
            pending: book.outstanding(),
            acknowledged_through: book.acknowledged_through(),
            last_error: book.last_error.clone(),
            api_errors: book.api_errors,
            calls_ok: book.calls_ok,
            refused: book.refused,
            oldest_wait: book.oldest_wait(std::time::Instant::now()),
        }
    }

    /// Stops the worker; names still pending are not sent (the owner stored them durably with
    /// their sequence numbers and hands them over again after the restart).
    pub fn shutdown(&self) {
        self.stopper.0.send_replace(true);
    }
}

/// The worker: waits for names, sends them chunk by chunk, backs off on failure.
async fn run(
    shared: Arc<Shared>,
    client: MistClient,
    backoff: Backoff,
    sink: Arc<dyn AckSink>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    loop {
        while !shared.book().has_pending() {
            if *stop.borrow_and_update() {
                return;
            }
            tokio::select! {
                _ = shared.wake.notified() => {}
                changed = stop.changed() => if changed.is_err() { return },
            }
        }
        if *stop.borrow() {
            return;
        }
        let chunks = shared.update(Book::take);
        let Some(sent) = send_batch(&shared, &client, &*sink, chunks, &mut stop).await else {
            return;
        };
        if sent {
            failures = 0;
            continue;
        }
        let delay = backoff.delay(failures);
        failures = failures.saturating_add(1);
        tracing::debug!(
            retry_in_ms = delay.as_millis() as u64,
            failures,
            "mist retry"
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Sends `chunks` in order. `Some(true)` when all were accepted, `Some(false)` when one failed (the
/// rest wait again), `None` when asked to stop.
async fn send_batch(
    shared: &Shared,
    client: &MistClient,
    sink: &dyn AckSink,
    chunks: Vec<Vec<String>>,
    stop: &mut watch::Receiver<bool>,
) -> Option<bool> {
    for chunk in chunks {
        let result = tokio::select! {
            r = client.send_queued(&chunk) => r,
            _ = stop.changed() => return None,
        };
        match result {
            Ok(()) => {
                let seqs = shared.book().in_flight_seqs(&chunk);
                sink.acknowledged(seqs).await;
                shared.update(|book| book.accepted(&chunk));
                tracing::info!(names = chunk.len(), "mist sessions invalidated");
            }
            Err(e) => {
                let message = e.to_string();
                let outstanding = shared.update(|book| {
                    book.failed(message.clone());
                    book.outstanding()
                });
                tracing::warn!(
                    kind = e.kind(),
                    error = message.as_str(),
                    pending = outstanding,
                    "mist invalidation failed"
                );
                return Some(false);
            }
        }
    }
    Some(true)
}

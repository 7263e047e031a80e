//! How far this node has applied each fleet feed, and what applying a record did, kept for a
//! moment so that the control call that wrote the record can answer with it. Bounded: only the
//! last [`MAX_RESULTS`] results are kept; a writer that comes later answers without them.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::enforce::Applied;

/// Results kept for writers.
pub const MAX_RESULTS: usize = 256;

#[derive(Default)]
struct Book {
    applied: BTreeMap<String, u64>,
    results: VecDeque<(String, u64, Applied)>,
}

/// Applied revisions per feed, and recent results; shared by the followers and the writers.
#[derive(Default)]
pub struct Progress {
    book: Mutex<Book>,
    changed: Notify,
}

impl Progress {
    /// Starts from the revisions stored in the state database.
    pub fn new(stored: impl IntoIterator<Item = (String, u64)>) -> Progress {
        let progress = Progress::default();
        progress.book().applied.extend(stored);
        progress
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // Every update is a few map operations: the book stays consistent across a panic.
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The revision `feed` has been applied up to (0: nothing yet).
    pub fn applied(&self, feed: &str) -> u64 {
        self.book().applied.get(feed).copied().unwrap_or(0)
    }

    /// Every feed with its applied revision.
    pub fn all(&self) -> BTreeMap<String, u64> {
        self.book().applied.clone()
    }

    /// Records that `feed` is applied up to `seq`, with what applying `seq` did.
    pub fn record(&self, feed: &str, seq: u64, result: Option<Applied>) {
        {
            let mut book = self.book();
            let at = book.applied.entry(feed.to_owned()).or_insert(0);
            *at = (*at).max(seq);
            if let Some(result) = result {
                if book.results.len() >= MAX_RESULTS {
                    book.results.pop_front();
                }
                book.results.push_back((feed.to_owned(), seq, result));
            }
        }
        self.changed.notify_waiters();
    }

    /// Forgets how far `feed` was applied (its bucket was made anew and counts from 1 again).
    pub fn reset(&self, feed: &str) {
        self.book().applied.insert(feed.to_owned(), 0);
        self.changed.notify_waiters();
    }

    /// Waits (at most `timeout`) until `feed` is applied up to `seq`; returns what applying
    /// `seq` did when it is still known. `None` with `false`: not applied in time.
    pub async fn wait(&self, feed: &str, seq: u64, timeout: Duration) -> (bool, Option<Applied>) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut book = self.book();
                let at = book
                    .results
                    .iter()
                    .position(|(f, s, _)| f == feed && *s == seq);
                if let Some(at) = at {
                    let result = book.results.remove(at).map(|(_, _, r)| r);
                    return (true, result);
                }
                if book.applied.get(feed).copied().unwrap_or(0) >= seq {
                    return (true, None);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return (false, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enforce::{Invalidated, Outcome};

    fn applied() -> Applied {
        Applied {
            outcome: Outcome::Created,
            key: None,
            policy: None,
            invalidated: Invalidated::nothing(),
            revocation: None,
            ticket: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_gets_the_result_of_its_revision() {
        let progress = std::sync::Arc::new(Progress::new([("f".to_owned(), 3)]));
        assert_eq!(progress.applied("f"), 3);
        let p = progress.clone();
        let waiter = tokio::spawn(async move { p.wait("f", 5, Duration::from_secs(5)).await });
        tokio::task::yield_now().await;
        progress.record("f", 4, Some(applied()));
        progress.record("f", 5, Some(applied()));
        let (done, result) = waiter.await.unwrap();
        assert!(done);
        assert_eq!(result.unwrap().outcome, Outcome::Created);
        assert_eq!(progress.applied("f"), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_revision_never_applied_times_out() {
        let progress = Progress::default();
        let (done, result) = progress.wait("f", 1, Duration::from_secs(2)).await;
        assert!(!done);
        assert!(result.is_none());
    }

    #[test]
    fn results_are_bounded_and_revisions_never_go_back() {
        let progress = Progress::default();
        for seq in 1..=(MAX_RESULTS as u64 + 10) {
            progress.record("f", seq, Some(applied()));
        }
        assert_eq!(progress.book().results.len(), MAX_RESULTS);
        progress.record("f", 2, None);
        assert_eq!(progress.applied("f"), MAX_RESULTS as u64 + 10);
    }
}

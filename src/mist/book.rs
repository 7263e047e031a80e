//! The invalidation queue's bookkeeping, kept pure so merging and ticket arithmetic are tested
//! without a MistServer: which stream names wait, which are on the wire, and which tickets are done.
//!
//! Every name remembers the lowest ticket still waiting for it. A ticket is acknowledged once no
//! waiting or in-flight name carries a ticket at or below it; since new tickets only grow and put-back
//! names keep theirs, "acknowledged through" never goes backwards.
//!
//! Every name also carries the highest durable sequence number it was stored under (0 when not
//! stored), handed back once MistServer accepted it so the owner can forget it on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Most names sent to MistServer in one `invalidate_sessions` call.
pub const CHUNK: usize = 1_000;
/// Most distinct names waiting (not counting one batch on the wire). Names already waiting are
/// always merged; only new names beyond this are refused, and their ticket says so.
pub const MAX_PENDING: usize = 100_000;

/// A receipt for one `enqueue`: acknowledged once MistServer accepted every name enqueued up to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    pub(crate) seq: u64,
    pub(crate) refused: usize,
}

impl Ticket {
    /// The ticket's sequence number; tickets of later calls have higher numbers.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// How many of this call's names were refused because the queue was full. A ticket with
    /// refused names is never acknowledged: the caller must retry them.
    pub fn refused(&self) -> usize {
        self.refused
    }
}

/// Waiting names, the batch on the wire, and the counters.
/// What one name waits for: the lowest ticket, and the highest durable sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owed {
    ticket: u64,
    seq: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Book {
    pending: BTreeMap<String, Owed>,
    in_flight: BTreeMap<String, Owed>,
    last_ticket: u64,
    pub(crate) refused: u64,
    pub(crate) last_error: Option<String>,
    pub(crate) api_errors: u64,
    pub(crate) calls_ok: u64,
    /// When each ticket that put a new name in the waiting set was taken (for the age of the
    /// oldest waiting name). Pruned as tickets are acknowledged; never larger than the names.
    since: BTreeMap<u64, Instant>,
}

impl Book {
    /// Merges `names` (each with its durable sequence number) into the waiting set under a new
    /// ticket. Empty names are skipped.
    pub(crate) fn enqueue(&mut self, names: impl IntoIterator<Item = (String, u64)>) -> Ticket {
        self.enqueue_at(names, Instant::now())
    }

    /// [`enqueue`](Self::enqueue) at a given moment.
    pub(crate) fn enqueue_at(
        &mut self,
        names: impl IntoIterator<Item = (String, u64)>,
        now: Instant,
    ) -> Ticket {
        self.last_ticket += 1;
        let ticket = self.last_ticket;
        let mut refused = 0;
        for (name, seq) in names {
            if name.is_empty() {
                continue;
            }
            if let Some(owed) = self.pending.get_mut(&name) {
                // Already waiting: its lower ticket covers this one too.
                owed.seq = owed.seq.max(seq);
                continue;
            }
            if self.pending.len() >= MAX_PENDING {
                refused += 1;
                continue;
            }
            self.pending.insert(name, Owed { ticket, seq });
            self.since.entry(ticket).or_insert(now);
        }
        let seq = ticket;
        self.refused += refused as u64;
        Ticket { seq, refused }
    }

    /// Whether any name waits to be sent.
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Moves every waiting name onto the wire and returns them in chunks of at most [`CHUNK`].
    pub(crate) fn take(&mut self) -> Vec<Vec<String>> {
        let batch = std::mem::take(&mut self.pending);
        let chunks = batch
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .chunks(CHUNK)
            .map(<[String]>::to_vec)
            .collect();
        // A batch left over from an interrupted round is merged, never dropped.
        for (name, owed) in batch {
            merge(&mut self.in_flight, name, owed);
        }
        chunks
    }

    /// The names of `chunk` still on the wire, with their durable sequence numbers.
    pub(crate) fn in_flight_seqs(&self, chunk: &[String]) -> Vec<(String, u64)> {
        chunk
            .iter()
            .filter_map(|name| Some((name.clone(), self.in_flight.get(name)?.seq)))
            .collect()
    }

    /// MistServer accepted `chunk`: returns each name with the durable sequence number it was
    /// sent under.
    pub(crate) fn accepted(&mut self, chunk: &[String]) -> Vec<(String, u64)> {
        let mut done = Vec::with_capacity(chunk.len());
        for name in chunk {
            if let Some(owed) = self.in_flight.remove(name) {
                done.push((name.clone(), owed.seq));
            }
        }
        self.calls_ok += 1;
        self.last_error = None;
        self.prune_since();
        done
    }

    /// Drops the times of tickets no outstanding name carries any more.
    fn prune_since(&mut self) {
        let Some(oldest) = self.oldest_seq() else {
            self.since.clear();
            return;
        };
        self.since = self.since.split_off(&oldest);
        if self.since.len() > self.outstanding() {
            // Only after chunks failed part-way for long: keep exactly the tickets still held.
            let held: BTreeSet<u64> = self
                .pending
                .values()
                .chain(self.in_flight.values())
                .map(|o| o.ticket)
                .collect();
            self.since.retain(|seq, _| held.contains(seq));
        }
    }

    fn oldest_seq(&self) -> Option<u64> {
        self.pending
            .values()
            .chain(self.in_flight.values())
            .map(|o| o.ticket)
            .min()
    }

    /// How long the oldest name still waiting (or on the wire) has waited, at `now`.
    pub(crate) fn oldest_wait(&self, now: Instant) -> Option<std::time::Duration> {
        let at = self.since.get(&self.oldest_seq()?)?;
        Some(now.saturating_duration_since(*at))
    }

    /// A call failed: everything still on the wire waits again, merged with what arrived meanwhile.
    pub(crate) fn failed(&mut self, error: String) {
        for (name, owed) in std::mem::take(&mut self.in_flight) {
            merge(&mut self.pending, name, owed);
        }
        self.api_errors += 1;
        self.last_error = Some(error);
    }

    /// The highest ticket whose names have all been accepted.
    pub(crate) fn acknowledged_through(&self) -> u64 {
        let oldest = self
            .pending
            .values()
            .chain(self.in_flight.values())
            .map(|o| o.ticket)
            .min();
        oldest.map_or(self.last_ticket, |ticket| ticket - 1)
    }

    /// Names waiting or on the wire (a name in both counts twice).
    pub(crate) fn outstanding(&self) -> usize {
        self.pending.len() + self.in_flight.len()
    }
}

fn merge(into: &mut BTreeMap<String, Owed>, name: String, owed: Owed) {
    into.entry(name)
        .and_modify(|o| {
            o.ticket = o.ticket.min(owed.ticket);
            o.seq = o.seq.max(owed.seq);
        })
        .or_insert(owed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn owed(list: &[&str]) -> Vec<(String, u64)> {
        list.iter().map(|s| (s.to_string(), 0)).collect()
    }

    #[test]
    fn enqueued_names_are_deduplicated_and_sorted() {
        let mut b = Book::default();
        b.enqueue(owed(&["b", "a", "b", ""]));
        b.enqueue(owed(&["a", "c"]));
        assert_eq!(b.take(), vec![names(&["a", "b", "c"])]);
    }

    #[test]
    fn a_failed_batch_is_merged_with_names_that_arrived_meanwhile() {
        let mut b = Book::default();
        let t1 = b.enqueue(owed(&["a", "b"]));
        let _ = b.take();
        let t2 = b.enqueue(owed(&["b", "c"]));
        b.failed("down".into());
        assert_eq!(b.acknowledged_through(), t1.seq - 1);
        assert_eq!(b.take(), vec![names(&["a", "b", "c"])]);
        b.accepted(&names(&["a", "b", "c"]));
        assert_eq!(b.acknowledged_through(), t2.seq);
        assert_eq!(
            (b.api_errors, b.calls_ok, b.last_error.clone()),
            (1, 1, None)
        );
    }

    #[test]
    fn a_later_ticket_waits_for_its_own_names_even_when_already_sent_before() {
        let mut b = Book::default();
        let t1 = b.enqueue(owed(&["a"]));
        let chunks = b.take();
        let t2 = b.enqueue(owed(&["a"]));
        b.accepted(&chunks[0]);
        assert_eq!(b.acknowledged_through(), t1.seq);
        assert!(b.acknowledged_through() < t2.seq);
        let chunks = b.take();
        b.accepted(&chunks[0]);
        assert_eq!(b.acknowledged_through(), t2.seq);
    }

    #[test]
    fn batches_are_cut_into_chunks_of_at_most_a_thousand() {
        let mut b = Book::default();
        b.enqueue((0..2_500).map(|i| (format!("s{i:05}"), 0)));
        let sizes: Vec<usize> = b.take().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1_000, 1_000, 500]);
    }

    #[test]
    fn names_beyond_the_bound_are_refused_and_the_ticket_says_so() {
        let mut b = Book::default();
        b.enqueue((0..MAX_PENDING).map(|i| (format!("s{i}"), 0)));
        let t = b.enqueue(owed(&["s1", "new1", "new2"]));
        assert_eq!(t.refused(), 2);
        assert_eq!(b.refused, 2);
        assert_eq!(b.outstanding(), MAX_PENDING);
    }

    #[test]
    fn an_accepted_name_is_handed_back_with_the_newest_sequence_it_was_stored_under() {
        let mut b = Book::default();
        b.enqueue(vec![("a".to_string(), 3)]);
        b.enqueue(vec![("a".to_string(), 5), ("b".to_string(), 4)]);
        let chunks = b.take();
        let mut done = b.accepted(&chunks[0]);
        done.sort();
        assert_eq!(done, [("a".to_string(), 5), ("b".to_string(), 4)]);
    }

    #[test]
    fn the_oldest_wait_is_the_age_of_the_oldest_unacknowledged_name() {
        let mut b = Book::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + std::time::Duration::from_secs(s);
        assert_eq!(b.oldest_wait(at(0)), None);
        b.enqueue_at(owed(&["a"]), at(0));
        b.enqueue_at(owed(&["a", "b"]), at(10));
        assert_eq!(
            b.oldest_wait(at(30)),
            Some(std::time::Duration::from_secs(30))
        );
        let _ = b.take();
        b.failed("down".into());
        assert_eq!(
            b.oldest_wait(at(40)),
            Some(std::time::Duration::from_secs(40))
        );
        let chunks = b.take();
        b.accepted(&chunks[0]);
        assert_eq!(b.oldest_wait(at(50)), None);
        assert!(
            b.since.is_empty(),
            "acknowledged tickets leave no times behind"
        );
        b.enqueue_at(owed(&["c"]), at(60));
        assert_eq!(
            b.oldest_wait(at(65)),
            Some(std::time::Duration::from_secs(5))
        );
    }

    #[test]
    fn ticket_times_never_outnumber_the_waiting_names() {
        let mut b = Book::default();
        let t0 = Instant::now();
        b.enqueue_at(owed(&["z-stuck"]), t0);
        for i in 0..100 {
            b.enqueue_at([(format!("a{i:03}"), 0)], t0);
            let _ = b.take();
            // The new name is accepted; "z-stuck" never is.
            b.accepted(&[format!("a{i:03}")]);
            b.failed("down".into());
        }
        assert!(b.since.len() <= b.outstanding(), "{} times", b.since.len());
        assert_eq!(b.oldest_wait(t0), Some(std::time::Duration::ZERO));
    }

    #[test]
    fn an_empty_enqueue_is_acknowledged_when_nothing_older_waits() {
        let mut b = Book::default();
        let t = b.enqueue(Vec::new());
        assert_eq!(b.acknowledged_through(), t.seq);
    }
}

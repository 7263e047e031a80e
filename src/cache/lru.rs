//! The bounded store behind [`super::DecisionCache`]: sharded LRU maps from a 128-bit key to a
//! small value, about 100 bytes per entry all told.
//!
//! It replaced moka, which spent ~420 bytes per cached decision (its per-entry `Arc`s, deque
//! nodes, timer-wheel node and frequency sketch) and put 1,000,000 sessions at ~410 MB of RSS.
//! Here an entry is one 88-byte slot (key, list links, value) in a slab that grows without
//! moving ([`crate::chunks`]), plus one 8-byte index entry: its slot number and 32 bits of its
//! key ([`crate::slots`]; the keys are keyed hashes already, so their bits serve as they are).
//!
//! A full shard evicts by *second chance* (CLOCK), an approximation of least recently used: a
//! lookup only marks its entry (a write to the slot it just read), and the insert that finds the
//! shard full gives each marked entry at the cold end one more round at the hot end, at most
//! [`SECOND_CHANCES`] of them, then evicts the coldest. A cached answer thus touches no
//! neighbour's links. Expired entries are dropped when looked up or when they reach the cold end.
//!
//! Locks are `std` mutexes held for a few pointer moves, never across an `.await`. The clock is
//! the caller's (`now`), read once per request by the decision cache.

use std::sync::Mutex;

use hashbrown::HashTable;
use tokio::time::Instant;

use crate::chunks::Chunks;
use crate::slots::{self, Slot as Indexed};

/// Shards once the cache is big enough for them to matter; a small cache keeps one so that its
/// bound stays exact.
const SHARDS: usize = 16;
/// A slot's mark (see [`Slot::marked`]) rides in the top bit of its `prev` link: a shard never
/// holds 2^31 slots, so no link uses that bit, and the slot stays 80 bytes.
const MARK: u32 = 1 << 31;
const NIL: u32 = MARK - 1;
/// Marked entries an insert moves back to the hot end before it evicts the coldest one anyway:
/// bounds the work under the lock whatever the lookups did.
const SECOND_CHANCES: usize = 8;

/// The index's hash of a key: its low 32 bits (the high ones pick the shard).
fn index_hash(key: u128) -> u64 {
    slots::spread(key as u32)
}

struct Slot<V> {
    /// The key in two halves: 8-byte alignment keeps the slot a multiple of 8 bytes, not 16.
    key: [u64; 2],
    /// The warmer neighbour, and the mark in the top bit.
    prev: u32,
    next: u32,
    value: Option<V>,
}

impl<V> Slot<V> {
    fn key(&self) -> u128 {
        (u128::from(self.key[0]) << 64) | u128::from(self.key[1])
    }

    fn prev(&self) -> u32 {
        self.prev & !MARK
    }

    fn set_prev(&mut self, prev: u32) {
        self.prev = (self.prev & MARK) | prev;
    }

    /// Looked up since it last went to the hot end.
    fn marked(&self) -> bool {
        self.prev & MARK != 0
    }

    fn set_marked(&mut self, marked: bool) {
        self.prev = if marked {
            self.prev | MARK
        } else {
            self.prev & !MARK
        };
    }
}

struct Shard<V> {
    index: HashTable<Indexed>,
    slots: Chunks<Slot<V>>,
    free: Vec<u32>,
    /// Most recently used.
    head: u32,
    /// Least recently used.
    tail: u32,
    capacity: usize,
}

/// A bounded map with second-chance eviction. `V::expired` is asked on lookups and at the cold end.
pub(crate) struct Lru<V> {
    shards: Box<[Mutex<Shard<V>>]>,
}

/// What the store needs to know about a value.
pub(crate) trait Expiring {
    /// Whether the value may no longer be answered at `now`.
    fn expired(&self, now: Instant) -> bool;
}

impl<V: Expiring> Lru<V> {
    /// A store holding at most `max_entries` values (at least one).
    pub(crate) fn new(max_entries: u64) -> Lru<V> {
        let max = usize::try_from(max_entries).unwrap_or(usize::MAX).max(1);
        let shards = if max >= SHARDS * 1024 { SHARDS } else { 1 };
        let shards = (0..shards)
            .map(|_| {
                Mutex::new(Shard {
                    index: HashTable::new(),
                    slots: Chunks::default(),
                    free: Vec::new(),
                    head: NIL,
                    tail: NIL,
                    capacity: (max / shards).min(NIL as usize - 1),
                })
            })
            .collect();
        Lru { shards }
    }

    fn shard(&self, key: u128) -> std::sync::MutexGuard<'_, Shard<V>> {
        // The high bits pick the shard; the index uses the low ones.
        let i = ((key >> 64) as usize) % self.shards.len();
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value, if present and not expired at `now` (an expired one is removed and handed to
    /// `evicted`). A value found is marked as used: it gets a second chance before eviction.
    pub(crate) fn get<R>(
        &self,
        key: u128,
        now: Instant,
        read: impl FnOnce(&V) -> R,
        evicted: impl FnOnce(V),
    ) -> Option<R> {
        let mut shard = self.shard(key);
        let at = shard.find(key)?;
        let slot = &mut shard.slots[at as usize];
        let value = slot.value.as_ref()?;
        if !value.expired(now) {
            let answer = read(value);
            slot.set_marked(true);
            return Some(answer);
        }
        if let Some(v) = shard.remove_at(at) {
            drop(shard);
            evicted(v);
        }
        None
    }

    /// Inserts or replaces; returns what had to go (the replaced value, the expired and evicted
    /// ones).
    pub(crate) fn insert(&self, key: u128, value: V, now: Instant) -> Vec<V> {
        let mut shard = self.shard(key);
        let mut gone = Vec::new();
        if let Some(at) = shard.find(key) {
            if let Some(old) = shard.slots[at as usize].value.replace(value) {
                gone.push(old);
            }
            shard.touch(at);
            return gone;
        }
        // Expired entries at the cold end go first; then the least recently used, if full.
        for _ in 0..2 {
            match shard.tail_expired(now) {
                Some(v) => gone.push(v),
                None => break,
            }
        }
        if shard.index.len() >= shard.capacity {
            let mut chances = SECOND_CHANCES;
            while chances > 0 && shard.tail != NIL && shard.slots[shard.tail as usize].marked() {
                let tail = shard.tail;
                shard.touch(tail);
                chances -= 1;
            }
            let tail = shard.tail;
            if let Some(v) = shard.remove_at(tail) {
                gone.push(v);
            }
        }
        shard.push_front(key, value);
        gone
    }

    /// Removes one key.
    pub(crate) fn remove(&self, key: u128) -> Option<V> {
        let mut shard = self.shard(key);
        let at = shard.find(key)?;
        shard.remove_at(at)
    }

    /// Drops values expired at `now` from the cold end of every shard; returns them.
    pub(crate) fn sweep(&self, now: Instant) -> Vec<V> {
        let mut gone = Vec::new();
        for i in 0..self.shards.len() {
            let mut shard = self.shards[i].lock().unwrap_or_else(|e| e.into_inner());
            while let Some(v) = shard.tail_expired(now) {
                gone.push(v);
            }
        }
        gone
    }

    /// Number of values held (expired ones not yet dropped included).
    pub(crate) fn len(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).index.len() as u64)
            .sum()
    }
}

impl<V: Expiring> Shard<V> {
    /// The slot holding `key`.
    fn find(&self, key: u128) -> Option<u32> {
        let hash = index_hash(key);
        let slots = &self.slots;
        self.index
            .find(hash, |i| {
                i.has_hash(hash) && slots.get(i.slot as usize).is_some_and(|s| s.key() == key)
            })
            .map(|i| i.slot)
    }

    fn tail_expired(&mut self, now: Instant) -> Option<V> {
        let tail = self.tail;
        let expired = tail != NIL
            && self.slots[tail as usize]
                .value
                .as_ref()
                .is_some_and(|v| v.expired(now));
        if expired { self.remove_at(tail) } else { None }
    }

    fn unlink(&mut self, at: u32) {
        let (prev, next) = {
            let s = &self.slots[at as usize];
            (s.prev(), s.next)
        };
        match prev {
            NIL => self.head = next,
            p => self.slots[p as usize].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.slots[n as usize].set_prev(prev),
        }
    }

    fn link_front(&mut self, at: u32) {
        let head = self.head;
        {
            let s = &mut self.slots[at as usize];
            s.prev = NIL;
            s.next = head;
        }
        match head {
            NIL => self.tail = at,
            h => self.slots[h as usize].set_prev(at),
        }
        self.head = at;
    }

    /// Moves a slot to the hot end, unmarked.
    fn touch(&mut self, at: u32) {
        self.slots[at as usize].set_marked(false);
        if self.head != at {
            self.unlink(at);
            self.link_front(at);
        }
    }

    fn remove_at(&mut self, at: u32) -> Option<V> {
        if at == NIL {
            return None;
        }
        self.unlink(at);
        let slot = &mut self.slots[at as usize];
        if let Ok(entry) = self
            .index
            .find_entry(index_hash(slot.key()), |i| i.slot == at)
        {
            entry.remove();
        }
        let value = slot.value.take();
        self.free.push(at);
        value
    }

    fn push_front(&mut self, key: u128, value: V) {
        let slot = Slot {
            key: [(key >> 64) as u64, key as u64],
            prev: NIL,
            next: NIL,
            value: Some(value),
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.slots[at as usize] = slot;
                at
            }
            None => {
                // Never more slots than the capacity, which fits a u32 index per shard.
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        let hash = index_hash(key);
        self.index
            .insert_unique(hash, Indexed::new(at, hash), Indexed::hash);
        self.link_front(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct V(u32, bool);
    impl Expiring for V {
        fn expired(&self, _now: Instant) -> bool {
            self.1
        }
    }

    /// A value that expires at a given time.
    struct Until(u32, Instant);
    impl Expiring for Until {
        fn expired(&self, now: Instant) -> bool {
            now >= self.1
        }
    }

    fn keys(gone: &[V]) -> Vec<u32> {
        gone.iter().map(|v| v.0).collect()
    }

    #[test]
    fn full_store_evicts_the_least_recently_used() {
        let now = Instant::now();
        let lru = Lru::new(3);
        for k in 1..=3u128 {
            assert!(lru.insert(k, V(k as u32, false), now).is_empty());
        }
        assert_eq!(lru.get(1, now, |v| v.0, |_| ()), Some(1)); // 2 is now the coldest
        let gone = lru.insert(4, V(4, false), now);
        assert_eq!(keys(&gone), vec![2]);
        assert_eq!(lru.get(2, now, |v| v.0, |_| ()), None);
        assert_eq!(lru.len(), 3);
        // 1 went back to the hot end unmarked: unless looked up again, it is next after 3.
        assert_eq!(keys(&lru.insert(5, V(5, false), now)), vec![3]);
        assert_eq!(keys(&lru.insert(6, V(6, false), now)), vec![1]);
    }

    #[test]
    fn an_insert_spares_at_most_eight_looked_up_entries() {
        let now = Instant::now();
        let lru = Lru::new(20);
        for k in 1..=20u128 {
            lru.insert(k, V(k as u32, false), now);
        }
        for k in 1..=20u128 {
            assert!(lru.get(k, now, |_| (), |_| ()).is_some());
        }
        // Every entry was looked up: the 8 coldest get their second chance, the ninth goes.
        assert_eq!(keys(&lru.insert(21, V(21, false), now)), vec![9]);
        assert_eq!(lru.len(), 20);
        for k in (1..=8u128).chain(10..=21) {
            assert!(lru.get(k, now, |_| (), |_| ()).is_some(), "{k}");
        }
    }

    #[test]
    fn expired_values_are_not_answered_and_are_swept() {
        let lru = Lru::new(10);
        let t0 = Instant::now();
        let later = t0 + std::time::Duration::from_secs(2);
        lru.insert(1, Until(1, t0 + std::time::Duration::from_secs(1)), t0);
        lru.insert(2, Until(2, t0 + std::time::Duration::from_secs(1)), t0);
        lru.insert(3, Until(3, t0 + std::time::Duration::from_secs(10)), t0);
        assert_eq!(lru.get(1, t0, |v| v.0, |_| ()), Some(1));
        let mut evicted = 0;
        assert_eq!(lru.get(3, later, |v| v.0, |_| ()), Some(3));
        assert_eq!(lru.get(2, later, |v| v.0, |_| evicted += 1), None);
        assert_eq!(evicted, 1);
        // 1 is at the cold end, expired (its mark does not keep it).
        assert_eq!(lru.sweep(later).len(), 1);
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.remove(3).map(|v| v.0), Some(3));
        assert_eq!(lru.len(), 0);
    }

    #[test]
    fn keys_that_share_their_index_bits_stay_apart() {
        let now = Instant::now();
        let lru = Lru::new(10);
        let (a, b) = (5u128, 5u128 | (1 << 40)); // the same low 32 bits, the index's hash
        lru.insert(a, V(1, false), now);
        lru.insert(b, V(2, false), now);
        assert_eq!(lru.get(a, now, |v| v.0, |_| ()), Some(1));
        assert_eq!(lru.get(b, now, |v| v.0, |_| ()), Some(2));
        assert_eq!(lru.remove(a).map(|v| v.0), Some(1));
        assert_eq!(lru.get(a, now, |v| v.0, |_| ()), None);
        assert_eq!(lru.get(b, now, |v| v.0, |_| ()), Some(2));
        assert_eq!(lru.len(), 1);
    }

    #[test]
    fn a_cached_decision_costs_one_small_slot() {
        // Regression: with moka, 1,000,000 sessions took ~410 MB of RSS (about 420 B each).
        // 88: the key, the links, the verdict, its expiry, stream, generation and signing key.
        assert!(std::mem::size_of::<Slot<crate::cache::Entry>>() <= 88);
    }
}

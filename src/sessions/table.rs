//! The bounded table of live sessions (SPEC §9), kept pure: no clock, no I/O, no lock. Every
//! session has one deadline — its cut at token expiry, or the moment it is forgotten by age — in
//! one ordered set, so the earliest is found in O(1) and each insert or removal costs O(log n)
//! whatever the number of pending deadlines. Deadlines are kept to about a millisecond, rounded
//! up (a session is cut at most that late, never early), so sessions admitted with the same token
//! expiry go into the set at one end, in admission order, not each at a random place.
//!
//! Admission sits on the path of every fresh `USER_NEW` decision and the lookup on every cached
//! one, so a session costs little: its facts live in one slot of a slab (chunks that never
//! move, reusing freed slots), found from its id through one hash table of slot numbers; the
//! deadline set and each viewer's list carry slot numbers. Session ids (64 hex characters from
//! MistServer) are kept as 32 bytes; stream, tenant and kid strings are shared, counted, between
//! the sessions that carry them; a viewer's id is kept once, with its sessions, inline when
//! short. Sessions are counted per viewer (for `max_sessions_per_viewer`) and per tenant and
//! stream (for `GET /v1/sessions/count`).
//!
//! Every hash is keyed with a per-process random seed (foldhash): session ids, stream names and
//! viewer ids come from viewers, and an unkeyed hash would let them pile their keys on one probe
//! sequence.

use std::collections::BTreeMap;

use hashbrown::HashTable;
use tokio::time::Instant;

#[path = "table_parts.rs"]
mod parts;

use parts::{Clock, Hasher, IdRef, NONE, Name, SessionId, Slab, Slot, Strings};

/// What usher knows of a session it allowed (times in seconds since the Unix epoch).
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub stream: &'a str,
    pub tenant: &'a str,
    pub kid: Option<&'a str>,
    /// The viewer id claim; `None` when the token carries none.
    pub viewer: Option<&'a str>,
    pub exp: u64,
    pub iat: Option<u64>,
}

struct Entry {
    id: SessionId,
    /// Admission order; with `due`, the entry's key in the deadline set.
    seq: u64,
    /// The deadline, on the table's [`Clock`].
    due: u64,
    #[allow(dead_code)] // kept for the table's contract (SPEC §9) and future reports
    exp: u64,
    iat: Option<u64>,
    /// Shared strings (`Strings` numbers); `kid` is [`NONE`] when the token names none.
    stream: u32,
    tenant: u32,
    #[allow(dead_code)]
    kid: u32,
    /// The viewer's slot, [`NONE`] when the token names no viewer.
    viewer: u32,
    /// The deadline ends the session (cut at expiry) rather than forgetting it.
    cut: bool,
    /// The key of the session's cached decision (two halves: the slot keeps 8-byte alignment);
    /// `[0, 0]` for none. Whoever owns the cache drops it when the session leaves the table.
    decision: [u64; 2],
}

/// A session id parsed and hashed by [`Table::session`], for several lookups under one lock.
pub struct SessionRef<'a> {
    key: IdRef<'a>,
    hash: u64,
}

/// One viewer of one tenant and its sessions (slots), in admission order.
struct Viewer {
    tenant: u32,
    name: Name,
    sessions: Slots,
}

/// Sessions whose deadline came: to end through MistServer, and merely forgotten.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Due {
    pub cut: Vec<String>,
    pub forgotten: usize,
}

/// The table. Bounded by `max` sessions.
pub struct Table {
    entries: Slab<Entry>,
    /// Session id → slot in `entries`, with the id's hash (growing never reads the slab).
    ids: HashTable<Slot>,
    /// (deadline, seq) → slot in `entries`.
    deadlines: BTreeMap<(u64, u64), u32>,
    clock: Clock,
    viewers: Slab<Viewer>,
    /// (tenant, viewer id) → slot in `viewers`, with its hash.
    viewer_ids: HashTable<Slot>,
    /// Sessions per (tenant, stream), by their `Strings` numbers.
    streams: hashbrown::HashMap<(u32, u32), u32, foldhash::fast::SeedableRandomState>,
    strings: Strings,
    hasher: Hasher,
    next_seq: u64,
    max: usize,
    /// Decision keys of the sessions that left the table since [`Table::take_dropped`].
    dropped: Vec<u128>,
}

impl Table {
    /// An empty table holding at most `max` sessions (and never more than 2^32 − 1: slots are
    /// numbered in 32 bits, which no machine's memory reaches).
    pub fn new(max: usize) -> Table {
        let hasher = Hasher::new();
        Table {
            entries: Slab::default(),
            ids: HashTable::new(),
            deadlines: BTreeMap::new(),
            clock: Clock::new(),
            viewers: Slab::default(),
            viewer_ids: HashTable::new(),
            streams: hashbrown::HashMap::with_hasher(hasher.state()),
            strings: Strings::new(hasher.clone()),
            hasher,
            next_seq: 0,
            max: max.min(NONE as usize),
            dropped: Vec::new(),
        }
    }

    /// Sessions tracked.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no session is tracked.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Whether the table holds as many sessions as it may.
    pub fn is_full(&self) -> bool {
        self.ids.len() >= self.max
    }

    /// Session `id` parsed and hashed once, for the lookups of one admission.
    pub fn session<'a>(&self, id: &'a str) -> SessionRef<'a> {
        let key = IdRef::parse(id);
        SessionRef {
            hash: self.hasher.id(&key),
            key,
        }
    }

    /// Whether session `id` is tracked.
    pub fn contains(&self, id: &str) -> bool {
        self.tracks(&self.session(id))
    }

    /// [`contains`](Self::contains) for a session [`session`](Self::session) parsed.
    pub fn tracks(&self, session: &SessionRef<'_>) -> bool {
        self.find(&session.key, session.hash).is_some()
    }

    /// How many sessions the viewer holds in the tenant.
    pub fn viewer_sessions(&self, tenant: &str, viewer: &str) -> u32 {
        self.viewer_slot(tenant, viewer).map_or(0, |v| {
            self.viewers.get(v).map_or(0, |v| v.sessions.len() as u32)
        })
    }

    /// Tracks session `id` until `due`; `cut` says whether the deadline ends it. `false` when the
    /// table is full or the session is already tracked (a re-check is not a new session).
    pub fn insert(&mut self, id: &str, facts: &Facts<'_>, due: Instant, cut: bool) -> bool {
        self.insert_with(id, facts, due, cut, 0)
    }

    /// [`insert`](Self::insert), remembering the key of the session's cached decision (`0`: none),
    /// handed back by [`take_dropped`](Self::take_dropped) once the session leaves the table.
    pub fn insert_with(
        &mut self,
        id: &str,
        facts: &Facts<'_>,
        due: Instant,
        cut: bool,
        decision: u128,
    ) -> bool {
        let session = self.session(id);
        self.insert_session(&session, facts, due, cut, decision)
    }

    /// [`insert_with`](Self::insert_with) for a session [`session`](Self::session) parsed.
    pub fn insert_session(
        &mut self,
        session: &SessionRef<'_>,
        facts: &Facts<'_>,
        due: Instant,
        cut: bool,
        decision: u128,
    ) -> bool {
        let (key, hash) = (session.key, session.hash);
        if self.find(&key, hash).is_some() || self.is_full() {
            return false;
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let stream = self.strings.intern(facts.stream);
        let tenant = self.strings.intern_repeated(0, facts.tenant);
        let kid = facts
            .kid
            .map_or(NONE, |k| self.strings.intern_repeated(1, k));
        let slot = self.entries.next_slot();
        let viewer = facts
            .viewer
            .map_or(NONE, |v| self.viewer_push(tenant, v, slot));
        *self.streams.entry((tenant, stream)).or_default() += 1;
        let due = self.clock.deadline(due);
        self.deadlines.insert((due, seq), slot);
        let entry = Entry {
            id: key.to_owned(),
            seq,
            due,
            exp: facts.exp,
            iat: facts.iat,
            stream,
            tenant,
            kid,
            viewer,
            cut,
            decision: split(decision),
        };
        let put = self.entries.insert(entry);
        debug_assert_eq!(put, slot);
        self.ids
            .insert_unique(hash, Slot::new(slot, hash), Slot::hash);
        true
    }

    /// Remembers a new key for a tracked session's cached decision (a re-check after its stream
    /// was invalidated caches it under a new key); whether the session is tracked.
    pub fn set_decision(&mut self, session: &SessionRef<'_>, decision: u128) -> bool {
        let Some(slot) = self.find(&session.key, session.hash) else {
            return false;
        };
        self.entries
            .get_mut(slot)
            .map(|e| e.decision = split(decision))
            .is_some()
    }

    /// The decision keys of the sessions that left the table since the last call (never `0`).
    pub fn take_dropped(&mut self) -> Vec<u128> {
        std::mem::take(&mut self.dropped)
    }

    /// Forgets session `id`; whether it was tracked.
    pub fn remove(&mut self, id: &str) -> bool {
        let key = IdRef::parse(id);
        match self.find(&key, self.hasher.id(&key)) {
            Some(slot) => self.remove_slot(slot).is_some(),
            None => false,
        }
    }

    /// Forgets the viewer's `n` oldest sessions in the tenant and returns their ids.
    pub fn take_oldest(&mut self, tenant: &str, viewer: &str, n: usize) -> Vec<String> {
        let slots = self.viewer_slots(tenant, viewer, n, None);
        self.remove_slots(slots)
    }

    /// The ids of the viewer's sessions in the tenant whose token was issued before `before`
    /// (or carries no `iat`): the ones a revocation covers.
    pub fn viewer_ids(&self, tenant: &str, viewer: &str, before: u64) -> Vec<String> {
        self.viewer_slots(tenant, viewer, usize::MAX, Some(before))
            .into_iter()
            .filter_map(|s| self.entries.get(s).map(|e| e.id.to_text()))
            .collect()
    }

    /// Forgets the viewer's sessions a revocation at `before` covers and returns their ids.
    pub fn take_viewer(&mut self, tenant: &str, viewer: &str, before: u64) -> Vec<String> {
        let slots = self.viewer_slots(tenant, viewer, usize::MAX, Some(before));
        self.remove_slots(slots)
    }

    /// The earliest deadline.
    pub fn next_due(&self) -> Option<Instant> {
        self.deadlines
            .first_key_value()
            .map(|(&(at, _), _)| self.clock.at(at))
    }

    /// Takes at most `max` sessions whose deadline is at or before `now`, earliest first.
    pub fn take_due(&mut self, now: Instant, max: usize) -> Due {
        let mut due = Due::default();
        let now = self.clock.key(now);
        while due.cut.len() + due.forgotten < max {
            let Some((&(at, seq), &slot)) = self.deadlines.first_key_value() else {
                break;
            };
            if at > now {
                break;
            }
            // A deadline acts only on the session it was set for, never on a slot's next tenant.
            if self.entries.get(slot).is_none_or(|e| e.seq != seq) {
                self.deadlines.remove(&(at, seq));
                continue;
            }
            match self.remove_slot(slot) {
                Some(entry) if entry.cut => due.cut.push(entry.id.to_text()),
                _ => due.forgotten += 1,
            }
        }
        due
    }

    /// Sessions per (tenant, stream).
    pub fn counts(&self) -> Vec<(String, String, u32)> {
        let mut out: Vec<_> = self
            .streams
            .iter()
            .map(|(&(t, s), n)| {
                let text = |i| self.strings.get(i).unwrap_or_default().to_string();
                (text(t), text(s), *n)
            })
            .collect();
        out.sort();
        out
    }

    /// The slot of the session with `key` (hashed to `hash`).
    fn find(&self, key: &IdRef<'_>, hash: u64) -> Option<u32> {
        self.ids
            .find(hash, |s| {
                s.has_hash(hash) && self.entries.get(s.slot).is_some_and(|e| key.is(&e.id))
            })
            .map(|s| s.slot)
    }

    /// The viewer's slot in `viewers`.
    fn viewer_slot(&self, tenant: &str, viewer: &str) -> Option<u32> {
        // A tenant no session carries is not interned: its viewers hold nothing.
        let tenant = self.strings.find(tenant)?;
        let hash = self.hasher.viewer(tenant, viewer.as_bytes());
        self.viewer_ids
            .find(hash, |v| {
                v.has_hash(hash)
                    && self.viewers.get(v.slot).is_some_and(|v| {
                        v.tenant == tenant && v.name.as_bytes() == viewer.as_bytes()
                    })
            })
            .map(|v| v.slot)
    }

    /// Appends session `slot` to the viewer's sessions (the viewer is added when new); its slot.
    fn viewer_push(&mut self, tenant: u32, viewer: &str, slot: u32) -> u32 {
        let hash = self.hasher.viewer(tenant, viewer.as_bytes());
        let viewers = &mut self.viewers;
        let found = self.viewer_ids.find(hash, |v| {
            v.has_hash(hash)
                && viewers
                    .get(v.slot)
                    .is_some_and(|v| v.tenant == tenant && v.name.as_bytes() == viewer.as_bytes())
        });
        if let Some(&Slot { slot: v, .. }) = found {
            if let Some(held) = viewers.get_mut(v) {
                held.sessions.push(slot);
            }
            return v;
        }
        let v = viewers.insert(Viewer {
            tenant,
            name: Name::new(viewer),
            sessions: Slots::One(slot),
        });
        self.viewer_ids
            .insert_unique(hash, Slot::new(v, hash), Slot::hash);
        v
    }

    fn viewer_slots(
        &self,
        tenant: &str,
        viewer: &str,
        n: usize,
        issued_before: Option<u64>,
    ) -> Vec<u32> {
        let Some(held) = self
            .viewer_slot(tenant, viewer)
            .and_then(|v| self.viewers.get(v))
        else {
            return Vec::new();
        };
        held.sessions
            .iter()
            .filter(|&s| {
                issued_before.is_none_or(|b| {
                    self.entries
                        .get(s)
                        .is_some_and(|e| e.iat.is_none_or(|iat| iat < b))
                })
            })
            .take(n)
            .collect()
    }

    fn remove_slots(&mut self, slots: Vec<u32>) -> Vec<String> {
        // No session is added meanwhile, so no slot is reused before its turn.
        slots
            .into_iter()
            .filter_map(|s| self.remove_slot(s).map(|e| e.id.to_text()))
            .collect()
    }

    fn remove_slot(&mut self, slot: u32) -> Option<Entry> {
        let entry = self.entries.remove(slot)?;
        let decision = join(entry.decision);
        if decision != 0 {
            self.dropped.push(decision);
        }
        let hash = self.hasher.id(&entry.id.as_ref());
        if let Ok(found) = self.ids.find_entry(hash, |s| s.slot == slot) {
            found.remove();
        }
        self.deadlines.remove(&(entry.due, entry.seq));
        if entry.viewer != NONE {
            self.viewer_remove(entry.viewer, slot, entry.seq);
        }
        if let Some(n) = self.streams.get_mut(&(entry.tenant, entry.stream)) {
            *n -= 1;
            if *n == 0 {
                self.streams.remove(&(entry.tenant, entry.stream));
            }
        }
        self.strings.release(entry.stream);
        self.strings.release(entry.tenant);
        if entry.kid != NONE {
            self.strings.release(entry.kid);
        }
        Some(entry)
    }

    /// Takes session `slot` (admitted as `seq`) off viewer `v`'s list; forgets the viewer when
    /// it holds no session any more.
    fn viewer_remove(&mut self, v: u32, slot: u32, seq: u64) {
        let entries = &self.entries;
        let Some(held) = self.viewers.get_mut(v) else {
            return;
        };
        let empty = held
            .sessions
            .remove(slot, |s| entries.get(s).map_or(u64::MAX, |e| e.seq), seq);
        if !empty {
            return;
        }
        let hash = self.hasher.viewer(held.tenant, held.name.as_bytes());
        if let Ok(found) = self.viewer_ids.find_entry(hash, |x| x.slot == v) {
            found.remove();
        }
        self.viewers.remove(v);
    }
}

/// One viewer's sessions (slots) in admission order: most viewers hold one.
#[derive(Debug, Clone)]
enum Slots {
    One(u32),
    Many(Vec<u32>),
}

impl Slots {
    fn len(&self) -> usize {
        match self {
            Slots::One(_) => 1,
            Slots::Many(v) => v.len(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let slots: &[u32] = match self {
            Slots::One(s) => std::slice::from_ref(s),
            Slots::Many(v) => v,
        };
        slots.iter().copied()
    }

    fn push(&mut self, slot: u32) {
        match self {
            Slots::One(first) => *self = Slots::Many(vec![*first, slot]),
            Slots::Many(v) => v.push(slot),
        }
    }

    /// Removes `slot`, admitted as `seq` (`seq_of` gives each listed slot's; they grow along the
    /// list); whether none is left.
    fn remove(&mut self, slot: u32, seq_of: impl Fn(u32) -> u64, seq: u64) -> bool {
        match self {
            Slots::One(s) => *s == slot,
            Slots::Many(v) => {
                // The removed session's slot is already free: its seq is found by position.
                let i = v.partition_point(|&s| s != slot && seq_of(s) < seq);
                if v.get(i) == Some(&slot) {
                    v.remove(i);
                }
                v.is_empty()
            }
        }
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;

/// A decision key as two halves, and back.
fn split(key: u128) -> [u64; 2] {
    [(key >> 64) as u64, key as u64]
}

fn join(halves: [u64; 2]) -> u128 {
    (u128::from(halves[0]) << 64) | u128::from(halves[1])
}

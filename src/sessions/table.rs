//! The bounded table of live sessions (SPEC §9), kept pure: no clock, no I/O, no lock. Every
//! session has one deadline — its cut at token expiry, or the moment it is forgotten by age — in
//! one ordered set, so the earliest is found in O(1) and each insert or removal costs O(log n)
//! whatever the number of pending deadlines.
//!
//! Session ids (64 hex characters from MistServer) are kept as 32 bytes; stream, tenant, kid and
//! viewer strings are shared between the sessions that carry them. Sessions are counted per viewer
//! (for `max_sessions_per_viewer`) and per tenant and stream (for `GET /v1/sessions/count`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use tokio::time::Instant;

/// A session id as MistServer sent it: 64 lower-case hex characters packed, anything else as is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum SessionId {
    Hex([u8; 32]),
    Text(Box<str>),
}

impl SessionId {
    fn new(id: &str) -> SessionId {
        let mut bytes = [0u8; 32];
        let lower = id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if id.len() == 64 && lower && hex::decode_to_slice(id, &mut bytes).is_ok() {
            SessionId::Hex(bytes)
        } else {
            SessionId::Text(id.into())
        }
    }

    fn to_text(&self) -> String {
        match self {
            SessionId::Hex(bytes) => hex::encode(bytes),
            SessionId::Text(text) => text.to_string(),
        }
    }
}

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
    seq: u64,
    stream: Arc<str>,
    tenant: Arc<str>,
    #[allow(dead_code)] // kept for the table's contract (SPEC §9) and future reports
    kid: Option<Arc<str>>,
    viewer: Option<Arc<str>>,
    #[allow(dead_code)]
    exp: u64,
    iat: Option<u64>,
    due: Instant,
    /// The deadline ends the session (cut at expiry) rather than forgetting it.
    cut: bool,
}

/// Sessions whose deadline came: to end through MistServer, and merely forgotten.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Due {
    pub cut: Vec<String>,
    pub forgotten: usize,
}

type Pair = (Arc<str>, Arc<str>);

/// The table. Bounded by `max` sessions.
pub struct Table {
    ids: HashMap<SessionId, Entry>,
    by_seq: HashMap<u64, SessionId>,
    deadlines: BTreeSet<(Instant, u64)>,
    /// Each viewer's sessions (their seqs) in admission order.
    viewers: HashMap<Pair, Seqs>,
    streams: HashMap<Pair, u32>,
    strings: HashSet<Arc<str>>,
    strings_live: usize,
    /// The last tenant and kid interned: most sessions repeat them (no hashing then).
    last: [Option<Arc<str>>; 2],
    next_seq: u64,
    max: usize,
}

impl Table {
    /// An empty table holding at most `max` sessions.
    pub fn new(max: usize) -> Table {
        Table {
            ids: HashMap::new(),
            by_seq: HashMap::new(),
            deadlines: BTreeSet::new(),
            viewers: HashMap::new(),
            streams: HashMap::new(),
            strings: HashSet::new(),
            strings_live: 0,
            last: [None, None],
            next_seq: 0,
            max,
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

    /// Whether session `id` is tracked.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains_key(&SessionId::new(id))
    }

    /// How many sessions the viewer holds in the tenant.
    pub fn viewer_sessions(&self, tenant: &str, viewer: &str) -> u32 {
        // A string no session carries is not interned: that viewer holds nothing.
        match (self.strings.get(tenant), self.strings.get(viewer)) {
            (Some(t), Some(v)) => self
                .viewers
                .get(&(t.clone(), v.clone()))
                .map_or(0, |s| s.len() as u32),
            _ => 0,
        }
    }

    /// Tracks session `id` until `due`; `cut` says whether the deadline ends it. `false` when the
    /// table is full or the session is already tracked (a re-check is not a new session).
    pub fn insert(&mut self, id: &str, facts: &Facts<'_>, due: Instant, cut: bool) -> bool {
        let key = SessionId::new(id);
        if self.ids.contains_key(&key) || self.is_full() {
            return false;
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let entry = Entry {
            seq,
            stream: self.intern(facts.stream),
            tenant: self.intern_repeated(0, facts.tenant),
            kid: facts.kid.map(|k| self.intern_repeated(1, k)),
            viewer: facts.viewer.map(|v| self.intern(v)),
            exp: facts.exp,
            iat: facts.iat,
            due,
            cut,
        };
        self.deadlines.insert((due, seq));
        if let Some(viewer) = &entry.viewer {
            let pair = (entry.tenant.clone(), viewer.clone());
            self.viewers.entry(pair).or_default().push(seq);
        }
        *self
            .streams
            .entry((entry.tenant.clone(), entry.stream.clone()))
            .or_default() += 1;
        self.by_seq.insert(seq, key.clone());
        self.ids.insert(key, entry);
        true
    }

    /// Forgets session `id`; whether it was tracked.
    pub fn remove(&mut self, id: &str) -> bool {
        self.remove_key(&SessionId::new(id)).is_some()
    }

    /// Forgets the viewer's `n` oldest sessions in the tenant and returns their ids.
    pub fn take_oldest(&mut self, tenant: &str, viewer: &str, n: usize) -> Vec<String> {
        let seqs = self.viewer_seqs(tenant, viewer, n, None);
        self.remove_seqs(seqs)
    }

    /// The ids of the viewer's sessions in the tenant whose token was issued before `before`
    /// (or carries no `iat`): the ones a revocation covers.
    pub fn viewer_ids(&self, tenant: &str, viewer: &str, before: u64) -> Vec<String> {
        self.viewer_seqs(tenant, viewer, usize::MAX, Some(before))
            .into_iter()
            .filter_map(|seq| self.by_seq.get(&seq).map(SessionId::to_text))
            .collect()
    }

    /// Forgets the viewer's sessions a revocation at `before` covers and returns their ids.
    pub fn take_viewer(&mut self, tenant: &str, viewer: &str, before: u64) -> Vec<String> {
        let seqs = self.viewer_seqs(tenant, viewer, usize::MAX, Some(before));
        self.remove_seqs(seqs)
    }

    /// The earliest deadline.
    pub fn next_due(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Takes at most `max` sessions whose deadline is at or before `now`, earliest first.
    pub fn take_due(&mut self, now: Instant, max: usize) -> Due {
        let mut due = Due::default();
        while due.cut.len() + due.forgotten < max {
            let Some(&(at, seq)) = self.deadlines.first() else {
                break;
            };
            if at > now {
                break;
            }
            let Some(key) = self.by_seq.get(&seq).cloned() else {
                self.deadlines.remove(&(at, seq));
                continue;
            };
            match self.remove_key(&key) {
                Some(entry) if entry.cut => due.cut.push(key.to_text()),
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
            .map(|((t, s), n)| (t.to_string(), s.to_string(), *n))
            .collect();
        out.sort();
        out
    }

    fn viewer_seqs(
        &self,
        tenant: &str,
        viewer: &str,
        n: usize,
        issued_before: Option<u64>,
    ) -> Vec<u64> {
        let (Some(t), Some(v)) = (self.strings.get(tenant), self.strings.get(viewer)) else {
            return Vec::new();
        };
        let Some(seqs) = self.viewers.get(&(t.clone(), v.clone())) else {
            return Vec::new();
        };
        seqs.iter()
            .filter(|seq| {
                issued_before.is_none_or(|b| {
                    self.by_seq
                        .get(seq)
                        .and_then(|k| self.ids.get(k))
                        .is_some_and(|e| e.iat.is_none_or(|iat| iat < b))
                })
            })
            .take(n)
            .collect()
    }

    fn remove_seqs(&mut self, seqs: Vec<u64>) -> Vec<String> {
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            if let Some(key) = self.by_seq.get(&seq).cloned() {
                self.remove_key(&key);
                out.push(key.to_text());
            }
        }
        out
    }

    fn remove_key(&mut self, key: &SessionId) -> Option<Entry> {
        let entry = self.ids.remove(key)?;
        self.by_seq.remove(&entry.seq);
        self.deadlines.remove(&(entry.due, entry.seq));
        if let Some(viewer) = &entry.viewer {
            let pair = (entry.tenant.clone(), viewer.clone());
            if let Some(seqs) = self.viewers.get_mut(&pair)
                && seqs.remove(entry.seq)
            {
                self.viewers.remove(&pair);
            }
        }
        decrement(
            &mut self.streams,
            (entry.tenant.clone(), entry.stream.clone()),
        );
        Some(entry)
    }

    /// [`intern`](Self::intern) through a one-entry memo (slot 0: tenant, 1: kid).
    fn intern_repeated(&mut self, slot: usize, s: &str) -> Arc<str> {
        if let Some(last) = &self.last[slot]
            && **last == *s
        {
            return last.clone();
        }
        let shared = self.intern(s);
        self.last[slot] = Some(shared.clone());
        shared
    }

    /// One shared copy of each string; strings no session holds any more are dropped once the
    /// set has doubled since the last sweep.
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.strings.get(s) {
            return shared.clone();
        }
        if self.strings.len() >= 2 * self.strings_live + 1024 {
            self.strings.retain(|s| Arc::strong_count(s) > 1);
            self.strings_live = self.strings.len();
        }
        let shared: Arc<str> = Arc::from(s);
        self.strings.insert(shared.clone());
        shared
    }
}

/// One viewer's sessions, in admission order (seqs only grow): most viewers hold one.
#[derive(Debug, Clone, Default)]
enum Seqs {
    #[default]
    None,
    One(u64),
    Many(Vec<u64>),
}

impl Seqs {
    fn len(&self) -> usize {
        match self {
            Seqs::None => 0,
            Seqs::One(_) => 1,
            Seqs::Many(v) => v.len(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let (one, many): (Option<u64>, &[u64]) = match self {
            Seqs::None => (None, &[]),
            Seqs::One(seq) => (Some(*seq), &[]),
            Seqs::Many(v) => (None, v),
        };
        one.into_iter().chain(many.iter().copied())
    }

    fn push(&mut self, seq: u64) {
        *self = match std::mem::take(self) {
            Seqs::None => Seqs::One(seq),
            Seqs::One(first) => Seqs::Many(vec![first, seq]),
            Seqs::Many(mut v) => {
                v.push(seq);
                Seqs::Many(v)
            }
        };
    }

    /// Removes `seq`; whether none is left.
    fn remove(&mut self, seq: u64) -> bool {
        match self {
            Seqs::None => true,
            Seqs::One(s) => {
                if *s == seq {
                    *self = Seqs::None;
                }
                matches!(self, Seqs::None)
            }
            Seqs::Many(v) => {
                if let Ok(i) = v.binary_search(&seq) {
                    v.remove(i);
                }
                v.is_empty()
            }
        }
    }
}

fn decrement(map: &mut HashMap<Pair, u32>, key: Pair) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;

//! The building blocks of the session table: session ids packed to bytes, the keyed hasher, a
//! slab of numbered slots, counted shared strings and short viewer ids kept inline — each cheap
//! enough for the decision path (no allocation for a hex session id or a short viewer id).

use std::hash::{BuildHasher, Hasher as _};
use std::time::Duration;

use std::sync::OnceLock;

use foldhash::SharedSeed;
use foldhash::fast::SeedableRandomState;
use hashbrown::HashTable;
use tokio::time::Instant;

use crate::chunks::Chunks;

/// No slot (a session without kid or viewer).
pub const NONE: u32 = u32::MAX;

/// A session id as MistServer sent it: 64 lower-case hex characters packed, anything else as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionId {
    Hex([u8; 32]),
    Text(Box<str>),
}

impl SessionId {
    pub fn as_ref(&self) -> IdRef<'_> {
        match self {
            SessionId::Hex(bytes) => IdRef::Hex(*bytes),
            SessionId::Text(text) => IdRef::Text(text),
        }
    }

    pub fn to_text(&self) -> String {
        match self {
            SessionId::Hex(bytes) => hex::encode(bytes),
            SessionId::Text(text) => text.to_string(),
        }
    }
}

/// A session id being looked up: parsed as [`SessionId`] is, without allocating.
#[derive(Debug, Clone, Copy)]
pub enum IdRef<'a> {
    Hex([u8; 32]),
    Text(&'a str),
}

impl<'a> IdRef<'a> {
    pub fn parse(id: &'a str) -> IdRef<'a> {
        let text = id.as_bytes();
        if text.len() != 64 {
            return IdRef::Text(id);
        }
        // Branch-free: every digit is looked up and the invalid marks are OR-ed together, so
        // the loop has no exit to test (it ran at ~45 instructions a byte pair with one).
        let mut bytes = [0u8; 32];
        let mut invalid = 0u8;
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            let (hi, lo) = (NIBBLE[usize::from(pair[0])], NIBBLE[usize::from(pair[1])]);
            invalid |= hi | lo;
            *byte = (hi << 4) | (lo & 0x0f);
        }
        if invalid & INVALID != 0 {
            return IdRef::Text(id);
        }
        IdRef::Hex(bytes)
    }

    fn bytes(&self) -> &[u8] {
        match self {
            IdRef::Hex(bytes) => bytes,
            IdRef::Text(text) => text.as_bytes(),
        }
    }

    /// Whether this is the id `id`.
    pub fn is(&self, id: &SessionId) -> bool {
        match (self, id) {
            (IdRef::Hex(a), SessionId::Hex(b)) => a == b,
            (IdRef::Text(a), SessionId::Text(b)) => *a == &**b,
            _ => false,
        }
    }

    pub fn to_owned(self) -> SessionId {
        match self {
            IdRef::Hex(bytes) => SessionId::Hex(bytes),
            IdRef::Text(text) => SessionId::Text(text.into()),
        }
    }
}

/// Marks a byte that is not a lower-case hex digit in [`NIBBLE`].
const INVALID: u8 = 0x10;

/// Each byte's value as a lower-case hex digit, or [`INVALID`] (upper case is not MistServer's
/// form: such an id is kept as text).
const NIBBLE: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = match c as u8 {
            d @ b'0'..=b'9' => d - b'0',
            d @ b'a'..=b'f' => d - b'a' + 10,
            _ => INVALID,
        };
        c += 1;
    }
    table
};

pub(crate) use crate::slots::Slot;

/// The table's hash: foldhash keyed with a per-process random seed (and one per table), both
/// from the operating system's random source (foldhash's own default seeds from the address-space
/// layout and the time).
#[derive(Clone)]
pub struct Hasher(SeedableRandomState);

impl Hasher {
    pub fn new() -> Hasher {
        static PROCESS: OnceLock<SharedSeed> = OnceLock::new();
        let process = PROCESS.get_or_init(|| SharedSeed::from_u64(rand::random()));
        Hasher(SeedableRandomState::with_seed(rand::random(), process))
    }

    /// For a map of this table's own numbers.
    pub fn state(&self) -> SeedableRandomState {
        self.0.clone()
    }

    pub fn id(&self, id: &IdRef<'_>) -> u64 {
        let mut h = self.0.build_hasher();
        h.write(id.bytes());
        crate::slots::spread(h.finish() as u32)
    }

    pub fn viewer(&self, tenant: u32, viewer: &[u8]) -> u64 {
        let mut h = self.0.build_hasher();
        h.write_u32(tenant);
        h.write(viewer);
        crate::slots::spread(h.finish() as u32)
    }

    pub fn text(&self, text: &str) -> u64 {
        let mut h = self.0.build_hasher();
        h.write(text.as_bytes());
        h.finish()
    }
}

/// Numbered slots; a freed slot is reused (the most recently freed first, still in cache).
pub struct Slab<T> {
    slots: Chunks<Option<T>>,
    free: Vec<u32>,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Chunks::default(),
            free: Vec::new(),
        }
    }
}

impl<T> Slab<T> {
    /// The slot the next [`insert`](Self::insert) takes.
    pub fn next_slot(&self) -> u32 {
        self.free.last().copied().unwrap_or(self.slots.len() as u32)
    }

    pub fn insert(&mut self, value: T) -> u32 {
        match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(value);
                slot
            }
            None => {
                self.slots.push(Some(value));
                (self.slots.len() - 1) as u32
            }
        }
    }

    pub fn get(&self, slot: u32) -> Option<&T> {
        self.slots.get(slot as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, slot: u32) -> Option<&mut T> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    pub fn remove(&mut self, slot: u32) -> Option<T> {
        let value = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        Some(value)
    }
}

/// One shared copy of each stream, tenant and kid string, counted: dropped with its last holder.
pub struct Strings {
    slab: Slab<(Box<str>, u32)>,
    index: HashTable<u32>,
    hasher: Hasher,
    /// The last tenant (0) and kid (1) interned: most sessions repeat them (no hashing then).
    last: [u32; 2],
}

impl Strings {
    pub fn new(hasher: Hasher) -> Strings {
        Strings {
            slab: Slab::default(),
            index: HashTable::new(),
            hasher,
            last: [NONE; 2],
        }
    }

    /// Strings held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn get(&self, id: u32) -> Option<&str> {
        self.slab.get(id).map(|(s, _)| &**s)
    }

    /// The number of `s`, if some session holds it.
    pub fn find(&self, s: &str) -> Option<u32> {
        let slab = &self.slab;
        self.index
            .find(self.hasher.text(s), |&i| {
                slab.get(i).is_some_and(|(held, _)| **held == *s)
            })
            .copied()
    }

    /// Holds one more `s`; its number.
    pub fn intern(&mut self, s: &str) -> u32 {
        let hash = self.hasher.text(s);
        let slab = &mut self.slab;
        if let Some(&i) = self
            .index
            .find(hash, |&i| slab.get(i).is_some_and(|(held, _)| **held == *s))
        {
            if let Some((_, refs)) = slab.get_mut(i) {
                *refs += 1;
            }
            return i;
        }
        let i = slab.insert((s.into(), 1));
        let (slab, hasher) = (&*slab, &self.hasher);
        self.index.insert_unique(hash, i, |&i| {
            slab.get(i).map_or(0, |(held, _)| hasher.text(held))
        });
        i
    }

    /// [`intern`](Self::intern) through a one-entry memo (slot 0: tenant, 1: kid).
    pub fn intern_repeated(&mut self, memo: usize, s: &str) -> u32 {
        let last = self.last[memo];
        if let Some((held, refs)) = self.slab.get_mut(last)
            && **held == *s
        {
            *refs += 1;
            return last;
        }
        let i = self.intern(s);
        self.last[memo] = i;
        i
    }

    /// Holds one `id` less; forgets the string with its last holder.
    pub fn release(&mut self, id: u32) {
        let Some((held, refs)) = self.slab.get_mut(id) else {
            return;
        };
        *refs -= 1;
        if *refs > 0 {
            return;
        }
        let hash = self.hasher.text(held);
        if let Ok(found) = self.index.find_entry(hash, |&i| i == id) {
            found.remove();
        }
        self.slab.remove(id);
        for last in &mut self.last {
            if *last == id {
                *last = NONE;
            }
        }
    }
}

/// A viewer id: inline up to 22 bytes (no allocation for the usual id), boxed beyond.
pub enum Name {
    Inline(u8, [u8; 22]),
    Heap(Box<[u8]>),
}

impl Name {
    pub fn new(s: &str) -> Name {
        let bytes = s.as_bytes();
        let mut inline = [0u8; 22];
        match inline.get_mut(..bytes.len()) {
            Some(head) => {
                head.copy_from_slice(bytes);
                Name::Inline(bytes.len() as u8, inline)
            }
            None => Name::Heap(bytes.into()),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline(len, bytes) => &bytes[..*len as usize],
            Name::Heap(bytes) => bytes,
        }
    }
}

/// Instants as nanoseconds on a `u64` line centred on the table's creation, so a deadline is a
/// small key that compares in one instruction: exact within ±292 years of it (a deadline lies at
/// most 10^9 s ahead).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

const MIDDLE: u64 = 1 << 63;
/// The grain of deadlines: 2^20 ns, about a millisecond (see [`Clock::deadline`]).
pub const GRAIN: u64 = 1 << 20;

impl Clock {
    pub fn new() -> Clock {
        Clock {
            base: Instant::now(),
        }
    }

    pub fn key(&self, at: Instant) -> u64 {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        match at.checked_duration_since(self.base) {
            Some(after) => MIDDLE.saturating_add(nanos(after)),
            None => MIDDLE.saturating_sub(nanos(self.base.duration_since(at))),
        }
    }

    /// The key of a deadline at `at`: [`key`](Self::key) rounded up to a multiple of [`GRAIN`],
    /// so a deadline acts up to a millisecond late and never early. A deadline is computed from
    /// two clock readings taken a request's processing time apart, so sessions admitted one after
    /// another with the same token expiry would otherwise get deadlines a few microseconds apart
    /// in no order, and each insert would land at a random place in the deadline set; rounded,
    /// they share one key and go in at its end, in admission order.
    pub fn deadline(&self, at: Instant) -> u64 {
        let key = self.key(at);
        key.checked_add(GRAIN - 1).map_or(key, |k| k & !(GRAIN - 1))
    }

    /// The instant of `key` (back from [`key`](Self::key): the same instant).
    pub fn at(&self, key: u64) -> Instant {
        let moved = match key.checked_sub(MIDDLE) {
            Some(after) => self.base.checked_add(Duration::from_nanos(after)),
            None => self.base.checked_sub(Duration::from_nanos(MIDDLE - key)),
        };
        moved.unwrap_or(self.base)
    }
}

//! The streams the decision cache has seen: each one's generation (bumped to invalidate it) and
//! how many live decisions it has, in a map that stays bounded and stays cheap to grow.
//!
//! Stream names reach usher from viewers (any name under a wildcard stream), so the map must not
//! cost more per new name as it grows. A new name is inserted under the write lock; when the map
//! reaches its sweep mark, the streams without cached decisions are forgotten in one pass and the
//! next mark is set to twice what is left (never below the configured bound). A pass over n names
//! is paid for by the n or more insertions before the next pass: a new name costs O(1) amortised
//! however many are tracked. The map never holds more than max(bound, 2 × streams with cached
//! decisions) names, and those are bounded by the cache's own `max_entries`.
//!
//! Forgetting a stream is safe: its decisions are keyed by its generation, and a stream seen
//! again gets a fresh generation from the process-wide counter, never an old one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// One stream's invalidation state.
pub(super) struct StreamState {
    /// The generation its decisions are cached under; a new one makes them all unreachable.
    pub(super) generation: AtomicU64,
    /// The generation before the last invalidation (0: never invalidated), whose decisions tell
    /// the re-checks which signatures verified.
    pub(super) previous: AtomicU64,
    /// How many reachable decisions it has in the store.
    pub(super) live: AtomicI64,
}

/// The tracked streams. Locks are held for a map operation, never across an `.await`.
pub(super) struct Streams {
    map: RwLock<Map>,
    next_generation: AtomicU64,
    bound: usize,
    /// Names visited by sweeps so far (what a new name costs, summed; tests pin it).
    swept: AtomicU64,
}

struct Map {
    names: HashMap<Box<str>, Arc<StreamState>>,
    /// At this many names, the next new name first sweeps out the streams without decisions.
    sweep_at: usize,
}

impl Streams {
    /// A map that starts sweeping at `bound` names.
    pub(super) fn new(bound: usize) -> Streams {
        let bound = bound.max(1);
        Streams {
            map: RwLock::new(Map {
                names: HashMap::new(),
                sweep_at: bound,
            }),
            next_generation: AtomicU64::new(1),
            bound,
            swept: AtomicU64::new(0),
        }
    }

    /// The stream's current generation, if it is tracked (the cache-hit path: one read lock).
    pub(super) fn generation(&self, name: &str) -> Option<u64> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        map.names
            .get(name)
            .map(|s| s.generation.load(Ordering::Acquire))
    }

    /// The stream's state, tracking it (with a fresh generation) if it is new.
    pub(super) fn get_or_insert(&self, name: &str) -> Arc<StreamState> {
        if let Some(s) = self.read().names.get(name) {
            return s.clone();
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = map.names.get(name) {
            return s.clone();
        }
        if map.names.len() >= map.sweep_at {
            self.swept
                .fetch_add(map.names.len() as u64, Ordering::Relaxed);
            map.names.retain(|_, s| s.live.load(Ordering::Acquire) > 0);
            map.sweep_at = self.bound.max(map.names.len().saturating_mul(2));
        }
        let state = Arc::new(StreamState {
            generation: AtomicU64::new(self.fresh_generation()),
            previous: AtomicU64::new(0),
            live: AtomicI64::new(0),
        });
        map.names.insert(name.into(), state.clone());
        state
    }

    /// Gives each named stream that is tracked a fresh generation; returns how many live
    /// decisions they had. O(1) per name.
    pub(super) fn invalidate<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> u64 {
        let map = self.read();
        let mut dropped = 0;
        for name in names {
            if let Some(s) = map.names.get(name) {
                let old = s.generation.swap(self.fresh_generation(), Ordering::AcqRel);
                s.previous.store(old, Ordering::Release);
                dropped += s.live.swap(0, Ordering::AcqRel).max(0) as u64;
            }
        }
        dropped
    }

    /// The tracked names that satisfy `pred`.
    pub(super) fn names(&self, mut pred: impl FnMut(&str) -> bool) -> Vec<String> {
        self.read()
            .names
            .keys()
            .filter(|s| pred(s))
            .map(|s| s.to_string())
            .collect()
    }

    /// How many streams are tracked.
    pub(super) fn len(&self) -> usize {
        self.read().names.len()
    }

    /// Names visited by sweeps since the start.
    #[cfg(test)]
    pub(super) fn swept(&self) -> u64 {
        self.swept.load(Ordering::Relaxed)
    }

    fn fresh_generation(&self) -> u64 {
        self.next_generation.fetch_add(1, Ordering::AcqRel)
    }

    // A poisoned lock only means another thread panicked while holding it; the map stays usable.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Map> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }
}

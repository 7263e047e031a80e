//! The per-session decision cache (SPEC §3 steps 2–4): bounded, TTL'd, single-flight, and
//! invalidated per stream in O(1) by bumping the stream's generation.
//!
//! Keys are a 128-bit keyed hash (SipHash-1-3, one pass, a per-process secret key) of stream
//! generation + stream + session id + token: fixed size,
//! no allocation per lookup. Invalidating a stream gives it a fresh generation from a process-wide
//! counter, so every cached decision of that stream becomes unreachable at once while other streams
//! keep theirs; the unreachable entries leave the bounded store ([`lru`], second-chance eviction)
//! by themselves.
//!
//! An evaluation that can decide without waiting (a `jwt` check, `public`, `deny`) runs right in
//! the caller: no task, no channel, no copy of the request. One that must wait (a webhook, a JWKS
//! refetch) runs in a task of its own and is shared through a pending map, so MistServer's retry of
//! a trigger (same session, same token) joins the evaluation already running even when the first
//! attempt's connection has gone away.
//!
//! A decision made by a token whose signature verified keeps the
//! [serial](crate::keys::VerifyingKey::serial) of the key that verified it. After an invalidation
//! MistServer asks again for every viewer of the stream, with the same session and token; the
//! decision made under the stream's previous generation, while the store still holds it, hands
//! that serial to the new evaluation, which then skips the ECDSA verify if the token names the
//! same key (every other check runs again). A re-check storm so costs no verify per viewer, and
//! an admission pays nothing for it.
//!
//! No lock here is ever held across an `.await`: each guard lives inside a block that ends first.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use siphasher::sip128::{Hasher128, SipHasher13};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::config::CacheConfig;
use crate::reason::Reason;
use streams::{StreamState, Streams};

/// A cached answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub reason: Reason,
    /// The policy type that decided (`none` if none did).
    pub policy: crate::reason::DecidedBy,
}

/// How an answer was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// From the cache.
    Hit,
    /// This request ran the evaluation.
    Evaluated,
    /// Another request for the same key was already evaluating; this one waited for it.
    Joined,
}

impl Lookup {
    /// `hit`, `evaluated` or `joined`, for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Evaluated => "evaluated",
            Lookup::Joined => "joined",
        }
    }
}

/// What an evaluation hands the cache: the verdict, made at once, or the future that makes it (run
/// in a task of its own, which retries of the same trigger join).
pub enum Evaluation<F> {
    /// The verdict, with the serial of the key the token's signature verified with, if it did.
    Now(Verdict, Option<u64>),
    Later(F),
}

/// A keyed hash of (stream generation, stream, session id, token).
type CacheKey = u128;

/// The key one decision is cached under, for [`DecisionCache::forget`] (never `0` in practice:
/// a 128-bit keyed hash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionKey(CacheKey);

impl DecisionKey {
    /// The key as 128 bits (for a table that stores it).
    pub const fn to_bits(self) -> u128 {
        self.0
    }

    /// A key stored as [`to_bits`](Self::to_bits).
    pub const fn from_bits(bits: u128) -> DecisionKey {
        DecisionKey(bits)
    }
}

struct Entry {
    verdict: Verdict,
    expires_at: Instant,
    stream: Arc<StreamState>,
    /// The stream generation the decision was made under.
    generation: u64,
    /// The serial of the key the token's signature verified with; 0 for none.
    signed_by: u64,
}

impl lru::Expiring for Entry {
    fn expired(&self, now: Instant) -> bool {
        self.expires_at <= now
    }
}

/// A decision leaving the store: it no longer counts as a live decision of its stream, unless
/// the stream was invalidated since (which already reset the count).
fn removed(entries: Vec<Entry>) {
    for entry in entries {
        if entry.stream.generation.load(Ordering::Acquire) == entry.generation {
            entry.stream.live.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Streams tracked before streams without cached decisions are forgotten (see [`streams`]).
const MAX_IDLE_STREAMS: usize = 100_000;

/// The decision cache. Cheap to clone.
#[derive(Clone)]
pub struct DecisionCache {
    inner: Arc<Inner>,
}

struct Inner {
    entries: lru::Lru<Entry>,
    streams: Streams,
    pending: Mutex<HashMap<CacheKey, watch::Receiver<Option<Verdict>>>>,
    /// The secret key of [`Inner::fingerprint`].
    key: (u64, u64),
    allow_ttl: Duration,
    deny_ttl: Duration,
}

impl DecisionCache {
    /// A cache sized and timed by `[cache]`.
    pub fn new(config: &CacheConfig) -> DecisionCache {
        let allow = Duration::from_secs(config.allow_ttl_s);
        let deny = Duration::from_secs(config.deny_ttl_s);
        let entries = lru::Lru::new(config.max_entries);
        DecisionCache {
            inner: Arc::new(Inner {
                entries,
                streams: Streams::new(MAX_IDLE_STREAMS),
                pending: Mutex::new(HashMap::new()),
                key: secret_key(),
                allow_ttl: allow,
                deny_ttl: deny,
            }),
        }
    }

    /// [`get_or_evaluate_keyed`](Self::get_or_evaluate_keyed) now, without the key (the tests'
    /// entry).
    #[cfg(test)]
    pub async fn get_or_evaluate<E, F>(
        &self,
        stream: &str,
        session_id: &str,
        token: &str,
        evaluate: E,
    ) -> (Verdict, Lookup)
    where
        E: FnOnce() -> Evaluation<F>,
        F: Future<Output = Verdict> + Send + 'static,
    {
        self.get_or_evaluate_keyed(stream, session_id, token, Instant::now(), |_, _| evaluate())
            .await
    }

    /// The cached verdict for this viewer session at `now` (the request's clock reading, so a
    /// cached answer reads the clock no second time), or the outcome of `evaluate` (called only
    /// on a miss, and only after the stream's generation was read — so a caller that loads its
    /// policy snapshot inside `evaluate` never caches an old policy's answer under a new
    /// generation), which is handed the key the decision will be cached under (to
    /// [`forget`](Self::forget) it later) and, when this session's token was decided under the
    /// stream's previous generation, the serial of the key its signature verified with then. A
    /// verdict made at once is stored and answered; a future runs at most once at a time per key,
    /// in a task of its own. A panicking evaluation answers `internal-error`.
    pub async fn get_or_evaluate_keyed<E, F>(
        &self,
        stream: &str,
        session_id: &str,
        token: &str,
        now: Instant,
        evaluate: E,
    ) -> (Verdict, Lookup)
    where
        E: FnOnce(DecisionKey, Option<u64>) -> Evaluation<F>,
        F: Future<Output = Verdict> + Send + 'static,
    {
        // A hit needs the generation only; the stream's state is fetched (or created) on a miss.
        let seen = self.inner.streams.generation(stream).map(|generation| {
            let key = self
                .inner
                .fingerprint(generation, stream, session_id, token);
            (generation, key)
        });
        if let Some((_, key)) = seen
            && let Some(verdict) = self.inner.fresh(&key, now)
        {
            return (verdict, Lookup::Hit);
        }
        let state = self.inner.streams.get_or_insert(stream);
        let generation = state.generation.load(Ordering::Acquire);
        let key = match seen {
            Some((g, key)) if g == generation => key,
            _ => self
                .inner
                .fingerprint(generation, stream, session_id, token),
        };
        let found = {
            let pending = lock(&self.inner.pending);
            match pending.get(&key) {
                Some(rx) => Some(Err(rx.clone())),
                // An evaluation may have finished between the lookup above and taking the lock.
                None => self.inner.fresh(&key, now).map(Ok),
            }
        };
        match found {
            Some(Ok(verdict)) => return (verdict, Lookup::Hit),
            Some(Err(rx)) => return (wait(rx).await, Lookup::Joined),
            None => {}
        }
        let verified = self
            .inner
            .verified_before(&state, stream, session_id, token, now);
        // Outside every lock: an evaluation that decides at once costs no task and no channel.
        let evaluated =
            std::panic::catch_unwind(AssertUnwindSafe(|| evaluate(DecisionKey(key), verified)));
        let later = match evaluated {
            Ok(Evaluation::Now(verdict, signed_by)) => {
                let signed_by = signed_by.unwrap_or(0);
                self.inner
                    .store(key, generation, verdict, signed_by, state, now);
                return (verdict, Lookup::Evaluated);
            }
            Ok(Evaluation::Later(future)) => future,
            Err(_) => {
                tracing::error!("a decision's evaluation panicked; denying");
                return (INTERNAL_ERROR, Lookup::Evaluated);
            }
        };
        let (rx, lookup) = {
            let mut pending = lock(&self.inner.pending);
            match pending.get(&key) {
                // Another request started the same evaluation meanwhile: join it.
                Some(rx) => (rx.clone(), Lookup::Joined),
                None => {
                    let (tx, rx) = watch::channel(None);
                    pending.insert(key, rx.clone());
                    let inner = self.inner.clone();
                    tokio::spawn(async move {
                        let _done = PendingGuard { inner: &inner, key };
                        let verdict = later.await;
                        inner.store(key, generation, verdict, 0, state, Instant::now());
                        let _ = tx.send(Some(verdict));
                    });
                    (rx, Lookup::Evaluated)
                }
            }
        };
        (wait(rx).await, lookup)
    }

    /// Drops the cached decision of one viewer session (`USER_END`).
    pub fn remove(&self, stream: &str, session_id: &str, token: &str) {
        let Some(generation) = self.inner.streams.generation(stream) else {
            return;
        };
        let key = self
            .inner
            .fingerprint(generation, stream, session_id, token);
        if let Some(entry) = self.inner.entries.remove(key) {
            removed(vec![entry]);
        }
    }

    /// Drops one cached decision by its key (its session left the live-session table).
    pub fn forget(&self, key: DecisionKey) {
        if let Some(entry) = self.inner.entries.remove(key.0) {
            removed(vec![entry]);
        }
    }

    /// Drops every cached decision of these streams at once; returns how many were dropped.
    /// O(1) per stream, whatever the number of cached sessions.
    pub fn invalidate_streams<'a>(&self, streams: impl IntoIterator<Item = &'a str>) -> u64 {
        self.inner.streams.invalidate(streams)
    }

    /// The names of the streams usher has seen that satisfy `pred` (to invalidate by object,
    /// base name or tenant).
    pub fn known_streams(&self, pred: impl FnMut(&str) -> bool) -> Vec<String> {
        self.inner.streams.names(pred)
    }

    /// How many streams are tracked (bounded: streams without cached decisions are forgotten).
    pub fn tracked_streams(&self) -> usize {
        self.inner.streams.len()
    }

    /// Approximate number of cached decisions (reachable or not yet evicted).
    pub fn entry_count(&self) -> u64 {
        self.inner.entries.len()
    }

    /// Drops expired decisions from the cold end of the store (metrics want settled counts).
    pub fn run_pending_tasks(&self) {
        removed(self.inner.entries.sweep(Instant::now()));
    }

    /// The TTLs in force.
    pub fn ttls(&self) -> (Duration, Duration) {
        (self.inner.allow_ttl, self.inner.deny_ttl)
    }
}

/// 128 secret bits from the process's random hash keys (std seeds them from the OS): two keyed
/// hashes of constants, unpredictable without those keys.
fn secret_key() -> (u64, u64) {
    (
        RandomState::new().hash_one(0x7573_6865_7201_u64),
        RandomState::new().hash_one(0x7573_6865_7202_u64),
    )
}

/// The verdict of a pending evaluation; `internal-error` when it ended without one (a panic).
async fn wait(mut rx: watch::Receiver<Option<Verdict>>) -> Verdict {
    match rx.wait_for(Option::is_some).await {
        Ok(v) => v.unwrap_or(INTERNAL_ERROR),
        Err(_) => INTERNAL_ERROR,
    }
}

const INTERNAL_ERROR: Verdict = Verdict {
    allowed: false,
    reason: Reason::InternalError,
    policy: crate::reason::DecidedBy::None,
};

impl Inner {
    fn fresh(&self, key: &CacheKey, now: Instant) -> Option<Verdict> {
        self.entries
            .get(*key, now, |e| e.verdict, |e| removed(vec![e]))
    }

    /// The serial of the key this session's token verified with when it was decided under the
    /// stream's previous generation, if that decision is still held and unexpired. A stream
    /// never invalidated has no previous generation and costs one atomic read here.
    fn verified_before(
        &self,
        state: &StreamState,
        stream: &str,
        session_id: &str,
        token: &str,
        now: Instant,
    ) -> Option<u64> {
        let previous = state.previous.load(Ordering::Acquire);
        if previous == 0 {
            return None;
        }
        let key = self.fingerprint(previous, stream, session_id, token);
        self.entries
            .get(key, now, |e| e.signed_by, |e| removed(vec![e]))
            .filter(|&serial| serial != 0)
    }

    /// One pass of keyed SipHash-1-3 with a 128-bit output; each string is preceded by its length,
    /// so no two field tuples feed it the same bytes.
    fn fingerprint(&self, generation: u64, stream: &str, session_id: &str, token: &str) -> u128 {
        let mut h = SipHasher13::new_with_keys(self.key.0, self.key.1);
        h.write_u64(generation);
        for field in [stream, session_id, token] {
            h.write_u64(field.len() as u64);
            h.write(field.as_bytes());
        }
        h.finish128().as_u128()
    }

    /// Keeps a decision made at `now` for its TTL, with the serial of the key its token verified
    /// with (0: none).
    fn store(
        &self,
        key: CacheKey,
        generation: u64,
        verdict: Verdict,
        signed_by: u64,
        stream: Arc<StreamState>,
        now: Instant,
    ) {
        // A decision made under a generation that has since been invalidated is answered but
        // not kept: it may rest on the policy that just changed.
        if stream.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let ttl = if verdict.allowed {
            self.allow_ttl
        } else {
            self.deny_ttl
        };
        stream.live.fetch_add(1, Ordering::AcqRel);
        removed(self.entries.insert(
            key,
            Entry {
                verdict,
                expires_at: now + ttl,
                stream,
                generation,
                signed_by,
            },
            now,
        ));
    }
}

/// Removes a key from the pending map when its evaluation ends, even by panic.
struct PendingGuard<'a> {
    inner: &'a Inner,
    key: CacheKey,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        lock(&self.inner.pending).remove(&self.key);
    }
}

// A poisoned lock only means another thread panicked while holding it; the maps stay usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

mod lru;
mod streams;
#[cfg(test)]
mod tests;

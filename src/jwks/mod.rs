//! Tenant signing keys fetched from the tenant's JWKS URL (SPEC §2): one background task per
//! tenant keeps the last good set, refreshed on the server's `Cache-Control: max-age` (bounded to
//! 60 s..1 h), and an unknown `kid` may force at most one refetch per tenant per 30 s.
//!
//! The parts: [`schedule`] (when to fetch next; pure), [`set`] (a JWK Set into
//! [`TenantKeys`], and the merge with config/API keys; pure), `fetch` (one guarded HTTP `GET`),
//! `options` (tunables and counters). This file owns the per-tenant state and the tasks. It never touches the policy store: the
//! owner is told through [`JwksKeys::subscribe`] and merges with [`set::merged_keys`].
//!
//! Each tenant has one `tokio::sync::Mutex` held for the whole of a fetch (an async lock, so
//! holding it across `.await` is the point: it makes "one fetch at a time" and lets callers that
//! queued behind a fetch share its result). No std lock is ever held across `.await`.

mod fetch;
mod health;
mod options;
pub mod schedule;
pub mod set;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use reqwest::header::HeaderValue;
use tokio::sync::{Mutex, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use url::Url;

use crate::keys::TenantKeys;
use crate::net::client::GuardedClient;

pub use health::JwksTenantStatus;
pub use options::{JwksOptions, JwksStats};
pub use schedule::RefreshBounds;
pub use set::merged_keys;

use fetch::Fetched;
use options::{Counters, bump};

/// The JWKS keys of every tenant with a JWKS URL. Cheap to clone; the background tasks stop
/// when the last clone is dropped or on [`shutdown`](Self::shutdown).
#[derive(Clone)]
pub struct JwksKeys {
    shared: Arc<Shared>,
    tasks: Arc<Tasks>,
}

impl fmt::Debug for JwksKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksKeys")
            .field("tenants", &self.shared.tenants.len())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct Shared {
    tenants: HashMap<String, Arc<TenantState>>,
    client: GuardedClient,
    options: JwksOptions,
    counters: Counters,
    /// Bumped on every change of any tenant's set; see [`JwksKeys::changes_since`].
    revision: watch::Sender<u64>,
}

struct TenantState {
    id: String,
    url: Url,
    /// The last good set; `None` until the first good fetch.
    keys: ArcSwapOption<TenantKeys>,
    /// Fetches completed so far; read before queueing on `fetch` to know whether one finished.
    completed: AtomicU64,
    /// The global revision at which this set last changed (written under the watch's lock).
    revision: AtomicU64,
    fetch: Arc<Mutex<FetchState>>,
    /// The last good fetch and the failures since, for operators.
    health: health::Health,
}

/// Owned by whoever holds the tenant's fetch lock.
struct FetchState {
    etag: Option<HeaderValue>,
    /// The refresh interval from the last good answer (the default until then).
    interval: Duration,
    backoff: Option<Duration>,
    next_due: Instant,
    last_unknown_kid_fetch: Option<Instant>,
    /// The `completed` count of the last fetch that changed the set.
    last_change: u64,
}

struct Tasks {
    handles: Vec<AbortHandle>,
    stopped: AtomicBool,
}

impl Tasks {
    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.handles.iter().for_each(AbortHandle::abort);
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.stop();
    }
}

impl JwksKeys {
    /// Starts one refresh task per tenant, each fetching at once. URLs are judged by the client's
    /// SSRF guard on every fetch (a refused URL is a failed fetch, retried with backoff); the
    /// owner should also judge them when the config is loaded to report them early. A tenant
    /// listed twice keeps its last URL. Must be called within a Tokio runtime.
    pub fn start(
        tenants: Vec<(String, Url)>,
        client: GuardedClient,
        options: JwksOptions,
    ) -> JwksKeys {
        let now = Instant::now();
        let tenants = tenants
            .into_iter()
            .map(|(id, url)| {
                let state = TenantState::new(id.clone(), url, now, &options);
                (id, Arc::new(state))
            })
            .collect();
        let shared = Arc::new(Shared {
            tenants,
            client,
            options,
            counters: Counters::default(),
            revision: watch::channel(0).0,
        });
        let handles = shared
            .tenants
            .values()
            .map(|t| tokio::spawn(refresh_loop(shared.clone(), t.clone())).abort_handle())
            .collect();
        JwksKeys {
            shared,
            tasks: Arc::new(Tasks {
                handles,
                stopped: AtomicBool::new(false),
            }),
        }
    }

    /// The tenant's last good JWKS keys (lock-free). `None` when the tenant has no JWKS URL or
    /// no fetch has succeeded yet.
    pub fn keys(&self, tenant: &str) -> Option<Arc<TenantKeys>> {
        self.shared.tenants.get(tenant)?.keys.load_full()
    }

    /// Whether the tenant has a JWKS URL here.
    pub fn has_tenant(&self, tenant: &str) -> bool {
        self.shared.tenants.contains_key(tenant)
    }

    /// The tenants and their JWKS URLs.
    pub fn tenants(&self) -> impl Iterator<Item = (&str, &Url)> {
        self.shared
            .tenants
            .values()
            .map(|t| (t.id.as_str(), &t.url))
    }

    /// Called when a token names a kid the tenant does not have: refetches the tenant's JWKS
    /// unless one was forced less than 30 s ago, and answers whether the set changed (so a
    /// re-check may now pass). Concurrent callers for a tenant share one fetch: whoever finds
    /// a fetch in flight waits for it and takes its result. `false` for a tenant without JWKS
    /// URL, when rate-limited, on a failed fetch (the last good set stays) and after shutdown.
    pub async fn refresh_for_unknown_kid(&self, tenant: &str) -> bool {
        let Some(t) = self.shared.tenants.get(tenant) else {
            return false;
        };
        if self.tasks.stopped.load(Ordering::Acquire) {
            return false;
        }
        let seen = t.completed.load(Ordering::Acquire);
        let mut st = match t.fetch.clone().try_lock_owned() {
            Ok(st) => st,
            Err(_) => t.fetch.clone().lock_owned().await,
        };
        if t.completed.load(Ordering::Acquire) != seen {
            bump(&self.shared.counters.joined);
            return st.last_change > seen;
        }
        let now = Instant::now();
        let interval = self.shared.options.unknown_kid_interval;
        if st
            .last_unknown_kid_fetch
            .is_some_and(|at| now.duration_since(at) < interval)
        {
            bump(&self.shared.counters.rate_limited);
            return false;
        }
        st.last_unknown_kid_fetch = Some(now);
        tracing::debug!(tenant, "jwks refetch for an unknown kid");
        // Detached, so a caller that gives up (a dropped request) neither cancels the fetch
        // that the callers queued behind it are waiting for nor wastes the 30 s budget.
        let (shared, t) = (self.shared.clone(), t.clone());
        tokio::spawn(async move { shared.run_fetch(&t, &mut st).await })
            .await
            .unwrap_or(false)
    }

    /// A receiver woken whenever any tenant's set changes; its value is the change revision to
    /// pass to [`changes_since`](Self::changes_since).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.revision.subscribe()
    }

    /// The current revision and the tenants whose set changed after `revision` (pass 0 first,
    /// then the revision returned last time). Nothing is missed between two calls.
    pub fn changes_since(&self, revision: u64) -> (u64, Vec<String>) {
        // Revisions are written inside `send_modify`, under the watch's lock; holding `borrow`
        // (never across `.await`) makes the scan agree with the revision returned.
        let current = self.shared.revision.borrow();
        let changed = self
            .shared
            .tenants
            .values()
            .filter(|t| t.revision.load(Ordering::Acquire) > revision)
            .map(|t| t.id.clone())
            .collect();
        (*current, changed)
    }

    /// Fetch counters, for metrics.
    pub fn stats(&self) -> JwksStats {
        let c = &self.shared.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        JwksStats {
            ok: get(&c.ok),
            not_modified: get(&c.not_modified),
            error: get(&c.error),
            rate_limited: get(&c.rate_limited),
            joined: get(&c.joined),
        }
    }

    /// Each tenant's fetch state, sorted by tenant id.
    pub fn tenant_status(&self) -> Vec<JwksTenantStatus> {
        let now = Instant::now();
        let mut all: Vec<JwksTenantStatus> = self
            .shared
            .tenants
            .values()
            .map(|t| {
                let keys = t.keys.load().as_deref().map(TenantKeys::len);
                t.health
                    .status(&t.id, t.url.host_str().unwrap_or(""), keys, now)
            })
            .collect();
        all.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        all
    }

    /// How many tenants' last fetch failed.
    pub fn failing_tenants(&self) -> usize {
        self.shared
            .tenants
            .values()
            .filter(|t| t.health.failing())
            .count()
    }

    /// Stops every background task now (also done when the last clone is dropped). The keys
    /// fetched so far stay readable; no fetch is started after this (one already running
    /// for an unknown kid finishes within the fetch timeout).
    pub fn shutdown(&self) {
        self.tasks.stop();
    }
}

impl TenantState {
    fn new(id: String, url: Url, now: Instant, options: &JwksOptions) -> TenantState {
        TenantState {
            id,
            url,
            keys: ArcSwapOption::empty(),
            completed: AtomicU64::new(0),
            revision: AtomicU64::new(0),
            fetch: Arc::new(Mutex::new(FetchState {
                etag: None,
                interval: schedule::refresh_interval(None, &options.refresh),
                backoff: None,
                next_due: now,
                last_unknown_kid_fetch: None,
                last_change: 0,
            })),
            health: health::Health::default(),
        }
    }
}

/// Sleeps until the tenant's next refresh is due, fetches, repeats. A refetch forced by an
/// unknown kid moves `next_due`, so the loop checks it again after waking.
async fn refresh_loop(shared: Arc<Shared>, t: Arc<TenantState>) {
    loop {
        let due = t.fetch.lock().await.next_due;
        tokio::time::sleep_until(due).await;
        let mut st = t.fetch.lock().await;
        if Instant::now() >= st.next_due {
            shared.run_fetch(&t, &mut st).await;
        }
    }
}

impl Shared {
    /// One fetch with the tenant's fetch lock held: updates the set, the ETag, the schedule and
    /// the counters. Returns whether the set changed.
    async fn run_fetch(&self, t: &TenantState, st: &mut FetchState) -> bool {
        let opts = &self.options;
        let result = fetch::fetch(
            &self.client,
            &t.url,
            st.etag.as_ref(),
            opts.fetch_timeout,
            opts.max_body_bytes,
        )
        .await;
        let host = t.url.host_str().unwrap_or("");
        let fresh = match result {
            Ok(Fetched::NotModified { cache_control }) => {
                bump(&self.counters.not_modified);
                Ok((cache_control, None))
            }
            Ok(Fetched::Body {
                body,
                etag,
                cache_control,
            }) => match set::parse(&t.id, &body, opts.max_keys) {
                Ok(keys) => {
                    bump(&self.counters.ok);
                    st.etag = etag;
                    Ok((cache_control, Some(keys)))
                }
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        let now = Instant::now();
        let changed = match fresh {
            Ok((cache_control, keys)) => {
                t.health.ok(now);
                st.backoff = None;
                st.interval = schedule::refresh_interval(cache_control.as_deref(), &opts.refresh);
                st.next_due = now + st.interval;
                tracing::debug!(
                    tenant = t.id.as_str(),
                    host,
                    refresh_in_s = st.interval.as_secs(),
                    "jwks fetched"
                );
                keys.is_some_and(|keys| swap_if_different(t, keys))
            }
            Err(error) => {
                bump(&self.counters.error);
                t.health.failed();
                let backoff = schedule::next_backoff(st.backoff, opts.first_backoff, st.interval);
                st.backoff = Some(backoff);
                st.next_due = now + backoff;
                tracing::warn!(
                    tenant = t.id.as_str(),
                    host,
                    error,
                    retry_in_s = backoff.as_secs(),
                    "jwks fetch failed; keeping the last good keys"
                );
                false
            }
        };
        let done = t.completed.fetch_add(1, Ordering::AcqRel) + 1;
        if changed {
            st.last_change = done;
            // Announced only once the fetch is counted: whoever reacts to the change and then
            // meets an unknown kid must not mistake this fetch for one it could share.
            self.revision.send_modify(|rev| {
                *rev += 1;
                t.revision.store(*rev, Ordering::Release);
            });
        }
        changed
    }
}

/// Stores `keys` unless they equal the current set; returns whether they differed.
fn swap_if_different(t: &TenantState, keys: TenantKeys) -> bool {
    let current = t.keys.load();
    if current.as_deref().is_some_and(|c| c.same_as(&keys)) {
        return false;
    }
    tracing::info!(
        tenant = t.id.as_str(),
        keys = keys.len(),
        "jwks keys changed"
    );
    t.keys.store(Some(Arc::new(keys)));
    true
}

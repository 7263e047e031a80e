//! Invalidation (SPEC §5): which streams a change touches, dropping their cached decisions at once,
//! and handing their names to MistServer so it re-asks `USER_NEW` for every viewer of them.
//!
//! MistServer is reached through the [`MistNotifier`] trait, so the control plane does not depend
//! on how the retrying queue is built; until one is plugged in, [`NoMist`] reports nothing acknowledged.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::Serialize;

use crate::app::App;
use crate::mist::{InvalidationQueue, QueueStatus, Ticket};
use crate::policy::lookup;
use crate::policy::store::Snapshot;

/// A boxed future, as trait objects return them.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Tells MistServer to re-run `USER_NEW` for every session of some streams (`invalidate_sessions`),
/// retrying until it succeeds.
pub trait MistNotifier: Send + Sync {
    /// Queues the stream names (merged with anything pending); returns a ticket to wait on.
    fn enqueue(&self, streams: Vec<String>) -> Ticket;
    /// Whether MistServer acknowledged everything queued up to `ticket` within `timeout`.
    fn wait_acknowledged(&self, ticket: Ticket, timeout: Duration) -> BoxFuture<'_, bool>;
    /// The queue's state, for metrics; `None` when there is no queue.
    fn status(&self) -> Option<QueueStatus>;
}

/// No MistServer queue: nothing is sent, nothing is acknowledged.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMist;

impl MistNotifier for NoMist {
    fn enqueue(&self, _streams: Vec<String>) -> Ticket {
        Ticket { seq: 0, refused: 0 }
    }

    fn wait_acknowledged(&self, _ticket: Ticket, _timeout: Duration) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(false))
    }

    fn status(&self) -> Option<QueueStatus> {
        None
    }
}

impl MistNotifier for InvalidationQueue {
    fn enqueue(&self, streams: Vec<String>) -> Ticket {
        InvalidationQueue::enqueue(self, streams)
    }

    fn wait_acknowledged(&self, ticket: Ticket, timeout: Duration) -> BoxFuture<'_, bool> {
        Box::pin(InvalidationQueue::wait_acknowledged(self, ticket, timeout))
    }

    fn status(&self) -> Option<QueueStatus> {
        Some(InvalidationQueue::status(self))
    }
}

/// What a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// A name a policy is attached to: an exact stream name, an object id or a base name.
    Object(&'a str),
    /// Everything a tenant's policies cover (a key was revoked or replaced).
    Tenant(&'a str),
}

/// The stream names a change touches, sorted. `known` are the streams the cache has seen; `old`
/// and `new` the snapshots before and after the change (the same one for a plain invalidation).
///
/// For an object name X: every known stream that looks X up (X is one of its lookup candidates),
/// plus X itself. For a tenant: every known stream whose policy belongs to the tenant before or
/// after the change.
pub fn affected_streams<'a>(
    known: impl IntoIterator<Item = &'a str>,
    scopes: &[Scope<'_>],
    old: &Snapshot,
    new: &Snapshot,
) -> Vec<String> {
    let mut out = BTreeSet::new();
    for scope in scopes {
        if let Scope::Object(name) = scope {
            out.insert((*name).to_owned());
        }
    }
    for stream in known {
        let touched = scopes.iter().any(|scope| match scope {
            Scope::Object(name) => lookup::candidates(stream).any(|c| c == *name),
            Scope::Tenant(t) => {
                old.resolve(stream).tenant == *t || new.resolve(stream).tenant == *t
            }
        });
        if touched {
            out.insert(stream.to_owned());
        }
    }
    out.into_iter().collect()
}

/// What an invalidation did; part of the answer of every invalidating API call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Invalidated {
    /// Cached decisions dropped.
    pub dropped: u64,
    /// The streams invalidated (and sent to MistServer).
    pub streams: Vec<String>,
    /// Whether MistServer acknowledged within `[mist] ack_wait_ms`; vacuously true for no streams.
    pub mist_acknowledged: bool,
}

impl Invalidated {
    /// Nothing to invalidate: no stream, nothing dropped, nothing for MistServer to acknowledge.
    pub fn nothing() -> Invalidated {
        Invalidated {
            mist_acknowledged: true,
            ..Invalidated::default()
        }
    }
}

/// Drops the cached decisions of `scopes` and tells MistServer. Call after the new snapshot is in
/// place: a decision still in flight under the old one is answered but not cached.
pub async fn invalidate(app: &App, scopes: &[Scope<'_>], old: &Snapshot) -> Invalidated {
    let new = app.store.load();
    let mut known = app.cache.known_streams(|_| true);
    known.extend(active_streams(app).await);
    let streams = affected_streams(known.iter().map(String::as_str), scopes, old, &new);
    invalidate_streams(app, streams).await
}

/// How long an invalidation waits for MistServer's list of active streams.
const ACTIVE_STREAMS_WAIT: Duration = Duration::from_secs(1);

/// The streams MistServer has active, best effort: after a restart usher has seen few streams,
/// but MistServer may still hold allowed sessions of others (a revoked key must reach them too).
async fn active_streams(app: &App) -> Vec<String> {
    let Some(api) = &app.mist_api else {
        return Vec::new();
    };
    match tokio::time::timeout(ACTIVE_STREAMS_WAIT, api.active_streams()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot list MistServer's active streams");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("MistServer's active streams did not arrive in time");
            Vec::new()
        }
    }
}

/// Drops the cached decisions of these exact streams and tells MistServer.
pub async fn invalidate_streams(app: &App, streams: Vec<String>) -> Invalidated {
    if streams.is_empty() {
        return Invalidated::nothing();
    }
    let dropped = app
        .cache
        .invalidate_streams(streams.iter().map(String::as_str));
    let ticket = app.mist.enqueue(streams.clone());
    let wait = Duration::from_millis(app.config.mist.ack_wait_ms);
    let mist_acknowledged = app.mist.wait_acknowledged(ticket, wait).await;
    app.metrics.invalidation(dropped);
    tracing::info!(
        streams = streams.len(),
        dropped,
        mist_acknowledged,
        "invalidated"
    );
    Invalidated {
        dropped,
        streams,
        mist_acknowledged,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{Policy, PolicyEntry, Source};

    fn snapshot(entries: &[(&str, &str)]) -> Snapshot {
        let mut s = Snapshot::new(Policy::Deny);
        for (object, tenant) in entries {
            s.set_policy(PolicyEntry {
                object: (*object).into(),
                tenant: (*tenant).into(),
                policy: Policy::Public,
                source: Source::Api,
            });
        }
        s
    }

    const KNOWN: [&str; 5] = ["live+abc", "live+def", "vod", "abc", "other+abc"];

    #[test]
    fn object_touches_streams_that_look_it_up_and_itself() {
        let s = snapshot(&[]);
        let got = affected_streams(KNOWN, &[Scope::Object("abc")], &s, &s);
        assert_eq!(got, ["abc", "live+abc", "other+abc"]);
    }

    #[test]
    fn base_name_touches_every_wildcard_stream_of_it() {
        let s = snapshot(&[]);
        let got = affected_streams(KNOWN, &[Scope::Object("live")], &s, &s);
        assert_eq!(got, ["live", "live+abc", "live+def"]);
    }

    #[test]
    fn unknown_object_is_still_named_for_mistserver() {
        let s = snapshot(&[]);
        let got = affected_streams(KNOWN, &[Scope::Object("new+one")], &s, &s);
        assert_eq!(got, ["new+one"]);
    }

    #[test]
    fn tenant_touches_streams_resolved_to_it_before_or_after() {
        let old = snapshot(&[("live", "t1"), ("vod", "t2")]);
        let new = snapshot(&[("live", "t2"), ("vod", "t1")]);
        let got = affected_streams(KNOWN, &[Scope::Tenant("t1")], &old, &new);
        assert_eq!(got, ["live+abc", "live+def", "vod"]);
        let none = affected_streams(KNOWN, &[Scope::Tenant("t3")], &old, &new);
        assert!(none.is_empty());
    }
}

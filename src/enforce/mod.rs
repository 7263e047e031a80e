//! The one owner of what usher enforces (SPEC §5: "one way to change what usher enforces").
//!
//! [`Enforcer`] holds the policy snapshot every decision reads, the layers it is composed of (the
//! config file's entries, what the control plane stored in the state database, keys fetched from
//! JWKS URLs), the write lock, and the way to MistServer. Every writer hands it a [`Change`];
//! [`Enforcer::apply`] validates it, commits it together with the stream names it invalidates
//! (one redb transaction), swaps the snapshot atomically and drops the affected cached decisions —
//! all before any MistServer I/O — then hands the names to MistServer's queue, adds the streams
//! MistServer reports active that the change touches, and waits (bounded) for the acknowledgement.
//!
//! The parts: [`change`] (the vocabulary), `edit` (control-plane edits as pure functions of the
//! snapshot), [`layers`] (composing the layers, diffing snapshots), [`affected`] (which streams a
//! change touches), [`notify`] (the MistServer side), `viewers` (viewer revocations and ending
//! sessions through the durable queue, SPEC §9).

pub mod affected;
pub mod change;
mod edit;
pub mod layers;
pub mod notify;
mod remote;
mod viewers;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use url::Url;

pub use affected::Scope;
pub use change::{Applied, Change, Invalidated, Outcome, Refused, Revision, Target};
pub use edit::keep_secrets;
pub use notify::MistNotifier;
pub use viewers::default_before;

use edit::Edit;

use crate::cache::DecisionCache;
use crate::clock::Clock;
use crate::jwks::JwksKeys;
use crate::keys::{KeySource, VerifyingKey};
use crate::metrics::Metrics;
use crate::mist::{MAX_PENDING, MistClient, QueueStatus, Ticket};
use crate::net::guard::SsrfGuard;
use crate::policy::build;
use crate::policy::model::Source;
use crate::policy::store::{PolicyStore, Snapshot};
use crate::sessions::Sessions;
use crate::spec::{KeySpec, PolicyKind, PublishKind};
use crate::state::{Pending, StateDb, StateError};

/// How long an invalidation waits for MistServer's list of active streams (after the drop).
const ACTIVE_STREAMS_WAIT: Duration = Duration::from_secs(1);

/// What the enforcer is built from.
pub struct Parts {
    /// The snapshot the config file describes (the config layer).
    pub config: Snapshot,
    /// The state database (the stored layer).
    pub db: StateDb,
    /// The JWKS layer, when some tenant has a JWKS URL.
    pub jwks: Option<JwksKeys>,
    /// The decision cache whose entries a change drops.
    pub cache: DecisionCache,
    pub metrics: Arc<Metrics>,
    /// Judges webhook URLs when a policy is set.
    pub guard: SsrfGuard,
    /// Where invalidated stream names go.
    pub mist: Arc<dyn MistNotifier>,
    /// Asked for its active streams after an invalidation (`None`: not asked).
    pub mist_api: Option<MistClient>,
    /// How long `apply` waits for MistServer's acknowledgement.
    pub ack_wait: Duration,
    /// The live-session table and viewer revocations (SPEC §9).
    pub sessions: Sessions,
    /// How long a revocation is kept for a tenant whose token lifetimes are unbounded.
    pub revocation_max_age: Duration,
    /// The daemon's wall clock (viewer revocations are stamped and expired with it).
    pub clock: Clock,
}

/// The layers a change may touch; reachable only through the write lock.
struct Layers {
    db: StateDb,
    jwks: Option<JwksKeys>,
}

struct Inner {
    store: PolicyStore,
    writes: Mutex<Layers>,
    cache: DecisionCache,
    metrics: Arc<Metrics>,
    guard: SsrfGuard,
    mist: Arc<dyn MistNotifier>,
    mist_api: Option<MistClient>,
    ack_wait: Duration,
    sessions: Sessions,
    revocation_max_age: Duration,
    clock: Clock,
}

/// The handle; cheap to clone.
#[derive(Clone)]
pub struct Enforcer {
    inner: Arc<Inner>,
}

/// What a change needs that is checked before the write lock is taken (key parsing, DNS).
enum Prepared {
    Key(VerifyingKey),
    Url(Option<Url>),
    Nothing,
}

impl Enforcer {
    /// Composes the layers into the first snapshot and sends MistServer every invalidation left
    /// pending on disk (by a restart, `kill -9` included).
    pub async fn start(parts: Parts) -> Result<Enforcer, StateError> {
        let records = parts.db.load_all().await?;
        let (snapshot, problems) = layers::compose(parts.config, records, parts.jwks.as_ref());
        for problem in problems {
            tracing::warn!(problem = problem.as_str(), "state");
        }
        let pending = parts.db.pending().await?;
        if !pending.is_empty() {
            tracing::info!(
                streams = pending.len(),
                "sending invalidations left pending before the restart"
            );
            parts.mist.enqueue(pending);
        }
        viewers::load(&parts.db, parts.sessions.revocations(), parts.clock).await?;
        Ok(Enforcer {
            inner: Arc::new(Inner {
                store: PolicyStore::new(snapshot),
                writes: Mutex::new(Layers {
                    db: parts.db,
                    jwks: parts.jwks,
                }),
                cache: parts.cache,
                metrics: parts.metrics,
                guard: parts.guard,
                mist: parts.mist,
                mist_api: parts.mist_api,
                ack_wait: parts.ack_wait,
                sessions: parts.sessions,
                revocation_max_age: parts.revocation_max_age,
                clock: parts.clock,
            }),
        })
    }

    /// The current snapshot; cheap, lock-free, and stable for as long as it is held.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.store.load()
    }

    /// The daemon's wall clock.
    pub fn clock(&self) -> Clock {
        self.inner.clock
    }

    /// The live-session table and viewer revocations.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// MistServer's queue, for metrics; `None` without one.
    pub fn mist_status(&self) -> Option<QueueStatus> {
        self.inner.mist.status()
    }

    /// Applies one change: validate, commit (with the names it invalidates), swap, drop the
    /// cached decisions, then tell MistServer. On `Err` nothing changed.
    pub async fn apply(&self, change: Change) -> Result<Applied, Refused> {
        if !matches!(change, Change::Remote { .. }) {
            change.check_names()?;
        }
        match change {
            Change::RevokeViewer {
                tenant,
                viewer,
                before,
            } => self.revoke_viewer(tenant, viewer, before, None).await,
            Change::Remote { revision, change } => self.apply_remote(revision, *change).await,
            change => self.apply_at(change, None).await,
        }
    }

    /// [`Enforcer::apply`], recording `revision` (a fleet feed's) in the same transaction. A
    /// change from the feed does not wait for MistServer: the feed goes on at once, and whoever
    /// needs the acknowledgement waits on [`Applied::ticket`].
    async fn apply_at(
        &self,
        change: Change,
        revision: Option<Revision>,
    ) -> Result<Applied, Refused> {
        let kind = change.kind();
        let prepared = self.prepare(&change, revision.is_some()).await?;
        let mut layers = self.inner.writes.lock().await;
        let old = self.inner.store.load();
        let mut edit = edit_for(&mut layers, &old, change, prepared).await?;
        let ack_wait = match revision {
            Some(r) => {
                edit.writes
                    .push(crate::state::Write::Revision(r.feed, r.seq));
                Duration::ZERO
            }
            None => self.inner.ack_wait,
        };
        let new = edit.new.map(Arc::new);
        let after = new.clone().unwrap_or_else(|| old.clone());
        let known = self.inner.cache.known_streams(|_| true);
        let streams = affected::affected_streams(
            known.iter().map(String::as_str),
            &edit.scopes,
            &old,
            &after,
        );
        let pending = if edit.writes.is_empty() && streams.is_empty() {
            Pending::default()
        } else {
            layers
                .db
                .commit(edit.writes, streams.clone(), MAX_PENDING)
                .await?
        };
        if let Some(new) = new {
            self.inner.store.replace_arc(new);
        }
        // A stream first seen while the change was being stored may have been decided under the
        // old snapshot: the streams the change touches are read again after the swap, and the
        // new ones stored and invalidated too. A stream seen after this read is decided under the
        // new snapshot (it loads the snapshot after registering its name).
        let (streams, pending) = self
            .with_late_streams(&layers, streams, pending, &edit.scopes, &old, &after)
            .await;
        // After the swap: a decision still in flight under the old snapshot is answered but not
        // cached (the cache compares generations).
        let dropped = self
            .inner
            .cache
            .invalidate_streams(streams.iter().map(String::as_str));
        drop(layers);
        tracing::info!(
            change = kind,
            streams = streams.len(),
            dropped,
            "change applied"
        );
        let (invalidated, ticket) = self
            .tell_mist(
                streams,
                pending,
                dropped,
                &edit.scopes,
                &old,
                &after,
                ack_wait,
            )
            .await;
        Ok(Applied {
            outcome: edit.outcome,
            key: edit.key,
            policy: edit.policy,
            invalidated,
            revocation: None,
            ticket,
        })
    }

    /// The checks that need no lock: parsing key material, resolving a webhook host. `remote`:
    /// the change comes from the fleet, where the writing node resolved the host already; a
    /// name that does not resolve here now is taken as the config file takes it (the webhook
    /// call resolves and filters again, failing closed).
    async fn prepare(&self, change: &Change, remote: bool) -> Result<Prepared, Refused> {
        if let Change::PutPolicy { spec, .. } = change {
            self.judge_publish_url(spec, remote).await?;
        }
        match change {
            Change::PutKey { kid, spec } => api_key(kid, spec).map(Prepared::Key),
            Change::PutPolicy { object, spec } if spec.kind == PolicyKind::Webhook => {
                let Some(url) = &spec.url else {
                    return Ok(Prepared::Url(None));
                };
                // Shape problems first (the secret may be kept from the old policy).
                let mut shape = spec.clone();
                shape.secret.get_or_insert_with(|| "kept".into());
                build::entry(object, &shape, Source::Api)
                    .map_err(|errs| Refused::InvalidPolicy(errs.join("; ")))?;
                Ok(Prepared::Url(Some(self.judge_url(url, remote).await?)))
            }
            _ => Ok(Prepared::Nothing),
        }
    }

    /// Judges a `publish` webhook URL as a viewer webhook's is judged when set (SPEC §4); the
    /// call path judges it again on every dial.
    async fn judge_publish_url(
        &self,
        spec: &crate::spec::PolicySpec,
        remote: bool,
    ) -> Result<(), Refused> {
        let Some(url) = spec
            .publish
            .as_ref()
            .filter(|p| p.kind == PublishKind::Webhook)
            .and_then(|p| p.url.as_deref())
        else {
            return Ok(());
        };
        self.judge_url(url, remote).await.map(drop)
    }

    /// The SSRF guard's judgement of a webhook URL being set (SPEC §4): resolved now and refused
    /// when any answer is; from the fleet (`remote`), where the writing node resolved it, as a URL
    /// set elsewhere.
    async fn judge_url(&self, url: &str, remote: bool) -> Result<Url, Refused> {
        let guard = &self.inner.guard;
        let judged = if remote {
            guard.validate_set_elsewhere(url).await.map(|(url, _)| url)
        } else {
            guard.validate_for_policy(url).await
        };
        judged.map_err(|e| Refused::UrlRefused {
            code: e.code(),
            message: e.to_string(),
        })
    }

    /// `streams` plus the streams `scopes` touch among those known now (after the swap), the new
    /// ones stored as pending invalidations like the first (a storage error is logged: they are
    /// still invalidated and sent, only not across a restart).
    async fn with_late_streams(
        &self,
        layers: &Layers,
        mut streams: Vec<String>,
        mut pending: Pending,
        scopes: &[affected::Scope],
        old: &Snapshot,
        new: &Snapshot,
    ) -> (Vec<String>, Pending) {
        let known = self.inner.cache.known_streams(|_| true);
        let late: Vec<String> =
            affected::affected_streams(known.iter().map(String::as_str), scopes, old, new)
                .into_iter()
                .filter(|s| streams.binary_search(s).is_err())
                .collect();
        if late.is_empty() {
            return (streams, pending);
        }
        match layers
            .db
            .commit(Vec::new(), late.clone(), MAX_PENDING)
            .await
        {
            Ok(more) => {
                pending.stored.extend(more.stored);
                pending.refused += more.refused;
            }
            Err(e) => tracing::warn!(
                error = %e,
                streams = late.len(),
                "could not store the invalidation of streams first seen during a change"
            ),
        }
        streams.extend(late);
        streams.sort();
        (streams, pending)
    }

    /// Hands the names to MistServer, adds MistServer's active streams the change touches, and
    /// waits (at most `ack_wait`) for the acknowledgement.
    #[allow(clippy::too_many_arguments)]
    async fn tell_mist(
        &self,
        mut streams: Vec<String>,
        pending: Pending,
        dropped: u64,
        scopes: &[Scope],
        old: &Snapshot,
        new: &Snapshot,
        ack_wait: Duration,
    ) -> (Invalidated, Option<Ticket>) {
        let mut refused = pending.refused;
        let mut ticket =
            (!pending.stored.is_empty()).then(|| self.inner.mist.enqueue(pending.stored));
        if scopes.iter().any(|s| !matches!(s, Scope::Stream(_))) {
            let extra: Vec<String> = {
                let active = self.active_streams().await;
                affected::affected_streams(active.iter().map(String::as_str), scopes, old, new)
                    .into_iter()
                    .filter(|s| streams.binary_search(s).is_err())
                    .collect()
            };
            if !extra.is_empty() {
                let stored = self.store_pending(extra.clone()).await;
                refused += stored.refused;
                ticket = Some(self.inner.mist.enqueue(stored.stored));
                streams.extend(extra);
                streams.sort();
            }
        }
        let Some(ticket) = ticket else {
            return (Invalidated::nothing(), None);
        };
        refused += ticket.refused();
        let acked = self.inner.mist.wait_acknowledged(ticket, ack_wait).await;
        self.inner.metrics.invalidation(dropped);
        if refused > 0 {
            tracing::error!(
                refused,
                max_pending = MAX_PENDING,
                "invalidations refused: too many pending"
            );
        }
        tracing::info!(
            streams = streams.len(),
            dropped,
            mist_acknowledged = acked,
            "invalidated"
        );
        let invalidated = Invalidated {
            dropped,
            streams,
            mist_acknowledged: acked && refused == 0,
        };
        (invalidated, Some(ticket))
    }

    /// Stores names found after the change committed (MistServer's active streams).
    async fn store_pending(&self, names: Vec<String>) -> Pending {
        let layers = self.inner.writes.lock().await;
        match layers
            .db
            .commit(Vec::new(), names.clone(), MAX_PENDING)
            .await
        {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot store pending invalidations; sending them anyway");
                Pending {
                    stored: names.into_iter().map(|n| (n, 0)).collect(),
                    refused: 0,
                }
            }
        }
    }

    /// The streams MistServer has active, best effort: after a restart usher has seen few streams,
    /// but MistServer may still hold allowed sessions of others (a revoked key must reach them too).
    async fn active_streams(&self) -> Vec<String> {
        let Some(api) = &self.inner.mist_api else {
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
}

/// Loads a key given over the control plane: public material, or an HS* secret as an `oct` JWK;
/// never a file, never a raw `secret` (those are the config file's).
fn api_key(kid: &str, spec: &KeySpec) -> Result<VerifyingKey, Refused> {
    for (given, field) in [
        (spec.secret.is_some(), "secret"),
        (spec.secret_file.is_some(), "secret_file"),
        (spec.public_key_file.is_some(), "public_key_file"),
    ] {
        if given {
            return Err(Refused::InvalidKey(format!(
                "{field} is read from the config file only; over the API an HS* secret is an \
                 oct JWK"
            )));
        }
    }
    if spec.public_key_pem.is_some() == spec.jwk.is_some() {
        return Err(Refused::InvalidKey(
            "give exactly one of public_key_pem, jwk".into(),
        ));
    }
    spec.load(kid, KeySource::Api, None)
        .map_err(Refused::InvalidKey)
}

/// The edit a change makes to `old` (under the write lock): [`plan`], or for a reload and a JWKS
/// change the snapshot the layers compose to now.
async fn edit_for(
    layers: &mut Layers,
    old: &Snapshot,
    change: Change,
    prepared: Prepared,
) -> Result<Edit, Refused> {
    match change {
        Change::Reload(config) => {
            let records = layers.db.load_all().await?;
            let (new, problems) = layers::compose(*config, records, layers.jwks.as_ref());
            for problem in problems {
                tracing::warn!(problem = problem.as_str(), "state");
            }
            Ok(Edit::replace(old, new))
        }
        Change::JwksChanged { tenants } => {
            let mut new = old.clone();
            if let Some(jwks) = &layers.jwks {
                layers::merge_jwks(&mut new, jwks, &tenants);
            }
            Ok(Edit::replace(old, new))
        }
        change => plan(old, change, prepared),
    }
}

/// The one plan of a change to what the control plane sets: validated against `old`, with what
/// to store, what the new snapshot is and what to invalidate. [`Enforcer::apply`] commits it;
/// [`Enforcer::check`] (the fleet's dry run before writing to JetStream) stops here.
fn plan(old: &Snapshot, change: Change, prepared: Prepared) -> Result<Edit, Refused> {
    match (change, prepared) {
        (Change::PutKey { kid, spec }, Prepared::Key(key)) => edit::put_key(old, &kid, &spec, key),
        (Change::PutKey { kid, spec }, _) => {
            let key = api_key(&kid, &spec)?;
            edit::put_key(old, &kid, &spec, key)
        }
        (Change::RevokeKey { kid, record }, _) => edit::revoke_key(old, &kid, record.as_deref()),
        (Change::PutPolicy { object, spec }, Prepared::Url(url)) => {
            edit::put_policy(old, &object, spec, url)
        }
        (Change::PutPolicy { object, spec }, _) => edit::put_policy(old, &object, spec, None),
        (Change::DeletePolicy { object }, _) => edit::delete_policy(old, &object),
        (Change::Invalidate(target), _) => Ok(Edit::invalidate(target)),
        // Applied by `revoke_viewer` before an edit is asked for.
        (Change::RevokeViewer { .. }, _) => Ok(Edit::invalidate(Target::Streams(Vec::new()))),
        // Composed from the layers by `edit_for`; nothing to plan against the snapshot alone.
        (Change::Reload(_) | Change::JwksChanged { .. }, _) => {
            Ok(Edit::invalidate(Target::Streams(Vec::new())))
        }
        // `apply` unwraps a remote change before it gets here; one nested inside another is refused.
        (Change::Remote { .. }, _) => Err(Refused::InvalidPolicy(
            "a fleet change cannot carry another fleet change".into(),
        )),
    }
}

#[cfg(test)]
mod tests;

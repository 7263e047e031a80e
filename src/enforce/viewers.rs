//! Viewer revocations and ended sessions (SPEC §9) on the change path: a revocation is stored
//! (with the `stop_sessid` commands for the viewer's live sessions, in one transaction), put in
//! force, the tenant's cached decisions are dropped, and MistServer ends the sessions through the
//! durable queue. Sessions ended for other causes (expiry, `end-oldest`) take the same queue.

use std::time::Duration;

use super::Enforcer;
use super::affected::{self, Scope};
use super::change::{Applied, Invalidated, Outcome, Refused, Revision};
use crate::clock::Clock;
use crate::jwt::LEEWAY_S;
use crate::mist::MAX_PENDING;
use crate::mist::command::stop_key;
use crate::policy::model::Policy;
use crate::policy::store::Snapshot;
use crate::sessions::revocations::MAX_REVOCATIONS;
use crate::sessions::timer::SessionStopper;
use crate::sessions::{Revocation, Revocations};
use crate::state::{StateDb, StateError, Write};

/// What a viewer revocation without `before` refuses: every token issued up to and including this
/// second (`iat` has whole seconds; a token minted in the same second as the revocation cannot be
/// told apart). The one default, for this node's revocation and the fleet's record alike.
pub fn default_before(now_unix_secs: u64) -> u64 {
    now_unix_secs.saturating_add(1)
}

/// Puts the stored revocations that still matter in force (at start).
pub(super) async fn load(
    db: &StateDb,
    revocations: &Revocations,
    clock: Clock,
) -> Result<(), StateError> {
    // A clock before 1970 cannot tell which have expired: all are kept (none is dropped early).
    let now = clock.unix_secs().unwrap_or_else(|e| {
        tracing::error!(error = %e, "keeping every stored viewer revocation");
        0
    });
    for (tenant, viewer, r) in db.revocations().await? {
        if r.forget_at > now {
            revocations.insert(&tenant, &viewer, r);
        }
    }
    Ok(())
}

/// How long after `before` a token of the tenant can still be valid: the largest
/// `max_lifetime_s` of its `jwt` policies, or `cap` when one of them has none (or it has none),
/// plus the leeway.
pub fn longest_lifetime(snapshot: &Snapshot, tenant: &str, cap: Duration) -> u64 {
    let mut longest = 0u64;
    let mut any = false;
    for entry in snapshot.policies().filter(|e| e.tenant == tenant) {
        if let Policy::Jwt(rules) = &entry.policy {
            any = true;
            match rules.max_lifetime_s {
                Some(max) => longest = longest.max(max),
                None => return cap.as_secs() + LEEWAY_S as u64,
            }
        }
    }
    if !any {
        return cap.as_secs() + LEEWAY_S as u64;
    }
    longest.min(cap.as_secs()) + LEEWAY_S as u64
}

impl Enforcer {
    /// Whether a `Change::RevokeViewer` would be accepted now (the tenant exists, the bound
    /// leaves room), without applying it.
    pub(super) fn check_revoke(&self, tenant: &str, viewer: &str) -> Result<(), Refused> {
        if self.snapshot().tenant(tenant).is_none() {
            return Err(Refused::NotFound(format!("no tenant {tenant:?}")));
        }
        let now = self.inner.clock.unix_secs()?;
        let revocations = self.inner.sessions.revocations();
        let held = revocations.get(tenant, viewer).is_some();
        if !held && revocations.len() - revocations.expired(now).len() >= MAX_REVOCATIONS {
            return Err(too_many());
        }
        Ok(())
    }

    /// Applies `Change::RevokeViewer`; `revision`: one received from the fleet (SPEC §11),
    /// recorded in the same transaction, and MistServer's acknowledgement is not waited for (the
    /// feed goes on; this node's own `stop_sessid` commands are durable like any).
    pub(super) async fn revoke_viewer(
        &self,
        tenant: String,
        viewer: String,
        before: Option<u64>,
        revision: Option<Revision>,
    ) -> Result<Applied, Refused> {
        let now = self.inner.clock.unix_secs()?;
        let before = before.unwrap_or(default_before(now));
        let snapshot = self.snapshot();
        // The control API names a tenant it knows. A fleet record is held even for a tenant this
        // node does not know yet: the buckets are followed each on its own, so a node catching
        // up may read a revocation before the policies that name its tenant (it was skipped, and
        // the viewer stayed unrevoked on that node). Unknown, its tokens' lifetime is the cap.
        if revision.is_none() && snapshot.tenant(&tenant).is_none() {
            return Err(Refused::NotFound(format!("no tenant {tenant:?}")));
        }
        let forget_at = before.saturating_add(longest_lifetime(
            &snapshot,
            &tenant,
            self.inner.revocation_max_age,
        ));
        let sessions = &self.inner.sessions;
        let revocations = sessions.revocations();
        let layers = self.inner.writes.lock().await;
        let expired = revocations.expired(now);
        let held = revocations.get(&tenant, &viewer);
        if held.is_none() && revocations.len() - expired.len() >= MAX_REVOCATIONS {
            return Err(too_many());
        }
        let revocation = Revocation {
            before: held.map_or(before, |h| h.before.max(before)),
            forget_at: held.map_or(forget_at, |h| h.forget_at.max(forget_at)),
        };
        let mut writes: Vec<Write> = expired
            .iter()
            .filter(|(t, v)| (t, v) != (&tenant, &viewer))
            .map(|(t, v)| Write::ForgetViewer {
                tenant: t.clone(),
                viewer: v.clone(),
            })
            .collect();
        writes.push(Write::RevokeViewer {
            tenant: tenant.clone(),
            viewer: viewer.clone(),
            revocation,
        });
        let ack_wait = match revision {
            Some(r) => {
                writes.push(Write::Revision(r.feed, r.seq));
                Duration::ZERO
            }
            None => self.inner.ack_wait,
        };
        // The sessions known now are stored with the revocation; any admitted meanwhile are
        // ended too (admission re-checks revocations under the table lock, after the insert).
        let known = sessions.viewer_sessions(&tenant, &viewer, revocation.before);
        let keys: Vec<String> = known.iter().map(|id| stop_key(id)).collect();
        let pending = layers.db.commit(writes, keys, MAX_PENDING).await?;
        for (t, v) in &expired {
            revocations.remove(t, v);
        }
        revocations.insert(&tenant, &viewer, revocation);
        let ended = sessions.take_viewer(&tenant, &viewer, revocation.before);
        let streams = affected::affected_streams(
            self.inner
                .cache
                .known_streams(|_| true)
                .iter()
                .map(String::as_str),
            &[Scope::Tenant(tenant.clone())],
            &snapshot,
            &snapshot,
        );
        let dropped = self
            .inner
            .cache
            .invalidate_streams(streams.iter().map(String::as_str));
        drop(layers);
        let late: Vec<String> = ended
            .iter()
            .filter(|id| !known.contains(id))
            .cloned()
            .collect();
        let mut ticket =
            (!pending.stored.is_empty()).then(|| self.inner.mist.enqueue(pending.stored));
        if !late.is_empty() {
            ticket = Some(self.queue_stops(late).await);
        }
        let acknowledged = match ticket {
            Some(t) => t.refused() == 0 && self.inner.mist.wait_acknowledged(t, ack_wait).await,
            None => true,
        };
        tracing::info!(
            change = "revoke-viewer",
            sessions = ended.len(),
            dropped,
            mist_acknowledged = acknowledged,
            "change applied"
        );
        Ok(Applied {
            outcome: if held.is_some() {
                Outcome::Replaced
            } else {
                Outcome::Created
            },
            key: None,
            policy: None,
            invalidated: Invalidated {
                dropped,
                streams: Vec::new(),
                mist_acknowledged: acknowledged,
            },
            revocation: Some((revocation, ended.len())),
            ticket,
        })
    }

    /// Ends sessions through MistServer: the `stop_sessid` commands are stored (durable across a
    /// restart, `kill -9` included), then queued; returns the ticket to wait on.
    pub async fn end_sessions(&self, ids: Vec<String>) -> crate::mist::Ticket {
        self.queue_stops(ids).await
    }

    async fn queue_stops(&self, ids: Vec<String>) -> crate::mist::Ticket {
        let keys = ids.iter().map(|id| stop_key(id)).collect();
        let stored = self.store_pending(keys).await;
        if stored.refused > 0 {
            tracing::error!(
                refused = stored.refused,
                max_pending = MAX_PENDING,
                "session stops refused: too many pending"
            );
        }
        self.inner.mist.enqueue(stored.stored)
    }
}

fn too_many() -> Refused {
    Refused::TooManyRevocations(format!(
        "{MAX_REVOCATIONS} viewer revocations are held; older ones are forgotten as their tokens \
         expire"
    ))
}

impl SessionStopper for Enforcer {
    fn stop_sessions(&self, ids: Vec<String>) -> crate::mist::BoxFuture<'_, ()> {
        Box::pin(async move {
            self.end_sessions(ids).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{JwtPolicy, PolicyEntry, Source};

    fn jwt(object: &str, tenant: &str, max: Option<u64>) -> PolicyEntry {
        PolicyEntry {
            object: object.into(),
            tenant: tenant.into(),
            policy: Policy::Jwt(JwtPolicy {
                max_lifetime_s: max,
                ..JwtPolicy::default()
            }),
            publish: Default::default(),
            source: Source::Config,
        }
    }

    #[test]
    fn a_revocation_lasts_the_tenants_longest_token_lifetime_plus_leeway_within_the_bound() {
        let cap = Duration::from_secs(86_400);
        let mut s = Snapshot::new(Policy::Deny);
        s.set_policy(jwt("a", "t1", Some(600)));
        s.set_policy(jwt("b", "t1", Some(3600)));
        s.set_policy(jwt("c", "t2", None));
        assert_eq!(longest_lifetime(&s, "t1", cap), 3660);
        assert_eq!(
            longest_lifetime(&s, "t2", cap),
            86_460,
            "unbounded: the config bound"
        );
        assert_eq!(
            longest_lifetime(&s, "t3", cap),
            86_460,
            "no jwt policy: the bound"
        );
        s.set_policy(jwt("d", "t1", Some(10 * 86_400)));
        assert_eq!(
            longest_lifetime(&s, "t1", cap),
            86_460,
            "never beyond the bound"
        );
    }
}

//! What the fleet (SPEC §11) needs of the one change path: applying a change received from the
//! feed with its revision (skipping, but recording, one this node refuses), checking a change
//! against the current snapshot before it is written to the fleet, and waiting for MistServer's
//! acknowledgement of an invalidation without holding up the feed.

use std::time::Duration;

use super::change::{Applied, Change, Invalidated, Outcome, Refused, Revision};
use super::{Enforcer, Prepared, api_key, edit};
use crate::mist::{MAX_PENDING, Ticket};
use crate::state::Write;

impl Enforcer {
    /// Applies a change from the fleet feed and records its revision in the same transaction.
    /// A change this node refuses is skipped with a warning, its revision recorded alone.
    pub(super) async fn apply_remote(
        &self,
        revision: Revision,
        change: Change,
    ) -> Result<Applied, Refused> {
        let kind = change.kind();
        match self.apply_at(change, Some(revision.clone())).await {
            Err(Refused::Storage(e)) => Err(Refused::Storage(e)),
            Err(refused) => {
                tracing::warn!(
                    change = kind,
                    feed = revision.feed.as_str(),
                    revision = revision.seq,
                    reason = %refused,
                    "fleet change refused by this node; skipped"
                );
                let layers = self.inner.writes.lock().await;
                let write = Write::Revision(revision.feed, revision.seq);
                layers
                    .db
                    .commit(vec![write], Vec::new(), MAX_PENDING)
                    .await?;
                Ok(Applied {
                    outcome: Outcome::Unchanged,
                    key: None,
                    policy: None,
                    invalidated: Invalidated::nothing(),
                    ticket: None,
                })
            }
            ok => ok,
        }
    }

    /// Whether `change` would be accepted now, without applying it: the checks of
    /// [`Enforcer::apply`] (key material, policy shape, webhook URL, read-only and revoked
    /// entries) against the current snapshot. Only control-plane edits are checked; anything
    /// else passes.
    pub async fn check(&self, change: &Change) -> Result<(), Refused> {
        let prepared = self.prepare(change).await?;
        let old = self.inner.store.load();
        match (change, prepared) {
            (Change::PutKey { kid, spec }, Prepared::Key(key)) => {
                edit::put_key(&old, kid, spec, key).map(drop)
            }
            (Change::PutKey { kid, spec }, _) => {
                let key = api_key(kid, spec)?;
                edit::put_key(&old, kid, spec, key).map(drop)
            }
            (Change::RevokeKey { kid }, _) => edit::revoke_key(&old, kid).map(drop),
            (Change::PutPolicy { object, spec }, Prepared::Url(url)) => {
                edit::put_policy(&old, object, spec.clone(), url).map(drop)
            }
            (Change::PutPolicy { object, spec }, _) => {
                edit::put_policy(&old, object, spec.clone(), None).map(drop)
            }
            (Change::DeletePolicy { object }, _) => edit::delete_policy(&old, object).map(drop),
            _ => Ok(()),
        }
    }

    /// Whether MistServer acknowledged everything queued up to `ticket` within `timeout`.
    pub async fn mist_acknowledged(&self, ticket: Ticket, timeout: Duration) -> bool {
        ticket.refused() == 0 && self.inner.mist.wait_acknowledged(ticket, timeout).await
    }
}

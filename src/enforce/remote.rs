//! What the fleet (SPEC §11) needs of the one change path: applying a change received from the
//! feed with its revision (skipping, but recording, one this node refuses), checking a change
//! against the current snapshot before it is written to the fleet, and waiting for MistServer's
//! acknowledgement of an invalidation without holding up the feed.

use std::time::Duration;

use super::change::{Applied, Change, Invalidated, Outcome, Refused, Revision};
use super::{Enforcer, plan};
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
        let applied = match change.check_names() {
            Err(bad) => Err(bad),
            Ok(()) => self.apply_checked_remote(revision.clone(), change).await,
        };
        match applied {
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
                    revocation: None,
                    ticket: None,
                })
            }
            ok => ok,
        }
    }

    /// A remote change whose names passed: applied with its revision.
    async fn apply_checked_remote(
        &self,
        revision: Revision,
        change: Change,
    ) -> Result<Applied, Refused> {
        match change {
            Change::RevokeViewer {
                tenant,
                viewer,
                before,
            } => {
                self.revoke_viewer(tenant, viewer, before, Some(revision))
                    .await
            }
            change => self.apply_at(change, Some(revision)).await,
        }
    }

    /// Whether `change` would be accepted now, without applying it: the checks of
    /// [`Enforcer::apply`] (key material, policy shape, webhook URL, read-only and revoked
    /// entries) against the current snapshot. Only control-plane edits are checked; anything
    /// else passes.
    pub async fn check(&self, change: &Change) -> Result<(), Refused> {
        change.check_names()?;
        let prepared = self.prepare(change, false).await?;
        match change {
            Change::RevokeViewer { tenant, viewer, .. } => self.check_revoke(tenant, viewer),
            Change::PutKey { .. }
            | Change::RevokeKey { .. }
            | Change::PutPolicy { .. }
            | Change::DeletePolicy { .. } => {
                plan(&self.inner.store.load(), change.clone(), prepared).map(drop)
            }
            _ => Ok(()),
        }
    }

    /// Whether MistServer acknowledged everything queued up to `ticket` within `timeout`.
    pub async fn mist_acknowledged(&self, ticket: Ticket, timeout: Duration) -> bool {
        ticket.refused() == 0 && self.inner.mist.wait_acknowledged(ticket, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::cache::DecisionCache;
    use crate::config::{CacheConfig, OutboundConfig};
    use crate::enforce::{MistNotifier, Parts};
    use crate::metrics::Metrics;
    use crate::mist::{BoxFuture, QueueStatus};
    use crate::net::client::GuardedClient;
    use crate::policy::model::{Policy, PolicyEntry, Source};
    use crate::policy::store::Snapshot;
    use crate::spec::PolicySpec;
    use crate::state::StateDb;

    /// A MistServer that never acknowledges: a remote change must not wait for it.
    struct Silent;

    impl MistNotifier for Silent {
        fn enqueue(&self, _streams: Vec<(String, u64)>) -> Ticket {
            Ticket { seq: 1, refused: 0 }
        }
        fn wait_acknowledged(&self, _t: Ticket, timeout: Duration) -> BoxFuture<'_, bool> {
            Box::pin(async move {
                tokio::time::sleep(timeout).await;
                false
            })
        }
        fn status(&self) -> Option<QueueStatus> {
            None
        }
    }

    async fn enforcer(dir: &std::path::Path) -> (Enforcer, StateDb) {
        let db = StateDb::open(dir).await.unwrap();
        let mut config = Snapshot::new(Policy::Deny);
        config.set_policy(PolicyEntry {
            object: "fixed".into(),
            tenant: "t0".into(),
            policy: Policy::Public,
            source: Source::Config,
            publish: crate::policy::model::PublishRule::Deny,
        });
        let enforcer = Enforcer::start(Parts {
            config,
            db: db.clone(),
            jwks: None,
            cache: DecisionCache::new(&CacheConfig::default()),
            metrics: Arc::new(Metrics::default()),
            guard: GuardedClient::new(&OutboundConfig::default())
                .unwrap()
                .guard,
            mist: Arc::new(Silent),
            mist_api: None,
            ack_wait: Duration::from_secs(3600),
            sessions: crate::sessions::Sessions::new(
                1000,
                Duration::from_secs(600),
                crate::sessions::Revocations::default(),
            ),
            revocation_max_age: Duration::from_secs(3600),
            clock: crate::clock::Clock::default(),
        })
        .await
        .unwrap();
        (enforcer, db)
    }

    fn remote(seq: u64, object: &str, kind: &str) -> Change {
        Change::Remote {
            revision: Revision {
                feed: "usher_policies".into(),
                seq,
            },
            change: Box::new(Change::PutPolicy {
                object: object.into(),
                spec: PolicySpec {
                    tenant: "t1".into(),
                    kind: serde_json::from_value(serde_json::json!(kind)).unwrap(),
                    ..PolicySpec::default()
                },
            }),
        }
    }

    #[tokio::test]
    async fn a_remote_change_is_stored_with_its_revision_and_survives_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let (e, db) = enforcer(tmp.path()).await;
        let applied = e.apply(remote(7, "vod", "public")).await.unwrap();
        assert_eq!(applied.outcome, Outcome::Created);
        assert_eq!(
            db.revisions().await.unwrap(),
            [("usher_policies".into(), 7)]
        );
        assert_eq!(e.snapshot().resolve("vod").policy, Policy::Public);
        drop((e, db));
        let (e, db) = enforcer(tmp.path()).await;
        assert_eq!(
            db.revisions().await.unwrap(),
            [("usher_policies".into(), 7)]
        );
        assert_eq!(e.snapshot().resolve("vod").policy, Policy::Public);
    }

    #[tokio::test(start_paused = true)]
    async fn a_remote_change_does_not_wait_for_mistserver() {
        let tmp = tempfile::tempdir().unwrap();
        let (e, _db) = enforcer(tmp.path()).await;
        e.apply(Change::PutPolicy {
            object: "vod".into(),
            spec: PolicySpec {
                tenant: "t1".into(),
                kind: crate::spec::PolicyKind::Public,
                ..PolicySpec::default()
            },
        })
        .await
        .unwrap();
        let started = tokio::time::Instant::now();
        let applied = e.apply(remote(2, "vod", "deny")).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(!applied.invalidated.mist_acknowledged);
        assert!(applied.ticket.is_some());
    }

    #[tokio::test]
    async fn a_remote_change_this_node_refuses_is_skipped_but_its_revision_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let (e, db) = enforcer(tmp.path()).await;
        // "fixed" is the config file's here: read-only, the feed must not stall on it.
        let applied = e.apply(remote(3, "fixed", "deny")).await.unwrap();
        assert_eq!(applied.outcome, Outcome::Unchanged);
        assert_eq!(e.snapshot().resolve("fixed").policy, Policy::Public);
        assert_eq!(
            db.revisions().await.unwrap(),
            [("usher_policies".into(), 3)]
        );
    }

    #[tokio::test]
    async fn a_remote_viewer_revocation_is_stored_with_its_revision_and_survives_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let (e, db) = enforcer(tmp.path()).await;
        let revoke = |seq, tenant: &str, before| Change::Remote {
            revision: Revision {
                feed: "usher_revocations".into(),
                seq,
            },
            change: Box::new(Change::RevokeViewer {
                tenant: tenant.into(),
                viewer: "alice".into(),
                before: Some(before),
            }),
        };
        let applied = e.apply(revoke(4, "t0", 4_000_000_000)).await.unwrap();
        assert_eq!(applied.revocation.unwrap().0.before, 4_000_000_000);
        assert_eq!(
            db.revisions().await.unwrap(),
            [("usher_revocations".into(), 4)]
        );
        // A lower `before` never lowers the one held.
        e.apply(revoke(5, "t0", 1)).await.unwrap();
        drop((e, db));
        let (e, db) = enforcer(tmp.path()).await;
        let held = e.sessions().revocations().get("t0", "alice").unwrap();
        assert_eq!(held.before, 4_000_000_000);
        assert_eq!(
            db.revisions().await.unwrap(),
            [("usher_revocations".into(), 5)]
        );
        // A tenant this node does not know yet (its policies may come later from another
        // bucket): held all the same, its revision recorded; `check` — the control API's —
        // refuses it up front.
        let applied = e.apply(revoke(6, "nope", 9)).await.unwrap();
        assert!(applied.revocation.is_some());
        assert_eq!(
            e.sessions()
                .revocations()
                .get("nope", "alice")
                .map(|r| r.before),
            Some(9)
        );
        assert_eq!(
            db.revisions().await.unwrap(),
            [("usher_revocations".into(), 6)]
        );
        let check = Change::RevokeViewer {
            tenant: "nope".into(),
            viewer: "alice".into(),
            before: None,
        };
        assert!(matches!(e.check(&check).await, Err(Refused::NotFound(_))));
    }

    #[tokio::test]
    async fn check_refuses_what_apply_would_refuse_and_changes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (e, db) = enforcer(tmp.path()).await;
        let put = |object: &str| Change::PutPolicy {
            object: object.into(),
            spec: PolicySpec {
                tenant: "t1".into(),
                kind: crate::spec::PolicyKind::Deny,
                ..PolicySpec::default()
            },
        };
        assert!(matches!(
            e.check(&put("fixed")).await,
            Err(Refused::ReadOnly(_))
        ));
        e.check(&put("vod")).await.unwrap();
        assert!(e.snapshot().policy("vod").is_none());
        assert!(db.load_all().await.unwrap().policies.is_empty());
        let nested = Change::Remote {
            revision: Revision {
                feed: "f".into(),
                seq: 1,
            },
            change: Box::new(remote(1, "vod", "deny")),
        };
        assert!(e.apply(nested).await.is_ok(), "skipped, not applied");
        assert!(e.snapshot().policy("vod").is_none());
    }
}

//! Unit tests of [`Enforcer::apply`], one per kind of change, against a real state database in a
//! temporary directory, a real decision cache and a recording stand-in for MistServer's queue.

use std::sync::Mutex;

use super::*;
use crate::cache::Verdict;
use crate::config::{CacheConfig, OutboundConfig};
use crate::mist::{BoxFuture, Ticket};
use crate::net::client::GuardedClient;
use crate::policy::model::{Policy, PolicyEntry};
use crate::reason::Reason;
use crate::spec::{KeyStatus, PolicySpec};

/// Records what MistServer would be sent; acknowledges everything at once.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<(String, u64)>>,
}

impl Recorder {
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.0.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

impl MistNotifier for Recorder {
    fn enqueue(&self, streams: Vec<(String, u64)>) -> Ticket {
        let mut sent = self.sent.lock().unwrap();
        sent.extend(streams);
        Ticket {
            seq: sent.len() as u64,
            refused: 0,
        }
    }

    fn wait_acknowledged(&self, _ticket: Ticket, _timeout: Duration) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(true))
    }

    fn status(&self) -> Option<QueueStatus> {
        None
    }
}

struct Harness {
    enforcer: Enforcer,
    cache: DecisionCache,
    db: StateDb,
    mist: Arc<Recorder>,
    _tmp: tempfile::TempDir,
}

fn config_snapshot() -> Snapshot {
    let mut s = Snapshot::new(Policy::Deny);
    s.set_policy(PolicyEntry {
        object: "fixed".into(),
        tenant: "t0".into(),
        policy: Policy::Public,
        publish: crate::policy::model::PublishRule::Deny,
        source: Source::Config,
    });
    s
}

async fn harness() -> Harness {
    let tmp = tempfile::tempdir().unwrap();
    let db = StateDb::open(tmp.path()).await.unwrap();
    harness_on(tmp, db).await
}

async fn harness_on(tmp: tempfile::TempDir, db: StateDb) -> Harness {
    harness_with_clock(tmp, db, crate::clock::Clock::default()).await
}

async fn harness_with_clock(
    tmp: tempfile::TempDir,
    db: StateDb,
    clock: crate::clock::Clock,
) -> Harness {
    let cache = DecisionCache::new(&CacheConfig::default());
    let mist = Arc::new(Recorder::default());
    let outbound = GuardedClient::new(&OutboundConfig::default()).unwrap();
    let enforcer = Enforcer::start(Parts {
        config: config_snapshot(),
        db: db.clone(),
        jwks: None,
        cache: cache.clone(),
        metrics: Arc::new(Metrics::default()),
        guard: outbound.guard,
        mist: mist.clone(),
        mist_api: None,
        ack_wait: Duration::from_millis(10),
        sessions: crate::sessions::Sessions::new(
            1000,
            Duration::from_secs(600),
            crate::sessions::Revocations::default(),
        ),
        revocation_max_age: Duration::from_secs(3600),
        clock,
    })
    .await
    .unwrap();
    Harness {
        enforcer,
        cache,
        db,
        mist,
        _tmp: tmp,
    }
}

impl Harness {
    /// Caches an allow for one session of `stream`.
    async fn seen(&self, stream: &str) {
        let allow = Verdict {
            allowed: true,
            reason: Reason::Allowed,
            policy: crate::reason::DecidedBy::Public,
        };
        self.cache
            .get_or_evaluate(stream, "s1", "tok", || {
                crate::cache::Evaluation::<std::future::Ready<_>>::Now(allow, None)
            })
            .await;
    }

    async fn pending(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .db
            .pending()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.0)
            .collect();
        names.sort();
        names
    }
}

fn key_spec() -> KeySpec {
    let pair = crate::keys::keygen::generate_es256("k1").unwrap();
    KeySpec {
        tenant: "t1".into(),
        alg: Some("ES256".into()),
        public_key_pem: Some(pair.public_pem.clone()),
        ..KeySpec::default()
    }
}

fn policy(kind: &str) -> PolicySpec {
    PolicySpec {
        tenant: "t1".into(),
        kind: serde_json::from_value(serde_json::json!(kind)).unwrap(),
        ..PolicySpec::default()
    }
}

fn put_policy(object: &str, kind: &str) -> Change {
    Change::PutPolicy {
        object: object.into(),
        spec: policy(kind),
    }
}

#[tokio::test]
async fn put_policy_commits_swaps_drops_and_stores_the_names_before_mistserver() {
    let h = harness().await;
    h.seen("live+abc").await;
    h.seen("other").await;
    let applied = h.enforcer.apply(put_policy("abc", "deny")).await.unwrap();
    assert_eq!(applied.outcome, Outcome::Created);
    assert_eq!(applied.invalidated.streams, ["abc", "live+abc"]);
    assert_eq!(applied.invalidated.dropped, 1);
    assert!(applied.invalidated.mist_acknowledged);
    assert_eq!(
        h.enforcer.snapshot().resolve("live+abc").policy,
        Policy::Deny
    );
    assert_eq!(h.db.load_all().await.unwrap().policies.len(), 1);
    // Stored until MistServer acknowledges (the recorder does not forget anything on disk).
    assert_eq!(h.pending().await, ["abc", "live+abc"]);
    assert_eq!(h.mist.names(), ["abc", "live+abc"]);
    let again = h.enforcer.apply(put_policy("abc", "public")).await.unwrap();
    assert_eq!(again.outcome, Outcome::Replaced);
}

#[tokio::test]
async fn delete_policy_falls_back_and_invalidates() {
    let h = harness().await;
    h.enforcer.apply(put_policy("abc", "deny")).await.unwrap();
    h.seen("live+abc").await;
    let applied = h
        .enforcer
        .apply(Change::DeletePolicy {
            object: "abc".into(),
        })
        .await
        .unwrap();
    assert_eq!(applied.outcome, Outcome::Deleted);
    assert_eq!(applied.invalidated.dropped, 1);
    assert!(h.enforcer.snapshot().policy("abc").is_none());
    assert!(h.db.load_all().await.unwrap().policies.is_empty());
    let missing = h
        .enforcer
        .apply(Change::DeletePolicy {
            object: "abc".into(),
        })
        .await;
    assert!(matches!(missing, Err(Refused::NotFound(_))));
}

#[tokio::test]
async fn a_config_policy_is_read_only_and_nothing_changes() {
    let h = harness().await;
    let refused = h.enforcer.apply(put_policy("fixed", "deny")).await;
    assert!(matches!(refused, Err(Refused::ReadOnly(_))));
    assert_eq!(
        h.enforcer.snapshot().resolve("fixed").policy,
        Policy::Public
    );
    assert!(h.db.load_all().await.unwrap().policies.is_empty());
    assert!(h.pending().await.is_empty());
}

#[tokio::test]
async fn an_invalid_policy_is_refused_before_anything_is_written() {
    let h = harness().await;
    let mut spec = policy("public");
    spec.allowed_kids = vec!["k1".into()];
    let refused = h
        .enforcer
        .apply(Change::PutPolicy {
            object: "abc".into(),
            spec,
        })
        .await;
    assert!(matches!(refused, Err(Refused::InvalidPolicy(_))));
    assert!(h.pending().await.is_empty());
}

#[tokio::test]
async fn put_key_creates_without_invalidating_and_replacing_material_invalidates_the_tenant() {
    let h = harness().await;
    h.enforcer.apply(put_policy("live", "jwt")).await.unwrap();
    h.seen("live+abc").await;
    let put = |spec: KeySpec| Change::PutKey {
        kid: "k1".into(),
        spec,
    };
    let created = h.enforcer.apply(put(key_spec())).await.unwrap();
    assert_eq!(created.outcome, Outcome::Created);
    assert_eq!(created.invalidated, Invalidated::nothing());
    assert!(h.enforcer.snapshot().keys("t1").get("k1").is_some());
    let same = h.enforcer.apply(put(key_spec_of(&created))).await.unwrap();
    assert_eq!(same.invalidated, Invalidated::nothing(), "same material");
    let replaced = h.enforcer.apply(put(key_spec())).await.unwrap();
    assert_eq!(replaced.outcome, Outcome::Replaced);
    assert_eq!(replaced.invalidated.streams, ["live+abc"]);
    assert_eq!(replaced.invalidated.dropped, 1);
}

fn key_spec_of(applied: &Applied) -> KeySpec {
    let key = applied.key.as_ref().unwrap();
    KeySpec {
        tenant: key.tenant.clone(),
        jwk: key.public_jwk.clone(),
        ..KeySpec::default()
    }
}

#[tokio::test]
async fn an_hs256_key_over_the_api_is_refused() {
    let h = harness().await;
    let spec = KeySpec {
        tenant: "t1".into(),
        alg: Some("HS256".into()),
        secret: Some("0123456789abcdef0123".into()),
        ..KeySpec::default()
    };
    let refused = h
        .enforcer
        .apply(Change::PutKey {
            kid: "k1".into(),
            spec,
        })
        .await;
    assert!(matches!(refused, Err(Refused::InvalidKey(_))));
}

#[tokio::test]
async fn revoke_key_stores_it_revoked_and_invalidates_the_tenant_once() {
    let h = harness().await;
    h.enforcer.apply(put_policy("live", "jwt")).await.unwrap();
    h.enforcer
        .apply(Change::PutKey {
            kid: "k1".into(),
            spec: key_spec(),
        })
        .await
        .unwrap();
    h.seen("live+abc").await;
    let revoke = || Change::RevokeKey {
        kid: "k1".into(),
        record: None,
    };
    let applied = h.enforcer.apply(revoke()).await.unwrap();
    assert_eq!(applied.invalidated.streams, ["live+abc"]);
    assert_eq!(applied.invalidated.dropped, 1);
    assert!(h.enforcer.snapshot().keys("t1").get("k1").is_none());
    let records = h.db.load_all().await.unwrap();
    assert_eq!(records.keys[0].1.status(), KeyStatus::Revoked);
    let again = h.enforcer.apply(revoke()).await.unwrap();
    assert_eq!(again.outcome, Outcome::Unchanged);
    let reactivate = h
        .enforcer
        .apply(Change::PutKey {
            kid: "k1".into(),
            spec: key_spec(),
        })
        .await;
    assert!(matches!(reactivate, Err(Refused::KeyRevoked(_))));
    let unknown = h
        .enforcer
        .apply(Change::RevokeKey {
            kid: "nope".into(),
            record: None,
        })
        .await;
    assert!(matches!(unknown, Err(Refused::NotFound(_))));
}

#[tokio::test]
async fn explicit_invalidation_drops_and_stores_streams_objects_and_tenants() {
    let h = harness().await;
    h.enforcer
        .apply(put_policy("live", "public"))
        .await
        .unwrap();
    for s in ["live+a", "live+b", "vod"] {
        h.seen(s).await;
    }
    let by_stream = h
        .enforcer
        .apply(Change::Invalidate(Target::Streams(vec!["vod".into()])))
        .await
        .unwrap();
    assert_eq!(
        (by_stream.invalidated.dropped, by_stream.outcome),
        (1, Outcome::Applied)
    );
    assert_eq!(by_stream.invalidated.streams, ["vod"]);
    let by_object = h
        .enforcer
        .apply(Change::Invalidate(Target::Objects(vec!["a".into()])))
        .await
        .unwrap();
    assert_eq!(by_object.invalidated.streams, ["a", "live+a"]);
    let by_tenant = h
        .enforcer
        .apply(Change::Invalidate(Target::Tenant("t1".into())))
        .await
        .unwrap();
    assert_eq!(by_tenant.invalidated.streams, ["live+a", "live+b"]);
    assert_eq!(
        by_tenant.invalidated.dropped, 1,
        "live+a was dropped already"
    );
    assert!(h.pending().await.contains(&"vod".to_string()));
}

#[tokio::test]
async fn reload_replaces_the_config_layer_keeps_the_stored_one_and_invalidates_the_difference() {
    let h = harness().await;
    h.enforcer.apply(put_policy("abc", "deny")).await.unwrap();
    h.seen("fixed").await;
    h.seen("live+abc").await;
    // The new config file no longer has "fixed" and makes the default public.
    let applied = h
        .enforcer
        .apply(Change::Reload(Box::new(Snapshot::new(Policy::Public))))
        .await
        .unwrap();
    let snapshot = h.enforcer.snapshot();
    assert!(snapshot.policy("fixed").is_none());
    assert_eq!(
        snapshot.resolve("live+abc").policy,
        Policy::Deny,
        "stored layer kept"
    );
    assert!(applied.invalidated.streams.contains(&"fixed".to_string()));
    assert!(
        !applied
            .invalidated
            .streams
            .contains(&"live+abc".to_string())
    );
}

#[tokio::test]
async fn a_jwks_change_without_a_jwks_layer_changes_nothing() {
    let h = harness().await;
    let applied = h
        .enforcer
        .apply(Change::JwksChanged {
            tenants: vec!["t1".into()],
        })
        .await
        .unwrap();
    assert_eq!(applied.invalidated, Invalidated::nothing());
}

#[tokio::test]
async fn invalidations_left_pending_are_sent_again_on_start() {
    let h = harness().await;
    h.enforcer.apply(put_policy("abc", "deny")).await.unwrap();
    let Harness { db, _tmp, .. } = h;
    let restarted = harness_on(_tmp, db).await;
    assert_eq!(restarted.mist.names(), ["abc"]);
    assert_eq!(
        restarted.enforcer.snapshot().resolve("abc").policy,
        Policy::Deny
    );
}

/// Issue #30, one clock: a viewer revocation needs a "now" (its default `before`, what has
/// expired); with the clock before 1970 the control path refuses it and stores nothing, where it
/// used to take "now" as 1970 and revoke nothing.
#[tokio::test]
async fn a_viewer_revocation_is_refused_when_the_clock_reads_before_1970() {
    let tmp = tempfile::tempdir().unwrap();
    let db = StateDb::open(tmp.path()).await.unwrap();
    let before_1970 = crate::clock::Clock::new(|| std::time::UNIX_EPOCH - Duration::from_secs(1));
    let h = harness_with_clock(tmp, db, before_1970).await;
    let put = Change::PutPolicy {
        object: "vod".into(),
        spec: crate::spec::PolicySpec {
            tenant: "t1".into(),
            kind: crate::spec::PolicyKind::Public,
            ..crate::spec::PolicySpec::default()
        },
    };
    h.enforcer.apply(put).await.unwrap();
    let revoke = Change::RevokeViewer {
        tenant: "t1".into(),
        viewer: "u-1".into(),
        before: None,
    };
    let refused = h.enforcer.apply(revoke).await.unwrap_err();
    assert!(matches!(refused, Refused::Clock(_)), "{refused}");
    assert!(h.db.revocations().await.unwrap().is_empty());
}

use std::sync::Mutex;

use super::timer::{self, SessionStopper};
use super::*;
use crate::mist::BoxFuture;

const NOW: f64 = 1_000_000.0;

fn sessions(max: usize) -> Sessions {
    Sessions::new(max, Duration::from_secs(600), Revocations::default())
}

fn facts<'a>(viewer: &'a str, exp: u64) -> Facts<'a> {
    Facts {
        stream: "live+a",
        tenant: "t1",
        kid: Some("k1"),
        viewer: Some(viewer),
        exp,
        iat: Some(NOW as u64 - 10),
    }
}

fn id(n: u32) -> String {
    format!("{n:064x}")
}

fn limit(max: u32, on_exceed: OnExceed) -> SessionRules {
    SessionRules {
        cut_at_exp: false,
        max_per_viewer: Some(max),
        on_exceed,
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(Instant, Vec<String>)>>);

impl SessionStopper for Recorder {
    fn stop_sessions(&self, ids: Vec<String>) -> BoxFuture<'_, ()> {
        self.0.lock().unwrap().push((Instant::now(), ids));
        Box::pin(std::future::ready(()))
    }
}

async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_session_is_cut_within_a_second_of_exp_plus_leeway() {
    let s = sessions(10);
    let stopper = Arc::new(Recorder::default());
    let task = tokio::spawn(timer::run(s.clone(), stopper.clone()));
    let start = Instant::now();
    let cut = SessionRules {
        cut_at_exp: true,
        ..SessionRules::default()
    };
    // exp 55 s ago: inside the 60 s leeway, cut 5 s from now.
    let a = s.admit(&id(1), &facts("v", NOW as u64 - 55), cut, NOW);
    assert_eq!(a, Admission::default());
    s.admit(
        &id(2),
        &facts("w", NOW as u64 + 3600),
        SessionRules::default(),
        NOW,
    );
    settle().await;
    tokio::time::advance(Duration::from_millis(4_900)).await;
    settle().await;
    assert!(
        stopper.0.lock().unwrap().is_empty(),
        "not before exp + leeway"
    );
    tokio::time::advance(Duration::from_millis(200)).await;
    settle().await;
    let calls = stopper.0.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1, vec![id(1)]);
    let late = calls[0].0 - start;
    assert!(
        late >= Duration::from_secs(5) && late < Duration::from_secs(6),
        "{late:?}"
    );
    assert_eq!(s.ended(Cause::Expiry), 1);
    assert_eq!(s.len(), 1, "the session without cut_at_exp stays");
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn an_earlier_deadline_wakes_the_timer_sleeping_on_a_later_one() {
    let s = sessions(10);
    let stopper = Arc::new(Recorder::default());
    let task = tokio::spawn(timer::run(s.clone(), stopper.clone()));
    let cut = SessionRules {
        cut_at_exp: true,
        ..SessionRules::default()
    };
    s.admit(&id(1), &facts("v", NOW as u64 + 3600), cut, NOW);
    settle().await;
    s.admit(&id(2), &facts("v", NOW as u64 - 59), cut, NOW);
    settle().await;
    tokio::time::advance(Duration::from_millis(1_100)).await;
    settle().await;
    assert_eq!(stopper.0.lock().unwrap().len(), 1);
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_lost_user_end_frees_the_slot_by_age() {
    let s = sessions(10);
    let task = tokio::spawn(timer::run(s.clone(), Arc::new(Recorder::default())));
    let rules = limit(1, OnExceed::DenyNew);
    // Token expired 30 s ago (inside the leeway): kept for the allow TTL (600 s), the later one.
    assert!(
        s.admit(&id(1), &facts("v", NOW as u64 - 30), rules, NOW)
            .refused
            .is_none()
    );
    assert!(
        s.admit(&id(2), &facts("v", NOW as u64 - 30), rules, NOW)
            .refused
            .is_some()
    );
    settle().await;
    tokio::time::advance(Duration::from_secs(599)).await;
    settle().await;
    assert_eq!(s.len(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    assert!(s.is_empty(), "forgotten by age, without USER_END");
    assert_eq!(s.ended(Cause::Expiry), 0, "forgetting is not ending");
    assert!(
        s.admit(&id(2), &facts("v", NOW as u64 + 60), rules, NOW)
            .refused
            .is_none()
    );
    task.abort();
}

#[tokio::test]
async fn a_recheck_of_a_tracked_session_is_not_counted_twice() {
    let s = sessions(10);
    let rules = limit(1, OnExceed::DenyNew);
    assert!(
        s.admit(&id(1), &facts("v", NOW as u64 + 60), rules, NOW)
            .refused
            .is_none()
    );
    let again = s.admit(&id(1), &facts("v", NOW as u64 + 60), rules, NOW);
    assert_eq!(again, Admission::default());
    assert_eq!(s.len(), 1);
}

#[tokio::test]
async fn deny_new_refuses_the_third_session_and_user_end_frees_a_slot() {
    let s = sessions(10);
    let rules = limit(2, OnExceed::DenyNew);
    for n in 1..=2 {
        assert!(
            s.admit(&id(n), &facts("v", NOW as u64 + 60), rules, NOW)
                .refused
                .is_none()
        );
    }
    let third = s.admit(&id(3), &facts("v", NOW as u64 + 60), rules, NOW);
    assert_eq!(third.refused.map(|r| r.0), Some(Reason::ViewerSessionLimit));
    assert!(
        s.admit(&id(4), &facts("w", NOW as u64 + 60), rules, NOW)
            .refused
            .is_none()
    );
    s.end(&id(1));
    assert!(
        s.admit(&id(3), &facts("v", NOW as u64 + 60), rules, NOW)
            .refused
            .is_none()
    );
}

#[tokio::test]
async fn end_oldest_admits_the_third_session_and_ends_the_first() {
    let s = sessions(10);
    let rules = limit(2, OnExceed::EndOldest);
    for n in 1..=2 {
        s.admit(&id(n), &facts("v", NOW as u64 + 60), rules, NOW);
    }
    let third = s.admit(&id(3), &facts("v", NOW as u64 + 60), rules, NOW);
    assert_eq!(third.refused, None);
    assert_eq!(third.stop, vec![id(1)]);
    assert_eq!(s.ended(Cause::Limit), 1);
    assert!(!s.is_tracked(&id(1)) && s.is_tracked(&id(3)));
}

#[tokio::test]
async fn a_revoked_viewer_is_refused_at_admission_and_its_sessions_are_taken() {
    let s = sessions(10);
    s.admit(
        &id(1),
        &facts("v", NOW as u64 + 60),
        SessionRules::default(),
        NOW,
    );
    s.admit(
        &id(2),
        &facts("w", NOW as u64 + 60),
        SessionRules::default(),
        NOW,
    );
    s.revocations().insert(
        "t1",
        "v",
        Revocation {
            before: NOW as u64,
            forget_at: NOW as u64 + 100,
        },
    );
    let again = s.admit(
        &id(3),
        &facts("v", NOW as u64 + 60),
        SessionRules::default(),
        NOW,
    );
    assert_eq!(again.refused.map(|r| r.0), Some(Reason::ViewerRevoked));
    assert_eq!(s.take_viewer("t1", "v", NOW as u64), vec![id(1)]);
    assert_eq!(s.ended(Cause::Revocation), 1);
    assert!(s.is_tracked(&id(2)));
}

#[tokio::test]
async fn a_full_table_refuses_sessions_whose_policy_needs_tracking_only() {
    let s = sessions(1);
    s.admit(
        &id(1),
        &facts("v", NOW as u64 + 60),
        SessionRules::default(),
        NOW,
    );
    let plain = s.admit(
        &id(2),
        &facts("w", NOW as u64 + 60),
        SessionRules::default(),
        NOW,
    );
    assert_eq!(plain.refused, None);
    let capped = s.admit(
        &id(3),
        &facts("x", NOW as u64 + 60),
        limit(5, OnExceed::DenyNew),
        NOW,
    );
    assert_eq!(
        capped.refused.map(|r| r.0),
        Some(Reason::ViewerSessionLimit)
    );
}

#[tokio::test]
async fn metrics_name_causes_never_ids() {
    let s = sessions(10);
    s.admit(
        &id(1),
        &facts("viewer-42", NOW as u64 + 60),
        SessionRules::default(),
        NOW,
    );
    let mut out = String::new();
    s.render_metrics(&mut out);
    assert!(out.contains("usher_sessions_tracked 1"), "{out}");
    assert!(
        out.contains("usher_sessions_ended_total{cause=\"limit\"} 0"),
        "{out}"
    );
    assert!(!out.contains("viewer-42") && !out.contains(&id(1)) && !out.contains("live+a"));
}

#[tokio::test(start_paused = true)]
async fn with_the_fleet_other_nodes_sessions_count_and_end_oldest_ends_only_local_ones() {
    let s = sessions(10);
    let exp = NOW as u64 + 3600;
    // Without the fleet a remote count is held but a viewer admitted here is not reported.
    assert_eq!(
        s.admit(
            &id(1),
            &facts("alice", exp),
            limit(2, OnExceed::DenyNew),
            NOW
        ),
        Admission::default()
    );
    assert!(s.limited_counts().is_empty(), "off without a fleet");
    s.enable_fleet_counts();
    assert!(s.set_remote("t1", "alice", "b", 1));
    let refused = s.admit(
        &id(2),
        &facts("alice", exp),
        limit(2, OnExceed::DenyNew),
        NOW,
    );
    assert_eq!(
        refused.refused.map(|r| r.0),
        Some(Reason::ViewerSessionLimit)
    );
    assert_eq!(
        s.limited_counts(),
        vec![(("t1".to_owned(), "alice".to_owned()), 1)]
    );
    // end-oldest: over the limit by remote sessions alone, nothing here to end; the session plays.
    assert!(s.set_remote("t1", "bob", "b", 2));
    let admitted = s.admit(
        &id(3),
        &facts("bob", exp),
        limit(2, OnExceed::EndOldest),
        NOW,
    );
    assert_eq!(admitted, Admission::default());
    // Over by one with one local session: the local one ends.
    let admitted = s.admit(
        &id(4),
        &facts("bob", exp),
        limit(2, OnExceed::EndOldest),
        NOW,
    );
    assert_eq!(admitted.stop, vec![id(3)]);
    assert_eq!(s.remote_total(), 3);
}

/// A decision cached under `key` for session `n`, as the trigger path caches it.
async fn cache_allow(cache: &crate::cache::DecisionCache, n: u32) -> crate::cache::DecisionKey {
    use crate::cache::{Evaluation, Verdict};
    let mut seen = None;
    let allow = Verdict {
        allowed: true,
        reason: Reason::Allowed,
        policy: crate::reason::DecidedBy::Jwt,
    };
    cache
        .get_or_evaluate_keyed(
            "live+a",
            &id(n),
            "tok",
            tokio::time::Instant::now(),
            |k, _| {
                seen = Some(k);
                Evaluation::<std::future::Ready<Verdict>>::Now(allow, None)
            },
        )
        .await;
    seen.unwrap()
}

/// Whether session `n`'s decision is answered from the cache.
async fn cached(cache: &crate::cache::DecisionCache, n: u32) -> bool {
    use crate::cache::{Evaluation, Lookup, Verdict};
    let (_, lookup) = cache
        .get_or_evaluate("live+a", &id(n), "tok", || {
            Evaluation::<std::future::Ready<Verdict>>::Now(
                Verdict {
                    allowed: false,
                    reason: Reason::InternalError,
                    policy: crate::reason::DecidedBy::None,
                },
                None,
            )
        })
        .await;
    lookup == Lookup::Hit
}

#[tokio::test]
async fn a_cached_decision_leaves_the_cache_with_its_session_however_the_session_leaves() {
    let cache = crate::cache::DecisionCache::new(&crate::config::CacheConfig::default());
    let s = sessions(100);
    s.drop_decisions_in(cache.clone());
    let rules = limit(1, OnExceed::EndOldest);
    let until = NOW as u64 + 3600;
    // USER_END.
    let k = cache_allow(&cache, 1).await;
    s.admit_decision(
        &id(1),
        &facts("ann", until),
        SessionRules::default(),
        NOW,
        k,
    );
    s.end(&id(1));
    assert!(!cached(&cache, 1).await, "USER_END");
    // Ended by the cap (end-oldest): session 2 goes when session 3 of the same viewer comes.
    let k = cache_allow(&cache, 2).await;
    s.admit_decision(&id(2), &facts("bea", until), rules, NOW, k);
    let k3 = cache_allow(&cache, 3).await;
    let out = s.admit_decision(&id(3), &facts("bea", until), rules, NOW, k3);
    assert_eq!(out.stop, vec![id(2)]);
    assert!(!cached(&cache, 2).await, "end-oldest");
    assert!(
        cached(&cache, 3).await,
        "the new session keeps its decision"
    );
    // Revocation.
    s.take_viewer("t1", "bea", u64::MAX);
    assert!(!cached(&cache, 3).await, "revocation");
    // A re-check after its stream was invalidated is cached under a new key, which is the one
    // dropped.
    let k = cache_allow(&cache, 4).await;
    s.admit_decision(&id(4), &facts("cy", until), SessionRules::default(), NOW, k);
    cache.invalidate_streams(["live+a"]);
    let k2 = cache_allow(&cache, 4).await;
    assert_ne!(k, k2);
    s.admit_decision(
        &id(4),
        &facts("cy", until),
        SessionRules::default(),
        NOW,
        k2,
    );
    assert_eq!(s.len(), 1, "a re-check is not a new session");
    s.end(&id(4));
    assert!(!cached(&cache, 4).await, "the re-check's key");
}

use std::sync::atomic::AtomicUsize;

use super::*;

fn cache(max_entries: u64) -> DecisionCache {
    DecisionCache::new(&CacheConfig {
        allow_ttl_s: 600,
        deny_ttl_s: 30,
        max_entries,
    })
}

const ALLOW: Verdict = Verdict {
    allowed: true,
    reason: Reason::Allowed,
    policy: crate::reason::DecidedBy::Public,
};
const DENY: Verdict = Verdict {
    allowed: false,
    reason: Reason::JwtExpired,
    policy: crate::reason::DecidedBy::Jwt,
};

/// Starts an evaluation of ("vod", "s1", "t") that counts itself and answers `ALLOW` once
/// `release` is sent; returns `release` and the first caller's task.
fn start_slow_evaluation(
    c: &DecisionCache,
    runs: &Arc<AtomicUsize>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<(Verdict, Lookup)>,
) {
    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    let slow = {
        let runs = runs.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            let _ = gate.await;
            ALLOW
        }
    };
    let c = c.clone();
    let first = tokio::spawn(async move {
        c.get_or_evaluate("vod", "s1", "t", || Evaluation::Later(slow))
            .await
    });
    (release, first)
}

/// Asks `c` about (`stream`, `session`, token "t"); a miss evaluates to `ALLOW`, counted in
/// `runs`. How the answer came.
async fn ask(c: &DecisionCache, runs: &Arc<AtomicUsize>, stream: &str, session: &str) -> Lookup {
    c.get_or_evaluate(stream, session, "t", || {
        Evaluation::Later(counted(runs, ALLOW))
    })
    .await
    .1
}

/// An evaluation that counts how often it ran and answers `verdict`.
fn counted(runs: &Arc<AtomicUsize>, verdict: Verdict) -> impl Future<Output = Verdict> + use<> {
    let runs = runs.clone();
    async move {
        runs.fetch_add(1, Ordering::SeqCst);
        verdict
    }
}

#[tokio::test(start_paused = true)]
async fn allow_is_cached_for_allow_ttl() {
    let c = cache(100);
    let runs = Arc::new(AtomicUsize::new(0));
    let l = ask(&c, &runs, "vod", "s1").await;
    assert_eq!(l, Lookup::Evaluated);
    tokio::time::advance(Duration::from_secs(599)).await;
    let (v, l) = c
        .get_or_evaluate("vod", "s1", "t", || {
            Evaluation::Later(counted(&runs, ALLOW))
        })
        .await;
    assert_eq!((v, l), (ALLOW, Lookup::Hit));
    tokio::time::advance(Duration::from_secs(2)).await;
    let l = ask(&c, &runs, "vod", "s1").await;
    assert_eq!(l, Lookup::Evaluated);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn deny_is_cached_for_deny_ttl_only() {
    let c = cache(100);
    let runs = Arc::new(AtomicUsize::new(0));
    c.get_or_evaluate("vod", "s1", "t", || Evaluation::Later(counted(&runs, DENY)))
        .await;
    tokio::time::advance(Duration::from_secs(29)).await;
    let (v, l) = c
        .get_or_evaluate("vod", "s1", "t", || Evaluation::Later(counted(&runs, DENY)))
        .await;
    assert_eq!((v, l), (DENY, Lookup::Hit));
    tokio::time::advance(Duration::from_secs(2)).await;
    let l = ask(&c, &runs, "vod", "s1").await;
    assert_eq!(l, Lookup::Evaluated);
}

#[tokio::test]
async fn key_is_stream_session_and_token() {
    let c = cache(100);
    let runs = Arc::new(AtomicUsize::new(0));
    ask(&c, &runs, "vod", "s1").await;
    for (stream, session, token) in [("vod", "s1", "u"), ("vod", "s2", "t"), ("vod2", "s1", "t")] {
        let (_, l) = c
            .get_or_evaluate(stream, session, token, || {
                Evaluation::Later(counted(&runs, ALLOW))
            })
            .await;
        assert_eq!(l, Lookup::Evaluated, "{stream} {session} {token}");
    }
    assert_eq!(runs.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn concurrent_requests_for_one_key_share_one_evaluation() {
    let c = cache(100);
    let runs = Arc::new(AtomicUsize::new(0));
    let (release, first) = start_slow_evaluation(&c, &runs);
    // Wait until the first evaluation is pending, then send the "retry".
    while runs.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    let retry = tokio::spawn({
        let c = c.clone();
        let runs = runs.clone();
        async move {
            c.get_or_evaluate("vod", "s1", "t", || Evaluation::Later(counted(&runs, DENY)))
                .await
        }
    });
    while lock(&c.inner.pending).is_empty() {
        tokio::task::yield_now().await;
    }
    release.send(()).unwrap();
    assert_eq!(first.await.unwrap(), (ALLOW, Lookup::Evaluated));
    let (v, l) = retry.await.unwrap();
    assert_eq!(v, ALLOW);
    assert!(matches!(l, Lookup::Joined | Lookup::Hit));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn retry_joins_the_evaluation_even_after_the_first_caller_went_away() {
    let c = cache(100);
    let runs = Arc::new(AtomicUsize::new(0));
    let (release, first) = start_slow_evaluation(&c, &runs);
    while runs.load(Ordering::SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    // MistServer gave up on attempt 1 (its connection closed): the request future is dropped.
    first.abort();
    let _ = first.await;
    let retry = tokio::spawn({
        let c = c.clone();
        let runs = runs.clone();
        async move {
            c.get_or_evaluate("vod", "s1", "t", || Evaluation::Later(counted(&runs, DENY)))
                .await
        }
    });
    release.send(()).unwrap();
    assert_eq!(retry.await.unwrap(), (ALLOW, Lookup::Joined));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn panicking_evaluation_answers_internal_error() {
    let c = cache(100);
    let (v, _) = c
        .get_or_evaluate("vod", "s1", "t", || {
            Evaluation::Later(async { panic!("evaluator bug") })
        })
        .await;
    assert_eq!(v, INTERNAL_ERROR);
    assert!(lock(&c.inner.pending).is_empty());
}

#[tokio::test]
async fn panicking_immediate_evaluation_answers_internal_error_and_is_not_cached() {
    let c = cache(100);
    let (v, l) = c
        .get_or_evaluate(
            "vod",
            "s1",
            "t",
            || -> Evaluation<std::future::Ready<Verdict>> { panic!("evaluator bug") },
        )
        .await;
    assert_eq!((v, l), (INTERNAL_ERROR, Lookup::Evaluated));
    let runs = Arc::new(AtomicUsize::new(0));
    let (v, l) = c
        .get_or_evaluate("vod", "s1", "t", || {
            Evaluation::Later(counted(&runs, ALLOW))
        })
        .await;
    assert_eq!(
        (v, l, runs.load(Ordering::SeqCst)),
        (ALLOW, Lookup::Evaluated, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn a_verdict_made_at_once_is_cached_without_a_pending_evaluation() {
    let c = cache(100);
    let runs = AtomicUsize::new(0);
    let now = || {
        runs.fetch_add(1, Ordering::SeqCst);
        Evaluation::<std::future::Ready<Verdict>>::Now(DENY, None)
    };
    assert_eq!(
        c.get_or_evaluate("vod", "s1", "t", now).await,
        (DENY, Lookup::Evaluated)
    );
    assert!(lock(&c.inner.pending).is_empty());
    assert_eq!(
        c.get_or_evaluate("vod", "s1", "t", now).await,
        (DENY, Lookup::Hit)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    // Cached for deny_ttl, like any other denial.
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(
        c.get_or_evaluate("vod", "s1", "t", now).await,
        (DENY, Lookup::Evaluated)
    );
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn invalidating_a_stream_drops_its_decisions_and_keeps_others() {
    let c = cache(1000);
    let runs = Arc::new(AtomicUsize::new(0));
    for s in 0..10 {
        let session = format!("s{s}");
        ask(&c, &runs, "live+a", &session).await;
        ask(&c, &runs, "live+b", &session).await;
    }
    assert_eq!(c.invalidate_streams(["live+a"]), 10);
    assert_eq!(c.invalidate_streams(["live+a", "never-seen"]), 0);
    let l = ask(&c, &runs, "live+a", "s1").await;
    assert_eq!(l, Lookup::Evaluated);
    let l = ask(&c, &runs, "live+b", "s1").await;
    assert_eq!(l, Lookup::Hit);
}

#[tokio::test]
async fn removing_a_session_drops_only_that_session() {
    let c = cache(100);
    let runs = Arc::new(AtomicUsize::new(0));
    ask(&c, &runs, "vod", "s1").await;
    ask(&c, &runs, "vod", "s2").await;
    c.remove("vod", "s1", "t");
    let l = ask(&c, &runs, "vod", "s1").await;
    assert_eq!(l, Lookup::Evaluated);
    let l = ask(&c, &runs, "vod", "s2").await;
    assert_eq!(l, Lookup::Hit);
}

#[tokio::test]
async fn cache_never_holds_more_than_max_entries() {
    let c = cache(50);
    let runs = Arc::new(AtomicUsize::new(0));
    for s in 0..500 {
        let session = format!("s{s}");
        ask(&c, &runs, "vod", &session).await;
    }
    c.run_pending_tasks();
    assert!(c.entry_count() <= 50, "{} entries", c.entry_count());
}

#[tokio::test]
async fn known_streams_lists_what_was_seen() {
    let c = cache(100);
    let runs = Arc::new(AtomicUsize::new(0));
    ask(&c, &runs, "live+a", "s").await;
    ask(&c, &runs, "vod", "s").await;
    let mut live = c.known_streams(|s| s.starts_with("live+"));
    live.sort();
    assert_eq!(live, ["live+a"]);
}

#[tokio::test]
async fn streams_without_cached_decisions_are_forgotten_at_the_bound() {
    let mut c = cache(1000);
    Arc::get_mut(&mut c.inner).unwrap().streams = Streams::new(8);
    let runs = Arc::new(AtomicUsize::new(0));
    ask(&c, &runs, "kept", "s").await;
    for i in 0..20 {
        let stream = format!("gone{i}");
        ask(&c, &runs, &stream, "s").await;
        c.invalidate_streams([stream.as_str()]);
    }
    assert!(
        c.tracked_streams() <= 9,
        "{} streams tracked",
        c.tracked_streams()
    );
    // The stream that still has a cached decision keeps it.
    let l = ask(&c, &runs, "kept", "s").await;
    assert_eq!(l, Lookup::Hit);
}

/// Regression: once the bound was reached with every stream holding a decision, each new name
/// swept the whole map under the write lock every `USER_NEW` takes (quadratic in new names).
#[tokio::test]
async fn new_stream_names_cost_o1_amortised_however_many_are_tracked() {
    let mut c = cache(1_000_000);
    Arc::get_mut(&mut c.inner).unwrap().streams = Streams::new(100);
    let runs = Arc::new(AtomicUsize::new(0));
    let names = 20_000;
    for i in 0..names {
        let stream = format!("live+{i}");
        ask(&c, &runs, &stream, "s").await;
    }
    // Every stream keeps its decision, so nothing can be forgotten: the sweeps found nothing to
    // drop, and still visited fewer than 2 names per new name in all (before: ~names² / 2).
    assert_eq!(c.tracked_streams(), names);
    let swept = c.inner.streams.swept();
    assert!(
        swept < 2 * names as u64,
        "{swept} names swept for {names} new names"
    );
}

#[tokio::test]
async fn tracked_streams_stay_within_twice_the_streams_with_decisions() {
    let max_entries = 500;
    let bound = 1_000;
    let mut c = cache(max_entries);
    Arc::get_mut(&mut c.inner).unwrap().streams = Streams::new(bound);
    let runs = Arc::new(AtomicUsize::new(0));
    let mut most = 0;
    for i in 0..20_000 {
        let stream = format!("live+{i}");
        ask(&c, &runs, &stream, "s").await;
        most = most.max(c.tracked_streams());
    }
    // Streams with a cached decision are at most max_entries (the store evicts the rest).
    let limit = bound.max(2 * max_entries as usize);
    assert!(most <= limit, "{most} streams tracked (limit {limit})");
    assert!(c.entry_count() <= max_entries);
}

/// Decides (stream, session, token) at once, as signed by `signed_by`; returns the serial the
/// evaluation was told it verified with before.
async fn told(
    c: &DecisionCache,
    (stream, session, token): (&str, &str, &str),
    signed_by: Option<u64>,
) -> Option<u64> {
    let mut told = None;
    c.get_or_evaluate_keyed(stream, session, token, Instant::now(), |_, known| {
        told = known;
        Evaluation::<std::future::Ready<Verdict>>::Now(ALLOW, signed_by)
    })
    .await;
    told
}

#[tokio::test(start_paused = true)]
async fn a_recheck_after_an_invalidation_is_told_which_key_its_token_verified_with() {
    let c = cache(100);
    let viewer = ("vod", "s1", "t");
    assert_eq!(told(&c, viewer, Some(7)).await, None, "never invalidated");
    c.invalidate_streams(["vod"]);
    assert_eq!(told(&c, viewer, Some(7)).await, Some(7));
    // Only the very same session and token: another of either was never decided.
    assert_eq!(told(&c, ("vod", "s1", "t2"), Some(7)).await, None);
    assert_eq!(told(&c, ("vod", "s2", "t"), Some(7)).await, None);
    // The decision made after the first invalidation tells the re-check after the second.
    c.invalidate_streams(["vod"]);
    assert_eq!(told(&c, viewer, None).await, Some(7));
    // That one verified nothing (a JWKS refetch decided it, say): the next re-check is told none.
    c.invalidate_streams(["vod"]);
    assert_eq!(told(&c, viewer, Some(7)).await, None);
}

#[tokio::test(start_paused = true)]
async fn an_expired_decision_tells_a_recheck_nothing() {
    let c = cache(100);
    let viewer = ("vod", "s1", "t");
    told(&c, viewer, Some(7)).await;
    tokio::time::advance(Duration::from_secs(601)).await;
    c.invalidate_streams(["vod"]);
    assert_eq!(told(&c, viewer, Some(7)).await, None);
}

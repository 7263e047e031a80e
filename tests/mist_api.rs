//! The MistServer API client and the invalidation queue against a MistServer stand-in on loopback:
//! the JSON that arrives, the challenge login, and retrying through an outage without losing names.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::mist_api::MistApi;
use serde_json::json;
use usher::backoff::Backoff;
use usher::config::MistConfig;
use usher::mist::{InvalidationQueue, MistClient, MistError, NoSink};

/// Generous: the machine is small and shared.
const LONG: Duration = Duration::from_secs(60);

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Names as the queue takes them: not stored anywhere (sequence 0).
fn owed(list: &[&str]) -> Vec<(String, u64)> {
    list.iter().map(|s| (s.to_string(), 0)).collect()
}

fn client(api: &MistApi, username: &str, password: &str) -> MistClient {
    MistClient::new(&MistConfig {
        api_url: api.url(),
        username: username.into(),
        password: password.into(),
        ..MistConfig::default()
    })
    .expect("client")
}

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
    }
}

/// Polls `cond` every 20 ms until it holds or `LONG` passes.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LONG;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn invalidate_sends_the_names_as_one_json_list() {
    let api = MistApi::start().await;
    let c = client(&api, "", "");
    c.invalidate_sessions(&names(&["vod", "live+abc"]))
        .await
        .expect("accepted");
    assert_eq!(
        api.accepted(),
        vec![json!({"invalidate_sessions": ["vod", "live+abc"]})]
    );
    c.invalidate_sessions(&names(&["one"])).await.expect("one");
    assert_eq!(api.invalidate_calls()[1], names(&["one"]));
}

#[tokio::test]
async fn challenge_login_answers_md5_of_md5_password_and_challenge() {
    let api = MistApi::start().await;
    api.require_login("test", "test");
    api.set_challenge("abc");
    let c = client(&api, "test", "test");
    c.invalidate_sessions(&names(&["s1"])).await.expect("login");
    // First the empty password to get the challenge, then the answer with the command.
    assert_eq!(api.requests(), 2);
    let body = &api.accepted()[0];
    assert_eq!(body["authorize"]["username"], "test");
    assert_eq!(
        body["authorize"]["password"],
        "ed13432526d30455665dae29e6e745af"
    );
    assert_eq!(body["invalidate_sessions"], json!(["s1"]));

    // The cached challenge is answered at once.
    c.invalidate_sessions(&names(&["s2"]))
        .await
        .expect("cached");
    assert_eq!(api.requests(), 3);

    // A stale challenge costs one more round trip, then works.
    api.set_challenge("fresh");
    c.invalidate_sessions(&names(&["s3"]))
        .await
        .expect("relogin");
    assert_eq!(api.requests(), 5);
    assert_eq!(api.invalidated(), names(&["s1", "s2", "s3"]));
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_and_nothing_is_invalidated() {
    let api = MistApi::start().await;
    api.require_login("test", "test");
    let c = client(&api, "test", "wrong");
    // MistServer's own answer to a wrong password is a new CHALL.
    let e = c.invalidate_sessions(&names(&["s1"])).await.unwrap_err();
    assert!(matches!(&e, MistError::Auth(s) if s == "CHALL"), "{e}");
    api.reject_with("DENIED");
    let e = c.invalidate_sessions(&names(&["s1"])).await.unwrap_err();
    assert!(matches!(&e, MistError::Auth(s) if s == "DENIED"), "{e}");
    assert!(!e.to_string().contains("wrong"));
    assert!(api.accepted().is_empty());
}

/// Regression: MistServer 3.10 with no account runs a local caller's command and answers
/// `authorize: {status: "NOACC"}`; usher took that for a refused login and never invalidated.
#[tokio::test]
async fn a_local_mistserver_without_accounts_runs_the_call_and_answers_noacc() {
    let api = MistApi::start().await;
    api.without_accounts();
    client(&api, "", "")
        .invalidate_sessions(&names(&["s1"]))
        .await
        .expect("accepted without a login");
    client(&api, "admin", "pw")
        .invalidate_sessions(&names(&["s2"]))
        .await
        .expect("accepted with a login configured too");
    assert_eq!(api.invalidated(), names(&["s1", "s2"]));
}

#[tokio::test]
async fn a_login_demanded_without_a_username_is_an_auth_error() {
    let api = MistApi::start().await;
    api.require_login("test", "test");
    let e = client(&api, "", "")
        .invalidate_sessions(&names(&["s1"]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "auth");
}

#[tokio::test]
async fn a_non_2xx_answer_or_a_refused_connection_is_an_error() {
    let api = MistApi::start().await;
    let c = client(&api, "", "");
    api.fail_with_status(Some(503));
    let e = c.invalidate_sessions(&names(&["s1"])).await.unwrap_err();
    assert!(matches!(e, MistError::Status(503)), "{e}");
    api.fail_with_status(None);
    api.down().await;
    let e = c.invalidate_sessions(&names(&["s1"])).await.unwrap_err();
    assert_eq!(e.kind(), "network", "{e}");
}

#[tokio::test]
async fn queue_delivers_once_mist_is_back_after_three_seconds_down() {
    let api = MistApi::start().await;
    api.down().await;
    let q = InvalidationQueue::spawn(client(&api, "", ""), fast_backoff(), Arc::new(NoSink));
    let ticket = q.enqueue(owed(&["live+a"]));
    eventually("a failed call", || q.status().api_errors >= 1).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!q.is_acknowledged(ticket));
    assert!(q.status().last_error.is_some());
    api.up().await;
    assert!(q.wait_acknowledged(ticket, LONG).await);
    assert_eq!(api.invalidated(), names(&["live+a"]));
    let status = q.status();
    assert_eq!((status.pending, status.last_error), (0, None));
    assert!(status.calls_ok >= 1 && status.acknowledged_through >= ticket.seq());
}

#[tokio::test]
async fn names_enqueued_while_mist_is_down_are_merged_into_one_call() {
    let api = MistApi::start().await;
    api.down().await;
    let q = InvalidationQueue::spawn(client(&api, "", ""), fast_backoff(), Arc::new(NoSink));
    q.enqueue(owed(&["c", "a"]));
    eventually("a failed call", || q.status().api_errors >= 1).await;
    q.enqueue(owed(&["b"]));
    let last = q.enqueue(owed(&["a", "d"]));
    // Two more failures: the second began after the last enqueue, so every later try holds all names.
    let errors = q.status().api_errors;
    eventually("two more failed calls", || {
        q.status().api_errors >= errors + 2
    })
    .await;
    api.up().await;
    assert!(q.wait_acknowledged(last, LONG).await);
    assert_eq!(api.invalidate_calls(), vec![names(&["a", "b", "c", "d"])]);
}

#[tokio::test]
async fn a_later_ticket_is_not_acknowledged_before_its_names_arrived() {
    let api = MistApi::start().await;
    let q = InvalidationQueue::spawn(client(&api, "", ""), fast_backoff(), Arc::new(NoSink));
    let first = q.enqueue(owed(&["a"]));
    assert!(q.wait_acknowledged(first, LONG).await);
    api.down().await;
    let second = q.enqueue(owed(&["a", "b"]));
    assert!(second.seq() > first.seq());
    eventually("a failed call", || q.status().api_errors >= 1).await;
    assert!(
        !q.wait_acknowledged(second, Duration::from_millis(300))
            .await
    );
    assert!(q.status().acknowledged_through < second.seq());
    assert!(q.is_acknowledged(first));
    api.up().await;
    assert!(q.wait_acknowledged(second, LONG).await);
    assert_eq!(
        api.invalidate_calls(),
        vec![names(&["a"]), names(&["a", "b"])]
    );
}

#[tokio::test]
async fn a_large_invalidation_goes_out_in_calls_of_at_most_a_thousand_names() {
    let api = MistApi::start().await;
    let q = InvalidationQueue::spawn(client(&api, "", ""), fast_backoff(), Arc::new(NoSink));
    let ticket = q.enqueue((0..2_500).map(|i| (format!("s{i:05}"), 0)));
    assert!(q.wait_acknowledged(ticket, LONG).await);
    let sizes: Vec<usize> = api.invalidate_calls().iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![1_000, 1_000, 500]);
    assert_eq!(q.status().calls_ok, 3);
}

#[tokio::test]
async fn the_queue_logs_in_with_the_challenge() {
    let api = MistApi::start().await;
    api.require_login("admin", "pw");
    let q = InvalidationQueue::spawn(
        client(&api, "admin", "pw"),
        fast_backoff(),
        Arc::new(NoSink),
    );
    let ticket = q.enqueue(owed(&["vod"]));
    assert!(q.wait_acknowledged(ticket, LONG).await);
    assert_eq!(api.invalidated(), names(&["vod"]));
}

#[tokio::test]
async fn after_shutdown_nothing_more_is_sent() {
    let api = MistApi::start().await;
    let q = InvalidationQueue::spawn(client(&api, "", ""), fast_backoff(), Arc::new(NoSink));
    q.shutdown();
    let ticket = q.enqueue(owed(&["late"]));
    assert!(
        !q.wait_acknowledged(ticket, Duration::from_millis(300))
            .await
    );
    assert!(api.invalidated().is_empty());
}

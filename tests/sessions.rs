//! Live sessions through the real daemon (SPEC §9) with the MistServer API stand-in: a session is
//! ended with `stop_sessid` within a second of its token's expiry plus leeway, a revoked viewer's
//! sessions (and only theirs) are ended, a viewer's sessions are capped in both modes, `USER_END`
//! or age frees a slot, revocations survive a restart, and MistServer's re-check of a session after
//! an invalidation does not verify its token's signature again.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::api::{Api, Key};
use common::daemon::{Daemon, base_config};
use common::mist::{post_trigger, session_id, user_end_body, user_new, user_new_body, uuid};
use common::mist_api::MistApi;
use serde_json::{Value, json};
use usher::keys::sign::{SignOptions, sign};

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token for viewer `sub`, issued now, expiring `exp_in_s` from now.
fn token(key: &Key, sub: &str, exp_in_s: i64) -> (String, i64) {
    let now = now_s();
    let opts = SignOptions {
        kid: key.kid.clone(),
        sub: Some(sub.into()),
        exp_in_s: Some(exp_in_s),
        ..SignOptions::default()
    };
    (
        sign(key.private_pem.as_bytes(), &opts, now).unwrap(),
        now + exp_in_s,
    )
}

fn config(dir: &Path, mist: &MistApi, extra: &str) -> String {
    format!(
        "{}\n[mist]\napi_url = \"{}\"\nack_wait_ms = 5000\n\n[[tenants]]\nid = \"t1\"\n{extra}",
        base_config(&dir.join("data")),
        mist.url()
    )
}

async fn start(dir: &Path, config: String) -> Daemon {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || Daemon::start_with(&dir, &config).expect("daemon starts"))
        .await
        .unwrap()
}

/// A daemon with API key `k1` of tenant `t1` and a `jwt` policy on `live` with `rules`.
async fn daemon(dir: &Path, mist: &MistApi, extra: &str, rules: Value) -> (Daemon, Key) {
    let d = start(dir, config(dir, mist, extra)).await;
    let api = Api::new(&d);
    let key = Key::new("k1");
    let (status, _) = api.call("PUT", "/v1/keys/k1", Some(key.body("t1"))).await;
    assert_eq!(status, 201);
    let mut policy = json!({"tenant": "t1", "type": "jwt"});
    policy
        .as_object_mut()
        .unwrap()
        .extend(rules.as_object().unwrap().clone());
    let (status, body) = api.call("PUT", "/v1/policies/live", Some(policy)).await;
    assert_eq!(status, 201, "{body}");
    (d, key)
}

async fn play(d: &Daemon, token: &str, session: &str) -> String {
    let url = format!("http://127.0.0.1:8080/hls/live+a/index.m3u8?jwt={token}");
    let body = user_new_body("live+a", "127.0.0.1", token, &url, session, true);
    user_new(d.trigger, &body).await.body
}

async fn end(d: &Daemon, token: &str, session: &str) {
    let body = user_end_body(token, "live+a", session);
    let answer = post_trigger(d.trigger, "USER_END", &uuid(), 1, body.as_bytes()).await;
    assert_eq!(answer.status, 200);
}

fn ids(stopped: &[(SystemTime, String)]) -> Vec<String> {
    let mut ids: Vec<String> = stopped.iter().map(|(_, id)| id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn an_expired_tokens_session_is_stopped_within_a_second_of_exp_plus_leeway() {
    let mist = MistApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (d, key) = daemon(tmp.path(), &mist, "", json!({"cut_at_exp": true})).await;
    // exp 57 s ago: still inside the 60 s leeway, so allowed; cut 3 s from now.
    let (old, exp) = token(&key, "alice", -57);
    let (fresh, _) = token(&key, "bob", 3600);
    let (s1, s2) = (session_id("cut-1"), session_id("cut-2"));
    assert_eq!(play(&d, &old, &s1).await, "true");
    assert_eq!(play(&d, &fresh, &s2).await, "true");
    let stopped = mist.wait_stopped(1, Duration::from_secs(30)).await;
    assert_eq!(ids(&stopped), vec![s1.clone()], "only the expired session");
    // The session's cached allow left with it: asked again, it is decided again, and refused.
    assert_eq!(play(&d, &old, &s1).await, "false");
    assert_eq!(play(&d, &fresh, &s2).await, "true");
    let at = stopped[0]
        .0
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let cut = exp as f64 + 60.0;
    assert!(
        at >= cut - 0.05,
        "stopped {:.3} s before exp + leeway",
        cut - at
    );
    assert!(
        at <= cut + 1.0,
        "stopped {:.3} s after exp + leeway",
        at - cut
    );
    let metrics = Api::new(&d).metrics().await;
    assert!(
        metrics.contains("usher_sessions_ended_total{cause=\"expiry\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("usher_sessions_tracked 1"), "{metrics}");
}

#[tokio::test]
async fn revoking_a_viewer_ends_exactly_that_viewers_sessions_and_refuses_its_tokens() {
    let mist = MistApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (d, key) = daemon(tmp.path(), &mist, "", json!({"max_lifetime_s": 7200})).await;
    let api = Api::new(&d);
    let (alice, _) = token(&key, "alice", 3600);
    let (alice2, _) = token(&key, "alice", 1800);
    let (bob, _) = token(&key, "bob", 3600);
    let (a1, a2, b1) = (session_id("a1"), session_id("a2"), session_id("b1"));
    assert_eq!(play(&d, &alice, &a1).await, "true");
    assert_eq!(play(&d, &alice2, &a2).await, "true");
    assert_eq!(play(&d, &bob, &b1).await, "true");
    let (status, _) = api.call("GET", "/v1/sessions/count", None).await;
    assert_eq!(status, 200);

    let (status, answer) = api
        .call(
            "POST",
            "/v1/viewers/revoke",
            Some(json!({"tenant": "t1", "viewer": "alice"})),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["sessions_ended"], 2, "{answer}");
    assert_eq!(answer["mist_acknowledged"], true, "{answer}");
    let before = answer["before"].as_i64().unwrap();
    assert_eq!(answer["forget_at"].as_i64().unwrap(), before + 7200 + 60);
    let mut want = vec![a1.clone(), a2.clone()];
    want.sort();
    assert_eq!(ids(&mist.stopped()), want, "alice's sessions, not bob's");
    assert!(
        !mist.invalidated().contains(&"live+a".to_string()),
        "no stream is re-checked for a revocation: {:?}",
        mist.invalidate_calls()
    );

    // Her ended session's cached allow left with it: asked again, it is refused.
    assert_eq!(play(&d, &alice, &a1).await, "false");
    // Alice's old token is refused on a new session, and /v1/test says why.
    assert_eq!(play(&d, &alice, &session_id("a3")).await, "false");
    let (_, test) = api
        .call(
            "POST",
            "/v1/test",
            Some(json!({"stream": "live+a", "viewer_token": alice})),
        )
        .await;
    assert_eq!(test["reason"], "viewer-revoked", "{test}");
    assert_eq!(test["viewer"], "alice", "{test}");
    // Bob plays on; his cached allow was dropped but he is decided again and allowed.
    assert_eq!(play(&d, &bob, &session_id("b2")).await, "true");
    let (_, counts) = api.call("GET", "/v1/sessions/count", None).await;
    assert_eq!(counts["total"], 2, "{counts}");
    assert_eq!(
        counts["tenants"][0]["streams"][0]["stream"], "live+a",
        "{counts}"
    );
    assert!(!counts.to_string().contains("alice") && !counts.to_string().contains(&b1));
    let metrics = api.metrics().await;
    assert!(
        metrics.contains("usher_sessions_ended_total{cause=\"revocation\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_token_issued_after_the_revocation_plays() {
    let mist = MistApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (d, key) = daemon(tmp.path(), &mist, "", json!({})).await;
    let api = Api::new(&d);
    let before = now_s() - 5;
    let (status, _) = api
        .call(
            "POST",
            "/v1/viewers/revoke",
            Some(json!({"tenant": "t1", "viewer": "carol", "before": before})),
        )
        .await;
    assert_eq!(status, 200);
    let (fresh, _) = token(&key, "carol", 600);
    assert_eq!(play(&d, &fresh, &session_id("c1")).await, "true");
    let (status, err) = api
        .call(
            "POST",
            "/v1/viewers/revoke",
            Some(json!({"tenant": "nope", "viewer": "x"})),
        )
        .await;
    assert_eq!((status, err["error"].clone()), (404, json!("not-found")));
}

#[tokio::test]
async fn deny_new_refuses_a_third_session_and_user_end_frees_the_slot() {
    let mist = MistApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let rules = json!({"max_sessions_per_viewer": 2, "on_exceed": "deny-new"});
    let (d, key) = daemon(tmp.path(), &mist, "", rules).await;
    let tokens: Vec<String> = (0..4).map(|_| token(&key, "dave", 600).0).collect();
    let s: Vec<String> = (0..4).map(|i| session_id(&format!("deny-{i}"))).collect();
    assert_eq!(play(&d, &tokens[0], &s[0]).await, "true");
    assert_eq!(play(&d, &tokens[1], &s[1]).await, "true");
    // A re-check of a counted session (6 lines, after invalidate_sessions) is not a new one.
    let url = format!(
        "http://127.0.0.1:8080/hls/live+a/index.m3u8?jwt={}",
        tokens[1]
    );
    let recheck = user_new_body("live+a", "127.0.0.1", &tokens[1], &url, &s[1], false);
    assert_eq!(user_new(d.trigger, &recheck).await.body, "true");
    assert_eq!(
        play(&d, &tokens[2], &s[2]).await,
        "false",
        "third session refused"
    );
    assert!(mist.stopped().is_empty(), "deny-new ends nothing");
    d.wait_for_log("a viewer-session-limit denial", |l| {
        l["message"] == "denied" && l["reason"] == "viewer-session-limit"
    })
    .await;
    end(&d, &tokens[0], &s[0]).await;
    assert_eq!(
        play(&d, &tokens[3], &s[3]).await,
        "true",
        "USER_END freed a slot"
    );
}

/// The viewer a token names comes from the tenant's `viewer_claim` when it sets one: a fresh
/// answer builds only the claims something reads, and this one must be among them.
#[tokio::test]
async fn a_tenants_own_viewer_claim_is_the_one_counted() {
    let mist = MistApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let rules = json!({"max_sessions_per_viewer": 1, "on_exceed": "deny-new"});
    let (d, key) = daemon(tmp.path(), &mist, "viewer_claim = \"uid\"\n", rules).await;
    let now = now_s();
    // Two different `sub`s, one `uid`: the same viewer, so the second session is refused.
    let tokens: Vec<String> = ["x1", "x2"]
        .iter()
        .map(|sub| {
            let opts = SignOptions {
                kid: key.kid.clone(),
                sub: Some((*sub).into()),
                exp_in_s: Some(600),
                claims: vec![("uid".into(), json!("erin"))],
                ..SignOptions::default()
            };
            sign(key.private_pem.as_bytes(), &opts, now).unwrap()
        })
        .collect();
    let s: Vec<String> = (0..2).map(|i| session_id(&format!("uid-{i}"))).collect();
    assert_eq!(play(&d, &tokens[0], &s[0]).await, "true");
    assert_eq!(
        play(&d, &tokens[1], &s[1]).await,
        "false",
        "uid erin holds her one session already"
    );
    d.wait_for_log("a viewer-session-limit denial", |l| {
        l["message"] == "denied" && l["reason"] == "viewer-session-limit"
    })
    .await;
}

#[tokio::test]
async fn end_oldest_plays_the_third_session_and_ends_the_first() {
    let mist = MistApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let rules = json!({"max_sessions_per_viewer": 2, "on_exceed": "end-oldest"});
    let (d, key) = daemon(tmp.path(), &mist, "", rules).await;
    let s: Vec<String> = (0..3).map(|i| session_id(&format!("oldest-{i}"))).collect();
    for session in &s {
        let (t, _) = token(&key, "erin", 600);
        assert_eq!(play(&d, &t, session).await, "true");
    }
    let stopped = mist.wait_stopped(1, Duration::from_secs(30)).await;
    assert_eq!(ids(&stopped), vec![s[0].clone()]);
    let metrics = Api::new(&d).metrics().await;
    assert!(
        metrics.contains("usher_sessions_ended_total{cause=\"limit\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_lost_user_end_frees_the_slot_by_age() {
    let mist = MistApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let rules = json!({"max_sessions_per_viewer": 1});
    let extra = "[cache]\nallow_ttl_s = 1\n";
    let (d, key) = daemon(tmp.path(), &mist, extra, rules).await;
    // exp 57 s ago, inside the leeway: kept until exp + 60 s (3 s), no USER_END ever comes.
    let (old, _) = token(&key, "frank", -57);
    assert_eq!(play(&d, &old, &session_id("age-0")).await, "true");
    let (fresh, _) = token(&key, "frank", 600);
    assert_eq!(play(&d, &fresh, &session_id("age-1")).await, "false");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut n = 2;
    loop {
        let (fresh, _) = token(&key, "frank", 600);
        if play(&d, &fresh, &session_id(&format!("age-{n}"))).await == "true" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never freed"
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let metrics = Api::new(&d).metrics().await;
    assert!(
        metrics.contains("usher_sessions_forgotten_total{cause=\"age\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn revocations_survive_a_restart() {
    let mist = MistApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (d, key) = daemon(tmp.path(), &mist, "", json!({})).await;
    let (t, _) = token(&key, "grace", 600);
    let (status, _) = Api::new(&d)
        .call(
            "POST",
            "/v1/viewers/revoke",
            Some(json!({"tenant": "t1", "viewer": "grace"})),
        )
        .await;
    assert_eq!(status, 200);
    drop(d);
    let d = start(tmp.path(), config(tmp.path(), &mist, "")).await;
    assert_eq!(play(&d, &t, &session_id("restart")).await, "false");
    let (_, test) = Api::new(&d)
        .call(
            "POST",
            "/v1/test",
            Some(json!({"stream": "live+a", "viewer_token": t})),
        )
        .await;
    assert_eq!(test["reason"], "viewer-revoked", "{test}");
}

#[tokio::test]
async fn a_stop_owed_to_mistserver_survives_kill_9() {
    let mist = MistApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let extra = "";
    let (d, key) = daemon(tmp.path(), &mist, extra, json!({})).await;
    let (t, _) = token(&key, "heidi", 600);
    let s = session_id("kill-9");
    assert_eq!(play(&d, &t, &s).await, "true");
    mist.down().await;
    let (status, answer) = Api::new(&d)
        .call(
            "POST",
            "/v1/viewers/revoke",
            Some(json!({"tenant": "t1", "viewer": "heidi"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["mist_acknowledged"], false, "MistServer is down");
    drop(d); // SIGKILL
    mist.up().await;
    let _d = start(tmp.path(), config(tmp.path(), &mist, extra)).await;
    let stopped = mist.wait_stopped(1, Duration::from_secs(30)).await;
    assert_eq!(ids(&stopped), vec![s]);
}

#[tokio::test]
async fn a_recheck_after_an_invalidation_skips_the_verify_and_a_new_session_does_not() {
    let mist = MistApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let (d, key) = daemon(tmp.path(), &mist, "", json!({})).await;
    let api = Api::new(&d);
    // Whether `/metrics` counts `n` signatures taken as known.
    let known = |n: u32| {
        let api = &api;
        async move {
            let metrics = api.metrics().await;
            metrics.contains(&format!("\nusher_signatures_known_total {n}\n"))
        }
    };
    let (tok, _) = token(&key, "erin", 600);
    let (s1, s2) = (session_id("known-1"), session_id("known-2"));
    assert_eq!(play(&d, &tok, &s1).await, "true");
    assert!(known(0).await);
    let (status, _) = api
        .call(
            "POST",
            "/v1/invalidate",
            Some(json!({"streams": ["live+a"]})),
        )
        .await;
    assert_eq!(status, 200);
    // MistServer's re-check: same session, same token, 6 lines.
    let url = format!("http://127.0.0.1:8080/hls/live+a/index.m3u8?jwt={tok}");
    let recheck = user_new_body("live+a", "127.0.0.1", &tok, &url, &s1, false);
    assert_eq!(user_new(d.trigger, &recheck).await.body, "true");
    assert!(known(1).await, "the re-check was not verified again");
    // A new session with the same token is verified.
    assert_eq!(play(&d, &tok, &s2).await, "true");
    assert!(known(1).await);
    // A revoked key ends it: the next re-check is refused, not answered from what was known.
    let (status, revoked) = api.call("POST", "/v1/keys/k1/revoke", None).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(user_new(d.trigger, &recheck).await.body, "false");
    assert!(known(1).await);
}

//! The daemon's side of MistServer's API: invalidations reach a MistServer stand-in (with the
//! challenge login), survive an outage, and `/metrics` shows it all without any id label.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::time::Duration;

use common::api::{Api, Key};
use common::daemon::Daemon;
use common::mist::{session_id, user_new, user_new_body};
use common::mist_api::MistApi;
use serde_json::json;

async fn daemon_with_mist(api: &MistApi) -> Daemon {
    let extra = format!(
        "[mist]\napi_url = \"{}\"\nusername = \"admin\"\npassword = \"mistpw\"\nack_wait_ms = 5000\n",
        api.url()
    );
    tokio::task::spawn_blocking(move || Daemon::start(&extra))
        .await
        .unwrap()
}

#[tokio::test]
async fn revoking_a_key_makes_mistserver_recheck_the_stream_and_denies_the_session() {
    let mist = MistApi::start().await;
    mist.require_login("admin", "mistpw");
    let d = daemon_with_mist(&mist).await;
    let api = Api::new(&d);
    let key = Key::new("k1");
    api.call("PUT", "/v1/keys/k1", Some(key.body("t1"))).await;
    let (status, set) = api
        .call(
            "PUT",
            "/v1/policies/vod",
            Some(json!({"tenant": "t1", "type": "jwt"})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(set["mist_acknowledged"], true, "{set}");
    let token = key.token();
    let url = format!("http://127.0.0.1:8080/hls/vod/index.m3u8?jwt={token}");
    let s = session_id("mist-revoke");
    let first = user_new_body("vod", "127.0.0.1", &token, &url, &s, true);
    assert_eq!(user_new(d.trigger, &first).await.body, "true");

    let (status, revoked) = api.call("POST", "/v1/keys/k1/revoke", None).await;
    assert_eq!(status, 200);
    assert_eq!(revoked["mist_acknowledged"], true, "{revoked}");
    assert!(mist.invalidated().contains(&"vod".to_string()));
    // MistServer's re-check: the 6-line body.
    let recheck = user_new_body("vod", "127.0.0.1", &token, &url, &s, false);
    assert_eq!(user_new(d.trigger, &recheck).await.body, "false");
}

#[tokio::test]
async fn invalidation_reaches_mistserver_after_an_outage() {
    let mist = MistApi::start().await;
    let d = daemon_with_mist(&mist).await;
    let api = Api::new(&d);
    mist.down().await;
    let started = std::time::Instant::now();
    let (status, answer) = api
        .call(
            "POST",
            "/v1/invalidate",
            Some(json!({"streams": ["live+outage"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(answer["mist_acknowledged"], false, "MistServer is down");
    let outage = Duration::from_secs(3).saturating_sub(started.elapsed());
    tokio::time::sleep(outage).await;
    mist.up().await;
    mist.wait_invalidated("live+outage", Duration::from_secs(60))
        .await;
    let calls = mist.invalidate_calls();
    assert!(calls.iter().any(|c| c.contains(&"live+outage".to_string())));
}

#[tokio::test]
async fn metrics_have_the_expected_names_and_no_id_labels() {
    let mist = MistApi::start().await;
    let d = daemon_with_mist(&mist).await;
    let api = Api::new(&d);
    api.call(
        "PUT",
        "/v1/policies/live",
        Some(json!({"tenant": "t1", "type": "public"})),
    )
    .await;
    let s = session_id("metrics");
    let token = "secret-viewer-token.abc.def";
    let body = user_new_body(
        "live+playback123",
        "198.51.100.23",
        token,
        "http://h/x",
        &s,
        true,
    );
    assert_eq!(user_new(d.trigger, &body).await.body, "true");
    let denied = user_new_body("other", "198.51.100.23", token, "http://h/x", &s, true);
    assert_eq!(user_new(d.trigger, &denied).await.body, "false");
    api.call(
        "POST",
        "/v1/invalidate",
        Some(json!({"streams": ["live+playback123"]})),
    )
    .await;

    let text = api.metrics().await;
    for name in [
        "usher_build_info",
        "usher_decisions_total{trigger=\"USER_NEW\",policy=\"public\",result=\"allow\",reason=\"allowed\"} 1",
        "usher_decisions_total{trigger=\"USER_NEW\",policy=\"deny\",result=\"deny\",reason=\"policy-deny\"} 1",
        "usher_decision_duration_seconds_bucket{cache=\"miss\"",
        "usher_decision_duration_seconds_count{cache=\"hit\"}",
        "usher_webhook_duration_seconds_count",
        "usher_cache_entries",
        "usher_webhooks_in_flight",
        "usher_invalidations_total 2", // the policy PUT and the explicit call
        "usher_invalidated_decisions_total 1",
        "usher_mist_api_calls_total",
        "usher_mist_api_errors_total",
        "usher_jwks_fetches_total",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
    for secret in [
        "playback123",
        "198.51.100.23",
        &s,
        token,
        "session=",
        "stream=",
    ] {
        assert!(!text.contains(secret), "{secret:?} leaked into /metrics");
    }
    // Every sample line parses as Prometheus text: name{labels} value.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (_, value) = line.rsplit_once(' ').expect("sample has a value");
        value
            .parse::<f64>()
            .unwrap_or_else(|_| panic!("bad sample {line}"));
    }
}

#[tokio::test]
async fn revocation_reaches_streams_usher_has_not_seen_since_it_started() {
    let mist = MistApi::start().await;
    // MistServer has viewers on live+unseen (allowed before usher restarted, say).
    mist.set_hook(std::sync::Arc::new(|body: &serde_json::Value| {
        let mut answer = serde_json::Map::new();
        if body.get("active_streams").is_some() {
            answer.insert("active_streams".into(), json!(["live+unseen", "other"]));
        }
        answer
    }));
    let d = daemon_with_mist(&mist).await;
    let api = Api::new(&d);
    let key = Key::new("k1");
    api.call("PUT", "/v1/keys/k1", Some(key.body("t1"))).await;
    api.call(
        "PUT",
        "/v1/policies/live",
        Some(json!({"tenant": "t1", "type": "jwt"})),
    )
    .await;
    let (status, revoked) = api.call("POST", "/v1/keys/k1/revoke", None).await;
    assert_eq!(status, 200);
    assert_eq!(revoked["streams"], json!(["live+unseen"]), "{revoked}");
    assert!(mist.invalidated().contains(&"live+unseen".to_string()));
    assert!(
        !mist.invalidated().contains(&"other".to_string()),
        "other tenants' streams untouched"
    );
}

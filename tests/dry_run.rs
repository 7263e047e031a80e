//! `/v1/test` agrees with `USER_NEW`: the dry run builds its request the way MistServer builds
//! `request_url` (SPEC §1), so what a stream name contains cannot change the outcome.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use common::api::{Api, Key};
use common::daemon::Daemon;
use common::mist::{session_id, user_new, user_new_body};
use serde_json::json;
use usher::keys::sign::{SignOptions, sign};

/// What `USER_NEW` answered for `token` on `stream`, as (allowed, reason).
async fn live(d: &Daemon, stream: &str, token: &str, seed: &str) -> (bool, String) {
    // The player asked for the stream's path with the name percent-encoded, as browsers do.
    let path = stream
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    let url = format!("http://127.0.0.1:8080/hls/{path}/index.m3u8?jwt={token}");
    let session = session_id(seed);
    let body = user_new_body(stream, "203.0.113.7", token, &url, &session, true);
    if user_new(d.trigger, &body).await.body == "true" {
        return (true, "allowed".into());
    }
    d.wait_for_log("the denial", |j| {
        j["message"] == "denied" && j["session"] == session.as_str()
    })
    .await;
    let reason = d
        .logs()
        .into_iter()
        .find(|j| j["message"] == "denied" && j["session"] == session.as_str())
        .map(|j| j["reason"].as_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    (false, reason)
}

/// Regression: `/v1/test` spliced the stream name into its URL unescaped, so a name with `?` or
/// `#` hid the `jwt` parameter (or brought its own) and the dry run disagreed with `USER_NEW`.
#[tokio::test]
async fn dry_run_agrees_with_user_new_for_stream_names_with_query_or_fragment_characters() {
    let d = Daemon::start("");
    let api = Api::new(&d);
    let key = Key::new("k1");
    assert_eq!(
        api.call("PUT", "/v1/keys/k1", Some(key.body("t1"))).await.0,
        201
    );
    let policy = json!({"tenant": "t1", "type": "jwt"});
    assert_eq!(
        api.call("PUT", "/v1/policies/live", Some(policy)).await.0,
        201
    );
    let valid = key.token();
    let opts = SignOptions {
        kid: "k1".into(),
        exp_in_s: Some(-3600),
        ..SignOptions::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expired = sign(key.private_pem.as_bytes(), &opts, now).unwrap();
    let streams = [
        "live+a?jwt=forged",
        "live+b#frag",
        "live+c?x=1&jwt=forged#f",
        "live+d%3F",
    ];
    let mut seed = 0;
    for stream in streams {
        for (what, token) in [
            ("valid", &valid),
            ("expired", &expired),
            ("garbage", &"notajws".to_string()),
        ] {
            seed += 1;
            let (status, dry) = api
                .call(
                    "POST",
                    "/v1/test",
                    Some(json!({"stream": stream, "viewer_token": token, "viewer_ip": "203.0.113.7"})),
                )
                .await;
            assert_eq!(status, 200, "{dry}");
            let (allowed, reason) = live(&d, stream, token, &format!("dry-{seed}")).await;
            assert_eq!(
                (
                    dry["allowed"].as_bool().unwrap(),
                    dry["reason"].as_str().unwrap()
                ),
                (allowed, reason.as_str()),
                "{what} token on {stream:?}: dry run {dry}"
            );
        }
    }
}

#[test]
fn dry_run_url_keeps_the_stream_name_in_the_path() {
    let url = usher::decision::dry_run_url("live+a?jwt=x#y/z", "tok en");
    assert_eq!(url, "http://localhost/live+a%3Fjwt=x%23y%2Fz?jwt=tok+en");
    assert_eq!(
        usher::decision::dry_run_url("vod", ""),
        "http://localhost/vod"
    );
}

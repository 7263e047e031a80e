//! Publishers through the real daemon (SPEC §10): `STREAM_PUSH` and `PUSH_REWRITE` answered with
//! the policy's `publish` rule — deny, public, stream key, jwt with the permission claim, webhook
//! — from the config file and from the control API; the viewer side of `require_permission`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::api::{Api, Key};
use common::daemon::Daemon;
use common::https::{Behaviour, HttpsServer};
use common::mist::{Answer, post_trigger, session_id, user_new, user_new_body, uuid};
use serde_json::{Value, json};
use sha2::Digest;
use usher::keys::sign::{SignOptions, sign};

const STREAM_KEY: &str = "sk-7f3a9c1e-publisher";

fn key_hash(key: &str) -> String {
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

/// A `STREAM_PUSH` body as MistServer 3.10 sends it for an RTMP push of `stream` with `query`.
fn stream_push_body(stream: &str, query: &str) -> String {
    format!("{stream}\n127.0.0.1\nRTMP\nrtmp://127.0.0.1:1935/live/{stream}{query}")
}

/// A `PUSH_REWRITE` body: the push URL with its query, the host, the parsed stream name.
fn push_rewrite_body(stream: &str, query: &str) -> String {
    format!("rtmp://127.0.0.1:1935/live/{stream}{query}\n127.0.0.1\n{stream}")
}

async fn stream_push(d: &Daemon, stream: &str, query: &str) -> Answer {
    let body = stream_push_body(stream, query);
    post_trigger(d.trigger, "STREAM_PUSH", &uuid(), 1, body.as_bytes()).await
}

async fn push_rewrite(d: &Daemon, stream: &str, query: &str) -> Answer {
    let body = push_rewrite_body(stream, query);
    post_trigger(d.trigger, "PUSH_REWRITE", &uuid(), 1, body.as_bytes()).await
}

/// The reason logged for the push of `stream` by `trigger` (each test pushes a stream once per
/// trigger).
async fn reason(d: &Daemon, trigger: &str, stream: &str) -> String {
    let find = |l: &Value| {
        l["trigger"] == trigger
            && l["stream"] == stream
            && (l["message"] == "push allowed" || l["message"] == "push refused")
    };
    d.wait_for_log(&format!("{trigger} {stream}"), find).await;
    let logs = d.logs();
    let line = logs.iter().find(|l| find(l)).unwrap();
    line["reason"].as_str().unwrap().to_owned()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token of `key` carrying `claim` = `{"read": read, "publish": publish}` (no claim when both
/// are empty).
fn token(key: &Key, claim: &str, read: &[&str], publish: &[&str], exp_in: i64) -> String {
    let mut claims = Vec::new();
    if !read.is_empty() || !publish.is_empty() {
        claims.push((claim.to_owned(), json!({"read": read, "publish": publish})));
    }
    let opts = SignOptions {
        kid: key.kid.clone(),
        exp_in_s: Some(exp_in),
        claims,
        ..SignOptions::default()
    };
    sign(key.private_pem.as_bytes(), &opts, now()).unwrap()
}

fn config_with(key: &Key, tenant_extra: &str, policies: &str) -> String {
    format!(
        "[[tenants]]\nid = \"t1\"\n{tenant_extra}\n[[keys]]\nkid = \"{kid}\"\ntenant = \"t1\"\n\
         public_key_pem = \"\"\"{pem}\"\"\"\n{policies}",
        kid = key.kid,
        pem = key.public_pem,
    )
}

fn assert_never_logged(d: &Daemon, secrets: &[&str]) {
    let text = d.log_text();
    for s in secrets {
        assert!(!text.contains(s), "{s:?} reached the log:\n{text}");
    }
    assert!(
        !text.contains("rtmp://"),
        "a push URL reached the log:\n{text}"
    );
}

#[tokio::test]
async fn a_policy_without_a_publish_rule_refuses_every_push_with_publish_deny() {
    let d = Daemon::start(
        "[[tenants]]\nid = \"t1\"\n[[policies]]\nobject = \"live\"\ntenant = \"t1\"\ntype = \"public\"\n",
    );
    let a = stream_push(&d, "live+a", "").await;
    assert_eq!((a.status, a.body.as_str()), (200, "false"));
    assert_eq!(reason(&d, "STREAM_PUSH", "live+a").await, "publish-deny");
    let a = push_rewrite(&d, "live+a", "").await;
    assert_eq!((a.status, a.body.as_str()), (200, ""), "empty refuses");
    assert_eq!(reason(&d, "PUSH_REWRITE", "live+a").await, "publish-deny");
    // The default policy, too, denies pushes: a stream nobody configured.
    let a = stream_push(&d, "other", "").await;
    assert_eq!(a.body, "false");
    assert_eq!(reason(&d, "STREAM_PUSH", "other").await, "publish-deny");
}

#[tokio::test]
async fn a_public_publish_rule_allows_and_push_rewrite_answers_the_stream_name() {
    let d = Daemon::start(
        "[[tenants]]\nid = \"t1\"\n[[policies]]\nobject = \"live\"\ntenant = \"t1\"\ntype = \"deny\"\n\
         publish = { type = \"public\" }\n",
    );
    assert_eq!(stream_push(&d, "live+p", "").await.body, "true");
    let a = push_rewrite(&d, "live+p", "?x=1").await;
    assert_eq!((a.status, a.body.as_str()), (200, "live+p"));
    assert_eq!(reason(&d, "PUSH_REWRITE", "live+p").await, "allowed");
}

#[tokio::test]
async fn stream_key_from_the_config_allows_the_key_and_refuses_others_without_logging_it() {
    let d = Daemon::start(&format!(
        "[[tenants]]\nid = \"t1\"\n[[policies]]\nobject = \"live\"\ntenant = \"t1\"\ntype = \"public\"\n\
         publish = {{ type = \"stream_key\", stream_key_sha256 = \"{}\" }}\n",
        key_hash(STREAM_KEY)
    ));
    let good = format!("?key={STREAM_KEY}");
    assert_eq!(stream_push(&d, "live+k1", &good).await.body, "true");
    assert_eq!(push_rewrite(&d, "live+k1", &good).await.body, "live+k1");

    assert_eq!(
        stream_push(&d, "live+k2", "?key=wrong-key").await.body,
        "false"
    );
    assert_eq!(
        reason(&d, "STREAM_PUSH", "live+k2").await,
        "stream-key-mismatch"
    );
    assert_eq!(push_rewrite(&d, "live+k2", "?key=wrong-key").await.body, "");
    assert_eq!(
        reason(&d, "PUSH_REWRITE", "live+k2").await,
        "stream-key-mismatch"
    );

    assert_eq!(stream_push(&d, "live+k3", "").await.body, "false");
    assert_eq!(
        reason(&d, "STREAM_PUSH", "live+k3").await,
        "stream-key-mismatch"
    );
    // A key one byte longer, or as another parameter's value, is not the key.
    let longer = format!("?key={STREAM_KEY}x");
    assert_eq!(stream_push(&d, "live+k4", &longer).await.body, "false");
    let elsewhere = format!("?jwt={STREAM_KEY}");
    assert_eq!(stream_push(&d, "live+k5", &elsewhere).await.body, "false");
    reason(&d, "STREAM_PUSH", "live+k5").await;
    assert_never_logged(&d, &[STREAM_KEY, "wrong-key"]);
}

#[tokio::test]
async fn publish_jwt_needs_the_stream_in_the_publish_list() {
    let key = Key::new("pk1");
    let d = Daemon::start(&config_with(
        &key,
        "",
        "[[policies]]\nobject = \"live\"\ntenant = \"t1\"\ntype = \"public\"\n\
         publish = { type = \"jwt\", allowed_kids = [\"pk1\"] }\n",
    ));
    let publisher = token(&key, "usher", &[], &["live+j1", "live+pre*"], 600);
    let q = format!("?jwt={publisher}");
    assert_eq!(stream_push(&d, "live+j1", &q).await.body, "true");
    assert_eq!(push_rewrite(&d, "live+j1", &q).await.body, "live+j1");
    assert_eq!(stream_push(&d, "live+prefixed", &q).await.body, "true");

    // Signed and valid, but for another stream, or a viewer-only token.
    assert_eq!(stream_push(&d, "live+j2", &q).await.body, "false");
    assert_eq!(
        reason(&d, "STREAM_PUSH", "live+j2").await,
        "jwt-permission-denied"
    );
    let viewer = token(&key, "usher", &["live+*"], &[], 600);
    let q = format!("?jwt={viewer}");
    assert_eq!(push_rewrite(&d, "live+j3", &q).await.body, "");
    assert_eq!(
        reason(&d, "PUSH_REWRITE", "live+j3").await,
        "jwt-permission-denied"
    );
    let bare = token(&key, "usher", &[], &[], 600);
    assert_eq!(
        stream_push(&d, "live+j4", &format!("?jwt={bare}"))
            .await
            .body,
        "false"
    );
    assert_eq!(
        reason(&d, "STREAM_PUSH", "live+j4").await,
        "jwt-permission-denied"
    );

    // The JWT reasons come first.
    assert_eq!(stream_push(&d, "live+j5", "").await.body, "false");
    assert_eq!(reason(&d, "STREAM_PUSH", "live+j5").await, "missing-token");
    let expired = token(&key, "usher", &[], &["live+j6"], -3600);
    assert_eq!(
        stream_push(&d, "live+j6", &format!("?jwt={expired}"))
            .await
            .body,
        "false"
    );
    assert_eq!(reason(&d, "STREAM_PUSH", "live+j6").await, "jwt-expired");
    let stranger = token(&Key::new("pk9"), "usher", &[], &["live+j7"], 600);
    assert_eq!(
        stream_push(&d, "live+j7", &format!("?jwt={stranger}"))
            .await
            .body,
        "false"
    );
    assert_eq!(
        reason(&d, "STREAM_PUSH", "live+j7").await,
        "jwt-unknown-kid"
    );
    assert_never_logged(&d, &[&publisher, &viewer]);
}

#[tokio::test]
async fn a_renamed_permission_claim_is_the_one_read() {
    let key = Key::new("pk1");
    let d = Daemon::start(&config_with(
        &key,
        "permission_claim = \"perms\"",
        "[[policies]]\nobject = \"live\"\ntenant = \"t1\"\ntype = \"public\"\n\
         publish = { type = \"jwt\" }\n",
    ));
    let renamed = token(&key, "perms", &[], &["live+*"], 600);
    assert_eq!(
        stream_push(&d, "live+r1", &format!("?jwt={renamed}"))
            .await
            .body,
        "true"
    );
    let default_name = token(&key, "usher", &[], &["live+*"], 600);
    let a = stream_push(&d, "live+r2", &format!("?jwt={default_name}")).await;
    assert_eq!(a.body, "false");
    assert_eq!(
        reason(&d, "STREAM_PUSH", "live+r2").await,
        "jwt-permission-denied"
    );
}

#[tokio::test]
async fn a_viewer_policy_requiring_permission_refuses_a_token_whose_read_list_lacks_the_stream() {
    let key = Key::new("vk1");
    let d = Daemon::start(&config_with(
        &key,
        "",
        "[[policies]]\nobject = \"live\"\ntenant = \"t1\"\ntype = \"jwt\"\nrequire_permission = true\n\
         [[policies]]\nobject = \"open\"\ntenant = \"t1\"\ntype = \"jwt\"\n",
    ));
    let url = |t: &str| format!("http://127.0.0.1:8080/hls/x/index.m3u8?jwt={t}");
    let reader = token(&key, "usher", &["live+v*"], &[], 600);
    let s = session_id("reader");
    let a = user_new(
        d.trigger,
        &user_new_body("live+v1", "127.0.0.1", "c", &url(&reader), &s, true),
    )
    .await;
    assert_eq!(a.body, "true");

    let publisher = token(&key, "usher", &[], &["live+*"], 600);
    let s = session_id("publisher");
    let a = user_new(
        d.trigger,
        &user_new_body("live+v1", "127.0.0.1", "c", &url(&publisher), &s, true),
    )
    .await;
    assert_eq!(a.body, "false", "publish does not imply read");
    d.wait_for_log("jwt-permission-denied", |l| {
        l["message"] == "denied" && l["session"] == s && l["reason"] == "jwt-permission-denied"
    })
    .await;
    let other = session_id("other-stream");
    let a = user_new(
        d.trigger,
        &user_new_body("live+w1", "127.0.0.1", "c", &url(&reader), &other, true),
    )
    .await;
    assert_eq!(a.body, "false", "read covers live+v*, not live+w1");

    // Without require_permission a token with no claim still plays.
    let bare = token(&key, "usher", &[], &[], 600);
    let s = session_id("bare");
    let a = user_new(
        d.trigger,
        &user_new_body("open", "127.0.0.1", "c", &url(&bare), &s, true),
    )
    .await;
    assert_eq!(a.body, "true");
}

#[tokio::test]
async fn stream_key_set_over_the_api_is_stored_hashed_never_shown_and_kept_on_update() {
    let d = Daemon::start("");
    let api = Api::new(&d);
    let (status, shown) = api
        .call(
            "PUT",
            "/v1/policies/live",
            Some(json!({"tenant": "t1", "type": "public",
                        "publish": {"type": "stream_key", "stream_key": STREAM_KEY}})),
        )
        .await;
    assert_eq!(status, 201, "{shown}");
    assert_eq!(
        shown["publish"],
        json!({"type": "stream_key", "stream_key": "********"})
    );
    let (_, got) = api.call("GET", "/v1/policies/live", None).await;
    assert!(
        !got.to_string().contains(STREAM_KEY) && !got.to_string().contains(&key_hash(STREAM_KEY))
    );

    let good = format!("?key={STREAM_KEY}");
    assert_eq!(stream_push(&d, "live+a1", &good).await.body, "true");
    assert_eq!(stream_push(&d, "live+a2", "?key=nope").await.body, "false");
    assert_eq!(
        reason(&d, "STREAM_PUSH", "live+a2").await,
        "stream-key-mismatch"
    );

    // An update that omits the key keeps it (it is never shown back, so it cannot be resent).
    let (status, _) = api
        .call(
            "PUT",
            "/v1/policies/live",
            Some(json!({"tenant": "t1", "type": "deny", "publish": {"type": "stream_key"}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(push_rewrite(&d, "live+a3", &good).await.body, "live+a3");

    // Nothing that stores state holds the key itself.
    let data = d.dir.join("data");
    for entry in std::fs::read_dir(&data).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(
            !bytes
                .windows(STREAM_KEY.len())
                .any(|w| w == STREAM_KEY.as_bytes()),
            "the state database holds the stream key"
        );
    }
    assert_never_logged(&d, &[STREAM_KEY]);
}

#[tokio::test]
async fn publish_rules_over_the_api_are_checked_like_viewer_policies() {
    let d = Daemon::start("");
    let api = Api::new(&d);
    for (body, code) in [
        (json!({"type": "stream_key"}), 422),
        (json!({"type": "stream_key", "stream_key": ""}), 422),
        (json!({"type": "jwt", "url": "https://x.example"}), 422),
        (json!({"type": "open"}), 400),
        (json!({"type": "public", "colour": 1}), 400),
        (
            json!({"type": "webhook", "url": "https://127.0.0.1/p", "secret": "s"}),
            422,
        ),
    ] {
        let (status, answer) = api
            .call(
                "PUT",
                "/v1/policies/live",
                Some(json!({"tenant": "t1", "type": "public", "publish": body})),
            )
            .await;
        assert_eq!(status, code, "{body} → {answer}");
        assert!(!answer.to_string().contains("\"s\""), "{answer}");
    }
}

#[tokio::test]
async fn publish_jwt_set_over_the_api_and_dry_runs_with_action_publish() {
    let key = Key::new("ak1");
    let d = Daemon::start("");
    let api = Api::new(&d);
    assert_eq!(
        api.call("PUT", "/v1/keys/ak1", Some(key.body("t1")))
            .await
            .0,
        201
    );
    let (status, _) = api
        .call(
            "PUT",
            "/v1/policies/live",
            Some(
                json!({"tenant": "t1", "type": "jwt", "require_permission": true,
                        "publish": {"type": "jwt", "allowed_kids": ["ak1"]}}),
            ),
        )
        .await;
    assert_eq!(status, 201);
    let publisher = token(&key, "usher", &[], &["live+d1"], 600);
    assert_eq!(
        stream_push(&d, "live+d1", &format!("?jwt={publisher}"))
            .await
            .body,
        "true"
    );
    let viewer = token(&key, "usher", &["live+d1"], &[], 600);
    assert_eq!(
        stream_push(&d, "live+d2", &format!("?jwt={viewer}"))
            .await
            .body,
        "false"
    );
    assert_eq!(
        reason(&d, "STREAM_PUSH", "live+d2").await,
        "jwt-permission-denied"
    );

    let test = |t: &str, action: Option<&str>| {
        let mut body = json!({"stream": "live+d1", "viewer_token": t});
        if let Some(a) = action {
            body["action"] = a.into();
        }
        body
    };
    let (_, d1) = api
        .call("POST", "/v1/test", Some(test(&publisher, Some("publish"))))
        .await;
    assert_eq!(
        (&d1["allowed"], &d1["reason"], &d1["policy_type"]),
        (&json!(true), &json!("allowed"), &json!("jwt"))
    );
    let (_, d2) = api
        .call("POST", "/v1/test", Some(test(&viewer, Some("publish"))))
        .await;
    assert_eq!(d2["reason"], "jwt-permission-denied");
    let (_, d3) = api
        .call("POST", "/v1/test", Some(test(&publisher, None)))
        .await;
    assert_eq!(
        d3["reason"], "jwt-permission-denied",
        "a publisher's token does not read"
    );
    let (_, d4) = api
        .call("POST", "/v1/test", Some(test(&viewer, Some("play"))))
        .await;
    assert_eq!(d4["allowed"], true);
    let (status, _) = api
        .call("POST", "/v1/test", Some(test(&viewer, Some("watch"))))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn publish_webhook_is_called_with_action_publish_over_real_https() {
    let server = HttpsServer::start("127.0.0.2".parse().unwrap()).await;
    let url = server.url("127.0.0.2", "/publish");
    let config = format!(
        "[outbound]\nallow_cidrs = [\"127.0.0.2/32\"]\nca_file = \"{ca}\"\n\
         [[tenants]]\nid = \"t1\"\n[[policies]]\nobject = \"live\"\ntenant = \"t1\"\ntype = \"public\"\n\
         publish = {{ type = \"webhook\", url = \"{url}\", secret = \"hook-secret\", timeout_ms = 5000 }}\n",
        ca = server.ca_file(),
    );
    let d = tokio::task::spawn_blocking(move || Daemon::start(&config))
        .await
        .unwrap();
    server.set_behaviour(Behaviour::Status(200));
    assert_eq!(stream_push(&d, "live+w1", "?key=abc").await.body, "true");
    let requests = server.requests();
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["action"], "publish");
    assert_eq!(body["streamName"], "live+w1");
    assert_eq!(body["connector"], "RTMP");
    assert_eq!(
        body["requestUrl"],
        "rtmp://127.0.0.1:1935/live/live+w1?key=abc"
    );

    server.set_behaviour(Behaviour::Status(403));
    assert_eq!(push_rewrite(&d, "live+w2", "").await.body, "");
    assert_eq!(
        reason(&d, "PUSH_REWRITE", "live+w2").await,
        "webhook-deny-403"
    );
    server.set_behaviour(Behaviour::Status(500));
    assert_eq!(stream_push(&d, "live+w3", "").await.body, "false");
    assert_eq!(
        reason(&d, "STREAM_PUSH", "live+w3").await,
        "webhook-error-status"
    );
    assert_eq!(
        server.requests().len(),
        3,
        "nothing cached: every push asks"
    );
    assert_never_logged(&d, &["hook-secret", "key=abc"]);
}

#[tokio::test]
async fn publish_webhook_set_over_the_api_answers_for_viewers_with_action_play() {
    let server = HttpsServer::start("127.0.0.2".parse().unwrap()).await;
    let url = server.url("127.0.0.2", "/hook");
    let config = format!(
        "[outbound]\nallow_cidrs = [\"127.0.0.2/32\"]\nca_file = \"{ca}\"\n",
        ca = server.ca_file()
    );
    let d = tokio::task::spawn_blocking(move || Daemon::start(&config))
        .await
        .unwrap();
    let api = Api::new(&d);
    let hook = json!({"type": "webhook", "url": url, "secret": "s1"});
    let (status, shown) = api
        .call(
            "PUT",
            "/v1/policies/live",
            Some(json!({"tenant": "t1", "type": "webhook", "url": url, "secret": "s1", "publish": hook})),
        )
        .await;
    assert_eq!(status, 201, "{shown}");
    assert_eq!(shown["publish"]["secret"], "********");
    server.set_behaviour(Behaviour::Status(200));
    assert_eq!(stream_push(&d, "live+h1", "").await.body, "true");
    let s = session_id("h");
    let a = user_new(
        d.trigger,
        &user_new_body("live+h1", "127.0.0.1", "c", "http://e/x", &s, true),
    )
    .await;
    assert_eq!(a.body, "true");
    let actions: Vec<Value> = server
        .requests()
        .iter()
        .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap()["action"].clone())
        .collect();
    assert_eq!(actions, [json!("publish"), json!("play")]);
    server.set_behaviour(Behaviour::Status(403));
    assert_eq!(stream_push(&d, "live+h2", "").await.body, "false");
    assert_eq!(
        reason(&d, "STREAM_PUSH", "live+h2").await,
        "webhook-deny-403"
    );
}

#[tokio::test]
async fn malformed_or_oversized_push_bodies_refuse_the_push() {
    let d = Daemon::start(
        "[[tenants]]\nid = \"t1\"\n[[policies]]\nobject = \"live\"\ntenant = \"t1\"\ntype = \"public\"\n\
         publish = { type = \"public\" }\n",
    );
    for (trigger, refused) in [("STREAM_PUSH", "false"), ("PUSH_REWRITE", "")] {
        for body in [
            b"live+x\n127.0.0.1".to_vec(),
            b"\n127.0.0.1\nRTMP\nrtmp://h/live/x".to_vec(),
            b"live+x\n\x01\nRTMP\nrtmp://h/live/x".to_vec(),
            vec![b'a'; 17 * 1024],
        ] {
            let a = post_trigger(d.trigger, trigger, &uuid(), 1, &body).await;
            assert_eq!((a.status, a.body.as_str()), (200, refused), "{trigger}");
        }
    }
    d.wait_for_log("bad-trigger", |l| {
        l["reason"] == "bad-trigger" && l["trigger"] == "PUSH_REWRITE"
    })
    .await;
}

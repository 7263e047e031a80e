//! The control API (SPEC §5, §6) driven over HTTP against the real daemon: keys and policies take
//! effect on `USER_NEW`, survive a restart, invalidate exactly the streams they touch, and every
//! refusal has its status and stable code.
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

const URL: &str = "http://127.0.0.1:8080/hls/vod/index.m3u8";
/// A lab allowance so a webhook URL on 127.0.0.2 passes the SSRF guard without DNS.
const LAB_OUTBOUND: &str = "[outbound]\nallow_cidrs = [\"127.0.0.2/32\"]\n";

async fn watch(d: &Daemon, stream: &str, token: &str, session: &str) -> String {
    let url = format!("{URL}?jwt={token}");
    let body = user_new_body(stream, "127.0.0.1", token, &url, session, true);
    user_new(d.trigger, &body).await.body
}

#[tokio::test]
async fn revoked_key_denies_the_next_user_new_with_jwt_unknown_kid() {
    let d = Daemon::start("");
    let api = Api::new(&d);
    let key = Key::new("k1");
    assert_eq!(
        api.call("PUT", "/v1/keys/k1", Some(key.body("t1"))).await.0,
        201
    );
    // A second active key, so the tenant is not left without keys (that is `no-active-keys`).
    let other = Key::new("k2");
    assert_eq!(
        api.call("PUT", "/v1/keys/k2", Some(other.body("t1")))
            .await
            .0,
        201
    );
    let (status, policy) = api
        .call(
            "PUT",
            "/v1/policies/vod",
            Some(json!({"tenant": "t1", "type": "jwt"})),
        )
        .await;
    assert_eq!(status, 201, "{policy}");
    let token = key.token();
    let s = session_id("revoke");
    assert_eq!(watch(&d, "vod", &token, &s).await, "true");
    assert_eq!(watch(&d, "vod", &token, &s).await, "true");

    let (status, revoked) = api.call("POST", "/v1/keys/k1/revoke", None).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["streams"], json!(["vod"]));
    assert_eq!(revoked["dropped"], 1);
    assert_eq!(revoked["mist_acknowledged"], false);

    assert_eq!(watch(&d, "vod", &token, &s).await, "false");
    d.wait_for_log("denial", |l| {
        l["message"] == "denied" && l["session"] == s && l["reason"] == "jwt-unknown-kid"
    })
    .await;
    d.wait_for_log("three decisions", |_| d.lookups(&s).len() == 3)
        .await;
    assert_eq!(d.lookups(&s), ["evaluated", "hit", "evaluated"]);

    // A revoked kid stays revoked.
    let (status, err) = api.call("PUT", "/v1/keys/k1", Some(key.body("t1"))).await;
    assert_eq!((status, err["error"].as_str()), (409, Some("key-revoked")));
}

#[tokio::test]
async fn keys_and_policies_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let config = common::daemon::base_config(&tmp.path().join("data"));
    let key = Key::new("k1");
    {
        let d = Daemon::start_with(tmp.path(), &config).unwrap();
        let api = Api::new(&d);
        assert_eq!(
            api.call("PUT", "/v1/keys/k1", Some(key.body("t1"))).await.0,
            201
        );
        let body = json!({"tenant": "t1", "type": "jwt", "object_claim": "sub"});
        assert_eq!(api.call("PUT", "/v1/policies/vod", Some(body)).await.0, 201);
        assert!(d.stop().success());
    }
    let d = Daemon::start_with(tmp.path(), &config).unwrap();
    let api = Api::new(&d);
    let (_, keys) = api.call("GET", "/v1/keys", None).await;
    assert_eq!(keys["keys"][0]["kid"], "k1");
    assert_eq!(keys["keys"][0]["status"], "active");
    assert_eq!(keys["keys"][0]["source"], "api");
    assert_eq!(keys["keys"][0]["jwk"]["kty"], "EC");
    let (status, policy) = api.call("GET", "/v1/policies/vod", None).await;
    assert_eq!((status, &policy["object_claim"]), (200, &json!("sub")));
    assert_eq!(
        watch(&d, "vod", &key.token(), &session_id("r")).await,
        "true"
    );
}

#[tokio::test]
async fn missing_or_wrong_bearer_token_is_401_and_healthz_needs_none() {
    let d = Daemon::start("");
    let api = Api::new(&d);
    for token in [None, Some("wrong-token-of-some-length"), Some("")] {
        let (status, err) = api.call_as(token, "GET", "/v1/keys", None).await;
        assert_eq!((status, err["error"].as_str()), (401, Some("unauthorized")));
    }
    let resp = api
        .client
        .get(format!("{}/healthz", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(api.call("GET", "/v1/nothing", None).await.0, 404);
}

#[tokio::test]
async fn bad_bodies_are_400_naming_the_field() {
    let d = Daemon::start("");
    let api = Api::new(&d);
    let (status, err) = api
        .call(
            "PUT",
            "/v1/policies/vod",
            Some(json!({"tenant": "t1", "type": "public", "colour": 1})),
        )
        .await;
    assert_eq!((status, err["error"].as_str()), (400, Some("bad-body")));
    assert!(err["message"].as_str().unwrap().contains("colour"), "{err}");
    let (status, err) = api
        .call(
            "PUT",
            "/v1/keys/k1",
            Some(json!({"tenant": "t1", "pem": "x"})),
        )
        .await;
    assert_eq!(status, 400);
    assert!(err["message"].as_str().unwrap().contains("pem"), "{err}");
    let (status, err) = api
        .call("PUT", "/v1/policies/vod", Some(json!({"type": "public"})))
        .await;
    assert_eq!(status, 400);
    assert!(err["message"].as_str().unwrap().contains("tenant"), "{err}");
    assert_eq!(api.raw("POST", "/v1/test", "not json").await.0, 400);
    // Bodies are bounded at 64 KiB.
    let huge = format!("{{\"streams\": [\"{}\"]}}", "a".repeat(64 * 1024));
    let (status, err) = api.raw("POST", "/v1/invalidate", &huge).await;
    assert_eq!((status, err["error"].as_str()), (400, Some("bad-body")));
    assert!(err["message"].as_str().unwrap().contains("64 KiB"), "{err}");
    let (status, err) = api
        .call("PUT", "/v1/keys/bad%20kid", Some(json!({"tenant": "t1"})))
        .await;
    assert_eq!((status, err["error"].as_str()), (400, Some("bad-name")));
    let (status, err) = api
        .call(
            "PUT",
            "/v1/keys/k1",
            Some(json!({"tenant": "t1", "public_key_pem": "nope"})),
        )
        .await;
    assert_eq!((status, err["error"].as_str()), (422, Some("invalid-key")));
}

#[tokio::test]
async fn webhook_url_to_a_private_literal_is_422() {
    let d = Daemon::start("");
    let api = Api::new(&d);
    let body = json!({"tenant": "t1", "type": "webhook", "url": "https://10.0.0.1/hook", "secret": "s3cret"});
    let (status, err) = api.call("PUT", "/v1/policies/vod", Some(body)).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (422, Some("url-not-allowed")),
        "{err}"
    );
    assert!(err["message"].as_str().unwrap().contains("10.0.0.1"));
    assert_eq!(api.call("GET", "/v1/policies/vod", None).await.0, 404);
}

#[tokio::test]
async fn webhook_secret_is_masked_and_kept_when_omitted_on_update() {
    let d = Daemon::start(LAB_OUTBOUND);
    let api = Api::new(&d);
    let url = "https://127.0.0.2/hook";
    let body = json!({"tenant": "t1", "type": "webhook", "url": url, "secret": "s3cret-value"});
    let (status, set) = api.call("PUT", "/v1/policies/vod", Some(body)).await;
    assert_eq!((status, &set["secret"]), (201, &json!("********")), "{set}");
    let (_, got) = api.call("GET", "/v1/policies/vod", None).await;
    assert_eq!(got["secret"], "********");
    assert!(!got.to_string().contains("s3cret-value"));

    let update = json!({"tenant": "t1", "type": "webhook", "url": url, "timeout_ms": 500});
    let (status, updated) = api
        .call("PUT", "/v1/policies/vod", Some(update.clone()))
        .await;
    assert_eq!(
        (status, &updated["timeout_ms"]),
        (200, &json!(500)),
        "{updated}"
    );
    // Without an old secret to keep, the same body is refused.
    let (status, err) = api.call("PUT", "/v1/policies/other", Some(update)).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (422, Some("invalid-policy"))
    );
    assert!(!d.log_text().contains("s3cret-value"));
}

#[tokio::test]
async fn config_defined_policy_and_key_are_read_only() {
    let key = Key::new("cfg");
    let extra = format!(
        "[[tenants]]\nid = \"t1\"\n[[keys]]\nkid = \"cfg\"\ntenant = \"t1\"\npublic_key_pem = \"\"\"{}\"\"\"\n\
         [[policies]]\nobject = \"vod\"\ntenant = \"t1\"\ntype = \"public\"\n",
        key.public_pem
    );
    let d = Daemon::start(&extra);
    let api = Api::new(&d);
    let (status, err) = api
        .call(
            "PUT",
            "/v1/policies/vod",
            Some(json!({"tenant": "t1", "type": "deny"})),
        )
        .await;
    assert_eq!((status, err["error"].as_str()), (409, Some("read-only")));
    assert_eq!(api.call("DELETE", "/v1/policies/vod", None).await.0, 409);
    assert_eq!(
        api.call("PUT", "/v1/keys/cfg", Some(key.body("t1")))
            .await
            .0,
        409
    );
    assert_eq!(api.call("POST", "/v1/keys/cfg/revoke", None).await.0, 409);
    let (_, got) = api.call("GET", "/v1/policies/vod", None).await;
    assert_eq!(got["source"], "config");
}

#[tokio::test]
async fn eleventh_active_key_is_422_and_a_kid_of_another_tenant_is_409() {
    let d = Daemon::start("");
    let api = Api::new(&d);
    for i in 0..10 {
        let (status, body) = api
            .call(
                "PUT",
                &format!("/v1/keys/k{i}"),
                Some(Key::new("x").body("t1")),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, err) = api
        .call("PUT", "/v1/keys/k10", Some(Key::new("x").body("t1")))
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (422, Some("too-many-keys"))
    );
    let (status, err) = api
        .call("PUT", "/v1/keys/k0", Some(Key::new("x").body("t2")))
        .await;
    assert_eq!((status, err["error"].as_str()), (409, Some("kid-taken")));
    assert_eq!(api.call("POST", "/v1/keys/k0/revoke", None).await.0, 200);
    assert_eq!(
        api.call("PUT", "/v1/keys/k10", Some(Key::new("x").body("t1")))
            .await
            .0,
        201
    );
    assert_eq!(api.call("POST", "/v1/keys/none/revoke", None).await.0, 404);
}

#[tokio::test]
async fn a_policy_set_on_one_stream_leaves_other_streams_cached() {
    let d = Daemon::start("");
    let api = Api::new(&d);
    for stream in ["live+a", "live+b"] {
        let body = json!({"tenant": "t1", "type": "public"});
        assert_eq!(
            api.call("PUT", &format!("/v1/policies/{stream}"), Some(body))
                .await
                .0,
            201
        );
    }
    let (sa, sb) = (session_id("a"), session_id("b"));
    assert_eq!(watch(&d, "live+a", "x", &sa).await, "true");
    assert_eq!(watch(&d, "live+b", "x", &sb).await, "true");
    let (status, set) = api
        .call(
            "PUT",
            "/v1/policies/live+a",
            Some(json!({"tenant": "t1", "type": "deny"})),
        )
        .await;
    assert_eq!(
        (status, &set["streams"], &set["dropped"]),
        (200, &json!(["live+a"]), &json!(1))
    );
    assert_eq!(watch(&d, "live+b", "x", &sb).await, "true");
    assert_eq!(watch(&d, "live+a", "x", &sa).await, "false");
    d.wait_for_log("four decisions", |_| {
        d.lookups(&sa).len() == 2 && d.lookups(&sb).len() == 2
    })
    .await;
    assert_eq!(d.lookups(&sb), ["evaluated", "hit"]);
    assert_eq!(d.lookups(&sa), ["evaluated", "evaluated"]);

    let (status, deleted) = api.call("DELETE", "/v1/policies/live+a", None).await;
    assert_eq!((status, &deleted["deleted"]), (200, &json!(true)));
    assert_eq!(api.call("GET", "/v1/policies/live+a", None).await.0, 404);
}

#[tokio::test]
async fn invalidate_by_streams_objects_and_tenant_reports_dropped_counts() {
    let d = Daemon::start("");
    let api = Api::new(&d);
    let body = json!({"tenant": "t1", "type": "public"});
    assert_eq!(
        api.call("PUT", "/v1/policies/live", Some(body)).await.0,
        201
    );
    let fill = || async {
        for (i, stream) in ["live+a", "live+b", "live+a"].iter().enumerate() {
            let s = session_id(&format!("fill{i}"));
            assert_eq!(watch(&d, stream, "x", &s).await, "true");
        }
    };
    fill().await;
    let (status, done) = api
        .call(
            "POST",
            "/v1/invalidate",
            Some(json!({"streams": ["live+a"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&done["dropped"], &done["streams"]),
        (&json!(2), &json!(["live+a"]))
    );
    let (_, done) = api
        .call("POST", "/v1/invalidate", Some(json!({"objects": ["b"]})))
        .await;
    assert_eq!(
        (&done["dropped"], &done["streams"]),
        (&json!(1), &json!(["b", "live+b"]))
    );
    fill().await;
    let (_, done) = api
        .call("POST", "/v1/invalidate", Some(json!({"tenant": "t1"})))
        .await;
    assert_eq!(
        (&done["dropped"], &done["streams"]),
        (&json!(3), &json!(["live+a", "live+b"]))
    );
    let (_, done) = api
        .call("POST", "/v1/invalidate", Some(json!({"tenant": "t1"})))
        .await;
    assert_eq!(done["dropped"], 0);
    let (status, _) = api.call("POST", "/v1/invalidate", Some(json!({}))).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn dry_run_reports_claims_skips_webhooks_and_touches_no_cache() {
    let d = Daemon::start(LAB_OUTBOUND);
    let api = Api::new(&d);
    let key = Key::new("k1");
    assert_eq!(
        api.call("PUT", "/v1/keys/k1", Some(key.body("t1"))).await.0,
        201
    );
    let jwt = json!({"tenant": "t1", "type": "jwt", "object_claim": "sub"});
    assert_eq!(api.call("PUT", "/v1/policies/vod", Some(jwt)).await.0, 201);
    let live = json!({"tenant": "t1", "type": "jwt", "object_claim": "sub"});
    assert_eq!(
        api.call("PUT", "/v1/policies/live", Some(live)).await.0,
        201
    );
    let public = json!({"tenant": "t1", "type": "public"});
    assert_eq!(
        api.call("PUT", "/v1/policies/open", Some(public)).await.0,
        201
    );
    let hook = json!({"tenant": "t1", "type": "webhook", "url": "https://127.0.0.2/hook", "secret": "s3cret"});
    assert_eq!(
        api.call("PUT", "/v1/policies/hooked", Some(hook)).await.0,
        201
    );

    let token = key.token();
    let (status, ok) = api
        .call(
            "POST",
            "/v1/test",
            Some(json!({"stream": "vod", "viewer_token": token})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&ok["allowed"], &ok["reason"], &ok["kid"]),
        (&json!(true), &json!("allowed"), &json!("k1"))
    );
    assert_eq!(ok["claims"]["sub"], "vod");

    let (_, denied) = api
        .call(
            "POST",
            "/v1/test",
            Some(json!({"stream": "live+other", "viewer_token": token})),
        )
        .await;
    assert_eq!(denied["reason"], "jwt-claim-mismatch", "{denied}");
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["claims"]["sub"], "vod");

    let (_, open) = api
        .call("POST", "/v1/test", Some(json!({"stream": "open"})))
        .await;
    assert_eq!(
        (&open["allowed"], &open["policy_type"]),
        (&json!(true), &json!("public"))
    );

    let (_, skipped) = api
        .call("POST", "/v1/test", Some(json!({"stream": "hooked"})))
        .await;
    assert_eq!(skipped["reason"], "webhook-test-skipped");
    assert_eq!(skipped["webhook_url"], "https://127.0.0.2/hook");

    assert!(!d.logs().iter().any(|l| l["message"] == "decided"));
}

/// Issue #30 (found by Schemathesis): a method a path does not answer is 405 with the `Allow`
/// header RFC 9110 asks for — for `/metrics` and `/healthz` too, and before the path's names or
/// the token are looked at (a `TRACE` of a revoke with a bad kid was a 400, of `/metrics` a 404).
#[tokio::test]
async fn a_method_a_path_does_not_answer_is_405_with_allow() {
    let d = tokio::task::spawn_blocking(|| Daemon::start(""))
        .await
        .unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{}", d.control.unwrap());
    for (method, path, allow) in [
        ("TRACE", "/v1/keys", "GET"),
        ("DELETE", "/metrics", "GET"),
        ("POST", "/healthz", "GET"),
        ("PATCH", "/v1/policies/live", "GET, PUT, DELETE"),
        ("GET", "/v1/keys/bad%20kid/revoke", "POST"),
        ("PUT", "/v1/invalidate", "POST"),
    ] {
        let resp = client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{base}{path}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
        assert_eq!(
            resp.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert_eq!(body["error"], "method-not-allowed");
    }
    let resp = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
}

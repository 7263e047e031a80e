//! Webhook policies through the real daemon: a real HTTPS endpoint and a lab DNS server on
//! loopback, 127.0.0.2 the only address made dialable (`allow_cidrs`), 127.0.0.1 refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::daemon::Daemon;
use common::dns::DnsServer;
use common::https::{Behaviour, HttpsServer};
use common::mist::{post_trigger, session_id, user_new, user_new_body};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "customer-hmac-secret";
const HOST: &str = "hook.test";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Lab {
    dns: DnsServer,
    server: HttpsServer,
    daemon: Daemon,
}

async fn lab(timeout_ms: u64) -> Lab {
    let dns = DnsServer::start().await;
    let server = HttpsServer::start(ip("127.0.0.2")).await;
    dns.set(HOST, &[ip("127.0.0.2")]);
    let config = format!(
        r#"
[outbound]
allow_cidrs = ["127.0.0.2/32"]
ca_file = "{ca}"
nameservers = ["{ns}"]
[[tenants]]
id = "t1"
[[policies]]
object = "live"
tenant = "t1"
type = "webhook"
url = "{url}"
secret = "{SECRET}"
timeout_ms = {timeout_ms}
"#,
        ca = server.ca_file(),
        ns = dns.addr(),
        url = server.url(HOST, "/authorize"),
    );
    let daemon = tokio::task::spawn_blocking(move || Daemon::start(&config))
        .await
        .unwrap();
    Lab {
        dns,
        server,
        daemon,
    }
}

const URL: &str = "http://127.0.0.1:8080/hls/live+abc/index.m3u8?jwt=eyJhbGciOiJFUzI1NiJ9.e30.c2ln";

async fn ask(l: &Lab, seed: &str) -> (String, String) {
    let session = session_id(seed);
    let a = user_new(
        l.daemon.trigger,
        &user_new_body("live+abc", "203.0.113.7", "chk", URL, &session, true),
    )
    .await;
    if a.body == "true" {
        return (a.body, "allowed".into());
    }
    l.daemon
        .wait_for_log("denial", |j| {
            j["message"] == "denied" && j["session"] == session.as_str()
        })
        .await;
    let reason = l
        .daemon
        .logs()
        .into_iter()
        .find(|j| j["message"] == "denied" && j["session"] == session.as_str())
        .map(|j| j["reason"].as_str().unwrap_or("").to_string())
        .unwrap_or_default();
    (a.body, reason)
}

#[tokio::test]
async fn webhook_200_allows_with_a_signed_body_of_the_spec_fields() {
    let l = lab(3000).await;
    assert_eq!(ask(&l, "a").await.0, "true");
    let req = &l.server.requests()[0];
    assert_eq!(req.method, "POST");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&req.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(req.header("x-frameworks-signature"), expected);
    assert_eq!(req.header("content-type"), "application/json");
    assert!(req.header("user-agent").starts_with("usher/"));
    let body: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(body["streamName"], "live+abc");
    assert_eq!(body["sessionId"], session_id("a"));
    assert_eq!(body["viewerIp"], "203.0.113.7");
    assert_eq!(body["requestUrl"], URL);
    assert_eq!(body["viewerToken"], "eyJhbGciOiJFUzI1NiJ9.e30.c2ln");
    assert_eq!(body["connector"], "HLS");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn webhook_403_denies_with_webhook_deny_403() {
    let l = lab(3000).await;
    l.server.set_behaviour(Behaviour::Status(403));
    assert_eq!(
        ask(&l, "b").await,
        ("false".into(), "webhook-deny-403".into())
    );
    l.server.set_behaviour(Behaviour::Status(500));
    assert_eq!(ask(&l, "c").await.1, "webhook-error-status");
}

#[tokio::test]
async fn hung_webhook_denies_with_webhook_timeout() {
    let l = lab(500).await;
    l.server.set_behaviour(Behaviour::Hang);
    assert_eq!(ask(&l, "d").await.1, "webhook-timeout");
}

#[tokio::test]
async fn mistserver_retry_with_the_same_uuid_joins_the_pending_webhook_call() {
    let l = lab(5000).await;
    l.server.set_behaviour(Behaviour::Delayed(1500, 200));
    let session = session_id("retry");
    let body = user_new_body("live+abc", "203.0.113.7", "chk", URL, &session, true);
    let uuid = "6b2c9a3e-0000-4000-8000-000000000001";
    let first = {
        let (addr, body) = (l.daemon.trigger, body.clone());
        tokio::spawn(async move { post_trigger(addr, "USER_NEW", uuid, 1, body.as_bytes()).await })
    };
    l.server.wait_for_requests(1).await;
    let retry = post_trigger(l.daemon.trigger, "USER_NEW", uuid, 2, body.as_bytes()).await;
    assert_eq!(retry.body, "true");
    assert_eq!(first.await.unwrap().body, "true");
    assert_eq!(l.server.requests().len(), 1, "exactly one webhook call");
    l.daemon
        .wait_for_log("the joined decision", |j| {
            j["message"] == "decided" && j["lookup"] == "joined"
        })
        .await;
}

#[tokio::test]
async fn dns_rebinding_to_a_refused_address_is_blocked_without_connecting() {
    let l = lab(3000).await;
    // Judged allowed when the policy was loaded; now the name points at a refused address.
    l.dns.set(HOST, &[ip("127.0.0.1")]);
    let (answer, reason) = ask(&l, "e").await;
    assert_eq!(
        (answer.as_str(), reason.as_str()),
        ("false", "webhook-blocked-ssrf")
    );
    assert_eq!(l.server.connections(), 0);
    // Back to the allowed address: the next new session is called again.
    l.dns.set(HOST, &[ip("127.0.0.2")]);
    assert_eq!(ask(&l, "f").await.0, "true");
    tokio::time::timeout(Duration::from_secs(30), l.server.wait_for_requests(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_policy_whose_name_resolves_to_a_refused_address_stops_the_start() {
    let dns = DnsServer::start().await;
    dns.set("evil.test", &[ip("127.0.0.1")]);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n[outbound]\nallow_cidrs = [\"127.0.0.2/32\"]\nnameservers = [\"{}\"]\n[[tenants]]\nid = \"t1\"\n\
         [[policies]]\nobject = \"live\"\ntenant = \"t1\"\ntype = \"webhook\"\nurl = \"https://evil.test/hook\"\nsecret = \"s\"\n",
        common::daemon::base_config(&dir.path().join("data")),
        dns.addr()
    );
    let path = dir.path().to_path_buf();
    let started =
        tokio::task::spawn_blocking(move || Daemon::start_with(&path, &config).map(|_| ()))
            .await
            .unwrap();
    let err = started.expect_err("the daemon refuses the config");
    assert!(err.contains("not a globally routable"), "{err}");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_decision_finish_then_exits_zero() {
    let l = lab(5000).await;
    l.server.set_behaviour(Behaviour::Delayed(1000, 200));
    let body = user_new_body(
        "live+abc",
        "203.0.113.7",
        "chk",
        URL,
        &session_id("drain"),
        true,
    );
    let addr = l.daemon.trigger;
    let pending = tokio::spawn(async move { user_new(addr, &body).await });
    l.server.wait_for_requests(1).await;
    let Lab {
        daemon,
        server,
        dns,
    } = l;
    let status = tokio::task::spawn_blocking(move || daemon.stop())
        .await
        .unwrap();
    assert_eq!(
        pending.await.unwrap().body,
        "true",
        "the in-flight request was answered"
    );
    assert!(status.success(), "{status:?}");
    drop((server, dns));
}

/// Regression: a non-200 reply body was copied into `detail`, so an endpoint echoing its request
/// (`bad token <viewerToken>`) put viewer tokens in usher's log and in the `/v1/test` answer.
#[tokio::test]
async fn webhook_reply_body_never_reaches_the_log_or_the_dry_run() {
    const VIEWER_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJlY2hvIjoibWUifQ.dmlld2VyLXNlY3JldA";
    let l = lab(3000).await;
    l.server.set_behaviour(Behaviour::Echo(401));
    let session = session_id("echo");
    let url = format!("http://127.0.0.1:8080/hls/live+abc/index.m3u8?jwt={VIEWER_TOKEN}");
    let body = user_new_body(
        "live+abc",
        "203.0.113.7",
        VIEWER_TOKEN,
        &url,
        &session,
        true,
    );
    assert_eq!(user_new(l.daemon.trigger, &body).await.body, "false");
    l.daemon
        .wait_for_log("the denial", |j| {
            j["message"] == "denied" && j["session"] == session.as_str()
        })
        .await;
    let denial = l
        .daemon
        .logs()
        .into_iter()
        .find(|j| j["message"] == "denied" && j["session"] == session.as_str())
        .unwrap();
    assert_eq!(denial["reason"], "webhook-error-status");
    assert!(
        denial["detail"].as_str().unwrap().contains("401"),
        "{denial}"
    );

    let api = common::api::Api::new(&l.daemon);
    let (status, answer) = api
        .call(
            "POST",
            "/v1/test",
            Some(serde_json::json!({
                "stream": "live+abc", "viewer_token": VIEWER_TOKEN, "fire_webhook": true
            })),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["reason"], "webhook-error-status");
    assert_eq!(answer["webhook_status"], 401);
    // The endpoint did echo the token (the test is real), and none of it came back out.
    let replies = l.server.requests();
    assert_eq!(replies.len(), 2);
    let answer_text = answer.to_string();
    let log = l.daemon.log_text();
    for (what, text) in [("the log", &log), ("the dry run", &answer_text)] {
        assert!(!text.contains(VIEWER_TOKEN), "token in {what}: {text}");
        assert!(!text.contains("dmlld2VyLXNlY3JldA"), "token part in {what}");
        assert!(!text.contains("bad token"), "reply body in {what}: {text}");
        assert!(
            !text.contains("viewerToken"),
            "reply body in {what}: {text}"
        );
    }
}

#[tokio::test]
async fn webhook_log_lines_name_the_viewer_they_were_for() {
    let l = lab(3000).await;
    let session = session_id("span");
    let body = user_new_body("live+abc", "203.0.113.7", "chk", URL, &session, true);
    assert_eq!(user_new(l.daemon.trigger, &body).await.body, "true");
    l.daemon
        .wait_for_log("the webhook call, in the trigger span", |j| {
            j["message"] == "webhook called" && j["span"]["session"] == session.as_str()
        })
        .await;
    let line = l
        .daemon
        .logs()
        .into_iter()
        .find(|j| j["message"] == "webhook called")
        .unwrap();
    assert_eq!(line["span"]["name"], "trigger", "{line}");
    assert_eq!(line["span"]["stream"], "live+abc", "{line}");
}

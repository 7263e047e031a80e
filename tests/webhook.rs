//! The webhook call of SPEC §3 and the outbound safety of SPEC §4, driven through
//! `WebhookCaller` against a real HTTPS server and a lab DNS server, all on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::dns::DnsServer;
use common::https::{Behaviour, HttpsServer};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use usher::config::{OutboundConfig, WebhookConfig};
use usher::policy::model::{Secret, WebhookPolicy};
use usher::reason::Reason;
use usher::webhook::{WebhookCaller, WebhookOutcome, WebhookRequest, validate_webhook_policy};

const SECRET: &str = "s3cret-hmac-key";
const HOST: &str = "hook.test";

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// A DNS server, an HTTPS server on `server_ip` and a caller that trusts its CA, resolves
/// through the lab DNS server and may dial only 127.0.0.2.
struct Lab {
    dns: DnsServer,
    server: HttpsServer,
    caller: WebhookCaller,
}

impl Lab {
    async fn new(server_ip: &str, max_in_flight: usize) -> Lab {
        let dns = DnsServer::start().await;
        let server = HttpsServer::start(ip(server_ip)).await;
        dns.set(HOST, &[ip(server_ip)]);
        let outbound = OutboundConfig {
            allow_cidrs: vec!["127.0.0.2/32".parse().expect("cidr")],
            allow_http: false,
            ca_file: server.ca_file(),
            nameservers: vec![dns.addr()],
        };
        let webhook = WebhookConfig {
            max_in_flight,
            ..WebhookConfig::default()
        };
        let caller = WebhookCaller::new(&outbound, &webhook).expect("caller builds");
        Lab {
            dns,
            server,
            caller,
        }
    }

    fn policy(&self, host: &str, timeout_ms: u64) -> WebhookPolicy {
        WebhookPolicy {
            url: self.server.url(host, "/hook").parse().expect("url"),
            secret: Secret::new(SECRET),
            timeout_ms,
        }
    }

    async fn call(&self, timeout_ms: u64) -> WebhookOutcome {
        self.caller
            .call(&self.policy(HOST, timeout_ms), &request())
            .await
    }
}

fn request() -> WebhookRequest<'static> {
    WebhookRequest {
        stream: "live+abc123",
        session_id: "e7ba6040b648",
        viewer_ip: "203.0.113.7",
        request_url: "http://edge/hls/live+abc123/index.m3u8?jwt=tok",
        viewer_token: "tok",
        connector: "HLS",
        action: "play",
    }
}

fn assert_denied(outcome: &WebhookOutcome, reason: Reason) {
    assert!(!outcome.allowed, "{outcome:?}");
    assert_eq!(outcome.reason, reason, "{outcome:?}");
}

#[tokio::test]
async fn a_200_allows() {
    let lab = Lab::new("127.0.0.2", 16).await;
    let outcome = lab.call(5000).await;
    assert!(outcome.allowed, "{outcome:?}");
    assert_eq!(outcome.reason, Reason::Allowed);
    assert_eq!(outcome.status, Some(200));
}

#[tokio::test]
async fn the_body_is_signed_and_carries_every_field() {
    let lab = Lab::new("127.0.0.2", 16).await;
    assert!(lab.call(5000).await.allowed);
    let reqs = lab.server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook");
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(
        r.header("user-agent"),
        format!("usher/{}", env!("CARGO_PKG_VERSION"))
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac");
    mac.update(&r.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(r.header("x-frameworks-signature"), expected);

    let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON body");
    let obj = body.as_object().expect("object");
    assert_eq!(obj.len(), 8, "{body}");
    assert_eq!(body["streamName"], "live+abc123");
    assert_eq!(body["sessionId"], "e7ba6040b648");
    assert_eq!(body["viewerIp"], "203.0.113.7");
    assert_eq!(
        body["requestUrl"],
        "http://edge/hls/live+abc123/index.m3u8?jwt=tok"
    );
    assert_eq!(body["viewerToken"], "tok");
    assert_eq!(body["connector"], "HLS");
    assert_eq!(body["action"], "play");
    let ts = body["timestamp"].as_str().expect("timestamp");
    let parsed = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .expect("RFC 3339 timestamp");
    assert!(ts.ends_with('Z'), "UTC: {ts}");
    let age = time::OffsetDateTime::now_utc() - parsed;
    assert!(age.whole_seconds().abs() < 300, "{ts}");
}

#[tokio::test]
async fn a_403_denies_with_webhook_deny_403() {
    let lab = Lab::new("127.0.0.2", 16).await;
    lab.server.set_behaviour(Behaviour::Status(403));
    let outcome = lab.call(5000).await;
    assert_denied(&outcome, Reason::WebhookDeny403);
    assert_eq!(outcome.status, Some(403));
}

#[tokio::test]
async fn a_500_and_a_302_deny_with_webhook_error_status() {
    let lab = Lab::new("127.0.0.2", 16).await;
    for code in [500u16, 302] {
        lab.server.set_behaviour(Behaviour::Status(code));
        let outcome = lab.call(5000).await;
        assert_denied(&outcome, Reason::WebhookErrorStatus);
        assert_eq!(outcome.status, Some(code));
        assert!(outcome.detail.contains(&code.to_string()), "{outcome:?}");
    }
    // The redirect was not followed: one request per call, none to the Location.
    assert_eq!(lab.server.requests().len(), 2);
}

#[tokio::test]
async fn a_hung_endpoint_times_out_within_the_policy_timeout() {
    let lab = Lab::new("127.0.0.2", 16).await;
    lab.server.set_behaviour(Behaviour::Hang);
    let started = Instant::now();
    let outcome = lab.call(400).await;
    assert_denied(&outcome, Reason::WebhookTimeout);
    assert!(outcome.latency_ms >= 400, "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{outcome:?}");
    assert_eq!(lab.server.requests().len(), 1);
}

#[tokio::test]
async fn a_reset_connection_is_webhook_network() {
    let lab = Lab::new("127.0.0.2", 16).await;
    lab.server.set_behaviour(Behaviour::Reset);
    assert_denied(&lab.call(5000).await, Reason::WebhookNetwork);
    assert_eq!(lab.server.connections(), 1);
}

#[tokio::test]
async fn an_untrusted_certificate_is_webhook_network() {
    let lab = Lab::new("127.0.0.2", 16).await;
    lab.server.set_behaviour(Behaviour::WrongCert);
    let outcome = lab.call(5000).await;
    assert_denied(&outcome, Reason::WebhookNetwork);
    assert!(lab.server.requests().is_empty());
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_webhook_network() {
    let lab = Lab::new("127.0.0.2", 16).await;
    lab.dns.remove(HOST);
    assert_denied(&lab.call(5000).await, Reason::WebhookNetwork);
    assert_eq!(lab.server.connections(), 0);
}

#[tokio::test]
async fn a_large_body_is_decided_promptly() {
    let lab = Lab::new("127.0.0.2", 16).await;
    lab.server.set_behaviour(Behaviour::LargeBody);
    let outcome = lab.call(10_000).await;
    assert!(outcome.allowed, "{outcome:?}");
    assert!(outcome.latency_ms < 5_000, "{outcome:?}");
}

#[tokio::test]
async fn a_body_that_never_ends_is_not_waited_for_past_4_kib() {
    let lab = Lab::new("127.0.0.2", 16).await;
    lab.server.set_behaviour(Behaviour::TrickleBody);
    let outcome = lab.call(10_000).await;
    assert!(outcome.allowed, "{outcome:?}");
    assert!(outcome.latency_ms < 8_000, "{outcome:?}");
    assert!(outcome.detail.contains("truncated"), "{outcome:?}");
}

#[tokio::test]
async fn a_name_resolving_to_a_refused_address_is_blocked_without_connecting() {
    // The server listens on 127.0.0.1, which allow_cidrs (127.0.0.2/32) does not open.
    let lab = Lab::new("127.0.0.1", 16).await;
    let outcome = lab.call(5000).await;
    assert_denied(&outcome, Reason::WebhookBlockedSsrf);
    assert_eq!(lab.server.connections(), 0);
}

#[tokio::test]
async fn dns_rebinding_after_validation_is_blocked_at_call_time() {
    let lab = Lab::new("127.0.0.1", 16).await;
    lab.dns.set(HOST, &[ip("127.0.0.2")]);
    let url = lab.server.url(HOST, "/hook");
    let policy = validate_webhook_policy(lab.caller.guard(), &url, Some(SECRET), None)
        .await
        .expect("validated while the name points at an allowed address");
    lab.dns.set(HOST, &[ip("127.0.0.1")]);
    let queries_before = lab.dns.queries();
    let outcome = lab.caller.call(&policy, &request()).await;
    assert_denied(&outcome, Reason::WebhookBlockedSsrf);
    assert!(lab.dns.queries() > queries_before, "resolved again at dial");
    assert_eq!(lab.server.connections(), 0);
}

#[tokio::test]
async fn ip_literal_urls_are_judged_before_every_call() {
    let lab = Lab::new("127.0.0.1", 16).await;
    for host in [
        "127.0.0.1",
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
        "127.1",
        "[::ffff:127.0.0.1]",
    ] {
        let outcome = lab.caller.call(&lab.policy(host, 5000), &request()).await;
        assert_denied(&outcome, Reason::WebhookBlockedSsrf);
    }
    assert_eq!(lab.server.connections(), 0);
}

#[tokio::test]
async fn an_allowed_ip_literal_is_called() {
    let lab = Lab::new("127.0.0.2", 16).await;
    let outcome = lab
        .caller
        .call(&lab.policy("127.0.0.2", 5000), &request())
        .await;
    assert!(outcome.allowed, "{outcome:?}");
}

#[tokio::test]
async fn calls_beyond_max_in_flight_are_webhook_overloaded() {
    let lab = Lab::new("127.0.0.2", 1).await;
    lab.server.set_behaviour(Behaviour::Hang);
    let caller = lab.caller.clone();
    let policy = lab.policy(HOST, 10_000);
    let first = tokio::spawn(async move { caller.call(&policy, &request()).await });
    lab.server.wait_for_requests(1).await;
    assert_eq!(lab.caller.in_flight(), 1);
    assert_denied(&lab.call(5000).await, Reason::WebhookOverloaded);
    first.abort();
    let _ = first.await;
    assert_eq!(lab.caller.in_flight(), 0);
}

#[tokio::test]
async fn two_calls_reuse_one_connection() {
    let lab = Lab::new("127.0.0.2", 16).await;
    assert!(lab.call(5000).await.allowed);
    assert!(lab.call(5000).await.allowed);
    assert_eq!(lab.server.requests().len(), 2);
    assert_eq!(lab.server.connections(), 1);
}

#[tokio::test]
async fn validate_webhook_policy_refuses_unsafe_urls_and_missing_secrets() {
    let lab = Lab::new("127.0.0.2", 16).await;
    let guard = lab.caller.guard();
    let port = lab.server.port();
    let refused = [
        format!("http://{HOST}:{port}/hook"),
        format!("https://user:pw@{HOST}:{port}/hook"),
        format!("https://user@{HOST}:{port}/hook"),
        "https://2130706433/".into(),
        "https://0x7f.1/".into(),
        "https://0177.0.0.1/".into(),
        "https://127.1/".into(),
        "https://0xa.0.0.1/".into(),
        "https://192.168.1/".into(),
        "https://[::1]/".into(),
        "https://[::ffff:10.0.0.1]/".into(),
        "https://[64:ff9b::a9fe:a9fe]/".into(),
        "https://[2002:c0a8:101::]/".into(),
        "https://[fe80::1]/".into(),
        "ftp://hook.test/".into(),
        "not a url".into(),
    ];
    for url in &refused {
        let result = validate_webhook_policy(guard, url, Some(SECRET), None).await;
        assert!(result.is_err(), "{url} was accepted");
    }
    let url = lab.server.url(HOST, "/hook");
    for secret in [None, Some("")] {
        let err = validate_webhook_policy(guard, &url, secret, None).await;
        assert!(err.expect_err("no secret").to_string().contains("secret"));
    }
}

#[tokio::test]
async fn validate_webhook_policy_judges_every_current_answer() {
    let lab = Lab::new("127.0.0.2", 16).await;
    let guard = lab.caller.guard();
    let url = lab.server.url(HOST, "/hook");
    let ok = validate_webhook_policy(guard, &url, Some(SECRET), None)
        .await
        .expect("allowed name");
    assert_eq!(ok.timeout_ms, 3000);
    assert_eq!(ok.secret.expose(), SECRET);

    lab.dns.set(HOST, &[ip("127.0.0.2"), ip("10.0.0.1")]);
    let err = validate_webhook_policy(guard, &url, Some(SECRET), None).await;
    assert!(
        err.expect_err("one refused answer")
            .to_string()
            .contains("10.0.0.1")
    );

    lab.dns.set(HOST, &[ip("127.0.0.2"), ip("::1")]);
    let err = validate_webhook_policy(guard, &url, Some(SECRET), None).await;
    assert!(
        err.expect_err("a refused AAAA answer")
            .to_string()
            .contains("::1")
    );

    lab.dns.set(HOST, &[]);
    assert!(
        validate_webhook_policy(guard, &url, Some(SECRET), None)
            .await
            .is_err()
    );
    lab.dns.remove(HOST);
    assert!(
        validate_webhook_policy(guard, &url, Some(SECRET), None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn validate_webhook_policy_defaults_and_clamps_the_timeout() {
    let lab = Lab::new("127.0.0.2", 16).await;
    let guard = lab.caller.guard();
    let url = lab.server.url(HOST, "/hook");
    let check = |t| validate_webhook_policy(guard, &url, Some(SECRET), t);
    assert_eq!(
        check(Some(20_000)).await.expect("clamped").timeout_ms,
        10_000
    );
    assert_eq!(check(Some(250)).await.expect("kept").timeout_ms, 250);
    assert!(check(Some(0)).await.is_err());
}

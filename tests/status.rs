//! `usher status` and `GET /v1/status` through the real daemon: rates and deny reasons over the
//! last minute, cache, pending MistServer invalidations, JWKS per tenant; text and `--json`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::process::Command;
use std::time::Duration;

use common::api::{Api, TOKEN};
use common::daemon::Daemon;
use common::jwks_server::{JwksServer, Reply};
use common::mist::{session_id, user_new, user_new_body};
use usher::keys::keygen::generate_es256;
use usher::status::StatusReport;

const URL: &str = "http://127.0.0.1:8080/hls/x/index.m3u8";

/// One good JWKS tenant (t1), one whose server answers 500 (t2); `open` is public, everything
/// else falls to the default `deny`.
async fn start() -> (Daemon, JwksServer, JwksServer) {
    let k1 = generate_es256("jwks-1").unwrap();
    let good = JwksServer::start(
        "127.0.0.2".parse().unwrap(),
        Reply::keys(std::slice::from_ref(&k1.public_jwk)),
    )
    .await;
    let bad = JwksServer::start("127.0.0.2".parse().unwrap(), Reply::Status(500)).await;
    let extra = format!(
        "[outbound]\nallow_cidrs = [\"127.0.0.2/32\"]\nca_file = \"{}\"\nnameservers = [\"127.0.0.1:9\"]\n\
         [[tenants]]\nid = \"t1\"\njwks_url = \"{}\"\n\
         [[tenants]]\nid = \"t2\"\njwks_url = \"{}\"\n\
         [[policies]]\nobject = \"open\"\ntenant = \"t1\"\ntype = \"public\"\n",
        good.ca_file(),
        good.url(),
        bad.url()
    );
    let d = tokio::task::spawn_blocking(move || Daemon::start(&extra))
        .await
        .unwrap();
    (d, good, bad)
}

async fn status(api: &Api) -> StatusReport {
    let (code, body) = api.call("GET", "/v1/status", None).await;
    assert_eq!(code, 200, "{body}");
    serde_json::from_value(body).expect("a status report")
}

/// Asks `n` distinct sessions of `stream` once each.
async fn ask(d: &Daemon, stream: &str, n: usize) {
    for i in 0..n {
        let body = user_new_body(
            stream,
            "127.0.0.1",
            "chk",
            URL,
            &session_id(&format!("{stream}{i}")),
            true,
        );
        user_new(d.trigger, &body).await;
    }
}

/// Polls the report (generously) until `pred` holds.
async fn status_until(api: &Api, what: &str, pred: impl Fn(&StatusReport) -> bool) -> StatusReport {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = status(api).await;
        if pred(&r) {
            return r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no status with {what}: {r:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn status_shows_the_last_minute_of_decisions_cache_queue_and_jwks() {
    let (d, _good, _bad) = start().await;
    let api = Api::new(&d);
    // t1's first good fetch changes its keys, which invalidates t1's streams: let it happen
    // before the decisions this test counts.
    status_until(&api, "t1 ok and t2 failing", |r| {
        r.jwks
            .iter()
            .any(|t| t.tenant == "t2" && t.state == "failing")
            && r.jwks.iter().any(|t| t.tenant == "t1" && t.state == "ok")
    })
    .await;
    d.wait_for_log("the JWKS change applied", |l| {
        l["message"] == "jwks keys changed" && !l["dropped"].is_null()
    })
    .await;
    ask(&d, "open", 20).await;
    ask(&d, "closed", 5).await;
    ask(&d, "open", 20).await; // the same sessions again: cache hits
    let r = status_until(&api, "45 decisions", |r| {
        r.decisions.allowed == 40 && r.decisions.denied == 5
    })
    .await;
    assert!(r.window_s > 0.0 && r.window_s <= 60.5, "{r:?}");
    assert!(r.decisions.allow_per_s > 0.0);
    assert_eq!(r.top_deny_reasons[0].reason, "policy-deny");
    assert_eq!(r.top_deny_reasons[0].count, 5);
    assert_eq!((r.cache.hits, r.cache.misses), (20, 25));
    assert_eq!(r.cache.entries, 25);
    assert_eq!(r.cache.max_entries, 1_000_000);
    let t1 = r.jwks.iter().find(|t| t.tenant == "t1").unwrap();
    assert_eq!((t1.keys, t1.host.as_str()), (Some(1), "127.0.0.2"));
    let t2 = r.jwks.iter().find(|t| t.tenant == "t2").unwrap();
    assert!(t2.consecutive_failures >= 1 && t2.keys.is_none(), "{t2:?}");

    // MistServer is a closed port here: an invalidation stays pending and ages.
    let (code, _) = api
        .call(
            "POST",
            "/v1/invalidate",
            Some(serde_json::json!({"streams": ["open"]})),
        )
        .await;
    assert_eq!(code, 200);
    let r = status_until(&api, "a pending invalidation over 1 s old", |r| {
        r.invalidations.pending >= 1
            && r.invalidations.oldest_pending_s.is_some_and(|s| s >= 1)
            && r.invalidations.mist_failing
    })
    .await;
    assert!(r.invalidations.mist_api_errors >= 1);
    let metrics = api.metrics().await;
    assert!(
        metrics.contains("\nusher_jwks_tenants_failing 1\n"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("\nusher_mist_pending_oldest_seconds 0\n"),
        "{metrics}"
    );

    // The command: text for a terminal, JSON for scripts, from the same config file.
    let config = d.dir.join("config.toml");
    let control = d.control.unwrap();
    let run = move |json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_usher"));
        cmd.arg("status")
            .arg("--config")
            .arg(&config)
            .arg("--url")
            .arg(format!("http://{control}"));
        if json {
            cmd.arg("--json");
        }
        cmd.output().unwrap()
    };
    let text = tokio::task::spawn_blocking(move || (run(false), run(true)))
        .await
        .unwrap();
    let (plain, json) = text;
    assert!(plain.status.success(), "{plain:?}");
    let plain = String::from_utf8(plain.stdout).unwrap();
    assert!(plain.contains("denials     policy-deny"), "{plain}");
    assert!(plain.contains("t2"), "{plain}");
    assert!(plain.contains("failing"), "{plain}");
    assert!(plain.contains("pending, oldest"), "{plain}");
    assert!(json.status.success(), "{json:?}");
    let parsed: StatusReport = serde_json::from_slice(&json.stdout).expect("--json is a report");
    assert_eq!(parsed.decisions.allowed, 40);
}

#[tokio::test]
async fn status_needs_the_control_token() {
    let d = tokio::task::spawn_blocking(|| Daemon::start(""))
        .await
        .unwrap();
    let api = Api::new(&d);
    let (code, body) = api.call_as(None, "GET", "/v1/status", None).await;
    assert_eq!((code, body["error"].as_str()), (401, Some("unauthorized")));
    let (code, _) = api
        .call_as(Some("not-the-token-at-all"), "GET", "/v1/status", None)
        .await;
    assert_eq!(code, 401);
    let (code, _) = api.call_as(Some(TOKEN), "POST", "/v1/status", None).await;
    assert_eq!(code, 405);

    // The command with a wrong token file says so and fails.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "0123456789abcdef-wrong\n").unwrap();
    let config = d.dir.join("config.toml");
    let control = d.control.unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_usher"))
            .args(["status", "--config"])
            .arg(&config)
            .arg("--url")
            .arg(format!("http://{control}"))
            .arg("--token-file")
            .arg(&file)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("usher answered 401"), "{err}");
}

//! The soak (issue: robustness): a mixed load for a bounded time — valid and invalid tokens,
//! webhooks that are slow, hang, reset, answer 500 or send 1 MiB, a MistServer stand-in that drops
//! out — while streams are invalidated and the config is reloaded. It checks that every answer was
//! the expected `true`/`false`, that no request took longer than its bound, that memory stayed
//! flat, and that every invalidation reached the MistServer stand-in.
//!
//! Ignored by `cargo test`; run it with `bench/soak.sh [SECONDS]` (release build, report printed).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::api::{Api, Key};
use common::daemon::Daemon;
use common::https::{Behaviour, HttpsServer};
use common::mist::{session_id, user_new, user_new_body};
use common::mist_api::MistApi;
use serde_json::json;
use tokio::sync::Mutex;
use usher::keys::sign::{SignOptions, sign};

/// No answer may take longer than this (the slowest webhook policy times out at 300 ms).
const ANSWER_BOUND: Duration = Duration::from_secs(3);
const WORKERS: usize = 32;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// One kind of request and the answer it must get.
#[derive(Clone, Copy, Debug)]
enum Case {
    ValidToken,
    ExpiredToken,
    Garbage,
    Hook(&'static str, bool),
}

#[derive(Default)]
struct Tally {
    by_case: BTreeMap<String, (u64, u64)>, // (count, wrong answers)
    slowest: Duration,
}

#[tokio::test]
#[ignore = "long-running; run with bench/soak.sh"]
async fn soak() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mist = MistApi::start().await;
    let mut hooks = Vec::new();
    let behaviours = [
        ("ok", Behaviour::Delayed(20, 200), true),
        ("hang", Behaviour::Hang, false),
        ("reset", Behaviour::Reset, false),
        ("e500", Behaviour::Status(500), false),
        ("big", Behaviour::LargeBody, true),
    ];
    let mut config = format!(
        "[mist]\napi_url = \"{}\"\nack_wait_ms = 50\n[cache]\ndeny_ttl_s = 1\nallow_ttl_s = 5\n",
        mist.url()
    );
    for _ in 0..behaviours.len() {
        hooks.push(HttpsServer::start(ip("127.0.0.2")).await);
    }
    // One CA file trusting every test server's CA.
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("cas.pem");
    let cas: String = hooks.iter().map(|h| h.ca_pem().to_string()).collect();
    std::fs::write(&ca_file, cas).unwrap();
    config.push_str(&format!(
        "[outbound]\nallow_cidrs = [\"127.0.0.2/32\"]\nca_file = \"{}\"\nnameservers = [\"127.0.0.1:9\"]\n[[tenants]]\nid = \"t1\"\n",
        ca_file.display()
    ));
    let mut cases = vec![Case::ValidToken, Case::ExpiredToken, Case::Garbage];
    for ((name, behaviour, allows), server) in behaviours.iter().zip(&hooks) {
        server.set_behaviour(*behaviour);
        config.push_str(&format!(
            "[[policies]]\nobject = \"hook-{name}\"\ntenant = \"t1\"\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"soak-secret\"\ntimeout_ms = 300\n",
            server.url("127.0.0.2", "/hook")
        ));
        cases.push(Case::Hook(name, *allows));
    }
    let d = tokio::task::spawn_blocking(move || Daemon::start(&config))
        .await
        .unwrap();
    let api = Arc::new(Api::new(&d));
    let key = Key::new("soak-k1");
    api.call("PUT", "/v1/keys/soak-k1", Some(key.body("t1")))
        .await;
    api.call(
        "PUT",
        "/v1/policies/vod",
        Some(json!({"tenant": "t1", "type": "jwt"})),
    )
    .await;
    let valid = key.token();
    let expired = sign(
        key.private_pem.as_bytes(),
        &SignOptions {
            kid: "soak-k1".into(),
            exp_in_s: Some(-600),
            ..SignOptions::default()
        },
        now(),
    )
    .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let counter = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let (stop, tally, counter, cases) =
            (stop.clone(), tally.clone(), counter.clone(), cases.clone());
        let (valid, expired, addr) = (valid.clone(), expired.clone(), d.trigger);
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let case = cases[(n as usize + w) % cases.len()];
                // Half the requests repeat a session (cache hits), half are new.
                let session = session_id(&format!("{w}-{}", if n % 2 == 0 { n } else { n % 64 }));
                let (stream, token, expect) = match case {
                    Case::ValidToken => ("vod".to_string(), valid.clone(), true),
                    Case::ExpiredToken => ("vod".to_string(), expired.clone(), false),
                    Case::Garbage => ("vod".to_string(), "not.a.jwt".to_string(), false),
                    Case::Hook(name, allows) => (format!("hook-{name}"), valid.clone(), allows),
                };
                let url = format!("http://127.0.0.1:8080/hls/{stream}/index.m3u8?jwt={token}");
                let body = user_new_body(&stream, "127.0.0.1", &token, &url, &session, true);
                let started = Instant::now();
                let answer = user_new(addr, &body).await.body;
                let took = started.elapsed();
                let mut t = tally.lock().await;
                let entry = t.by_case.entry(format!("{case:?}")).or_default();
                entry.0 += 1;
                if answer != if expect { "true" } else { "false" } {
                    entry.1 += 1;
                }
                t.slowest = t.slowest.max(took);
            }
        }));
    }

    // Invalidations every 250 ms, MistServer out for 1 s every 4 s, a SIGHUP every 2 s.
    let mut invalidated = Vec::new();
    let mut rss = Vec::new();
    let pid = d.pid();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tick = 0u64;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        tick += 1;
        let name = format!("vod+soak{tick}");
        let (status, _) = api
            .call(
                "POST",
                "/v1/invalidate",
                Some(json!({"streams": [name.clone()]})),
            )
            .await;
        assert_eq!(status, 200);
        invalidated.push(name);
        match tick % 16 {
            0 => mist.down().await,
            4 => mist.up().await,
            _ => {}
        }
        if tick % 8 == 0 {
            d.signal("HUP");
        }
        if tick % 4 == 0 {
            rss.push(rss_kib(pid));
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    mist.up().await;
    let mut missing = Vec::new();
    for name in &invalidated {
        if !mist.wait_invalidated(name, Duration::from_secs(60)).await {
            missing.push(name.clone());
        }
    }

    let t = tally.lock().await;
    let total: u64 = t.by_case.values().map(|(n, _)| n).sum();
    let wrong: u64 = t.by_case.values().map(|(_, w)| w).sum();
    println!("soak: {seconds} s, {WORKERS} workers, {total} USER_NEW answers, {wrong} wrong");
    for (case, (n, w)) in &t.by_case {
        println!("  {case:<28} {n:>8} answers {w:>4} wrong");
    }
    println!("  slowest answer: {:?} (bound {ANSWER_BOUND:?})", t.slowest);
    println!(
        "  invalidations: {} sent, {} missing at the MistServer stand-in",
        invalidated.len(),
        missing.len()
    );
    println!("  RSS (KiB, every second): {rss:?}");
    assert_eq!(wrong, 0, "some answers were wrong");
    assert!(t.slowest <= ANSWER_BOUND, "an answer took {:?}", t.slowest);
    assert!(missing.is_empty(), "invalidations lost: {missing:?}");
    // Flat memory: the second half never exceeds the first half's peak by more than 50% + 16 MiB.
    let half = rss.len() / 2;
    let early = rss[..half.max(1)].iter().copied().max().unwrap_or(0);
    let late = rss[half..].iter().copied().max().unwrap_or(0);
    assert!(
        late <= early + early / 2 + 16 * 1024,
        "memory grew: {early} KiB -> {late} KiB"
    );
    assert!(
        d.logs().iter().any(|l| l["message"] == "config reloaded"),
        "reloads happened"
    );
}

//! Invalidation through the real daemon (SPEC §5): the cache is dropped before MistServer is
//! asked anything, invalidations survive `kill -9`, and usher never starts with less than was
//! stored.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::api::{Api, Key};
use common::daemon::{Daemon, base_config};
use common::mist::{session_id, user_new, user_new_body};
use common::mist_api::MistApi;
use serde_json::json;
use tokio::net::TcpListener;

/// A MistServer API that accepts connections and never answers.
async fn hanging_mist() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api2", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

fn mist_section(url: &str) -> String {
    format!("[mist]\napi_url = \"{url}\"\nack_wait_ms = 3000\n")
}

async fn start(dir: &Path, config: String) -> Daemon {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || Daemon::start_with(&dir, &config).expect("daemon starts"))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_revoke_while_mistserver_hangs_drops_cached_decisions_within_50_ms() {
    let (url, hang) = hanging_mist().await;
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n{}",
        base_config(&tmp.path().join("data")),
        mist_section(&url)
    );
    let d = start(tmp.path(), config).await;
    let api = Api::new(&d);
    let key = Key::new("k1");
    api.call("PUT", "/v1/keys/k1", Some(key.body("t1"))).await;
    api.call(
        "PUT",
        "/v1/policies/vod",
        Some(json!({"tenant": "t1", "type": "jwt"})),
    )
    .await;
    let token = key.token();
    let url = format!("http://127.0.0.1:8080/hls/vod/index.m3u8?jwt={token}");
    let s = session_id("hang-revoke");
    let body = user_new_body("vod", "127.0.0.1", &token, &url, &s, false);
    assert_eq!(user_new(d.trigger, &body).await.body, "true");
    assert_eq!(user_new(d.trigger, &body).await.body, "true");
    let decided = |lookup: &'static str, allowed: bool| {
        let s = s.clone();
        move |l: &serde_json::Value| {
            l["message"] == "decided"
                && l["session"] == s.as_str()
                && l["lookup"] == lookup
                && l["allowed"] == allowed
        }
    };
    d.wait_for_log("a cached allow", decided("hit", true)).await;

    let revoke = {
        let api = Api::new(&d);
        tokio::spawn(async move { api.call("POST", "/v1/keys/k1/revoke", None).await })
    };
    let started = Instant::now();
    let denied_after = loop {
        if user_new(d.trigger, &body).await.body == "false" {
            break started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never denied");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    eprintln!("denied {denied_after:?} after the revoke was sent");
    assert!(
        !revoke.is_finished(),
        "the revoke call is still waiting on the hanging MistServer"
    );
    assert!(
        denied_after < Duration::from_millis(50),
        "denied only after {denied_after:?}"
    );
    d.wait_for_log(
        "the session evaluated again and denied",
        decided("evaluated", false),
    )
    .await;
    let (status, answer) = revoke.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(answer["mist_acknowledged"], false, "{answer}");
    assert_eq!(answer["dropped"], 1, "{answer}");
    hang.abort();
}

#[tokio::test]
async fn a_policy_change_while_mistserver_is_down_reaches_it_after_kill_9_and_restart() {
    let mist = MistApi::start().await;
    mist.down().await;
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{}\n{}",
        base_config(&tmp.path().join("data")),
        mist_section(&mist.url()).replace("3000", "200")
    );
    let d = start(tmp.path(), config.clone()).await;
    let api = Api::new(&d);
    let (status, set) = api
        .call(
            "PUT",
            "/v1/policies/vod",
            Some(json!({"tenant": "t1", "type": "deny"})),
        )
        .await;
    assert_eq!(status, 201, "{set}");
    assert_eq!(set["mist_acknowledged"], false, "MistServer is down: {set}");
    d.signal("KILL");
    drop(d);

    mist.up().await;
    let d = start(tmp.path(), config.clone()).await;
    assert!(
        mist.wait_invalidated("vod", Duration::from_secs(60)).await,
        "MistServer never received the invalidation; log:\n{}",
        d.log_text()
    );
    // Once acknowledged, it is forgotten: the next restart sends nothing.
    let before = mist.invalidated().len();
    d.wait_for_log("the acknowledgement forgotten on disk", |l| {
        l["message"] == "mist sessions invalidated"
    })
    .await;
    d.signal("KILL");
    drop(d);
    let d = start(tmp.path(), config).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mist.invalidated().len(), before, "{:?}", mist.invalidated());
    let body = user_new_body(
        "vod",
        "127.0.0.1",
        "tok",
        "http://h/vod",
        &session_id("x"),
        true,
    );
    assert_eq!(
        user_new(d.trigger, &body).await.body,
        "false",
        "the deny survived"
    );
}

/// Starts a daemon that must refuse to start; returns its log.
async fn refused_start(dir: &Path) -> String {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let config = base_config(&dir.join("data"));
        match Daemon::start_with(&dir, &config) {
            Ok(d) => panic!("started anyway; log:\n{}", d.log_text()),
            Err(log) => log,
        }
    })
    .await
    .unwrap()
}

/// Regression (issue 11, 2): an empty state file was opened as a new database and every
/// API-set deny vanished.
#[tokio::test]
async fn regression_the_daemon_refuses_an_empty_state_file_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let file = data.join("usher.redb");
    std::fs::write(&file, b"").unwrap();
    let log = refused_start(tmp.path()).await;
    assert!(log.contains(&file.display().to_string()), "{log}");
    assert!(log.contains("empty"), "{log}");
}

/// Regression (issue 11, 3): a corrupt state file showed only "state database task failed".
#[tokio::test]
async fn regression_the_daemon_reports_a_corrupt_state_file_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    {
        let d = start(tmp.path(), base_config(&data)).await;
        let api = Api::new(&d);
        for i in 0..20 {
            api.call(
                "PUT",
                &format!("/v1/policies/object-{i}"),
                Some(json!({"tenant": "t1", "type": "deny"})),
            )
            .await;
        }
        d.stop();
    }
    let file = data.join("usher.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    for b in bytes.iter_mut().skip(512) {
        *b = 0xA5;
    }
    std::fs::write(&file, &bytes).unwrap();
    let log = refused_start(tmp.path()).await;
    assert!(log.contains(&file.display().to_string()), "{log}");
    assert!(!log.contains("task failed"), "{log}");
    let reported = log
        .lines()
        .filter(|l| l.starts_with("usher:"))
        .collect::<Vec<_>>();
    eprintln!("{reported:?}");
}

//! Operating usher (SPEC §7): systemd notifications, SIGHUP reload with a good and a broken
//! config, environment overrides, and tenant keys from a JWKS URL through the real daemon.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::daemon::{Daemon, base_config};
use common::jwks_server::{JwksServer, Reply};
use common::mist::{session_id, user_new, user_new_body};
use usher::keys::KeyAlg;
use usher::keys::keygen::generate_es256;
use usher::keys::sign::{SignOptions, sign};

const URL: &str = "http://127.0.0.1:8080/hls/x/index.m3u8";

async fn ask(d: &Daemon, stream: &str, session: &str) -> String {
    let body = user_new_body(stream, "127.0.0.1", "chk", URL, session, true);
    user_new(d.trigger, &body).await.body
}

#[test]
fn systemd_gets_ready_watchdog_pings_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let config = base_config(&dir.path().join("data"));
    std::fs::write(dir.path().join("config.toml"), &config).unwrap();
    let sock_env = sock_path.display().to_string();
    let d = Daemon::start_on(
        dir.path(),
        &dir.path().join("config.toml"),
        &[("NOTIFY_SOCKET", &sock_env), ("WATCHDOG_USEC", "200000")],
    )
    .unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !(seen.contains("READY=1") && seen.contains("WATCHDOG=1")) {
        let n = sock.recv(&mut buf).expect("a notification within 30 s");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(d.stop().success());
    while !seen.contains("STOPPING=1") {
        let n = sock.recv(&mut buf).expect("STOPPING=1 before exit");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

const TWO_STREAMS: &str = "[[tenants]]\nid = \"t1\"\n\
[[policies]]\nobject = \"a\"\ntenant = \"t1\"\ntype = \"public\"\n\
[[policies]]\nobject = \"b\"\ntenant = \"t1\"\ntype = \"public\"\n";

#[tokio::test]
async fn sighup_swaps_in_a_valid_config_and_invalidates_what_changed() {
    let d = Daemon::start(TWO_STREAMS);
    let (sa, sb) = (session_id("hup-a"), session_id("hup-b"));
    assert_eq!(ask(&d, "a", &sa).await, "true");
    assert_eq!(ask(&d, "b", &sb).await, "true");
    let path = d.dir.join("config.toml");
    let changed = std::fs::read_to_string(&path).unwrap().replacen(
        "object = \"a\"\ntenant = \"t1\"\ntype = \"public\"",
        "object = \"a\"\ntenant = \"t1\"\ntype = \"deny\"",
        1,
    );
    std::fs::write(&path, changed).unwrap();
    d.signal("HUP");
    d.wait_for_log("reloaded", |l| l["message"] == "config reloaded")
        .await;
    assert_eq!(
        ask(&d, "a", &sa).await,
        "false",
        "a's cached allow was dropped"
    );
    assert_eq!(ask(&d, "b", &sb).await, "true");
    d.wait_for_log("decisions", |_| d.lookups(&sb).len() == 2)
        .await;
    assert_eq!(
        d.lookups(&sb),
        ["evaluated", "hit"],
        "b kept its cached decision"
    );
}

#[tokio::test]
async fn sighup_with_a_broken_config_keeps_the_running_one() {
    let d = Daemon::start(TWO_STREAMS);
    let s = session_id("hup-broken");
    assert_eq!(ask(&d, "a", &s).await, "true");
    let path = d.dir.join("config.toml");
    let broken = format!(
        "{}\n[[policies]]\nobject = \"c\"\ntenant = \"nobody\"\ntype = \"jwt\"\nurl = \"https://x.example/\"\n",
        std::fs::read_to_string(&path).unwrap()
    );
    std::fs::write(&path, broken).unwrap();
    d.signal("HUP");
    d.wait_for_log("refusal", |l| l["message"] == "keeping the running config")
        .await;
    let problems: Vec<_> = d
        .logs()
        .into_iter()
        .filter(|l| l["message"] == "config reload refused")
        .collect();
    assert!(problems.len() >= 2, "every problem is logged: {problems:?}");
    assert_eq!(ask(&d, "a", &session_id("hup-broken-2")).await, "true");
    assert_eq!(ask(&d, "c", &session_id("hup-broken-3")).await, "false");
}

#[tokio::test]
async fn environment_overrides_a_config_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, base_config(&dir.path().join("data"))).unwrap();
    let d = Daemon::start_on(
        dir.path(),
        &path,
        &[("USHER_DEFAULT_POLICY_TYPE", "public")],
    )
    .unwrap();
    assert_eq!(ask(&d, "anything", &session_id("env")).await, "true");
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[tokio::test]
async fn jwks_keys_verify_tokens_and_a_new_kid_is_fetched_on_first_use() {
    let k1 = generate_es256("jwks-1").unwrap();
    let server = JwksServer::start(
        "127.0.0.2".parse().unwrap(),
        Reply::keys(std::slice::from_ref(&k1.public_jwk)),
    )
    .await;
    let extra = format!(
        "[outbound]\nallow_cidrs = [\"127.0.0.2/32\"]\nca_file = \"{}\"\nnameservers = [\"127.0.0.1:9\"]\n\
         [[tenants]]\nid = \"t1\"\njwks_url = \"{}\"\n\
         [[policies]]\nobject = \"vod\"\ntenant = \"t1\"\ntype = \"jwt\"\n",
        server.ca_file(),
        server.url()
    );
    let d = tokio::task::spawn_blocking(move || Daemon::start(&extra))
        .await
        .unwrap();
    let token = |pair: &usher::keys::keygen::Es256KeyPair, kid: &str| {
        let opts = SignOptions {
            kid: kid.into(),
            alg: KeyAlg::Es256,
            ..SignOptions::default()
        };
        sign(pair.private_pem.as_bytes(), &opts, now()).unwrap()
    };
    let ask_jwt = |t: String, seed: &'static str| {
        let url = format!("http://127.0.0.1:8080/hls/vod/index.m3u8?jwt={t}");
        let body = user_new_body("vod", "127.0.0.1", &t, &url, &session_id(seed), true);
        let addr = d.trigger;
        async move { user_new(addr, &body).await.body }
    };
    // Even while the initial fetch may still be under way, the first token verifies: the
    // no-active-keys path joins (or starts) the tenant's fetch.
    assert_eq!(ask_jwt(token(&k1, "jwks-1"), "jwks-a").await, "true");
    // Rotation: the server now also serves jwks-2; its first token triggers the refetch.
    let k2 = generate_es256("jwks-2").unwrap();
    server.set_reply(Reply::keys(&[k1.public_jwk.clone(), k2.public_jwk.clone()]));
    assert_eq!(ask_jwt(token(&k2, "jwks-2"), "jwks-b").await, "true");
    // A kid the server does not have is denied (the refetch budget is spent anyway).
    let k3 = generate_es256("jwks-3").unwrap();
    assert_eq!(ask_jwt(token(&k3, "jwks-3"), "jwks-c").await, "false");
    let control = d.control.unwrap();
    let metrics = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{control}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("usher_jwks_fetches_total{result=\"ok\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("usher_jwks_fetches_total{result=\"rate_limited\"} 1"),
        "{metrics}"
    );
}

/// Issue #30: SIGHUP never ignores a change silently. A section only a restart applies (here
/// `[sessions]`, which the old comparison did not look at) is named in a warning and raises
/// `usher_reload_restart_required`; the policies of the same file still apply at once.
#[tokio::test]
async fn sighup_names_a_change_only_a_restart_applies_in_a_warning_and_a_gauge() {
    let d = Daemon::start(TWO_STREAMS);
    let api = common::api::Api::new(&d);
    assert!(
        api.metrics()
            .await
            .contains("\nusher_reload_restart_required 0\n")
    );
    let path = d.dir.join("config.toml");
    let changed = format!(
        "{}[[policies]]\nobject = \"c\"\ntenant = \"t1\"\ntype = \"public\"\n\
         [sessions]\nmax_entries = 5\n",
        std::fs::read_to_string(&path).unwrap()
    );
    std::fs::write(&path, changed).unwrap();
    d.signal("HUP");
    d.wait_for_log("restart warning", |l| {
        l["message"] == "changed, takes effect on restart" && l["section"] == "sessions"
    })
    .await;
    d.wait_for_log("reloaded", |l| l["message"] == "config reloaded")
        .await;
    assert!(
        api.metrics()
            .await
            .contains("\nusher_reload_restart_required 1\n")
    );
    assert_eq!(ask(&d, "c", &session_id("hup-restart")).await, "true");
}

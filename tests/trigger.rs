//! The trigger listener as MistServer sees it: bodies, answers, policy lookup, USER_END, drain.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use common::daemon::Daemon;
use common::mist::{self, post_trigger, session_id, user_end_body, user_new, user_new_body};

const URL: &str = "http://127.0.0.1:8080/hls/vod/index.m3u8";

fn public(objects: &[&str]) -> String {
    let mut c = String::from("[[tenants]]\nid = \"t1\"\n");
    for o in objects {
        c.push_str(&format!(
            "[[policies]]\nobject = \"{o}\"\ntenant = \"t1\"\ntype = \"public\"\n"
        ));
    }
    c
}

fn start(extra: &str) -> Daemon {
    Daemon::start(extra)
}

#[tokio::test]
async fn first_check_of_seven_lines_is_answered_true_as_text_plain() {
    let d = start(&public(&["vod"]));
    let s = session_id("a");
    let a = user_new(
        d.trigger,
        &user_new_body("vod", "127.0.0.1", "abc", URL, &s, true),
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (200, "true"));
    assert_eq!(a.content_type, "text/plain");
}

#[tokio::test]
async fn recheck_of_six_lines_is_answered_and_hits_the_cache() {
    let d = start(&public(&["vod"]));
    let s = session_id("b");
    let first = user_new(
        d.trigger,
        &user_new_body("vod", "127.0.0.1", "abc", URL, &s, true),
    )
    .await;
    let recheck = user_new(
        d.trigger,
        &user_new_body("vod", "127.0.0.1", "abc", URL, &s, false),
    )
    .await;
    let trailing = format!(
        "{}\n",
        user_new_body("vod", "127.0.0.1", "abc", URL, &s, false)
    );
    let third = user_new(d.trigger, &trailing).await;
    assert_eq!(
        [first.body, recheck.body, third.body],
        ["true", "true", "true"]
    );
    d.wait_for_log("three decisions", |_| d.lookups(&s).len() == 3)
        .await;
    assert_eq!(d.lookups(&s), ["evaluated", "hit", "hit"]);
}

#[tokio::test]
async fn spec_example_body_is_denied_by_the_default_policy_with_a_log_line() {
    let d = start("");
    let body = "vod\n127.0.0.1\nabc\nHLS\nhttp://127.0.0.1:8080/hls/vod/index.m3u8?jwt=abc\ne7ba6040a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293ab648\nfalse";
    let a = user_new(d.trigger, body).await;
    assert_eq!((a.status, a.body.as_str()), (200, "false"));
    d.wait_for_log("denial", |l| {
        l["message"] == "denied"
            && l["reason"] == "policy-deny"
            && l["stream"] == "vod"
            && l["viewer_ip"] == "127.0.0.1"
            && l["connector"] == "HLS"
            && l["policy"] == "deny"
    })
    .await;
    assert!(
        !d.log_text().contains("jwt=abc"),
        "the token reached the log"
    );
}

#[tokio::test]
async fn policies_are_looked_up_by_stream_then_object_then_base_name() {
    let mut c = public(&["live"]);
    c.push_str("[[policies]]\nobject = \"secret1\"\ntenant = \"t1\"\ntype = \"deny\"\n");
    c.push_str("[[policies]]\nobject = \"live+secret1\"\ntenant = \"t1\"\ntype = \"public\"\n");
    c.push_str("[[policies]]\nobject = \"secret2\"\ntenant = \"t1\"\ntype = \"deny\"\n");
    let d = start(&c);
    let ask = |stream: &'static str| {
        let body = user_new_body(stream, "127.0.0.1", "x", URL, &session_id(stream), true);
        async move { user_new(d.trigger, &body).await.body }
    };
    assert_eq!(ask("live+abc").await, "true", "base name covers live+…");
    assert_eq!(
        ask("live+secret2").await,
        "false",
        "object id beats base name"
    );
    assert_eq!(
        ask("live+secret1").await,
        "true",
        "exact stream beats object id"
    );
    assert_eq!(ask("vod+secret2").await, "false");
    assert_eq!(ask("other").await, "false", "default policy is deny");
}

#[tokio::test]
async fn oversized_body_is_denied_with_bad_trigger() {
    let d = start(&public(&["vod"]));
    let mut body = user_new_body("vod", "127.0.0.1", "abc", URL, &session_id("c"), true);
    body.push_str(&"x".repeat(16 * 1024));
    let a = user_new(d.trigger, &body).await;
    assert_eq!((a.status, a.body.as_str()), (200, "false"));
    d.wait_for_log("bad-trigger", |l| l["reason"] == "bad-trigger")
        .await;
}

#[tokio::test]
async fn body_of_exactly_16_kib_is_read() {
    let d = start(&public(&["vod"]));
    let s = session_id("d");
    let head = user_new_body("vod", "127.0.0.1", "abc", "", &s, false);
    let url = format!("http://h/{}", "a".repeat(16 * 1024 - head.len() - 9));
    let body = user_new_body("vod", "127.0.0.1", "abc", &url, &s, false);
    assert_eq!(body.len(), 16 * 1024);
    assert_eq!(user_new(d.trigger, &body).await.body, "true");
}

#[tokio::test]
async fn garbled_bodies_are_denied_with_bad_trigger() {
    let d = start(&public(&["vod"]));
    for body in [
        &b"vod\n127.0.0.1\nabc"[..],
        b"",
        b"\xff\xfe\x00garbage\n\n\n\n\n\n",
        b"vod\n1\n2\n3\n4\n5\n6\n7\n8",
        b"\n127.0.0.1\nabc\nHLS\nurl\nsession\nfalse",
    ] {
        let a = post_trigger(d.trigger, "USER_NEW", &mist::uuid(), 1, body).await;
        assert_eq!((a.status, a.body.as_str()), (200, "false"), "{body:?}");
    }
}

#[tokio::test]
async fn unknown_trigger_gets_400_and_an_error_line() {
    let d = start(&public(&["vod"]));
    let a = post_trigger(
        d.trigger,
        // PUSH_REWRITE and STREAM_PUSH are answered since publishers (tests/publish.rs).
        "STREAM_BUFFER",
        &mist::uuid(),
        1,
        b"vod\nFULL",
    )
    .await;
    assert_eq!(a.status, 400);
    d.wait_for_log("unsupported trigger", |l| {
        l["level"] == "ERROR" && l["trigger"] == "STREAM_BUFFER"
    })
    .await;
}

#[tokio::test]
async fn user_end_drops_the_cached_decision_of_that_session() {
    let d = start(&public(&["vod"]));
    let (s1, s2) = (session_id("e1"), session_id("e2"));
    for s in [&s1, &s2] {
        user_new(
            d.trigger,
            &user_new_body("vod", "127.0.0.1", "tok", URL, s, true),
        )
        .await;
    }
    let end = post_trigger(
        d.trigger,
        "USER_END",
        &mist::uuid(),
        1,
        user_end_body("tok", "vod", &s1).as_bytes(),
    )
    .await;
    assert_eq!(end.status, 200);
    for s in [&s1, &s2] {
        user_new(
            d.trigger,
            &user_new_body("vod", "127.0.0.1", "tok", URL, s, false),
        )
        .await;
    }
    d.wait_for_log("four decisions", |_| {
        d.lookups(&s1).len() == 2 && d.lookups(&s2).len() == 2
    })
    .await;
    assert_eq!(
        d.lookups(&s1),
        ["evaluated", "evaluated"],
        "USER_END dropped s1"
    );
    assert_eq!(d.lookups(&s2), ["evaluated", "hit"], "s2 kept its decision");
    d.wait_for_log("session ended", |l| {
        l["message"] == "session ended" && l["session"] == s1.as_str()
    })
    .await;
}

#[tokio::test]
async fn other_paths_and_methods_are_refused() {
    let d = start(&public(&["vod"]));
    let a = mist::send_raw(
        d.trigger,
        b"GET /trigger HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(a.status, 405);
    let a = mist::send_raw(
        d.trigger,
        b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(a.status, 404);
}

#[tokio::test]
async fn sigterm_drains_and_exits_zero() {
    let d = start(&public(&["vod"]));
    let a = user_new(
        d.trigger,
        &user_new_body("vod", "127.0.0.1", "abc", URL, &session_id("f"), true),
    )
    .await;
    assert_eq!(a.body, "true");
    let status = tokio::task::spawn_blocking(move || d.stop()).await.unwrap();
    assert!(status.success(), "{status:?}");
}

/// Regression (slowloris): a connection that never finished its headers held its slot until the
/// header timeout; with every slot taken that way, MistServer's triggers waited in the backlog.
#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_gives_its_slot_to_a_new_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tmp = tempfile::tempdir().unwrap();
    let config = common::daemon::base_config(&tmp.path().join("data")).replace(
        "listen = \"127.0.0.1:0\"\n[control]",
        "listen = \"127.0.0.1:0\"\nmax_connections = 1\n[control]",
    ) + &public(&["vod"]);
    let d = Daemon::start_with(tmp.path(), &config).unwrap();
    // An idle connection takes the only slot.
    let mut idle = tokio::net::TcpStream::connect(d.trigger).await.unwrap();
    idle.write_all(b"POST /trigger HTTP/1.1\r\n").await.unwrap();
    let body = user_new_body(
        "vod",
        "127.0.0.1",
        "abc",
        URL,
        &session_id("max-conn"),
        true,
    );
    // Answered well before the 10 s header timeout could have freed the slot.
    let answered = tokio::time::timeout(
        std::time::Duration::from_secs(8),
        user_new(d.trigger, &body),
    )
    .await
    .expect("answered while the idle connection was held");
    assert_eq!(answered.body, "true");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(30), idle.read(&mut buf))
        .await
        .expect("the idle connection was closed");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

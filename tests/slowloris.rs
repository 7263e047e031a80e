//! Slow clients cannot lock honest ones out (issue #11, hole 5): thousands of loopback connections
//! that never finish their headers are held against the real daemon's two listeners while honest
//! requests are answered promptly, at the control API's scale (256 slots) and at the trigger
//! listener's own (`[trigger] max_connections`, 16384 by default).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::mist::{session_id, user_new, user_new_body};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// This process's (soft, hard) `RLIMIT_NOFILE`, read from /proc.
fn fd_limits() -> (usize, usize) {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let parse = |i: usize| -> Option<usize> {
        let line = text.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(i)?.parse().ok()
    };
    let soft = parse(3).unwrap_or(1024);
    (soft, parse(4).unwrap_or(soft))
}

/// The soft fd limit after raising it to the hard one with `prlimit` (when it is there); the
/// daemon, started afterwards, inherits it.
fn fd_limit() -> usize {
    let (soft, hard) = fd_limits();
    if soft < hard {
        let _ = std::process::Command::new("prlimit")
            .arg(format!("--pid={}", std::process::id()))
            .arg(format!("--nofile={hard}:{hard}"))
            .status();
    }
    fd_limits().0
}

/// Opens up to `n` connections that send half a request head and stop there.
async fn slowloris(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await
        else {
            continue;
        };
        let _ = s.write_all(b"POST /trigger HTTP/1.1\r\nHost: x\r\n").await;
        held.push(s);
    }
    held
}

/// Regression: 300 connections that never finished their headers took the control API's 256
/// slots before `accept` and locked it out for ~10 s at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_on_both_listeners_does_not_lock_out_honest_requests() {
    // The trigger listener at its default size when the fd limit allows one connection past it
    // (the test holds the client ends, the daemon the server ends); otherwise a smaller bound
    // with the same ratio of hostile connections to slots.
    let budget = fd_limit().saturating_sub(512);
    let (trigger_slots, trigger_hostile, control_hostile) = if budget >= 16_384 + 512 + 600 {
        let control = 3_000.min(budget - 16_384 - 512);
        (16_384, 16_384 + 512, control)
    } else {
        // The control API has 256 slots: 300 hostile connections fill it; the rest go to the
        // trigger listener, sized down so that they still outnumber its slots.
        let control = 3_000.min(300.max(budget / 2));
        let rest = budget.saturating_sub(control);
        (rest * 2 / 3, rest, control)
    };
    assert!(
        budget >= 400,
        "fd limit too low for the test: {}",
        fd_limit()
    );
    let tmp = tempfile::tempdir().unwrap();
    let config = common::daemon::base_config(&tmp.path().join("data")).replace(
        "listen = \"127.0.0.1:0\"\n[control]",
        &format!("listen = \"127.0.0.1:0\"\nmax_connections = {trigger_slots}\n[control]"),
    ) + "[[tenants]]\nid = \"t1\"\n[[policies]]\nobject = \"vod\"\ntenant = \"t1\"\ntype = \"public\"\n";
    let path = tmp.path().to_path_buf();
    let d = tokio::task::spawn_blocking(move || Daemon::start_with(&path, &config).unwrap())
        .await
        .unwrap();
    let control = d.control.unwrap();

    let held_control = slowloris(control, control_hostile).await;
    let held_trigger = slowloris(d.trigger, trigger_hostile).await;
    assert!(
        held_control.len() >= 300,
        "{} control connections",
        held_control.len()
    );
    assert!(
        held_trigger.len() > trigger_slots,
        "{} trigger connections for {trigger_slots} slots",
        held_trigger.len()
    );

    let api = common::api::Api::new(&d);
    for i in 0..3 {
        // The header timeout is 10 s: answers well within it were given a slot, not left one.
        let started = Instant::now();
        let (status, _) =
            tokio::time::timeout(Duration::from_secs(30), api.call("GET", "/healthz", None))
                .await
                .expect("the control API answers");
        assert_eq!(status, 200);
        let body = user_new_body(
            "vod",
            "127.0.0.1",
            "abc",
            "http://e/hls/vod/i.m3u8",
            &session_id(&format!("h{i}")),
            true,
        );
        let answer = tokio::time::timeout(Duration::from_secs(30), user_new(d.trigger, &body))
            .await
            .expect("the trigger listener answers");
        assert_eq!(answer.body, "true");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "took {:?}",
            started.elapsed()
        );
    }
    drop((held_control, held_trigger));
}

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::*;
use crate::shutdown::Shutdown;

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

/// How many sockets this process may open, after raising the soft limit to the hard one
/// (with `prlimit`, when it is there: no unsafe code for `setrlimit`).
pub(crate) fn fd_limit() -> usize {
    let (soft, hard) = fd_limits();
    if soft < hard {
        let _ = std::process::Command::new("prlimit")
            .arg(format!("--pid={}", std::process::id()))
            .arg(format!("--nofile={hard}:{hard}"))
            .status();
    }
    fd_limits().0
}

/// A listener on an ephemeral loopback port answering `ok`; `/slow` signals `gate` that it
/// arrived, then waits for `gate` to let it go.
async fn start(max_connections: usize, gate: Arc<Gate>) -> (SocketAddr, Shutdown) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, signal) = Shutdown::new();
    let limits = Limits {
        max_connections,
        // Far longer than any bound below: a test passing cannot be the timeout cutting them.
        header_timeout: Duration::from_secs(120),
        drain_timeout: Duration::from_secs(1),
    };
    let handler = move |req: Request<Incoming>, _| {
        let gate = gate.clone();
        async move {
            if req.uri().path() == "/slow" {
                gate.entered.notify_one();
                gate.release.notified().await;
            }
            Response::new(Full::new(Bytes::from_static(b"ok")))
        }
    };
    tokio::spawn(serve("test", listener, limits, handler, signal));
    (addr, stop)
}

#[derive(Default)]
struct Gate {
    entered: Notify,
    release: Notify,
}

/// Sends one complete request on a new connection and reads the answer.
async fn ask(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// Opens `n` connections that send half a request head and never finish it.
async fn slowloris(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(mut s) = TcpStream::connect(addr).await else {
            continue;
        };
        let _ = s.write_all(b"POST /trigger HTTP/1.1\r\nHost: x\r\n").await;
        held.push(s);
    }
    held
}

/// Regression: a slot was taken before `accept` and held until the connection closed, so 300
/// connections that never finished their headers locked the control API out until the header
/// timeout cut them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_do_not_lock_out_an_honest_request() {
    // Each hostile connection costs this process two sockets (both ends): sized to the fd limit;
    // 200 already outnumber the 64 slots three times over.
    let hostile = 3000.min(fd_limit().saturating_sub(256) / 2);
    assert!(
        hostile >= 200,
        "fd limit too low for the test: {}",
        fd_limit()
    );
    let (addr, _stop) = start(64, Arc::default()).await;
    let held = slowloris(addr, hostile).await;
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(30), ask(addr, "/healthz"))
        .await
        .expect("an honest request is answered while slowloris connections are held");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // The header timeout is 120 s; an answer this early means a slot was made, not freed by it.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // The attack goes on: more hostile connections, and honest requests still get through.
    let more = slowloris(addr, hostile / 2).await;
    for _ in 0..5 {
        let answer = tokio::time::timeout(Duration::from_secs(30), ask(addr, "/again"))
            .await
            .expect("answered");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    drop((held, more));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_inside_a_request_is_never_cut_and_new_ones_wait_for_it() {
    let gate = Arc::new(Gate::default());
    let (addr, _stop) = start(1, gate.clone()).await;
    let slow = tokio::spawn(ask(addr, "/slow"));
    // The slow request is in its handler: it holds the only slot from now on.
    gate.entered.notified().await;
    let mut fast = tokio::spawn(ask(addr, "/fast"));
    let early = tokio::time::timeout(Duration::from_millis(500), &mut fast).await;
    assert!(
        early.is_err(),
        "answered while the only slot was inside a request"
    );
    gate.release.notify_one();
    assert!(slow.await.unwrap().starts_with("HTTP/1.1 200"));
    assert!(fast.await.unwrap().starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_cut_to_make_room_and_sees_its_socket_closed() {
    let (addr, _stop) = start(1, Arc::default()).await;
    let mut idle = slowloris(addr, 1).await.pop().unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(30), ask(addr, "/next"))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(30), idle.read(&mut buf))
        .await
        .expect("the cut connection is closed, not left hanging");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_at_once_and_drains() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, signal) = Shutdown::new();
    let limits = Limits {
        max_connections: 8,
        header_timeout: Duration::from_secs(120),
        drain_timeout: Duration::from_secs(60),
    };
    let handler = |_req: Request<Incoming>, _| async { Response::new(Full::new(Bytes::new())) };
    let served = tokio::spawn(serve("test", listener, limits, handler, signal));
    let held = slowloris(addr, 4).await;
    let started = Instant::now();
    stop.trigger();
    tokio::time::timeout(Duration::from_secs(30), served)
        .await
        .expect("drained")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    drop(held);
}

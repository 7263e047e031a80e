//! Benchmark helper: a plain-http webhook that answers `200` after a fixed delay and counts calls
//! per `sessionId`, so the benchmark can check that every session cost exactly one call.
//!
//! `cargo run --release --example bench_webhook -- 127.0.0.2:PORT DELAY_MS [SECONDS]`.
//! `GET /stats` answers `calls=N sessions=M max_per_session=K`; `POST /direct` is answered the
//! same way but not counted (the benchmark's reference for the webhook's own latency).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;

type Calls = Arc<Mutex<HashMap<String, u32>>>;

async fn handle(
    req: Request<hyper::body::Incoming>,
    calls: Calls,
    delay: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() == Method::GET {
        let map = calls.lock().unwrap_or_else(|e| e.into_inner());
        let total: u64 = map.values().map(|&n| u64::from(n)).sum();
        let max = map.values().copied().max().unwrap_or(0);
        let text = format!(
            "calls={total} sessions={} max_per_session={max}\n",
            map.len()
        );
        return Ok(Response::new(Full::new(Bytes::from(text))));
    }
    // `/direct` is the benchmark's reference run straight at the webhook: answered, not counted.
    let counted = req.uri().path() != "/direct";
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    if !counted {
        tokio::time::sleep(delay).await;
        return Ok(Response::new(Full::new(Bytes::from_static(b"ok"))));
    }
    let session = body
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["sessionId"].as_str().map(str::to_owned))
        .unwrap_or_default();
    *calls
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(session)
        .or_default() += 1;
    tokio::time::sleep(delay).await;
    Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr: std::net::SocketAddr = args.get(1).expect("ADDR").parse().expect("address");
    let delay = Duration::from_millis(args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20));
    let secs: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(600);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
            let calls: Calls = Arc::default();
            let serve = async {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let calls = calls.clone();
                    let conn = http1::Builder::new().serve_connection(
                        TokioIo::new(stream),
                        service_fn(move |req| handle(req, calls.clone(), delay)),
                    );
                    tokio::spawn(conn);
                }
            };
            tokio::select! {
                _ = serve => {}
                _ = tokio::time::sleep(Duration::from_secs(secs)) => {}
            }
        });
}

//! Benchmark helper: the HTTP floor. A bare hyper HTTP/1.1 server that answers `true` to every
//! request without looking at it, on the same tokio runtime (`new_multi_thread`, default worker
//! count) and hyper versions as usher, with the same connection settings as `usher::listener`.
//!
//! `cargo run --release --example floor -- 127.0.0.1:PORT [SECONDS]` (exits after SECONDS, default 600).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};

fn main() {
    let addr: std::net::SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4260".into())
        .parse()
        .expect("address");
    let secs: u64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
            let serve = async {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let mut builder = http1::Builder::new();
                    builder
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(10))
                        .keep_alive(true)
                        .max_buf_size(64 * 1024);
                    let conn = builder.serve_connection(
                        TokioIo::new(stream),
                        service_fn(|req: Request<hyper::body::Incoming>| async move {
                            // Read the body as usher does, then ignore it.
                            let _ = req.into_body().collect().await;
                            let mut r = Response::new(Full::new(Bytes::from_static(b"true")));
                            r.headers_mut()
                                .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                            Ok::<_, Infallible>(r)
                        }),
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

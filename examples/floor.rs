//! Benchmark helper: the HTTP floor. A bare hyper HTTP/1.1 server that answers `true` to every
//! request without looking at it, on the same tokio runtime (`new_multi_thread`, default worker
//! count), hyper versions and allocator as usher, with the same connection settings as
//! `usher::listener`.
//!
//! With a public key PEM as third argument it is the *verify floor*: "floor + one verify" done in
//! a server. It takes the token from the body's third line and checks its ES256 signature with
//! the key parsed once (aws-lc-rs `ParsedPublicKey`, as usher does), answering `true` or `false`
//! (a `USER_END` is answered `true` unchecked), and nothing else: no JSON, no claims, no cache.
//! An ES256 verify costs more inside a server than in `benches/verify.rs`'s tight loop (the
//! request's own work evicts the curve tables from the core's caches between two verifies), so
//! this is the bound a fresh answer is held to.
//!
//! `cargo run --release --example floor -- 127.0.0.1:PORT [SECONDS] [PUBLIC_KEY_PEM]` (exits after
//! SECONDS, default 600).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};

/// The allocator usher runs on, so the floor differs from usher only by usher's own work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The verify floor's whole check: the third body line's ES256 signature.
fn signature_verifies(key: &ParsedPublicKey, body: &[u8]) -> bool {
    let Some(token) = body.split(|b| *b == b'\n').nth(2) else {
        return false;
    };
    let Some(dot) = token.iter().rposition(|b| *b == b'.') else {
        return false;
    };
    let mut signature = [0u8; 64];
    match URL_SAFE_NO_PAD.decode_slice(&token[dot + 1..], &mut signature) {
        Ok(64) => key.verify_sig(&token[..dot], &signature).is_ok(),
        _ => false,
    }
}

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
    let key: Option<Arc<ParsedPublicKey>> = std::env::args().nth(3).map(|path| {
        let pem = std::fs::read(path).expect("public key PEM");
        let decoding = jsonwebtoken::DecodingKey::from_ec_pem(&pem).expect("EC public key");
        let point = decoding.try_get_as_bytes().expect("EC point");
        Arc::new(ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).expect("P-256 point"))
    });
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
                    let key = key.clone();
                    let conn = builder.serve_connection(
                        TokioIo::new(stream),
                        service_fn(move |req: Request<hyper::body::Incoming>| {
                            let key = key.clone();
                            async move {
                                // `USER_END` is answered `true` without a check, as usher does.
                                let end = req
                                    .headers()
                                    .get("x-trigger")
                                    .is_some_and(|v| v.as_bytes() == b"USER_END");
                                // Read the body as usher does; the plain floor then ignores it.
                                let body = req.into_body().collect().await;
                                let allowed = match (&key, body) {
                                    (None, _) => true,
                                    (Some(_), Ok(_)) if end => true,
                                    (Some(key), Ok(body)) => {
                                        signature_verifies(key, &body.to_bytes())
                                    }
                                    (Some(_), Err(_)) => false,
                                };
                                let answer: &'static [u8] =
                                    if allowed { b"true" } else { b"false" };
                                let mut r = Response::new(Full::new(Bytes::from_static(answer)));
                                r.headers_mut()
                                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                                Ok::<_, Infallible>(r)
                            }
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

//! A JWKS endpoint over HTTPS on a chosen loopback address: serves a JWK Set with the test's
//! `Cache-Control` and `ETag` (answering `304` to a matching `If-None-Match`), or fails on
//! demand; counts requests and records each `If-None-Match`. Stops when dropped.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// What the server answers from now on.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `200` with `body`, and these headers when set; `304` when `etag` matches `If-None-Match`.
    Set {
        body: String,
        etag: Option<String>,
        cache_control: Option<String>,
    },
    /// This status with a short text body.
    Status(u16),
    /// Reset new connections (RST before TLS) and drop kept-alive ones without an answer.
    Reset,
}

impl Reply {
    /// `200` with `{"keys": keys}` and no caching headers.
    pub fn keys(keys: &[serde_json::Value]) -> Reply {
        Reply::Set {
            body: serde_json::json!({ "keys": keys }).to_string(),
            etag: None,
            cache_control: None,
        }
    }
}

struct State {
    reply: Mutex<Reply>,
    if_none_match: Mutex<Vec<Option<String>>>,
    hits: watch::Sender<usize>,
}

/// The running server.
pub struct JwksServer {
    addr: SocketAddr,
    state: Arc<State>,
    ca_file: tempfile::NamedTempFile,
    task: JoinHandle<()>,
}

impl JwksServer {
    /// Starts on `ip:0` (an ephemeral port) with `reply`.
    pub async fn start(ip: IpAddr, reply: Reply) -> JwksServer {
        let (ca_pem, acceptor) = tls();
        let mut ca_file = tempfile::NamedTempFile::new().expect("temp file");
        ca_file.write_all(ca_pem.as_bytes()).expect("write CA");
        ca_file.flush().expect("flush CA");
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .expect("bind JWKS server");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            reply: Mutex::new(reply),
            if_none_match: Mutex::new(Vec::new()),
            hits: watch::channel(0).0,
        });
        let task = tokio::spawn(accept_loop(listener, state.clone(), acceptor));
        JwksServer {
            addr,
            state,
            ca_file,
            task,
        }
    }

    /// `https://{ip}:{port}/.well-known/jwks.json`.
    pub fn url(&self) -> url::Url {
        let url = format!("https://{}/.well-known/jwks.json", self.addr);
        url.parse().expect("url")
    }

    /// A PEM file with the CA of the server certificate (for `[outbound] ca_file`).
    pub fn ca_file(&self) -> String {
        self.ca_file.path().display().to_string()
    }

    /// Changes the answer from now on.
    pub fn set_reply(&self, reply: Reply) {
        *self.state.reply.lock().expect("lock") = reply;
    }

    /// HTTP requests received so far (a reset connection is not one).
    pub fn hits(&self) -> usize {
        *self.state.hits.borrow()
    }

    /// The `If-None-Match` of every request, in order.
    pub fn if_none_match(&self) -> Vec<Option<String>> {
        self.state.if_none_match.lock().expect("lock").clone()
    }

    /// Waits until at least `n` requests were received.
    pub async fn wait_for_hits(&self, n: usize) {
        let mut rx = self.state.hits.subscribe();
        rx.wait_for(|c| *c >= n).await.expect("server alive");
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh CA, and an acceptor with a certificate for the test names signed by it.
fn tls() -> (String, TlsAcceptor) {
    let m = super::https::TlsMaterial::new();
    (m.ca_pem, m.acceptor)
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, acceptor: TlsAcceptor) {
    // Dropping the JoinSet (when this task is aborted) aborts every connection task too.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        if matches!(*state.reply.lock().expect("lock"), Reply::Reset) {
            let _ = tcp.set_zero_linger();
            drop(tcp);
            continue;
        }
        let (state, acceptor) = (state.clone(), acceptor.clone());
        conns.spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { answer(&req, &state) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

/// The answer to one request; `Err` makes hyper drop the connection without answering.
fn answer(req: &Request<Incoming>, state: &State) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let inm = req
        .headers()
        .get(hyper::header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    state.if_none_match.lock().expect("lock").push(inm.clone());
    state.hits.send_modify(|h| *h += 1);
    let reply = state.reply.lock().expect("lock").clone();
    Ok(match reply {
        Reply::Set {
            body,
            etag,
            cache_control,
        } => {
            let not_modified = etag.is_some() && etag == inm;
            let mut r = if not_modified {
                respond(304, Vec::new())
            } else {
                respond(200, body.into_bytes())
            };
            let headers = r.headers_mut();
            if let Some(etag) = etag {
                headers.insert(hyper::header::ETAG, etag.parse().expect("etag"));
            }
            if let Some(cc) = cache_control {
                headers.insert(hyper::header::CACHE_CONTROL, cc.parse().expect("cc"));
            }
            r
        }
        Reply::Status(code) => respond(code, format!("status {code}").into_bytes()),
        Reply::Reset => return Err(std::io::ErrorKind::ConnectionReset.into()),
    })
}

fn respond(code: u16, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

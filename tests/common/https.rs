//! A real HTTPS test server on a chosen loopback address, standing in for a customer's webhook:
//! scriptable answers, every request recorded, connections counted, shut down when dropped.

use std::convert::Infallible;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// Names and addresses the server certificate is valid for.
pub const CERT_NAMES: &[&str] = &["localhost", "hook.test", "127.0.0.1", "127.0.0.2", "::1"];

/// What the server does with the next connections/requests. Change it with `set_behaviour`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer with this status and a short body (`302` also gets a `Location`).
    Status(u16),
    /// Read the request, record it, never answer.
    Hang,
    /// Accept TCP, then reset it (RST) before TLS.
    Reset,
    /// Answer 200 with a 1 MiB body.
    LargeBody,
    /// Answer 200, send 8 KiB of body, then stall forever without ending it.
    TrickleBody,
    /// Present a certificate from a CA the client does not trust.
    WrongCert,
    /// Wait this many milliseconds, then answer with the status.
    Delayed(u64, u16),
    /// Answer with this status and a body that echoes the request (`bad token <viewerToken>`,
    /// then the whole request body), as a careless customer endpoint does.
    Echo(u16),
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// A header as a string ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    }
}

struct State {
    behaviour: Mutex<Behaviour>,
    requests: Mutex<Vec<RecordedRequest>>,
    request_count: watch::Sender<usize>,
    connections: watch::Sender<usize>,
}

/// The running server. Dropping it stops the accept loop and every connection.
pub struct HttpsServer {
    addr: SocketAddr,
    state: Arc<State>,
    ca_file: tempfile::NamedTempFile,
    ca_pem: String,
    task: JoinHandle<()>,
}

impl HttpsServer {
    /// Starts a server on `ip:0` (an ephemeral port) answering `Status(200)`.
    pub async fn start(ip: IpAddr) -> HttpsServer {
        let good = TlsMaterial::new();
        let wrong = TlsMaterial::new();
        let mut ca_file = tempfile::NamedTempFile::new().expect("temp file");
        ca_file.write_all(good.ca_pem.as_bytes()).expect("write CA");
        ca_file.flush().expect("flush CA");
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))
            .await
            .expect("bind test HTTPS server");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            behaviour: Mutex::new(Behaviour::Status(200)),
            requests: Mutex::new(Vec::new()),
            request_count: watch::channel(0).0,
            connections: watch::channel(0).0,
        });
        let task = tokio::spawn(accept_loop(
            listener,
            state.clone(),
            good.acceptor,
            wrong.acceptor,
        ));
        HttpsServer {
            addr,
            state,
            ca_file,
            ca_pem: good.ca_pem,
            task,
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `https://{host}:{port}{path}`.
    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.port())
    }

    /// Path of a PEM file with the CA that signed the server certificate (for `ca_file`).
    pub fn ca_file(&self) -> String {
        self.ca_file.path().display().to_string()
    }

    /// The CA certificate PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Changes what the server does from now on.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.state.behaviour.lock().expect("lock") = behaviour;
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().expect("lock").clone()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        *self.state.connections.borrow()
    }

    /// Waits until at least `n` requests were received (no sleeping, no polling).
    pub async fn wait_for_requests(&self, n: usize) {
        let mut rx = self.state.request_count.subscribe();
        rx.wait_for(|c| *c >= n).await.expect("server alive");
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A fresh test CA and an acceptor for a certificate it signed (shared with the JWKS server).
pub struct TlsMaterial {
    pub ca_pem: String,
    pub acceptor: TlsAcceptor,
}

impl TlsMaterial {
    /// A fresh CA and a server certificate for [`CERT_NAMES`] signed by it.
    pub fn new() -> TlsMaterial {
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA cert");
        let issuer = Issuer::new(ca_params, ca_key);
        let names: Vec<String> = CERT_NAMES.iter().map(|s| s.to_string()).collect();
        let leaf_key = KeyPair::generate().expect("leaf key");
        let leaf = CertificateParams::new(names)
            .expect("leaf params")
            .signed_by(&leaf_key, &issuer)
            .expect("leaf cert");
        let chain = vec![CertificateDer::from(leaf.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server cert");
        TlsMaterial {
            ca_pem: ca_cert.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    good: TlsAcceptor,
    wrong: TlsAcceptor,
) {
    // Dropping the JoinSet (when this task is aborted) aborts every connection task too.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        state.connections.send_modify(|c| *c += 1);
        let behaviour = *state.behaviour.lock().expect("lock");
        if behaviour == Behaviour::Reset {
            let _ = tcp.set_zero_linger();
            drop(tcp);
            continue;
        }
        let acceptor = if behaviour == Behaviour::WrongCert {
            wrong.clone()
        } else {
            good.clone()
        };
        let state = state.clone();
        conns.spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
        // Reap finished connection tasks so the set does not grow without bound.
        while conns.try_join_next().is_some() {}
    }
}

type ResBody = BoxBody<Bytes, Infallible>;

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<ResBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    state.requests.lock().expect("lock").push(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.to_string(),
        headers: parts.headers,
        body,
    });
    state.request_count.send_modify(|c| *c += 1);
    let behaviour = *state.behaviour.lock().expect("lock");
    let echoed = state
        .requests
        .lock()
        .expect("lock")
        .last()
        .map(|r| r.body.clone())
        .unwrap_or_default();
    let response = match behaviour {
        Behaviour::Echo(code) => {
            let token = serde_json::from_slice::<serde_json::Value>(&echoed)
                .ok()
                .and_then(|v| v["viewerToken"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut body = format!("bad token {token}\n").into_bytes();
            body.extend_from_slice(&echoed);
            full(code, body)
        }
        Behaviour::Hang => std::future::pending().await,
        Behaviour::LargeBody => full(200, vec![b'x'; 1 << 20]),
        Behaviour::TrickleBody => {
            let mut r = Response::new(BoxBody::new(Trickle { sent: false }));
            *r.status_mut() = StatusCode::OK;
            r
        }
        Behaviour::Delayed(ms, code) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            full(code, format!("status {code}").into_bytes())
        }
        Behaviour::Status(code) => {
            let mut r = full(code, format!("status {code}").into_bytes());
            if code / 100 == 3 {
                let location = hyper::header::HeaderValue::from_static("https://127.0.0.1/");
                r.headers_mut().insert(hyper::header::LOCATION, location);
            }
            r
        }
        // Reset and WrongCert never get here; answer 200 in case behaviour changed mid-flight.
        Behaviour::Reset | Behaviour::WrongCert => full(200, b"ok".to_vec()),
    };
    Ok(response)
}

fn full(code: u16, body: Vec<u8>) -> Response<ResBody> {
    let mut r = Response::new(BoxBody::new(http_body_util::Full::new(Bytes::from(body))));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// A body that sends 8 KiB and then never ends.
struct Trickle {
    sent: bool,
}

impl Body for Trickle {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent {
            return Poll::Pending;
        }
        self.sent = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'y'; 8192])))))
    }
}

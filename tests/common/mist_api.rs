//! A stand-in for MistServer's API (`POST /api2`, JSON) on `127.0.0.1:0`: it records what it
//! accepted, can go down (the port refuses connections) and come back on the same port, can demand
//! MistServer's challenge login, and can answer other commands through a hook.
//!
//! "Down" closes the listener and aborts every open connection, so clients see refused or reset
//! connections exactly as with a stopped MistServer; "up" binds the same port again (retrying for a
//! few seconds; ports in TIME_WAIT are reusable because tokio sets `SO_REUSEADDR`). For a MistServer
//! that is reachable but failing, use [`MistApi::fail_with_status`] instead.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Answers commands other than `invalidate_sessions` (`config`, `triggers`…): gets the whole
/// accepted request body, returns fields to merge into the answer.
pub type Hook = Arc<dyn Fn(&Value) -> Map<String, Value> + Send + Sync>;

#[derive(Default)]
struct Inner {
    accepted: Vec<Value>,
    invalidate_calls: Vec<Vec<String>>,
    /// Each accepted `stop_sessid`: when (wall clock) and which session ids.
    stop_calls: Vec<(std::time::SystemTime, Vec<String>)>,
    requests: u64,
    /// (username, md5_hex(password)) when a login is demanded.
    login: Option<(String, String)>,
    challenge: String,
    reject_with: String,
    fail_status: Option<u16>,
    hook: Option<Hook>,
    no_accounts: bool,
}

type State = Arc<Mutex<Inner>>;

/// The running stand-in. Shut down when dropped.
pub struct MistApi {
    /// The address it listens on; the same after `down()`/`up()`.
    pub addr: SocketAddr,
    state: State,
    server: Mutex<Option<JoinHandle<()>>>,
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

fn lock(state: &State) -> MutexGuard<'_, Inner> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl MistApi {
    /// Starts on an ephemeral loopback port, up, accepting without a login (like a localhost call).
    pub async fn start() -> MistApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state: State = Arc::new(Mutex::new(Inner {
            challenge: "challenge-1".into(),
            reject_with: "CHALL".into(),
            ..Inner::default()
        }));
        let server = tokio::spawn(accept_loop(listener, state.clone()));
        MistApi {
            addr,
            state,
            server: Mutex::new(Some(server)),
        }
    }

    /// The API URL to put in `[mist] api_url`.
    pub fn url(&self) -> String {
        format!("http://{}/api2", self.addr)
    }

    /// Demands the challenge login for `username`/`password` from now on.
    pub fn require_login(&self, username: &str, password: &str) {
        lock(&self.state).login = Some((username.into(), md5_hex(password)));
    }

    /// Sets the challenge handed out from now on (answers to the old one stop working).
    pub fn set_challenge(&self, challenge: &str) {
        lock(&self.state).challenge = challenge.into();
    }

    /// The `authorize.status` given for a wrong answer: `CHALL` (MistServer's own, the default) or
    /// e.g. `DENIED`.
    pub fn reject_with(&self, status: &str) {
        lock(&self.state).reject_with = status.into();
    }

    /// Answers every request with this HTTP status and an empty body (`None`: back to normal).
    pub fn fail_with_status(&self, status: Option<u16>) {
        lock(&self.state).fail_status = status;
    }

    /// Installs the hook for other commands.
    /// Acts like a MistServer with no account at all, called from its own host: every command runs
    /// and every answer says `authorize: {status: "NOACC"}` (no login is demanded).
    pub fn without_accounts(&self) {
        lock(&self.state).no_accounts = true;
    }

    pub fn set_hook(&self, hook: Hook) {
        lock(&self.state).hook = Some(hook);
    }

    /// Every request body it accepted (authorized), in order.
    pub fn accepted(&self) -> Vec<Value> {
        lock(&self.state).accepted.clone()
    }

    /// The stream names of each accepted `invalidate_sessions`, one list per call.
    pub fn invalidate_calls(&self) -> Vec<Vec<String>> {
        lock(&self.state).invalidate_calls.clone()
    }

    /// Every stream name invalidated so far, in order.
    pub fn invalidated(&self) -> Vec<String> {
        lock(&self.state).invalidate_calls.concat()
    }

    /// Every session id ended with `stop_sessid`, each with the wall-clock time it arrived.
    pub fn stopped(&self) -> Vec<(std::time::SystemTime, String)> {
        lock(&self.state)
            .stop_calls
            .iter()
            .flat_map(|(at, ids)| ids.iter().map(|id| (*at, id.clone())))
            .collect()
    }

    /// Polls until `count` session ids have been ended, up to `timeout`; returns them.
    pub async fn wait_stopped(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Vec<(std::time::SystemTime, String)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let stopped = self.stopped();
            if stopped.len() >= count || tokio::time::Instant::now() >= deadline {
                return stopped;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Requests received (accepted or not, failures included).
    pub fn requests(&self) -> u64 {
        lock(&self.state).requests
    }

    /// Polls until `name` has been invalidated, up to `timeout`.
    pub async fn wait_invalidated(&self, name: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.invalidated().iter().any(|n| n == name) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Closes the port and every open connection: connections are refused until [`up`](Self::up).
    pub async fn down(&self) {
        let server = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(server) = server {
            server.abort();
            let _ = server.await;
        }
    }

    /// Listens again on the same port (no-op when it is up). Panics when the port cannot be
    /// bound within 10 s.
    pub async fn up(&self) {
        if self
            .server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    panic!("mist stand-in cannot rebind {}: {e}", self.addr)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let server = tokio::spawn(accept_loop(listener, self.state.clone()));
        let old = self
            .server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(server);
        if let Some(old) = old {
            old.abort();
        }
    }
}

impl Drop for MistApi {
    fn drop(&mut self) {
        if let Some(server) = self.server.lock().unwrap_or_else(|e| e.into_inner()).take() {
            server.abort();
        }
    }
}

/// Accepts until aborted; dropping the `JoinSet` on abort aborts every connection with it.
async fn accept_loop(listener: TcpListener, state: State) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                connections.spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(state: State, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(reply(StatusCode::BAD_REQUEST, Bytes::new())),
    };
    let mut inner = lock(&state);
    inner.requests += 1;
    if let Some(status) = inner.fail_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Ok(reply(status, Bytes::new()));
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return Ok(reply(
            StatusCode::BAD_REQUEST,
            Bytes::from_static(b"not JSON"),
        ));
    };
    let mut answer = Map::new();
    match authorize(&inner, &request) {
        Err(refusal) => {
            answer.insert("authorize".into(), refusal);
            return Ok(json_reply(answer));
        }
        Ok(Some(ok)) => {
            answer.insert("authorize".into(), ok);
        }
        Ok(None) if inner.no_accounts => {
            answer.insert("authorize".into(), json!({"status": "NOACC"}));
        }
        Ok(None) => {}
    }
    inner.accepted.push(request.clone());
    if let Some(names) = request.get("invalidate_sessions") {
        let names = match names {
            Value::String(s) => vec![s.clone()],
            Value::Array(list) => list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        inner.invalidate_calls.push(names);
    }
    if let Some(ids) = request.get("stop_sessid") {
        let ids = match ids {
            Value::String(s) => vec![s.clone()],
            Value::Array(list) => list
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        inner.stop_calls.push((std::time::SystemTime::now(), ids));
    }
    if let Some(hook) = inner.hook.clone() {
        drop(inner);
        answer.extend(hook(&request));
    }
    Ok(json_reply(answer))
}

/// `Ok(None)`: no login needed or asked; `Ok(Some(OK))`: logged in; `Err(object)`: refused.
fn authorize(inner: &Inner, request: &Value) -> Result<Option<Value>, Value> {
    let auth = request.get("authorize");
    let Some((user, password_md5)) = &inner.login else {
        return Ok(auth.map(|_| json!({"status": "OK"})));
    };
    let field = |k: &str| {
        auth.and_then(|a| a.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let (u, p) = (field("username"), field("password"));
    let expected = md5_hex(&format!("{password_md5}{}", inner.challenge));
    if !u.is_empty() && u == user && p == expected {
        return Ok(Some(json!({"status": "OK"})));
    }
    let status = if p.is_empty() {
        "CHALL"
    } else {
        inner.reject_with.as_str()
    };
    Err(json!({"status": status, "challenge": inner.challenge}))
}

fn json_reply(answer: Map<String, Value>) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(&Value::Object(answer)).unwrap_or_default();
    let mut r = reply(StatusCode::OK, Bytes::from(bytes));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r
}

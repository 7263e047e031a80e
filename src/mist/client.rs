//! The one call usher makes to MistServer's API: `invalidate_sessions`, with MistServer's challenge
//! login when a username is configured (SPEC §1, last bullet).
//!
//! MistServer stores `md5_hex(password)` and accepts `md5_hex(md5_hex(password) + challenge)` as the
//! answer to a challenge, sent together with the command in the same request. The last challenge
//! that worked is kept so the next call can answer it at once; only a fresh `CHALL` costs a second
//! round trip. Neither the password nor any hash of it is ever logged or put in an error.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use md5::{Digest, Md5};
use serde_json::{Map, Value, json};

use crate::config::MistConfig;

/// Time allowed to open the TCP connection to MistServer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Time allowed for a whole API call, answer included.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Most bytes of an API answer read; MistServer's answers to our commands are tiny.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Why a MistServer API call failed.
#[derive(Debug, thiserror::Error)]
pub enum MistError {
    /// `[mist] api_url` is not a usable `http`/`https` URL.
    #[error("invalid [mist] api_url: {0}")]
    Config(String),
    /// The HTTP client could not be built.
    #[error("cannot build the MistServer API client: {0}")]
    Client(#[source] reqwest::Error),
    /// Refused, reset, timed out, or the answer could not be read.
    #[error("MistServer API unreachable: {}", chain(.0))]
    Network(#[source] reqwest::Error),
    /// MistServer answered with a non-2xx status.
    #[error("MistServer API answered HTTP {0}")]
    Status(u16),
    /// The answer was not a JSON object, was too large, or lacked a field the protocol needs.
    #[error("MistServer API answer unusable: {0}")]
    Protocol(&'static str),
    /// MistServer did not accept the login; the value is its `authorize.status` (`NOACC`, `CHALL`…).
    #[error("MistServer refused the login (status {0})")]
    Auth(String),
}

impl MistError {
    /// A stable short name for metrics and logs.
    pub const fn kind(&self) -> &'static str {
        match self {
            MistError::Config(_) => "config",
            MistError::Client(_) => "client",
            MistError::Network(_) => "network",
            MistError::Status(_) => "status",
            MistError::Protocol(_) => "protocol",
            MistError::Auth(_) => "auth",
        }
    }
}

/// The error and its sources on one line: reqwest's own message hides the cause.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Lower-case hex MD5 of `input`, as MistServer computes it.
pub fn md5_hex(input: &str) -> String {
    hex::encode(Md5::digest(input.as_bytes()))
}

/// The answer to MistServer's challenge for a password whose MD5 is `password_md5`.
pub fn challenge_answer(password_md5: &str, challenge: &str) -> String {
    md5_hex(&format!("{password_md5}{challenge}"))
}

/// Credentials for the challenge login. `Debug` never shows the password hash.
struct Login {
    username: String,
    password_md5: String,
    /// The last challenge MistServer accepted an answer to; tried first on the next call.
    challenge: Mutex<Option<String>>,
}

/// A client for MistServer's API. Cheap to clone; clones share the cached challenge.
#[derive(Clone)]
pub struct MistClient {
    http: reqwest::Client,
    url: reqwest::Url,
    login: Option<Arc<Login>>,
    /// The API URL names a loopback address, so MistServer sees usher as a local caller.
    local: bool,
}

impl std::fmt::Debug for MistClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MistClient")
            .field("url", &self.url.as_str())
            .field(
                "username",
                &self.login.as_ref().map(|l| l.username.as_str()),
            )
            .finish_non_exhaustive()
    }
}

/// What `authorize.status` said in an answer.
enum Authorize {
    /// No `authorize` object: MistServer did not ask for a login.
    Absent,
    Ok,
    Challenge(String),
    Refused(String),
}

impl MistClient {
    /// Builds a client for `config.api_url`: no proxy, 2 s to connect, 5 s per call.
    pub fn new(config: &MistConfig) -> Result<MistClient, MistError> {
        let url = reqwest::Url::parse(&config.api_url)
            .map_err(|e| MistError::Config(format!("{}: {e}", config.api_url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(MistError::Config("the scheme must be http or https".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(MistError::Config(
                "credentials go in [mist] username and password, not in the URL".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("usher/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(MistError::Client)?;
        let login = (!config.username.is_empty()).then(|| {
            Arc::new(Login {
                username: config.username.clone(),
                password_md5: md5_hex(&config.password),
                challenge: Mutex::new(None),
            })
        });
        let local = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        Ok(MistClient {
            http,
            url,
            login,
            local,
        })
    }

    /// The API URL this client calls.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// Makes MistServer re-run `USER_NEW` for every session of `streams` (exact stream names).
    /// `Ok` means MistServer accepted the command. An empty list makes no call.
    pub async fn invalidate_sessions(&self, streams: &[String]) -> Result<(), MistError> {
        if streams.is_empty() {
            return Ok(());
        }
        let mut command = Map::new();
        command.insert("invalidate_sessions".into(), json!(streams));
        self.command(command).await.map(drop)
    }

    /// Sends a chunk of the durable queue's keys (stream names to invalidate, sessions to end, see
    /// [`super::command`]) as one API call. An empty chunk makes no call.
    pub async fn send_queued(&self, chunk: &[String]) -> Result<(), MistError> {
        match super::command::api_body(chunk) {
            Some(body) => self.command(body).await.map(drop),
            None => Ok(()),
        }
    }

    /// The names of the streams MistServer has active now (`{"active_streams": true}`), so an
    /// invalidation can name streams usher has not seen since it started. Accepts MistServer's
    /// list form and its object form (stream name → details).
    pub async fn active_streams(&self) -> Result<Vec<String>, MistError> {
        let mut command = Map::new();
        command.insert("active_streams".into(), Value::Bool(true));
        command.insert("minimal".into(), json!(1));
        let answer = self.command(command).await?;
        Ok(match answer.get("active_streams") {
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Some(Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        })
    }

    /// Sends one API command (the members of `command`, e.g. `{"config": {…}}`), logging in with
    /// the challenge of SPEC §1 when a username is configured, and returns MistServer's answer.
    pub async fn command(&self, command: Map<String, Value>) -> Result<Value, MistError> {
        let Some(login) = &self.login else {
            let answer = self.post(Value::Object(command)).await?;
            return match authorize_status(&answer, self.local)? {
                Authorize::Absent | Authorize::Ok => Ok(answer),
                Authorize::Challenge(_) => Err(MistError::Auth("CHALL".into())),
                Authorize::Refused(status) => Err(MistError::Auth(status)),
            };
        };
        let cached = lock(&login.challenge).clone();
        let (challenge, from_cache) = match cached {
            Some(c) => (c, true),
            None => match self.send_with_login(login, &command, "").await? {
                (Authorize::Absent | Authorize::Ok, answer) => return Ok(answer),
                (Authorize::Challenge(c), _) => (c, false),
                (Authorize::Refused(status), _) => return Err(MistError::Auth(status)),
            },
        };
        let answer = challenge_answer(&login.password_md5, &challenge);
        match self.send_with_login(login, &command, &answer).await? {
            (Authorize::Absent | Authorize::Ok, answer) => {
                *lock(&login.challenge) = Some(challenge);
                Ok(answer)
            }
            // A cached challenge went stale: answer the fresh one, once.
            (Authorize::Challenge(fresh), _) if from_cache => {
                let answer = challenge_answer(&login.password_md5, &fresh);
                match self.send_with_login(login, &command, &answer).await? {
                    (Authorize::Absent | Authorize::Ok, answer) => {
                        *lock(&login.challenge) = Some(fresh);
                        Ok(answer)
                    }
                    (other, _) => Err(self.refused(login, other)),
                }
            }
            (other, _) => Err(self.refused(login, other)),
        }
    }

    fn refused(&self, login: &Login, status: Authorize) -> MistError {
        *lock(&login.challenge) = None;
        let status = match status {
            Authorize::Challenge(_) => "CHALL".to_string(),
            Authorize::Refused(s) => s,
            Authorize::Absent | Authorize::Ok => "OK".to_string(),
        };
        tracing::warn!(
            api_url = self.url.as_str(),
            username = login.username.as_str(),
            status = status.as_str(),
            "mist login refused"
        );
        MistError::Auth(status)
    }

    async fn send_with_login(
        &self,
        login: &Login,
        command: &Map<String, Value>,
        password: &str,
    ) -> Result<(Authorize, Value), MistError> {
        let mut body = command.clone();
        body.insert(
            "authorize".into(),
            json!({ "username": login.username, "password": password }),
        );
        let answer = self.post(Value::Object(body)).await?;
        Ok((authorize_status(&answer, self.local)?, answer))
    }

    /// One `POST` of `body`; the answer must be 2xx and a JSON object.
    async fn post(&self, body: Value) -> Result<Value, MistError> {
        let bytes = serde_json::to_vec(&body).map_err(|_| MistError::Protocol("request"))?;
        let mut response = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(bytes)
            .send()
            .await
            .map_err(MistError::Network)?;
        let status = response.status();
        if !status.is_success() {
            return Err(MistError::Status(status.as_u16()));
        }
        let mut buf = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(MistError::Network)? {
            if buf.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(MistError::Protocol("answer too large"));
            }
            buf.extend_from_slice(&chunk);
        }
        match serde_json::from_slice::<Value>(&buf) {
            Ok(v) if v.is_object() => Ok(v),
            _ => Err(MistError::Protocol("not a JSON object")),
        }
    }
}

/// Reads `authorize.status` (and the challenge of a `CHALL`) from an answer.
///
/// `NOACC` means MistServer has no account at all. It then runs a local caller's commands (a
/// connection from its own host without `X-Forwarded-For`) and still answers `NOACC`; from anywhere
/// else nothing runs. So `NOACC` counts as accepted only when `local` (the API URL is loopback).
fn authorize_status(answer: &Value, local: bool) -> Result<Authorize, MistError> {
    let Some(auth) = answer.get("authorize") else {
        return Ok(Authorize::Absent);
    };
    match auth.get("status").and_then(Value::as_str) {
        Some("OK") => Ok(Authorize::Ok),
        Some("NOACC") if local => Ok(Authorize::Ok),
        Some("CHALL") => match auth.get("challenge").and_then(Value::as_str) {
            Some(c) if !c.is_empty() => Ok(Authorize::Challenge(c.to_string())),
            _ => Err(MistError::Protocol("CHALL without a challenge")),
        },
        Some(other) => Ok(Authorize::Refused(other.to_string())),
        None => Err(MistError::Protocol("authorize without a status")),
    }
}

/// Locks `m`, carrying on past a poisoned lock: the value is a plain `Option<String>`.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_hex_matches_the_rfc_1321_vectors() {
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn challenge_answer_for_test_test_abc_is_pinned() {
        // md5_hex("test") = 098f6bcd4621d373cade4e832627b4f6, then md5_hex of that + "abc".
        assert_eq!(md5_hex("test"), "098f6bcd4621d373cade4e832627b4f6");
        // Computed once outside Rust: md5("098f6bcd4621d373cade4e832627b4f6abc").
        assert_eq!(
            challenge_answer(&md5_hex("test"), "abc"),
            "ed13432526d30455665dae29e6e745af"
        );
    }

    #[test]
    fn authorize_status_reads_every_shape() {
        assert!(matches!(
            authorize_status(&json!({}), false),
            Ok(Authorize::Absent)
        ));
        let ok = json!({"authorize": {"status": "OK"}});
        assert!(matches!(authorize_status(&ok, false), Ok(Authorize::Ok)));
        let chall = json!({"authorize": {"status": "CHALL", "challenge": "c1"}});
        assert!(
            matches!(authorize_status(&chall, false), Ok(Authorize::Challenge(c)) if c == "c1")
        );
        let bare = json!({"authorize": {"status": "CHALL"}});
        assert!(matches!(
            authorize_status(&bare, true),
            Err(MistError::Protocol(_))
        ));
    }

    /// Regression: a MistServer with no account answers a local call `NOACC` and runs it; usher
    /// took that for a refused login, so no invalidation ever reached a fresh MistServer.
    #[test]
    fn noacc_is_accepted_from_loopback_only() {
        let noacc = json!({"authorize": {"status": "NOACC"}});
        assert!(matches!(authorize_status(&noacc, true), Ok(Authorize::Ok)));
        assert!(
            matches!(authorize_status(&noacc, false), Ok(Authorize::Refused(s)) if s == "NOACC")
        );
        let mut c = MistConfig::default();
        for (url, local) in [
            ("http://127.0.0.1:4242/api2", true),
            ("http://127.9.9.9:4242/api2", true),
            ("http://[::1]:4242/api2", true),
            ("http://localhost:4242/api2", true),
            ("http://mist.internal:4242/api2", false),
            ("http://192.0.2.10:4242/api2", false),
        ] {
            c.api_url = url.into();
            assert_eq!(MistClient::new(&c).unwrap().local, local, "{url}");
        }
    }

    #[test]
    fn api_url_must_be_http_without_userinfo() {
        let mut c = MistConfig::default();
        assert!(MistClient::new(&c).is_ok());
        c.api_url = "ftp://127.0.0.1/api2".into();
        assert!(matches!(MistClient::new(&c), Err(MistError::Config(_))));
        c.api_url = "http://u:p@127.0.0.1:4242/api2".into();
        assert!(matches!(MistClient::new(&c), Err(MistError::Config(_))));
        c.api_url = "not a url".into();
        assert!(matches!(MistClient::new(&c), Err(MistError::Config(_))));
    }

    #[test]
    fn debug_never_shows_the_password_hash() {
        let c = MistConfig {
            username: "admin".into(),
            password: "secret".into(),
            ..MistConfig::default()
        };
        let client = MistClient::new(&c).unwrap();
        let shown = format!("{client:?}");
        assert!(shown.contains("admin"));
        assert!(!shown.contains(&md5_hex("secret")) && !shown.contains("secret"));
    }
}

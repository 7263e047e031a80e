//! The control API (SPEC §5, §6) on its own listener: bearer authentication, routing, bodies, and
//! the one place where an error becomes a status and a stable code. Each resource has a file:
//! [`keys`], [`policies`], [`invalidate`], [`test`] (the dry run), [`viewers`] and [`sessions`]
//! (live sessions, SPEC §9); [`openapi`] describes them all,
//! and `GET /v1/status` serves [`crate::status`].

pub mod error;
pub mod fleet;
pub mod invalidate;
pub mod keys;
pub mod openapi;
pub mod policies;
pub mod sessions;
pub mod test;
pub mod viewers;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

pub use error::ApiError;

use crate::app::App;
use crate::recent::Recent;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Time allowed for a body to arrive once the headers have.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a handler answers on success: a status and a JSON body.
pub type Reply = Result<(StatusCode, serde_json::Value), ApiError>;

/// Everything the control API needs; cheap to clone. Handlers parse, hand a change to
/// [`App::enforcer`], and render what it did.
#[derive(Clone)]
pub struct Control {
    app: App,
    tokens: Arc<Vec<String>>,
    /// The last minute of counters behind `GET /v1/status`; see [`Control::recent`].
    recent: Recent,
}

impl Control {
    /// The control API over `app`, accepting any of `tokens`. With no token configured every
    /// `/v1/` call is refused: the API fails closed.
    pub fn new(app: App, tokens: Vec<String>) -> Control {
        Control {
            app,
            tokens: Arc::new(tokens),
            recent: Recent::default(),
        }
    }

    /// The window `GET /v1/status` reads; the daemon feeds it with [`Recent::sample`].
    pub fn recent(&self) -> &Recent {
        &self.recent
    }

    /// Whether the request carries one of the configured tokens. Every token is compared, in
    /// constant time, whatever matched before.
    fn authorized(&self, header: Option<&HeaderValue>) -> bool {
        let Some((scheme, given)) = header
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
        else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        let given = given.trim().as_bytes();
        let mut ok = subtle::Choice::from(0);
        for token in self.tokens.iter() {
            ok |= token.as_bytes().ct_eq(given);
        }
        ok.into()
    }
}

/// The control API's endpoints: the one route table. Each has its path template (`{name}`
/// stands for one segment) and the methods it answers (its `Allow` header); [`route`] says what
/// each does. `openapi.json` is checked against [`routes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Healthz,
    Metrics,
    Keys,
    Key,
    KeyRevoke,
    Policy,
    Invalidate,
    Test,
    Status,
    ViewersRevoke,
    SessionsCount,
    Fleet,
    OpenApi,
}

impl Endpoint {
    const ALL: [Endpoint; 13] = [
        Endpoint::Healthz,
        Endpoint::Metrics,
        Endpoint::Keys,
        Endpoint::Key,
        Endpoint::KeyRevoke,
        Endpoint::Policy,
        Endpoint::Invalidate,
        Endpoint::Test,
        Endpoint::Status,
        Endpoint::ViewersRevoke,
        Endpoint::SessionsCount,
        Endpoint::Fleet,
        Endpoint::OpenApi,
    ];

    /// Its path, `{kid}` and `{object}` standing for one segment each.
    const fn template(self) -> &'static str {
        match self {
            Endpoint::Healthz => "/healthz",
            Endpoint::Metrics => "/metrics",
            Endpoint::Keys => "/v1/keys",
            Endpoint::Key => "/v1/keys/{kid}",
            Endpoint::KeyRevoke => "/v1/keys/{kid}/revoke",
            Endpoint::Policy => "/v1/policies/{object}",
            Endpoint::Invalidate => "/v1/invalidate",
            Endpoint::Test => "/v1/test",
            Endpoint::Status => "/v1/status",
            Endpoint::ViewersRevoke => "/v1/viewers/revoke",
            Endpoint::SessionsCount => "/v1/sessions/count",
            Endpoint::Fleet => "/v1/fleet",
            Endpoint::OpenApi => "/v1/openapi.json",
        }
    }

    /// The methods it answers, as its `Allow` header lists them.
    const fn allow(self) -> &'static str {
        match self {
            Endpoint::Key => "PUT",
            Endpoint::KeyRevoke
            | Endpoint::Invalidate
            | Endpoint::Test
            | Endpoint::ViewersRevoke => "POST",
            Endpoint::Policy => "GET, PUT, DELETE",
            _ => "GET",
        }
    }

    /// The endpoint `path` is, by its template; the name segment (a kid, an object) is decoded
    /// only by [`route`], after the method and the token were checked.
    fn of(path: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| {
            let mut template = e.template().split('/');
            let mut given = path.split('/');
            loop {
                match (template.next(), given.next()) {
                    (None, None) => return true,
                    (Some(t), Some(_)) if t.starts_with('{') => {}
                    (Some(t), Some(g)) if t == g => {}
                    _ => return false,
                }
            }
        })
    }
}

/// Every `(method, path template)` the control API answers.
pub fn routes() -> impl Iterator<Item = (&'static str, &'static str)> {
    Endpoint::ALL
        .into_iter()
        .flat_map(|e| e.allow().split(", ").map(move |m| (m, e.template())))
}

/// Serves one request on the control listener. A method an endpoint does not answer is 405 with
/// `Allow` before anything else (the token, the path's names) is looked at.
pub async fn handle(ctl: Control, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let endpoint = Endpoint::of(&path);
    if let Some(allow) = endpoint
        .map(Endpoint::allow)
        .filter(|a| !a.split(", ").any(|m| m == method))
    {
        let e = ApiError::MethodNotAllowed(allow);
        let mut response = json(e.status(), &e.body());
        response
            .headers_mut()
            .insert(hyper::header::ALLOW, HeaderValue::from_static(allow));
        return response;
    }
    if endpoint == Some(Endpoint::Metrics) {
        // Prometheus text, no auth (like /healthz): it carries no ids, tokens or secrets.
        let mut response = Response::new(Full::new(Bytes::from(ctl.app.render_metrics())));
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        return response;
    }
    let reply = match endpoint {
        Some(endpoint) => route(&ctl, endpoint, req).await,
        None => Err(ApiError::NotFound("no such endpoint".into())),
    };
    let (status, body) = match reply {
        Ok(ok) => ok,
        Err(e) => (e.status(), e.body()),
    };
    tracing::info!(
        method = method.as_str(),
        path = path.as_str(),
        status = status.as_u16(),
        "control"
    );
    json(status, &body)
}

/// What each endpoint does (with a method it answers: [`handle`] checked).
async fn route(ctl: &Control, endpoint: Endpoint, req: Request<Incoming>) -> Reply {
    if endpoint == Endpoint::Healthz {
        return Ok((StatusCode::OK, serde_json::json!("ok")));
    }
    if !ctl.authorized(req.headers().get(AUTHORIZATION)) {
        return Err(ApiError::Unauthorized);
    }
    // The kid or object: the path's third segment (`/v1/keys/{kid}`, `/v1/policies/{object}`).
    let name = req
        .uri()
        .path()
        .split('/')
        .nth(3)
        .map(percent_decode)
        .transpose()?;
    let name = name.as_deref().unwrap_or_default();
    // With `[fleet]`, a write is conditional on the revision the client read (SPEC §11).
    let expected = fleet::if_match(req.headers().get(hyper::header::IF_MATCH))?;
    match (endpoint, req.method().clone()) {
        (Endpoint::Keys, _) => Ok(keys::list(ctl)),
        (Endpoint::Key, _) => keys::put(ctl, name, &body(req).await?, expected).await,
        (Endpoint::KeyRevoke, _) => keys::revoke(ctl, name, expected).await,
        (Endpoint::Policy, Method::GET) => policies::get(ctl, name).await,
        (Endpoint::Policy, Method::PUT) => {
            policies::put(ctl, name, &body(req).await?, expected).await
        }
        (Endpoint::Policy, _) => policies::delete(ctl, name, expected).await,
        (Endpoint::Invalidate, _) => invalidate::post(ctl, &body(req).await?).await,
        (Endpoint::Test, _) => test::post(ctl, &body(req).await?).await,
        (Endpoint::Status, _) => Ok(status(ctl)),
        (Endpoint::ViewersRevoke, _) => viewers::revoke(ctl, &body(req).await?, expected).await,
        (Endpoint::SessionsCount, _) => sessions::count(ctl),
        (Endpoint::Fleet, _) => fleet::list(ctl),
        (Endpoint::OpenApi, _) => Ok((StatusCode::OK, openapi::document())),
        // Answered before: `/healthz` above, `/metrics` by `handle`.
        (Endpoint::Healthz | Endpoint::Metrics, _) => {
            Err(ApiError::NotFound("no such endpoint".into()))
        }
    }
}

/// `GET /v1/status`: the report of [`crate::status`].
fn status(ctl: &Control) -> (StatusCode, serde_json::Value) {
    let report = crate::status::build(&ctl.app, &ctl.recent);
    (
        StatusCode::OK,
        serde_json::to_value(report).unwrap_or_default(),
    )
}

/// Reads a body, at most [`MAX_BODY_BYTES`] and within [`BODY_TIMEOUT`].
async fn body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let limited = Limited::new(req.into_body(), MAX_BODY_BYTES);
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::BadBody("body over 64 KiB".into()))
        }
        Ok(Err(_)) => Err(ApiError::BadBody("body could not be read".into())),
        Err(_) => Err(ApiError::BadBody("body timed out".into())),
    }
}

/// Parses a JSON body; serde's message names an unknown or missing field.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadBody(e.to_string()))
}

/// Decodes `%XX` escapes of a path segment (a `+` stays a `+`: stream names use it).
fn percent_decode(segment: &str) -> Result<String, ApiError> {
    let bad = || ApiError::BadName("bad percent-encoding in the path".into());
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_vec(body).unwrap_or_default();
    text.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Merges the fields of `extra` (an object) into `base` (an object).
pub fn merge(mut base: serde_json::Value, extra: impl serde::Serialize) -> serde_json::Value {
    if let (Some(map), Ok(serde_json::Value::Object(more))) =
        (base.as_object_mut(), serde_json::to_value(extra))
    {
        map.extend(more);
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_plus_and_decodes_escapes() {
        assert_eq!(percent_decode("live+abc").unwrap(), "live+abc");
        assert_eq!(percent_decode("live%2Babc").unwrap(), "live+abc");
        assert!(percent_decode("bad%2").is_err());
        assert!(percent_decode("bad%zz").is_err());
        assert!(percent_decode("%ff").is_err());
    }

    #[test]
    fn unknown_field_is_refused_naming_it() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct B {
            tenant: String,
        }
        let err = parse::<B>(br#"{"tenant":"t1","colour":"red"}"#).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }
}

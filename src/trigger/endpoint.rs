//! `POST /trigger`: reads MistServer's trigger, hands it to the [`App`], answers `true`/`false`.
//! It only parses and renders; every decision is made in `App::user_new` (the publisher
//! triggers: [`publish`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::payload::{self, MAX_BODY_BYTES};
use super::publish::{self, PushTrigger};
use crate::app::App;
use crate::reason::Reason;

/// Time allowed for a trigger body to arrive once the headers have.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one request on the trigger listener.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() != "/trigger" {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
    }
    let name = req.headers().get("x-trigger").map(|v| v.as_bytes());
    if let Some(push) = name.and_then(PushTrigger::from_header) {
        let body = read_body(req.into_body()).await;
        return publish::handle(&app, push, body).await;
    }
    let trigger = match name {
        Some(b"USER_NEW") => "USER_NEW",
        Some(b"USER_END") => "USER_END",
        other => {
            let name = other.map(String::from_utf8_lossy).unwrap_or_default();
            tracing::error!(trigger = %name, "unsupported trigger");
            return text(StatusCode::BAD_REQUEST, "unsupported trigger\n");
        }
    };
    let body = match read_body(req.into_body()).await {
        Ok(body) => body,
        Err(problem) => {
            tracing::info!(
                trigger,
                reason = Reason::BadTrigger.as_str(),
                detail = problem,
                "denied"
            );
            return answer(false);
        }
    };
    if trigger == "USER_END" {
        match payload::parse_user_end(&body) {
            Ok(end) => {
                app.end_session(end.session_id, end.token, end.stream_names());
                tracing::info!(
                    session = end.session_id,
                    streams = end.streams,
                    connectors = end.connectors,
                    duration_s = end.duration_s,
                    bytes_up = end.bytes_up,
                    bytes_down = end.bytes_down,
                    "session ended"
                );
            }
            Err(e) => tracing::warn!(error = %e, "malformed USER_END"),
        }
        return answer(true);
    }
    let request = match payload::parse_user_new(&body) {
        Ok(request) => request,
        Err(e) => {
            tracing::info!(trigger = "USER_NEW", reason = Reason::BadTrigger.as_str(), detail = %e, "denied");
            app.metrics()
                .decision("none", Reason::BadTrigger, false, Duration::ZERO);
            return answer(false);
        }
    };
    let (verdict, _) = app.user_new(request).await;
    answer(verdict.allowed)
}

/// Reads the body, at most [`MAX_BODY_BYTES`] and within [`BODY_TIMEOUT`].
async fn read_body(body: Incoming) -> Result<Bytes, &'static str> {
    let limited = Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err("body over 16 KiB"),
        Ok(Err(_)) => Err("body could not be read"),
        Err(_) => Err("body timed out"),
    }
}

/// MistServer's answer: exactly `true` or `false`, status 200.
fn answer(allowed: bool) -> Response<Full<Bytes>> {
    text(StatusCode::OK, if allowed { "true" } else { "false" })
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

//! `STREAM_PUSH` and `PUSH_REWRITE` on `/trigger` (SPEC §10): parse, ask the evaluator with the
//! stream's `publish` rule, render MistServer's answer. `STREAM_PUSH` is answered `true`/`false`;
//! `PUSH_REWRITE` with the stream name to use when allowed and an empty body when not (any
//! non-empty answer would rename the push rather than refuse it, so `false` must never be sent).
//! Nothing is cached. The push URL carries the credential and is never logged.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use super::payload::PayloadError;
use super::push::{parse_push_rewrite, parse_stream_push};
use crate::app::App;
use crate::decision::{Decision, Mode, PushRequest};
use crate::protocol::Trigger;
use crate::reason::Reason;

/// The two publisher triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushTrigger {
    /// `true`/`false`.
    StreamPush,
    /// The stream name, or empty.
    PushRewrite,
}

impl PushTrigger {
    /// The publisher trigger `trigger` is, if it is one.
    pub const fn of(trigger: Trigger) -> Option<PushTrigger> {
        match trigger {
            Trigger::StreamPush => Some(PushTrigger::StreamPush),
            Trigger::PushRewrite => Some(PushTrigger::PushRewrite),
            Trigger::UserNew | Trigger::UserEnd => None,
        }
    }

    /// The trigger it is.
    pub const fn trigger(self) -> Trigger {
        match self {
            PushTrigger::StreamPush => Trigger::StreamPush,
            PushTrigger::PushRewrite => Trigger::PushRewrite,
        }
    }

    /// The trigger's name, for logs.
    pub const fn as_str(self) -> &'static str {
        self.trigger().as_str()
    }

    fn parse(self, body: &[u8]) -> Result<PushRequest<'_>, PayloadError> {
        match self {
            PushTrigger::StreamPush => parse_stream_push(body),
            PushTrigger::PushRewrite => parse_push_rewrite(body),
        }
    }

    /// MistServer's answer: `true`/`false`, or the stream name / nothing.
    pub fn answer(self, allowed: Option<&str>) -> Response<Full<Bytes>> {
        let body = match (self, allowed) {
            (PushTrigger::StreamPush, Some(_)) => Bytes::from_static(b"true"),
            (PushTrigger::StreamPush, None) => Bytes::from_static(b"false"),
            (PushTrigger::PushRewrite, Some(stream)) => Bytes::copy_from_slice(stream.as_bytes()),
            (PushTrigger::PushRewrite, None) => Bytes::new(),
        };
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = StatusCode::OK;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        response
    }
}

/// Decides one push trigger whose body has been read (`Err`: it could not be; a refusal).
pub async fn handle(
    app: &App,
    trigger: PushTrigger,
    body: Result<Bytes, &'static str>,
) -> Response<Full<Bytes>> {
    let body = match body {
        Ok(body) => body,
        Err(problem) => return bad_trigger(app, trigger, problem),
    };
    let push = match trigger.parse(&body) {
        Ok(push) => push,
        Err(e) => return bad_trigger(app, trigger, &e.to_string()),
    };
    let started = Instant::now();
    let d = decide(app, &push).await;
    log(trigger, &push, &d, started);
    app.metrics().push(trigger.trigger(), d.reason);
    trigger.answer(d.allowed.then_some(push.stream))
}

/// The evaluator's decision for `push` under the current snapshot.
pub async fn decide(app: &App, push: &PushRequest<'_>) -> Decision {
    let snapshot = app.snapshot();
    let entry = snapshot.resolve(push.stream).clone();
    app.evaluator()
        .evaluate_push(&snapshot, &entry, push, Mode::Live)
        .await
}

fn bad_trigger(app: &App, trigger: PushTrigger, detail: &str) -> Response<Full<Bytes>> {
    app.metrics().push(trigger.trigger(), Reason::BadTrigger);
    tracing::info!(
        trigger = trigger.as_str(),
        reason = Reason::BadTrigger.as_str(),
        detail,
        "push refused"
    );
    trigger.answer(None)
}

/// One line per push, allowed or refused (pushes are rare and each one matters to an operator).
/// Never the push URL: it carries the stream key or the token.
fn log(trigger: PushTrigger, push: &PushRequest<'_>, d: &Decision, started: Instant) {
    let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let message = if d.allowed {
        "push allowed"
    } else {
        "push refused"
    };
    tracing::info!(
        trigger = trigger.as_str(),
        stream = push.stream,
        host = push.host,
        connector = push.connector,
        policy = d.policy_type.as_str(),
        tenant = d.tenant.as_str(),
        reason = d.reason.as_str(),
        kid = d.kid.as_deref().unwrap_or(""),
        detail = d.detail.as_str(),
        took_ms,
        "{message}"
    );
}

//! `POST /trigger`: reads MistServer's trigger, hands it to the [`App`], answers `true`/`false`.
//! It only parses and renders; every decision is made in `App::user_new` (the publisher
//! triggers: [`publish`]).

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::payload::{self, MAX_BODY_BYTES};
use super::publish::{self, PushTrigger};
use crate::app::App;
use crate::protocol::Trigger;
use crate::reason::DecidedBy;
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
    let trigger = match name.and_then(Trigger::from_header) {
        Some(trigger) => trigger,
        None => {
            let name = name.map(String::from_utf8_lossy).unwrap_or_default();
            tracing::error!(trigger = %name, "unsupported trigger");
            return text(StatusCode::BAD_REQUEST, "unsupported trigger\n");
        }
    };
    if let Some(push) = PushTrigger::of(trigger) {
        let body = read_body(req.into_body()).await;
        // Boxed: its future is larger than the whole `USER_NEW` path's.
        return Box::pin(publish::handle(&app, push, body)).await;
    }
    let body = match read_body(req.into_body()).await {
        Ok(body) => body,
        Err(problem) => {
            tracing::info!(
                trigger = trigger.as_str(),
                reason = Reason::BadTrigger.as_str(),
                detail = problem,
                "denied"
            );
            return answer(false);
        }
    };
    if trigger == Trigger::UserEnd {
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
            tracing::info!(trigger = Trigger::UserNew.as_str(), reason = Reason::BadTrigger.as_str(), detail = %e, "denied");
            app.metrics()
                .decision(DecidedBy::None, Reason::BadTrigger, false, Duration::ZERO);
            return answer(false);
        }
    };
    let (verdict, _) = app.user_new(request).await;
    answer(verdict.allowed)
}

/// Reads the body, at most [`MAX_BODY_BYTES`] and within [`BODY_TIMEOUT`]. A body that came
/// with the headers (MistServer's always do) is taken at once, with no timer armed.
async fn read_body<B>(body: B) -> Result<Bytes, &'static str>
where
    B: hyper::body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut collect = std::pin::pin!(Limited::new(body, MAX_BODY_BYTES).collect());
    let first = std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
    let collected = match first {
        Poll::Ready(collected) => collected,
        Poll::Pending => match tokio::time::timeout(BODY_TIMEOUT, collect).await {
            Ok(collected) => collected,
            Err(_) => return Err("body timed out"),
        },
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err("body over 16 KiB"),
        Err(_) => Err("body could not be read"),
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream::{self, StreamExt};
    use http_body_util::StreamBody;
    use hyper::body::Frame;

    type Part = Result<Frame<Bytes>, std::convert::Infallible>;

    fn part(text: &'static str) -> Part {
        Ok(Frame::data(Bytes::from_static(text.as_bytes())))
    }

    #[tokio::test]
    async fn a_body_that_came_with_the_headers_is_read() {
        let body = Full::new(Bytes::from_static(b"vod\n127.0.0.1"));
        assert_eq!(read_body(body).await.as_deref(), Ok(&b"vod\n127.0.0.1"[..]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_whose_rest_comes_later_is_waited_for() {
        let rest = stream::once(async {
            tokio::time::sleep(Duration::from_secs(9)).await;
            part("127.0.0.1")
        });
        let body = StreamBody::new(stream::iter([part("vod\n")]).chain(rest));
        assert_eq!(read_body(body).await.as_deref(), Ok(&b"vod\n127.0.0.1"[..]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_is_given_up_after_ten_seconds() {
        let started = tokio::time::Instant::now();
        let body = StreamBody::new(stream::iter([part("vod\n")]).chain(stream::pending()));
        assert_eq!(read_body(body).await, Err("body timed out"));
        assert_eq!(started.elapsed(), BODY_TIMEOUT);
    }

    #[tokio::test]
    async fn a_body_over_16_kib_is_refused_even_when_it_came_at_once() {
        let body = Full::new(Bytes::from(vec![b'x'; MAX_BODY_BYTES + 1]));
        assert_eq!(read_body(body).await, Err("body over 16 KiB"));
    }
}

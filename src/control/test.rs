//! `POST /v1/test` (SPEC §6): the dry run. The same evaluator as `USER_NEW`, without the cache or
//! MistServer; a webhook is called only when `fire_webhook` is true.

use hyper::StatusCode;
use serde::Deserialize;

use super::{ApiError, Control, Reply, parse};
use crate::decision::{Mode, OwnedRequest, PushRequest, dry_run_push_url};
use crate::spec::valid_object;

/// Viewer IP used when the body names none.
pub const DEFAULT_VIEWER_IP: &str = "127.0.0.1";
/// Connector used when the body names none.
pub const DEFAULT_CONNECTOR: &str = "HLS";

/// The body: `stream` or `object`, and what the viewer would bring.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    #[serde(default)]
    pub stream: Option<String>,
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub viewer_token: String,
    #[serde(default)]
    pub viewer_ip: Option<String>,
    #[serde(default)]
    pub connector: Option<String>,
    #[serde(default)]
    pub fire_webhook: bool,
    /// `play` (the default) or `publish`: a push of the stream with `viewer_token` as its `jwt`
    /// and `stream_key` as its `key` query parameter (SPEC §10).
    #[serde(default)]
    pub action: Option<String>,
    /// `publish` only: the stream key the encoder would send (never echoed).
    #[serde(default)]
    pub stream_key: Option<String>,
}

impl TestBody {
    /// The request to evaluate. An `object` is looked up as a stream of that name, which finds the
    /// policy attached to it (or the next one in the lookup order).
    pub fn request(&self) -> Result<OwnedRequest, ApiError> {
        let stream = match (&self.stream, &self.object) {
            (Some(s), None) | (None, Some(s)) => s,
            _ => {
                return Err(ApiError::BadBody(
                    "give exactly one of stream, object".into(),
                ));
            }
        };
        if !valid_object(stream) {
            return Err(ApiError::BadName(format!("invalid stream name {stream:?}")));
        }
        Ok(OwnedRequest::dry_run(
            stream,
            &self.viewer_token,
            self.viewer_ip.as_deref().unwrap_or(DEFAULT_VIEWER_IP),
            self.connector.as_deref().unwrap_or(DEFAULT_CONNECTOR),
        ))
    }
}

/// `POST /v1/test`: always 200 with the decision; `allowed` says the outcome.
pub async fn post(ctl: &Control, body: &[u8]) -> Reply {
    let body: TestBody = parse(body)?;
    let request = body.request()?;
    let publish = match body.action.as_deref() {
        None | Some("play") if body.stream_key.is_none() => false,
        None | Some("play") => {
            return Err(ApiError::BadBody(
                "stream_key goes with \"action\": \"publish\"".into(),
            ));
        }
        Some("publish") => true,
        Some(other) => {
            return Err(ApiError::BadBody(format!(
                "action {other:?} is not one of \"play\", \"publish\""
            )));
        }
    };
    if publish {
        let url = dry_run_push_url(
            &request.stream,
            &body.viewer_token,
            body.stream_key.as_deref().unwrap_or(""),
        );
        let push = PushRequest {
            stream: &request.stream,
            host: &request.viewer_ip,
            connector: body.connector.as_deref().unwrap_or("RTMP"),
            push_url: &url,
        };
        let snapshot = ctl.app.snapshot();
        let entry = snapshot.resolve(push.stream).clone();
        let mode = Mode::DryRun {
            fire_webhook: body.fire_webhook,
        };
        let decision = ctl
            .app
            .evaluator()
            .evaluate_push(&snapshot, &entry, &push, mode)
            .await;
        return Ok((
            StatusCode::OK,
            serde_json::to_value(decision).unwrap_or_default(),
        ));
    }
    let decision = ctl
        .app
        .dry_run(request.as_request(), body.fire_webhook)
        .await;
    Ok((
        StatusCode::OK,
        serde_json::to_value(decision).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_or_object_but_not_both() {
        let both: TestBody = parse(br#"{"stream":"a","object":"b"}"#).unwrap();
        assert!(both.request().is_err());
        let none: TestBody = parse(br#"{"viewer_token":"x"}"#).unwrap();
        assert!(none.request().is_err());
        let one: TestBody = parse(br#"{"object":"abc","viewer_ip":"10.0.0.1"}"#).unwrap();
        let r = one.request().unwrap();
        assert_eq!(
            (r.stream.as_str(), r.viewer_ip.as_str()),
            ("abc", "10.0.0.1")
        );
    }
}

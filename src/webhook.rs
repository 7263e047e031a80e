//! The webhook check (SPEC §3): one signed `POST` to the customer's endpoint, bounded in time,
//! body size and concurrency, turned into an allow or a `webhook-*` reason. Fails closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::Semaphore;

use crate::config::{OutboundConfig, WebhookConfig};
use crate::net::client::{ClientError, GuardedClient};
use crate::net::guard::SsrfGuard;
use crate::net::resolver::{BlockedByPolicy, ResolveFailed};
use crate::policy::model::{Secret, WebhookPolicy};
use crate::reason::Reason;

/// At most this much of a response body is read (SPEC §3).
pub const MAX_RESPONSE_BODY: usize = 4096;

/// What the webhook is told about the viewer. Never logged: `viewer_token` is a credential.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The MistServer stream name (`streamName`).
    pub stream: &'a str,
    /// MistServer's session id (`sessionId`).
    pub session_id: &'a str,
    /// The viewer's IP address as MistServer reported it (`viewerIp`).
    pub viewer_ip: &'a str,
    /// The URL the viewer requested (`requestUrl`).
    pub request_url: &'a str,
    /// The viewer's token (`viewerToken`); may be empty.
    pub viewer_token: &'a str,
    /// The MistServer connector, e.g. `HLS` (`connector`).
    pub connector: &'a str,
    /// `play` for a viewer, `publish` for a push (SPEC §10).
    pub action: &'a str,
}

/// The result of one webhook call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookOutcome {
    /// Only a `200` allows.
    pub allowed: bool,
    /// `Allowed` or one of the `Webhook*` reasons.
    pub reason: Reason,
    /// Human text for logs and `/v1/test`: the status and the body's length, never a byte of
    /// what the endpoint sent back (an endpoint that echoes its request would put the viewer's
    /// token there), nor the secret or the viewer token.
    pub detail: String,
    /// The HTTP status, when one was received.
    pub status: Option<u16>,
    /// Wall time of the call, including DNS, connect and TLS.
    pub latency_ms: u64,
}

/// Setting up the webhook caller failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    /// The resolver could not be configured.
    #[error("cannot set up the webhook resolver: {0}")]
    Resolver(String),
    /// The outbound HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// `[webhook] signature_header` is not a valid header name.
    #[error("webhook.signature_header `{0}` is not a valid HTTP header name")]
    SignatureHeader(String),
    /// `[webhook] max_in_flight` is 0.
    #[error("webhook.max_in_flight must be at least 1")]
    MaxInFlight,
}

/// Calls webhooks. Cheap to clone; one per process, shared by every evaluation.
#[derive(Debug, Clone)]
pub struct WebhookCaller {
    outbound: GuardedClient,
    signature_header: HeaderName,
    permits: Arc<Semaphore>,
    max_in_flight: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    stream_name: &'a str,
    session_id: &'a str,
    viewer_ip: &'a str,
    request_url: &'a str,
    viewer_token: &'a str,
    connector: &'a str,
    action: &'a str,
    timestamp: String,
}

impl WebhookCaller {
    /// Builds its own outbound stack from `[outbound]`; the daemon shares one through
    /// [`WebhookCaller::with_client`] instead.
    pub fn new(
        outbound: &OutboundConfig,
        webhook: &WebhookConfig,
    ) -> Result<WebhookCaller, WebhookSetupError> {
        WebhookCaller::with_client(GuardedClient::new(outbound)?, webhook)
    }

    /// Calls webhooks through `outbound`, the process's one outbound stack (one filtering
    /// resolver, one connection pool), shared with JWKS fetches.
    pub fn with_client(
        outbound: GuardedClient,
        webhook: &WebhookConfig,
    ) -> Result<WebhookCaller, WebhookSetupError> {
        let signature_header = HeaderName::from_bytes(webhook.signature_header.as_bytes())
            .map_err(|_| WebhookSetupError::SignatureHeader(webhook.signature_header.clone()))?;
        if webhook.max_in_flight == 0 {
            return Err(WebhookSetupError::MaxInFlight);
        }
        Ok(WebhookCaller {
            outbound,
            signature_header,
            permits: Arc::new(Semaphore::new(webhook.max_in_flight)),
            max_in_flight: webhook.max_in_flight,
        })
    }

    /// The outbound stack, for other callers that must dial under the same rules (JWKS).
    pub fn client(&self) -> &GuardedClient {
        &self.outbound
    }

    /// The guard, for validating policies with the same rules the calls use.
    pub fn guard(&self) -> &SsrfGuard {
        &self.outbound.guard
    }

    /// Webhook calls in flight right now (for metrics).
    pub fn in_flight(&self) -> usize {
        self.max_in_flight
            .saturating_sub(self.permits.available_permits())
    }

    /// Calls the policy's webhook for one viewer. Never fails: every error is a denial.
    pub async fn call(&self, policy: &WebhookPolicy, req: &WebhookRequest<'_>) -> WebhookOutcome {
        let started = Instant::now();
        let mut outcome = self.call_inner(policy, req, started).await;
        outcome.latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::debug!(
            host = policy.url.host_str().unwrap_or(""),
            reason = outcome.reason.as_str(),
            status = outcome.status,
            latency_ms = outcome.latency_ms,
            "webhook called"
        );
        outcome
    }

    async fn call_inner(
        &self,
        policy: &WebhookPolicy,
        req: &WebhookRequest<'_>,
        started: Instant,
    ) -> WebhookOutcome {
        let Ok(_permit) = self.permits.try_acquire() else {
            return deny(
                Reason::WebhookOverloaded,
                "too many webhook calls in flight",
            );
        };
        // reqwest dials IP literals without the resolver: judge the URL before every call.
        let url = match self.outbound.guard.check_url(policy.url.as_str()) {
            Ok(url) => url,
            Err(e) => return deny(Reason::WebhookBlockedSsrf, e.to_string()),
        };
        let body = match serde_json::to_vec(&body_of(req)) {
            Ok(body) => body,
            Err(e) => return deny(Reason::InternalError, e.to_string()),
        };
        let signature = match sign(&policy.secret, &body) {
            Some(sig) => sig,
            None => return deny(Reason::InternalError, "cannot sign the webhook body"),
        };
        let deadline = started + Duration::from_millis(policy.timeout_ms);
        let request = self
            .outbound
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(self.signature_header.clone(), signature)
            .body(body);
        let response = match tokio::time::timeout_at(deadline.into(), request.send()).await {
            Err(_) => return timed_out(policy.timeout_ms),
            Ok(Err(e)) => return classify_send_error(&e),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        let (length, body_note) = read_capped(response, deadline).await;
        let (allowed, reason) = match status {
            200 => (true, Reason::Allowed),
            403 => (false, Reason::WebhookDeny403),
            _ => (false, Reason::WebhookErrorStatus),
        };
        let mut detail = format!("endpoint answered {status} with {}", body_size(length));
        if let Some(note) = body_note {
            detail.push_str("; ");
            detail.push_str(note);
        }
        WebhookOutcome {
            allowed,
            reason,
            detail,
            status: Some(status),
            latency_ms: 0,
        }
    }
}

/// The body's size as a detail may give it: only a length, never its content.
fn body_size(length: usize) -> String {
    match length {
        0 => "an empty body".to_owned(),
        n if n >= MAX_RESPONSE_BODY => format!("a body of at least {MAX_RESPONSE_BODY} bytes"),
        n => format!("a {n}-byte body"),
    }
}

fn body_of<'a>(req: &WebhookRequest<'a>) -> Body<'a> {
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    Body {
        stream_name: req.stream,
        session_id: req.session_id,
        viewer_ip: req.viewer_ip,
        request_url: req.request_url,
        viewer_token: req.viewer_token,
        connector: req.connector,
        action: req.action,
        timestamp,
    }
}

/// `sha256=<hex HMAC-SHA256 of body>` as a header value.
fn sign(secret: &Secret, body: &[u8]) -> Option<HeaderValue> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).ok()?;
    mac.update(body);
    let hex = hex::encode(mac.finalize().into_bytes());
    HeaderValue::from_str(&format!("sha256={hex}")).ok()
}

/// Reads at most [`MAX_RESPONSE_BODY`] bytes, never past `deadline`, and returns only how many
/// arrived: the content is dropped unread. The status already decided; a slow or broken body only
/// adds a note to the detail.
async fn read_capped(
    mut response: reqwest::Response,
    deadline: Instant,
) -> (usize, Option<&'static str>) {
    let mut length = 0usize;
    loop {
        match tokio::time::timeout_at(deadline.into(), response.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                length = length.saturating_add(chunk.len());
                if length >= MAX_RESPONSE_BODY {
                    // Dropping the response closes the connection instead of draining the rest.
                    return (MAX_RESPONSE_BODY, Some("body truncated at 4 KiB"));
                }
            }
            Ok(Ok(None)) => return (length, None),
            Ok(Err(_)) => return (length, Some("body read failed")),
            Err(_) => return (length, Some("body not complete within the timeout")),
        }
    }
}

fn classify_send_error(err: &reqwest::Error) -> WebhookOutcome {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(blocked) = e.downcast_ref::<BlockedByPolicy>() {
            return deny(Reason::WebhookBlockedSsrf, blocked.to_string());
        }
        source = e.source();
    }
    if err.is_timeout() {
        return deny(Reason::WebhookTimeout, "the request timed out");
    }
    deny(Reason::WebhookNetwork, describe_network_error(err))
}

/// A fixed description of a failed request. The error's own text is not used: it can quote what
/// the far end sent (a certificate's names, a malformed status line) and the policy URL.
fn describe_network_error(err: &reqwest::Error) -> &'static str {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if e.downcast_ref::<ResolveFailed>().is_some() {
            return "name did not resolve";
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused",
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                    return "connection reset";
                }
                std::io::ErrorKind::UnexpectedEof => return "connection closed early",
                _ => {}
            }
        }
        let text = e.to_string().to_ascii_lowercase();
        if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
            return "TLS handshake failed";
        }
        if text.contains("dns") || text.contains("resolve") || text.contains("no record") {
            return "name did not resolve";
        }
        source = e.source();
    }
    if err.is_connect() {
        "connection failed"
    } else if err.is_body() || err.is_decode() {
        "response could not be read"
    } else {
        "request failed"
    }
}

fn timed_out(timeout_ms: u64) -> WebhookOutcome {
    deny(
        Reason::WebhookTimeout,
        format!("no answer within {timeout_ms} ms"),
    )
}

fn deny(reason: Reason, detail: impl Into<String>) -> WebhookOutcome {
    WebhookOutcome {
        allowed: false,
        reason,
        detail: detail.into(),
        status: None,
        latency_ms: 0,
    }
}

/// Checks a webhook policy as the config file or the control API gives it: the shape (secret,
/// timeout, URL syntax; see [`crate::policy::build::webhook_policy`]) and then the SSRF guard,
/// resolving the host now and refusing it when any current answer is not allowed.
pub async fn validate_webhook_policy(
    guard: &SsrfGuard,
    url: &str,
    secret: Option<&str>,
    timeout_ms: Option<u64>,
) -> Result<WebhookPolicy, PolicyUrlError> {
    let mut policy = crate::policy::build::webhook_policy(Some(url), secret, timeout_ms)
        .map_err(PolicyUrlError::Shape)?;
    policy.url = guard.validate_for_policy(url).await?;
    Ok(policy)
}

/// Why a webhook policy was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyUrlError {
    /// Missing secret, bad timeout, unparsable URL.
    #[error("{0}")]
    Shape(String),
    /// The SSRF guard refused the URL or could not resolve its host.
    #[error(transparent)]
    Ssrf(#[from] crate::net::guard::SsrfError),
}

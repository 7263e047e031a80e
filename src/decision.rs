//! The evaluator: one request and its policy in, one [`Decision`] out. `USER_NEW`, `/v1/test`
//! and `usher verify` all call [`Evaluator::evaluate`]; only what they do around it differs.

use std::sync::Arc;

use serde::Serialize;

use crate::clock::Clock;
use crate::jwks::JwksKeys;
use crate::jwt::{self, JwtContext, Kept};
use crate::keys::TenantKeys;
use crate::metrics::Metrics;
use crate::policy::lookup;
use crate::policy::model::{JwtPolicy, Policy, PolicyEntry, WebhookPolicy};
use crate::policy::store::Snapshot;
use crate::reason::DecidedBy;
use crate::reason::Reason;
use crate::sessions::Revocations;
use crate::webhook::{WebhookCaller, WebhookRequest};

mod permitted;
mod push;
use crate::publish::permission::Action;
pub use push::{PushRequest, dry_run_push_url};

/// What the evaluator needs to know about one viewer session (the `USER_NEW` fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub stream: &'a str,
    pub session_id: &'a str,
    pub viewer_ip: &'a str,
    /// Line 3 of `USER_NEW`: MistServer's session token.
    pub token: &'a str,
    pub connector: &'a str,
    pub request_url: &'a str,
}

/// An owned [`Request`], for evaluations that run in a task of their own.
#[derive(Debug, Clone, Default)]
pub struct OwnedRequest {
    pub stream: String,
    pub session_id: String,
    pub viewer_ip: String,
    pub token: String,
    pub connector: String,
    pub request_url: String,
}

impl OwnedRequest {
    /// The request a dry run evaluates (`/v1/test`, `usher verify`): the token travels as the
    /// `jwt` query parameter, as it does when a player opens `…?jwt=TOKEN`, and the session id is
    /// derived like MistServer's default (sha256 of stream, viewer IP and token).
    pub fn dry_run(stream: &str, token: &str, viewer_ip: &str, connector: &str) -> OwnedRequest {
        use sha2::Digest;
        let session = sha2::Sha256::new()
            .chain_update(stream)
            .chain_update(viewer_ip)
            .chain_update(token)
            .finalize();
        OwnedRequest {
            stream: stream.into(),
            session_id: hex::encode(session),
            viewer_ip: viewer_ip.into(),
            token: token.into(),
            connector: connector.into(),
            request_url: dry_run_url(stream, token),
        }
    }
    /// Borrows it back.
    pub fn as_request(&self) -> Request<'_> {
        Request {
            stream: &self.stream,
            session_id: &self.session_id,
            viewer_ip: &self.viewer_ip,
            token: &self.token,
            connector: &self.connector,
            request_url: &self.request_url,
        }
    }
}

/// The `request_url` MistServer would send for a player opening the stream with `?jwt=TOKEN`
/// (SPEC §1: `http://` + Host + path + the query keys sorted by name). The stream name is one
/// percent-encoded path segment, so a `?`, `#` or `/` in it stays part of the path and can neither
/// hide the `jwt` parameter nor bring one of its own.
pub fn dry_run_url(stream: &str, token: &str) -> String {
    let Ok(mut url) = url::Url::parse("http://localhost/") else {
        return String::new(); // a constant that parses; an empty URL would only hide the jwt
    };
    if let Ok(mut path) = url.path_segments_mut() {
        path.clear().push(stream);
    }
    if !token.is_empty() {
        url.query_pairs_mut().append_pair("jwt", token);
    }
    url.into()
}

impl From<Request<'_>> for OwnedRequest {
    fn from(r: Request<'_>) -> Self {
        OwnedRequest {
            stream: r.stream.into(),
            session_id: r.session_id.into(),
            viewer_ip: r.viewer_ip.into(),
            token: r.token.into(),
            connector: r.connector.into(),
            request_url: r.request_url.into(),
        }
    }
}

/// Whether the evaluation is for real or a dry run (`/v1/test`, `usher verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `USER_NEW`: the answer counts.
    Live,
    /// Nothing is cached; a webhook is called only when `fire_webhook`; claims are reported.
    DryRun { fire_webhook: bool },
}

/// The outcome of one evaluation; serialises as the body of `/v1/test` (SPEC §6).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Decision {
    pub allowed: bool,
    #[schema(value_type = String)]
    pub policy_type: DecidedBy,
    /// The reason code (SPEC §3).
    #[schema(value_type = String)]
    pub reason: Reason,
    pub detail: String,
    pub kid: Option<String>,
    /// Dry runs only: verified claims on allow, the unverified payload on deny.
    pub claims: Option<serde_json::Value>,
    pub webhook_status: Option<u16>,
    pub webhook_latency_ms: Option<u64>,
    /// Dry runs of webhook policies: the URL that is (or would be) called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// The object the policy is attached to (empty for the default policy).
    pub policy_object: String,
    /// The tenant of the policy (empty for the default policy).
    pub tenant: String,
    /// `jwt` policies: the viewer id (the tenant's viewer claim, `sub` by default), when the token
    /// names one (SPEC §9).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub viewer: Option<String>,
    /// `jwt` allows: the token's `exp` and `iat` (seconds), for the live-session table.
    #[serde(skip)]
    pub token_times: Option<(u64, Option<u64>)>,
    /// `jwt`: the [serial](crate::keys::VerifyingKey::serial) of the key the token's signature
    /// verified with, for the decision cache.
    #[serde(skip)]
    pub signed_by: Option<u64>,
}

impl Decision {
    fn new(entry: &PolicyEntry, allowed: bool, reason: Reason, detail: impl Into<String>) -> Self {
        Decision {
            allowed,
            policy_type: entry.policy.kind().decided_by(),
            reason,
            detail: detail.into(),
            kid: None,
            claims: None,
            webhook_status: None,
            webhook_latency_ms: None,
            webhook_url: None,
            policy_object: entry.object.clone(),
            tenant: entry.tenant.clone(),
            viewer: None,
            token_times: None,
            signed_by: None,
        }
    }
}

/// How long a decision waits for an unknown-kid JWKS refetch (under MistServer's 5 s per attempt;
/// the fetch itself runs on and a retry joins the pending decision).
const JWKS_REFETCH_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The evaluator. Cheap to clone; holds the outbound webhook machinery.
#[derive(Clone)]
pub struct Evaluator {
    webhooks: WebhookCaller,
    metrics: Arc<Metrics>,
    jwks: Option<JwksKeys>,
    /// Viewer revocations (SPEC §9), shared with the session table.
    revocations: Revocations,
    /// The wall clock token times are judged against: the daemon's.
    clock: Clock,
}

impl Evaluator {
    /// An evaluator calling webhooks through `webhooks`, with fresh metrics.
    pub fn new(webhooks: WebhookCaller) -> Evaluator {
        Evaluator {
            webhooks,
            metrics: Arc::default(),
            jwks: None,
            revocations: Revocations::default(),
            clock: Clock::default(),
        }
    }

    /// The same evaluator reading the wall clock from `clock` (the daemon's; tests: a clock
    /// before 1970).
    pub fn with_clock(mut self, clock: Clock) -> Evaluator {
        self.clock = clock;
        self
    }

    /// The clock it reads.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The same evaluator refetching JWKS sets on unknown kids through `jwks`.
    pub fn with_jwks(mut self, jwks: JwksKeys) -> Evaluator {
        self.jwks = Some(jwks);
        self
    }

    /// The same evaluator refusing tokens of revoked viewers held in `revocations`.
    pub fn with_revocations(mut self, revocations: Revocations) -> Evaluator {
        self.revocations = revocations;
        self
    }

    /// The viewer revocations this evaluator checks.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    /// The JWKS key service, when any tenant has a JWKS URL.
    pub fn jwks(&self) -> Option<&JwksKeys> {
        self.jwks.as_ref()
    }

    /// The same evaluator counting into `metrics` (a reload keeps the daemon's counters).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Evaluator {
        self.metrics = metrics;
        self
    }

    /// The metrics this evaluator counts into.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The webhook caller (its guard validates policies; its gauge feeds metrics).
    pub fn webhooks(&self) -> &WebhookCaller {
        &self.webhooks
    }

    /// Decides `request` under `entry` (the policy `snapshot` resolved for the stream).
    pub async fn evaluate(
        &self,
        snapshot: &Snapshot,
        entry: &PolicyEntry,
        request: &Request<'_>,
        mode: Mode,
    ) -> Decision {
        match self.evaluate_now(snapshot, entry, request, mode, None) {
            Now::Decided(d) => d,
            Now::Refetch(check, d) => match self.refetched_keys(snapshot, entry, &d).await {
                Some(keys) => check.run(Some(&keys)),
                None => d,
            },
            Now::Webhook(hook) => {
                self.evaluate_webhook(entry, hook, request, mode, "play")
                    .await
            }
        }
    }

    /// The decision, when it can be made without waiting: `public`, `deny`, and `jwt` unless the
    /// token names a kid a JWKS refetch might bring (then the first check's decision is the
    /// answer should the refetch bring nothing). `None`: the evaluation must wait for I/O
    /// ([`evaluate`](Self::evaluate) does it all). `verified_by`: the serial of a key this very
    /// token is known to have verified with ([`jwt::check_known`]).
    pub fn decide_now(
        &self,
        snapshot: &Snapshot,
        entry: &PolicyEntry,
        request: &Request<'_>,
        mode: Mode,
        verified_by: Option<u64>,
    ) -> Option<Decision> {
        match self.evaluate_now(snapshot, entry, request, mode, verified_by) {
            Now::Decided(d) => Some(d),
            Now::Refetch(..) | Now::Webhook(_) => None,
        }
    }

    /// Everything that needs no I/O.
    fn evaluate_now<'a>(
        &'a self,
        snapshot: &'a Snapshot,
        entry: &'a PolicyEntry,
        request: &'a Request<'a>,
        mode: Mode,
        verified_by: Option<u64>,
    ) -> Now<'a> {
        match &entry.policy {
            Policy::Public => {
                Now::Decided(Decision::new(entry, true, Reason::Allowed, "public policy"))
            }
            Policy::Deny => Now::Decided(Decision::new(
                entry,
                false,
                Reason::PolicyDeny,
                "deny policy",
            )),
            Policy::Jwt(rules) => {
                let Ok(now) = self.clock.unix_s() else {
                    tracing::error!(
                        reason = Reason::InternalError.as_str(),
                        "the system clock reads before 1970; denying"
                    );
                    return Now::Decided(Decision::new(
                        entry,
                        false,
                        Reason::InternalError,
                        "the system clock reads before 1970",
                    ));
                };
                let check = JwtCheck {
                    snapshot,
                    entry,
                    rules,
                    request,
                    mode,
                    verified_by,
                    now,
                    revocations: &self.revocations,
                    permission: rules.require_permission.then_some(Action::Read),
                };
                let d = check.run(None);
                if verified_by.is_some() && d.signed_by == verified_by {
                    self.metrics.signature_known();
                }
                if self.may_refetch(snapshot, entry, &d) {
                    Now::Refetch(check, d)
                } else {
                    Now::Decided(d)
                }
            }
            Policy::Webhook(hook) => Now::Webhook(hook),
        }
    }

    /// Whether [`refetched_keys`](Self::refetched_keys) would refetch for decision `d`.
    fn may_refetch(&self, snapshot: &Snapshot, entry: &PolicyEntry, d: &Decision) -> bool {
        let Some(jwks) = &self.jwks else {
            return false;
        };
        if !matches!(d.reason, Reason::JwtUnknownKid | Reason::NoActiveKeys)
            || !jwks.has_tenant(&entry.tenant)
        {
            return false;
        }
        let (Some(kid), Some(tenant)) = (d.kid.as_deref(), snapshot.tenant(&entry.tenant)) else {
            return false;
        };
        // Refused by allowed_kids, or revoked: a refetch cannot help.
        tenant.active.get(kid).is_none() && !tenant.revoked.contains_key(kid)
    }

    /// On `jwt-unknown-kid` (or `no-active-keys`) for a tenant with a JWKS URL, and a kid that is
    /// neither active nor revoked, returns the tenant's keys merged with its fetched set once that
    /// set holds the kid, for one more check: at once when a fetch already brought it (the
    /// snapshot takes the set a moment after the fetch: a viewer in between is not denied),
    /// else after refetching the set (rate-limited in [`JwksKeys`]).
    async fn refetched_keys(
        &self,
        snapshot: &Snapshot,
        entry: &PolicyEntry,
        d: &Decision,
    ) -> Option<TenantKeys> {
        if !self.may_refetch(snapshot, entry, d) {
            return None;
        }
        let (jwks, kid) = (self.jwks.as_ref()?, d.kid.as_deref()?);
        let tenant = snapshot.tenant(&entry.tenant)?;
        let with_kid = || {
            let fetched = jwks.keys(&entry.tenant).filter(|k| k.get(kid).is_some())?;
            Some(crate::jwks::merged_keys(tenant, Some(&fetched)))
        };
        if let Some(keys) = with_kid() {
            return Some(keys);
        }
        let _changed = tokio::time::timeout(
            JWKS_REFETCH_WAIT,
            jwks.refresh_for_unknown_kid(&entry.tenant),
        )
        .await;
        with_kid()
    }

    async fn evaluate_webhook(
        &self,
        entry: &PolicyEntry,
        hook: &WebhookPolicy,
        request: &Request<'_>,
        mode: Mode,
        action: &str,
    ) -> Decision {
        if mode
            == (Mode::DryRun {
                fire_webhook: false,
            })
        {
            let mut d = Decision::new(
                entry,
                false,
                Reason::WebhookTestSkipped,
                "webhook not called (fire_webhook is false)",
            );
            d.webhook_url = Some(hook.url.to_string());
            return d;
        }
        let token = jwt::token::extract(request.request_url, request.token);
        let call = WebhookRequest {
            stream: request.stream,
            session_id: request.session_id,
            viewer_ip: request.viewer_ip,
            request_url: request.request_url,
            viewer_token: token.as_deref().unwrap_or(""),
            connector: request.connector,
            action,
        };
        let outcome = self.webhooks.call(hook, &call).await;
        if outcome.status.is_some() || outcome.reason == Reason::WebhookTimeout {
            self.metrics
                .webhook(std::time::Duration::from_millis(outcome.latency_ms));
        }
        let mut d = Decision::new(entry, outcome.allowed, outcome.reason, outcome.detail);
        d.webhook_status = outcome.status;
        d.webhook_latency_ms = Some(outcome.latency_ms);
        if mode != Mode::Live {
            d.webhook_url = Some(hook.url.to_string());
        }
        d
    }
}

/// How far an evaluation got without I/O.
enum Now<'a> {
    Decided(Decision),
    /// A `jwt` decision that a JWKS refetch might change, and the check to run again.
    Refetch(JwtCheck<'a>, Decision),
    Webhook(&'a WebhookPolicy),
}

/// One `jwt` policy check of one request, at one instant.
struct JwtCheck<'a> {
    snapshot: &'a Snapshot,
    entry: &'a PolicyEntry,
    rules: &'a JwtPolicy,
    request: &'a Request<'a>,
    mode: Mode,
    /// The serial of a key this very token is known to have verified with.
    verified_by: Option<u64>,
    /// Now, in seconds since the Unix epoch (a clock that cannot say never gets this far).
    now: f64,
    revocations: &'a Revocations,
    /// The permission the token's claim must grant for the stream (SPEC §10), if any.
    permission: Option<Action>,
}

impl JwtCheck<'_> {
    /// Checks the token against `keys`, or the tenant's keys in the snapshot.
    fn run(&self, keys: Option<&TenantKeys>) -> Decision {
        let (entry, request) = (self.entry, self.request);
        let Some(token) = jwt::token::extract(request.request_url, request.token) else {
            return Decision::new(
                entry,
                false,
                Reason::MissingToken,
                "no token in the request",
            );
        };
        let dry_run = self.mode != Mode::Live;
        let viewer_claim = self
            .snapshot
            .tenant(&entry.tenant)
            .and_then(|t| t.viewer_claim.as_deref())
            .unwrap_or(DEFAULT_VIEWER_CLAIM);
        let permission_claim = self.permission_claim();
        // The claims read here besides those the checks read.
        let read = [viewer_claim, permission_claim.unwrap_or(viewer_claim)];
        let ctx = JwtContext {
            object_id: lookup::object_id(request.stream),
            viewer_ip: request.viewer_ip,
            now_unix_s: self.now,
            keep: if dry_run {
                Kept::All
            } else {
                Kept::Also(&read)
            },
        };
        let keys = keys.unwrap_or_else(|| self.snapshot.keys(&entry.tenant));
        match jwt::check_known(&token, keys, self.rules, &ctx, self.verified_by) {
            Ok(verified) if !self.permitted(&verified.claims, permission_claim) => {
                let mut d = Decision::new(
                    entry,
                    false,
                    Reason::JwtPermissionDenied,
                    "the token's permission claim does not grant this stream",
                );
                d.claims = dry_run.then_some(serde_json::Value::Object(verified.claims));
                d.kid = Some(verified.kid);
                d.signed_by = Some(verified.signed_by);
                d
            }
            Ok(verified) => {
                let viewer = viewer_id(&verified.claims, viewer_claim);
                let time = |name: &str| verified.claims.get(name).and_then(|v| v.as_f64());
                let iat = time("iat");
                let revoked = viewer.as_deref().is_some_and(|v| {
                    self.revocations
                        .covers(&entry.tenant, v, iat, self.now as u64)
                });
                let mut d = if revoked {
                    Decision::new(
                        entry,
                        false,
                        Reason::ViewerRevoked,
                        "the viewer was revoked after this token was issued",
                    )
                } else {
                    Decision::new(entry, true, Reason::Allowed, "token verified")
                };
                d.token_times = time("exp").map(|exp| (exp as u64, iat.map(|i| i as u64)));
                d.viewer = viewer;
                d.claims = dry_run.then_some(serde_json::Value::Object(verified.claims));
                d.kid = Some(verified.kid);
                d.signed_by = Some(verified.signed_by);
                d
            }
            Err(rejected) => {
                let mut d = Decision::new(entry, false, rejected.reason, rejected.detail);
                d.kid = rejected.kid;
                d.claims = if dry_run {
                    rejected.unverified_claims
                } else {
                    None
                };
                d
            }
        }
    }
}

/// The claim naming the viewer when the tenant names none (SPEC §9).
pub const DEFAULT_VIEWER_CLAIM: &str = "sub";

/// The viewer id in `claims[claim]`: a string as is, a number as written; anything else (or
/// longer than 256 bytes) names no viewer.
fn viewer_id(claims: &serde_json::Map<String, serde_json::Value>, claim: &str) -> Option<String> {
    let id = match claims.get(claim)? {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!id.is_empty() && id.len() <= crate::spec::MAX_VIEWER_ID).then_some(id)
}

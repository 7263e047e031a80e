//! The policy model of SPEC §2: what a playback object requires of a viewer.

use std::collections::BTreeMap;
use std::fmt;

use super::session_rules::SessionRules;
use crate::spec::{PolicyKind, PublishKind};

/// One playback policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// Everyone may watch.
    Public,
    /// Nobody may watch.
    Deny,
    /// A valid JWT signed by one of the tenant's active keys is required.
    Jwt(JwtPolicy),
    /// The customer's webhook decides.
    Webhook(WebhookPolicy),
}

impl Policy {
    /// The policy's type, as config files, the API and metrics labels name it.
    pub fn kind(&self) -> PolicyKind {
        match self {
            Policy::Public => PolicyKind::Public,
            Policy::Deny => PolicyKind::Deny,
            Policy::Jwt(_) => PolicyKind::Jwt,
            Policy::Webhook(_) => PolicyKind::Webhook,
        }
    }
}

/// The rules of a `jwt` policy, checked after the signature (SPEC §3).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JwtPolicy {
    /// Empty: any active key of the tenant.
    pub allowed_kids: Vec<String>,
    pub required_audience: Option<String>,
    /// Claim name → exact JSON value.
    pub required_claims: BTreeMap<String, serde_json::Value>,
    /// A claim whose value must equal the object id (e.g. `sub`).
    pub object_claim: Option<String>,
    /// `exp - now` may not exceed this.
    pub max_lifetime_s: Option<u64>,
    /// Live-session rules (SPEC §9): cut at expiry, sessions per viewer.
    pub sessions: SessionRules,
    /// The token's permission claim must list the stream under `read` (SPEC §10).
    pub require_permission: bool,
}

/// Default webhook timeout (SPEC §2).
pub const WEBHOOK_DEFAULT_TIMEOUT_MS: u64 = 3000;
/// Upper bound for a webhook timeout (SPEC §2).
pub const WEBHOOK_MAX_TIMEOUT_MS: u64 = 10_000;

/// A `webhook` policy.
#[derive(Clone, PartialEq)]
pub struct WebhookPolicy {
    /// An `https` URL, judged by the SSRF guard when set and again at every dial.
    pub url: url::Url,
    /// The HMAC key. Never logged, never shown back.
    pub secret: Secret,
    pub timeout_ms: u64,
}

impl fmt::Debug for WebhookPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookPolicy")
            .field("url", &self.url.as_str())
            .field("secret", &self.secret)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// A secret string whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself; call only where it is used (HMAC) or persisted.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where a policy came from; config-file policies are read-only to the control API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Config,
    Api,
}

/// A policy attached to an object (an exact stream name, an object id, or a base name).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyEntry {
    pub object: String,
    pub tenant: String,
    pub policy: Policy,
    /// Who may push the streams this policy covers (SPEC §10); `deny` when absent.
    pub publish: PublishRule,
    pub source: Source,
}

/// Who may publish the streams a policy covers. Absent means [`PublishRule::Deny`].
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PublishRule {
    /// Nobody may publish (the default).
    #[default]
    Deny,
    /// Anyone may publish.
    Public,
    /// A token signed by one of the tenant's keys, whose permission claim lists the stream
    /// under `publish`.
    Jwt(JwtPolicy),
    /// The customer's webhook decides (`"action": "publish"`).
    Webhook(WebhookPolicy),
    /// The push URL's `key` query parameter must hash to this.
    StreamKey(crate::publish::StreamKeyHash),
}

impl PublishRule {
    /// The rule's type, as config files, the API and logs name it.
    pub fn kind(&self) -> PublishKind {
        match self {
            PublishRule::Deny => PublishKind::Deny,
            PublishRule::Public => PublishKind::Public,
            PublishRule::Jwt(_) => PublishKind::Jwt,
            PublishRule::Webhook(_) => PublishKind::Webhook,
            PublishRule::StreamKey(_) => PublishKind::StreamKey,
        }
    }
}

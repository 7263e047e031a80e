//! The stable reason codes of SPEC §3: one enum, so logs, metrics and `/v1/test` say the same thing.

use std::fmt;

/// Why a decision came out the way it did. `as_str` is the stable reason code of SPEC.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The viewer may watch.
    Allowed,
    /// The `deny` policy.
    PolicyDeny,
    /// The trigger body could not be parsed.
    BadTrigger,
    /// Never expected; answers `false`.
    InternalError,
    MissingToken,
    JwtNotAJws,
    JwtBadHeader,
    JwtMissingKid,
    NoActiveKeys,
    JwtUnknownKid,
    JwtWrongAlg,
    JwtSigFail,
    JwtMissingExp,
    JwtExpired,
    JwtNotYetValid,
    JwtLifetimeTooLong,
    JwtAudMismatch,
    JwtClaimMismatch,
    JwtIpMismatch,
    WebhookDeny403,
    WebhookErrorStatus,
    WebhookTimeout,
    WebhookNetwork,
    WebhookBlockedSsrf,
    WebhookOverloaded,
    /// `/v1/test` without `fire_webhook`: the webhook was not called.
    WebhookTestSkipped,
    /// A push under a `deny` publish rule (the default).
    PublishDeny,
    /// A push whose `key` is missing or is not the stream key.
    StreamKeyMismatch,
    /// A verified token whose permission claim does not list the stream (SPEC §10).
    JwtPermissionDenied,
    /// The viewer was revoked after this token was issued (SPEC §9).
    ViewerRevoked,
    /// The viewer already holds the policy's maximum of sessions (SPEC §9).
    ViewerSessionLimit,
}

impl Reason {
    /// Every reason, for metrics pre-registration and tests.
    pub const ALL: [Reason; 31] = [
        Reason::Allowed,
        Reason::PolicyDeny,
        Reason::BadTrigger,
        Reason::InternalError,
        Reason::MissingToken,
        Reason::JwtNotAJws,
        Reason::JwtBadHeader,
        Reason::JwtMissingKid,
        Reason::NoActiveKeys,
        Reason::JwtUnknownKid,
        Reason::JwtWrongAlg,
        Reason::JwtSigFail,
        Reason::JwtMissingExp,
        Reason::JwtExpired,
        Reason::JwtNotYetValid,
        Reason::JwtLifetimeTooLong,
        Reason::JwtAudMismatch,
        Reason::JwtClaimMismatch,
        Reason::JwtIpMismatch,
        Reason::WebhookDeny403,
        Reason::WebhookErrorStatus,
        Reason::WebhookTimeout,
        Reason::WebhookNetwork,
        Reason::WebhookBlockedSsrf,
        Reason::WebhookOverloaded,
        Reason::WebhookTestSkipped,
        Reason::PublishDeny,
        Reason::StreamKeyMismatch,
        Reason::JwtPermissionDenied,
        Reason::ViewerRevoked,
        Reason::ViewerSessionLimit,
    ];

    /// The position of this reason in [`Reason::ALL`] (metrics index their counters by it).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The stable reason code (SPEC §3).
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Allowed => "allowed",
            Reason::PolicyDeny => "policy-deny",
            Reason::BadTrigger => "bad-trigger",
            Reason::InternalError => "internal-error",
            Reason::MissingToken => "missing-token",
            Reason::JwtNotAJws => "jwt-not-a-jws",
            Reason::JwtBadHeader => "jwt-bad-header",
            Reason::JwtMissingKid => "jwt-missing-kid",
            Reason::NoActiveKeys => "no-active-keys",
            Reason::JwtUnknownKid => "jwt-unknown-kid",
            Reason::JwtWrongAlg => "jwt-wrong-alg",
            Reason::JwtSigFail => "jwt-sig-fail",
            Reason::JwtMissingExp => "jwt-missing-exp",
            Reason::JwtExpired => "jwt-expired",
            Reason::JwtNotYetValid => "jwt-not-yet-valid",
            Reason::JwtLifetimeTooLong => "jwt-lifetime-too-long",
            Reason::JwtAudMismatch => "jwt-aud-mismatch",
            Reason::JwtClaimMismatch => "jwt-claim-mismatch",
            Reason::JwtIpMismatch => "jwt-ip-mismatch",
            Reason::WebhookDeny403 => "webhook-deny-403",
            Reason::WebhookErrorStatus => "webhook-error-status",
            Reason::WebhookTimeout => "webhook-timeout",
            Reason::WebhookNetwork => "webhook-network",
            Reason::WebhookBlockedSsrf => "webhook-blocked-ssrf",
            Reason::WebhookOverloaded => "webhook-overloaded",
            Reason::WebhookTestSkipped => "webhook-test-skipped",
            Reason::PublishDeny => "publish-deny",
            Reason::StreamKeyMismatch => "stream-key-mismatch",
            Reason::JwtPermissionDenied => "jwt-permission-denied",
            Reason::ViewerRevoked => "viewer-revoked",
            Reason::ViewerSessionLimit => "viewer-session-limit",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// What decided an answer: a viewer policy's or a publish rule's type, or `none` when the request
/// was refused before a policy was found (a malformed trigger). Its name labels the metrics, the
/// log lines and `/v1/test`'s `policy_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    Public,
    Deny,
    Jwt,
    Webhook,
    StreamKey,
    None,
}

impl DecidedBy {
    /// The name, as the metrics label it.
    pub const fn as_str(self) -> &'static str {
        match self {
            DecidedBy::Public => "public",
            DecidedBy::Deny => "deny",
            DecidedBy::Jwt => "jwt",
            DecidedBy::Webhook => "webhook",
            DecidedBy::StreamKey => "stream_key",
            DecidedBy::None => "none",
        }
    }
}

impl std::fmt::Display for DecidedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r}");
        }
    }

    #[test]
    fn reason_codes_are_unique() {
        let mut codes: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), Reason::ALL.len());
    }
}

//! The `jwt` policy check of SPEC §3: header, key, signature, then claims, each failure a `Reason`.
//! (Stub: the JWT helper fills this in.)

pub mod token;

use crate::keys::TenantKeys;
use crate::policy::model::JwtPolicy;
use crate::reason::Reason;

/// What the check knows about the request besides the token.
#[derive(Debug, Clone, Copy)]
pub struct JwtContext<'a> {
    /// The object id the stream maps to (for `object_claim`).
    pub object_id: &'a str,
    /// The viewer IP as MistServer sent it (for the `ipa` claim); may be unparsable.
    pub viewer_ip: &'a str,
    /// Now, in seconds since the Unix epoch.
    pub now_unix_s: f64,
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    pub kid: String,
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// A token that failed a check.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub reason: Reason,
    /// Human detail; never the token itself.
    pub detail: String,
    /// The header's kid, once known.
    pub kid: Option<String>,
    /// The unverified payload when it could be decoded (for `/v1/test`; never an auth signal).
    pub unverified_claims: Option<serde_json::Value>,
}

/// Checks `token` against the tenant's active keys and the policy's rules, in SPEC §3 order.
pub fn check(
    token: &str,
    keys: &TenantKeys,
    rules: &JwtPolicy,
    ctx: &JwtContext<'_>,
) -> Result<Verified, Rejected> {
    let _ = (token, keys, rules, ctx);
    Err(Rejected {
        reason: Reason::InternalError,
        detail: "not implemented".into(),
        kid: None,
        unverified_claims: None,
    })
}

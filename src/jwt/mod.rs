//! The `jwt` policy check of SPEC §3: structure, header, key, signature, then claims, each
//! failure a [`Reason`], in the order of the reason table.
//!
//! The algorithm always comes from the key, never from the header: the header's `alg` is only
//! compared with it. The payload is parsed only after the signature verified, so a validly
//! signed token whose payload is not a JSON object is `jwt-not-a-jws` at that point, while an
//! unsigned one is `jwt-sig-fail`. Structure faults of all three parts (size, dots, base64url
//! spelling) are found first, before anything is decoded.

mod claims;
mod compact;
mod header;
pub mod ip;
mod json;
pub mod token;

#[cfg(test)]
mod tests;

use std::borrow::Cow;

use serde_json::Value;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::keys::{TenantKeys, VerifyingKey};
use crate::policy::model::JwtPolicy;
use crate::reason::Reason;

pub use claims::LEEWAY_S;
pub use compact::MAX_TOKEN_BYTES;

/// What the check knows about the request besides the token.
#[derive(Debug, Clone, Copy)]
pub struct JwtContext<'a> {
    /// The object id the stream maps to (for `object_claim`).
    pub object_id: &'a str,
    /// The viewer IP as MistServer sent it (for the `ipa` claim); may be unparsable.
    pub viewer_ip: &'a str,
    /// Now, in seconds since the Unix epoch.
    pub now_unix_s: f64,
    /// The claims [`Verified::claims`] holds besides those the checks read.
    pub keep: Kept<'a>,
}

/// Which claims of a verified token are kept for the caller.
#[derive(Debug, Clone, Copy)]
pub enum Kept<'a> {
    /// All of them (a dry run reports them).
    All,
    /// Those the checks read and these (the viewer claim, the permission claim).
    Also(&'a [&'a str]),
}

impl JwtContext<'_> {
    /// Whether claim `name` is kept for the caller.
    fn keeps(&self, name: &str) -> bool {
        match self.keep {
            Kept::All => true,
            Kept::Also(names) => names.contains(&name),
        }
    }
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The kid of the key that verified it.
    pub kid: String,
    /// That key's [`serial`](VerifyingKey::serial), for [`check_known`].
    pub signed_by: u64,
    /// The verified claims: those the checks read and those [`JwtContext::keep`] names.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// A token that failed a check.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// The reason code.
    pub reason: Reason,
    /// Human detail; never the token itself.
    pub detail: String,
    /// The header's kid, once known (and only when it is short and printable, so logs stay clean).
    pub kid: Option<String>,
    /// The unverified payload when it could be decoded (for `/v1/test`, which keeps every claim:
    /// [`Kept::All`]; never an auth signal).
    pub unverified_claims: Option<serde_json::Value>,
}

/// One failed check, before it becomes a [`Rejected`]. Fixed details do not allocate.
#[derive(Debug)]
pub(crate) struct Fail {
    reason: Reason,
    detail: Cow<'static, str>,
}

impl Fail {
    fn new(reason: Reason, detail: &'static str) -> Fail {
        Fail {
            reason,
            detail: Cow::Borrowed(detail),
        }
    }

    fn owned(reason: Reason, detail: String) -> Fail {
        Fail {
            reason,
            detail: Cow::Owned(detail),
        }
    }
}

/// Checks `token` against the tenant's active keys and the policy's rules, in SPEC §3 order.
pub fn check(
    token: &str,
    keys: &TenantKeys,
    rules: &JwtPolicy,
    ctx: &JwtContext<'_>,
) -> Result<Verified, Rejected> {
    check_known(token, keys, rules, ctx, None)
}

/// [`check`], except that the signature counts as verified when `verified_by` is the
/// [`serial`](VerifyingKey::serial) of the active key the header names: the caller knows that
/// this very token verified with that very key before (the decision cache does, when a session
/// is checked again after its stream was invalidated), and the verify would only say so again.
/// Every other check still runs: structure, header, the key being active and allowed, claims.
pub fn check_known(
    token: &str,
    keys: &TenantKeys,
    rules: &JwtPolicy,
    ctx: &JwtContext<'_>,
    verified_by: Option<u64>,
) -> Result<Verified, Rejected> {
    let parts = compact::split(token).map_err(|f| reject(f, None, None))?;
    // Only a dry run reports the payload of a token it refuses; a live refusal (a forged token's
    // among them) neither decodes nor parses it.
    let report = matches!(ctx.keep, Kept::All).then_some(parts.payload);
    let header_bytes = compact::decode(parts.header).map_err(|f| reject(f, None, report))?;
    let header = header::parse(&header_bytes).map_err(|f| reject(f, None, report))?;
    let checked = check_header_and_signature(&header, &parts, keys, rules, verified_by);
    let kid = header::kid(&header)
        .ok()
        .filter(|k| header::kid_is_plausible(k));
    let signed_by = checked.map_err(|f| reject(f, kid, report))?;
    let kid = kid.unwrap_or_default();
    let verified = compact::decode(parts.payload)
        .and_then(|bytes| {
            claims::parse(&bytes, |name| {
                ctx.keeps(name) || claims::read_by_checks(name, rules)
            })
        })
        .map_err(|f| reject(f, Some(kid), None))?;
    match claims::check(&verified, rules, ctx) {
        Ok(()) => Ok(Verified {
            kid: kid.to_owned(),
            signed_by,
            claims: verified,
        }),
        Err(f) => Err(Rejected {
            reason: f.reason,
            detail: f.detail.into_owned(),
            kid: Some(kid.to_owned()),
            unverified_claims: Some(Value::Object(verified)),
        }),
    }
}

/// Everything up to and including the signature; on success the kid named an active key, whose
/// serial is returned.
fn check_header_and_signature(
    header: &header::Header<'_>,
    parts: &compact::Parts<'_>,
    keys: &TenantKeys,
    rules: &JwtPolicy,
    verified_by: Option<u64>,
) -> Result<u64, Fail> {
    let alg = header::alg(header)?;
    let kid = header::kid(header)?;
    if keys.is_empty() {
        return Err(Fail::new(
            Reason::NoActiveKeys,
            "the tenant has no active key",
        ));
    }
    if !header::kid_is_plausible(kid) {
        return Err(Fail::new(
            Reason::JwtUnknownKid,
            "kid is too long or has control characters",
        ));
    }
    let key = keys.get(kid).ok_or_else(|| {
        Fail::new(
            Reason::JwtUnknownKid,
            "kid is not an active key of the tenant",
        )
    })?;
    if !rules.allowed_kids.is_empty() && !rules.allowed_kids.iter().any(|k| k == kid) {
        return Err(Fail::new(
            Reason::JwtUnknownKid,
            "kid is not allowed by the policy",
        ));
    }
    if alg != key.alg.as_str() {
        return Err(Fail::owned(
            Reason::JwtWrongAlg,
            format!("header alg differs from the key's {}", key.alg),
        ));
    }
    if verified_by != Some(key.serial()) && !signature_verifies(key, parts) {
        return Err(Fail::new(Reason::JwtSigFail, "signature does not verify"));
    }
    Ok(key.serial())
}

/// The signature check. ES256/ES384 keys use the point aws-lc-rs parsed when the key loaded
/// (the same primitive `jsonwebtoken` calls, minus re-parsing the key on every verify); the other
/// algorithms go through `jsonwebtoken`. The signature is base64url without padding either way.
fn signature_verifies(key: &VerifyingKey, parts: &compact::Parts<'_>) -> bool {
    let Some(parsed) = &key.parsed else {
        return jsonwebtoken::crypto::verify(
            parts.signature,
            parts.signing_input.as_bytes(),
            &key.decoding,
            key.alg.jwt_algorithm(),
        )
        .unwrap_or(false);
    };
    // Fixed-size r||s: 64 bytes for ES256, 96 for ES384; anything that does not fit is wrong.
    let mut signature = [0u8; 128];
    match URL_SAFE_NO_PAD.decode_slice(parts.signature, &mut signature) {
        Ok(len) => parsed
            .verify_sig(parts.signing_input.as_bytes(), &signature[..len])
            .is_ok(),
        Err(_) => false,
    }
}

/// Builds the rejection; the payload, if given (dry runs), is decoded best-effort for `/v1/test`.
fn reject(f: Fail, kid: Option<&str>, payload_b64: Option<&str>) -> Rejected {
    let unverified_claims = payload_b64
        .and_then(|p| compact::decode(p).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    Rejected {
        reason: f.reason,
        detail: f.detail.into_owned(),
        kid: kid.map(str::to_owned),
        unverified_claims,
    }
}

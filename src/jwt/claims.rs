//! The claim checks of SPEC §3, run only on a payload whose signature verified, in the order
//! the reason table lists them. Times are `f64` seconds: fractional NumericDates are valid.

use serde_json::{Map, Value};

use super::{Fail, JwtContext, ip};
use crate::policy::model::JwtPolicy;
use crate::reason::Reason;

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_S: f64 = 60.0;

/// Parses the verified payload: it must be a JSON object (duplicate names: the last one counts).
pub(super) fn parse(bytes: &[u8]) -> Result<Map<String, Value>, Fail> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Fail::new(
            Reason::JwtNotAJws,
            "payload is not a JSON object",
        )),
        Err(_) => Err(Fail::new(Reason::JwtNotAJws, "payload is not JSON")),
    }
}

/// Runs every claim check on the verified claims.
pub(super) fn check(
    claims: &Map<String, Value>,
    rules: &JwtPolicy,
    ctx: &JwtContext<'_>,
) -> Result<(), Fail> {
    let now = ctx.now_unix_s;
    // Every comparison with NaN is false, which would let any exp through: fail closed instead.
    if !now.is_finite() {
        return Err(Fail::new(
            Reason::InternalError,
            "clock reading is not a finite number",
        ));
    }
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or_else(|| Fail::new(Reason::JwtMissingExp, "no numeric exp claim"))?;
    if exp + LEEWAY_S < now {
        return Err(Fail::owned(
            Reason::JwtExpired,
            format!("expired {:.0} s ago", now - exp),
        ));
    }
    // `iat` is not judged, but a wrong type still denies (SPEC §3).
    optional_number(claims, "iat")?;
    let nbf = optional_number(claims, "nbf")?;
    if let Some(nbf) = nbf.filter(|nbf| nbf - LEEWAY_S > now) {
        return Err(Fail::owned(
            Reason::JwtNotYetValid,
            format!("valid in {:.0} s", nbf - now),
        ));
    }
    if let Some(max) = rules.max_lifetime_s {
        // u64 → f64 rounds above 2^53 s, far beyond any real lifetime.
        if exp - now > max as f64 {
            return Err(Fail::owned(
                Reason::JwtLifetimeTooLong,
                format!("exp is {:.0} s away; the policy allows {max} s", exp - now),
            ));
        }
    }
    check_audience(claims.get("aud"), rules.required_audience.as_deref())?;
    check_required(claims, rules, ctx)?;
    check_ipa(claims.get("ipa"), ctx.viewer_ip)
}

/// A registered time claim that may be absent but must be a number when present.
fn optional_number(claims: &Map<String, Value>, name: &'static str) -> Result<Option<f64>, Fail> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| {
            Fail::owned(
                Reason::JwtClaimMismatch,
                format!("{name} claim is not a number"),
            )
        }),
    }
}

fn check_audience(aud: Option<&Value>, required: Option<&str>) -> Result<(), Fail> {
    let wrong_type = || {
        Fail::new(
            Reason::JwtClaimMismatch,
            "aud is not a string or list of strings",
        )
    };
    let contains = match aud {
        None => false,
        Some(Value::String(a)) => required.is_some_and(|r| a == r),
        Some(Value::Array(list)) => {
            let mut found = false;
            for item in list {
                let Value::String(a) = item else {
                    return Err(wrong_type());
                };
                found |= required.is_some_and(|r| a == r);
            }
            found
        }
        Some(_) => return Err(wrong_type()),
    };
    if required.is_some() && !contains {
        return Err(Fail::new(
            Reason::JwtAudMismatch,
            "aud does not contain the required audience",
        ));
    }
    Ok(())
}

fn check_required(
    claims: &Map<String, Value>,
    rules: &JwtPolicy,
    ctx: &JwtContext<'_>,
) -> Result<(), Fail> {
    for (name, want) in &rules.required_claims {
        if claims.get(name) != Some(want) {
            return Err(Fail::owned(
                Reason::JwtClaimMismatch,
                format!("claim {name:?} does not have the required value"),
            ));
        }
    }
    if let Some(name) = &rules.object_claim {
        let matches = matches!(claims.get(name), Some(Value::String(v)) if v == ctx.object_id);
        if !matches {
            return Err(Fail::owned(
                Reason::JwtClaimMismatch,
                format!("claim {name:?} does not name this object"),
            ));
        }
    }
    Ok(())
}

fn check_ipa(ipa: Option<&Value>, viewer_ip: &str) -> Result<(), Fail> {
    match ipa {
        None => Ok(()),
        Some(Value::String(ipa)) if ip::ipa_contains(ipa, viewer_ip) => Ok(()),
        Some(Value::String(_)) => Err(Fail::new(
            Reason::JwtIpMismatch,
            "viewer IP is not in the token's ipa",
        )),
        Some(_) => Err(Fail::new(
            Reason::JwtIpMismatch,
            "ipa claim is not a string",
        )),
    }
}

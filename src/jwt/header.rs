//! The JOSE header: only `alg` and `kid` matter, and only to pick a key and to refuse tokens
//! that ask for something usher does not do (`alg: none`, `crit`). Header fields that point at
//! keys (`jku`, `x5u`, `jwk`, `x5c`) are ignored: keys never come from the token.

use serde_json::{Map, Value};

use super::Fail;
use crate::reason::Reason;

/// Longest kid usher looks up; longer ones cannot name an active key.
pub const MAX_KID_BYTES: usize = crate::keys::material::MAX_KID_BYTES;

/// Parses the decoded header. Bad JSON is `jwt-not-a-jws`; JSON that is not an object is
/// `jwt-bad-header`. Duplicate names: the last one counts.
pub(super) fn parse(bytes: &[u8]) -> Result<Map<String, Value>, Fail> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Fail::new(
            Reason::JwtBadHeader,
            "header is not a JSON object",
        )),
        Err(_) => Err(Fail::new(Reason::JwtNotAJws, "header is not JSON")),
    }
}

/// The header's `alg`, refusing `crit` and `none` (in any casing).
pub(super) fn alg(header: &Map<String, Value>) -> Result<&str, Fail> {
    if header.contains_key("crit") {
        return Err(Fail::new(
            Reason::JwtBadHeader,
            "header has crit, which usher does not support",
        ));
    }
    match header.get("alg") {
        None => Err(Fail::new(Reason::JwtBadHeader, "header has no alg")),
        Some(Value::String(alg)) if alg.eq_ignore_ascii_case("none") => {
            Err(Fail::new(Reason::JwtBadHeader, "alg none is refused"))
        }
        Some(Value::String(alg)) => Ok(alg),
        Some(_) => Err(Fail::new(
            Reason::JwtBadHeader,
            "header alg is not a string",
        )),
    }
}

/// The header's `kid`.
pub(super) fn kid(header: &Map<String, Value>) -> Result<&str, Fail> {
    match header.get("kid") {
        Some(Value::String(kid)) => Ok(kid),
        Some(_) => Err(Fail::new(
            Reason::JwtMissingKid,
            "header kid is not a string",
        )),
        None => Err(Fail::new(Reason::JwtMissingKid, "header has no kid")),
    }
}

/// A kid that could name a key and is safe to log: not too long, no control characters.
pub(super) fn kid_is_plausible(kid: &str) -> bool {
    kid.len() <= MAX_KID_BYTES && !kid.chars().any(char::is_control)
}

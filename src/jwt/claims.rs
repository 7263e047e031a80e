//! The claim checks of SPEC §3, run only on a payload whose signature verified, in the order
//! the reason table lists them. Times are `f64` seconds: fractional NumericDates are valid.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::json::{Checked, Member, scalars_answer};
use super::{Fail, JwtContext, ip};
use crate::policy::model::JwtPolicy;
use crate::reason::Reason;

/// Clock skew allowed on `exp` and `nbf`, in seconds.
pub const LEEWAY_S: f64 = 60.0;

/// Parses the verified payload: it must be a JSON object (duplicate names: the last one counts).
/// Only the claims `keep` names are built into the map; every other value is checked as
/// strictly as the whole payload parsed into a `serde_json::Value` would be, and dropped (a
/// fresh answer reads three or four claims, and building all of them was a tenth of its own
/// work).
pub(super) fn parse(bytes: &[u8], keep: impl Fn(&str) -> bool) -> Result<Map<String, Value>, Fail> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let read = Document { keep: &keep }
        .deserialize(&mut de)
        .and_then(|claims| de.end().map(|()| claims));
    match read {
        Ok(Some(claims)) => Ok(claims),
        Ok(None) => Err(Fail::new(
            Reason::JwtNotAJws,
            "payload is not a JSON object",
        )),
        Err(_) => Err(Fail::new(Reason::JwtNotAJws, "payload is not JSON")),
    }
}

/// Whether the checks below read claim `name` under `rules`.
pub(super) fn read_by_checks(name: &str, rules: &JwtPolicy) -> bool {
    matches!(name, "exp" | "iat" | "nbf" | "aud" | "ipa")
        || rules.required_claims.contains_key(name)
        || rules.object_claim.as_deref() == Some(name)
}

/// The payload document: the kept claims when it is an object, `None` when it is other JSON.
struct Document<'k, K> {
    keep: &'k K,
}

impl<'de, K: Fn(&str) -> bool> DeserializeSeed<'de> for Document<'_, K> {
    type Value = Option<Map<String, Value>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, K: Fn(&str) -> bool> Visitor<'de> for Document<'_, K> {
    type Value = Option<Map<String, Value>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut claims = Map::new();
        while let Some(Member(name)) = map.next_key()? {
            if (self.keep)(&name) {
                let value: Value = map.next_value()?;
                claims.insert(name.into_owned(), value);
            } else {
                map.next_value::<Checked>()?;
            }
        }
        Ok(Some(claims))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Checked::drain_seq(seq).map(|_| None)
    }

    scalars_answer!(None);
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference: the whole payload parsed into a `serde_json::Value`, then the kept claims.
    fn by_value(bytes: &[u8], keep: &[&str]) -> Result<Map<String, Value>, Reason> {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(mut map)) => {
                map.retain(|name, _| keep.contains(&name.as_str()));
                Ok(map)
            }
            Ok(_) | Err(_) => Err(Reason::JwtNotAJws),
        }
    }

    fn by_pass(bytes: &[u8], keep: &[&str]) -> Result<Map<String, Value>, Reason> {
        parse(bytes, |name| keep.contains(&name)).map_err(|f| f.reason)
    }

    #[test]
    fn the_one_pass_read_agrees_with_a_full_parse_and_keeps_only_what_is_read() {
        let deep = format!("{{\"x\":{}1{}}}", "[".repeat(130), "]".repeat(130));
        let payloads: Vec<String> = [
            r#"{"exp":1796286393,"iat":1796282793,"jti":"0-0","sub":"viewer-0-0"}"#,
            r#"{"exp":1,"exp":2.5,"sub":"a","sub":{"b":[1,"c"]}}"#,
            r#"{"s\u0075b":"v\u0031","aud":["a","b"],"ipa":"10.0.0.0/8"}"#,
            r#"{"exp":1,"x":1e400}"#,
            r#"{"exp":1,"x":{"y":[-1e999]}}"#,
            r#"{"exp":1e400}"#,
            r#"{"exp":18446744073709551616,"x":18446744073709551616}"#,
            r#"{"exp":1,"x":"\ud800"}"#,
            r#"{"exp":1,"x":"\q"}"#,
            r#"{"exp":1,"\ud800":1}"#,
            r#"{"exp":01}"#,
            r#"{"exp":1,}"#,
            r#"{"exp":1} "#,
            r#"{"exp":1}x"#,
            r#"{"exp":1 "sub":"a"}"#,
            r#"[{"exp":1}]"#,
            r#"[1e400]"#,
            r#""exp""#,
            "42",
            "null",
            "",
            "{",
            "{}",
            &deep,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for keep in [&["exp", "sub", "aud", "ipa"][..], &["x"][..], &[][..]] {
            for p in &payloads {
                assert_eq!(
                    by_pass(p.as_bytes(), keep),
                    by_value(p.as_bytes(), keep),
                    "{p} keeping {keep:?}"
                );
            }
        }
        let bad_utf8 = b"{\"exp\":1,\"x\":\"k\xff\"}";
        assert_eq!(by_pass(bad_utf8, &["exp"]), by_value(bad_utf8, &["exp"]));
        let kept = by_pass(payloads[0].as_bytes(), &["exp", "sub"]).unwrap();
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["exp", "sub"]);
    }

    #[test]
    fn the_checks_read_the_registered_claims_and_those_the_policy_names() {
        let mut rules = JwtPolicy::default();
        for name in ["exp", "iat", "nbf", "aud", "ipa"] {
            assert!(read_by_checks(name, &rules), "{name}");
        }
        assert!(!read_by_checks("tier", &rules));
        assert!(!read_by_checks("obj", &rules));
        rules
            .required_claims
            .insert("tier".into(), Value::from("pro"));
        rules.object_claim = Some("obj".into());
        assert!(read_by_checks("tier", &rules));
        assert!(read_by_checks("obj", &rules));
    }
}

//! The JOSE header: only `alg` and `kid` matter, and only to pick a key and to refuse tokens
//! that ask for something usher does not do (`alg: none`, `crit`). Header fields that point at
//! keys (`jku`, `x5u`, `jwk`, `x5c`) are ignored: keys never come from the token.
//!
//! Every fresh token's header is read here, so it is read without building a JSON tree: one pass
//! keeps `alg` and `kid` (borrowed from the decoded bytes unless they hold escapes) and notes
//! `crit`; every other value is checked as strictly as a full parse would (numbers in range,
//! escapes valid, nesting within serde_json's limit) and dropped. What it accepts and refuses is
//! exactly what parsing into a `serde_json::Value` would, duplicate names included (the last one
//! counts) — a test holds the two side by side.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

use super::Fail;
use super::json::{Checked, scalars_answer};
use crate::reason::Reason;

/// Longest kid usher looks up; longer ones cannot name an active key.
pub const MAX_KID_BYTES: usize = crate::keys::material::MAX_KID_BYTES;

/// The header fields usher reads.
#[derive(Debug, Default)]
pub(super) struct Header<'a> {
    alg: Option<Field<'a>>,
    kid: Option<Field<'a>>,
    crit: bool,
}

/// A field's value: a string, or anything else (which is wrong for `alg` and `kid`).
#[derive(Debug)]
enum Field<'a> {
    Str(Cow<'a, str>),
    Other,
}

/// Parses the decoded header. Bad JSON is `jwt-not-a-jws`; JSON that is not an object is
/// `jwt-bad-header`. Duplicate names: the last one counts.
pub(super) fn parse(bytes: &[u8]) -> Result<Header<'_>, Fail> {
    match serde_json::from_slice::<Json<'_>>(bytes) {
        Ok(Json::Object(header)) => Ok(header),
        Ok(Json::NotObject) => Err(Fail::new(
            Reason::JwtBadHeader,
            "header is not a JSON object",
        )),
        Err(_) => Err(Fail::new(Reason::JwtNotAJws, "header is not JSON")),
    }
}

/// The header's `alg`, refused when it is `none` (any case), missing or not a string, or when
/// the header carries `crit`.
pub(super) fn alg<'h>(header: &'h Header<'_>) -> Result<&'h str, Fail> {
    if header.crit {
        return Err(Fail::new(
            Reason::JwtBadHeader,
            "header has crit, which usher does not support",
        ));
    }
    match &header.alg {
        None => Err(Fail::new(Reason::JwtBadHeader, "header has no alg")),
        Some(Field::Str(alg)) if alg.eq_ignore_ascii_case("none") => {
            Err(Fail::new(Reason::JwtBadHeader, "alg none is refused"))
        }
        Some(Field::Str(alg)) => Ok(alg),
        Some(Field::Other) => Err(Fail::new(
            Reason::JwtBadHeader,
            "header alg is not a string",
        )),
    }
}

/// The header's `kid`; `jwt-missing-kid` when it is missing or not a string.
pub(super) fn kid<'h>(header: &'h Header<'_>) -> Result<&'h str, Fail> {
    match &header.kid {
        Some(Field::Str(kid)) => Ok(kid),
        Some(Field::Other) => Err(Fail::new(
            Reason::JwtMissingKid,
            "header kid is not a string",
        )),
        None => Err(Fail::new(Reason::JwtMissingKid, "header has no kid")),
    }
}

/// Whether `kid` could name a key: short enough, and free of control characters (so it can be
/// logged).
pub(super) fn kid_is_plausible(kid: &str) -> bool {
    kid.len() <= MAX_KID_BYTES && !kid.chars().any(char::is_control)
}

/// A whole JSON document: the header when it is an object.
enum Json<'a> {
    Object(Header<'a>),
    NotObject,
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut header = Header::default();
        while let Some(name) = map.next_key::<Name>()? {
            match name {
                Name::Alg => header.alg = Some(map.next_value()?),
                Name::Kid => header.kid = Some(map.next_value()?),
                Name::Crit => {
                    map.next_value::<Checked>()?;
                    header.crit = true;
                }
                Name::Other => {
                    map.next_value::<Checked>()?;
                }
            }
        }
        Ok(Json::Object(header))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Json<'de>, A::Error> {
        Checked::drain_seq(seq).map(|_| Json::NotObject)
    }

    scalars_answer!(Json::NotObject);
    fn visit_str<E>(self, _: &str) -> Result<Json<'de>, E> {
        Ok(Json::NotObject)
    }
}

/// A header member's name, as far as usher cares.
enum Name {
    Alg,
    Kid,
    Crit,
    Other,
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E>(self, name: &str) -> Result<Name, E> {
                Ok(match name {
                    "alg" => Name::Alg,
                    "kid" => Name::Kid,
                    "crit" => Name::Crit,
                    _ => Name::Other,
                })
            }
        }
        d.deserialize_str(NameVisitor)
    }
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(s.to_owned())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Field<'de>, A::Error> {
                Checked::drain_map(map).map(|_| Field::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Field<'de>, A::Error> {
                Checked::drain_seq(seq).map(|_| Field::Other)
            }
            scalars_answer!(Field::Other);
        }
        d.deserialize_any(FieldVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    /// The header's verdict: refused as a whole, or its `alg` and `kid` (each taken or refused).
    type Read = Result<(Result<String, Reason>, Result<String, Reason>), Reason>;

    /// What the header check made of a header parsed into a `serde_json::Value` (the reference).
    fn by_value(bytes: &[u8]) -> Read {
        let map: Map<String, Value> = match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(Reason::JwtBadHeader),
            Err(_) => return Err(Reason::JwtNotAJws),
        };
        let alg = if map.contains_key("crit") {
            Err(Reason::JwtBadHeader)
        } else {
            match map.get("alg") {
                Some(Value::String(a)) if !a.eq_ignore_ascii_case("none") => Ok(a.clone()),
                _ => Err(Reason::JwtBadHeader),
            }
        };
        let kid = match map.get("kid") {
            Some(Value::String(k)) => Ok(k.clone()),
            _ => Err(Reason::JwtMissingKid),
        };
        Ok((alg, kid))
    }

    fn by_pass(bytes: &[u8]) -> Read {
        let header = parse(bytes).map_err(|f| f.reason)?;
        let alg = alg(&header).map(str::to_owned).map_err(|f| f.reason);
        let kid = kid(&header).map(str::to_owned).map_err(|f| f.reason);
        Ok((alg, kid))
    }

    #[test]
    fn the_one_pass_read_agrees_with_a_full_parse() {
        let deep = format!("{{\"x\":{}1{}}}", "[".repeat(130), "]".repeat(130));
        let headers: Vec<String> = [
            r#"{"alg":"ES256","kid":"k1","typ":"JWT"}"#,
            r#"{"alg":"ES256","kid":"k1","alg":"none"}"#,
            r#"{"alg":"none","kid":"k1","alg":"ES256"}"#,
            r#"{"alg":"NoNe","kid":"k1"}"#,
            r#"{"alg":"ES256","kid":"k\u0031"}"#,
            r#"{"alg":"ES\u0032\u00356","kid":"k1"}"#,
            r#"{"alg":"ES256","kid":"k1","crit":["exp"]}"#,
            r#"{"alg":"ES256","kid":"k1","crit":null}"#,
            r#"{"alg":"ES256","kid":7}"#,
            r#"{"alg":["ES256"],"kid":"k1"}"#,
            r#"{"alg":{"a":1},"kid":{"b":[1,2]}}"#,
            r#"{"alg":null,"kid":null}"#,
            r#"{"alg":"ES256"}"#,
            r#"{"kid":"k1"}"#,
            r#"{}"#,
            r#"{"alg":"ES256","kid":"k1","x":1e400}"#,
            r#"{"alg":"ES256","kid":"k1","x":-1e400}"#,
            r#"{"alg":"ES256","kid":"k1","x":{"y":[1e999]}}"#,
            r#"{"alg":"ES256","kid":"k1","x":18446744073709551616}"#,
            r#"{"alg":"ES256","kid":"k1","x":"\ud800"}"#,
            r#"{"alg":"ES256","kid":"k1","x":"\q"}"#,
            r#"{"alg":"ES256","kid":"k1","\ud800":1}"#,
            r#"{"alg":"ES256","kid":"k1","x":01}"#,
            r#"{"alg":"ES256","kid":"k1",}"#,
            r#"{"alg":"ES256","kid":"k1"} "#,
            r#"{"alg":"ES256","kid":"k1"}x"#,
            r#"{"alg":"ES256" "kid":"k1"}"#,
            r#"["alg","ES256"]"#,
            r#"[1e400]"#,
            r#""ES256""#,
            "42",
            "true",
            "null",
            "",
            "{",
            &deep,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for h in &headers {
            assert_eq!(by_pass(h.as_bytes()), by_value(h.as_bytes()), "{h}");
        }
        let bad_utf8 = b"{\"alg\":\"ES256\",\"kid\":\"k\xff\"}";
        assert_eq!(by_pass(bad_utf8), by_value(bad_utf8));
    }

    #[test]
    fn alg_and_kid_are_borrowed_unless_escaped() {
        let plain = br#"{"alg":"ES256","kid":"k1"}"#;
        let header = parse(plain).unwrap();
        assert!(matches!(header.kid, Some(Field::Str(Cow::Borrowed("k1")))));
        let escaped = br#"{"alg":"ES256","kid":"k\u0031"}"#;
        let header = parse(escaped).unwrap();
        assert!(matches!(header.kid, Some(Field::Str(Cow::Owned(ref k))) if k == "k1"));
    }
}

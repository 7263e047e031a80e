//! `jwt-not-a-jws` and `jwt-bad-header`: what is refused before any key is looked at.

use jsonwebtoken::Algorithm;
use serde_json::json;

use super::*;

#[test]
fn token_over_8_kib_is_denied_with_jwt_not_a_jws() {
    let fx = Fixture::es256();
    let mut claims = good_claims();
    claims["pad"] = json!("x".repeat(8 * 1024));
    assert_eq!(fx.reason(&fx.token(&claims)), Reason::JwtNotAJws);
}

#[test]
fn wrong_number_of_parts_is_denied_with_jwt_not_a_jws() {
    let fx = Fixture::es256();
    let token = fx.token(&good_claims());
    let (first_two, _) = token.rsplit_once('.').unwrap();
    for bad in [
        "",
        "abc",
        first_two,
        &format!("{token}."),
        &format!("{token}.x"),
        &format!(".{token}"),
    ] {
        assert_eq!(fx.reason(bad), Reason::JwtNotAJws, "{bad:?}");
    }
}

#[test]
fn whitespace_padding_or_foreign_base64_is_denied_with_jwt_not_a_jws() {
    let fx = Fixture::es256();
    let token = fx.token(&good_claims());
    let (h, rest) = token.split_once('.').unwrap();
    for bad in [
        format!("{token} "),
        format!("{token}\n"),
        format!(" {token}"),
        format!("{h}=.{rest}"),
        format!("{token}=="),
        token.replacen('-', "+", 1).replacen('_', "/", 1),
    ] {
        if bad == token {
            continue;
        }
        assert_eq!(fx.reason(&bad), Reason::JwtNotAJws, "{bad:?}");
    }
}

#[test]
fn non_canonical_trailing_bits_are_denied_with_jwt_not_a_jws() {
    let fx = Fixture::es256();
    // A header whose base64url length is 3 mod 4 (two unused bits), its last character nudged.
    let header = r#"{"alg":"ES256","kid":"k1"}"#;
    assert_eq!(b64(header).len() % 4, 3);
    let token = raw_token(
        header,
        &good_claims().to_string(),
        &fx.enc,
        Algorithm::ES256,
    );
    assert!(fx.check(&token).is_ok());
    let (h, rest) = token.split_once('.').unwrap();
    let last = h.as_bytes()[h.len() - 1];
    let nudged = format!("{}{}.{rest}", &h[..h.len() - 1], (last + 1) as char);
    assert_eq!(fx.reason(&nudged), Reason::JwtNotAJws);
}

#[test]
fn header_that_is_not_json_is_denied_with_jwt_not_a_jws() {
    let fx = Fixture::es256();
    for header in ["not json", "{\"alg\":\"ES256\",", "\u{feff}{}", "{} {}"] {
        let token = raw_token(
            header,
            &good_claims().to_string(),
            &fx.enc,
            Algorithm::ES256,
        );
        assert_eq!(fx.reason(&token), Reason::JwtNotAJws, "{header:?}");
    }
}

#[test]
fn validly_signed_payload_that_is_not_a_json_object_is_denied_with_jwt_not_a_jws() {
    let fx = Fixture::es256();
    let header = r#"{"alg":"ES256","kid":"k1"}"#;
    for payload in ["not json", "[1,2]", "42", "\"exp\"", "{\"exp\":1,}"] {
        let token = raw_token(header, payload, &fx.enc, Algorithm::ES256);
        let rejected = fx.check(&token).unwrap_err();
        assert_eq!(rejected.reason, Reason::JwtNotAJws, "{payload:?}");
        assert_eq!(rejected.kid.as_deref(), Some("k1"));
    }
}

#[test]
fn unsigned_payload_that_is_not_json_is_a_signature_failure_first() {
    let fx = Fixture::es256();
    let token = format!(
        "{}.{}.",
        b64(r#"{"alg":"ES256","kid":"k1"}"#),
        b64("not json")
    );
    assert_eq!(fx.reason(&token), Reason::JwtSigFail);
}

#[test]
fn exp_too_large_for_a_number_is_denied_with_jwt_not_a_jws() {
    // serde_json refuses 1e400 outright, so the payload is not JSON at all: pinned here.
    let fx = Fixture::es256();
    let header = r#"{"alg":"ES256","kid":"k1"}"#;
    let token = raw_token(header, r#"{"exp":1e400}"#, &fx.enc, Algorithm::ES256);
    assert_eq!(fx.reason(&token), Reason::JwtNotAJws);
}

#[test]
fn header_that_is_not_an_object_is_denied_with_jwt_bad_header() {
    let fx = Fixture::es256();
    for header in ["[]", "\"ES256\"", "null", "1"] {
        let token = raw_token(
            header,
            &good_claims().to_string(),
            &fx.enc,
            Algorithm::ES256,
        );
        assert_eq!(fx.reason(&token), Reason::JwtBadHeader, "{header:?}");
    }
}

#[test]
fn crit_header_is_denied_with_jwt_bad_header() {
    let fx = Fixture::es256();
    let header = json!({"alg": "ES256", "kid": "k1", "crit": ["exp"], "exp": 1});
    let token = fx.token_with_header(&header, &good_claims());
    assert_eq!(fx.reason(&token), Reason::JwtBadHeader);
    let empty_crit = json!({"alg": "ES256", "kid": "k1", "crit": []});
    assert_eq!(
        fx.reason(&fx.token_with_header(&empty_crit, &good_claims())),
        Reason::JwtBadHeader
    );
}

#[test]
fn missing_or_non_string_alg_is_denied_with_jwt_bad_header() {
    let fx = Fixture::es256();
    for header in [
        json!({"kid": "k1"}),
        json!({"alg": null, "kid": "k1"}),
        json!({"alg": ["ES256"], "kid": "k1"}),
        json!({"alg": 256, "kid": "k1"}),
    ] {
        let token = fx.token_with_header(&header, &good_claims());
        assert_eq!(fx.reason(&token), Reason::JwtBadHeader, "{header}");
    }
}

#[test]
fn alg_none_in_any_casing_is_denied_with_jwt_bad_header() {
    let fx = Fixture::es256();
    let payload = b64(good_claims().to_string());
    for none in ["none", "None", "NONE", "nOnE"] {
        let header = b64(json!({"alg": none, "kid": "k1"}).to_string());
        for sig in ["", "c2ln"] {
            let token = format!("{header}.{payload}.{sig}");
            let rejected = fx.check(&token).unwrap_err();
            assert_eq!(rejected.reason, Reason::JwtBadHeader, "{none} {sig:?}");
            assert_eq!(
                rejected
                    .unverified_claims
                    .as_ref()
                    .and_then(|c| c.get("sub")),
                Some(&json!("abc123")),
                "the unverified payload is shown on deny"
            );
        }
    }
}

#[test]
fn bad_header_is_reported_before_a_missing_kid() {
    let fx = Fixture::es256();
    let token = fx.token_with_header(&json!({"alg": "none"}), &good_claims());
    assert_eq!(fx.reason(&token), Reason::JwtBadHeader);
}

#[test]
fn duplicate_header_names_count_the_last_one() {
    let fx = Fixture::es256();
    let claims = good_claims().to_string();
    let last_good = r#"{"alg":"none","kid":"k1","alg":"ES256"}"#;
    assert!(
        fx.check(&raw_token(last_good, &claims, &fx.enc, Algorithm::ES256))
            .is_ok()
    );
    let last_none = r#"{"alg":"ES256","kid":"k1","alg":"none"}"#;
    let token = raw_token(last_none, &claims, &fx.enc, Algorithm::ES256);
    assert_eq!(fx.reason(&token), Reason::JwtBadHeader);
}

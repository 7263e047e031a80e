//! From the kid to the signature: `jwt-missing-kid`, `no-active-keys`, `jwt-unknown-kid`,
//! `jwt-wrong-alg`, `jwt-sig-fail`, and keys that a token tries to bring along.

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

use super::*;

/// The order of the P-256 group.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

fn with_signature(token: &str, sig: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    format!("{input}.{}", b64(sig))
}

fn signature(token: &str) -> Vec<u8> {
    let (_, sig) = token.rsplit_once('.').unwrap();
    URL_SAFE_NO_PAD.decode(sig).unwrap()
}

#[test]
fn header_without_kid_is_denied_with_jwt_missing_kid() {
    let fx = Fixture::es256();
    for header in [json!({"alg": "ES256"}), json!({"alg": "ES256", "kid": 1})] {
        let token = fx.token_with_header(&header, &good_claims());
        let rejected = fx.check(&token).unwrap_err();
        assert_eq!(rejected.reason, Reason::JwtMissingKid, "{header}");
        assert_eq!(rejected.kid, None);
    }
}

#[test]
fn tenant_without_active_keys_is_denied_with_no_active_keys() {
    let fx = Fixture::es256();
    let token = fx.token(&good_claims());
    let rejected = check(&token, &TenantKeys::default(), &fx.policy, &ctx()).unwrap_err();
    assert_eq!(rejected.reason, Reason::NoActiveKeys);
    assert_eq!(rejected.kid.as_deref(), Some("k1"));
}

#[test]
fn kid_that_is_not_an_active_key_is_denied_with_jwt_unknown_kid() {
    let fx = Fixture::es256();
    let header = json!({"alg": "ES256", "kid": "k2"});
    let rejected = fx
        .check(&fx.token_with_header(&header, &good_claims()))
        .unwrap_err();
    assert_eq!(rejected.reason, Reason::JwtUnknownKid);
    assert_eq!(rejected.kid.as_deref(), Some("k2"));
}

#[test]
fn kid_outside_allowed_kids_is_denied_with_jwt_unknown_kid() {
    let mut fx = Fixture::es256();
    fx.policy.allowed_kids = vec!["k9".into()];
    assert_eq!(fx.reason(&fx.token(&good_claims())), Reason::JwtUnknownKid);
    fx.policy.allowed_kids = vec!["k9".into(), "k1".into()];
    assert!(fx.check(&fx.token(&good_claims())).is_ok());
}

#[test]
fn overlong_or_control_character_kid_is_unknown_and_not_reported() {
    let fx = Fixture::es256();
    for kid in [
        "k".repeat(257),
        "k1\n".into(),
        "k1\u{7f}".into(),
        "k1\u{0}".into(),
    ] {
        let header = json!({"alg": "ES256", "kid": kid});
        let rejected = fx
            .check(&fx.token_with_header(&header, &good_claims()))
            .unwrap_err();
        assert_eq!(rejected.reason, Reason::JwtUnknownKid, "{kid:?}");
        assert_eq!(rejected.kid, None, "an unprintable kid is not echoed");
    }
}

#[test]
fn header_alg_other_than_the_keys_is_denied_with_jwt_wrong_alg() {
    let fx = Fixture::es256();
    for alg in ["ES384", "es256", "RS256", "HS256", "EdDSA", "ES256 "] {
        let header = json!({"alg": alg, "kid": "k1"});
        let token = fx.token_with_header(&header, &good_claims());
        let rejected = fx.check(&token).unwrap_err();
        assert_eq!(rejected.reason, Reason::JwtWrongAlg, "{alg}");
        assert!(rejected.unverified_claims.is_some());
    }
}

#[test]
fn hs256_token_keyed_with_the_es256_public_pem_is_denied_with_jwt_wrong_alg() {
    let fx = Fixture::es256();
    let confused = EncodingKey::from_secret(fx.public_pem.as_bytes());
    let header = json!({"alg": "HS256", "kid": "k1", "typ": "JWT"}).to_string();
    let token = raw_token(
        &header,
        &good_claims().to_string(),
        &confused,
        Algorithm::HS256,
    );
    assert_eq!(fx.reason(&token), Reason::JwtWrongAlg);
}

#[test]
fn es256_signature_by_another_key_with_the_same_kid_is_denied_with_jwt_sig_fail() {
    let fx = Fixture::es256();
    let attacker = Fixture::es256();
    let token = attacker.token(&good_claims());
    let rejected = fx.check(&token).unwrap_err();
    assert_eq!(rejected.reason, Reason::JwtSigFail);
    assert_eq!(rejected.kid.as_deref(), Some("k1"));
    assert_eq!(rejected.unverified_claims, Some(good_claims()));
}

#[test]
fn all_zero_or_malformed_signatures_are_denied_with_jwt_sig_fail() {
    let fx = Fixture::es256();
    let token = fx.token(&good_claims());
    for sig in [
        vec![0u8; 64],
        vec![],
        vec![1u8; 63],
        vec![1u8; 65],
        signature(&token)[..32].to_vec(),
    ] {
        let bad = with_signature(&token, &sig);
        assert_eq!(fx.reason(&bad), Reason::JwtSigFail, "{} bytes", sig.len());
    }
}

#[test]
fn signature_with_r_or_s_not_below_n_is_denied_with_jwt_sig_fail() {
    let fx = Fixture::es256();
    let token = fx.token(&good_claims());
    let good = signature(&token);
    let (r, s) = good.split_at(32);
    let r_is_n = [&P256_N[..], s].concat();
    let s_is_n = [r, &P256_N[..]].concat();
    let max = vec![0xffu8; 64];
    for sig in [r_is_n, s_is_n, max] {
        assert_eq!(fx.reason(&with_signature(&token, &sig)), Reason::JwtSigFail);
    }
}

#[test]
fn tampered_payload_is_denied_with_jwt_sig_fail() {
    let fx = Fixture::es256();
    let token = fx.token(&good_claims());
    let mut parts: Vec<&str> = token.split('.').collect();
    let mut claims = good_claims();
    claims["sub"] = json!("someone-else");
    let forged = b64(claims.to_string());
    parts[1] = &forged;
    assert_eq!(fx.reason(&parts.join(".")), Reason::JwtSigFail);
}

#[test]
fn embedded_jwk_and_jku_headers_are_ignored() {
    let fx = Fixture::es256();
    let attacker = Fixture::es256();
    let attacker_jwk = load_key("k1", KeyAlg::Es256, KeyMaterial::Pem(&attacker.public_pem))
        .public_jwk
        .unwrap();
    let header = json!({
        "alg": "ES256", "kid": "k1", "jwk": attacker_jwk,
        "jku": "https://attacker.example/jwks.json", "x5u": "https://attacker.example/c.pem",
        "x5c": ["MIIB"],
    });
    let by_attacker = attacker.token_with_header(&header, &good_claims());
    assert_eq!(fx.reason(&by_attacker), Reason::JwtSigFail);
    let by_owner = fx.token_with_header(&header, &good_claims());
    assert!(
        fx.check(&by_owner).is_ok(),
        "the fields are ignored, not refused"
    );
}

#[test]
fn checks_run_in_spec_order() {
    let fx = Fixture::es256();
    let expired = json!({"exp": NOW - 3600.0});
    // Wrong alg beats everything after it, including a bad signature and an expired token.
    let header = json!({"alg": "ES384", "kid": "k1"});
    let token = Fixture::es256().token_with_header(&header, &expired);
    assert_eq!(fx.reason(&token), Reason::JwtWrongAlg);
    // A bad signature beats the claims.
    assert_eq!(
        fx.reason(&Fixture::es256().token(&expired)),
        Reason::JwtSigFail
    );
    // No active keys beats an unknown kid.
    let unknown = fx.token_with_header(&json!({"alg": "ES256", "kid": "zz"}), &expired);
    let rejected = check(&unknown, &TenantKeys::default(), &fx.policy, &ctx()).unwrap_err();
    assert_eq!(rejected.reason, Reason::NoActiveKeys);
    // A missing kid beats no active keys.
    let no_kid = fx.token_with_header(&json!({"alg": "ES256"}), &expired);
    let rejected = check(&no_kid, &TenantKeys::default(), &fx.policy, &ctx()).unwrap_err();
    assert_eq!(rejected.reason, Reason::JwtMissingKid);
}

#[test]
fn ecdsa_keys_verify_with_their_point_parsed_once_and_agree_with_jsonwebtoken() {
    let fx = Fixture::es256();
    let key = load_key("k1", KeyAlg::Es256, KeyMaterial::Pem(&fx.public_pem));
    let parsed = key.parsed.as_ref().expect("ES256 keys are parsed at load");
    let token = fx.token(&good_claims());
    let good = signature(&token);
    let (r, s) = good.split_at(32);
    let (input, sig_b64) = token.rsplit_once('.').unwrap();
    let mut flipped = good.clone();
    flipped[63] ^= 1;
    let mut cases: Vec<String> = [
        good.clone(),
        flipped,
        vec![0u8; 64],
        [&[0u8; 32][..], s].concat(),
        [r, &[0u8; 32][..]].concat(),
        [&P256_N[..], s].concat(),
        [r, &P256_N[..]].concat(),
        good[..63].to_vec(),
        [&good[..], &[0u8][..]].concat(),
        vec![0xffu8; 200],
    ]
    .iter()
    .map(b64)
    .collect();
    cases.extend([
        format!("{sig_b64}="),
        format!("{sig_b64}A"),
        sig_b64.replace(|c: char| c.is_ascii_digit(), "+"),
        String::new(),
    ]);
    for sig in cases {
        let by_jsonwebtoken =
            jsonwebtoken::crypto::verify(&sig, input.as_bytes(), &key.decoding, Algorithm::ES256)
                .unwrap_or(false);
        let parts = crate::jwt::compact::Parts {
            signing_input: input,
            header: input.split('.').next().unwrap(),
            payload: input.split('.').nth(1).unwrap(),
            signature: &sig,
        };
        assert_eq!(
            crate::jwt::signature_verifies(&key, &parts),
            by_jsonwebtoken,
            "signature {sig:?}"
        );
    }
    assert!(parsed.verify_sig(input.as_bytes(), &good).is_ok());
    let rsa = load_key(
        "k2",
        KeyAlg::Rs256,
        KeyMaterial::Pem(crate::keys::material::tests::RSA_PUB_PEM),
    );
    assert!(
        rsa.parsed.is_none(),
        "other algorithms go through jsonwebtoken"
    );
}

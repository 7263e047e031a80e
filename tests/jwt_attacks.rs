//! The JWT attack catalogue: every known way to get a forged or malformed token past a verifier,
//! each pinned to the exact SPEC §3 reason `usher::jwt::check` gives. Keys come from
//! `keys::material::load`, exactly as the daemon loads them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};
use usher::jwt::{self, JwtContext, MAX_TOKEN_BYTES, Rejected, Verified};
use usher::keys::keygen::generate_es256;
use usher::keys::material::{KeyMaterial, load};
use usher::keys::{KeyAlg, KeySource, TenantKeys};
use usher::policy::model::JwtPolicy;
use usher::reason::Reason;

const NOW: f64 = 1_700_000_000.0;

/// The order n of the P-256 group, big-endian.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `b64(header).b64(payload).sig` over the exact JSON text given (duplicate names, odd numbers).
fn raw(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).expect("signs");
    format!("{input}.{sig}")
}

fn good_claims() -> Value {
    json!({"iat": NOW, "exp": NOW + 600.0, "sub": "abc123"})
}

/// A tenant holding one ES256 key `k1`, the private key behind it, and its public PEM.
struct Victim {
    enc: EncodingKey,
    public_pem: String,
    keys: TenantKeys,
}

impl Victim {
    fn new() -> Victim {
        let pair = generate_es256("k1").expect("keygen");
        let material = KeyMaterial::Pem(&pair.public_pem);
        let key = load("k1", "t1", Some(KeyAlg::Es256), material, KeySource::Config)
            .expect("public key loads");
        let mut keys = TenantKeys::default();
        keys.insert(Arc::new(key));
        Victim {
            enc: EncodingKey::from_ec_pem(pair.private_pem.as_bytes()).expect("private key"),
            public_pem: pair.public_pem,
            keys,
        }
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        raw(
            &header.to_string(),
            &claims.to_string(),
            &self.enc,
            Algorithm::ES256,
        )
    }

    fn token(&self, claims: &Value) -> String {
        self.sign(&json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}), claims)
    }

    fn check(&self, token: &str) -> Result<Verified, Rejected> {
        let ctx = JwtContext {
            object_id: "abc123",
            viewer_ip: "10.1.2.3",
            now_unix_s: NOW,
            keep: jwt::Kept::All,
        };
        jwt::check(token, &self.keys, &JwtPolicy::default(), &ctx)
    }

    fn reason(&self, token: &str) -> Reason {
        match self.check(token) {
            Ok(v) => panic!("attack token was allowed (kid {}): {token}", v.kid),
            Err(r) => r.reason,
        }
    }
}

/// An attacker's own ES256 key pair (PEM private, public JWK).
fn attacker() -> (EncodingKey, Value, String) {
    let pair = generate_es256("k1").expect("keygen");
    let enc = EncodingKey::from_ec_pem(pair.private_pem.as_bytes()).expect("private key");
    (enc, pair.public_jwk, pair.public_pem)
}

fn with_signature(token: &str, sig: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').expect("three parts");
    format!("{input}.{}", b64(sig))
}

fn signature(token: &str) -> Vec<u8> {
    let (_, sig) = token.rsplit_once('.').expect("three parts");
    URL_SAFE_NO_PAD.decode(sig).expect("base64url")
}

#[test]
fn the_unattacked_token_is_allowed() {
    let v = Victim::new();
    assert_eq!(
        v.check(&v.token(&good_claims())).expect("allowed").kid,
        "k1"
    );
}

#[test]
fn alg_none_in_every_casing_is_denied_with_jwt_bad_header() {
    let v = Victim::new();
    let payload = b64(good_claims().to_string());
    let real_sig = v
        .token(&good_claims())
        .rsplit_once('.')
        .unwrap()
        .1
        .to_owned();
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(json!({"alg": alg, "kid": "k1"}).to_string());
        for sig in ["", real_sig.as_str()] {
            let token = format!("{header}.{payload}.{sig}");
            assert_eq!(v.reason(&token), Reason::JwtBadHeader, "alg {alg:?}");
        }
    }
}

#[test]
fn hs256_keyed_with_the_es256_public_pem_is_denied_with_jwt_wrong_alg() {
    let v = Victim::new();
    let hmac = EncodingKey::from_secret(v.public_pem.as_bytes());
    let claims = good_claims().to_string();
    let token = raw(
        r#"{"alg":"HS256","kid":"k1"}"#,
        &claims,
        &hmac,
        Algorithm::HS256,
    );
    assert_eq!(v.reason(&token), Reason::JwtWrongAlg);
    // The same HMAC under a header that claims ES256 is just a bad signature.
    let token = raw(
        r#"{"alg":"ES256","kid":"k1"}"#,
        &claims,
        &hmac,
        Algorithm::HS256,
    );
    assert_eq!(v.reason(&token), Reason::JwtSigFail);
}

#[test]
fn zero_and_out_of_range_ecdsa_signatures_are_denied_with_jwt_sig_fail() {
    let v = Victim::new();
    let token = v.token(&good_claims());
    let sig = signature(&token);
    let (r, s) = sig.split_at(32);
    let cat = |r: &[u8], s: &[u8]| [r, s].concat();
    let cases: [(&str, Vec<u8>); 9] = [
        ("all zero", vec![0; 64]),
        ("r = 0", cat(&[0; 32], s)),
        ("s = 0", cat(r, &[0; 32])),
        ("r = n", cat(&P256_N, s)),
        ("s = n", cat(r, &P256_N)),
        ("r = 2^256 - 1", cat(&[0xff; 32], s)),
        ("s = 2^256 - 1", cat(r, &[0xff; 32])),
        ("r = s = n", cat(&P256_N, &P256_N)),
        ("too short", sig[..63].to_vec()),
    ];
    for (name, bad) in cases {
        let forged = with_signature(&token, &bad);
        assert_eq!(v.reason(&forged), Reason::JwtSigFail, "{name}");
    }
    let too_long = with_signature(&token, &[sig.as_slice(), &[0]].concat());
    assert_eq!(v.reason(&too_long), Reason::JwtSigFail, "65 bytes");
    let der = p256::ecdsa::Signature::from_slice(&sig).unwrap().to_der();
    let der = with_signature(&token, der.as_bytes());
    assert_eq!(v.reason(&der), Reason::JwtSigFail, "DER instead of r || s");
}

#[test]
fn valid_signature_of_another_key_with_the_same_kid_is_denied_with_jwt_sig_fail() {
    let v = Victim::new();
    let (enc, _, _) = attacker();
    let header = r#"{"alg":"ES256","kid":"k1"}"#;
    let token = raw(header, &good_claims().to_string(), &enc, Algorithm::ES256);
    assert_eq!(v.reason(&token), Reason::JwtSigFail);
}

#[test]
fn embedded_key_headers_pointing_at_an_attacker_key_are_denied_with_jwt_sig_fail() {
    let v = Victim::new();
    let (enc, jwk, pem) = attacker();
    let der = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>();
    let der = STANDARD.decode(der).expect("spki der");
    let headers = [
        json!({"alg": "ES256", "kid": "k1", "jwk": jwk}),
        json!({"alg": "ES256", "kid": "k1", "jku": "https://attacker.example/jwks.json"}),
        json!({"alg": "ES256", "kid": "k1", "x5u": "https://attacker.example/cert.pem"}),
        json!({"alg": "ES256", "kid": "k1", "x5c": [STANDARD.encode(&der)]}),
        json!({"alg": "ES256", "jwk": jwk, "jku": "https://a.example/", "kid": "k1",
               "x5u": "https://a.example/c", "x5c": [STANDARD.encode(&der)]}),
    ];
    for header in headers {
        let token = raw(
            &header.to_string(),
            &good_claims().to_string(),
            &enc,
            Algorithm::ES256,
        );
        assert_eq!(v.reason(&token), Reason::JwtSigFail, "{header}");
    }
}

#[test]
fn crit_header_is_denied_with_jwt_bad_header() {
    let v = Victim::new();
    for crit in [json!(["exp"]), json!([]), json!("b64"), json!(null)] {
        let token = v.sign(
            &json!({"alg": "ES256", "kid": "k1", "crit": crit}),
            &good_claims(),
        );
        assert_eq!(v.reason(&token), Reason::JwtBadHeader, "crit {crit}");
    }
}

#[test]
fn hostile_kids_are_denied_with_jwt_unknown_kid_and_not_echoed() {
    let v = Victim::new();
    let long = "k".repeat(5 * 1024);
    for kid in [
        "../k1",
        "../../../../etc/passwd",
        "k1/..",
        "k1\0",
        "\0k1",
        "K1",
        " k1",
        &long,
    ] {
        let token = v.sign(&json!({"alg": "ES256", "kid": kid}), &good_claims());
        assert!(token.len() <= MAX_TOKEN_BYTES);
        let rejected = v.check(&token).expect_err("denied");
        assert_eq!(rejected.reason, Reason::JwtUnknownKid, "kid {kid:?}");
        if kid.contains('\0') || kid.len() > 256 {
            assert_eq!(rejected.kid, None, "an implausible kid is never reported");
        }
    }
}

#[test]
fn kid_of_10_kib_makes_the_token_too_long_and_is_denied_with_jwt_not_a_jws() {
    // SPEC §3 order: the 8 KiB size limit (jwt-not-a-jws) is checked before the kid is looked at.
    let v = Victim::new();
    let token = v.sign(
        &json!({"alg": "ES256", "kid": "k".repeat(10 * 1024)}),
        &good_claims(),
    );
    assert!(token.len() > MAX_TOKEN_BYTES);
    assert_eq!(v.reason(&token), Reason::JwtNotAJws);
}

#[test]
fn registered_claims_of_the_wrong_type_or_range_are_denied_with_their_spec_reason() {
    let v = Victim::new();
    let exp = NOW + 600.0;
    let cases = [
        (json!({"exp": "1700000600"}), Reason::JwtMissingExp),
        (json!({"exp": null}), Reason::JwtMissingExp),
        (json!({"exp": true}), Reason::JwtMissingExp),
        (json!({"exp": [exp]}), Reason::JwtMissingExp),
        (json!({"exp": {"value": exp}}), Reason::JwtMissingExp),
        (json!({"exp": -1}), Reason::JwtExpired),
        (json!({"exp": i64::MIN}), Reason::JwtExpired),
        (json!({"exp": exp, "nbf": {}}), Reason::JwtClaimMismatch),
        (json!({"exp": exp, "nbf": "0"}), Reason::JwtClaimMismatch),
        (json!({"exp": exp, "iat": "now"}), Reason::JwtClaimMismatch),
        (json!({"exp": exp, "aud": 42}), Reason::JwtClaimMismatch),
        (
            json!({"exp": exp, "aud": ["viewer", 42]}),
            Reason::JwtClaimMismatch,
        ),
    ];
    for (claims, want) in cases {
        assert_eq!(v.reason(&v.token(&claims)), want, "{claims}");
    }
}

#[test]
fn exp_of_1e400_is_not_json_usher_reads_and_is_denied_with_jwt_not_a_jws() {
    // 1e400 overflows an f64; serde_json refuses the number, so the signed payload is not JSON.
    let v = Victim::new();
    let token = raw(
        r#"{"alg":"ES256","kid":"k1"}"#,
        r#"{"exp":1e400}"#,
        &v.enc,
        Algorithm::ES256,
    );
    assert_eq!(v.reason(&token), Reason::JwtNotAJws);
    let token = raw(
        r#"{"alg":"ES256","kid":"k1"}"#,
        r#"{"exp":-1e400}"#,
        &v.enc,
        Algorithm::ES256,
    );
    assert_eq!(v.reason(&token), Reason::JwtNotAJws);
}

#[test]
fn huge_but_finite_exp_is_allowed_without_a_max_lifetime() {
    let v = Victim::new();
    let token = raw(
        r#"{"alg":"ES256","kid":"k1"}"#,
        r#"{"exp":1e300}"#,
        &v.enc,
        Algorithm::ES256,
    );
    assert!(v.check(&token).is_ok());
}

#[test]
fn duplicate_claim_names_count_the_last_one() {
    let v = Victim::new();
    let header = r#"{"alg":"ES256","kid":"k1"}"#;
    let (past, future) = (NOW - 3600.0, NOW + 600.0);
    let last_future = format!(r#"{{"exp":{past},"exp":{future}}}"#);
    assert!(
        v.check(&raw(header, &last_future, &v.enc, Algorithm::ES256))
            .is_ok()
    );
    let last_past = format!(r#"{{"exp":{future},"exp":{past}}}"#);
    let token = raw(header, &last_past, &v.enc, Algorithm::ES256);
    assert_eq!(v.reason(&token), Reason::JwtExpired);
    // The header too: a trailing `alg: none` wins and is refused.
    let claims = good_claims().to_string();
    let header = r#"{"alg":"ES256","kid":"k1","alg":"none"}"#;
    let token = raw(header, &claims, &v.enc, Algorithm::ES256);
    assert_eq!(v.reason(&token), Reason::JwtBadHeader);
}

#[test]
fn validly_signed_token_over_8_kib_is_denied_with_jwt_not_a_jws() {
    let v = Victim::new();
    let sized = |pad: usize| v.token(&json!({"exp": NOW + 600.0, "pad": "x".repeat(pad)}));
    let mut pad = 5000;
    while sized(pad).len() <= MAX_TOKEN_BYTES {
        pad += 1;
    }
    let fits = sized(pad - 1);
    assert!(fits.len() <= MAX_TOKEN_BYTES && fits.len() > MAX_TOKEN_BYTES - 3);
    assert!(v.check(&fits).is_ok(), "{} bytes", fits.len());
    assert_eq!(v.reason(&sized(pad)), Reason::JwtNotAJws);
    assert_eq!(v.reason(&sized(64 * 1024)), Reason::JwtNotAJws);
}

#[test]
fn trailing_dots_and_surrounding_whitespace_are_denied_with_jwt_not_a_jws() {
    let v = Victim::new();
    let t = v.token(&good_claims());
    let variants = [
        format!("{t}."),
        format!("{t}.."),
        format!(".{t}"),
        format!(" {t}"),
        format!("{t} "),
        format!("\t{t}"),
        format!("{t}\n"),
        format!("\r\n{t}"),
        format!("{t}\u{a0}"),
        format!("\u{feff}{t}"),
        t.replacen('.', ". ", 1),
        t.replacen('.', "..", 1),
    ];
    for token in variants {
        assert_eq!(v.reason(&token), Reason::JwtNotAJws, "{token:?}");
    }
}

#[test]
fn fractional_numeric_dates_are_still_allowed() {
    let v = Victim::new();
    let claims = json!({"exp": NOW + 600.5, "nbf": NOW - 0.25, "iat": NOW - 0.75});
    assert!(v.check(&v.token(&claims)).is_ok());
}

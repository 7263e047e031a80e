//! Raw ES256 verifications per second, single-threaded, with each backend within reach:
//! jsonwebtoken's `crypto::verify` (what usher called before), aws-lc-rs with the key parsed per
//! call (`UnparsedPublicKey`, what jsonwebtoken does inside) and parsed once (`ParsedPublicKey`,
//! what usher does now), ring, and RustCrypto's p256.
//!
//! `cargo bench --bench verify [-- SECONDS]` prints one `verify_per_s backend=… n=…` line each.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

use std::hint::black_box;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey, Header};
use p256::ecdsa::signature::Verifier;
use p256::pkcs8::DecodePublicKey;

fn rate(name: &str, budget: Duration, mut verify: impl FnMut() -> bool) {
    assert!(verify(), "{name}: the signature must verify");
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < budget {
        for _ in 0..64 {
            black_box(verify());
        }
        n += 64;
    }
    let per_s = n as f64 / started.elapsed().as_secs_f64();
    println!("verify_per_s backend={name} n={per_s:.0}");
}

fn main() {
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2.0);
    let budget = Duration::from_secs_f64(secs);
    let pair = usher::keys::keygen::generate_es256("k1").expect("keygen");
    let encoding = EncodingKey::from_ec_pem(pair.private_pem.as_bytes()).expect("pem");
    let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("k1".into());
    let claims = serde_json::json!({"iat": 1_700_000_000, "exp": 1_900_000_000, "sub": "abc123"});
    let token = jsonwebtoken::encode(&header, &claims, &encoding).expect("sign");
    let (input, sig_b64) = token.rsplit_once('.').expect("three parts");
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).expect("b64");
    let public = p256::PublicKey::from_public_key_pem(&pair.public_pem).expect("public pem");
    let point = public.to_sec1_bytes(); // uncompressed SEC1, as the JOSE backends take it
    let msg = input.as_bytes();

    let decoding = DecodingKey::from_ec_pem(pair.public_pem.as_bytes()).expect("decoding");
    rate("jsonwebtoken-aws-lc-rs", budget, || {
        jsonwebtoken::crypto::verify(sig_b64, msg, &decoding, jsonwebtoken::Algorithm::ES256)
            .unwrap_or(false)
    });
    let unparsed = aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        &point[..],
    );
    rate("aws-lc-rs-unparsed", budget, || {
        unparsed.verify(msg, &sig).is_ok()
    });
    let parsed = aws_lc_rs::signature::ParsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
        &point[..],
    )
    .expect("parsed");
    rate("aws-lc-rs-parsed", budget, || {
        parsed.verify_sig(msg, &sig).is_ok()
    });
    let ring_key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        &point[..],
    );
    rate("ring", budget, || ring_key.verify(msg, &sig).is_ok());
    let rc_key = p256::ecdsa::VerifyingKey::from(&public);
    let rc_sig = p256::ecdsa::Signature::from_slice(&sig).expect("sig");
    rate("p256-rustcrypto", budget, || {
        rc_key.verify(msg, &rc_sig).is_ok()
    });
}

//! Every algorithm a key may carry verifies its own tokens, and only those.

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

use super::*;
use crate::keys::material::tests::RSA_PUB_PEM;

const RSA_KEY_PEM: &str = include_str!("../../../tests/data/test-rsa2048.key.pem");

fn allows(alg: KeyAlg, enc: &EncodingKey, key: VerifyingKey) {
    let keys = tenant(vec![key]);
    let header = json!({"alg": alg.as_str(), "kid": "k1", "typ": "JWT"}).to_string();
    let token = raw_token(
        &header,
        &good_claims().to_string(),
        enc,
        alg.jwt_algorithm(),
    );
    let policy = JwtPolicy::default();
    let verified = check(&token, &keys, &policy, &ctx());
    assert!(verified.is_ok(), "{alg}: {:?}", verified.err());
    // The same token with one signature byte changed is refused.
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[0] ^= 1;
    let broken = format!("{input}.{}", b64(&sig));
    let rejected = check(&broken, &keys, &policy, &ctx()).unwrap_err();
    assert_eq!(rejected.reason, Reason::JwtSigFail, "{alg}");
}

fn rcgen_pair(alg: &'static rcgen::SignatureAlgorithm) -> (String, String) {
    let pair = rcgen::KeyPair::generate_for(alg).unwrap();
    (pair.serialize_pem(), pair.public_key_pem())
}

#[test]
fn es256_token_is_allowed() {
    let fx = Fixture::es256();
    let key = load_key("k1", KeyAlg::Es256, KeyMaterial::Pem(&fx.public_pem));
    allows(KeyAlg::Es256, &fx.enc, key);
    assert!(fx.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn es384_token_is_allowed() {
    let (private, public) = rcgen_pair(&rcgen::PKCS_ECDSA_P384_SHA384);
    let enc = EncodingKey::from_ec_pem(private.as_bytes()).unwrap();
    allows(
        KeyAlg::Es384,
        &enc,
        load_key("k1", KeyAlg::Es384, KeyMaterial::Pem(&public)),
    );
}

#[test]
fn eddsa_token_is_allowed() {
    let (private, public) = rcgen_pair(&rcgen::PKCS_ED25519);
    let enc = EncodingKey::from_ed_pem(private.as_bytes()).unwrap();
    allows(
        KeyAlg::EdDsa,
        &enc,
        load_key("k1", KeyAlg::EdDsa, KeyMaterial::Pem(&public)),
    );
}

#[test]
fn rs256_and_ps256_tokens_are_allowed() {
    let enc = EncodingKey::from_rsa_pem(RSA_KEY_PEM.as_bytes()).unwrap();
    for alg in [KeyAlg::Rs256, KeyAlg::Ps256] {
        allows(
            alg,
            &enc,
            load_key("k1", alg, KeyMaterial::Pem(RSA_PUB_PEM)),
        );
    }
}

#[test]
fn rs256_key_loaded_from_its_jwk_verifies() {
    let enc = EncodingKey::from_rsa_pem(RSA_KEY_PEM.as_bytes()).unwrap();
    let jwk = load_key("k1", KeyAlg::Rs256, KeyMaterial::Pem(RSA_PUB_PEM))
        .public_jwk
        .unwrap();
    allows(
        KeyAlg::Rs256,
        &enc,
        load_key("k1", KeyAlg::Rs256, KeyMaterial::Jwk(&jwk)),
    );
}

#[test]
fn hs256_token_is_allowed() {
    let secret = b"an hs256 secret of some length!!";
    let enc = EncodingKey::from_secret(secret);
    allows(
        KeyAlg::Hs256,
        &enc,
        load_key("k1", KeyAlg::Hs256, KeyMaterial::Secret(secret)),
    );
}

#[test]
fn rs256_token_against_a_ps256_key_is_denied_with_jwt_wrong_alg() {
    let enc = EncodingKey::from_rsa_pem(RSA_KEY_PEM.as_bytes()).unwrap();
    let keys = tenant(vec![load_key(
        "k1",
        KeyAlg::Ps256,
        KeyMaterial::Pem(RSA_PUB_PEM),
    )]);
    let header = json!({"alg": "RS256", "kid": "k1"}).to_string();
    let token = raw_token(&header, &good_claims().to_string(), &enc, Algorithm::RS256);
    let rejected = check(&token, &keys, &JwtPolicy::default(), &ctx()).unwrap_err();
    assert_eq!(rejected.reason, Reason::JwtWrongAlg);
}

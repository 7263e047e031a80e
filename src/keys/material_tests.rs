//! Tests for [`super::load`]: which material becomes a key, and which is refused.

use serde_json::json;

use super::*;
use crate::keys::keygen::generate_es256;

pub(crate) const RSA_PUB_PEM: &str = include_str!("../../tests/data/test-rsa2048.pub.pem");

fn pem(alg: Option<KeyAlg>, pem: &str) -> Result<VerifyingKey, KeyError> {
    load("k1", "t1", alg, KeyMaterial::Pem(pem), KeySource::Config)
}

fn jwk(alg: Option<KeyAlg>, jwk: &Value) -> Result<VerifyingKey, KeyError> {
    load("k1", "t1", alg, KeyMaterial::Jwk(jwk), KeySource::Api)
}

fn es256_public_pem() -> String {
    generate_es256("k1").unwrap().public_pem
}

fn rcgen_public_pem(alg: &'static rcgen::SignatureAlgorithm) -> String {
    rcgen::KeyPair::generate_for(alg).unwrap().public_key_pem()
}

#[test]
fn es256_pem_without_alg_defaults_to_es256_and_has_a_public_jwk() {
    let key = pem(None, &es256_public_pem()).unwrap();
    assert_eq!(key.alg, KeyAlg::Es256);
    assert_eq!((key.kid.as_str(), key.tenant.as_str()), ("k1", "t1"));
    let jwk = key.public_jwk.unwrap();
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert_eq!(jwk["kid"], "k1");
    assert_eq!(jwk["alg"], "ES256");
    assert_eq!(jwk["use"], "sig");
    assert!(jwk.get("d").is_none());
}

#[test]
fn es384_and_ed25519_pems_load_with_public_jwks() {
    let es384 = pem(
        Some(KeyAlg::Es384),
        &rcgen_public_pem(&rcgen::PKCS_ECDSA_P384_SHA384),
    )
    .unwrap();
    let jwk = es384.public_jwk.unwrap();
    assert_eq!(
        (jwk["crv"].as_str(), jwk["alg"].as_str()),
        (Some("P-384"), Some("ES384"))
    );
    let ed = pem(Some(KeyAlg::EdDsa), &rcgen_public_pem(&rcgen::PKCS_ED25519)).unwrap();
    let jwk = ed.public_jwk.unwrap();
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
}

#[test]
fn rsa_pem_loads_as_rs256_or_ps256() {
    for alg in [KeyAlg::Rs256, KeyAlg::Ps256] {
        let key = pem(Some(alg), RSA_PUB_PEM).unwrap();
        assert_eq!(key.alg, alg);
        let jwk = key.public_jwk.unwrap();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk["alg"], alg.as_str());
    }
}

#[test]
fn pem_of_another_key_type_than_its_alg_is_refused() {
    let p256 = es256_public_pem();
    assert!(pem(None, RSA_PUB_PEM).is_err(), "an RSA PEM is not ES256");
    assert!(pem(Some(KeyAlg::Es256), RSA_PUB_PEM).is_err());
    assert!(pem(Some(KeyAlg::Es384), &p256).is_err());
    assert!(pem(Some(KeyAlg::EdDsa), &p256).is_err());
    assert!(pem(Some(KeyAlg::Rs256), &p256).is_err());
    assert!(pem(Some(KeyAlg::Hs256), &p256).is_err());
    let p384 = rcgen_public_pem(&rcgen::PKCS_ECDSA_P384_SHA384);
    assert!(pem(Some(KeyAlg::Es256), &p384).is_err());
}

#[test]
fn private_key_pem_is_refused_without_echoing_it() {
    let pair = generate_es256("k1").unwrap();
    let err = pem(None, &pair.private_pem).unwrap_err().to_string();
    assert!(err.contains("private key"), "{err}");
    let body_line = pair.private_pem.lines().nth(1).unwrap();
    assert!(!err.contains(body_line));
}

#[test]
fn garbage_pem_is_refused() {
    assert!(pem(None, "").is_err());
    assert!(
        pem(
            None,
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"
        )
        .is_err()
    );
    let cert = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
    assert!(
        pem(None, &cert.cert.pem()).is_err(),
        "certificates are not accepted"
    );
}

#[test]
fn ec_jwk_without_alg_is_derived_from_its_curve() {
    let from_pem = pem(None, &es256_public_pem()).unwrap().public_jwk.unwrap();
    let mut bare = from_pem.clone();
    for member in ["alg", "use", "kid"] {
        bare.as_object_mut().unwrap().remove(member);
    }
    let key = jwk(None, &bare).unwrap();
    assert_eq!(key.alg, KeyAlg::Es256);
    assert_eq!(key.public_jwk.unwrap(), from_pem);
}

#[test]
fn rsa_jwk_without_alg_is_rs256_and_may_be_declared_ps256() {
    let mut public = pem(Some(KeyAlg::Rs256), RSA_PUB_PEM)
        .unwrap()
        .public_jwk
        .unwrap();
    public.as_object_mut().unwrap().remove("alg");
    assert_eq!(jwk(None, &public).unwrap().alg, KeyAlg::Rs256);
    assert_eq!(
        jwk(Some(KeyAlg::Ps256), &public).unwrap().alg,
        KeyAlg::Ps256
    );
}

#[test]
fn jwk_with_private_members_is_refused() {
    let mut public = pem(None, &es256_public_pem()).unwrap().public_jwk.unwrap();
    public["d"] = json!("c2VjcmV0");
    let err = jwk(None, &public).unwrap_err().to_string();
    assert!(err.contains("private"), "{err}");
    assert!(!err.contains("c2VjcmV0"));
    let oct = json!({"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0", "alg": "HS256"});
    assert!(jwk(None, &oct).is_err());
}

#[test]
fn alg_that_contradicts_the_jwk_is_refused() {
    let public = pem(None, &es256_public_pem()).unwrap().public_jwk.unwrap();
    assert!(jwk(Some(KeyAlg::Es384), &public).is_err());
    assert!(jwk(Some(KeyAlg::Rs256), &public).is_err());
    let mut lying = public.clone();
    lying["alg"] = json!("RS256");
    assert!(jwk(None, &lying).is_err());
    lying["alg"] = json!("ES512");
    assert!(jwk(None, &lying).is_err());
    let mut other_kid = public.clone();
    other_kid["kid"] = json!("k2");
    assert!(jwk(None, &other_kid).is_err());
    let mut enc = public;
    enc["use"] = json!("enc");
    assert!(jwk(None, &enc).is_err());
}

#[test]
fn jwk_with_a_point_off_the_curve_is_refused() {
    let mut public = pem(None, &es256_public_pem()).unwrap().public_jwk.unwrap();
    public["y"] = public["x"].clone();
    assert!(jwk(None, &public).is_err());
    public["y"] = json!("AAAA");
    assert!(jwk(None, &public).is_err());
}

#[test]
fn hs256_secret_loads_only_as_hs256_and_long_enough() {
    let secret = b"0123456789abcdef";
    let key = load(
        "k1",
        "t1",
        Some(KeyAlg::Hs256),
        KeyMaterial::Secret(secret),
        KeySource::Config,
    )
    .unwrap();
    assert_eq!(key.alg, KeyAlg::Hs256);
    assert!(key.public_jwk.is_none());
    assert!(!format!("{key:?}").contains("0123456789"));
    let short = load(
        "k1",
        "t1",
        None,
        KeyMaterial::Secret(b"shortsecret"),
        KeySource::Config,
    );
    let err = short.unwrap_err().to_string();
    assert!(!err.contains("shortsecret"), "{err}");
    let wrong = load(
        "k1",
        "t1",
        Some(KeyAlg::Es256),
        KeyMaterial::Secret(secret),
        KeySource::Config,
    );
    assert!(wrong.is_err());
}

#[test]
fn kid_with_control_characters_or_empty_is_refused() {
    let p = es256_public_pem();
    for kid in ["", "k\n1", &"k".repeat(257)] {
        assert!(load(kid, "t1", None, KeyMaterial::Pem(&p), KeySource::Api).is_err());
    }
}

#[test]
fn pem_with_crlf_line_endings_and_surrounding_blank_lines_loads() {
    let crlf = es256_public_pem().replace('\n', "\r\n");
    assert!(pem(None, &format!("\n{crlf}\n")).is_ok());
}

//! Tests for [`super::load`]: which material becomes a key, and which is refused.

use base64::Engine as _;
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

fn secret(alg: Option<KeyAlg>, bytes: &[u8], source: KeySource) -> Result<VerifyingKey, KeyError> {
    load("k1", "t1", alg, KeyMaterial::Secret(bytes), source)
}

fn oct(alg: Option<&str>, bytes: &[u8]) -> Value {
    let mut jwk = json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(bytes)});
    if let Some(alg) = alg {
        jwk["alg"] = json!(alg);
    }
    jwk
}

#[test]
fn every_rsa_algorithm_loads_from_a_pem_and_an_rsa_jwk_takes_the_alg_it_names() {
    for alg in KeyAlg::ALL
        .into_iter()
        .filter(|a| a.family() == KeyFamily::Rsa)
    {
        let key = pem(Some(alg), RSA_PUB_PEM).unwrap();
        assert_eq!(key.alg, alg);
        let mut public = key.public_jwk.unwrap();
        assert_eq!(public["alg"], alg.as_str());
        assert_eq!(jwk(None, &public).unwrap().alg, alg, "the JWK's alg counts");
        public.as_object_mut().unwrap().remove("alg");
        assert_eq!(
            jwk(None, &public).unwrap().alg,
            KeyAlg::Rs256,
            "no alg: RS256"
        );
        assert_eq!(
            jwk(Some(alg), &public).unwrap().alg,
            alg,
            "declared beside it"
        );
    }
}

#[test]
fn a_secret_is_at_least_as_long_as_its_hash_except_hs256_in_the_config_file() {
    for (alg, min) in [
        (KeyAlg::Hs256, 32),
        (KeyAlg::Hs384, 48),
        (KeyAlg::Hs512, 64),
    ] {
        assert_eq!(min_secret_bytes(alg, KeySource::Api), min);
        let long = vec![7u8; min];
        let short = vec![7u8; min - 1];
        assert_eq!(secret(Some(alg), &long, KeySource::Api).unwrap().alg, alg);
        assert!(secret(Some(alg), &short, KeySource::Api).is_err(), "{alg}");
        let config_takes_short = alg == KeyAlg::Hs256;
        assert_eq!(
            secret(Some(alg), &short, KeySource::Config).is_ok(),
            config_takes_short,
            "{alg} in the config file"
        );
        assert!(secret(Some(alg), &vec![7u8; MAX_SECRET_BYTES + 1], KeySource::Api).is_err());
    }
    assert!(secret(None, &[7u8; 15], KeySource::Config).is_err());
    assert_eq!(
        secret(None, &[7u8; 16], KeySource::Config).unwrap().alg,
        KeyAlg::Hs256
    );
}

#[test]
fn an_oct_jwk_names_an_hs_alg_and_carries_nothing_else_private() {
    let bytes = [9u8; 48];
    assert_eq!(
        jwk(None, &oct(Some("HS384"), &bytes)).unwrap().alg,
        KeyAlg::Hs384
    );
    assert_eq!(
        jwk(Some(KeyAlg::Hs384), &oct(None, &bytes)).unwrap().alg,
        KeyAlg::Hs384
    );
    assert!(
        jwk(None, &oct(None, &bytes)).is_err(),
        "an oct JWK must name its alg"
    );
    assert!(
        jwk(None, &oct(Some("ES256"), &bytes)).is_err(),
        "a secret is not ES256"
    );
    assert!(jwk(Some(KeyAlg::Hs512), &oct(Some("HS384"), &bytes)).is_err());
    assert!(
        jwk(None, &oct(Some("HS512"), &bytes)).is_err(),
        "48 bytes is short for HS512"
    );
    let mut with_d = oct(Some("HS384"), &bytes);
    with_d["d"] = json!("AAAA");
    assert!(jwk(None, &with_d).is_err());
    let mut not_b64 = oct(Some("HS384"), &bytes);
    not_b64["k"] = json!("not base64url!");
    assert!(jwk(None, &not_b64).is_err());
    let mut other_kid = oct(Some("HS384"), &bytes);
    other_kid["kid"] = json!("k2");
    assert!(jwk(None, &other_kid).is_err());
}

#[test]
fn a_jwks_never_gives_a_secret() {
    let jwk = oct(Some("HS256"), &[1u8; 64]);
    let err = load("k1", "t1", None, KeyMaterial::Jwk(&jwk), KeySource::Jwks).unwrap_err();
    assert!(err.to_string().contains("JWKS"), "{err}");
    assert!(secret(Some(KeyAlg::Hs256), &[1u8; 64], KeySource::Jwks).is_err());
}

#[test]
fn an_hs_keys_secret_jwk_loads_the_same_key_and_a_view_masks_it() {
    let key = secret(Some(KeyAlg::Hs512), &[3u8; 64], KeySource::Api).unwrap();
    let stored = secret_jwk(&key).unwrap();
    let again = jwk(None, &stored).unwrap();
    assert!(again.same_material(&key));
    let shown = hmac_jwk(&key, crate::keys::MASK).unwrap();
    assert_eq!(shown["k"], crate::keys::MASK);
    assert_eq!(
        (shown["alg"].as_str(), shown["kid"].as_str()),
        (Some("HS512"), Some("k1"))
    );
    let es = pem(None, &es256_public_pem()).unwrap();
    assert!(secret_jwk(&es).is_none() && hmac_jwk(&es, "x").is_none());
}

#[test]
fn a_pem_is_never_an_hs_key() {
    for alg in [KeyAlg::Hs256, KeyAlg::Hs384, KeyAlg::Hs512] {
        assert!(pem(Some(alg), RSA_PUB_PEM).is_err());
    }
}

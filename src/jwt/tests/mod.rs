//! Tests for [`super::check`], one file per group of reasons; shared fixtures here.

mod algorithms;
mod claim_checks;
mod header_and_key;
mod known;
mod structure;

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use super::{JwtContext, Kept, Rejected, Verified, check};
use crate::keys::material::{KeyMaterial, load};
use crate::keys::{KeyAlg, KeySource, TenantKeys, VerifyingKey};
use crate::policy::model::JwtPolicy;
use crate::reason::Reason;

/// A fixed "now" for every test.
pub(super) const NOW: f64 = 1_700_000_000.0;

pub(super) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `b64(header).b64(payload).sig`, with the signature made by `key` over the exact strings given
/// (so tests can send duplicate names, odd spacing or broken JSON).
pub(super) fn raw_token(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), key, alg).unwrap();
    format!("{input}.{sig}")
}

pub(super) fn ctx() -> JwtContext<'static> {
    JwtContext {
        object_id: "abc123",
        viewer_ip: "10.1.2.3",
        now_unix_s: NOW,
        keep: Kept::All,
    }
}

pub(super) fn good_claims() -> Value {
    json!({"iat": NOW, "exp": NOW + 600.0, "sub": "abc123"})
}

/// A tenant with one ES256 key `k1`, and the private key that signs for it.
pub(super) struct Fixture {
    pub enc: EncodingKey,
    pub private_pem: String,
    pub public_pem: String,
    pub keys: TenantKeys,
    pub policy: JwtPolicy,
}

impl Fixture {
    pub fn es256() -> Fixture {
        let pair = crate::keys::keygen::generate_es256("k1").unwrap();
        let key = load_key("k1", KeyAlg::Es256, KeyMaterial::Pem(&pair.public_pem));
        Fixture {
            enc: EncodingKey::from_ec_pem(pair.private_pem.as_bytes()).unwrap(),
            private_pem: pair.private_pem.to_string(),
            public_pem: pair.public_pem,
            keys: tenant(vec![key]),
            policy: JwtPolicy::default(),
        }
    }

    /// A token with header `{"alg":"ES256","kid":"k1","typ":"JWT"}` and these claims.
    pub fn token(&self, claims: &Value) -> String {
        self.token_with_header(&json!({"alg": "ES256", "kid": "k1", "typ": "JWT"}), claims)
    }

    pub fn token_with_header(&self, header: &Value, claims: &Value) -> String {
        raw_token(
            &header.to_string(),
            &claims.to_string(),
            &self.enc,
            Algorithm::ES256,
        )
    }

    pub fn check(&self, token: &str) -> Result<Verified, Rejected> {
        check(token, &self.keys, &self.policy, &ctx())
    }

    pub fn check_ip(&self, token: &str, viewer_ip: &str) -> Result<Verified, Rejected> {
        let ctx = JwtContext { viewer_ip, ..ctx() };
        check(token, &self.keys, &self.policy, &ctx)
    }

    /// The reason `token` is denied with; panics (in the test) when it is allowed.
    pub fn reason(&self, token: &str) -> Reason {
        let rejected = self.check(token).expect_err("token should be denied");
        assert!(
            token.is_empty() || !rejected.detail.contains(token),
            "detail must not contain the token"
        );
        rejected.reason
    }
}

pub(super) fn load_key(kid: &str, alg: KeyAlg, material: KeyMaterial<'_>) -> VerifyingKey {
    load(kid, "t1", Some(alg), material, KeySource::Config).unwrap()
}

pub(super) fn tenant(keys: Vec<VerifyingKey>) -> TenantKeys {
    let mut tenant = TenantKeys::default();
    for key in keys {
        tenant.insert(Arc::new(key));
    }
    tenant
}

#[test]
fn valid_es256_token_is_allowed_with_its_kid_and_claims() {
    let fx = Fixture::es256();
    let verified = fx.check(&fx.token(&good_claims())).unwrap();
    assert_eq!(verified.kid, "k1");
    assert_eq!(verified.claims["sub"], "abc123");
}

#[test]
fn keygen_sign_check_round_trip_allows() {
    let dir = tempfile::tempdir().unwrap();
    let files =
        crate::keys::keygen::write_key_files(dir.path(), "rt-1", KeyAlg::Es256, None).unwrap();
    let private = std::fs::read(&files.private_key).unwrap();
    let opts = crate::keys::sign::SignOptions {
        kid: "rt-1".into(),
        aud: Some("viewer".into()),
        sub: Some("abc123".into()),
        ipa: Some("10.0.0.0/8".into()),
        claims: vec![crate::keys::sign::parse_claim_arg("tier=pro").unwrap()],
        ..Default::default()
    };
    let token = crate::keys::sign::sign(&private, &opts, NOW as i64).unwrap();
    let policy = JwtPolicy {
        allowed_kids: vec!["rt-1".into()],
        required_audience: Some("viewer".into()),
        required_claims: [("tier".to_owned(), json!("pro"))].into(),
        object_claim: Some("sub".into()),
        max_lifetime_s: Some(3600),
        require_permission: false,
        ..JwtPolicy::default()
    };
    let public_pem = std::fs::read_to_string(files.public_key.as_ref().unwrap()).unwrap();
    let from_pem = load_key("rt-1", KeyAlg::Es256, KeyMaterial::Pem(&public_pem));
    let jwk: Value = serde_json::from_str(&std::fs::read_to_string(&files.jwk).unwrap()).unwrap();
    let from_jwk = load("rt-1", "t1", None, KeyMaterial::Jwk(&jwk), KeySource::Api).unwrap();
    for key in [from_pem, from_jwk] {
        let verified = check(&token, &tenant(vec![key]), &policy, &ctx()).unwrap();
        assert_eq!(verified.claims["tier"], "pro");
    }
}

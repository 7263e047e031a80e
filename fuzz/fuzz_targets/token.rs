//! Arbitrary text as a viewer token: `jwt::token::extract` then `jwt::check` against a fixed ES256
//! key set and a strict jwt policy. A token is allowed only if its signature really verifies under
//! the key its kid names (checked here independently with the `p256` crate).
//!
//! Input: `request_url\nline3`, or just `line3` when there is no newline. `fuzz/seeds/token` holds
//! tokens signed by `fuzz/keys/k1.key.pem` (a fuzz-only key) at `NOW`.
#![no_main]

use std::sync::{Arc, LazyLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey as P256Key};
use p256::pkcs8::DecodePublicKey as _;
use serde_json::json;
use usher::jwt::{self, JwtContext};
use usher::keys::material::{KeyMaterial, load};
use usher::keys::{KeyAlg, KeySource, TenantKeys};
use usher::policy::model::JwtPolicy;

const NOW: f64 = 1_700_000_000.0;
const K1_PUB: &str = include_str!("../keys/k1.pub.pem");
const K2_PUB: &str = include_str!("../keys/k2.pub.pem");

struct Fixture {
    keys: TenantKeys,
    policy: JwtPolicy,
    oracle: Vec<(&'static str, P256Key)>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let mut keys = TenantKeys::default();
    let mut oracle = Vec::new();
    for (kid, pem) in [("k1", K1_PUB), ("k2", K2_PUB)] {
        let material = KeyMaterial::Pem(pem);
        let key = load(kid, "t1", Some(KeyAlg::Es256), material, KeySource::Config)
            .expect("fixture key loads");
        keys.insert(Arc::new(key));
        oracle.push((kid, P256Key::from_public_key_pem(pem).expect("fixture key")));
    }
    let policy = JwtPolicy {
        allowed_kids: vec!["k1".into(), "k2".into()],
        required_audience: Some("viewer".into()),
        required_claims: [("tier".to_owned(), json!("pro"))].into(),
        object_claim: Some("sub".into()),
        max_lifetime_s: Some(3600),
    };
    Fixture {
        keys,
        policy,
        oracle,
    }
});

/// Whether `token` carries an ES256 signature by the key named `kid`, judged without usher.
fn really_signed(token: &str, kid: &str) -> bool {
    let Some((input, sig)) = token.rsplit_once('.') else {
        return false;
    };
    let Some((_, key)) = FIXTURE.oracle.iter().find(|(k, _)| *k == kid) else {
        return false;
    };
    let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&sig) else {
        return false;
    };
    key.verify(input.as_bytes(), &sig).is_ok()
}

fn check(token: &str) {
    let fx = &*FIXTURE;
    let ctx = JwtContext {
        object_id: "abc123",
        viewer_ip: "10.1.2.3",
        now_unix_s: NOW,
    };
    if let Ok(verified) = jwt::check(token, &fx.keys, &fx.policy, &ctx) {
        assert!(
            really_signed(token, &verified.kid),
            "allowed a token not signed by key {:?}: {token:?}",
            verified.kid
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (request_url, line3) = text.split_once('\n').unwrap_or(("", text));
    check(text);
    check(line3);
    if let Some(token) = jwt::token::extract(request_url, line3) {
        check(&token);
    }
});

//! Arbitrary bytes as a control-API JSON body.
//!
//! TODO(control): the control API's own body types (the key body `{"tenant","alg",
//! "public_key_pem"|"jwk"}`, the policy body, the invalidate body `{"streams"|"objects"|"tenant"}`
//! and the `/v1/test` body of SPEC §5–6) live in `src/control/`, which is being written. When it
//! lands, deserialize into those types here and run their validation. Until then this fuzzes what
//! they will be built from: `PolicyConfig` → `policy::build::policy_from_config`, and a key body's
//! `jwk` / `public_key_pem` → `keys::material::load`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use usher::config::PolicyConfig;
use usher::keys::material::{KeyMaterial, load};
use usher::keys::{KeyAlg, KeySource};
use usher::policy::build::policy_from_config;
use usher::policy::model::{Policy, WEBHOOK_MAX_TIMEOUT_MS};

fn key_body(body: &Value) {
    let alg = body
        .get("alg")
        .and_then(Value::as_str)
        .and_then(KeyAlg::parse);
    if let Some(jwk) = body.get("jwk") {
        let _ = load("k1", "t1", alg, KeyMaterial::Jwk(jwk), KeySource::Api);
    }
    if let Some(pem) = body.get("public_key_pem").and_then(Value::as_str) {
        let _ = load("k1", "t1", alg, KeyMaterial::Pem(pem), KeySource::Api);
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = serde_json::from_slice::<PolicyConfig>(data)
        && let Ok(policy) = policy_from_config(&p)
    {
        assert_eq!(policy.type_name(), p.kind);
        if let Policy::Webhook(w) = policy {
            assert!((1..=WEBHOOK_MAX_TIMEOUT_MS).contains(&w.timeout_ms));
            assert!(!w.secret.expose().is_empty());
        }
    }
    if let Ok(body) = serde_json::from_slice::<Value>(data) {
        key_body(&body);
    }
});

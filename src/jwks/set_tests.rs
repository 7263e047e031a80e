//! Tests for [`super::parse`], [`TenantKeys::same_as`] and [`super::merged_keys`].

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::keys::keygen::generate_es256;
use crate::keys::material::{KeyMaterial, load};
use crate::keys::{KeySource, VerifyingKey};

fn jwk(kid: &str) -> Value {
    generate_es256(kid).expect("keygen").public_jwk
}

fn set(keys: &[Value]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "keys": keys })).expect("json")
}

fn kids(keys: &TenantKeys) -> Vec<String> {
    let mut kids: Vec<String> = keys.iter().map(|k| k.kid.clone()).collect();
    kids.sort();
    kids
}

fn key(kid: &str, source: KeySource) -> Arc<VerifyingKey> {
    let material = jwk(kid);
    Arc::new(load(kid, "t1", None, KeyMaterial::Jwk(&material), source).expect("loads"))
}

#[test]
fn a_jwk_set_loads_every_signing_key_as_a_jwks_key() {
    let keys = parse("t1", &set(&[jwk("a"), jwk("b")]), 10).expect("a set");
    assert_eq!(kids(&keys), ["a", "b"]);
    assert!(
        keys.iter()
            .all(|k| k.source == KeySource::Jwks && k.tenant == "t1")
    );
}

#[test]
fn keys_without_kid_with_other_use_duplicated_or_unloadable_are_skipped() {
    let mut no_kid = jwk("x");
    no_kid.as_object_mut().expect("object").remove("kid");
    let mut enc = jwk("enc");
    enc["use"] = json!("enc");
    let mut private = jwk("priv");
    private["d"] = json!("AAAA");
    let secret = json!({"kty": "oct", "kid": "hs", "k": "c2VjcmV0c2VjcmV0c2VjcmV0"});
    let mut numeric_kid = jwk("n");
    numeric_kid["kid"] = json!(7);
    let body = set(&[
        no_kid,
        enc,
        private,
        secret,
        numeric_kid,
        json!("not an object"),
        jwk("good"),
        jwk("good"),
    ]);
    let keys = parse("t1", &body, 10).expect("a set");
    assert_eq!(kids(&keys), ["good"]);
}

#[test]
fn at_most_max_keys_are_taken_in_document_order() {
    let all: Vec<Value> = (0..12).map(|i| jwk(&format!("k{i:02}"))).collect();
    let keys = parse("t1", &set(&all), 10).expect("a set");
    assert_eq!(keys.len(), 10);
    assert!(keys.get("k09").is_some());
    assert!(keys.get("k10").is_none() && keys.get("k11").is_none());
}

#[test]
fn a_body_that_is_not_a_jwk_set_is_an_error() {
    assert_eq!(parse("t1", b"<html>", 10).err(), Some(SetError::NotJson));
    for body in [&b"[]"[..], b"{}", b"{\"keys\": {}}", b"null"] {
        assert_eq!(parse("t1", body, 10).err(), Some(SetError::NotASet));
    }
    assert!(
        parse("t1", b"{\"keys\": []}", 10)
            .expect("a set")
            .is_empty()
    );
}

#[test]
fn same_keys_compares_kids_and_public_material() {
    let a = parse("t1", &set(&[jwk("a")]), 10).expect("set");
    let a_again = parse(
        "t1",
        &serde_json::to_vec(&json!({"keys": [a.get("a").expect("a").public_jwk]})).expect("json"),
        10,
    )
    .expect("set");
    assert!(a.same_as(&a_again));
    let a_rekeyed = parse("t1", &set(&[jwk("a")]), 10).expect("set");
    assert!(!a.same_as(&a_rekeyed));
    let more = parse("t1", &set(&[jwk("a"), jwk("b")]), 10).expect("set");
    assert!(!a.same_as(&more));
    assert!(TenantKeys::default().same_as(&TenantKeys::default()));
}

#[test]
fn merge_keeps_config_keys_first_never_revives_revoked_kids_and_caps_at_ten() {
    let mut tenant = Tenant::default();
    for i in 0..8 {
        tenant
            .active
            .insert(key(&format!("cfg{i}"), KeySource::Config));
    }
    tenant.active.insert(key("stale", KeySource::Jwks));
    tenant
        .revoked
        .insert("gone".into(), key("gone", KeySource::Api));
    let mut fetched = TenantKeys::default();
    for kid in ["cfg0", "gone", "j1", "j2", "j3"] {
        fetched.insert(key(kid, KeySource::Jwks));
    }
    let merged = merged_keys(&tenant, Some(&fetched));
    assert_eq!(merged.len(), 10);
    assert!(
        merged.get("stale").is_none(),
        "an earlier JWKS key is replaced"
    );
    assert!(merged.get("gone").is_none(), "a revoked kid stays revoked");
    assert_eq!(merged.get("cfg0").expect("cfg0").source, KeySource::Config);
    assert!(merged.get("j1").is_some() && merged.get("j2").is_some());
    assert!(merged.get("j3").is_none(), "over the limit, in kid order");
    let without = merged_keys(&tenant, None);
    assert_eq!(without.len(), 8);
}

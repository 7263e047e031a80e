//! A signature known to have verified (`check_known`): it stands in for the verify only, and
//! only with the very key that verified it.

use super::*;
use crate::jwt::check_known;

/// The token with its signature's first characters changed: the verify would fail.
fn broken_signature(token: &str) -> String {
    let at = token.rfind('.').unwrap() + 1;
    let first = &token[at..at + 4];
    let other = if first == "AAAA" { "BBBB" } else { "AAAA" };
    format!("{}{other}{}", &token[..at], &token[at + 4..])
}

#[test]
fn a_token_known_verified_with_the_same_key_skips_only_the_verify() {
    let fx = Fixture::es256();
    let token = fx.token(&good_claims());
    let first = check_known(&token, &fx.keys, &fx.policy, &ctx(), None).unwrap();
    let key = fx.keys.get("k1").unwrap();
    assert_eq!(first.signed_by, key.serial());
    // The caller vouches for the token; what the key would say is not asked again.
    let broken = broken_signature(&token);
    let unknown = check_known(&broken, &fx.keys, &fx.policy, &ctx(), None).unwrap_err();
    assert_eq!(unknown.reason, Reason::JwtSigFail);
    let known = check_known(&broken, &fx.keys, &fx.policy, &ctx(), Some(key.serial()));
    assert_eq!(known.unwrap().signed_by, key.serial());
    // Claims are checked on every use: the same token later than its exp is denied.
    let late = JwtContext {
        now_unix_s: NOW + 3600.0,
        ..ctx()
    };
    let denied = check_known(&token, &fx.keys, &fx.policy, &late, Some(key.serial()));
    assert_eq!(denied.unwrap_err().reason, Reason::JwtExpired);
}

#[test]
fn a_replaced_key_with_the_same_kid_verifies_again() {
    let fx = Fixture::es256();
    let token = fx.token(&good_claims());
    let first = check_known(&token, &fx.keys, &fx.policy, &ctx(), None).unwrap();
    // The tenant now holds a different key under the same kid (rotation gone wrong, or revoke
    // and re-add): the signature known for the old one must not count.
    let other = crate::keys::keygen::generate_es256("k1").unwrap();
    let keys = tenant(vec![load_key(
        "k1",
        KeyAlg::Es256,
        KeyMaterial::Pem(&other.public_pem),
    )]);
    let denied = check_known(&token, &keys, &fx.policy, &ctx(), Some(first.signed_by));
    assert_eq!(denied.unwrap_err().reason, Reason::JwtSigFail);
}

#[test]
fn a_revoked_key_denies_a_known_token() {
    let fx = Fixture::es256();
    let token = fx.token(&good_claims());
    let first = check_known(&token, &fx.keys, &fx.policy, &ctx(), None).unwrap();
    let mut keys = fx.keys.clone();
    keys.remove("k1");
    let denied = check_known(&token, &keys, &fx.policy, &ctx(), Some(first.signed_by));
    assert_eq!(denied.unwrap_err().reason, Reason::NoActiveKeys);
}

#[test]
fn a_kid_no_longer_allowed_denies_a_known_token() {
    let mut fx = Fixture::es256();
    let token = fx.token(&good_claims());
    let first = check_known(&token, &fx.keys, &fx.policy, &ctx(), None).unwrap();
    fx.policy.allowed_kids = vec!["k2".into()];
    let denied = check_known(&token, &fx.keys, &fx.policy, &ctx(), Some(first.signed_by));
    assert_eq!(denied.unwrap_err().reason, Reason::JwtUnknownKid);
}

#[test]
fn every_load_of_key_material_gets_its_own_serial_and_a_clone_shares_it() {
    let pair = crate::keys::keygen::generate_es256("k1").unwrap();
    let a = load_key("k1", KeyAlg::Es256, KeyMaterial::Pem(&pair.public_pem));
    let b = load_key("k1", KeyAlg::Es256, KeyMaterial::Pem(&pair.public_pem));
    assert_ne!(a.serial(), b.serial());
    assert_ne!(a.serial(), 0);
    assert_eq!(a.clone().serial(), a.serial());
}

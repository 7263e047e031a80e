//! The verified-signature memo: it stands in for the ECDSA verify only, and only for the same key.

use super::*;
use crate::jwt::{VerifiedSignatures, check_with_memo};

#[test]
fn a_remembered_token_is_allowed_again_and_still_claim_checked() {
    let fx = Fixture::es256();
    let memo = VerifiedSignatures::default();
    let token = fx.token(&good_claims());
    let first = check_with_memo(&token, &fx.keys, &fx.policy, &ctx(), Some(&memo));
    assert!(first.is_ok());
    assert_eq!(memo.len(), 1);
    let key = fx.keys.get("k1").unwrap();
    assert!(memo.verified_with(&VerifiedSignatures::fingerprint(&token), key));
    assert!(check_with_memo(&token, &fx.keys, &fx.policy, &ctx(), Some(&memo)).is_ok());
    // Claims are checked on every use: the same token later than its exp is denied.
    let late = JwtContext {
        now_unix_s: NOW + 3600.0,
        ..ctx()
    };
    let denied = check_with_memo(&token, &fx.keys, &fx.policy, &late, Some(&memo)).unwrap_err();
    assert_eq!(denied.reason, Reason::JwtExpired);
}

#[test]
fn a_replaced_key_with_the_same_kid_does_not_reuse_the_memo() {
    let fx = Fixture::es256();
    let memo = VerifiedSignatures::default();
    let token = fx.token(&good_claims());
    assert!(check_with_memo(&token, &fx.keys, &fx.policy, &ctx(), Some(&memo)).is_ok());
    // The tenant now holds a different key under the same kid (rotation gone wrong, or revoke
    // and re-add): the remembered signature must not count.
    let other = crate::keys::keygen::generate_es256("k1").unwrap();
    let keys = tenant(vec![load_key(
        "k1",
        KeyAlg::Es256,
        KeyMaterial::Pem(&other.public_pem),
    )]);
    let denied = check_with_memo(&token, &keys, &fx.policy, &ctx(), Some(&memo)).unwrap_err();
    assert_eq!(denied.reason, Reason::JwtSigFail);
}

#[test]
fn a_revoked_key_denies_a_remembered_token() {
    let fx = Fixture::es256();
    let memo = VerifiedSignatures::default();
    let token = fx.token(&good_claims());
    assert!(check_with_memo(&token, &fx.keys, &fx.policy, &ctx(), Some(&memo)).is_ok());
    let mut keys = fx.keys.clone();
    keys.remove("k1");
    let denied = check_with_memo(&token, &keys, &fx.policy, &ctx(), Some(&memo)).unwrap_err();
    assert_eq!(denied.reason, Reason::NoActiveKeys);
}

#[test]
fn a_kid_no_longer_allowed_denies_a_remembered_token() {
    let mut fx = Fixture::es256();
    let memo = VerifiedSignatures::default();
    let token = fx.token(&good_claims());
    assert!(check_with_memo(&token, &fx.keys, &fx.policy, &ctx(), Some(&memo)).is_ok());
    fx.policy.allowed_kids = vec!["k2".into()];
    let denied = check_with_memo(&token, &fx.keys, &fx.policy, &ctx(), Some(&memo)).unwrap_err();
    assert_eq!(denied.reason, Reason::JwtUnknownKid);
}

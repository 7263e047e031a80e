//! The claim checks after the signature: times, lifetime, audience, required claims, `ipa`.

use jsonwebtoken::Algorithm;
use serde_json::json;

use super::*;

fn reason_for(fx: &Fixture, claims: Value) -> Reason {
    let rejected = fx.check(&fx.token(&claims)).unwrap_err();
    assert_eq!(rejected.kid.as_deref(), Some("k1"));
    assert_eq!(rejected.unverified_claims.as_ref(), Some(&claims));
    rejected.reason
}

fn allowed(fx: &Fixture, claims: Value) -> bool {
    fx.check(&fx.token(&claims)).is_ok()
}

#[test]
fn token_without_numeric_exp_is_denied_with_jwt_missing_exp() {
    let fx = Fixture::es256();
    for exp in [json!(null), json!("1700000600"), json!([1]), json!(true)] {
        assert_eq!(
            reason_for(&fx, json!({"exp": exp})),
            Reason::JwtMissingExp,
            "{exp}"
        );
    }
    assert_eq!(
        reason_for(&fx, json!({"sub": "abc123"})),
        Reason::JwtMissingExp
    );
}

#[test]
fn expired_token_is_denied_with_jwt_expired() {
    let fx = Fixture::es256();
    assert_eq!(
        reason_for(&fx, json!({"exp": NOW - 61.0})),
        Reason::JwtExpired
    );
    assert!(allowed(&fx, json!({"exp": NOW - 59.0})), "60 s leeway");
}

#[test]
fn fractional_numeric_dates_are_valid() {
    let fx = Fixture::es256();
    assert!(allowed(
        &fx,
        json!({"exp": NOW + 0.5, "nbf": NOW - 0.25, "iat": NOW - 0.75})
    ));
    assert_eq!(
        reason_for(&fx, json!({"exp": NOW - 60.5})),
        Reason::JwtExpired
    );
}

#[test]
fn token_from_the_future_is_denied_with_jwt_not_yet_valid() {
    let fx = Fixture::es256();
    let early = json!({"exp": NOW + 600.0, "nbf": NOW + 61.0});
    assert_eq!(reason_for(&fx, early), Reason::JwtNotYetValid);
    assert!(
        allowed(&fx, json!({"exp": NOW + 600.0, "nbf": NOW + 59.0})),
        "60 s leeway"
    );
}

#[test]
fn nbf_or_iat_of_the_wrong_type_is_denied_with_jwt_claim_mismatch() {
    let fx = Fixture::es256();
    for claims in [
        json!({"exp": NOW + 600.0, "nbf": {}}),
        json!({"exp": NOW + 600.0, "nbf": "0"}),
        json!({"exp": NOW + 600.0, "iat": "yesterday"}),
        json!({"exp": NOW + 600.0, "iat": null}),
    ] {
        assert_eq!(
            reason_for(&fx, claims.clone()),
            Reason::JwtClaimMismatch,
            "{claims}"
        );
    }
}

#[test]
fn lifetime_beyond_max_lifetime_is_denied_with_jwt_lifetime_too_long() {
    let mut fx = Fixture::es256();
    fx.policy.max_lifetime_s = Some(3600);
    let long = json!({"exp": NOW + 3601.0});
    assert_eq!(reason_for(&fx, long), Reason::JwtLifetimeTooLong);
    assert!(allowed(&fx, json!({"exp": NOW + 3600.0})));
}

#[test]
fn audience_is_checked_as_a_string_or_a_list() {
    let mut fx = Fixture::es256();
    fx.policy.required_audience = Some("viewer".into());
    let exp = NOW + 600.0;
    assert!(allowed(&fx, json!({"exp": exp, "aud": "viewer"})));
    assert!(allowed(
        &fx,
        json!({"exp": exp, "aud": ["other", "viewer"]})
    ));
    for aud in [json!("other"), json!([]), json!(["other"]), json!(null)] {
        let claims = json!({"exp": exp, "aud": aud});
        let want = if aud.is_null() {
            Reason::JwtClaimMismatch
        } else {
            Reason::JwtAudMismatch
        };
        assert_eq!(reason_for(&fx, claims), want, "{aud}");
    }
}

#[test]
fn missing_audience_is_denied_with_jwt_aud_mismatch() {
    let mut fx = Fixture::es256();
    fx.policy.required_audience = Some("viewer".into());
    assert_eq!(
        reason_for(&fx, json!({"exp": NOW + 600.0})),
        Reason::JwtAudMismatch
    );
}

#[test]
fn aud_of_the_wrong_type_is_a_claim_mismatch_even_when_no_audience_is_required() {
    let fx = Fixture::es256();
    for aud in [json!(5), json!({"a": 1}), json!(["viewer", 1])] {
        let claims = json!({"exp": NOW + 600.0, "aud": aud});
        assert_eq!(reason_for(&fx, claims), Reason::JwtClaimMismatch, "{aud}");
    }
}

#[test]
fn required_claims_must_match_exactly() {
    let mut fx = Fixture::es256();
    fx.policy.required_claims = [("tier".to_owned(), json!("pro"))].into();
    let exp = NOW + 600.0;
    assert!(allowed(&fx, json!({"exp": exp, "tier": "pro"})));
    for tier in [json!("free"), json!("PRO"), json!(["pro"]), json!(null)] {
        let claims = json!({"exp": exp, "tier": tier});
        assert_eq!(reason_for(&fx, claims), Reason::JwtClaimMismatch, "{tier}");
    }
    assert_eq!(
        reason_for(&fx, json!({"exp": exp})),
        Reason::JwtClaimMismatch
    );
}

#[test]
fn object_claim_must_name_the_object() {
    let mut fx = Fixture::es256();
    fx.policy.object_claim = Some("sub".into());
    let exp = NOW + 600.0;
    assert!(allowed(&fx, json!({"exp": exp, "sub": "abc123"})));
    for sub in [json!("abc1234"), json!(["abc123"]), json!(123)] {
        let claims = json!({"exp": exp, "sub": sub});
        assert_eq!(reason_for(&fx, claims), Reason::JwtClaimMismatch, "{sub}");
    }
    assert_eq!(
        reason_for(&fx, json!({"exp": exp})),
        Reason::JwtClaimMismatch
    );
}

#[test]
fn viewer_inside_the_ipa_cidr_is_allowed() {
    let fx = Fixture::es256();
    let token = fx.token(&json!({"exp": NOW + 600.0, "ipa": "10.0.0.0/8"}));
    assert!(fx.check_ip(&token, "10.1.2.3").is_ok());
    assert!(
        fx.check_ip(&token, "::ffff:10.1.2.3").is_ok(),
        "IPv4-mapped viewer"
    );
}

#[test]
fn viewer_outside_the_ipa_is_denied_with_jwt_ip_mismatch() {
    let fx = Fixture::es256();
    let token = fx.token(&json!({"exp": NOW + 600.0, "ipa": "10.0.0.0/8"}));
    for viewer in ["11.1.2.3", "2001:db8::1", "not-an-ip", ""] {
        let rejected = fx.check_ip(&token, viewer).unwrap_err();
        assert_eq!(rejected.reason, Reason::JwtIpMismatch, "{viewer:?}");
    }
}

#[test]
fn ipv6_viewer_is_matched_against_an_ipv6_ipa() {
    let fx = Fixture::es256();
    let token = fx.token(&json!({"exp": NOW + 600.0, "ipa": "2001:db8::/32"}));
    assert!(fx.check_ip(&token, "2001:db8:1::5").is_ok());
    let rejected = fx.check_ip(&token, "2001:db9::5").unwrap_err();
    assert_eq!(rejected.reason, Reason::JwtIpMismatch);
    let single = fx.token(&json!({"exp": NOW + 600.0, "ipa": "2001:db8::5"}));
    assert!(fx.check_ip(&single, "2001:db8::5").is_ok());
}

#[test]
fn unparsable_or_non_string_ipa_is_denied_with_jwt_ip_mismatch() {
    let fx = Fixture::es256();
    for ipa in [
        json!("10.0.0.0/33"),
        json!("anywhere"),
        json!(["10.0.0.0/8"]),
        json!(10),
    ] {
        let claims = json!({"exp": NOW + 600.0, "ipa": ipa});
        assert_eq!(reason_for(&fx, claims), Reason::JwtIpMismatch, "{ipa}");
    }
}

#[test]
fn duplicate_claim_names_count_the_last_one() {
    let fx = Fixture::es256();
    let header = r#"{"alg":"ES256","kid":"k1"}"#;
    let (old, new) = (NOW - 3600.0, NOW + 600.0);
    let last_valid = format!(r#"{{"exp":{old},"exp":{new}}}"#);
    assert!(
        fx.check(&raw_token(header, &last_valid, &fx.enc, Algorithm::ES256))
            .is_ok()
    );
    let last_expired = format!(r#"{{"exp":{new},"exp":{old}}}"#);
    let token = raw_token(header, &last_expired, &fx.enc, Algorithm::ES256);
    assert_eq!(fx.reason(&token), Reason::JwtExpired);
}

#[test]
fn claim_checks_run_in_spec_order() {
    let mut fx = Fixture::es256();
    fx.policy = JwtPolicy {
        required_audience: Some("viewer".into()),
        required_claims: [("tier".to_owned(), json!("pro"))].into(),
        object_claim: Some("sub".into()),
        max_lifetime_s: Some(60),
        ..JwtPolicy::default()
    };
    let all_wrong = json!({"exp": NOW + 600.0, "nbf": NOW + 120.0, "aud": "x", "ipa": "192.0.2.1"});
    assert_eq!(reason_for(&fx, all_wrong.clone()), Reason::JwtNotYetValid);
    let mut claims = all_wrong;
    claims["nbf"] = json!(NOW);
    assert_eq!(reason_for(&fx, claims.clone()), Reason::JwtLifetimeTooLong);
    claims["exp"] = json!(NOW + 30.0);
    assert_eq!(reason_for(&fx, claims.clone()), Reason::JwtAudMismatch);
    claims["aud"] = json!("viewer");
    assert_eq!(reason_for(&fx, claims.clone()), Reason::JwtClaimMismatch);
    claims["tier"] = json!("pro");
    claims["sub"] = json!("abc123");
    assert_eq!(reason_for(&fx, claims.clone()), Reason::JwtIpMismatch);
    claims["ipa"] = json!("10.1.2.3");
    assert!(allowed(&fx, claims));
}

#[test]
fn clock_that_is_not_a_number_fails_closed() {
    let fx = Fixture::es256();
    let token = fx.token(&good_claims());
    for now in [f64::NAN, f64::INFINITY] {
        let ctx = JwtContext {
            now_unix_s: now,
            ..ctx()
        };
        let rejected = check(&token, &fx.keys, &fx.policy, &ctx).unwrap_err();
        assert_eq!(rejected.reason, Reason::InternalError);
    }
}

#[test]
fn a_live_check_keeps_only_the_claims_it_was_asked_for_and_reports_no_refused_payload() {
    let mut fx = Fixture::es256();
    fx.policy.object_claim = Some("obj".into());
    let claims = json!({"iat": NOW, "exp": NOW + 600.0, "sub": "abc123", "obj": "abc123",
        "uid": "erin", "jti": "j1", "tier": "pro"});
    let live = JwtContext {
        keep: Kept::Also(&["uid"]),
        ..ctx()
    };
    let verified = check(&fx.token(&claims), &fx.keys, &fx.policy, &live).unwrap();
    let kept: Vec<&str> = verified.claims.keys().map(String::as_str).collect();
    // The registered claims the checks read, the policy's object claim, and what was asked for.
    assert_eq!(kept, ["exp", "iat", "obj", "uid"]);
    // A refused token: its payload is neither decoded nor reported outside a dry run.
    let mut forged = fx.token(&claims).into_bytes();
    let i = forged.len() - 10; // inside the signature
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    let rejected = check(&forged, &fx.keys, &fx.policy, &live).unwrap_err();
    assert_eq!(rejected.reason, Reason::JwtSigFail);
    assert!(rejected.unverified_claims.is_none());
    let dry = check(&forged, &fx.keys, &fx.policy, &ctx()).unwrap_err();
    assert_eq!(dry.unverified_claims, Some(claims));
}

//! `PUT /v1/keys/{kid}`, `POST /v1/keys/{kid}/revoke`, `GET /v1/keys`: signing keys set over the
//! API: public material, or an HS* shared secret as an `oct` JWK (the API always asks for a
//! control token). A secret is never shown back: a view masks it.

use hyper::StatusCode;
use serde_json::{Value, json};

use super::{ApiError, Control, Reply, merge, parse};
use crate::enforce::{Change, Invalidated, Outcome};
use crate::keys::{KeySource, MASK, VerifyingKey, material};
use crate::spec::{KeySpec, KeyStatus, valid_name};

/// Parses the body of `PUT /v1/keys/{kid}`: a PEM with its `alg`, a public JWK (`alg`
/// optional), or an `oct` JWK for HS*. Fields that only the config file may carry (`secret`,
/// `secret_file`, `public_key_file`, `status`) are refused by name.
pub fn parse_key(body: &[u8]) -> Result<KeySpec, ApiError> {
    let spec: KeySpec = parse(body)?;
    for (given, field) in [
        (spec.secret.is_some(), "secret"),
        (spec.secret_file.is_some(), "secret_file"),
        (spec.public_key_file.is_some(), "public_key_file"),
        (spec.status.is_some(), "status"),
    ] {
        if given {
            return Err(ApiError::BadBody(format!(
                "unknown field `{field}`: the API takes tenant, alg, public_key_pem, jwk"
            )));
        }
    }
    if spec.public_key_pem.is_some() == spec.jwk.is_some() {
        return Err(ApiError::BadBody(
            "give exactly one of public_key_pem, jwk".into(),
        ));
    }
    check_name("tenant", &spec.tenant)?;
    Ok(spec)
}

/// Refuses a kid or tenant that is not 1..=128 characters of `[A-Za-z0-9._-]`.
pub fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::BadName(format!(
            "{what} must be 1..=128 characters of A-Z a-z 0-9 . _ -"
        )))
    }
}

/// `PUT /v1/keys/{kid}`: adds a key (201) or replaces an active API key of the same tenant (200).
pub async fn put(ctl: &Control, kid: &str, body: &[u8]) -> Reply {
    check_name("kid", kid)?;
    let spec = parse_key(body)?;
    let change = Change::PutKey {
        kid: kid.to_owned(),
        spec,
    };
    let applied = ctl.app.enforcer().apply(change).await?;
    let status = match applied.outcome {
        Outcome::Created => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    let shown = applied
        .key
        .as_deref()
        .map_or(Value::Null, |k| view(k, KeyStatus::Active));
    tracing::info!(kid, "key set");
    Ok((status, merge(shown, applied.invalidated)))
}

/// `POST /v1/keys/{kid}/revoke`: the kid stops verifying at once and stays revoked; the tenant's
/// streams are invalidated. Revoking a revoked key changes nothing.
pub async fn revoke(ctl: &Control, kid: &str) -> Reply {
    check_name("kid", kid)?;
    let change = Change::RevokeKey {
        kid: kid.to_owned(),
    };
    let applied = ctl.app.enforcer().apply(change).await?;
    let shown = applied
        .key
        .as_deref()
        .map_or(Value::Null, |k| view(k, KeyStatus::Revoked));
    tracing::info!(kid, "key revoked");
    let invalidated = match applied.outcome {
        Outcome::Unchanged => Invalidated::nothing(),
        _ => applied.invalidated,
    };
    Ok((StatusCode::OK, merge(shown, invalidated)))
}

/// `GET /v1/keys`: every key usher knows, active and revoked, from the config file and the API.
pub fn list(ctl: &Control) -> (StatusCode, Value) {
    let snapshot = ctl.app.snapshot();
    let mut keys: Vec<(String, Value)> = Vec::new();
    for (_, tenant) in snapshot.tenants() {
        for k in tenant.active.iter() {
            keys.push((k.kid.clone(), view(k, KeyStatus::Active)));
        }
        for k in tenant.revoked.values() {
            keys.push((k.kid.clone(), view(k, KeyStatus::Revoked)));
        }
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    let keys: Vec<Value> = keys.into_iter().map(|(_, v)| v).collect();
    (StatusCode::OK, json!({ "keys": keys }))
}

/// How a key is shown: the public JWK, or for HS* an `oct` JWK whose `k` is masked.
pub fn view(key: &VerifyingKey, status: KeyStatus) -> Value {
    let source = match key.source {
        KeySource::Config => "config",
        KeySource::Api => "api",
        KeySource::Jwks => "jwks",
    };
    json!({
        "kid": key.kid,
        "tenant": key.tenant,
        "alg": key.alg.as_str(),
        "status": status.as_str(),
        "source": source,
        "jwk": key.public_jwk.clone().or_else(|| material::hmac_jwk(key, MASK)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_field_is_refused_naming_it() {
        let err = parse_key(br#"{"tenant":"t1","secret":"abcdefghijklmnopq"}"#).unwrap_err();
        assert!(matches!(err, ApiError::BadBody(_)));
        assert!(err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn body_with_both_pem_and_jwk_is_refused() {
        let err = parse_key(br#"{"tenant":"t1","public_key_pem":"x","jwk":{"kty":"EC"}}"#);
        assert!(matches!(err, Err(ApiError::BadBody(_))));
    }

    #[test]
    fn an_unknown_field_is_refused_naming_it() {
        let err = parse_key(br#"{"tenant":"t1","colour":"red"}"#).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    #[test]
    fn pem_key_loads_and_is_shown_as_a_public_jwk() {
        let pair = crate::keys::keygen::generate_es256("k1").unwrap();
        let spec = KeySpec {
            tenant: "t1".into(),
            alg: Some("ES256".into()),
            public_key_pem: Some(pair.public_pem.clone()),
            ..KeySpec::default()
        };
        let key = spec.load("k1", KeySource::Api, None).unwrap();
        let shown = view(&key, KeyStatus::Active);
        assert_eq!(shown["alg"], "ES256");
        assert_eq!(shown["source"], "api");
        assert_eq!(shown["jwk"]["kty"], "EC");
        assert!(shown["jwk"].get("d").is_none());
    }
}

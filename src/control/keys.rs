//! `PUT /v1/keys/{kid}`, `POST /v1/keys/{kid}/revoke`, `GET /v1/keys`: signing keys set over the
//! API: public material, or an HS* shared secret as an `oct` JWK (the API always asks for a
//! control token). A secret is never shown back: a view masks it.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::writer;
use super::{ApiError, Control, Reply, parse};
use crate::enforce::{Applied, Change, Invalidated, Outcome};
use crate::keys::{KeySource, MASK, VerifyingKey, material};
use crate::spec::{KeySpec, KeyStatus};

/// The body of `PUT /v1/keys/{kid}`: a PEM with its `alg`, a public JWK (`alg` optional), or an
/// `oct` JWK for HS*. What only the config file may carry (`secret`, `secret_file`,
/// `public_key_file`, `status`) is an unknown field here, refused by name.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    pub tenant: String,
    /// The JOSE algorithm; for a PEM ES256 when absent, for a JWK taken from the JWK.
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default)]
    pub public_key_pem: Option<String>,
    #[serde(default)]
    pub jwk: Option<Value>,
}

impl From<KeyBody> for KeySpec {
    fn from(body: KeyBody) -> KeySpec {
        KeySpec {
            tenant: body.tenant,
            alg: body.alg,
            public_key_pem: body.public_key_pem,
            jwk: body.jwk,
            ..KeySpec::default()
        }
    }
}

/// Parses the body of `PUT /v1/keys/{kid}`; everything else about the key is the plan's.
pub fn parse_key(body: &[u8]) -> Result<KeySpec, ApiError> {
    parse::<KeyBody>(body).map(KeySpec::from)
}

/// `PUT /v1/keys/{kid}`: adds a key (201) or replaces an active API key of the same tenant (200).
pub async fn put(ctl: &Control, kid: &str, body: &[u8], expected: Option<u64>) -> Reply {
    let change = Change::PutKey {
        kid: kid.to_owned(),
        spec: parse_key(body)?,
    };
    let stored = writer::write(ctl, change, expected).await?;
    let shown = shown_key(ctl, stored.applied.as_ref(), kid);
    tracing::info!(kid, "key set");
    stored.answer(stored.status(), shown, stored.invalidated())
}

/// `POST /v1/keys/{kid}/revoke`: the kid stops verifying at once and stays revoked; the tenant's
/// streams are invalidated. Revoking a revoked key changes nothing.
pub async fn revoke(ctl: &Control, kid: &str, expected: Option<u64>) -> Reply {
    let before = crate::enforce::layers::find_kid(&ctl.app.snapshot(), kid).map(|(k, _)| k.clone());
    let change = Change::RevokeKey {
        kid: kid.to_owned(),
        record: None,
    };
    let stored = writer::write(ctl, change, expected).await?;
    let key = stored
        .applied
        .as_ref()
        .and_then(|a| a.key.clone())
        .or(before);
    let shown = key.map_or(Value::Null, |k| view(&k, KeyStatus::Revoked));
    tracing::info!(kid, "key revoked");
    let invalidated = match stored.outcome() {
        Some(Outcome::Unchanged) => Invalidated::nothing(),
        _ => stored.invalidated(),
    };
    stored.answer(StatusCode::OK, shown, invalidated)
}

/// The key a write set, as this node holds it now (in a fleet, when this node has not applied
/// the write yet, what it holds under the kid).
fn shown_key(ctl: &Control, applied: Option<&Applied>, kid: &str) -> Value {
    if let Some(key) = applied.and_then(|a| a.key.as_deref()) {
        return view(key, KeyStatus::Active);
    }
    let snapshot = ctl.app.snapshot();
    crate::enforce::layers::find_kid(&snapshot, kid).map_or(Value::Null, |(k, active)| {
        let status = if active {
            KeyStatus::Active
        } else {
            KeyStatus::Revoked
        };
        view(k, status)
    })
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
    fn fields_only_the_config_file_takes_are_refused_naming_them() {
        for field in ["secret_file", "public_key_file", "status"] {
            let body = format!(r#"{{"tenant":"t1","{field}":"x"}}"#);
            let err = parse_key(body.as_bytes()).unwrap_err();
            assert!(matches!(err, ApiError::BadBody(_)), "{field}");
            assert!(err.to_string().contains(field), "{err}");
        }
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

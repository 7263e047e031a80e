//! `PUT /v1/keys/{kid}`, `POST /v1/keys/{kid}/revoke`, `GET /v1/keys`: signing keys set over the
//! API. Public material only; HS256 secrets belong in the config file and are never shown.

use std::sync::Arc;

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, Control, Reply, merge, parse};
use crate::invalidation::{self, Invalidated, Scope};
use crate::keys::material::{self, KeyMaterial};
use crate::keys::{KeyAlg, KeySource, MAX_ACTIVE_KEYS_PER_TENANT, VerifyingKey};
use crate::policy::build::valid_name;
use crate::state::{self, KeyRecord, KeyStatus, Write};

/// The body of `PUT /v1/keys/{kid}`: a PEM with its `alg`, or a public JWK (`alg` optional).
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    pub tenant: String,
    #[serde(default)]
    pub alg: Option<String>,
    #[serde(default)]
    pub public_key_pem: Option<String>,
    #[serde(default)]
    pub jwk: Option<Value>,
}

impl KeyBody {
    /// Checks the body and loads the key it describes.
    pub fn load(&self, kid: &str) -> Result<VerifyingKey, ApiError> {
        check_name("tenant", &self.tenant)?;
        let material = match (&self.public_key_pem, &self.jwk) {
            (Some(pem), None) => KeyMaterial::Pem(pem),
            (None, Some(jwk)) => KeyMaterial::Jwk(jwk),
            _ => {
                return Err(ApiError::BadBody(
                    "give exactly one of public_key_pem, jwk".into(),
                ));
            }
        };
        let alg = match self.alg.as_deref() {
            None => None,
            Some("HS256") => {
                return Err(ApiError::InvalidKey(
                    "HS256 keys (shared secrets) can only be set in the config file".into(),
                ));
            }
            Some(name) => Some(
                KeyAlg::parse(name)
                    .ok_or_else(|| ApiError::InvalidKey(format!("unknown alg {name:?}")))?,
            ),
        };
        material::load(kid, &self.tenant, alg, material, KeySource::Api)
            .map_err(|e| ApiError::InvalidKey(e.to_string()))
    }
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
    let body: KeyBody = parse(body)?;
    let key = body.load(kid)?;
    let record = KeyRecord {
        tenant: body.tenant.clone(),
        alg: key.alg.as_str().to_owned(),
        public_key_pem: body.public_key_pem.clone(),
        jwk: body.jwk.clone(),
        status: KeyStatus::Active,
    };
    let view = view(&key, KeyStatus::Active);
    let app = &ctl.app;
    let writes = app.writes.lock().await;
    let old = app.store.load();
    let replaced = match state::find_kid(&old, kid) {
        Some((k, _)) if k.source != KeySource::Api => {
            return Err(ApiError::ReadOnly(format!(
                "kid {kid:?} is defined in the config file"
            )));
        }
        Some((k, _)) if k.tenant != body.tenant => {
            return Err(ApiError::KidTaken(format!(
                "kid {kid:?} belongs to another tenant"
            )));
        }
        Some((_, false)) => {
            return Err(ApiError::KeyRevoked(format!(
                "kid {kid:?} is revoked and cannot be re-activated; use a new kid"
            )));
        }
        Some((k, true)) => Some(k.alg != key.alg || k.public_jwk != key.public_jwk),
        None if old.keys(&body.tenant).len() >= MAX_ACTIVE_KEYS_PER_TENANT => {
            return Err(ApiError::TooManyKeys(format!(
                "tenant {:?} already has {MAX_ACTIVE_KEYS_PER_TENANT} active keys; revoke one first",
                body.tenant
            )));
        }
        None => None,
    };
    ctl.db.write(Write::PutKey(kid.to_owned(), record)).await?;
    let mut new = (*old).clone();
    new.tenant_mut(&body.tenant).active.insert(Arc::new(key));
    app.store.replace(new);
    drop(writes);
    tracing::info!(kid, tenant = body.tenant.as_str(), "key set");
    let (status, invalidated) = match replaced {
        None => (StatusCode::CREATED, Invalidated::nothing()),
        Some(false) => (StatusCode::OK, Invalidated::nothing()),
        // Tokens verified with the old material may no longer verify: re-ask for the tenant.
        Some(true) => (
            StatusCode::OK,
            invalidation::invalidate(app, &[Scope::Tenant(&body.tenant)], &old).await,
        ),
    };
    Ok((status, merge(view, invalidated)))
}

/// `POST /v1/keys/{kid}/revoke`: the kid stops verifying at once and stays revoked; the tenant's
/// streams are invalidated. Revoking a revoked key changes nothing.
pub async fn revoke(ctl: &Control, kid: &str) -> Reply {
    check_name("kid", kid)?;
    let app = &ctl.app;
    let writes = app.writes.lock().await;
    let old = app.store.load();
    let (key, active) = match state::find_kid(&old, kid) {
        None => return Err(ApiError::NotFound(format!("no key {kid:?}"))),
        Some((k, _)) if k.source != KeySource::Api => {
            return Err(ApiError::ReadOnly(format!(
                "kid {kid:?} is defined in the config file"
            )));
        }
        Some((k, active)) => (k.clone(), active),
    };
    if !active {
        return Ok((
            StatusCode::OK,
            merge(view(&key, KeyStatus::Revoked), Invalidated::nothing()),
        ));
    }
    let record = KeyRecord {
        tenant: key.tenant.clone(),
        alg: key.alg.as_str().to_owned(),
        public_key_pem: None,
        jwk: key.public_jwk.clone(),
        status: KeyStatus::Revoked,
    };
    ctl.db.write(Write::PutKey(kid.to_owned(), record)).await?;
    let mut new = (*old).clone();
    let tenant = new.tenant_mut(&key.tenant);
    tenant.active.remove(kid);
    tenant.revoked.insert(kid.to_owned(), key.clone());
    app.store.replace(new);
    drop(writes);
    tracing::info!(kid, tenant = key.tenant.as_str(), "key revoked");
    let invalidated = invalidation::invalidate(app, &[Scope::Tenant(&key.tenant)], &old).await;
    Ok((
        StatusCode::OK,
        merge(view(&key, KeyStatus::Revoked), invalidated),
    ))
}

/// `GET /v1/keys`: every key usher knows, active and revoked, from the config file and the API.
pub fn list(ctl: &Control) -> (StatusCode, Value) {
    let snapshot = ctl.app.store.load();
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

/// How a key is shown: never an HS256 secret (its `jwk` is null).
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
        "jwk": key.public_jwk,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_with_both_pem_and_jwk_is_refused() {
        let body: KeyBody =
            parse(br#"{"tenant":"t1","public_key_pem":"x","jwk":{"kty":"EC"}}"#).unwrap();
        assert!(matches!(body.load("k1"), Err(ApiError::BadBody(_))));
    }

    #[test]
    fn hs256_over_the_api_is_refused() {
        let body: KeyBody =
            parse(br#"{"tenant":"t1","alg":"HS256","public_key_pem":"x"}"#).unwrap();
        assert!(matches!(body.load("k1"), Err(ApiError::InvalidKey(_))));
    }

    #[test]
    fn a_secret_field_is_an_unknown_field() {
        let err = parse::<KeyBody>(br#"{"tenant":"t1","secret":"abcdefghijklmnopq"}"#).unwrap_err();
        assert!(err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn pem_key_loads_and_is_shown_as_a_public_jwk() {
        let pair = crate::keys::keygen::generate_es256("k1").unwrap();
        let body = KeyBody {
            tenant: "t1".into(),
            alg: Some("ES256".into()),
            public_key_pem: Some(pair.public_pem.clone()),
            jwk: None,
        };
        let key = body.load("k1").unwrap();
        let shown = view(&key, KeyStatus::Active);
        assert_eq!(shown["alg"], "ES256");
        assert_eq!(shown["source"], "api");
        assert_eq!(shown["jwk"]["kty"], "EC");
        assert!(shown["jwk"].get("d").is_none());
    }
}

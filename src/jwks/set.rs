//! A JWK Set document (RFC 7517 §5) turned into a tenant's [`TenantKeys`], and the merge of those
//! keys with the tenant's config/API keys. Pure: no I/O, unit-tested here.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::Value;

use crate::keys::material::{KeyMaterial, load};
use crate::keys::{KeySource, MAX_ACTIVE_KEYS_PER_TENANT, TenantKeys};
use crate::policy::store::Tenant;

/// The document is not a JWK Set. The last good set is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    /// Not JSON at all.
    #[error("body is not JSON")]
    NotJson,
    /// JSON, but not an object with a `keys` array.
    #[error("body is not a JWK Set (an object with a \"keys\" array)")]
    NotASet,
}

/// Loads every usable key of a JWK Set, in document order, at most `max_keys` of them.
///
/// A key without a string `kid`, with a `use` other than `sig`, with a kid seen earlier in the
/// document, or that [`load`] refuses (private members, unsupported type, bad point…) is skipped
/// with a warning that names its position, its kid when printable and the reason, never the key
/// material. A set in which every key is skipped is still a good set: it empties the tenant's
/// JWKS keys (fail closed), whereas a body that is not a JWK Set keeps the last good one.
pub fn parse(tenant: &str, body: &[u8], max_keys: usize) -> Result<TenantKeys, SetError> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| SetError::NotJson)?;
    let Some(entries) = doc.get("keys").and_then(Value::as_array) else {
        return Err(SetError::NotASet);
    };
    let mut keys = TenantKeys::default();
    let mut seen = HashSet::new();
    for (index, jwk) in entries.iter().enumerate() {
        let kid = jwk.get("kid").and_then(Value::as_str);
        let skip = |reason: &str| {
            let kid = kid.filter(|k| printable(k)).unwrap_or("");
            tracing::warn!(tenant, index, kid, reason, "jwks key skipped");
        };
        let Some(kid) = kid else {
            skip("no kid");
            continue;
        };
        match jwk.get("use") {
            None => {}
            Some(Value::String(u)) if u == "sig" => {}
            Some(_) => {
                skip("use is not sig");
                continue;
            }
        }
        if !seen.insert(kid) {
            skip("kid appears twice in the set");
            continue;
        }
        if keys.len() >= max_keys {
            skip("over the per-tenant key limit");
            continue;
        }
        match load(kid, tenant, None, KeyMaterial::Jwk(jwk), KeySource::Jwks) {
            Ok(key) => keys.insert(Arc::new(key)),
            // The error text never contains key bytes (see `KeyError`).
            Err(e) => skip(&e.to_string()),
        }
    }
    Ok(keys)
}

/// A kid safe to put in a log field.
fn printable(kid: &str) -> bool {
    kid.len() <= 128 && !kid.chars().any(char::is_control)
}

/// The active keys a tenant has once its JWKS keys are merged in: its config and API keys
/// first, then the JWKS keys in kid order while the tenant holds fewer than
/// [`MAX_ACTIVE_KEYS_PER_TENANT`]. A JWKS key never replaces a config/API key of the same kid
/// and never brings back a revoked kid. Keys already in `tenant.active` from an earlier merge
/// (source `Jwks`) are replaced, so merging again with a new set is idempotent.
pub fn merged_keys(tenant: &Tenant, fetched: Option<&TenantKeys>) -> TenantKeys {
    let mut merged = TenantKeys::default();
    for key in tenant.active.iter().filter(|k| k.source != KeySource::Jwks) {
        merged.insert(key.clone());
    }
    let Some(fetched) = fetched else {
        return merged;
    };
    let mut extra: Vec<_> = fetched
        .iter()
        .filter(|k| merged.get(&k.kid).is_none() && !tenant.revoked.contains_key(&k.kid))
        .collect();
    extra.sort_by(|a, b| a.kid.cmp(&b.kid));
    for key in extra {
        if merged.len() >= MAX_ACTIVE_KEYS_PER_TENANT {
            tracing::warn!(
                tenant = key.tenant.as_str(),
                kid = key.kid.as_str(),
                "jwks key dropped: tenant key limit"
            );
            continue;
        }
        merged.insert(key.clone());
    }
    merged
}

#[cfg(test)]
#[path = "set_tests.rs"]
mod tests;

//! Turns PEM, JWK or a shared secret into a [`VerifyingKey`]. (Stub: the JWT helper fills this in.)

use super::{KeyAlg, KeySource, VerifyingKey};

/// The public material of a key, as the config file or the control API gives it.
pub enum KeyMaterial<'a> {
    /// A SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`).
    Pem(&'a str),
    /// A public JWK.
    Jwk(&'a serde_json::Value),
    /// An HS256 shared secret (config file only).
    Secret(&'a [u8]),
}

/// Why key material was refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Invalid(String),
}

/// Builds a verifying key. `alg` is the algorithm named next to the material (config `alg`, API
/// `alg`); for a JWK it may be omitted and is then derived from the JWK's `alg`, `kty` and `crv`.
pub fn load(
    kid: &str,
    tenant: &str,
    alg: Option<KeyAlg>,
    material: KeyMaterial<'_>,
    source: KeySource,
) -> Result<VerifyingKey, KeyError> {
    let _ = (kid, tenant, alg, material, source);
    Err(KeyError::Invalid("not implemented".into()))
}

//! How a signing key and a playback policy are written down — in `[[keys]]`/`[[policies]]` of the
//! config file, in the control API's bodies and in the state database — as one shape each, so the
//! three places cannot drift apart. [`KeySpec::load`] is the one loader of a key; policies are
//! built from a [`PolicySpec`] by `policy::build`, publish rules from a [`PublishSpec`] by
//! `policy::publish_rule`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::keys::material::{self, KeyMaterial};
use crate::keys::{KeyAlg, KeySource, VerifyingKey};

mod kind;
mod publish;
pub use kind::{PolicyKind, PublishKind};
pub use publish::{MAX_STREAM_KEY_BYTES, PublishSpec};

/// Whether a key may verify tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    #[default]
    Active,
    Revoked,
}

impl KeyStatus {
    /// `active` or `revoked`.
    pub const fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Revoked => "revoked",
        }
    }
}

/// A signing key without its kid (the kid is the `[[keys]]` entry's `kid`, the API path, the
/// database row's name). Exactly one of `public_key_file`, `public_key_pem`, `jwk`, `secret`,
/// `secret_file`. Files and a raw `secret` belong to the config file only; the API gives an HS*
/// secret as an `oct` JWK. A `KeySpec` may hold a secret: never render one back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    pub tenant: String,
    /// The JOSE algorithm; for a PEM ES256 when absent, for a JWK taken from the JWK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<Value>,
    /// Config file only: a PEM file, relative to the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub public_key_file: Option<PathBuf>,
    /// Config file only: an HS* shared secret, its bytes as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Config file only: a file holding an HS* shared secret (its bytes exactly, a trailing
    /// newline included), relative to the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub secret_file: Option<PathBuf>,
    /// `active` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<KeyStatus>,
}

impl KeySpec {
    /// The status, `active` by default.
    pub fn status(&self) -> KeyStatus {
        self.status.unwrap_or_default()
    }

    /// Builds the verifying key. `base_dir` resolves `public_key_file` and `secret_file`; `None`
    /// (the API, the database) refuses a file.
    pub fn load(
        &self,
        kid: &str,
        source: KeySource,
        base_dir: Option<&Path>,
    ) -> Result<VerifyingKey, String> {
        let alg = match &self.alg {
            Some(name) => Some(KeyAlg::parse(name).ok_or_else(|| format!("unknown alg {name:?}"))?),
            None => None,
        };
        let given = [
            self.public_key_file.is_some(),
            self.public_key_pem.is_some(),
            self.jwk.is_some(),
            self.secret.is_some(),
            self.secret_file.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(
                "give exactly one of public_key_file, public_key_pem, jwk, secret, secret_file"
                    .to_string(),
            );
        }
        let (file_pem, file_secret);
        let material = if let Some(path) = &self.public_key_file {
            file_pem = String::from_utf8(read_key_file(base_dir, "public_key_file", path)?)
                .map_err(|_| "public_key_file is not a PEM document".to_string())?;
            KeyMaterial::Pem(&file_pem)
        } else if let Some(path) = &self.secret_file {
            file_secret = p256::elliptic_curve::zeroize::Zeroizing::new(read_key_file(
                base_dir,
                "secret_file",
                path,
            )?);
            KeyMaterial::Secret(&file_secret)
        } else if let Some(pem) = &self.public_key_pem {
            KeyMaterial::Pem(pem)
        } else if let Some(jwk) = &self.jwk {
            KeyMaterial::Jwk(jwk)
        } else {
            KeyMaterial::Secret(self.secret.as_deref().unwrap_or_default().as_bytes())
        };
        material::load(kid, &self.tenant, alg, material, source).map_err(|e| e.to_string())
    }

    /// What the state database (and the fleet's keys bucket) keeps of an API key: its material
    /// as given — public, or an HS* key's `oct` JWK with the secret —, its algorithm, and its
    /// status.
    pub fn stored(key: &VerifyingKey, given: &KeySpec, status: KeyStatus) -> KeySpec {
        let (pem, jwk) = match (&given.public_key_pem, &given.jwk) {
            (Some(pem), _) => (Some(pem.clone()), None),
            _ => (
                None,
                given
                    .jwk
                    .clone()
                    .or_else(|| key.public_jwk.clone())
                    .or_else(|| material::secret_jwk(key)),
            ),
        };
        KeySpec {
            tenant: key.tenant.clone(),
            alg: Some(key.alg.as_str().to_owned()),
            public_key_pem: pem,
            jwk,
            status: Some(status),
            ..KeySpec::default()
        }
    }
}

/// Longest key file read: a PEM of a 4096-bit RSA key is under 1 KiB.
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;

/// Reads a key file of the config file (`public_key_file`, `secret_file`), bounded; `base_dir` is
/// the config file's directory, `None` where files are not read (the API, the database).
fn read_key_file(base_dir: Option<&Path>, field: &str, path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read as _;
    let base = base_dir.ok_or_else(|| format!("{field} is read from the config file only"))?;
    let path = base.join(path);
    let file =
        std::fs::File::open(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(format!(
            "{} is over {MAX_KEY_FILE_BYTES} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

/// A playback policy without its object (the `[[policies]]` entry's `object`, the API path, the
/// database row's name). The webhook secret is included: never render a `PolicySpec` back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,128}$")]
    pub tenant: String,
    #[serde(rename = "type")]
    pub kind: PolicyKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_kids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_audience: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub required_claims: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_claim: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime_s: Option<u64>,
    /// `jwt` only (SPEC §9): end the session when its token expires (`exp` + 60 s leeway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut_at_exp: Option<bool>,
    /// `jwt` only (SPEC §9): most sessions one viewer holds at once, tenant-wide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_sessions_per_viewer: Option<u32>,
    /// `jwt` only: `deny-new` (default) or `end-oldest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_exceed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// `jwt` only: the token's permission claim must list the stream under `read` (SPEC §10).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_permission: bool,
    /// Who may push the streams this policy covers (SPEC §10); `deny` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Box<PublishSpec>>,
}

/// A tenant id or kid: 1..=128 characters of `[A-Za-z0-9._-]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Longest viewer id (SPEC §9): a longer claim names no viewer, a longer revocation is refused.
pub const MAX_VIEWER_ID: usize = 256;

/// A viewer id as a revocation names it: 1..=[`MAX_VIEWER_ID`] bytes without control characters.
pub fn valid_viewer(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_VIEWER_ID && !id.chars().any(char::is_control)
}

/// An object name (stream name, object id or base name): 1..=256 printable bytes, no whitespace.
pub fn valid_object(name: &str) -> bool {
    !name.is_empty() && name.len() <= 256 && name.bytes().all(|b| b.is_ascii_graphic() || b >= 0x80)
}

/// A named spec as the config file writes it: the name field (`kid`, `object`) beside the
/// spec's own fields in one table. Unknown fields are refused by the spec, naming them.
#[derive(Debug, Clone, PartialEq)]
pub struct Named<T> {
    pub name: String,
    pub spec: T,
}

impl<T: serde::de::DeserializeOwned> Named<T> {
    /// Splits `field` off `table` and parses the rest as the spec.
    pub fn from_table(field: &str, mut table: Map<String, Value>) -> Result<Named<T>, String> {
        let name = match table.remove(field) {
            Some(Value::String(name)) => name,
            Some(_) => return Err(format!("`{field}` must be a string")),
            None => return Err(format!("missing field `{field}`")),
        };
        let spec = serde_json::from_value(Value::Object(table)).map_err(|e| e.to_string())?;
        Ok(Named { name, spec })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_is_read_byte_for_byte_from_the_config_files_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = vec![0xA5u8; 47];
        bytes.push(b'\n'); // the newline is part of the secret: 48 bytes, enough for HS384
        std::fs::write(dir.path().join("h.secret"), &bytes).unwrap();
        let spec = KeySpec {
            tenant: "t1".into(),
            alg: Some("HS384".into()),
            secret_file: Some("h.secret".into()),
            ..KeySpec::default()
        };
        let key = spec.load("h", KeySource::Config, Some(dir.path())).unwrap();
        assert_eq!(key.alg, KeyAlg::Hs384);
        assert_eq!(key.decoding.try_get_as_bytes().unwrap(), &bytes[..]);
        let err = spec.load("h", KeySource::Api, None).unwrap_err();
        assert!(err.contains("config file only"), "{err}");
        std::fs::write(dir.path().join("big"), vec![1u8; 64 * 1024 + 1]).unwrap();
        let big = KeySpec {
            secret_file: Some("big".into()),
            ..spec.clone()
        };
        assert!(big.load("h", KeySource::Config, Some(dir.path())).is_err());
        let both = KeySpec {
            secret: Some("x".repeat(48)),
            ..spec
        };
        assert!(both.load("h", KeySource::Config, Some(dir.path())).is_err());
    }

    #[test]
    fn a_revoked_hs_key_is_stored_with_its_secret_so_it_loads_again() {
        let given = KeySpec {
            tenant: "t1".into(),
            jwk: Some(serde_json::json!({"kty": "oct", "alg": "HS256", "k": "A".repeat(43)})),
            ..KeySpec::default()
        };
        let key = given.load("h", KeySource::Api, None).unwrap();
        let revoked = KeySpec::stored(&key, &KeySpec::default(), KeyStatus::Revoked);
        let again = revoked.load("h", KeySource::Api, None).unwrap();
        assert!(again.same_material(&key));
        assert_eq!(revoked.status(), KeyStatus::Revoked);
    }

    #[test]
    fn one_key_shape_reads_the_config_the_api_and_the_database() {
        let pair = crate::keys::keygen::generate_es256("k1").unwrap();
        let mut table = Map::new();
        table.insert("kid".into(), "k1".into());
        table.insert("tenant".into(), "t1".into());
        table.insert("public_key_pem".into(), pair.public_pem.clone().into());
        let named = Named::<KeySpec>::from_table("kid", table).unwrap();
        let key = named
            .spec
            .load(&named.name, KeySource::Config, None)
            .unwrap();
        let stored = KeySpec::stored(&key, &named.spec, KeyStatus::Revoked);
        let json = serde_json::to_string(&stored).unwrap();
        let back: KeySpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back.status(), KeyStatus::Revoked);
        assert_eq!(back.alg.as_deref(), Some("ES256"));
        let again = back.load("k1", KeySource::Api, None).unwrap();
        assert_eq!(again.public_jwk, key.public_jwk);
    }

    #[test]
    fn a_named_table_refuses_unknown_fields_by_name() {
        let mut table = Map::new();
        table.insert("object".into(), "abc".into());
        table.insert("tenant".into(), "t1".into());
        table.insert("type".into(), "public".into());
        table.insert("colour".into(), "red".into());
        let err = Named::<PolicySpec>::from_table("object", table).unwrap_err();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    fn a_key_file_is_refused_outside_the_config_file() {
        let spec = KeySpec {
            tenant: "t1".into(),
            public_key_file: Some("k.pem".into()),
            ..KeySpec::default()
        };
        let err = spec.load("k1", KeySource::Api, None).unwrap_err();
        assert!(err.contains("config file"), "{err}");
    }
}

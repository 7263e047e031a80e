//! What the control plane sets, kept on disk: an embedded redb database at `[state] dir`/`usher.redb`
//! with one table of API keys and one of API policies, each value a JSON record. Every write is a
//! committed transaction before the API answers; at start (and on reload) the records are laid
//! over the snapshot the config file built, and the config file wins every conflict.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::Path;
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::config::PolicyConfig;
use crate::keys::material::{self, KeyMaterial};
use crate::keys::{KeyAlg, KeySource, MAX_ACTIVE_KEYS_PER_TENANT, VerifyingKey};
use crate::policy::build;
use crate::policy::model::{PolicyEntry, Source};
use crate::policy::store::Snapshot;

/// kid → [`KeyRecord`] as JSON.
const KEYS: TableDefinition<&str, &str> = TableDefinition::new("keys");
/// object → [`PolicyRecord`] as JSON.
const POLICIES: TableDefinition<&str, &str> = TableDefinition::new("policies");

/// The database file inside `[state] dir`.
pub const FILE_NAME: &str = "usher.redb";

/// Why the state database failed. Messages name no key material or secret.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Creating the directory or setting permissions failed.
    #[error("state dir {path}: {source}")]
    Dir {
        /// The directory.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// redb failed.
    #[error("state database: {0}")]
    Db(#[from] redb::Error),
    /// A stored record is not valid JSON of its kind.
    #[error("state database: record {0:?} is corrupt")]
    Corrupt(String),
    /// The blocking task did not finish.
    #[error("state database task failed")]
    Task,
}

/// Whether a key may verify tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
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

/// A key set over the API: public material only (a PEM or a JWK).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub tenant: String,
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<serde_json::Value>,
    pub status: KeyStatus,
}

impl KeyRecord {
    /// Builds the verifying key the record describes.
    pub fn load(&self, kid: &str) -> Result<VerifyingKey, String> {
        let alg = KeyAlg::parse(&self.alg).ok_or_else(|| format!("unknown alg {:?}", self.alg))?;
        let material = match (&self.public_key_pem, &self.jwk) {
            (Some(pem), None) => KeyMaterial::Pem(pem),
            (None, Some(jwk)) => KeyMaterial::Jwk(jwk),
            _ => return Err("give exactly one of public_key_pem, jwk".into()),
        };
        material::load(kid, &self.tenant, Some(alg), material, KeySource::Api)
            .map_err(|e| e.to_string())
    }
}

/// A policy set over the API: the body of `PUT /v1/policies/{object}`, the webhook secret included.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRecord {
    pub tenant: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_kids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_audience: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub required_claims: std::collections::BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_claim: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl PolicyRecord {
    /// The policy entry it describes (shape checks only; the SSRF guard judges URLs when set).
    pub fn entry(&self, object: &str) -> Result<PolicyEntry, Vec<String>> {
        let config = PolicyConfig {
            object: object.to_owned(),
            tenant: self.tenant.clone(),
            kind: self.kind.clone(),
            allowed_kids: self.allowed_kids.clone(),
            required_audience: self.required_audience.clone(),
            required_claims: self.required_claims.clone(),
            object_claim: self.object_claim.clone(),
            max_lifetime_s: self.max_lifetime_s,
            url: self.url.clone(),
            secret: self.secret.clone(),
            timeout_ms: self.timeout_ms,
        };
        Ok(PolicyEntry {
            object: object.to_owned(),
            tenant: self.tenant.clone(),
            policy: build::policy_from_config(&config)?,
            source: Source::Api,
        })
    }
}

/// Every record in the database.
#[derive(Debug, Clone, Default)]
pub struct Records {
    pub keys: Vec<(String, KeyRecord)>,
    pub policies: Vec<(String, PolicyRecord)>,
}

/// One write: a key or policy to store, or a policy to delete.
#[derive(Debug, Clone)]
pub enum Write {
    PutKey(String, KeyRecord),
    PutPolicy(String, PolicyRecord),
    DeletePolicy(String),
}

/// The database handle; cheap to clone.
#[derive(Clone)]
pub struct StateDb {
    db: Arc<redb::Database>,
}

impl StateDb {
    /// Opens (or creates) `dir`/`usher.redb`, the directory with mode 0700 and the file 0600.
    pub async fn open(dir: &Path) -> Result<StateDb, StateError> {
        let dir = dir.to_path_buf();
        blocking(move || StateDb::open_blocking(&dir)).await?
    }

    fn open_blocking(dir: &Path) -> Result<StateDb, StateError> {
        let dir_err = |source| StateError::Dir {
            path: dir.display().to_string(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(dir_err)?;
        let path = dir.join(FILE_NAME);
        let db = redb::Database::create(&path).map_err(redb::Error::from)?;
        restrict(&path).map_err(dir_err)?;
        let txn = db.begin_write().map_err(redb::Error::from)?;
        txn.open_table(KEYS).map_err(redb::Error::from)?;
        txn.open_table(POLICIES).map_err(redb::Error::from)?;
        txn.commit().map_err(redb::Error::from)?;
        Ok(StateDb { db: Arc::new(db) })
    }

    /// Reads every record.
    pub async fn load_all(&self) -> Result<Records, StateError> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_read().map_err(redb::Error::from)?;
            Ok(Records {
                keys: read_table(&txn.open_table(KEYS).map_err(redb::Error::from)?)?,
                policies: read_table(&txn.open_table(POLICIES).map_err(redb::Error::from)?)?,
            })
        })
        .await?
    }

    /// Commits one write; returns once it is durable.
    pub async fn write(&self, write: Write) -> Result<(), StateError> {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_write().map_err(redb::Error::from)?;
            {
                let (table, name, json) = match &write {
                    Write::PutKey(kid, r) => (KEYS, kid, Some(to_json(r))),
                    Write::PutPolicy(object, r) => (POLICIES, object, Some(to_json(r))),
                    Write::DeletePolicy(object) => (POLICIES, object, None),
                };
                let mut table = txn.open_table(table).map_err(redb::Error::from)?;
                match json {
                    Some(json) => table.insert(name.as_str(), json.as_str()),
                    None => table.remove(name.as_str()),
                }
                .map_err(redb::Error::from)?;
            }
            txn.commit().map_err(redb::Error::from)?;
            Ok(())
        })
        .await?
    }
}

fn to_json(value: &impl Serialize) -> String {
    // Records are plain strings, numbers and JSON values: serialising them cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn read_table<T: serde::de::DeserializeOwned>(
    table: &redb::ReadOnlyTable<&str, &str>,
) -> Result<Vec<(String, T)>, StateError> {
    let mut out = Vec::new();
    for row in table.iter().map_err(redb::Error::from)? {
        let (name, json) = row.map_err(redb::Error::from)?;
        let name = name.value().to_owned();
        let record =
            serde_json::from_str(json.value()).map_err(|_| StateError::Corrupt(name.clone()))?;
        out.push((name, record));
    }
    Ok(out)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StateError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| StateError::Task)
}

fn restrict(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Where a kid lives in a snapshot: the key, and whether it is active.
pub fn find_kid<'a>(snapshot: &'a Snapshot, kid: &str) -> Option<(&'a Arc<VerifyingKey>, bool)> {
    snapshot.tenants().find_map(|(_, t)| {
        t.active
            .get(kid)
            .map(|k| (k, true))
            .or_else(|| t.revoked.get(kid).map(|k| (k, false)))
    })
}

/// Lays the database records over a snapshot built from the config file. A record that conflicts
/// with the config (same kid or object), overfills a tenant or no longer loads is skipped; the
/// returned problems say which and why.
pub fn apply(records: Records, snapshot: &mut Snapshot) -> Vec<String> {
    let mut problems = Vec::new();
    for (kid, record) in records.keys {
        let at = format!("state: key {kid:?}");
        if find_kid(snapshot, &kid).is_some() {
            problems.push(format!(
                "{at}: the kid is defined in the config file; skipped"
            ));
            continue;
        }
        let key = match record.load(&kid) {
            Ok(key) => Arc::new(key),
            Err(e) => {
                problems.push(format!("{at}: {e}; skipped"));
                continue;
            }
        };
        let tenant = snapshot.tenant_mut(&record.tenant);
        match record.status {
            KeyStatus::Revoked => {
                tenant.revoked.insert(kid, key);
            }
            KeyStatus::Active if tenant.active.len() >= MAX_ACTIVE_KEYS_PER_TENANT => {
                problems.push(format!(
                    "{at}: tenant {:?} already has {MAX_ACTIVE_KEYS_PER_TENANT} active keys; skipped",
                    record.tenant
                ));
            }
            KeyStatus::Active => tenant.active.insert(key),
        }
    }
    for (object, record) in records.policies {
        let at = format!("state: policy {object:?}");
        if snapshot.policy(&object).is_some() {
            problems.push(format!(
                "{at}: the object has a policy in the config file; skipped"
            ));
            continue;
        }
        match record.entry(&object) {
            Ok(entry) => snapshot.set_policy(entry),
            Err(errs) => problems.push(format!("{at}: {}; skipped", errs.join("; "))),
        }
    }
    problems
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

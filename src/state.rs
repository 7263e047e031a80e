//! What the control plane sets, kept on disk: an embedded redb database at `[state] dir`/`usher.redb`
//! with a table of API keys and one of API policies (each value a JSON [`KeySpec`] or
//! [`PolicySpec`]), and the table of stream names whose invalidation MistServer has not yet
//! acknowledged (SPEC §5: written in the same transaction as the change that invalidates them),
//! which also holds the `stop_sessid` commands owed (SPEC §9, keys of `mist::command`), and the
//! table of viewer revocations (SPEC §9).
//!
//! usher never starts with less than was stored: an existing state file that is empty, unreadable
//! or corrupt stops it with an error naming the file, and a panic inside redb is caught and
//! reported with its cause instead of a bare "task failed".

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;

use crate::sessions::Revocation;
use crate::spec::{KeySpec, PolicySpec};

/// kid → [`KeySpec`] as JSON.
const KEYS: TableDefinition<&str, &str> = TableDefinition::new("keys");
/// object → [`PolicySpec`] as JSON.
const POLICIES: TableDefinition<&str, &str> = TableDefinition::new("policies");
/// stream name → the sequence number of the last change that invalidated it.
const PENDING: TableDefinition<&str, u64> = TableDefinition::new("pending_invalidations");
/// `["tenant","viewer"]` (JSON) → [`Revocation`] as JSON (SPEC §9).
const REVOCATIONS: TableDefinition<&str, &str> = TableDefinition::new("viewer_revocations");
/// Counters: [`PENDING_SEQ`].
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The last sequence number handed to pending names.
const PENDING_SEQ: &str = "pending_seq";
/// Fleet feed (SPEC §11) → the last revision of it applied, written with the change it applied.
const FLEET_REVISIONS: TableDefinition<&str, u64> = TableDefinition::new("fleet_revisions");

/// The database file inside `[state] dir`.
pub const FILE_NAME: &str = "usher.redb";

/// Why the state database failed. Messages name the file, never key material or a secret.
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
    /// The state file exists but holds nothing: starting on it would forget what was stored.
    #[error(
        "state file {path} is empty (0 bytes); refusing to start with less than was stored \
         (restore it from a backup, or remove it to start with no stored keys and policies)"
    )]
    Empty {
        /// The file.
        path: String,
    },
    /// The state file exists but cannot be read.
    #[error("state file {path} cannot be read: {reason}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// redb failed.
    #[error("state file {path}: {source}")]
    Db {
        /// The file.
        path: String,
        /// redb's error.
        source: redb::Error,
    },
    /// A stored record is not valid JSON of its kind.
    #[error("state file {path}: record {name:?} is corrupt")]
    Corrupt {
        /// The file.
        path: String,
        /// The record's name.
        name: String,
    },
    /// redb panicked (it does on some corrupt files); the cause is its panic message.
    #[error("state file {path}: the database panicked ({cause}); the file is probably corrupt")]
    Panicked {
        /// The file.
        path: String,
        /// The panic message.
        cause: String,
    },
    /// The blocking task was cancelled (shutdown).
    #[error("state file {path}: the database task was cancelled")]
    Cancelled {
        /// The file.
        path: String,
    },
}

/// Every key and policy record in the database.
#[derive(Debug, Clone, Default)]
pub struct Records {
    pub keys: Vec<(String, KeySpec)>,
    pub policies: Vec<(String, PolicySpec)>,
}

/// One record write: a key or policy to store, or a policy to delete.
#[derive(Debug, Clone)]
pub enum Write {
    PutKey(String, KeySpec),
    PutPolicy(String, PolicySpec),
    DeletePolicy(String),
    /// Store a viewer revocation (SPEC §9).
    RevokeViewer {
        tenant: String,
        viewer: String,
        revocation: Revocation,
    },
    /// Forget a viewer revocation that no longer matters.
    ForgetViewer {
        tenant: String,
        viewer: String,
    },
    /// The fleet feed named has been applied up to this revision (SPEC §11).
    Revision(String, u64),
}

/// Stream names stored as pending by one commit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// The names now waiting on disk, each with the commit's sequence number.
    pub stored: Vec<(String, u64)>,
    /// Names refused because the table was full (see [`StateDb::commit`]).
    pub refused: usize,
}

/// The database handle; cheap to clone.
#[derive(Clone)]
pub struct StateDb {
    db: Arc<redb::Database>,
    path: Arc<PathBuf>,
}

impl StateDb {
    /// Opens `dir`/`usher.redb`, creating it (directory 0700, file 0600) only when it does not
    /// exist. An existing file that is empty, unreadable or not a database is an error.
    pub async fn open(dir: &Path) -> Result<StateDb, StateError> {
        let dir = dir.to_path_buf();
        let path = dir.join(FILE_NAME);
        run_blocking(&path.clone(), move || StateDb::open_blocking(&dir, path)).await?
    }

    fn open_blocking(dir: &Path, path: PathBuf) -> Result<StateDb, StateError> {
        let dir_err = |source| StateError::Dir {
            path: dir.display().to_string(),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(dir_err)?;
        let shown = path.display().to_string();
        let unreadable = |reason: String| StateError::Unreadable {
            path: shown.clone(),
            reason,
        };
        let db_err = |e: redb::Error| StateError::Db {
            path: shown.clone(),
            source: e,
        };
        let db = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let db = redb::Database::create(&path).map_err(|e| db_err(e.into()))?;
                restrict(&path).map_err(dir_err)?;
                db
            }
            Err(e) => return Err(unreadable(e.to_string())),
            Ok(m) if !m.is_file() => return Err(unreadable("not a regular file".into())),
            Ok(m) if m.len() == 0 => return Err(StateError::Empty { path: shown }),
            Ok(_) => {
                std::fs::File::open(&path).map_err(|e| unreadable(e.to_string()))?;
                redb::Database::open(&path).map_err(|e| db_err(e.into()))?
            }
        };
        let txn = db.begin_write().map_err(|e| db_err(e.into()))?;
        txn.open_table(KEYS).map_err(|e| db_err(e.into()))?;
        txn.open_table(POLICIES).map_err(|e| db_err(e.into()))?;
        txn.open_table(PENDING).map_err(|e| db_err(e.into()))?;
        txn.open_table(META).map_err(|e| db_err(e.into()))?;
        txn.open_table(REVOCATIONS).map_err(|e| db_err(e.into()))?;
        txn.open_table(FLEET_REVISIONS)
            .map_err(|e| db_err(e.into()))?;
        txn.commit().map_err(|e| db_err(e.into()))?;
        Ok(StateDb {
            db: Arc::new(db),
            path: Arc::new(path),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads every key and policy record.
    pub async fn load_all(&self) -> Result<Records, StateError> {
        self.with_db(|db, path| {
            let err = db_error(path);
            let txn = db.begin_read().map_err(|e| err(e.into()))?;
            let keys = txn.open_table(KEYS).map_err(|e| err(e.into()))?;
            let policies = txn.open_table(POLICIES).map_err(|e| err(e.into()))?;
            Ok(Records {
                keys: read_table(&keys, path)?,
                policies: read_table(&policies, path)?,
            })
        })
        .await
    }

    /// Commits `writes` and the stream names they invalidate in one transaction; returns once it
    /// is durable. Every pending name gets this commit's sequence number (a name already waiting
    /// takes the newer one). At most `max_pending` names wait: new names beyond it are refused
    /// (counted in [`Pending::refused`]); the writes are committed all the same.
    pub async fn commit(
        &self,
        writes: Vec<Write>,
        pending: Vec<String>,
        max_pending: usize,
    ) -> Result<Pending, StateError> {
        self.with_db(move |db, path| {
            let err = db_error(path);
            let txn = db.begin_write().map_err(|e| err(e.into()))?;
            let mut out = Pending::default();
            {
                for write in &writes {
                    let (table, name, json) = match write {
                        Write::PutKey(kid, r) => (KEYS, kid.clone(), Some(to_json(r))),
                        Write::PutPolicy(object, r) => (POLICIES, object.clone(), Some(to_json(r))),
                        Write::DeletePolicy(object) => (POLICIES, object.clone(), None),
                        Write::RevokeViewer {
                            tenant,
                            viewer,
                            revocation,
                        } => (
                            REVOCATIONS,
                            to_json(&(tenant, viewer)),
                            Some(to_json(revocation)),
                        ),
                        Write::ForgetViewer { tenant, viewer } => {
                            (REVOCATIONS, to_json(&(tenant, viewer)), None)
                        }
                        Write::Revision(feed, revision) => {
                            let mut table =
                                txn.open_table(FLEET_REVISIONS).map_err(|e| err(e.into()))?;
                            table
                                .insert(feed.as_str(), *revision)
                                .map_err(|e| err(e.into()))?;
                            continue;
                        }
                    };
                    let mut table = txn.open_table(table).map_err(|e| err(e.into()))?;
                    match json {
                        Some(json) => table.insert(name.as_str(), json.as_str()).map(drop),
                        None => table.remove(name.as_str()).map(drop),
                    }
                    .map_err(|e| err(e.into()))?;
                }
                if !pending.is_empty() {
                    let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
                    let seq = meta
                        .get(PENDING_SEQ)
                        .map_err(|e| err(e.into()))?
                        .map_or(0, |v| v.value())
                        + 1;
                    meta.insert(PENDING_SEQ, seq).map_err(|e| err(e.into()))?;
                    let mut table = txn.open_table(PENDING).map_err(|e| err(e.into()))?;
                    let mut len = table.len().map_err(|e| err(e.into()))?;
                    for name in pending {
                        let known = table.get(name.as_str()).map_err(|e| err(e.into()))?;
                        if known.is_none() && len >= max_pending as u64 {
                            out.refused += 1;
                            continue;
                        }
                        let fresh = known.is_none();
                        drop(known);
                        table
                            .insert(name.as_str(), seq)
                            .map_err(|e| err(e.into()))?;
                        len += u64::from(fresh);
                        out.stored.push((name, seq));
                    }
                }
            }
            txn.commit().map_err(|e| err(e.into()))?;
            Ok(out)
        })
        .await
    }

    /// Every stored viewer revocation: (tenant, viewer, revocation).
    pub async fn revocations(&self) -> Result<Vec<(String, String, Revocation)>, StateError> {
        self.with_db(|db, path| {
            let err = db_error(path);
            let txn = db.begin_read().map_err(|e| err(e.into()))?;
            let table = txn.open_table(REVOCATIONS).map_err(|e| err(e.into()))?;
            let rows: Vec<(String, Revocation)> = read_table(&table, path)?;
            let mut out = Vec::with_capacity(rows.len());
            for (key, revocation) in rows {
                let (tenant, viewer) =
                    serde_json::from_str::<(String, String)>(&key).map_err(|_| {
                        StateError::Corrupt {
                            path: path.display().to_string(),
                            name: key.clone(),
                        }
                    })?;
                out.push((tenant, viewer, revocation));
            }
            Ok(out)
        })
        .await
    }

    /// The revision each fleet feed has been applied up to (SPEC §11); empty without a fleet.
    pub async fn revisions(&self) -> Result<Vec<(String, u64)>, StateError> {
        self.with_db(|db, path| {
            let err = db_error(path);
            let txn = db.begin_read().map_err(|e| err(e.into()))?;
            let table = txn.open_table(FLEET_REVISIONS).map_err(|e| err(e.into()))?;
            let mut out = Vec::new();
            for row in table.iter().map_err(|e| err(e.into()))? {
                let (feed, revision) = row.map_err(|e| err(e.into()))?;
                out.push((feed.value().to_owned(), revision.value()));
            }
            Ok(out)
        })
        .await
    }

    /// Every stream name still waiting for MistServer, with its sequence number.
    pub async fn pending(&self) -> Result<Vec<(String, u64)>, StateError> {
        self.with_db(|db, path| {
            let err = db_error(path);
            let txn = db.begin_read().map_err(|e| err(e.into()))?;
            let table = txn.open_table(PENDING).map_err(|e| err(e.into()))?;
            let mut out = Vec::new();
            for row in table.iter().map_err(|e| err(e.into()))? {
                let (name, seq) = row.map_err(|e| err(e.into()))?;
                out.push((name.value().to_owned(), seq.value()));
            }
            Ok(out)
        })
        .await
    }

    /// MistServer acknowledged these names as sent with these sequence numbers: forgets each one
    /// unless a later change stored it again (a higher sequence number), which is still owed.
    pub async fn acknowledge(&self, names: Vec<(String, u64)>) -> Result<(), StateError> {
        if names.is_empty() {
            return Ok(());
        }
        self.with_db(move |db, path| {
            let err = db_error(path);
            let txn = db.begin_write().map_err(|e| err(e.into()))?;
            {
                let mut table = txn.open_table(PENDING).map_err(|e| err(e.into()))?;
                for (name, sent) in &names {
                    let done = table
                        .get(name.as_str())
                        .map_err(|e| err(e.into()))?
                        .is_some_and(|s| s.value() <= *sent);
                    if done {
                        table.remove(name.as_str()).map_err(|e| err(e.into()))?;
                    }
                }
            }
            txn.commit().map_err(|e| err(e.into()))?;
            Ok(())
        })
        .await
    }

    async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::Database, &Path) -> Result<T, StateError> + Send + 'static,
    ) -> Result<T, StateError> {
        let db = self.db.clone();
        let path = self.path.clone();
        run_blocking(&self.path.clone(), move || f(&db, &path)).await?
    }
}

fn db_error(path: &Path) -> impl Fn(redb::Error) -> StateError + '_ {
    move |source| StateError::Db {
        path: path.display().to_string(),
        source,
    }
}

fn to_json(value: &impl Serialize) -> String {
    // Specs are plain strings, numbers and JSON values: serialising them cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn read_table<T: serde::de::DeserializeOwned>(
    table: &redb::ReadOnlyTable<&str, &str>,
    path: &Path,
) -> Result<Vec<(String, T)>, StateError> {
    let err = db_error(path);
    let mut out = Vec::new();
    for row in table.iter().map_err(|e| err(e.into()))? {
        let (name, json) = row.map_err(|e| err(e.into()))?;
        let name = name.value().to_owned();
        let record = serde_json::from_str(json.value()).map_err(|_| StateError::Corrupt {
            path: path.display().to_string(),
            name: name.clone(),
        })?;
        out.push((name, record));
    }
    Ok(out)
}

/// Runs `f` on the blocking pool. A panic inside it (redb panics on some corrupt files) is caught
/// and reported with its message and the file, never as a bare task failure.
async fn run_blocking<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StateError> {
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(f).await {
        Ok(out) => Ok(out),
        Err(e) if e.is_panic() => Err(StateError::Panicked {
            path: shown,
            cause: panic_message(e.into_panic()),
        }),
        Err(_) => Err(StateError::Cancelled { path: shown }),
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "no message".to_owned()
    }
}

fn restrict(path: &Path) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

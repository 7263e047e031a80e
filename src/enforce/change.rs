//! What can change what usher enforces, what applying a change did, and why a change was refused.
//!
//! Every writer — the control API, SIGHUP, JWKS refreshes, and next the viewer revocations of
//! SPEC §9 and the fleet feed of SPEC §11 — describes its change as a [`Change`] and hands it to
//! [`Enforcer::apply`](super::Enforcer::apply). A new writer is a new variant, not a new path:
//! a viewer revocation (SPEC §9) becomes `RevokeViewer { tenant, viewer, before }` with its own
//! record table and scope; the fleet feed (SPEC §11) wraps whatever it receives as
//! `Remote { revision, change: Box<Change> }`, and the applied revision is one more write in the
//! same transaction as the change and its pending invalidations.

use std::sync::Arc;

use serde::Serialize;

use crate::keys::VerifyingKey;
use crate::mist::Ticket;
use crate::policy::model::PolicyEntry;
use crate::policy::store::Snapshot;
use crate::spec::{KeySpec, MAX_VIEWER_ID, PolicySpec, valid_name, valid_object, valid_viewer};
use crate::state::StateError;

/// One change to what usher enforces.
#[derive(Debug, Clone)]
pub enum Change {
    /// Add an API key, or replace the material of an active API key of the same tenant.
    PutKey { kid: String, spec: KeySpec },
    /// Revoke an API key for good. `record`: the revoked key as the fleet's record holds it, so
    /// a node that never saw the key active still holds the kid as revoked (and refuses to
    /// activate it again); `None` from the control API.
    RevokeKey {
        kid: String,
        record: Option<Box<KeySpec>>,
    },
    /// Set the policy attached to an object name. A webhook policy without `secret` keeps the
    /// secret of the webhook policy it replaces.
    PutPolicy { object: String, spec: PolicySpec },
    /// Remove the API policy attached to an object name.
    DeletePolicy { object: String },
    /// Invalidate without changing anything (`POST /v1/invalidate`).
    Invalidate(Target),
    /// The config file was read again (SIGHUP): its snapshot replaces the config layer.
    Reload(Box<Snapshot>),
    /// The JWKS sets of these tenants changed.
    JwksChanged { tenants: Vec<String> },
    /// Refuse the viewer's tokens issued before `before` (default now) and end the viewer's live
    /// sessions (SPEC §9). Stored in the `viewer_revocations` table; drops the tenant's cached
    /// decisions without asking MistServer to re-check them (the viewer's sessions are ended).
    RevokeViewer {
        tenant: String,
        viewer: String,
        before: Option<u64>,
    },
    /// A change received from the fleet feed (SPEC §11): applied as `change`, and the feed
    /// recorded as applied up to `revision` in the same transaction. An inner change this node
    /// refuses (it clashes with its config file, say) is skipped with a warning and its revision
    /// recorded all the same, so the feed never stalls on one record.
    Remote {
        revision: Revision,
        change: Box<Change>,
    },
}

/// A position in one fleet feed (a JetStream key-value bucket): the bucket's name and the
/// revision (stream sequence) of the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub feed: String,
    pub seq: u64,
}

impl Change {
    /// A short fixed name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Change::PutKey { .. } => "put-key",
            Change::RevokeKey { .. } => "revoke-key",
            Change::PutPolicy { .. } => "put-policy",
            Change::DeletePolicy { .. } => "delete-policy",
            Change::Invalidate(_) => "invalidate",
            Change::Reload(_) => "reload",
            Change::JwksChanged { .. } => "jwks",
            Change::RevokeViewer { .. } => "revoke-viewer",
            Change::Remote { .. } => "remote",
        }
    }
}

impl Change {
    /// The names a change carries, each judged by its one rule (`spec::valid_name`,
    /// `valid_object`, `valid_viewer`). Every change passes here before anything else — the
    /// control API's and the fleet's records alike, so a record written straight into a bucket
    /// is held to what the API would have accepted.
    pub fn check_names(&self) -> Result<(), Refused> {
        let name = |what: &str, n: &str| {
            if valid_name(n) {
                Ok(())
            } else {
                Err(Refused::BadName(format!(
                    "{what} must be 1..=128 characters of A-Z a-z 0-9 . _ -"
                )))
            }
        };
        let object = |n: &str| {
            if valid_object(n) {
                Ok(())
            } else {
                Err(Refused::BadName(format!(
                    "{:?} is not a stream or object name: 1..=256 printable bytes without whitespace",
                    n.chars().take(64).collect::<String>()
                )))
            }
        };
        match self {
            Change::PutKey { kid, spec } => name("kid", kid).and(name("tenant", &spec.tenant)),
            Change::RevokeKey { kid, record } => {
                name("kid", kid)?;
                record
                    .as_ref()
                    .map_or(Ok(()), |r| name("tenant", &r.tenant))
            }
            Change::PutPolicy { object: o, spec } => object(o).and(name("tenant", &spec.tenant)),
            Change::DeletePolicy { object: o } => object(o),
            Change::Invalidate(Target::Streams(names) | Target::Objects(names)) => {
                names.iter().try_for_each(|n| object(n))
            }
            Change::Invalidate(Target::Tenant(tenant)) => name("tenant", tenant),
            Change::RevokeViewer { tenant, viewer, .. } => {
                name("tenant", tenant)?;
                if valid_viewer(viewer) {
                    Ok(())
                } else {
                    Err(Refused::BadName(format!(
                        "viewer must be 1..={MAX_VIEWER_ID} bytes without control characters"
                    )))
                }
            }
            Change::Remote { change, .. } => change.check_names(),
            Change::Reload(_) | Change::JwksChanged { .. } => Ok(()),
        }
    }
}

/// What an explicit invalidation names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Exact stream names.
    Streams(Vec<String>),
    /// Object names: every stream that looks one of them up.
    Objects(Vec<String>),
    /// Every stream whose policy belongs to the tenant.
    Tenant(String),
}

/// What applying a change did to the thing it named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A key or policy that did not exist before.
    Created,
    /// A key or policy that existed and now holds the new value.
    Replaced,
    /// Nothing needed changing (revoking a revoked key).
    Unchanged,
    /// The policy is gone.
    Deleted,
    /// A change without a single subject (invalidation, reload, JWKS).
    Applied,
}

/// The result of [`Enforcer::apply`](super::Enforcer::apply).
#[derive(Debug, Clone)]
pub struct Applied {
    pub outcome: Outcome,
    /// The key the change set or revoked.
    pub key: Option<Arc<VerifyingKey>>,
    /// The policy the change set.
    pub policy: Option<Arc<PolicyEntry>>,
    /// What was invalidated.
    pub invalidated: Invalidated,
    /// A viewer revocation: what is now held, and how many live sessions it ended.
    pub revocation: Option<(crate::sessions::Revocation, usize)>,
    /// The MistServer queue's receipt for the invalidation (`None`: nothing was sent); see
    /// [`Enforcer::mist_acknowledged`](super::Enforcer::mist_acknowledged).
    pub ticket: Option<Ticket>,
}

/// What an invalidation did; part of the answer of every invalidating API call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Invalidated {
    /// Cached decisions dropped.
    pub dropped: u64,
    /// The streams invalidated (and sent to MistServer).
    pub streams: Vec<String>,
    /// Whether MistServer acknowledged within `[mist] ack_wait_ms`; vacuously true for no streams.
    pub mist_acknowledged: bool,
}

impl Invalidated {
    /// Nothing to invalidate: no stream, nothing dropped, nothing for MistServer to acknowledge.
    pub fn nothing() -> Invalidated {
        Invalidated {
            mist_acknowledged: true,
            ..Invalidated::default()
        }
    }
}

/// Why a change was refused. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A kid, tenant, object or viewer that is not a valid name ([`Change::check_names`]).
    #[error("{0}")]
    BadName(String),
    /// No such key or policy.
    #[error("{0}")]
    NotFound(String),
    /// Defined in the config file: read-only to other writers.
    #[error("{0}")]
    ReadOnly(String),
    /// The kid belongs to another tenant.
    #[error("{0}")]
    KidTaken(String),
    /// A revoked kid stays revoked.
    #[error("{0}")]
    KeyRevoked(String),
    /// The tenant already has its maximum of active keys.
    #[error("{0}")]
    TooManyKeys(String),
    /// The key material does not load.
    #[error("{0}")]
    InvalidKey(String),
    /// The policy does not hold together (type, fields, secret, timeout).
    #[error("{0}")]
    InvalidPolicy(String),
    /// The SSRF guard refused a webhook URL; `code` is the guard's stable code.
    #[error("{message}")]
    UrlRefused {
        /// `invalid-url`, `url-not-allowed` or `dns-failure`.
        code: &'static str,
        /// The guard's message.
        message: String,
    },
    /// Too many viewer revocations are held.
    #[error("{0}")]
    TooManyRevocations(String),
    /// The state database failed.
    #[error("{0}")]
    Storage(#[from] StateError),
    /// The clock reads before 1970: nothing that needs a "now" is written.
    #[error("{0}; nothing was changed")]
    Clock(#[from] crate::clock::BeforeEpoch),
}

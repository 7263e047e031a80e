//! The edits the control plane makes — put or revoke a key, put or delete a policy — as pure
//! functions of the current snapshot: each checks the change against it and says what the new
//! snapshot is, what to write to the state database and what to invalidate.

use std::sync::Arc;

use url::Url;

use super::affected::Scope;
use super::change::{Outcome, Refused, Target};
use super::layers::{changes, find_kid};
use crate::keys::{KeySource, MAX_ACTIVE_KEYS_PER_TENANT, VerifyingKey};
use crate::policy::model::{Policy, PolicyEntry, Secret, Source};
use crate::policy::store::Snapshot;
use crate::policy::{build, publish_rule};
use crate::spec::{KeySpec, KeyStatus, PolicyKind, PolicySpec};
use crate::state::Write;

/// What one edit does.
#[derive(Debug)]
pub struct Edit {
    /// The snapshot after the edit; `None` when nothing changes.
    pub new: Option<Snapshot>,
    /// What to commit, in one transaction with the pending invalidations.
    pub writes: Vec<Write>,
    /// What to invalidate.
    pub scopes: Vec<Scope>,
    pub outcome: Outcome,
    pub key: Option<Arc<VerifyingKey>>,
    pub policy: Option<Arc<PolicyEntry>>,
}

impl Edit {
    fn new(outcome: Outcome) -> Edit {
        Edit {
            new: None,
            writes: Vec::new(),
            scopes: Vec::new(),
            outcome,
            key: None,
            policy: None,
        }
    }
}

impl Edit {
    /// An explicit invalidation: nothing changes but what is cached.
    pub fn invalidate(target: Target) -> Edit {
        let mut edit = Edit::new(Outcome::Applied);
        edit.scopes = match target {
            Target::Streams(streams) => streams.into_iter().map(Scope::Stream).collect(),
            Target::Objects(objects) => objects.into_iter().map(Scope::Object).collect(),
            Target::Tenant(tenant) => vec![Scope::Tenant(tenant)],
        };
        edit
    }

    /// A whole new snapshot (reload, JWKS): invalidates whatever differs from `old`.
    pub fn replace(old: &Snapshot, new: Snapshot) -> Edit {
        let mut edit = Edit::new(Outcome::Applied);
        edit.scopes = changes(old, &new);
        edit.new = Some(new);
        edit
    }
}

fn read_only_kid(kid: &str) -> Refused {
    Refused::ReadOnly(format!("kid {kid:?} is defined in the config file"))
}

/// Adds a key (created) or replaces the material of an active API key of the same tenant
/// (replaced; the tenant's streams are invalidated when the material differs).
pub fn put_key(
    old: &Snapshot,
    kid: &str,
    spec: &KeySpec,
    key: VerifyingKey,
) -> Result<Edit, Refused> {
    let tenant = key.tenant.clone();
    let (outcome, scopes) = match find_kid(old, kid) {
        Some((k, _)) if k.source != KeySource::Api => return Err(read_only_kid(kid)),
        Some((k, _)) if k.tenant != tenant => {
            return Err(Refused::KidTaken(format!(
                "kid {kid:?} belongs to another tenant"
            )));
        }
        Some((_, false)) => {
            return Err(Refused::KeyRevoked(format!(
                "kid {kid:?} is revoked and cannot be re-activated; use a new kid"
            )));
        }
        Some((k, true)) if k.same_material(&key) => (Outcome::Replaced, Vec::new()),
        // Tokens verified with the old material may no longer verify: re-ask for the tenant.
        Some((_, true)) => (Outcome::Replaced, vec![Scope::Tenant(tenant.clone())]),
        None if old.keys(&tenant).len() >= MAX_ACTIVE_KEYS_PER_TENANT => {
            return Err(Refused::TooManyKeys(format!(
                "tenant {tenant:?} already has {MAX_ACTIVE_KEYS_PER_TENANT} active keys; revoke one first"
            )));
        }
        None => (Outcome::Created, Vec::new()),
    };
    let mut edit = Edit::new(outcome);
    edit.scopes = scopes;
    Ok(finish_put_key(edit, old, kid, spec, key))
}

fn finish_put_key(
    mut edit: Edit,
    old: &Snapshot,
    kid: &str,
    spec: &KeySpec,
    key: VerifyingKey,
) -> Edit {
    let key = Arc::new(key);
    edit.writes = vec![Write::PutKey(
        kid.to_owned(),
        KeySpec::stored(&key, spec, KeyStatus::Active),
    )];
    let mut new = old.clone();
    new.tenant_mut(&key.tenant).active.insert(key.clone());
    edit.new = Some(new);
    edit.key = Some(key);
    edit
}

/// Revokes an API key: it stops verifying at once and stays revoked; the tenant's streams are
/// invalidated. Revoking a revoked key changes nothing. A kid this node never held, revoked by a
/// fleet `record` that carries its material, is held as revoked from now on (nothing to
/// invalidate: it verified nothing here).
pub fn revoke_key(old: &Snapshot, kid: &str, record: Option<&KeySpec>) -> Result<Edit, Refused> {
    let (key, active) = match (find_kid(old, kid), record) {
        (None, Some(record)) => return held_revoked(old, kid, record),
        (None, None) => return Err(Refused::NotFound(format!("no key {kid:?}"))),
        (Some((k, _)), _) if k.source != KeySource::Api => return Err(read_only_kid(kid)),
        (Some((k, active)), _) => (k.clone(), active),
    };
    if !active {
        let mut edit = Edit::new(Outcome::Unchanged);
        edit.key = Some(key);
        return Ok(edit);
    }
    let mut edit = Edit::new(Outcome::Replaced);
    edit.writes = vec![Write::PutKey(
        kid.to_owned(),
        KeySpec::stored(&key, &KeySpec::default(), KeyStatus::Revoked),
    )];
    let mut new = old.clone();
    let tenant = new.tenant_mut(&key.tenant);
    tenant.active.remove(kid);
    tenant.revoked.insert(kid.to_owned(), key.clone());
    edit.new = Some(new);
    edit.scopes = vec![Scope::Tenant(key.tenant.clone())];
    edit.key = Some(key);
    Ok(edit)
}

/// A revoked key this node learns of from the fleet's record alone: loaded from the record's
/// material (refused like any key that does not load) and held as revoked.
fn held_revoked(old: &Snapshot, kid: &str, record: &KeySpec) -> Result<Edit, Refused> {
    let key = Arc::new(
        record
            .load(kid, KeySource::Api, None)
            .map_err(Refused::InvalidKey)?,
    );
    let mut edit = Edit::new(Outcome::Created);
    edit.writes = vec![Write::PutKey(
        kid.to_owned(),
        KeySpec::stored(&key, record, KeyStatus::Revoked),
    )];
    let mut new = old.clone();
    new.tenant_mut(&key.tenant)
        .revoked
        .insert(kid.to_owned(), key.clone());
    edit.new = Some(new);
    edit.key = Some(key);
    Ok(edit)
}

fn read_only_policy(old: &Snapshot, object: &str) -> Result<(), Refused> {
    match old.policy(object) {
        Some(e) if e.source == Source::Config => Err(Refused::ReadOnly(format!(
            "the policy of {object:?} is defined in the config file"
        ))),
        _ => Ok(()),
    }
}

/// What an update that omits a secret keeps (SPEC §2, §10): the webhook secret, and the publish
/// rule's webhook secret or stream-key hash, of the policy of `object` it replaces. The one rule,
/// for this node's edit and for the record the fleet writes (so every node keeps the same).
pub fn keep_secrets(old: &Snapshot, object: &str, spec: &mut PolicySpec) {
    let Some(old) = old.policy(object) else {
        return;
    };
    if spec.kind == PolicyKind::Webhook && spec.secret.is_none() {
        if let Policy::Webhook(hook) = &old.policy {
            spec.secret = Some(hook.secret.expose().to_owned());
        }
    }
    if let Some(publish) = spec.publish.as_mut() {
        publish_rule::keep_secrets(publish, &old.publish);
    }
}

/// Sets the policy of `object`. `checked_url` is the webhook URL as the SSRF guard judged it.
pub fn put_policy(
    old: &Snapshot,
    object: &str,
    mut spec: PolicySpec,
    checked_url: Option<Url>,
) -> Result<Edit, Refused> {
    read_only_policy(old, object)?;
    keep_secrets(old, object, &mut spec);
    spec.publish = spec.publish.take().map(|p| Box::new(p.stored()));
    let mut entry = build::entry(object, &spec, Source::Api)
        .map_err(|errs| Refused::InvalidPolicy(errs.join("; ")))?;
    if let (Policy::Webhook(hook), Some(url)) = (&mut entry.policy, checked_url) {
        spec.url = Some(url.to_string());
        hook.url = url;
        hook.secret = Secret::new(spec.secret.clone().unwrap_or_default());
    }
    let outcome = if old.policy(object).is_some() {
        Outcome::Replaced
    } else {
        Outcome::Created
    };
    let mut edit = Edit::new(outcome);
    edit.writes = vec![Write::PutPolicy(object.to_owned(), spec)];
    let mut new = old.clone();
    new.set_policy(entry);
    edit.policy = new.policy(object).cloned();
    edit.new = Some(new);
    edit.scopes = vec![Scope::Object(object.to_owned())];
    Ok(edit)
}

/// Removes the API policy of `object`; the name falls back to the next one in the lookup order.
pub fn delete_policy(old: &Snapshot, object: &str) -> Result<Edit, Refused> {
    if old.policy(object).is_none() {
        return Err(Refused::NotFound(format!("no policy for {object:?}")));
    }
    read_only_policy(old, object)?;
    let mut edit = Edit::new(Outcome::Deleted);
    edit.writes = vec![Write::DeletePolicy(object.to_owned())];
    let mut new = old.clone();
    new.remove_policy(object);
    edit.new = Some(new);
    edit.scopes = vec![Scope::Object(object.to_owned())];
    Ok(edit)
}

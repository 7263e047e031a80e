//! Keeps the running policy snapshot current. It has three layers — the config file, what the
//! control plane stored, and keys fetched from tenants' JWKS URLs — composed here at start, again
//! on SIGHUP, and whenever a JWKS set changes. Whatever a change touches is invalidated like a
//! control-plane change (SPEC §5); an invalid config on SIGHUP is logged and the old one kept.

use std::collections::BTreeSet;
use std::path::Path;

use crate::app::App;
use crate::invalidation::{self, Scope};
use crate::jwks::{self, JwksKeys};
use crate::keys::TenantKeys;
use crate::policy::store::Snapshot;
use crate::setup;
use crate::state::{self, Records, StateDb};
use crate::systemd;

/// The config snapshot with the stored records and the fetched JWKS keys laid over it.
pub fn compose(
    mut snapshot: Snapshot,
    records: Records,
    jwks: Option<&JwksKeys>,
) -> (Snapshot, Vec<String>) {
    let problems = state::apply(records, &mut snapshot);
    if let Some(jwks) = jwks {
        let tenants: Vec<String> = jwks.tenants().map(|(t, _)| t.to_owned()).collect();
        merge_jwks(&mut snapshot, jwks, &tenants);
    }
    (snapshot, problems)
}

/// Replaces the JWKS-sourced keys of `tenants` with what `jwks` holds now.
pub fn merge_jwks(snapshot: &mut Snapshot, jwks: &JwksKeys, tenants: &[String]) {
    for t in tenants {
        let fetched = jwks.keys(t);
        let tenant = snapshot.tenant_mut(t);
        tenant.active = jwks::merged_keys(tenant, fetched.as_deref());
    }
}

/// What differs between two snapshots, as invalidation scopes: every object whose policy changed
/// (added, removed, different), every tenant whose active keys changed, and the default policy
/// (tenant `""`) when it changed.
pub fn changes(old: &Snapshot, new: &Snapshot) -> Vec<ScopeOwned> {
    let mut out = Vec::new();
    let objects: BTreeSet<&str> = old
        .policies()
        .chain(new.policies())
        .map(|e| e.object.as_str())
        .collect();
    for object in objects {
        if old.policy(object) != new.policy(object) {
            out.push(ScopeOwned::Object(object.to_owned()));
        }
    }
    let tenants: BTreeSet<&str> = old
        .tenants()
        .chain(new.tenants())
        .map(|(t, _)| t.as_str())
        .collect();
    for tenant in tenants {
        if !same_keys(old.keys(tenant), new.keys(tenant)) {
            out.push(ScopeOwned::Tenant(tenant.to_owned()));
        }
    }
    if old.default_policy() != new.default_policy() {
        out.push(ScopeOwned::Tenant(String::new()));
    }
    out
}

/// An owned [`Scope`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeOwned {
    Object(String),
    Tenant(String),
}

impl ScopeOwned {
    fn as_scope(&self) -> Scope<'_> {
        match self {
            ScopeOwned::Object(o) => Scope::Object(o),
            ScopeOwned::Tenant(t) => Scope::Tenant(t),
        }
    }
}

/// Same kids with the same algorithms and the same key bytes.
fn same_keys(a: &TenantKeys, b: &TenantKeys) -> bool {
    let fingerprint = |keys: &TenantKeys| {
        let mut v: Vec<(String, &'static str, Vec<u8>)> = keys
            .iter()
            .map(|k| {
                let bytes = k
                    .decoding
                    .try_get_as_bytes()
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
                (k.kid.clone(), k.alg.as_str(), bytes)
            })
            .collect();
        v.sort();
        v
    };
    a.len() == b.len() && fingerprint(a) == fingerprint(b)
}

/// Swaps in `new` (under the write lock the caller holds) and invalidates what changed.
async fn swap_and_invalidate(app: &App, new: Snapshot) -> u64 {
    let old = app.store.load();
    let scopes = changes(&old, &new);
    app.store.replace(new);
    if scopes.is_empty() {
        return 0;
    }
    let scopes: Vec<Scope<'_>> = scopes.iter().map(ScopeOwned::as_scope).collect();
    invalidation::invalidate(app, &scopes, &old).await.dropped
}

/// SIGHUP: re-reads the config file. A valid one is swapped in atomically (with the stored records
/// and JWKS keys laid over it again) and what changed is invalidated; an invalid one is logged with
/// every problem and the old one stays.
pub async fn reload(app: &App, path: &Path, db: &StateDb) {
    systemd::reloading();
    match setup::load(path).await {
        Err(problems) => {
            for p in &problems.0 {
                tracing::error!(problem = p.as_str(), "config reload refused");
            }
            tracing::error!(problems = problems.0.len(), "keeping the running config");
        }
        Ok(loaded) => {
            for warning in &loaded.warnings {
                tracing::warn!(warning = warning.as_str(), "config");
            }
            warn_restart_only(app, &loaded.config);
            let _writes = app.writes.lock().await;
            match db.load_all().await {
                Ok(records) => {
                    let (snapshot, problems) =
                        compose(loaded.snapshot, records, app.evaluator.jwks());
                    for p in &problems {
                        tracing::warn!(problem = p.as_str(), "state");
                    }
                    let dropped = swap_and_invalidate(app, snapshot).await;
                    tracing::info!(dropped, "config reloaded");
                }
                Err(e) => tracing::error!(error = %e, "config reload refused: state unreadable"),
            }
        }
    }
    systemd::reloaded();
}

/// Settings a reload does not change (listeners, state, cache sizing, outbound, MistServer).
fn warn_restart_only(app: &App, new: &crate::config::Config) {
    let old = &app.config;
    let differs = [
        (
            "trigger",
            format!("{:?}", old.trigger) != format!("{:?}", new.trigger),
        ),
        (
            "control",
            format!("{:?}", old.control) != format!("{:?}", new.control),
        ),
        (
            "state",
            format!("{:?}", old.state) != format!("{:?}", new.state),
        ),
        (
            "cache",
            format!("{:?}", old.cache) != format!("{:?}", new.cache),
        ),
        (
            "outbound",
            format!("{:?}", old.outbound) != format!("{:?}", new.outbound),
        ),
        (
            "webhook",
            format!("{:?}", old.webhook) != format!("{:?}", new.webhook),
        ),
        (
            "mist",
            old.mist.api_url != new.mist.api_url || old.mist.username != new.mist.username,
        ),
        ("log", format!("{:?}", old.log) != format!("{:?}", new.log)),
    ];
    for (section, changed) in differs {
        if changed {
            tracing::warn!(section, "changed, takes effect on restart");
        }
    }
    let old_jwks: Vec<_> = old.tenants.iter().map(|t| (&t.id, &t.jwks_url)).collect();
    let new_jwks: Vec<_> = new.tenants.iter().map(|t| (&t.id, &t.jwks_url)).collect();
    if old_jwks != new_jwks {
        tracing::warn!(
            section = "tenants.jwks_url",
            "changed, takes effect on restart"
        );
    }
}

/// Merges every JWKS change into the running snapshot and invalidates the tenants it touched.
pub async fn follow_jwks(app: App, jwks: JwksKeys) {
    let mut changed = jwks.subscribe();
    let mut seen = 0;
    while changed.changed().await.is_ok() {
        let (revision, tenants) = jwks.changes_since(seen);
        seen = revision;
        if tenants.is_empty() {
            continue;
        }
        let _writes = app.writes.lock().await;
        let mut snapshot = (*app.store.load()).clone();
        merge_jwks(&mut snapshot, &jwks, &tenants);
        let dropped = swap_and_invalidate(&app, snapshot).await;
        tracing::info!(tenants = tenants.len(), dropped, "jwks keys changed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{Policy, PolicyEntry, Source};

    fn with(entries: &[(&str, Policy)]) -> Snapshot {
        let mut s = Snapshot::new(Policy::Deny);
        for (object, policy) in entries {
            s.set_policy(PolicyEntry {
                object: (*object).into(),
                tenant: "t1".into(),
                policy: policy.clone(),
                source: Source::Config,
            });
        }
        s
    }

    #[test]
    fn only_changed_objects_are_reported() {
        let old = with(&[
            ("a", Policy::Public),
            ("b", Policy::Public),
            ("c", Policy::Deny),
        ]);
        let new = with(&[
            ("a", Policy::Public),
            ("b", Policy::Deny),
            ("d", Policy::Public),
        ]);
        let got = changes(&old, &new);
        assert_eq!(
            got,
            [
                ScopeOwned::Object("b".into()),
                ScopeOwned::Object("c".into()),
                ScopeOwned::Object("d".into())
            ]
        );
    }

    #[test]
    fn a_changed_default_policy_touches_the_default_tenant() {
        let old = Snapshot::new(Policy::Deny);
        let new = Snapshot::new(Policy::Public);
        assert_eq!(changes(&old, &new), [ScopeOwned::Tenant(String::new())]);
        assert!(changes(&old, &old).is_empty());
    }
}

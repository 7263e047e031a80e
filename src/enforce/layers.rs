//! The three layers of what usher enforces — the config file, what the control plane stored, and
//! keys fetched from tenants' JWKS URLs — composed into one snapshot, and the difference between
//! two snapshots as invalidation scopes. Pure: no I/O, unit-tested here.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::affected::Scope;
use crate::jwks::{self, JwksKeys};
use crate::keys::{KeySource, MAX_ACTIVE_KEYS_PER_TENANT, VerifyingKey};
use crate::policy::build;
use crate::policy::model::Source;
use crate::policy::store::Snapshot;
use crate::spec::KeyStatus;
use crate::state::Records;

/// The config snapshot with the stored records and the fetched JWKS keys laid over it; the
/// problems say which stored records were skipped and why.
pub fn compose(
    mut snapshot: Snapshot,
    records: Records,
    jwks: Option<&JwksKeys>,
) -> (Snapshot, Vec<String>) {
    let problems = lay_records(records, &mut snapshot);
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
pub fn lay_records(records: Records, snapshot: &mut Snapshot) -> Vec<String> {
    let mut problems = Vec::new();
    for (kid, spec) in records.keys {
        let at = format!("state: key {kid:?}");
        if find_kid(snapshot, &kid).is_some() {
            problems.push(format!(
                "{at}: the kid is defined in the config file; skipped"
            ));
            continue;
        }
        let key = match spec.load(&kid, KeySource::Api, None) {
            Ok(key) => Arc::new(key),
            Err(e) => {
                problems.push(format!("{at}: {e}; skipped"));
                continue;
            }
        };
        let tenant = snapshot.tenant_mut(&spec.tenant);
        match spec.status() {
            KeyStatus::Revoked => {
                tenant.revoked.insert(kid, key);
            }
            KeyStatus::Active if tenant.active.len() >= MAX_ACTIVE_KEYS_PER_TENANT => {
                problems.push(format!(
                    "{at}: tenant {:?} already has {MAX_ACTIVE_KEYS_PER_TENANT} active keys; skipped",
                    spec.tenant
                ));
            }
            KeyStatus::Active => tenant.active.insert(key),
        }
    }
    for (object, spec) in records.policies {
        let at = format!("state: policy {object:?}");
        if snapshot.policy(&object).is_some() {
            problems.push(format!(
                "{at}: the object has a policy in the config file; skipped"
            ));
            continue;
        }
        match build::entry(&object, &spec, Source::Api) {
            Ok(entry) => snapshot.set_policy(entry),
            Err(errs) => problems.push(format!("{at}: {}; skipped", errs.join("; "))),
        }
    }
    problems
}

/// What differs between two snapshots, as invalidation scopes: every object whose policy changed
/// (added, removed, different), every tenant whose active keys or permission claim name
/// (SPEC §10) changed, and the default policy (tenant `""`) when it changed.
pub fn changes(old: &Snapshot, new: &Snapshot) -> Vec<Scope> {
    let mut out = Vec::new();
    let objects: BTreeSet<&str> = old
        .policies()
        .chain(new.policies())
        .map(|e| e.object.as_str())
        .collect();
    for object in objects {
        if old.policy(object) != new.policy(object) {
            out.push(Scope::Object(object.to_owned()));
        }
    }
    let tenants: BTreeSet<&str> = old
        .tenants()
        .chain(new.tenants())
        .map(|(t, _)| t.as_str())
        .collect();
    for tenant in tenants {
        let claim = |s: &Snapshot| s.tenant(tenant).map(|t| t.permission_claim().to_owned());
        if !old.keys(tenant).same_as(new.keys(tenant)) || claim(old) != claim(new) {
            out.push(Scope::Tenant(tenant.to_owned()));
        }
    }
    if old.default_policy() != new.default_policy() {
        out.push(Scope::Tenant(String::new()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{Policy, PolicyEntry};
    use crate::spec::{KeySpec, PolicySpec};

    fn with(entries: &[(&str, Policy)]) -> Snapshot {
        let mut s = Snapshot::new(Policy::Deny);
        for (object, policy) in entries {
            s.set_policy(PolicyEntry {
                object: (*object).into(),
                tenant: "t1".into(),
                policy: policy.clone(),
                publish: crate::policy::model::PublishRule::Deny,
                source: Source::Config,
            });
        }
        s
    }

    fn key_spec(tenant: &str, status: KeyStatus) -> KeySpec {
        let pair = crate::keys::keygen::generate_es256("k").unwrap();
        KeySpec {
            tenant: tenant.into(),
            alg: Some("ES256".into()),
            public_key_pem: Some(pair.public_pem.clone()),
            status: Some(status),
            ..KeySpec::default()
        }
    }

    fn public_spec(tenant: &str) -> PolicySpec {
        PolicySpec {
            tenant: tenant.into(),
            kind: crate::spec::PolicyKind::Public,
            ..PolicySpec::default()
        }
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
                Scope::Object("b".into()),
                Scope::Object("c".into()),
                Scope::Object("d".into())
            ]
        );
    }

    #[test]
    fn a_renamed_permission_claim_touches_the_tenant() {
        let old = with(&[("a", Policy::Public)]);
        let mut new = old.clone();
        new.tenant_mut("t1").permission_claim = Some("perms".into());
        assert_eq!(changes(&old, &new), vec![Scope::Tenant("t1".into())]);
        assert!(changes(&old, &old.clone()).is_empty());
    }

    #[test]
    fn a_changed_default_policy_touches_the_default_tenant() {
        let old = Snapshot::new(Policy::Deny);
        let new = Snapshot::new(Policy::Public);
        assert_eq!(changes(&old, &new), [Scope::Tenant(String::new())]);
        assert!(changes(&old, &old).is_empty());
    }

    #[test]
    fn records_are_laid_over_the_snapshot() {
        let mut snapshot = Snapshot::new(Policy::Deny);
        let records = Records {
            keys: vec![
                ("k1".into(), key_spec("t1", KeyStatus::Active)),
                ("k2".into(), key_spec("t1", KeyStatus::Revoked)),
            ],
            policies: vec![("abc".into(), public_spec("t1"))],
        };
        assert!(lay_records(records, &mut snapshot).is_empty());
        assert!(snapshot.keys("t1").get("k1").is_some());
        assert!(snapshot.keys("t1").get("k2").is_none());
        assert!(snapshot.tenant("t1").unwrap().revoked.contains_key("k2"));
        assert_eq!(snapshot.resolve("live+abc").policy, Policy::Public);
    }

    #[test]
    fn config_wins_a_conflict_and_the_record_is_reported() {
        let mut snapshot = with(&[("abc", Policy::Deny)]);
        let records = Records {
            keys: vec![],
            policies: vec![("abc".into(), public_spec("t1"))],
        };
        let problems = lay_records(records, &mut snapshot);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("config file"));
        assert_eq!(snapshot.resolve("abc").policy, Policy::Deny);
    }

    #[test]
    fn an_eleventh_active_key_is_skipped() {
        let mut snapshot = Snapshot::new(Policy::Deny);
        let keys = (0..=MAX_ACTIVE_KEYS_PER_TENANT)
            .map(|i| (format!("k{i}"), key_spec("t1", KeyStatus::Active)))
            .collect();
        let records = Records {
            keys,
            policies: vec![],
        };
        let problems = lay_records(records, &mut snapshot);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(snapshot.keys("t1").len(), MAX_ACTIVE_KEYS_PER_TENANT);
    }
}

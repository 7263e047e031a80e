//! The policy store: one immutable [`Snapshot`] of tenants, keys and policies, swapped atomically
//! so a decision never sees half a change.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::lookup;
use super::model::{Policy, PolicyEntry, Source};
use crate::keys::{TenantKeys, VerifyingKey};

/// Everything a decision needs to know about policies and keys, frozen at one instant.
#[derive(Debug, Clone)]
pub struct Snapshot {
    policies: HashMap<String, Arc<PolicyEntry>>,
    tenants: HashMap<String, Tenant>,
    default_policy: Arc<PolicyEntry>,
    no_keys: TenantKeys,
}

/// A tenant: its active keys, and the kids it revoked (kept so a revoked kid stays revoked).
#[derive(Debug, Clone, Default)]
pub struct Tenant {
    pub active: TenantKeys,
    pub revoked: HashMap<String, Arc<VerifyingKey>>,
    pub jwks_url: Option<String>,
    /// The claim naming the viewer (SPEC §9); `sub` when `None`.
    pub viewer_claim: Option<String>,
    /// The claim carrying read/publish permissions (SPEC §10); `usher` when `None`.
    pub permission_claim: Option<String>,
}

impl Tenant {
    /// The name of the claim carrying this tenant's read/publish permissions.
    pub fn permission_claim(&self) -> &str {
        self.permission_claim
            .as_deref()
            .unwrap_or(crate::publish::permission::DEFAULT_CLAIM)
    }
}

impl Snapshot {
    /// A snapshot with no policies and the given default.
    pub fn new(default_policy: Policy) -> Snapshot {
        Snapshot {
            policies: HashMap::new(),
            tenants: HashMap::new(),
            default_policy: Arc::new(PolicyEntry {
                object: String::new(),
                tenant: String::new(),
                policy: default_policy,
                publish: super::model::PublishRule::Deny,
                source: Source::Config,
            }),
            no_keys: TenantKeys::default(),
        }
    }

    /// The policy for a stream: exact stream name, object id, base name, then the default.
    pub fn resolve(&self, stream: &str) -> &Arc<PolicyEntry> {
        lookup::candidates(stream)
            .find_map(|name| self.policies.get(name))
            .unwrap_or(&self.default_policy)
    }

    /// The active keys of a tenant (empty for an unknown tenant).
    pub fn keys(&self, tenant: &str) -> &TenantKeys {
        self.tenants
            .get(tenant)
            .map(|t| &t.active)
            .unwrap_or(&self.no_keys)
    }

    /// The policy attached to exactly this name, if any.
    pub fn policy(&self, object: &str) -> Option<&Arc<PolicyEntry>> {
        self.policies.get(object)
    }

    /// All attached policies.
    pub fn policies(&self) -> impl Iterator<Item = &Arc<PolicyEntry>> {
        self.policies.values()
    }

    /// A tenant, if known.
    pub fn tenant(&self, id: &str) -> Option<&Tenant> {
        self.tenants.get(id)
    }

    /// All tenants.
    pub fn tenants(&self) -> impl Iterator<Item = (&String, &Tenant)> {
        self.tenants.iter()
    }

    /// The default policy.
    pub fn default_policy(&self) -> &Arc<PolicyEntry> {
        &self.default_policy
    }

    /// Adds or replaces the policy of an object.
    pub fn set_policy(&mut self, entry: PolicyEntry) {
        self.tenants.entry(entry.tenant.clone()).or_default();
        self.policies.insert(entry.object.clone(), Arc::new(entry));
    }

    /// Removes the policy of an object.
    pub fn remove_policy(&mut self, object: &str) -> Option<Arc<PolicyEntry>> {
        self.policies.remove(object)
    }

    /// Makes sure a tenant exists, returning it for changes.
    pub fn tenant_mut(&mut self, id: &str) -> &mut Tenant {
        self.tenants.entry(id.to_owned()).or_default()
    }
}

/// The shared handle the evaluator reads from and the control plane writes to.
#[derive(Clone)]
pub struct PolicyStore {
    current: Arc<ArcSwap<Snapshot>>,
}

impl PolicyStore {
    /// A store holding `snapshot`.
    pub fn new(snapshot: Snapshot) -> PolicyStore {
        PolicyStore {
            current: Arc::new(ArcSwap::from_pointee(snapshot)),
        }
    }

    /// The current snapshot; cheap, lock-free, and stable for as long as it is held.
    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replaces the snapshot atomically.
    pub fn replace(&self, snapshot: Snapshot) {
        self.replace_arc(Arc::new(snapshot));
    }

    /// Replaces the snapshot atomically with one already shared.
    pub fn replace_arc(&self, snapshot: Arc<Snapshot>) {
        self.current.store(snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(object: &str, policy: Policy) -> PolicyEntry {
        PolicyEntry {
            object: object.into(),
            tenant: "t1".into(),
            policy,
            publish: crate::policy::model::PublishRule::Deny,
            source: Source::Config,
        }
    }

    #[test]
    fn exact_stream_beats_object_beats_base_beats_default() {
        let mut s = Snapshot::new(Policy::Deny);
        s.set_policy(entry("live", Policy::Public));
        assert_eq!(s.resolve("live+abc").object, "live");
        s.set_policy(entry("abc", Policy::Deny));
        assert_eq!(s.resolve("live+abc").object, "abc");
        s.set_policy(entry("live+abc", Policy::Public));
        assert_eq!(s.resolve("live+abc").object, "live+abc");
        assert_eq!(s.resolve("other").policy, Policy::Deny);
        assert_eq!(s.resolve("other").object, "");
    }
}

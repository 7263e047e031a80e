//! Builds a [`Snapshot`] from the config file, collecting every problem instead of stopping at the first.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use super::model::{
    JwtPolicy, Policy, PolicyEntry, PublishRule, Secret, Source, WEBHOOK_DEFAULT_TIMEOUT_MS,
    WEBHOOK_MAX_TIMEOUT_MS, WebhookPolicy,
};
use super::publish_rule;
use super::session_rules::SessionRules;
use super::store::Snapshot;
use crate::config::Config;
use crate::keys::{KeySource, MAX_ACTIVE_KEYS_PER_TENANT};
use crate::spec::{KeyStatus, PolicyKind, PolicySpec, valid_name, valid_object};

/// Every problem found in a config, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Problems(pub Vec<String>);

impl Problems {
    fn push(&mut self, problem: impl Into<String>) {
        self.0.push(problem.into());
    }
}

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for p in &self.0 {
            writeln!(f, "{p}")?;
        }
        Ok(())
    }
}

/// Checks the config and builds the snapshot it describes. `base_dir` resolves relative key files.
pub fn from_config(config: &Config, base_dir: &Path) -> Result<Snapshot, Problems> {
    let mut problems = Problems::default();
    check_settings(config, &mut problems);

    let default_policy = match config.default_policy.kind {
        PolicyKind::Deny => Policy::Deny,
        PolicyKind::Public => Policy::Public,
        other => {
            problems.push(format!(
                "default_policy.type: {other:?} is not one of \"deny\", \"public\""
            ));
            Policy::Deny
        }
    };
    let mut snapshot = Snapshot::new(default_policy);

    let mut tenant_ids = HashSet::new();
    for t in &config.tenants {
        if !valid_name(&t.id) {
            problems.push(format!("tenants: invalid tenant id {:?}", t.id));
        } else if !tenant_ids.insert(t.id.as_str()) {
            problems.push(format!("tenants: tenant {:?} is defined twice", t.id));
        }
        snapshot.tenant_mut(&t.id).jwks_url = t.jwks_url.clone();
        snapshot.tenant_mut(&t.id).viewer_claim = t.viewer_claim.clone();
        if let Some(claim) = &t.permission_claim {
            if claim.is_empty() || claim.len() > 128 {
                problems.push(format!(
                    "tenants[id={:?}]: permission_claim must be 1..=128 characters",
                    t.id
                ));
            }
            snapshot.tenant_mut(&t.id).permission_claim = Some(claim.clone());
        }
    }

    let mut kids = HashSet::new();
    for k in &config.keys {
        let at = format!("keys[kid={:?}]", k.name);
        if !kids.insert(k.name.as_str()) {
            problems.push(format!("{at}: kid is defined twice"));
            continue;
        }
        if !tenant_ids.contains(k.spec.tenant.as_str()) {
            problems.push(format!(
                "{at}: tenant {:?} is not in [[tenants]]",
                k.spec.tenant
            ));
        }
        match k.spec.load(&k.name, KeySource::Config, Some(base_dir)) {
            Ok(key) => {
                let tenant = snapshot.tenant_mut(&k.spec.tenant);
                if k.spec.status() == KeyStatus::Revoked {
                    tenant.revoked.insert(key.kid.clone(), Arc::new(key));
                } else if tenant.active.len() >= MAX_ACTIVE_KEYS_PER_TENANT {
                    problems.push(format!(
                        "{at}: tenant {:?} already has {MAX_ACTIVE_KEYS_PER_TENANT} active keys",
                        k.spec.tenant
                    ));
                } else {
                    tenant.active.insert(Arc::new(key));
                }
            }
            Err(e) => problems.push(format!("{at}: {e}")),
        }
    }

    let mut objects = HashSet::new();
    for p in &config.policies {
        let at = format!("policies[object={:?}]", p.name);
        if !valid_object(&p.name) {
            problems.push(format!("{at}: invalid object name"));
            continue;
        }
        if !objects.insert(p.name.as_str()) {
            problems.push(format!("{at}: object has two policies"));
            continue;
        }
        if !tenant_ids.contains(p.spec.tenant.as_str()) {
            problems.push(format!(
                "{at}: tenant {:?} is not in [[tenants]]",
                p.spec.tenant
            ));
        }
        match entry(&p.name, &p.spec, Source::Config) {
            Ok(entry) => snapshot.set_policy(entry),
            Err(errs) => errs
                .into_iter()
                .for_each(|e| problems.push(format!("{at}: {e}"))),
        }
    }

    if problems.0.is_empty() {
        Ok(snapshot)
    } else {
        Err(problems)
    }
}

fn check_settings(config: &Config, problems: &mut Problems) {
    if config.cache.allow_ttl_s == 0 || config.cache.deny_ttl_s == 0 {
        problems.push("cache: allow_ttl_s and deny_ttl_s must be at least 1");
    }
    if config.cache.max_entries == 0 {
        problems.push("cache.max_entries must be at least 1");
    }
    if config.webhook.max_in_flight == 0 {
        problems.push("webhook.max_in_flight must be at least 1");
    }
    if http::HeaderName::from_bytes(config.webhook.signature_header.as_bytes()).is_err() {
        problems.push(format!(
            "webhook.signature_header: {:?} is not a valid header name",
            config.webhook.signature_header
        ));
    }
    if !matches!(config.log.format.as_str(), "text" | "json") {
        problems.push(format!(
            "log.format: {:?} is not one of \"text\", \"json\"",
            config.log.format
        ));
    }
    if tracing_subscriber::EnvFilter::try_new(&config.log.level).is_err() {
        problems.push(format!(
            "log.level: {:?} is not a valid filter",
            config.log.level
        ));
    }
    if config.trigger.listen == config.control.listen && config.trigger.listen.port() != 0 {
        problems.push("trigger.listen and control.listen must differ");
    }
    if config.trigger.max_connections == 0 {
        problems.push("trigger.max_connections must be at least 1");
    }
    if config.trigger.drain_timeout_s > 300 {
        problems.push("trigger.drain_timeout_s may be at most 300");
    }
}

/// The policy entry a spec describes for `object` (shape checks only; the SSRF guard judges a
/// webhook URL separately).
pub fn entry(object: &str, spec: &PolicySpec, source: Source) -> Result<PolicyEntry, Vec<String>> {
    let policy = policy_from_spec(spec);
    let publish = spec
        .publish
        .as_ref()
        .map_or(Ok(PublishRule::Deny), |p| publish_rule::build(p));
    match (policy, publish) {
        (Ok(policy), Ok(publish)) => Ok(PolicyEntry {
            object: object.to_owned(),
            tenant: spec.tenant.clone(),
            policy,
            publish,
            source,
        }),
        (policy, publish) => Err([policy.err(), publish.err()]
            .into_iter()
            .flatten()
            .flatten()
            .collect()),
    }
}

/// Turns a policy spec into a policy; every field that does not belong is a problem.
pub fn policy_from_spec(p: &PolicySpec) -> Result<Policy, Vec<String>> {
    let mut errs = Vec::new();
    let jwt_fields = !p.allowed_kids.is_empty()
        || p.required_audience.is_some()
        || !p.required_claims.is_empty()
        || p.object_claim.is_some()
        || p.max_lifetime_s.is_some()
        || p.cut_at_exp.is_some()
        || p.max_sessions_per_viewer.is_some()
        || p.on_exceed.is_some()
        || p.require_permission;
    let webhook_fields = p.url.is_some() || p.secret.is_some() || p.timeout_ms.is_some();
    let policy = match p.kind {
        PolicyKind::Public | PolicyKind::Deny if jwt_fields || webhook_fields => {
            errs.push(format!("a {} policy takes no other fields", p.kind));
            None
        }
        PolicyKind::Public => Some(Policy::Public),
        PolicyKind::Deny => Some(Policy::Deny),
        PolicyKind::Jwt => {
            if webhook_fields {
                errs.push("url, secret and timeout_ms belong to webhook policies".into());
            }
            Some(Policy::Jwt(JwtPolicy {
                allowed_kids: p.allowed_kids.clone(),
                required_audience: p.required_audience.clone(),
                required_claims: p
                    .required_claims
                    .clone()
                    .into_iter()
                    .collect::<BTreeMap<_, _>>(),
                object_claim: p.object_claim.clone(),
                max_lifetime_s: p.max_lifetime_s,
                sessions: SessionRules::from_spec(
                    p.cut_at_exp,
                    p.max_sessions_per_viewer,
                    p.on_exceed.as_deref(),
                )
                .unwrap_or_else(|e| {
                    errs.push(e);
                    SessionRules::default()
                }),
                require_permission: p.require_permission,
            }))
        }
        PolicyKind::Webhook => {
            if jwt_fields {
                errs.push("allowed_kids, required_* and the like belong to jwt policies".into());
            }
            match webhook_policy(p.url.as_deref(), p.secret.as_deref(), p.timeout_ms) {
                Ok(w) => Some(Policy::Webhook(w)),
                Err(e) => {
                    errs.push(e);
                    None
                }
            }
        }
    };
    match policy {
        Some(policy) if errs.is_empty() => Ok(policy),
        _ => Err(errs),
    }
}

/// The shape checks of a webhook policy that need no network: URL syntax, secret, timeout.
/// The SSRF guard judges the URL's addresses separately.
pub fn webhook_policy(
    url: Option<&str>,
    secret: Option<&str>,
    timeout_ms: Option<u64>,
) -> Result<WebhookPolicy, String> {
    let url = url.ok_or("a webhook policy needs a url")?;
    let url = url::Url::parse(url).map_err(|e| format!("url: {e}"))?;
    let secret = secret
        .filter(|s| !s.is_empty())
        .ok_or("a webhook policy needs a non-empty secret")?;
    let timeout_ms = match timeout_ms {
        None => WEBHOOK_DEFAULT_TIMEOUT_MS,
        Some(0) => return Err("timeout_ms must be at least 1".into()),
        // SPEC §2: capped at 10000; a larger value is clamped, not refused.
        Some(t) => t.min(WEBHOOK_MAX_TIMEOUT_MS),
    };
    Ok(WebhookPolicy {
        url,
        secret: Secret::new(secret),
        timeout_ms,
    })
}

//! The writers that are not the control API, as thin callers of the one change path: SIGHUP
//! re-reads the config file and hands its snapshot over as [`Change::Reload`]; a JWKS refresh
//! that changed a tenant's keys becomes [`Change::JwksChanged`]. An invalid config on SIGHUP is
//! logged with every problem and the running one stays.

use std::path::{Path, PathBuf};

use crate::app::App;
use crate::config::Config;
use crate::enforce::Change;
use crate::jwks::JwksKeys;
use crate::setup;
use crate::systemd;

/// SIGHUP: re-reads the config file with the running outbound client (one resolver, one pool).
/// A valid one replaces the config layer (the stored records and JWKS keys are laid over it again)
/// and what changed is invalidated; an invalid one is logged and the old one stays.
pub async fn reload(app: &App, path: &Path) {
    systemd::reloading();
    let client = app.evaluator().webhooks().client().clone();
    match setup::load_with(path, client).await {
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
            match app
                .enforcer()
                .apply(Change::Reload(Box::new(loaded.snapshot)))
                .await
            {
                Ok(applied) => {
                    tracing::info!(dropped = applied.invalidated.dropped, "config reloaded")
                }
                Err(e) => tracing::error!(error = %e, "config reload refused"),
            }
        }
    }
    systemd::reloaded();
}

/// Re-reads the config on every SIGHUP.
pub async fn on_sighup(app: App, path: PathBuf, mut hup: tokio::signal::unix::Signal) {
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config");
        reload(&app, &path).await;
    }
}

/// The sections only a restart applies — listeners, state, cache sizing, outbound, webhooks,
/// MistServer, logging, live sessions, the fleet — and the tenants' JWKS URLs: those `new`
/// changes against the running config, by name. Compared as values, field by field.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let jwks = |c: &Config| {
        c.tenants
            .iter()
            .filter_map(|t| Some((t.id.clone(), t.jwks_url.clone()?)))
            .collect::<Vec<_>>()
    };
    [
        ("trigger", old.trigger != new.trigger),
        ("control", old.control != new.control),
        ("state", old.state != new.state),
        ("cache", old.cache != new.cache),
        ("outbound", old.outbound != new.outbound),
        ("webhook", old.webhook != new.webhook),
        ("mist", old.mist != new.mist),
        ("log", old.log != new.log),
        ("sessions", old.sessions != new.sessions),
        ("fleet", old.fleet != new.fleet),
        ("tenants.jwks_url", jwks(old) != jwks(new)),
    ]
    .into_iter()
    .filter_map(|(section, changed)| changed.then_some(section))
    .collect()
}

/// Names every restart-only change in a warning, and in `usher_reload_restart_required`.
fn warn_restart_only(app: &App, new: &Config) {
    let changed = restart_only_changes(app.config(), new);
    for section in &changed {
        tracing::warn!(section, "changed, takes effect on restart");
    }
    app.metrics().set_restart_required(!changed.is_empty());
}

/// Hands every JWKS change to the change path, which merges it and invalidates the tenants it
/// touched.
pub async fn follow_jwks(app: App, jwks: JwksKeys) {
    let mut changed = jwks.subscribe();
    let mut seen = 0;
    while changed.changed().await.is_ok() {
        let (revision, tenants) = jwks.changes_since(seen);
        seen = revision;
        if tenants.is_empty() {
            continue;
        }
        let count = tenants.len();
        match app.enforcer().apply(Change::JwksChanged { tenants }).await {
            Ok(applied) => tracing::info!(
                tenants = count,
                dropped = applied.invalidated.dropped,
                "jwks keys changed"
            ),
            Err(e) => tracing::error!(error = %e, "jwks change not applied"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(toml: &str) -> Config {
        Config::parse(toml).unwrap()
    }

    #[test]
    fn every_restart_only_section_is_named_when_it_changes_and_policies_are_not() {
        let base = parsed("");
        assert!(restart_only_changes(&base, &base).is_empty());
        for (toml, section) in [
            ("[sessions]\nmax_entries = 5\n", "sessions"),
            ("[mist]\nack_wait_ms = 7\n", "mist"),
            ("[cache]\nallow_ttl_s = 7\n", "cache"),
            (
                "[fleet]\nnats_urls = [\"nats://127.0.0.1:4222\"]\nnode_id = \"n1\"\n",
                "fleet",
            ),
        ] {
            assert_eq!(
                restart_only_changes(&base, &parsed(toml)),
                [section],
                "{toml}"
            );
        }
        let policy = "[[tenants]]\nid = \"t1\"\n[[policies]]\nobject = \"x\"\ntenant = \"t1\"\ntype = \"public\"\n";
        assert!(restart_only_changes(&base, &parsed(policy)).is_empty());
    }
}

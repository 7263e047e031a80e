//! The writers that are not the control API, as thin callers of the one change path: SIGHUP
//! re-reads the config file and hands its snapshot over as [`Change::Reload`]; a JWKS refresh
//! that changed a tenant's keys becomes [`Change::JwksChanged`]. An invalid config on SIGHUP is
//! logged with every problem and the running one stays.

use std::path::{Path, PathBuf};

use crate::app::App;
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

/// Settings a reload does not change (listeners, state, cache sizing, outbound, MistServer).
fn warn_restart_only(app: &App, new: &crate::config::Config) {
    let old = app.config();
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

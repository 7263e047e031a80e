//! `usher serve`: load the config, bind the listeners, run until SIGTERM/SIGINT, then drain.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::App;
use crate::backoff::Backoff;
use crate::cache::DecisionCache;
use crate::clock::Clock;
use crate::config::Config;
use crate::control::{self, Control};
use crate::enforce::{Enforcer, Parts};
use crate::fleet::Fleet;
use crate::jwks::{JwksKeys, JwksOptions};
use crate::listener::{self, Limits};
use crate::mist::{InvalidationQueue, MistClient};
use crate::net::client::GuardedClient;
use crate::policy::store::Snapshot;
use crate::reload;
use crate::sessions::{Revocations, Sessions};
use crate::setup;
use crate::shutdown::{self, Shutdown};
use crate::state::StateDb;
use crate::systemd;
use crate::trigger::endpoint;

/// Connections the control listener serves at once.
const CONTROL_MAX_CONNECTIONS: usize = 256;

/// Runs the daemon on the config at `path` until a termination signal, then drains and returns.
pub async fn run(path: &Path) -> anyhow::Result<()> {
    if let Ok(config) = Config::load(path) {
        crate::telemetry::init(&config.log);
    }
    let loaded = setup::load(path)
        .await
        .map_err(|problems| anyhow::anyhow!("invalid config {}:\n{problems}", path.display()))?;
    for warning in &loaded.warnings {
        tracing::warn!(warning = warning.as_str(), "config");
    }
    let config = Arc::new(loaded.config);
    let drain = Duration::from_secs(config.trigger.drain_timeout_s);
    let trigger_addr = config.trigger.listen;
    let trigger_max_connections = config.trigger.max_connections;
    let control_addr = config.control.listen;
    let tokens = setup::control_tokens(&config).map_err(anyhow::Error::msg)?;
    let db = StateDb::open(&config.state.dir).await?;
    // One outbound stack for the process: webhook calls and JWKS fetches share it.
    let outbound = loaded.evaluator.webhooks().client().clone();
    let jwks = start_jwks(&loaded.snapshot, &outbound)?;
    if tokens.is_empty() {
        tracing::warn!("no control token is configured: every /v1/ call is refused");
    }
    let mist = MistClient::new(&config.mist)?;
    let sessions = Sessions::new(
        config.sessions.max_entries,
        Duration::from_secs(config.cache.allow_ttl_s),
        Revocations::default(),
    );
    // The one wall clock: the evaluator and the enforcer read the same.
    let clock = Clock::default();
    let evaluator = match &jwks {
        Some(j) => loaded.evaluator.with_jwks(j.clone()),
        None => loaded.evaluator,
    }
    .with_revocations(sessions.revocations().clone())
    .with_clock(clock);
    let queue = InvalidationQueue::spawn(mist.clone(), Backoff::default(), Arc::new(db.clone()));
    let fleet_db = db.clone();
    let cache = DecisionCache::new(&config.cache);
    sessions.drop_decisions_in(cache.clone());
    let enforcer = Enforcer::start(Parts {
        config: loaded.snapshot,
        db,
        jwks: jwks.clone(),
        cache: cache.clone(),
        metrics: evaluator.metrics().clone(),
        guard: outbound.guard.clone(),
        mist: Arc::new(queue.clone()),
        mist_api: Some(mist),
        ack_wait: Duration::from_millis(config.mist.ack_wait_ms),
        sessions: sessions.clone(),
        revocation_max_age: Duration::from_secs(config.sessions.revocation_max_age_s),
        clock,
    })
    .await?;
    let fleet = match &config.fleet {
        Some(f) => Some(
            Fleet::start(
                f.clone(),
                &Config::base_dir(path),
                enforcer.clone(),
                &fleet_db,
            )
            .await?,
        ),
        None => None,
    };
    let session_timer = tokio::spawn(crate::sessions::timer::run(
        sessions,
        Arc::new(enforcer.clone()),
    ));
    let mut app = App::new(config, evaluator, cache, enforcer);
    if let Some(fleet) = &fleet {
        app = app.with_fleet(fleet.clone());
    }
    if let Some(j) = &jwks {
        tokio::spawn(reload::follow_jwks(app.clone(), j.clone()));
    }

    let trigger = TcpListener::bind(trigger_addr)
        .await
        .with_context(|| format!("cannot listen on {trigger_addr} (trigger)"))?;
    let control_listener = TcpListener::bind(control_addr)
        .await
        .with_context(|| format!("cannot listen on {control_addr} (control)"))?;
    let terminate = shutdown::terminate_signal();
    // Installed before `ready`: a SIGHUP right after it must reload, not kill.
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot listen for SIGHUP")?;
    let trigger_bound = trigger.local_addr()?;
    tracing::info!(
        trigger = %trigger_bound,
        control = %control_listener.local_addr()?,
        "ready"
    );
    systemd::ready(&format!("answering triggers on {trigger_bound}"));
    if let Some(interval) = systemd::watchdog_interval(|k| std::env::var(k).ok()) {
        tokio::spawn(systemd::watchdog(interval));
    }

    let (stop, signal) = Shutdown::new();
    let limits = Limits {
        max_connections: trigger_max_connections,
        header_timeout: Duration::from_secs(10),
        drain_timeout: drain,
    };
    let ctl = Control::new(app.clone(), tokens);
    let sampler = tokio::spawn(
        ctl.recent()
            .clone()
            .sample(app.evaluator().metrics().clone()),
    );
    tokio::spawn(reload::on_sighup(app.clone(), path.to_path_buf(), hup));
    let drained = app.clone();
    let control_task = tokio::spawn(listener::serve(
        "control",
        control_listener,
        Limits {
            max_connections: CONTROL_MAX_CONNECTIONS,
            ..limits
        },
        move |req, _peer| control::handle(ctl.clone(), req),
        signal.clone(),
    ));
    // Behind one Arc: a request costs one reference count, not a clone of every part of App.
    let trigger_app = Arc::new(app);
    let trigger_task = tokio::spawn(listener::serve(
        "trigger",
        trigger,
        limits,
        move |req, _peer| endpoint::handle(trigger_app.clone(), req),
        signal,
    ));

    terminate.await;
    tracing::info!("shutting down");
    systemd::stopping();
    stop.trigger();
    let _ = trigger_task.await;
    let _ = control_task.await;
    queue.shutdown();
    if let Some(fleet) = &fleet {
        fleet.shutdown();
    }
    sampler.abort();
    session_timer.abort();
    if let Some(j) = drained.evaluator().jwks() {
        j.shutdown();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Starts fetching the JWKS sets of the tenants that have a `jwks_url`, through `client`.
fn start_jwks(snapshot: &Snapshot, client: &GuardedClient) -> anyhow::Result<Option<JwksKeys>> {
    let mut tenants = Vec::new();
    for (id, tenant) in snapshot.tenants() {
        if let Some(url) = &tenant.jwks_url {
            let url = url::Url::parse(url).with_context(|| format!("tenant {id}: jwks_url"))?;
            tenants.push((id.clone(), url));
        }
    }
    if tenants.is_empty() {
        return Ok(None);
    }
    Ok(Some(JwksKeys::start(
        tenants,
        client.clone(),
        JwksOptions::default(),
    )))
}

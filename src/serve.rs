//! `usher serve`: load the config, bind the listeners, run until SIGTERM/SIGINT, then drain.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::Config;
use crate::control::{self, Control};
use crate::listener::{self, Limits};
use crate::mist::{Backoff, InvalidationQueue, MistClient};
use crate::setup;
use crate::shutdown::{self, Shutdown};
use crate::state::{self, StateDb};
use crate::trigger::endpoint;

/// Connections the trigger listener serves at once.
const TRIGGER_MAX_CONNECTIONS: usize = 16_384;
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
    let config = loaded.config;
    let drain = Duration::from_secs(config.trigger.drain_timeout_s);
    let trigger_addr = config.trigger.listen;
    let control_addr = config.control.listen;
    let tokens = setup::control_tokens(&config).map_err(anyhow::Error::msg)?;
    let db = StateDb::open(&config.state.dir).await?;
    let mut snapshot = loaded.snapshot;
    for problem in state::apply(db.load_all().await?, &mut snapshot) {
        tracing::warn!(problem = problem.as_str(), "state");
    }
    if tokens.is_empty() {
        tracing::warn!("no control token is configured: every /v1/ call is refused");
    }
    let mist = MistClient::new(&config.mist)?;
    let mut app = App::new(config, snapshot, loaded.evaluator);
    let queue = InvalidationQueue::spawn(mist, Backoff::default());
    app.mist = Arc::new(queue.clone());

    let trigger = TcpListener::bind(trigger_addr)
        .await
        .with_context(|| format!("cannot listen on {trigger_addr} (trigger)"))?;
    let control_listener = TcpListener::bind(control_addr)
        .await
        .with_context(|| format!("cannot listen on {control_addr} (control)"))?;
    let terminate = shutdown::terminate_signal();
    tracing::info!(
        trigger = %trigger.local_addr()?,
        control = %control_listener.local_addr()?,
        "ready"
    );

    let (stop, signal) = Shutdown::new();
    let limits = Limits {
        max_connections: TRIGGER_MAX_CONNECTIONS,
        header_timeout: Duration::from_secs(10),
        drain_timeout: drain,
    };
    let ctl = Control::new(app.clone(), db, tokens);
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
    let trigger_task = tokio::spawn(listener::serve(
        "trigger",
        trigger,
        limits,
        move |req, _peer| endpoint::handle(app.clone(), req),
        signal,
    ));

    terminate.await;
    tracing::info!("shutting down");
    stop.trigger();
    let _ = trigger_task.await;
    let _ = control_task.await;
    queue.shutdown();
    tracing::info!("stopped");
    Ok(())
}

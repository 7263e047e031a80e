//! `usher serve`: load the config, bind the listeners, run until SIGTERM/SIGINT, then drain.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::app::App;
use crate::config::Config;
use crate::listener::{self, Limits};
use crate::setup;
use crate::shutdown::{self, Shutdown};
use crate::trigger::endpoint;

/// Connections the trigger listener serves at once.
const TRIGGER_MAX_CONNECTIONS: usize = 16_384;

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
    let app = App::new(config, loaded.snapshot, loaded.evaluator);

    let trigger = TcpListener::bind(trigger_addr)
        .await
        .with_context(|| format!("cannot listen on {trigger_addr} (trigger)"))?;
    tracing::info!(trigger = %trigger.local_addr()?, "ready");

    let (stop, signal) = Shutdown::new();
    let limits = Limits {
        max_connections: TRIGGER_MAX_CONNECTIONS,
        header_timeout: Duration::from_secs(10),
        drain_timeout: drain,
    };
    let trigger_task = tokio::spawn(listener::serve(
        "trigger",
        trigger,
        limits,
        move |req, _peer| endpoint::handle(app.clone(), req),
        signal,
    ));

    shutdown::terminate_signal().await;
    tracing::info!("shutting down");
    stop.trigger();
    let _ = trigger_task.await;
    tracing::info!("stopped");
    Ok(())
}

//! The NATS connection of one node: authentication (a `.creds` file, an NKey seed, mutual TLS)
//! from `[fleet]`, a name the servers can show, and reconnection that never gives up. The client
//! is returned at once: usher serves from its local copy while the servers are unreachable.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use async_nats::{Client, ConnectOptions};

use crate::config::FleetConfig;

/// The longest pause between two reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// Builds the client for `config`; files are resolved against `base_dir`. Fails only on a file
/// that cannot be read, never on an unreachable server.
pub async fn connect(config: &FleetConfig, base_dir: &Path) -> anyhow::Result<Client> {
    let mut options = ConnectOptions::new()
        .name(format!("usher {}", config.node_id))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            let ms = 100u64.saturating_mul(1 << attempts.min(5));
            Duration::from_millis(ms).min(MAX_RECONNECT_DELAY)
        })
        .event_callback(|event| async move {
            // Only the kind: a server's error text is not ours to log.
            tracing::info!(event = event_kind(&event), "nats");
        });
    if let Some(file) = &config.credentials_file {
        let path = base_dir.join(file);
        options = options
            .credentials_file(&path)
            .await
            .with_context(|| format!("fleet.credentials_file {}", path.display()))?;
    }
    if let Some(file) = &config.nkey_seed_file {
        let path = base_dir.join(file);
        let seed = std::fs::read_to_string(&path)
            .with_context(|| format!("fleet.nkey_seed_file {}", path.display()))?;
        options = options.nkey(seed.trim().to_owned());
    }
    if let Some(file) = &config.tls_ca_file {
        options = options
            .add_root_certificates(base_dir.join(file))
            .require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) {
        options = options
            .add_client_certificate(base_dir.join(cert), base_dir.join(key))
            .require_tls(true);
    }
    let urls = config
        .nats_urls
        .iter()
        .map(|u| u.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .context("fleet.nats_urls")?;
    options
        .connect(urls)
        .await
        .context("cannot start the NATS client")
}

/// A fixed name for a client event.
fn event_kind(event: &async_nats::Event) -> &'static str {
    use async_nats::Event;
    match event {
        Event::Connected => "connected",
        Event::Disconnected => "disconnected",
        Event::LameDuckMode => "lame-duck-mode",
        Event::Draining => "draining",
        Event::Closed => "closed",
        Event::SlowConsumer(_) => "slow-consumer",
        Event::ServerError(_) => "server-error",
        Event::ClientError(_) => "client-error",
    }
}

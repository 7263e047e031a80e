//! The fleet (SPEC §11): with `[fleet]` set, every usher follows one NATS JetStream. Keys,
//! policies and viewer revocations written through any node's control API go to key-value buckets (the fleet's source
//! of truth, conflicts refused by revision); every node watches the buckets and applies each
//! record through the one change path ([`Enforcer::apply`] with `Change::Remote`), recording the
//! revision in the same transaction, so it serves from its local copy while NATS is away and
//! catches up from where it stopped. Invalidations travel on a stream that each node's durable
//! consumer acknowledges only after its own MistServer did; each node reports its state to a
//! status bucket that `GET /v1/fleet` lists.
//!
//! The parts: [`connect`] (the NATS client), [`objects`] (buckets and stream), [`record`] (names
//! and records, pure), [`progress`] (applied revisions), [`follow`] (the bucket watchers),
//! [`events`] (invalidations), [`write`] (control-plane writes), [`status`] (node reports and
//! metrics), [`sessions`] (session counts across nodes). `[fleet]` itself is read by
//! `config` ([`FleetConfig`]).

pub mod connect;
pub mod events;
pub mod follow;
pub mod objects;
pub mod progress;
pub mod record;
pub mod sessions;
pub mod status;
pub mod write;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_nats::Client;
use async_nats::jetstream;
use tokio::task::JoinHandle;

use crate::config::FleetConfig;
use crate::enforce::Enforcer;
use crate::state::StateDb;
use objects::Objects;
use progress::Progress;
use record::{Names, Role};
use status::Nodes;

/// How a fleet loop (set-up, watches, the event consumer) waits before trying NATS again: from
/// 100 ms, doubling to at most 2 s, with jitter so the nodes of a fleet do not retry in step.
const RETRY: crate::backoff::Backoff = crate::backoff::Backoff {
    initial: Duration::from_millis(100),
    max: Duration::from_secs(2),
};

struct Inner {
    config: FleetConfig,
    names: Names,
    client: Client,
    js: jetstream::Context,
    objects: OnceLock<Objects>,
    progress: Progress,
    enforcer: Enforcer,
    nodes: Nodes,
    /// Revisions the buckets hold that this node has not applied yet (last measured).
    lag: AtomicU64,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// This node's membership of the fleet; cheap to clone.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

impl Fleet {
    /// Connects (in the background: usher serves from its copy while NATS is away), then sets
    /// up the JetStream objects and starts following them. Fails only on unreadable files or
    /// an unreadable state database.
    pub async fn start(
        config: FleetConfig,
        base_dir: &Path,
        enforcer: Enforcer,
        db: &StateDb,
    ) -> anyhow::Result<Fleet> {
        let client = connect::connect(&config, base_dir).await?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(Duration::from_millis(config.write_timeout_ms));
        let progress = Progress::new(db.revisions().await?);
        enforcer.sessions().enable_fleet_counts();
        let fleet = Fleet {
            inner: Arc::new(Inner {
                names: Names::new(&config.prefix),
                nodes: Nodes::default(),
                config,
                client,
                js,
                objects: OnceLock::new(),
                progress,
                enforcer,
                lag: AtomicU64::new(0),
                tasks: Mutex::new(Vec::new()),
            }),
        };
        let setup = tokio::spawn(fleet.clone().set_up());
        fleet.keep(setup);
        Ok(fleet)
    }

    /// Creates or checks the objects (retrying until NATS answers), then starts the followers.
    async fn set_up(self) {
        let mut attempt = 0;
        let objects = loop {
            let replicas = self.inner.config.replicas;
            match objects::ensure(&self.inner.js, &self.inner.names, replicas).await {
                Ok(objects) => break objects,
                Err(e) => {
                    tracing::warn!(error = %e, "fleet: cannot set up the JetStream objects yet");
                    tokio::time::sleep(RETRY.delay(attempt)).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        };
        let _ = self.inner.objects.set(objects);
        tracing::info!(
            node = self.inner.config.node_id.as_str(),
            "fleet: following JetStream"
        );
        for role in [Role::Keys, Role::Policies, Role::Revocations] {
            self.keep(tokio::spawn(follow::follow(self.clone(), role)));
        }
        self.keep(tokio::spawn(events::consume(self.clone())));
        self.keep(tokio::spawn(status::publish(self.clone())));
        self.keep(tokio::spawn(status::watch_nodes(self.clone())));
        self.keep(tokio::spawn(sessions::publish(self.clone())));
        self.keep(tokio::spawn(sessions::watch(self.clone())));
    }

    /// Checks the objects again (creating what is missing: a NATS store made anew) before a
    /// follower or the consumer starts over.
    async fn recheck(&self) -> anyhow::Result<()> {
        objects::ensure(
            &self.inner.js,
            &self.inner.names,
            self.inner.config.replicas,
        )
        .await
        .map(drop)
    }

    fn keep(&self, task: JoinHandle<()>) {
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(task);
    }

    /// Stops following (on shutdown).
    pub fn shutdown(&self) {
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task.abort();
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    /// The `[fleet]` section.
    pub fn config(&self) -> &FleetConfig {
        &self.inner.config
    }

    /// Whether the NATS connection is up now.
    pub fn connected(&self) -> bool {
        self.inner.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The objects, once set up.
    fn objects(&self) -> Option<&Objects> {
        self.inner.objects.get()
    }

    fn names(&self) -> &Names {
        &self.inner.names
    }

    fn js(&self) -> &jetstream::Context {
        &self.inner.js
    }

    fn progress(&self) -> &Progress {
        &self.inner.progress
    }

    fn enforcer(&self) -> &Enforcer {
        &self.inner.enforcer
    }

    fn nodes(&self) -> &Nodes {
        &self.inner.nodes
    }

    fn set_lag(&self, lag: u64) {
        self.inner.lag.store(lag, Ordering::Relaxed);
    }

    /// The revisions this node has not applied yet, as last measured.
    pub fn lag(&self) -> u64 {
        self.inner.lag.load(Ordering::Relaxed)
    }
}

//! What each node tells the fleet about itself (SPEC §11: node id, applied revision, pending
//! invalidations, last seen), published to the status bucket every `status_interval_ms`; the
//! reports of every node, as this node last saw them, for `GET /v1/fleet`; and the fleet's
//! metrics (connection state, lag, applied revisions).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_nats::jetstream::kv::{Entry, Operation};
use serde::{Deserialize, Serialize};

use super::Fleet;
use super::record::{self, Role};

/// Most nodes listed; reports beyond it are ignored (and counted in the log).
pub const MAX_NODES: usize = 10_000;

/// One node's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NodeReport {
    pub node_id: String,
    /// Revision applied per bucket.
    pub applied: BTreeMap<String, u64>,
    /// Revisions the buckets held that the node had not applied when it reported.
    pub lag: u64,
    /// Invalidations its MistServer has not acknowledged yet.
    pub pending_invalidations: u64,
    /// Whether its NATS connection was up (always true in a report that arrived).
    pub connected: bool,
    /// When it reported, seconds since the Unix epoch.
    pub last_seen: u64,
}

/// Every node's last report, as this node saw them.
#[derive(Default)]
pub struct Nodes {
    reports: Mutex<BTreeMap<String, NodeReport>>,
}

impl Nodes {
    fn reports(&self) -> MutexGuard<'_, BTreeMap<String, NodeReport>> {
        self.reports.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, report: NodeReport) {
        let mut reports = self.reports();
        if reports.len() >= MAX_NODES && !reports.contains_key(&report.node_id) {
            tracing::warn!(max = MAX_NODES, "fleet: too many nodes; report ignored");
            return;
        }
        reports.insert(report.node_id.clone(), report);
    }

    fn remove(&self, node_id: &str) {
        self.reports().remove(node_id);
    }
}

impl Fleet {
    /// Now, by the daemon's clock. A status report decides nothing: with a clock before 1970 it
    /// says 0, and every node then shows as stale.
    fn now_s(&self) -> u64 {
        self.enforcer().clock().unix_secs().unwrap_or(0)
    }

    /// This node's report, made now.
    pub fn report(&self) -> NodeReport {
        let pending = self
            .enforcer()
            .mist_status()
            .map_or(0, |q| q.pending as u64);
        let applied = self
            .progress()
            .all()
            .into_iter()
            .filter(|(feed, _)| feed != super::events::FEED)
            .collect();
        NodeReport {
            node_id: self.node_id().to_owned(),
            applied,
            lag: self.lag(),
            pending_invalidations: pending,
            connected: self.connected(),
            last_seen: self.now_s(),
        }
    }

    /// `GET /v1/fleet`: this node's view of every node, its own report made now.
    pub fn view(&self) -> serde_json::Value {
        let mut nodes = self.nodes().reports().clone();
        let me = self.report();
        nodes.insert(me.node_id.clone(), me);
        let stale_after = 3 * self.config().status_interval_ms.div_ceil(1000).max(1);
        let now = self.now_s();
        let nodes: Vec<serde_json::Value> = nodes
            .into_values()
            .map(|r| {
                let stale = now.saturating_sub(r.last_seen) > stale_after;
                let mut v = serde_json::to_value(&r).unwrap_or_default();
                if let Some(map) = v.as_object_mut() {
                    map.insert("stale".into(), stale.into());
                }
                v
            })
            .collect();
        serde_json::json!({
            "node_id": self.node_id(),
            "connected": self.connected(),
            "nodes": nodes,
        })
    }

    /// The fleet's lines of `/metrics`.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP usher_fleet_connected Whether the NATS connection is up (1) or not (0).\n\
             # TYPE usher_fleet_connected gauge\nusher_fleet_connected {}",
            u8::from(self.connected())
        );
        let _ = writeln!(
            out,
            "# HELP usher_fleet_following Whether the JetStream objects are set up and followed (1) or not yet (0).\n\
             # TYPE usher_fleet_following gauge\nusher_fleet_following {}",
            u8::from(self.objects().is_some())
        );
        let _ = writeln!(
            out,
            "# HELP usher_fleet_lag_revisions Revisions the fleet's buckets hold that this node has not applied (last measured).\n\
             # TYPE usher_fleet_lag_revisions gauge\nusher_fleet_lag_revisions {}",
            self.lag()
        );
        let _ = writeln!(
            out,
            "# HELP usher_fleet_applied_revision The revision each bucket is applied up to.\n\
             # TYPE usher_fleet_applied_revision gauge"
        );
        for (feed, revision) in self.progress().all() {
            if feed != super::events::FEED {
                let _ = writeln!(
                    out,
                    "usher_fleet_applied_revision{{bucket=\"{feed}\"}} {revision}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP usher_fleet_remote_sessions Sessions under a per-viewer limit that other nodes report.\n\
             # TYPE usher_fleet_remote_sessions gauge\nusher_fleet_remote_sessions {}",
            self.enforcer().sessions().remote_total()
        );
        let nodes = self.nodes().reports().len();
        let _ = writeln!(
            out,
            "# HELP usher_fleet_nodes Nodes whose status this node has seen.\n\
             # TYPE usher_fleet_nodes gauge\nusher_fleet_nodes {nodes}"
        );
        out
    }

    /// Measures how far behind this node is: the last revision of each followed bucket minus
    /// the revision applied.
    async fn measure_lag(&self) -> anyhow::Result<u64> {
        let Some(objects) = self.objects() else {
            return Ok(0);
        };
        let mut lag = 0;
        for role in [Role::Keys, Role::Policies, Role::Revocations] {
            let name = objects.bucket_name(role);
            let mut stream = self.js().get_stream(format!("KV_{name}")).await?;
            let last = stream.info().await?.state.last_sequence;
            lag += last.saturating_sub(self.progress().applied(name));
        }
        Ok(lag)
    }
}

/// Publishes this node's report every `status_interval_ms`.
pub async fn publish(fleet: Fleet) {
    let interval = Duration::from_millis(fleet.config().status_interval_ms);
    let key = record::encode(fleet.node_id());
    loop {
        if fleet.connected() {
            match fleet.measure_lag().await {
                Ok(lag) => fleet.set_lag(lag),
                Err(e) => tracing::debug!(error = %e, "fleet: cannot measure the lag"),
            }
            if let Some(objects) = fleet.objects() {
                let report = fleet.report();
                let json = serde_json::to_vec(&report).unwrap_or_default();
                let put = objects.bucket(Role::Nodes).put(&key, json.into());
                if let Err(e) = tokio::time::timeout(interval, put)
                    .await
                    .map_err(|_| "timed out".to_owned())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                {
                    tracing::debug!(
                        error = e.as_str(),
                        "fleet: cannot publish this node's status"
                    );
                }
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Keeps [`Nodes`] up to date from the status bucket.
pub async fn watch_nodes(fleet: Fleet) {
    super::follow::watch_latest(fleet, Role::Nodes, "node status", node_status).await;
}

/// One entry of the status bucket.
fn node_status(fleet: &Fleet, entry: &Entry) {
    let Some(node) = record::decode(&entry.key) else {
        return;
    };
    match entry.operation {
        Operation::Put => match serde_json::from_slice::<NodeReport>(&entry.value) {
            Ok(report) if report.node_id == node => fleet.nodes().set(report),
            _ => tracing::debug!("fleet: unreadable node status ignored"),
        },
        Operation::Delete | Operation::Purge => fleet.nodes().remove(&node),
    }
}

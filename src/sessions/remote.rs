//! Concurrent-session limits across the fleet (SPEC §9 "with it, across the fleet", §11): the
//! sessions other nodes report for each viewer under a limit, and which viewers of this node to
//! report. Kept apart from the table so that without a fleet nothing here is used (the counts stay
//! off and empty). Bounded; aged by the time a report was received, so a node that died stops
//! counting after [`MAX_AGE`] even though nobody deleted its reports.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use tokio::time::Instant;

/// A report not renewed for this long no longer counts (nodes renew theirs every third of it).
pub const MAX_AGE: Duration = Duration::from_secs(180);
/// Most viewers whose remote counts are held, and most of this node's viewers waiting to be
/// reported; beyond it, new ones are not held (logged by the caller) .
pub const MAX_VIEWERS: usize = 100_000;
/// Most nodes counted for one viewer.
pub const MAX_NODES_PER_VIEWER: usize = 1024;

type Viewer = (String, String);

/// Other nodes' counts and this node's viewers under a limit.
#[derive(Default)]
pub struct FleetCounts {
    enabled: bool,
    /// This node's viewers admitted under a limit since their count was last taken.
    limited: HashSet<Viewer>,
    /// Per viewer: node → (sessions, when received).
    others: HashMap<Viewer, HashMap<String, (u32, Instant)>>,
}

impl FleetCounts {
    /// Starts counting (the fleet is on).
    pub fn enable(&mut self) {
        self.enabled = true;
    }

    /// Whether the fleet counts at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Notes that the viewer holds sessions under a limit here (to be reported). `false` when
    /// the bound is reached.
    pub fn mark(&mut self, tenant: &str, viewer: &str) -> bool {
        if !self.enabled {
            return true;
        }
        let key = (tenant.to_owned(), viewer.to_owned());
        if self.limited.contains(&key) {
            return true;
        }
        if self.limited.len() >= MAX_VIEWERS {
            return false;
        }
        self.limited.insert(key);
        true
    }

    /// The viewers to report, each with this node's count from `local`.
    pub fn take_limited(&self, local: impl Fn(&str, &str) -> u32) -> Vec<(Viewer, u32)> {
        self.limited
            .iter()
            .map(|(t, v)| ((t.clone(), v.clone()), local(t, v)))
            .collect()
    }

    /// Stops reporting the viewer (its zero was reported; the caller checked it holds none).
    pub fn forget(&mut self, tenant: &str, viewer: &str) {
        self.limited.remove(&(tenant.to_owned(), viewer.to_owned()));
    }

    /// Sessions the viewer holds on other nodes (reports younger than [`MAX_AGE`]).
    pub fn others(&self, tenant: &str, viewer: &str, now: Instant) -> u32 {
        let key = (tenant.to_owned(), viewer.to_owned());
        self.others.get(&key).map_or(0, |nodes| {
            nodes
                .values()
                .filter(|(_, at)| now.saturating_duration_since(*at) < MAX_AGE)
                .map(|(n, _)| *n)
                .fold(0u32, u32::saturating_add)
        })
    }

    /// Records another node's report (`0`: it holds none). `false` when a bound refused it.
    pub fn set(
        &mut self,
        tenant: &str,
        viewer: &str,
        node: &str,
        count: u32,
        now: Instant,
    ) -> bool {
        let key = (tenant.to_owned(), viewer.to_owned());
        if count == 0 {
            if let Some(nodes) = self.others.get_mut(&key) {
                nodes.remove(node);
                if nodes.is_empty() {
                    self.others.remove(&key);
                }
            }
            return true;
        }
        if !self.others.contains_key(&key) && self.others.len() >= MAX_VIEWERS {
            self.prune(now);
            if self.others.len() >= MAX_VIEWERS {
                return false;
            }
        }
        let nodes = self.others.entry(key).or_default();
        if !nodes.contains_key(node) && nodes.len() >= MAX_NODES_PER_VIEWER {
            return false;
        }
        nodes.insert(node.to_owned(), (count, now));
        true
    }

    /// Sessions other nodes report in all (for metrics).
    pub fn total(&self, now: Instant) -> u64 {
        self.others
            .values()
            .flat_map(|nodes| nodes.values())
            .filter(|(_, at)| now.saturating_duration_since(*at) < MAX_AGE)
            .map(|(n, _)| u64::from(*n))
            .sum()
    }

    /// Drops reports older than [`MAX_AGE`].
    fn prune(&mut self, now: Instant) {
        self.others.retain(|_, nodes| {
            nodes.retain(|_, (_, at)| now.saturating_duration_since(*at) < MAX_AGE);
            !nodes.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn other_nodes_counts_add_up_per_viewer_and_age_out() {
        let mut c = FleetCounts::default();
        let now = Instant::now();
        assert!(c.set("t1", "alice", "b", 2, now));
        assert!(c.set("t1", "alice", "c", 1, now));
        assert!(c.set("t1", "bob", "b", 5, now));
        assert_eq!(c.others("t1", "alice", now), 3);
        assert_eq!(c.others("t2", "alice", now), 0);
        assert_eq!(c.total(now), 8);
        c.set("t1", "alice", "c", 0, now);
        assert_eq!(c.others("t1", "alice", now), 2);
        tokio::time::advance(MAX_AGE).await;
        assert_eq!(
            c.others("t1", "alice", Instant::now()),
            0,
            "a dead node stops counting"
        );
        c.prune(Instant::now());
        assert!(c.others.is_empty());
    }

    #[test]
    fn viewers_to_report_are_bounded_off_without_a_fleet_and_forgotten_when_asked() {
        let mut c = FleetCounts::default();
        c.mark("t1", "alice");
        assert!(c.take_limited(|_, _| 1).is_empty(), "off: nothing is kept");
        c.enable();
        for i in 0..MAX_VIEWERS {
            assert!(c.mark("t1", &format!("v{i}")));
        }
        assert!(!c.mark("t1", "one-more"));
        assert!(c.mark("t1", "v0"), "already held");
        let taken = c.take_limited(|_, v| u32::from(v == "v1"));
        assert_eq!(taken.len(), MAX_VIEWERS);
        assert!(taken.contains(&(("t1".to_owned(), "v1".to_owned()), 1)));
        c.forget("t1", "v0");
        assert_eq!(c.take_limited(|_, _| 0).len(), MAX_VIEWERS - 1);
        assert!(c.mark("t1", "one-more"), "room again");
    }

    #[test]
    fn remote_viewers_and_nodes_are_bounded() {
        let mut c = FleetCounts::default();
        let now = Instant::now();
        for i in 0..MAX_NODES_PER_VIEWER {
            assert!(c.set("t1", "alice", &format!("n{i}"), 1, now));
        }
        assert!(!c.set("t1", "alice", "late", 1, now));
        assert!(
            c.set("t1", "alice", "n0", 3, now),
            "an update of a known node"
        );
    }
}

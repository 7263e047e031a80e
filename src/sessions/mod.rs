//! Live sessions (SPEC §9): MistServer asks once per session and then holds the answer, so usher
//! keeps a bounded table of the sessions it allowed and acts on them through MistServer's session
//! API — ending a session when its token expires (`cut_at_exp`), when its viewer is revoked, or
//! when its viewer opens more sessions than the policy allows (`end-oldest`).
//!
//! The parts: [`table`] (the pure table and its deadlines), [`revocations`] (viewer revocations),
//! [`timer`] (the one task that acts on deadlines), [`remote`] (other nodes' session counts, with
//! the fleet on). What a policy asks is part of the policy model (`policy::session_rules`).
//! Ending a session goes through the durable MistServer queue (`Enforcer::end_sessions`).
//!
//! The table is fed on admission, after a fresh `jwt` evaluation allowed a session, and holds the
//! key of that session's cached decision: whenever a session leaves the table its cached decision
//! leaves the decision cache with it, so a cached allow is only ever answered for a session still
//! tracked, without the cached path looking at the table. It is emptied by `USER_END`,
//! by usher ending a session, and by age: an entry without `cut_at_exp` is forgotten at the later
//! of token `exp` + leeway and admission + `cache.allow_ttl_s`, and never later than
//! [`MAX_AGE`] after admission, so a lost `USER_END` cannot hold a slot for ever.
//!
//! No lock here is held across an `.await`.

pub mod remote;
pub mod revocations;
pub mod table;
pub mod timer;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub use revocations::{Revocation, Revocations};
pub use table::Facts;

use crate::cache::{DecisionCache, DecisionKey};
use crate::jwt::LEEWAY_S;
use crate::policy::session_rules::{OnExceed, SessionRules};
use crate::reason::Reason;
use table::Table;

/// Longest an entry is kept without `USER_END` (a token with a far `exp` and no cut).
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Most deadlines acted on in one round of the timer (the rest follow at once).
pub const MAX_DUE_PER_ROUND: usize = 10_000;

/// Why usher ended a session (the `cause` label of `usher_sessions_ended_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Expiry,
    Revocation,
    Limit,
}

impl Cause {
    const ALL: [Cause; 3] = [Cause::Expiry, Cause::Revocation, Cause::Limit];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Cause::Expiry => "expiry",
            Cause::Revocation => "revocation",
            Cause::Limit => "limit",
        }
    }
}

/// The outcome of admitting an allowed session.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Admission {
    /// `Some` when the session must be refused after all.
    pub refused: Option<(Reason, &'static str)>,
    /// Sessions to end through MistServer (the oldest ones, under `end-oldest`).
    pub stop: Vec<String>,
}

/// The live-session table, revocations and counters; cheap to clone.
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

struct Inner {
    table: Mutex<Table>,
    /// Locked after `table` when both are needed.
    fleet: Mutex<remote::FleetCounts>,
    revocations: Revocations,
    wake: Notify,
    allow_ttl: Duration,
    max_entries: usize,
    ended: [AtomicU64; 3],
    forgotten_by_end: AtomicU64,
    forgotten_by_age: AtomicU64,
    untracked: AtomicU64,
    /// Bumped whenever the table changes (the fleet's reporter skips rounds without a change).
    changes: AtomicU64,
    /// The decision cache whose entries die with their sessions ([`Sessions::drop_decisions_in`]).
    decisions: OnceLock<DecisionCache>,
}

impl Sessions {
    /// A table of at most `max_entries` sessions (0 turns tracking off: policies that need it
    /// refuse their sessions), forgetting untouched entries after `allow_ttl` at the earliest.
    pub fn new(max_entries: usize, allow_ttl: Duration, revocations: Revocations) -> Sessions {
        Sessions {
            inner: Arc::new(Inner {
                table: Mutex::new(Table::new(max_entries)),
                fleet: Mutex::new(remote::FleetCounts::default()),
                revocations,
                wake: Notify::new(),
                allow_ttl,
                max_entries,
                ended: Default::default(),
                forgotten_by_end: AtomicU64::new(0),
                forgotten_by_age: AtomicU64::new(0),
                untracked: AtomicU64::new(0),
                changes: AtomicU64::new(0),
                decisions: OnceLock::new(),
            }),
        }
    }

    /// The revocations in force (shared with the evaluator).
    pub fn revocations(&self) -> &Revocations {
        &self.inner.revocations
    }

    /// From now on, a session leaving the table (ended by usher, forgotten by age, `USER_END`)
    /// takes its cached decision out of `cache`, so a cached allow never outlives its session's
    /// tracking and the cached path needs no look at the table.
    pub fn drop_decisions_in(&self, cache: DecisionCache) {
        let _ = self.inner.decisions.set(cache);
    }

    /// Admits a session a fresh `jwt` evaluation allowed, at `now_unix`, whose decision the cache
    /// keeps under `decision` (when the session leaves the table, that decision leaves the cache):
    /// checks the viewer's revocation again (a revocation applied while the evaluation ran ends or
    /// refuses it here, under the table lock, never both missed), applies the policy's cap, and
    /// tracks it. A session already tracked (a re-check after `invalidate_sessions`) is not
    /// counted again; its decision's new key replaces the old.
    pub fn admit_decision(
        &self,
        session_id: &str,
        facts: &Facts<'_>,
        rules: SessionRules,
        now_unix: f64,
        decision: DecisionKey,
    ) -> Admission {
        self.admit_with(session_id, facts, rules, now_unix, decision.to_bits())
    }

    /// [`admit_decision`](Self::admit_decision) with no cached decision tied to the session (the
    /// tests and `benches/sessions.rs` admit this way).
    pub fn admit(
        &self,
        session_id: &str,
        facts: &Facts<'_>,
        rules: SessionRules,
        now_unix: f64,
    ) -> Admission {
        self.admit_with(session_id, facts, rules, now_unix, 0)
    }

    fn admit_with(
        &self,
        session_id: &str,
        facts: &Facts<'_>,
        rules: SessionRules,
        now_unix: f64,
        decision: u128,
    ) -> Admission {
        let mut out = Admission::default();
        let mut table = self.table();
        if let Some(viewer) = facts.viewer
            && self.inner.revocations.covers(
                facts.tenant,
                viewer,
                facts.iat.map(|i| i as f64),
                now_unix as u64,
            )
        {
            out.refused = Some((Reason::ViewerRevoked, "the viewer is revoked"));
            return out;
        }
        // Tracked already: a re-check, whose decision is now cached under its new key.
        let session = table.session(session_id);
        let tracked = match decision {
            0 => table.tracks(&session),
            key => table.set_decision(&session, key),
        };
        if tracked {
            return out;
        }
        if let Some(max) = rules.max_per_viewer {
            let Some(viewer) = facts.viewer else {
                out.refused = Some((
                    Reason::ViewerSessionLimit,
                    "the token names no viewer to count sessions of",
                ));
                return out;
            };
            let local = table.viewer_sessions(facts.tenant, viewer);
            let elsewhere = {
                let mut fleet = self.fleet();
                if fleet.enabled() && !fleet.mark(facts.tenant, viewer) {
                    tracing::warn!("fleet: too many limited viewers to report; not reported");
                }
                fleet.others(facts.tenant, viewer, Instant::now())
            };
            let held = local.saturating_add(elsewhere);
            if held >= max {
                match rules.on_exceed {
                    OnExceed::DenyNew => {
                        out.refused = Some((
                            Reason::ViewerSessionLimit,
                            "the viewer holds its maximum of sessions",
                        ));
                        return out;
                    }
                    OnExceed::EndOldest => {
                        // Only this node's sessions can be ended here (README: the fleet).
                        let n = (held - max + 1).min(local) as usize;
                        out.stop = table.take_oldest(facts.tenant, viewer, n);
                        self.count_ended(Cause::Limit, out.stop.len());
                        self.drop_decisions(&mut table);
                    }
                }
            }
        }
        if table.is_full() {
            self.inner.untracked.fetch_add(1, Ordering::Relaxed);
            if rules.need_tracking() {
                out.refused = Some((
                    Reason::ViewerSessionLimit,
                    "the session table is full ([sessions] max_entries)",
                ));
            }
            return out;
        }
        let now = Instant::now();
        let until_exp = (facts.exp as f64 + LEEWAY_S - now_unix).max(0.0);
        let (due, cut) = if rules.cut_at_exp {
            (now + Duration::from_secs_f64(until_exp.min(1e9)), true)
        } else {
            let keep = Duration::from_secs_f64(until_exp.min(1e9))
                .max(self.inner.allow_ttl)
                .min(MAX_AGE);
            (now + keep, false)
        };
        let earliest = table.next_due();
        table.insert_session(&session, facts, due, cut, decision);
        // Deadlines are kept rounded (see the table), so only the set can tell whether this one
        // comes first now; a due merely earlier than the rounded earliest may share its grain.
        let moved = table.next_due() != earliest;
        drop(table);
        self.changed();
        if moved {
            self.inner.wake.notify_one();
        }
        out
    }

    /// A number that moves whenever a session is tracked or forgotten.
    pub fn changes(&self) -> u64 {
        self.inner.changes.load(Ordering::Relaxed)
    }

    fn changed(&self) {
        self.inner.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts sessions across the fleet from now on (with `[fleet]`).
    pub fn enable_fleet_counts(&self) {
        self.fleet().enable();
    }

    /// This node's counts of its viewers under a limit (all of them: the caller compares).
    pub fn limited_counts(&self) -> Vec<((String, String), u32)> {
        let table = self.table();
        self.fleet()
            .take_limited(|t, v| table.viewer_sessions(t, v))
    }

    /// Stops reporting the viewer once its zero was reported, unless it holds sessions again.
    pub fn forget_limited(&self, tenant: &str, viewer: &str) {
        let table = self.table();
        if table.viewer_sessions(tenant, viewer) == 0 {
            self.fleet().forget(tenant, viewer);
        }
    }

    /// Another node's count of the viewer's sessions (`0`: none). `false`: beyond a bound.
    pub fn set_remote(&self, tenant: &str, viewer: &str, node: &str, count: u32) -> bool {
        self.fleet()
            .set(tenant, viewer, node, count, Instant::now())
    }

    /// Sessions other nodes report (for metrics).
    pub fn remote_total(&self) -> u64 {
        self.fleet().total(Instant::now())
    }

    /// Whether the table tracks sessions at all (`[sessions] max_entries` > 0).
    pub fn tracking(&self) -> bool {
        self.inner.max_entries > 0
    }

    /// Whether session `id` is tracked (a cached allow of a session usher no longer tracks is
    /// evaluated again).
    pub fn is_tracked(&self, id: &str) -> bool {
        self.table().contains(id)
    }

    /// `USER_END`: forgets the session, freeing its viewer's slot.
    pub fn end(&self, id: &str) {
        let mut table = self.table();
        let removed = table.remove(id);
        self.drop_decisions(&mut table);
        drop(table);
        if removed {
            self.inner.forgotten_by_end.fetch_add(1, Ordering::Relaxed);
            self.changed();
        }
    }

    /// The viewer's sessions a revocation at `before` covers (not forgotten).
    pub fn viewer_sessions(&self, tenant: &str, viewer: &str, before: u64) -> Vec<String> {
        self.table().viewer_ids(tenant, viewer, before)
    }

    /// Forgets the viewer's sessions a revocation at `before` covers and returns them, to be
    /// ended.
    pub fn take_viewer(&self, tenant: &str, viewer: &str, before: u64) -> Vec<String> {
        let mut table = self.table();
        let ids = table.take_viewer(tenant, viewer, before);
        self.drop_decisions(&mut table);
        drop(table);
        self.count_ended(Cause::Revocation, ids.len());
        self.changed();
        ids
    }

    /// Sessions tracked.
    pub fn len(&self) -> usize {
        self.table().len()
    }

    /// Whether none is tracked.
    pub fn is_empty(&self) -> bool {
        self.table().is_empty()
    }

    /// Sessions per (tenant, stream), sorted.
    pub fn counts(&self) -> Vec<(String, String, u32)> {
        self.table().counts()
    }

    /// Sessions ended by usher for `cause` since start.
    pub fn ended(&self, cause: Cause) -> u64 {
        self.inner.ended[cause as usize].load(Ordering::Relaxed)
    }

    /// Appends the session metrics to a Prometheus text (no ids in any label).
    pub fn render_metrics(&self, out: &mut String) {
        let tracked = self.len();
        let _ = writeln!(
            out,
            "# HELP usher_sessions_tracked Live sessions in usher's session table.\n\
             # TYPE usher_sessions_tracked gauge\nusher_sessions_tracked {tracked}"
        );
        let _ = writeln!(
            out,
            "# HELP usher_sessions_ended_total Sessions usher ended through MistServer, by cause.\n\
             # TYPE usher_sessions_ended_total counter"
        );
        for cause in Cause::ALL {
            let n = self.ended(cause);
            let _ = writeln!(
                out,
                "usher_sessions_ended_total{{cause=\"{}\"}} {n}",
                cause.as_str()
            );
        }
        let (by_end, by_age) = (
            self.inner.forgotten_by_end.load(Ordering::Relaxed),
            self.inner.forgotten_by_age.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP usher_sessions_forgotten_total Sessions that left the table without usher ending them.\n\
             # TYPE usher_sessions_forgotten_total counter\n\
             usher_sessions_forgotten_total{{cause=\"user_end\"}} {by_end}\n\
             usher_sessions_forgotten_total{{cause=\"age\"}} {by_age}"
        );
        let untracked = self.inner.untracked.load(Ordering::Relaxed);
        let revocations = self.inner.revocations.len();
        let _ = writeln!(
            out,
            "# HELP usher_sessions_untracked_total Allowed sessions not tracked because the table was full.\n\
             # TYPE usher_sessions_untracked_total counter\nusher_sessions_untracked_total {untracked}\n\
             # HELP usher_viewer_revocations Viewer revocations in force.\n\
             # TYPE usher_viewer_revocations gauge\nusher_viewer_revocations {revocations}"
        );
    }

    /// The earliest deadline, and a future that resolves when an earlier one may have arrived.
    fn next_due(&self) -> Option<Instant> {
        self.table().next_due()
    }

    /// Takes the sessions due at `now`: the ones to cut, counted; the forgotten ones, counted.
    fn take_due(&self, now: Instant) -> Vec<String> {
        let mut table = self.table();
        let due = table.take_due(now, MAX_DUE_PER_ROUND);
        self.drop_decisions(&mut table);
        drop(table);
        if !due.cut.is_empty() || due.forgotten > 0 {
            self.changed();
        }
        self.count_ended(Cause::Expiry, due.cut.len());
        self.inner
            .forgotten_by_age
            .fetch_add(due.forgotten as u64, Ordering::Relaxed);
        due.cut
    }

    /// Takes the cached decisions of the sessions that just left the table out of the cache
    /// (under the table lock, so no admission of the same session slips in between).
    fn drop_decisions(&self, table: &mut Table) {
        let dropped = table.take_dropped();
        if let Some(cache) = self.inner.decisions.get() {
            for key in dropped {
                cache.forget(DecisionKey::from_bits(key));
            }
        }
    }

    fn count_ended(&self, cause: Cause, n: usize) {
        self.inner.ended[cause as usize].fetch_add(n as u64, Ordering::Relaxed);
    }

    fn fleet(&self) -> MutexGuard<'_, remote::FleetCounts> {
        self.inner.fleet.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // Every table update is a few map operations: a panic elsewhere leaves it consistent.
        self.inner.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests;

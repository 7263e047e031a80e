//! The running daemon's state in one cheap-to-clone handle: policies, the decision cache and the
//! evaluator. The `USER_NEW` and `USER_END` paths live here; the listeners only parse and render.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::cache::{DecisionCache, Lookup, Verdict};
use crate::config::Config;
use crate::decision::{Decision, Evaluator, Mode, OwnedRequest, Request};
use crate::invalidation::{MistNotifier, NoMist};
use crate::metrics::{Gauges, Metrics};
use crate::policy::store::{PolicyStore, Snapshot};
use crate::trigger::payload::UserEnd;

/// Shared daemon state.
#[derive(Clone)]
pub struct App {
    pub store: PolicyStore,
    pub cache: DecisionCache,
    pub evaluator: Evaluator,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    /// Where invalidated stream names go; [`NoMist`] until a MistServer queue is plugged in.
    pub mist: Arc<dyn MistNotifier>,
    /// MistServer's API, asked for its active streams when invalidating (`None`: not asked).
    pub mist_api: Option<crate::mist::MistClient>,
    /// Serializes policy and key changes (control plane, reload) so none loses another's change.
    /// The one lock held across `.await`: a change commits to disk before the snapshot swaps.
    pub writes: Arc<tokio::sync::Mutex<()>>,
}

impl App {
    /// Wires the parts for `config`, starting from `snapshot`.
    pub fn new(config: Config, snapshot: Snapshot, evaluator: Evaluator) -> App {
        let metrics = evaluator.metrics().clone();
        App {
            store: PolicyStore::new(snapshot),
            cache: DecisionCache::new(&config.cache),
            evaluator,
            config: Arc::new(config),
            metrics,
            mist: Arc::new(NoMist),
            mist_api: None,
            writes: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Answers `USER_NEW` (SPEC §3): policy, cache, single-flight evaluation, and one log line for
    /// every denial made. An evaluation runs in a `trigger` span (stream, session, then tenant,
    /// policy and reason) so that what the webhook, resolver and JWKS code log inside it names the
    /// viewer; a cache hit does nothing that logs, so it opens no span and pays nothing for one.
    pub async fn user_new(&self, request: Request<'_>) -> (Verdict, Lookup) {
        let started = Instant::now();
        let (verdict, lookup) = self
            .cache
            .get_or_evaluate(request.stream, request.session_id, request.token, || {
                // Loaded only now, after the cache read the stream's generation: a change swaps
                // the snapshot before it bumps generations, so a decision cached under the new
                // generation is always made under the new snapshot.
                let snapshot = self.store.load();
                let evaluator = self.evaluator.clone();
                let owned = OwnedRequest::from(request);
                let span = tracing::info_span!(
                    "trigger",
                    stream = request.stream,
                    session = request.session_id,
                    tenant = tracing::field::Empty,
                    policy = tracing::field::Empty,
                    reason = tracing::field::Empty,
                );
                async move {
                    let entry = snapshot.resolve(&owned.stream).clone();
                    let req = owned.as_request();
                    let d = evaluator
                        .evaluate(&snapshot, &entry, &req, Mode::Live)
                        .instrument(span.clone())
                        .await;
                    span.record("tenant", d.tenant.as_str());
                    span.record("policy", d.policy_type);
                    span.record("reason", d.reason.as_str());
                    if !d.allowed {
                        log_denial(&req, &d);
                    }
                    Verdict {
                        allowed: d.allowed,
                        reason: d.reason,
                        policy: d.policy_type,
                    }
                }
            })
            .await;
        self.metrics.decision(
            verdict.policy,
            verdict.reason,
            lookup == Lookup::Hit,
            started.elapsed(),
        );
        tracing::debug!(
            stream = request.stream,
            session = request.session_id,
            lookup = lookup.as_str(),
            allowed = verdict.allowed,
            reason = verdict.reason.as_str(),
            "decided"
        );
        if !verdict.allowed && lookup != Lookup::Evaluated {
            // The same denial as the one logged when it was made (same session, same token):
            // counted in metrics, logged at debug only, so replaying one refused session cannot
            // turn every request into a write to the log.
            tracing::debug!(
                stream = request.stream,
                session = request.session_id,
                viewer_ip = request.viewer_ip,
                connector = request.connector,
                reason = verdict.reason.as_str(),
                cached = true,
                "denied"
            );
        }
        (verdict, lookup)
    }

    /// Handles `USER_END`: drops the session's cached decisions and logs its figures.
    pub fn user_end(&self, end: &UserEnd<'_>) {
        self.metrics.user_end();
        for stream in end.stream_names() {
            self.cache.remove(stream, end.session_id, end.token);
        }
        tracing::info!(
            session = end.session_id,
            streams = end.streams,
            connectors = end.connectors,
            duration_s = end.duration_s,
            bytes_up = end.bytes_up,
            bytes_down = end.bytes_down,
            "session ended"
        );
    }

    /// A dry run (`/v1/test`): the same evaluator, no cache, no MistServer.
    pub async fn dry_run(&self, request: Request<'_>, fire_webhook: bool) -> Decision {
        let snapshot = self.store.load();
        let entry = snapshot.resolve(request.stream).clone();
        self.evaluator
            .evaluate(&snapshot, &entry, &request, Mode::DryRun { fire_webhook })
            .await
    }
}

impl App {
    /// The `/metrics` text: counters plus gauges read now.
    pub fn render_metrics(&self) -> String {
        self.cache.run_pending_tasks();
        let mut gauges = Gauges {
            cache_entries: self.cache.entry_count(),
            webhooks_in_flight: self.evaluator.webhooks().in_flight() as u64,
            ..Gauges::default()
        };
        if let Some(j) = self.evaluator.jwks() {
            let st = j.stats();
            gauges.jwks_fetches = vec![
                ("ok", st.ok),
                ("not_modified", st.not_modified),
                ("error", st.error),
                ("rate_limited", st.rate_limited),
                ("joined", st.joined),
            ];
        }
        if let Some(q) = self.mist.status() {
            gauges.mist_calls_ok = q.calls_ok;
            gauges.mist_api_errors = q.api_errors;
            gauges.mist_pending_streams = q.pending as u64;
        }
        self.metrics.render(&gauges)
    }
}

fn log_denial(req: &Request<'_>, d: &Decision) {
    tracing::info!(
        stream = req.stream,
        session = req.session_id,
        viewer_ip = req.viewer_ip,
        connector = req.connector,
        policy = d.policy_type,
        tenant = d.tenant.as_str(),
        reason = d.reason.as_str(),
        kid = d.kid.as_deref().unwrap_or(""),
        detail = d.detail.as_str(),
        "denied"
    );
}

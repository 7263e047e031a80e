//! The running daemon's state in one cheap-to-clone handle: policies, the decision cache and the
//! evaluator. The `USER_NEW` and `USER_END` paths live here; the listeners only parse and render.

use std::sync::{Arc, OnceLock};
use tokio::time::Instant;
use tracing::Instrument;

use crate::cache::{DecisionCache, DecisionKey, Evaluation, Lookup, Verdict};
use crate::config::Config;
use crate::decision::{Decision, Evaluator, Mode, OwnedRequest, Request};
use crate::enforce::Enforcer;
use crate::fleet::Fleet;
use crate::metrics::{Gauges, Metrics};
use crate::policy::model::{Policy, PolicyEntry};
use crate::policy::store::Snapshot;
use crate::reason::DecidedBy;
use crate::sessions::Facts;

/// The `trigger` span of one evaluation at `$level`: stream and session now, tenant, policy and
/// reason recorded by [`conclude`]. A macro because `tracing`'s span level must be a constant.
macro_rules! trigger_span {
    ($level:expr, $request:expr) => {
        tracing::span!(
            $level,
            "trigger",
            stream = $request.stream,
            session = $request.session_id,
            tenant = tracing::field::Empty,
            policy = tracing::field::Empty,
            reason = tracing::field::Empty,
        )
    };
}

/// Shared daemon state: the read side (cache, evaluator) and the one owner of what usher
/// enforces ([`Enforcer`]), which every change goes through.
#[derive(Clone)]
pub struct App {
    enforcer: Enforcer,
    cache: DecisionCache,
    evaluator: Evaluator,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    /// This node's membership of the fleet (SPEC §11); `None` without `[fleet]`.
    fleet: Option<Fleet>,
}

impl App {
    /// Wires the parts. `cache` must be the one `enforcer` drops decisions from.
    pub fn new(
        config: Arc<Config>,
        evaluator: Evaluator,
        cache: DecisionCache,
        enforcer: Enforcer,
    ) -> App {
        let metrics = evaluator.metrics().clone();
        App {
            enforcer,
            cache,
            evaluator,
            config,
            metrics,
            fleet: None,
        }
    }

    /// The same daemon as a member of `fleet`.
    pub fn with_fleet(mut self, fleet: Fleet) -> App {
        self.fleet = Some(fleet);
        self
    }

    /// The fleet this node follows, if any.
    pub fn fleet(&self) -> Option<&Fleet> {
        self.fleet.as_ref()
    }

    /// The one way to change what usher enforces.
    pub fn enforcer(&self) -> &Enforcer {
        &self.enforcer
    }

    /// The policy snapshot decisions read now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.enforcer.snapshot()
    }

    /// The evaluator (its webhook caller and JWKS keys included).
    pub fn evaluator(&self) -> &Evaluator {
        &self.evaluator
    }

    /// The config usher started with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Cached decisions now.
    pub fn cache_entries(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// The counters.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Answers `USER_NEW` (SPEC §3): policy, cache, single-flight evaluation, and one log line for
    /// every denial made. An evaluation runs in a `trigger` span (stream, session, then tenant,
    /// policy and reason) so that what the webhook, resolver and JWKS code log inside it names the
    /// viewer: at `info` when it waits for one of them, at `debug` when it is decided at once; a
    /// cache hit does nothing that logs, so it opens no span and pays nothing for one.
    pub async fn user_new(&self, request: Request<'_>) -> (Verdict, Lookup) {
        // The one clock reading of a cached answer: its expiry check and its latency both use it.
        let started = Instant::now();
        let (verdict, lookup) = self.decide(&request, started).await;
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

    /// The cache, or one evaluation followed by the session's admission (SPEC §9). A decision
    /// that needs no I/O (`jwt`, `public`, `deny`) is made right here; one that waits for a
    /// webhook or a JWKS refetch runs single-flight in a task of its own.
    ///
    /// A `jwt` allow is cached under a key the session table keeps: when usher ends the session
    /// or forgets it, the cached allow goes too (SPEC §9), so a cached answer needs no look at
    /// the table. Should the session have left the table between its admission and the caching
    /// of its answer, the answer is taken back out here; a session the table could not hold
    /// (full) is likewise decided again every time, so caps and cuts apply to it.
    ///
    /// The request is borrowed down the layers: each `async fn` keeps its arguments in its
    /// future, and a small future is cheap to move (hyper moves it before polling it).
    async fn decide(&self, request: &Request<'_>, now: Instant) -> (Verdict, Lookup) {
        let key = OnceLock::new();
        let (verdict, lookup) = self.evaluate(request, now, &key).await;
        if lookup != Lookup::Hit && verdict.allowed && verdict.policy == DecidedBy::Jwt {
            let sessions = self.enforcer.sessions();
            if sessions.tracking()
                && !sessions.is_tracked(request.session_id)
                && let Some(key) = key.get()
            {
                self.cache.forget(*key);
            }
        }
        (verdict, lookup)
    }

    /// The cache, or one evaluation; `key` receives the key the decision is cached under.
    async fn evaluate(
        &self,
        request: &Request<'_>,
        now: Instant,
        key: &OnceLock<DecisionKey>,
    ) -> (Verdict, Lookup) {
        let (stream, session, token) = (request.stream, request.session_id, request.token);
        self.cache
            .get_or_evaluate_keyed(stream, session, token, now, |k, verified| {
                let _ = key.set(k);
                // Loaded only now, after the cache read the stream's generation: a change swaps
                // the snapshot before it bumps generations, so a decision cached under the new
                // generation is always made under the new snapshot.
                let snapshot = self.enforcer.snapshot();
                let entry = snapshot.resolve(request.stream);
                // Checked here, with nothing to wait for, an evaluation logs only its denial (whose
                // line names the viewer itself): its span is `debug`, so at the shipped `info` it
                // costs nothing (opening one cost 3 % of a fresh answer's CPU). One that waits for
                // a webhook or a JWKS fetch logs from their code, and opens it at `info`.
                let quick = trigger_span!(tracing::Level::DEBUG, request);
                let decided = quick.in_scope(|| {
                    self.evaluator
                        .decide_now(&snapshot, entry, request, Mode::Live, verified)
                });
                if let Some(d) = decided {
                    let signed_by = d.signed_by;
                    let verdict = conclude(&self.enforcer, entry, request, d, &quick, k);
                    return Evaluation::Now(verdict, signed_by);
                }
                let span = trigger_span!(tracing::Level::INFO, request);
                let entry = entry.clone();
                let evaluator = self.evaluator.clone();
                let enforcer = self.enforcer.clone();
                let owned = OwnedRequest::from(*request);
                // Boxed: the webhook's future is kilobytes, and every request's future would
                // otherwise be as large and copied as often, cached answers included.
                Evaluation::Later(Box::pin(async move {
                    let req = owned.as_request();
                    let d = evaluator
                        .evaluate(&snapshot, &entry, &req, Mode::Live)
                        .instrument(span.clone())
                        .await;
                    conclude(&enforcer, &entry, &req, d, &span, k)
                }))
            })
            .await
    }

    /// Handles `USER_END`: drops the session's cached decisions on each of its streams.
    pub fn end_session<'a>(
        &self,
        session_id: &str,
        token: &str,
        streams: impl IntoIterator<Item = &'a str>,
    ) {
        self.metrics.user_end();
        self.enforcer.sessions().end(session_id);
        for stream in streams {
            self.cache.remove(stream, session_id, token);
        }
    }

    /// A dry run (`/v1/test`): the same evaluator, no cache, no MistServer.
    pub async fn dry_run(&self, request: Request<'_>, fire_webhook: bool) -> Decision {
        let snapshot = self.enforcer.snapshot();
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
        if let Some(q) = self.enforcer.mist_status() {
            gauges.mist_calls_ok = q.calls_ok;
            gauges.mist_api_errors = q.api_errors;
            gauges.mist_pending_streams = q.pending as u64;
            gauges.mist_pending_oldest_s = q.oldest_wait.map_or(0, |d| d.as_secs());
        }
        if let Some(j) = self.evaluator.jwks() {
            gauges.jwks_tenants_failing = j.failing_tenants() as u64;
        }
        let mut out = self.metrics.render(&gauges);
        self.enforcer.sessions().render_metrics(&mut out);
        if let Some(fleet) = &self.fleet {
            out.push_str(&fleet.render_metrics());
        }
        out
    }
}

/// An evaluation's end: the session's admission, the span's fields, the denial's log line.
fn conclude(
    enforcer: &Enforcer,
    entry: &PolicyEntry,
    req: &Request<'_>,
    mut d: Decision,
    span: &tracing::Span,
    key: DecisionKey,
) -> Verdict {
    let _entered = span.enter();
    admit(enforcer, entry, req, &mut d, key);
    span.record("tenant", d.tenant.as_str());
    span.record("policy", d.policy_type.as_str());
    span.record("reason", d.reason.as_str());
    if !d.allowed {
        log_denial(req, &d);
    }
    Verdict {
        allowed: d.allowed,
        reason: d.reason,
        policy: d.policy_type,
    }
}

/// Admits a session a fresh `jwt` evaluation allowed into the live-session table (SPEC §9): the
/// decision turns into a denial when the viewer is revoked or at its cap under `deny-new`; under
/// `end-oldest` the oldest sessions are ended through MistServer in a task of their own, so
/// this answer does not wait for the disk.
fn admit(
    enforcer: &Enforcer,
    entry: &PolicyEntry,
    req: &Request<'_>,
    d: &mut Decision,
    key: DecisionKey,
) {
    let (Policy::Jwt(rules), true, Some((exp, iat))) = (&entry.policy, d.allowed, d.token_times)
    else {
        return;
    };
    let facts = Facts {
        stream: req.stream,
        tenant: &d.tenant,
        kid: d.kid.as_deref(),
        viewer: d.viewer.as_deref(),
        exp,
        iat,
    };
    let Ok(now) = enforcer.clock().unix_s() else {
        d.allowed = false;
        d.reason = crate::reason::Reason::InternalError;
        d.detail = "the system clock reads before 1970".into();
        return;
    };
    let admission =
        enforcer
            .sessions()
            .admit_decision(req.session_id, &facts, rules.sessions, now, key);
    if let Some((reason, detail)) = admission.refused {
        d.allowed = false;
        d.reason = reason;
        d.detail = detail.into();
    }
    if !admission.stop.is_empty() {
        let enforcer = enforcer.clone();
        tokio::spawn(async move {
            enforcer.end_sessions(admission.stop).await;
        });
    }
}

fn log_denial(req: &Request<'_>, d: &Decision) {
    tracing::info!(
        stream = req.stream,
        session = req.session_id,
        viewer_ip = req.viewer_ip,
        connector = req.connector,
        policy = d.policy_type.as_str(),
        tenant = d.tenant.as_str(),
        reason = d.reason.as_str(),
        kid = d.kid.as_deref().unwrap_or(""),
        detail = d.detail.as_str(),
        "denied"
    );
}

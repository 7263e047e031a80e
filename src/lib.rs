//! usher decides who may watch a stream. MistServer's blocking `USER_NEW` trigger asks; usher
//! checks the viewer's JWT or the customer's webhook and answers `true` or `false`.
//!
//! The parts, in the order a request flows through them:
//! - [`listener`]: the HTTP accept loop with bounded connections and a bounded drain.
//! - [`trigger`]: MistServer's trigger bodies (pure parsing) and the `/trigger` endpoint.
//! - [`app`]: the daemon's shared state and the `USER_NEW` / `USER_END` paths.
//! - [`cache`]: per-session decisions, single-flight, invalidation by stream.
//! - [`mist`]: MistServer's API: `invalidate_sessions` and the queue that retries it.
//! - [`decision`]: the one evaluator behind `USER_NEW`, `/v1/test` and `usher verify`.
//! - [`policy`]: objects, tenants, policies and keys, and the store swapped atomically.
//! - [`publish`]: who may push a stream (`STREAM_PUSH`, `PUSH_REWRITE`): rules, stream keys,
//!   the read/publish permission claim.
//! - [`jwt`], [`keys`]: the token check; key material, keygen and signing.
//! - [`jwks`]: tenant keys fetched from JWKS URLs, refreshed and refetched on unknown kids.
//! - [`webhook`], [`net`]: the customer's webhook, called only through the SSRF guard.
//! - [`enforce`]: the one owner of what usher enforces: every change (control API, SIGHUP, JWKS)
//!   is applied there — committed with the names it invalidates, swapped in, dropped from the
//!   cache, then sent to MistServer.
//! - [`fleet`]: with `[fleet]`, every node follows one NATS JetStream: writes go there, every
//!   node applies them through [`enforce`], invalidations reach every node's MistServer.
//! - [`control`]: the authenticated control API (keys, policies, invalidation, dry runs).
//! - [`state`]: what the control plane sets and the invalidations MistServer still owes us,
//!   kept in an embedded database.
//! - [`spec`]: how a key and a policy are written down (config file, API, database): one shape each.
//! - [`reload`]: SIGHUP and JWKS refreshes, as thin callers of [`enforce`].
//! - [`sessions`]: live sessions (SPEC §9): the table of allowed sessions, cut at token expiry,
//!   viewer revocations, sessions per viewer.
//! - [`reason`]: the stable reason codes, and what decided an answer.
//! - [`protocol`]: MistServer's trigger names, parsed once.
//! - [`clock`]: the one wall clock, and its one rule for a clock before 1970.
//! - [`backoff`]: the one retry delay (capped exponential with jitter) of every retrying loop.
//! - `slots`, `chunks`: the 8-byte hash-table entry that indexes a slab, and the slab's storage
//!   that grows without moving (cache, memo, session table).
//! - [`metrics`]: Prometheus counters, cheap on the hot path.
//! - [`recent`], [`status`]: the last minute of counters and the `usher status` report.
//! - [`config`], [`setup`], [`cli`], [`serve`], [`telemetry`], [`shutdown`], [`systemd`]: running it.
#![forbid(unsafe_code)]

pub mod app;
pub mod backoff;
pub mod cache;
mod chunks;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod decision;
pub mod enforce;
pub mod fleet;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod listener;
pub mod metrics;
pub mod mist;
pub mod net;
pub mod policy;
pub mod protocol;
pub mod publish;
pub mod reason;
pub mod recent;
pub mod reload;
pub mod serve;
pub mod sessions;
pub mod setup;
pub mod shutdown;
mod slots;
pub mod spec;
pub mod state;
pub mod status;
pub mod systemd;
pub mod telemetry;
pub mod trigger;
pub mod webhook;

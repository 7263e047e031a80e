//! usher decides who may watch a stream. MistServer's blocking `USER_NEW` trigger asks; usher
//! checks the viewer's JWT or the customer's webhook and answers `true` or `false`.
//!
//! The parts, in the order a request flows through them:
//! - [`trigger`]: MistServer's trigger bodies (pure parsing) and the HTTP listener.
//! - [`decision`]: the one evaluator behind `USER_NEW`, `/v1/test` and `usher verify`.
//! - [`cache`]: per-session decisions, single-flight, invalidation by stream.
//! - [`policy`]: objects, tenants, policies and keys, and the store swapped atomically.
//! - [`jwt`], [`keys`]: the token check; key material, keygen and signing.
//! - [`reason`]: the stable reason codes.
//! - [`config`]: the config file.
#![forbid(unsafe_code)]

pub mod config;
pub mod jwt;
pub mod keys;
pub mod net;
pub mod policy;
pub mod reason;
pub mod webhook;

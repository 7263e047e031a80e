//! Helpers shared by the integration tests: the real daemon, MistServer-shaped requests, and
//! test servers on loopback only (a scriptable HTTPS webhook endpoint, a tiny DNS server).
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

pub mod api;
pub mod cli;
pub mod daemon;
pub mod dns;
pub mod https;
pub mod jwks_server;
pub mod mist;
pub mod mist_api;
pub mod nats;

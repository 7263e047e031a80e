//! Helpers shared by the integration tests: the real daemon, MistServer-shaped requests, and
//! test servers on loopback only (a scriptable HTTPS webhook endpoint, a tiny DNS server).
#![allow(dead_code)]

pub mod api;
pub mod daemon;
pub mod dns;
pub mod https;
pub mod jwks_server;
pub mod mist;
pub mod mist_api;

//! Test servers shared by the integration tests: a scriptable HTTPS webhook endpoint and a tiny
//! DNS server, both on loopback only.
#![allow(dead_code)]

pub mod dns;
pub mod https;

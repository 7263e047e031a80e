//! Outbound networking for webhooks (SPEC §4): address classification, the SSRF guard, the
//! filtering resolver and the one outbound HTTP client.

pub mod addr;
pub mod client;
pub mod guard;
pub mod resolver;

//! Helpers shared by the integration tests: the real daemon, and MistServer-shaped requests.
#![allow(dead_code)]

pub mod daemon;
pub mod mist;
pub mod mist_api;

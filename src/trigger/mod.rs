//! MistServer's side of usher: trigger bodies ([`payload`]) and the `/trigger` endpoint ([`endpoint`]).

pub mod endpoint;
pub mod payload;

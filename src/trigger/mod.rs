//! MistServer's side of usher: trigger bodies ([`payload`], [`push`]) and the `/trigger` endpoint
//! ([`endpoint`]; the publisher triggers in [`publish`]).

pub mod endpoint;
pub mod payload;
pub mod publish;
pub mod push;

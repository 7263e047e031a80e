//! Talking to MistServer's API: the client for `invalidate_sessions` with the challenge login, and
//! the queue that retries invalidations until MistServer acknowledges them (SPEC §5).
//!
//! - [`client`]: one API call, [`MistClient::invalidate_sessions`].
//! - [`queue`]: [`InvalidationQueue`], the merging, retrying worker and its tickets.
//! - [`setup`]: `usher mist-setup`, registering usher's triggers.
//! - `book`: the queue's pure bookkeeping (pending names, tickets).
//! - [`command`]: the queue's keys: stream names to invalidate, sessions to end (`stop_sessid`).

mod book;
pub mod client;
pub mod command;
pub mod queue;
pub mod setup;

pub use book::{CHUNK, MAX_PENDING, Ticket};
pub use client::{MistClient, MistError};
pub use queue::{AckSink, BoxFuture, InvalidationQueue, NoSink, QueueStatus};

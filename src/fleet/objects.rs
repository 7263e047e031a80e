//! The JetStream objects of one fleet, created by whichever node starts first and checked by the
//! others: a key-value bucket each for keys, policies, viewer revocations, node status and
//! session counts (each with history), and a stream for invalidations and session stops. Bounded in size and age.

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};

use super::record::{MAX_VALUE_BYTES, Names, Role};

/// Revisions each bucket keeps per key.
const HISTORY: i64 = 5;
/// Largest size of a data bucket; writes beyond it are refused (key-value buckets discard new).
const MAX_BUCKET_BYTES: i64 = 256 * 1024 * 1024;
/// A node that has not reported for this long drops out of the status bucket.
const NODE_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long the events stream keeps a message for a node that is away.
const EVENTS_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most messages the events stream keeps.
const EVENTS_MAX_MSGS: i64 = 1_000_000;

/// Handles on the fleet's buckets and stream.
#[derive(Clone)]
pub struct Objects {
    buckets: [kv::Store; Role::ALL.len()],
    names: [String; Role::ALL.len()],
    events: stream::Stream,
}

impl Objects {
    /// The bucket of `role`.
    pub fn bucket(&self, role: Role) -> &kv::Store {
        &self.buckets[index(role)]
    }

    /// The bucket's name (the feed name revisions are recorded under).
    pub fn bucket_name(&self, role: Role) -> &str {
        &self.names[index(role)]
    }

    /// The events stream.
    pub fn events(&self) -> &stream::Stream {
        &self.events
    }
}

fn index(role: Role) -> usize {
    match role {
        Role::Keys => 0,
        Role::Policies => 1,
        Role::Revocations => 2,
        Role::Nodes => 3,
        Role::Sessions => 4,
    }
}

/// Opens every object, creating those that do not exist yet.
pub async fn ensure(
    js: &jetstream::Context,
    names: &Names,
    replicas: usize,
) -> anyhow::Result<Objects> {
    let mut buckets = Vec::with_capacity(Role::ALL.len());
    for role in Role::ALL {
        buckets.push(bucket(js, names, role, replicas).await?);
    }
    let events = js
        .get_or_create_stream(stream::Config {
            name: names.events_stream(),
            subjects: vec![names.events_subjects()],
            max_age: EVENTS_MAX_AGE,
            max_messages: EVENTS_MAX_MSGS,
            max_message_size: MAX_VALUE_BYTES as i32,
            num_replicas: replicas,
            discard: stream::DiscardPolicy::Old,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("stream {}: {e}", names.events_stream()))?;
    let buckets: [kv::Store; Role::ALL.len()] = buckets
        .try_into()
        .map_err(|_| anyhow::anyhow!("bucket count"))?;
    Ok(Objects {
        buckets,
        names: Role::ALL.map(|r| names.bucket(r)),
        events,
    })
}

/// Opens one bucket, or creates it when it does not exist.
async fn bucket(
    js: &jetstream::Context,
    names: &Names,
    role: Role,
    replicas: usize,
) -> anyhow::Result<kv::Store> {
    let name = names.bucket(role);
    if let Ok(store) = js.get_key_value(&name).await {
        return Ok(store);
    }
    let (max_age, max_bytes) = match role {
        Role::Nodes => (NODE_MAX_AGE, 16 * 1024 * 1024),
        // Renewed by each node every third of it: a dead node's counts leave.
        Role::Sessions => (crate::sessions::remote::MAX_AGE, 64 * 1024 * 1024),
        _ => (Duration::ZERO, MAX_BUCKET_BYTES),
    };
    // The stream a key-value bucket is, made directly: `create_key_value` first asks for the
    // account's info, which Debian's nats-server 2.9 answers in a shape this client refuses.
    let created = js
        .create_stream(stream::Config {
            name: format!("KV_{name}"),
            description: Some(format!("usher fleet: {name}")),
            subjects: vec![format!("$KV.{name}.>")],
            max_messages_per_subject: HISTORY,
            max_bytes,
            max_age,
            max_message_size: MAX_VALUE_BYTES as i32,
            allow_rollup: true,
            deny_delete: true,
            deny_purge: false,
            allow_direct: true,
            num_replicas: replicas,
            discard: stream::DiscardPolicy::New,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await;
    // Created now, or by another node in the meantime.
    js.get_key_value(&name).await.map_err(|got| match created {
        Err(e) => anyhow::anyhow!("bucket {name}: {e}"),
        Ok(_) => anyhow::anyhow!("bucket {name}: {got}"),
    })
}

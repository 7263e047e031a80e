//! Invalidations across the fleet: `POST /v1/invalidate` on any node publishes an event to the
//! fleet's stream; every node's durable consumer applies it through the one change path at once
//! (the cached decisions drop) and acknowledges the message only after its own MistServer
//! acknowledged the invalidation, so a node that was down or partitioned receives what it missed.
//! A message not acknowledged within [`ACK_WAIT`] is delivered again (invalidations are
//! idempotent). Session stops (SPEC §9) are meant to travel the same way on their own subject.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use futures_util::StreamExt as _;

use super::Fleet;
use super::record::Event;
use crate::enforce::{Applied, Target};

/// How long the server waits for a node's acknowledgement before delivering again.
const ACK_WAIT: Duration = Duration::from_secs(60);
/// How long a node waits for its MistServer before letting the message be delivered again.
const MIST_WAIT: Duration = Duration::from_secs(50);
/// Messages delivered to one node and not yet acknowledged, at most.
const MAX_ACK_PENDING: i64 = 1024;
/// The feed name results are recorded under in [`super::progress::Progress`].
pub const FEED: &str = "events";

/// Consumes this node's durable consumer for as long as the node runs.
pub async fn consume(fleet: Fleet) {
    let mut attempt = 0;
    loop {
        if let Err(e) = consume_once(&fleet).await {
            tracing::warn!(error = %e, "fleet: event consumer interrupted; resuming");
        }
        tokio::time::sleep(super::RETRY.delay(attempt)).await;
        attempt = attempt.saturating_add(1);
    }
}

async fn consume_once(fleet: &Fleet) -> anyhow::Result<()> {
    let objects = fleet
        .objects()
        .ok_or_else(|| anyhow::anyhow!("not set up"))?;
    fleet.recheck().await?;
    let name = fleet.names().consumer(fleet.node_id());
    let consumer = objects
        .events()
        .get_or_create_consumer(
            &name,
            pull::Config {
                durable_name: Some(name.clone()),
                description: Some(format!("usher node {}", fleet.node_id())),
                // A new node starts with what is sent from now on; an existing durable resumes.
                deliver_policy: DeliverPolicy::New,
                ack_policy: AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: MAX_ACK_PENDING,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("consumer {name}: {e}"))?;
    let mut messages = consumer.messages().await?;
    while let Some(message) = messages.next().await {
        let message = message?;
        let seq = message.info().map(|i| i.stream_sequence).unwrap_or(0);
        let change = serde_json::from_slice::<Event>(&message.payload)
            .ok()
            .and_then(Event::change);
        let Some(change) = change else {
            tracing::warn!(seq, "fleet: malformed event skipped");
            let _ = message.ack().await;
            continue;
        };
        let applied = fleet.enforcer().apply(change).await?;
        let ticket = applied.ticket;
        fleet.progress().record(FEED, seq, Some(applied));
        let Some(ticket) = ticket else {
            let _ = message.ack().await;
            continue;
        };
        let enforcer = fleet.enforcer().clone();
        tokio::spawn(async move {
            if enforcer.mist_acknowledged(ticket, MIST_WAIT).await {
                if let Err(e) = message.ack().await {
                    tracing::warn!(error = %e, seq, "fleet: cannot acknowledge an event");
                }
            } else {
                tracing::warn!(
                    seq,
                    "fleet: MistServer has not acknowledged; the event comes again"
                );
            }
        });
    }
    Ok(())
}

/// Publishes an invalidation for the fleet; returns its stream sequence once JetStream stored it.
pub async fn publish(fleet: &Fleet, target: &Target) -> Result<u64, String> {
    let event = Event::invalidate(target, fleet.node_id());
    let payload = serde_json::to_vec(&event).unwrap_or_default();
    let ack = fleet
        .js()
        .publish(fleet.names().invalidate_subject(), payload.into())
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    Ok(ack.sequence)
}

/// What this node's own application of event `seq` did, when it comes within `timeout`.
pub async fn local_result(fleet: &Fleet, seq: u64, timeout: Duration) -> Option<Applied> {
    fleet.progress().wait(FEED, seq, timeout).await.1
}

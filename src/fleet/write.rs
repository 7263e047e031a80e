//! Control-plane writes with the fleet on (SPEC §11): a key or policy record goes to its bucket
//! and the call answers 2xx only once JetStream stored it. Every write is conditional on a
//! revision — the one the client read (`If-Match`), or else the one this node's copy holds — so
//! a conflicting write is refused (409), never silently overwritten. NATS away ⇒ 503.

use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::Operation;
use bytes::Bytes;

use super::Fleet;
use super::record::{self, Role};
use crate::enforce::Applied;

/// How long a writer waits for its own node to apply what it wrote, beyond the write itself.
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// What a stored write did.
pub struct Written {
    /// The record's revision in its bucket.
    pub revision: u64,
    /// Whether this node applied it before answering.
    pub applied_here: bool,
    /// What applying it here did, when known.
    pub applied: Option<Applied>,
}

/// Why a write was not stored; the control API answers 409 or 503 with the message.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The write names a revision that is no longer the latest.
    #[error("{0}")]
    Conflict(String),
    /// JetStream did not confirm the write.
    #[error("{0}")]
    Unavailable(String),
}

fn unavailable(detail: &str) -> WriteError {
    WriteError::Unavailable(format!(
        "the fleet's JetStream did not confirm the write ({detail}); nothing is known to be \
         stored: re-read and retry"
    ))
}

impl Fleet {
    /// Writes `value` (`None`: a delete marker) under `name` in `role`'s bucket, conditional on
    /// `expected` (the client's `If-Match`; `None`: the revision this node's copy holds), then
    /// waits (bounded) for this node to apply it.
    pub async fn write(
        &self,
        role: Role,
        name: &str,
        value: Option<Bytes>,
        expected: Option<u64>,
    ) -> Result<Written, WriteError> {
        self.write_key(role, &record::encode(name), name, value, expected)
            .await
    }

    /// [`Fleet::write`] under the bucket key `key` (`name`: what it stands for, for messages).
    pub async fn write_key(
        &self,
        role: Role,
        key: &str,
        name: &str,
        value: Option<Bytes>,
        expected: Option<u64>,
    ) -> Result<Written, WriteError> {
        if !self.connected() {
            return Err(unavailable("NATS is not connected"));
        }
        let Some(objects) = self.objects() else {
            return Err(unavailable("the JetStream objects are not set up yet"));
        };
        let bucket = objects.bucket_name(role).to_owned();
        let timeout = Duration::from_millis(self.config().write_timeout_ms);
        let stored = tokio::time::timeout(
            timeout,
            self.store(role, &bucket, key, name, value, expected),
        )
        .await
        .map_err(|_| unavailable("timed out"))??;
        let (applied_here, applied) = self.progress().wait(&bucket, stored, APPLY_WAIT).await;
        Ok(Written {
            revision: stored,
            applied_here,
            applied,
        })
    }

    async fn store(
        &self,
        role: Role,
        bucket: &str,
        key: &str,
        name: &str,
        value: Option<Bytes>,
        expected: Option<u64>,
    ) -> Result<u64, WriteError> {
        let latest = self.latest(role, key).await?;
        let expected = match expected {
            Some(0) => match latest {
                // A deleted record may be created again.
                Some((revision, true)) => revision,
                _ => 0,
            },
            Some(revision) => revision,
            None => {
                let (revision, _) = latest.unwrap_or((0, true));
                if revision > self.progress().applied(bucket) {
                    return Err(WriteError::Conflict(format!(
                        "{name:?} has a newer revision ({revision}) than this node has applied; \
                         re-read it and write again with If-Match"
                    )));
                }
                revision
            }
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_EXPECTED_LAST_SUBJECT_SEQUENCE,
            expected.to_string().as_str(),
        );
        if value.is_none() {
            headers.insert("KV-Operation", "DEL");
        }
        let subject = format!("$KV.{bucket}.{key}");
        let ack = self
            .js()
            .publish_with_headers(subject, headers, value.unwrap_or_default())
            .await
            .map_err(|e| unavailable(&e.kind().to_string()))?
            .await;
        match ack {
            Ok(ack) => Ok(ack.sequence),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(WriteError::Conflict(
                format!("{name:?} is no longer at revision {expected}; re-read it and write again"),
            )),
            Err(e) => Err(unavailable(&e.kind().to_string())),
        }
    }

    /// The bucket's latest revision of `name` when this node has applied it (its copy shows that
    /// record); `None` when NATS is away or this node is behind.
    pub async fn revision_here(&self, role: Role, name: &str) -> Option<u64> {
        if !self.connected() {
            return None;
        }
        let bucket = self.objects()?.bucket_name(role).to_owned();
        let key = record::encode(name);
        let wait = Duration::from_millis(self.config().write_timeout_ms);
        let (revision, _) = tokio::time::timeout(wait, self.latest(role, &key))
            .await
            .ok()?
            .ok()??;
        (revision <= self.progress().applied(&bucket)).then_some(revision)
    }

    /// The latest record under `key` (revision and value; `None`: never written or deleted),
    /// bounded by the write timeout.
    pub async fn latest_record(
        &self,
        role: Role,
        key: &str,
    ) -> Result<Option<(u64, Bytes)>, WriteError> {
        let objects = self
            .objects()
            .ok_or_else(|| unavailable("the JetStream objects are not set up yet"))?;
        let wait = Duration::from_millis(self.config().write_timeout_ms);
        match tokio::time::timeout(wait, objects.bucket(role).entry(key)).await {
            Ok(Ok(Some(entry))) if entry.operation == Operation::Put => {
                Ok(Some((entry.revision, entry.value)))
            }
            Ok(Ok(_)) => Ok(None),
            Ok(Err(e)) => Err(unavailable(&e.kind().to_string())),
            Err(_) => Err(unavailable("timed out")),
        }
    }

    /// The latest revision of `key` and whether it is a delete marker; `None`: never written.
    async fn latest(&self, role: Role, key: &str) -> Result<Option<(u64, bool)>, WriteError> {
        let objects = self
            .objects()
            .ok_or_else(|| unavailable("the JetStream objects are not set up yet"))?;
        match objects.bucket(role).entry(key).await {
            Ok(Some(entry)) => Ok(Some((entry.revision, entry.operation != Operation::Put))),
            Ok(None) => Ok(None),
            Err(e) => Err(unavailable(&e.kind().to_string())),
        }
    }
}

//! Where a control-plane change goes: straight to this node's enforcer, or with `[fleet]` through
//! JetStream, from where every node — this one included — applies it (SPEC §5, §11). The handlers
//! build a [`Change`] and hand it to [`write`]; only this module knows the difference, so each
//! endpoint has one handler whether or not the node is part of a fleet.

use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Value, json};

use super::{ApiError, Control, Reply, merge};
use crate::enforce::{Applied, Change, Invalidated, Outcome, Refused, default_before};
use crate::fleet::record::{RevocationRecord, Role, record_of, revocation_key};
use crate::fleet::write::{WriteError, Written};
use crate::fleet::{Fleet, events};

/// How long an invalidation event waits for this node's own application of it.
const LOCAL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How often a viewer revocation without `If-Match` retries when another write of the same
/// viewer's record won the race.
const REVOCATION_RETRIES: usize = 3;

/// What became of a change.
pub(super) struct Stored {
    /// This node's application of it; in a fleet, when it happened within the wait.
    pub applied: Option<Applied>,
    pub receipt: Receipt,
}

/// Where the change was stored.
pub(super) enum Receipt {
    /// This node's state database.
    Local,
    /// A fleet bucket, at `revision`; `applied_here`: this node has applied it.
    Bucket { revision: u64, applied_here: bool },
    /// The fleet's events stream, at `sequence`.
    Event { sequence: u64 },
}

impl Stored {
    fn local(applied: Applied) -> Stored {
        Stored {
            applied: Some(applied),
            receipt: Receipt::Local,
        }
    }

    fn written(written: Written) -> Stored {
        Stored {
            receipt: Receipt::Bucket {
                revision: written.revision,
                applied_here: written.applied_here,
            },
            applied: written.applied,
        }
    }

    /// What this node's application did, when it did something.
    pub fn outcome(&self) -> Option<Outcome> {
        self.applied.as_ref().map(|a| a.outcome)
    }

    /// 201 for something new, else 200.
    pub fn status(&self) -> StatusCode {
        match self.outcome() {
            Some(Outcome::Created) => StatusCode::CREATED,
            _ => StatusCode::OK,
        }
    }

    /// Whether MistServer acknowledged what this node's application sent it: as the local apply
    /// waited for it; in a fleet, waited for now (at most `wait`), or, with nothing sent, whether
    /// this node applied the change at all.
    pub async fn mist_acknowledged(&self, ctl: &Control, wait: std::time::Duration) -> bool {
        let applied = self.applied.as_ref();
        match (&self.receipt, applied.and_then(|a| a.ticket)) {
            (Receipt::Local, _) => applied.is_some_and(|a| a.invalidated.mist_acknowledged),
            (_, Some(ticket)) => ctl.app.enforcer().mist_acknowledged(ticket, wait).await,
            (Receipt::Bucket { applied_here, .. }, None) => *applied_here,
            (Receipt::Event { .. }, None) => false,
        }
    }

    /// What this node invalidated.
    pub fn invalidated(&self) -> Invalidated {
        self.applied
            .as_ref()
            .map_or_else(Invalidated::nothing, |a| a.invalidated.clone())
    }

    /// The answer: `shown`, where it was stored (a fleet's revision or sequence), and what was
    /// invalidated (an [`Invalidated`], or nothing to add).
    pub fn answer(
        &self,
        status: StatusCode,
        shown: Value,
        invalidated: impl serde::Serialize,
    ) -> Reply {
        let shown = if shown.is_object() { shown } else { json!({}) };
        let receipt = match self.receipt {
            Receipt::Local => json!({}),
            Receipt::Bucket {
                revision,
                applied_here,
            } => json!({ "revision": revision, "applied": applied_here }),
            Receipt::Event { sequence } => json!({ "sequence": sequence }),
        };
        Ok((status, merge(merge(shown, receipt), invalidated)))
    }
}

/// Stores `change`: applies it here, or with `[fleet]` checks it against this node's copy (the
/// same plan `apply` runs), writes its record conditional on `expected` (the client's
/// `If-Match`; ignored without a fleet) and waits (bounded) for this node to apply it.
pub(super) async fn write(
    ctl: &Control,
    change: Change,
    expected: Option<u64>,
) -> Result<Stored, ApiError> {
    let enforcer = ctl.app.enforcer();
    let Some(fleet) = ctl.app.fleet() else {
        return Ok(Stored::local(enforcer.apply(change).await?));
    };
    enforcer.check(&change).await?;
    match change {
        Change::Invalidate(target) => {
            if !fleet.connected() {
                // Not handed to the client at all: it would send it after reconnecting, unasked.
                return Err(ApiError::FleetUnavailable(
                    "NATS is not connected; the invalidation was not sent: retry".into(),
                ));
            }
            let sequence = events::publish(fleet, &target).await.map_err(|_| {
                ApiError::FleetUnavailable(
                    "the fleet's JetStream did not confirm the invalidation; retry".into(),
                )
            })?;
            Ok(Stored {
                applied: events::local_result(fleet, sequence, LOCAL_WAIT).await,
                receipt: Receipt::Event { sequence },
            })
        }
        Change::RevokeViewer {
            tenant,
            viewer,
            before,
        } => {
            let clock = enforcer.clock();
            revoke_viewer(fleet, clock, &tenant, &viewer, before, expected).await
        }
        change => {
            // Every change a handler builds that is neither an event nor a revocation has a record.
            let Some((role, name, value)) = record_of(&change, &enforcer.snapshot())? else {
                return Err(ApiError::NotFound(format!(
                    "a {} change is not written to the fleet",
                    change.kind()
                )));
            };
            let written = fleet
                .write(role, &name, value.map(Bytes::from), expected)
                .await?;
            Ok(Stored::written(written))
        }
    }
}

/// A viewer revocation in a fleet: merged with the latest record of the viewer (`before` is never
/// lowered), written conditional on its revision, retried when another write of the same record
/// won the race and the client named no revision.
async fn revoke_viewer(
    fleet: &Fleet,
    clock: crate::clock::Clock,
    tenant: &str,
    viewer: &str,
    before: Option<u64>,
    expected: Option<u64>,
) -> Result<Stored, ApiError> {
    let wanted = match before {
        Some(before) => before,
        None => default_before(clock.unix_secs().map_err(Refused::from)?),
    };
    let key = revocation_key(tenant, viewer);
    let mut tries = 0;
    loop {
        let latest = fleet.latest_record(Role::Revocations, &key).await?;
        let (revision, held) = match latest {
            Some((revision, value)) => (
                revision,
                serde_json::from_slice::<RevocationRecord>(&value)
                    .ok()
                    .map(|r| r.before),
            ),
            None => (0, None),
        };
        let record = RevocationRecord {
            tenant: tenant.to_owned(),
            viewer: viewer.to_owned(),
            before: held.map_or(wanted, |h| h.max(wanted)),
        };
        let value = Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
        let at = expected.unwrap_or(revision);
        let what = "the viewer's revocation";
        match fleet
            .write_key(Role::Revocations, &key, what, Some(value), Some(at))
            .await
        {
            Err(WriteError::Conflict(_)) if expected.is_none() && tries < REVOCATION_RETRIES => {
                tries += 1
            }
            written => return Ok(Stored::written(written?)),
        }
    }
}

//! How the fleet writes things down in JetStream (SPEC §11), as pure functions: the names of the
//! buckets and the stream, how a kid or object name becomes a bucket key, and what change a
//! bucket record or an event message means for the one change path. Unit-tested here.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::enforce::{Change, Refused, Revision, Target};
use crate::policy::store::Snapshot;
use crate::spec::{KeySpec, KeyStatus, PolicySpec};

/// Largest value a bucket accepts (the control API's body limit).
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// What a bucket holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// kid → [`KeySpec`] with its status.
    Keys,
    /// object → [`PolicySpec`]; a delete marker removes the policy.
    Policies,
    /// `<tenant>.<viewer>` (each base64url) → [`RevocationRecord`] (SPEC §9).
    Revocations,
    /// node id → [`NodeReport`](super::status::NodeReport).
    Nodes,
    /// `<tenant>.<viewer>.<node>` (each base64url) → that node's count of the viewer's sessions
    /// under a `max_sessions_per_viewer` policy (SPEC §9 across the fleet).
    Sessions,
}

impl Role {
    /// Every bucket, in the order they are created.
    pub const ALL: [Role; 5] = [
        Role::Keys,
        Role::Policies,
        Role::Revocations,
        Role::Nodes,
        Role::Sessions,
    ];

    fn suffix(self) -> &'static str {
        match self {
            Role::Keys => "keys",
            Role::Policies => "policies",
            Role::Revocations => "revocations",
            Role::Nodes => "nodes",
            Role::Sessions => "sessions",
        }
    }
}

/// The JetStream names of one fleet, from `[fleet] prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    prefix: String,
}

impl Names {
    pub fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_owned(),
        }
    }

    /// The bucket of `role`: `<prefix>_keys`, …
    pub fn bucket(&self, role: Role) -> String {
        format!("{}_{}", self.prefix, role.suffix())
    }

    /// The stream of invalidations and session stops.
    pub fn events_stream(&self) -> String {
        format!("{}_events", self.prefix)
    }

    /// Every subject of the events stream.
    pub fn events_subjects(&self) -> String {
        format!("{}.events.>", self.prefix)
    }

    /// The subject invalidations are published on.
    pub fn invalidate_subject(&self) -> String {
        format!("{}.events.invalidate", self.prefix)
    }

    /// The durable consumer of one node.
    pub fn consumer(&self, node_id: &str) -> String {
        format!("{}_node_{}", self.prefix, encode(node_id))
    }
}

/// A kid, object name or node id as a bucket key: base64url without padding, so every name the
/// API accepts (`+`, `*`, `>`, dots) is a valid key and cannot address another subject.
pub fn encode(name: &str) -> String {
    URL_SAFE_NO_PAD.encode(name.as_bytes())
}

/// The name a bucket key stands for; `None` for a key usher did not write.
pub fn decode(key: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(key).ok()?;
    String::from_utf8(bytes).ok()
}

/// A viewer revocation as the revocations bucket holds it: `before` is fixed by the node that
/// wrote it (so every node refuses the same tokens), never lowered by a later write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRecord {
    pub tenant: String,
    pub viewer: String,
    pub before: u64,
}

/// A record to write: its bucket, the name it stands for, and its value (`None`: a delete marker).
pub type Outgoing = (Role, String, Option<Vec<u8>>);

/// The bucket record a control-plane change is written as — the inverse of the records'
/// [`Change`]s: a key with its status, a revoked key with the material it had (`snapshot` has
/// it), a policy with the secrets an update that omits them keeps, a delete marker. `None` for
/// changes without a record of their own (invalidations are events; a viewer revocation is
/// merged with the record it updates).
pub fn record_of(change: &Change, snapshot: &Snapshot) -> Result<Option<Outgoing>, Refused> {
    Ok(Some(match change {
        Change::PutKey { kid, spec } => {
            let record = KeySpec {
                status: Some(KeyStatus::Active),
                ..spec.clone()
            };
            (Role::Keys, kid.clone(), Some(json(&record)))
        }
        Change::RevokeKey { kid, .. } => {
            let (key, _) = crate::enforce::layers::find_kid(snapshot, kid)
                .ok_or_else(|| Refused::NotFound(format!("no key {kid:?}")))?;
            let record = KeySpec::stored(key, &KeySpec::default(), KeyStatus::Revoked);
            (Role::Keys, kid.clone(), Some(json(&record)))
        }
        Change::PutPolicy { object, spec } => {
            let mut spec = spec.clone();
            crate::enforce::keep_secrets(snapshot, object, &mut spec);
            (Role::Policies, object.clone(), Some(json(&spec)))
        }
        Change::DeletePolicy { object } => (Role::Policies, object.clone(), None),
        _ => return Ok(None),
    }))
}

/// A spec as a record's JSON (the specs serialise without fail: no maps with non-string keys).
fn json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// The revocations bucket's key of a viewer: `base64url(tenant).base64url(viewer)` (a tenant's
/// viewers share a key prefix; neither name can reach another's key).
pub fn revocation_key(tenant: &str, viewer: &str) -> String {
    format!("{}.{}", encode(tenant), encode(viewer))
}

/// The tenant and viewer a revocations key stands for; `None` for a key usher did not write.
fn decode_revocation_key(key: &str) -> Option<(String, String)> {
    let (tenant, viewer) = key.split_once('.')?;
    Some((decode(tenant)?, decode(viewer)?))
}

/// The sessions bucket's key of one node's count of a viewer's sessions.
pub fn sessions_key(tenant: &str, viewer: &str, node: &str) -> String {
    format!("{}.{}.{}", encode(tenant), encode(viewer), encode(node))
}

/// The tenant, viewer and node a sessions key stands for; `None` for a key usher did not write.
pub fn decode_sessions_key(key: &str) -> Option<(String, String, String)> {
    let mut parts = key.split('.');
    let (t, v, n) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((decode(t)?, decode(v)?, decode(n)?))
}

/// What one record of a bucket says.
#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    /// A value was put.
    Put(&'a [u8]),
    /// The key was deleted or purged.
    Deleted,
}

/// The change a bucket record means, wrapped with its revision; a record that is not usher's
/// (bad key, bad JSON) becomes an empty change, so its revision is still recorded. The `&str`
/// says why it was not usable.
pub fn change_for(
    role: Role,
    bucket: &str,
    key: &str,
    revision: u64,
    record: Record<'_>,
) -> (Change, Option<&'static str>) {
    let inner = match role {
        Role::Revocations => revocation_change(key, record),
        _ => match decode(key) {
            None => Err("not a key usher writes"),
            Some(name) => inner_change(role, name, record),
        },
    };
    let (inner, problem) = match inner {
        Ok(change) => (change, None),
        Err(problem) => (nothing(), Some(problem)),
    };
    let change = Change::Remote {
        revision: Revision {
            feed: bucket.to_owned(),
            seq: revision,
        },
        change: Box::new(inner),
    };
    (change, problem)
}

/// A change that changes nothing (its revision is still recorded).
fn nothing() -> Change {
    Change::Invalidate(Target::Streams(Vec::new()))
}

fn inner_change(role: Role, name: String, record: Record<'_>) -> Result<Change, &'static str> {
    match (role, record) {
        (Role::Keys, Record::Put(json)) => {
            let mut spec: KeySpec = serde_json::from_slice(json).map_err(|_| "not a key record")?;
            if spec.status() == KeyStatus::Revoked {
                return Ok(Change::RevokeKey {
                    kid: name,
                    record: Some(Box::new(spec)),
                });
            }
            spec.status = None;
            Ok(Change::PutKey { kid: name, spec })
        }
        (Role::Keys, Record::Deleted) => Err("keys are revoked, never deleted"),
        (Role::Policies, Record::Put(json)) => {
            let spec: PolicySpec =
                serde_json::from_slice(json).map_err(|_| "not a policy record")?;
            Ok(Change::PutPolicy { object: name, spec })
        }
        (Role::Policies, Record::Deleted) => Ok(Change::DeletePolicy { object: name }),
        (Role::Revocations | Role::Nodes | Role::Sessions, _) => Err("not a feed of changes"),
    }
}

/// The viewer revocation a revocations record means.
fn revocation_change(key: &str, record: Record<'_>) -> Result<Change, &'static str> {
    let (tenant, viewer) = decode_revocation_key(key).ok_or("not a key usher writes")?;
    let Record::Put(json) = record else {
        return Err("revocations are forgotten by age, never deleted");
    };
    let r: RevocationRecord =
        serde_json::from_slice(json).map_err(|_| "not a revocation record")?;
    if (r.tenant.as_str(), r.viewer.as_str()) != (tenant.as_str(), viewer.as_str()) {
        return Err("the revocation record names another viewer than its key");
    }
    Ok(Change::RevokeViewer {
        tenant,
        viewer,
        before: Some(r.before),
    })
}

/// A message of the events stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// `POST /v1/invalidate` on some node; exactly one of the three is set.
    Invalidate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        streams: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        objects: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
        /// The node it was posted to (for logs).
        origin: String,
    },
}

impl Event {
    /// The invalidation event for `target`.
    pub fn invalidate(target: &Target, origin: &str) -> Event {
        let (mut streams, mut objects, mut tenant) = (None, None, None);
        match target {
            Target::Streams(s) => streams = Some(s.clone()),
            Target::Objects(o) => objects = Some(o.clone()),
            Target::Tenant(t) => tenant = Some(t.clone()),
        }
        Event::Invalidate {
            streams,
            objects,
            tenant,
            origin: origin.to_owned(),
        }
    }

    /// The change the event asks for; `None` for a malformed event.
    pub fn change(self) -> Option<Change> {
        match self {
            Event::Invalidate {
                streams: Some(s),
                objects: None,
                tenant: None,
                ..
            } => Some(Change::Invalidate(Target::Streams(s))),
            Event::Invalidate {
                streams: None,
                objects: Some(o),
                tenant: None,
                ..
            } => Some(Change::Invalidate(Target::Objects(o))),
            Event::Invalidate {
                streams: None,
                objects: None,
                tenant: Some(t),
                ..
            } => Some(Change::Invalidate(Target::Tenant(t))),
            Event::Invalidate { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inner(change: Change) -> (Revision, Change) {
        match change {
            Change::Remote { revision, change } => (revision, *change),
            other => panic!("not remote: {other:?}"),
        }
    }

    #[test]
    fn names_with_subject_characters_round_trip_as_valid_keys() {
        for name in ["live+abc", "a.b", "*", ">", "a b/c", "ünï"] {
            let key = encode(name);
            assert!(
                key.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                "{key}"
            );
            assert_eq!(decode(&key).as_deref(), Some(name));
        }
        assert_eq!(decode("%%"), None);
    }

    #[test]
    fn a_policy_record_becomes_a_remote_put_with_its_revision() {
        let json = br#"{"tenant":"t1","type":"deny"}"#;
        let (change, problem) = change_for(
            Role::Policies,
            "usher_policies",
            &encode("live+x"),
            7,
            Record::Put(json),
        );
        assert!(problem.is_none());
        let (revision, change) = inner(change);
        assert_eq!(revision.feed, "usher_policies");
        assert_eq!(revision.seq, 7);
        assert!(matches!(change, Change::PutPolicy { ref object, ref spec }
            if object == "live+x" && spec.kind == crate::spec::PolicyKind::Deny));
    }

    #[test]
    fn a_delete_marker_deletes_the_policy() {
        let (change, _) = change_for(Role::Policies, "b", &encode("x"), 3, Record::Deleted);
        assert!(matches!(inner(change).1, Change::DeletePolicy { ref object } if object == "x"));
    }

    #[test]
    fn a_revoked_key_record_revokes_and_an_active_one_puts() {
        let revoked = br#"{"tenant":"t1","alg":"ES256","public_key_pem":"x","status":"revoked"}"#;
        let (change, _) = change_for(Role::Keys, "b", &encode("k1"), 1, Record::Put(revoked));
        assert!(
            matches!(inner(change).1, Change::RevokeKey { ref kid, record: Some(_) } if kid == "k1")
        );
        let active = br#"{"tenant":"t1","alg":"ES256","public_key_pem":"x","status":"active"}"#;
        let (change, _) = change_for(Role::Keys, "b", &encode("k1"), 2, Record::Put(active));
        assert!(
            matches!(inner(change).1, Change::PutKey { ref spec, .. } if spec.status.is_none())
        );
    }

    #[test]
    fn a_revocation_record_becomes_a_remote_revoke_viewer_with_its_before() {
        let key = revocation_key("t1", "alice.b+c");
        let value = serde_json::to_vec(&RevocationRecord {
            tenant: "t1".into(),
            viewer: "alice.b+c".into(),
            before: 1_700_000_000,
        })
        .unwrap();
        let (change, problem) = change_for(Role::Revocations, "r", &key, 4, Record::Put(&value));
        assert!(problem.is_none());
        let (revision, change) = inner(change);
        assert_eq!(revision.seq, 4);
        assert!(
            matches!(change, Change::RevokeViewer { ref tenant, ref viewer, before }
            if tenant == "t1" && viewer == "alice.b+c" && before == Some(1_700_000_000))
        );
        // A record under another viewer's key, a delete, and a bad key change nothing.
        let other = revocation_key("t1", "bob");
        let (_, problem) = change_for(Role::Revocations, "r", &other, 5, Record::Put(&value));
        assert!(problem.is_some());
        let (_, problem) = change_for(Role::Revocations, "r", &key, 6, Record::Deleted);
        assert!(problem.is_some());
        let (_, problem) = change_for(Role::Revocations, "r", "nodot", 7, Record::Put(&value));
        assert!(problem.is_some());
    }

    #[test]
    fn a_sessions_key_round_trips_and_refuses_other_shapes() {
        let key = sessions_key("t1", "a.b", "edge-1");
        assert_eq!(
            decode_sessions_key(&key),
            Some(("t1".into(), "a.b".into(), "edge-1".into()))
        );
        assert_eq!(decode_sessions_key(&revocation_key("t1", "a")), None);
        assert_eq!(decode_sessions_key(&format!("{key}.x")), None);
    }

    #[test]
    fn garbage_still_advances_the_revision_and_says_why() {
        let (change, problem) =
            change_for(Role::Policies, "b", &encode("x"), 9, Record::Put(b"{nope"));
        assert_eq!(problem, Some("not a policy record"));
        let (revision, change) = inner(change);
        assert_eq!(revision.seq, 9);
        assert!(matches!(change, Change::Invalidate(Target::Streams(ref s)) if s.is_empty()));
        let (_, problem) = change_for(Role::Keys, "b", "%%", 10, Record::Deleted);
        assert!(problem.is_some());
    }

    #[test]
    fn events_round_trip_and_malformed_ones_are_refused() {
        let target = Target::Objects(vec!["a".into()]);
        let event = Event::invalidate(&target, "n1");
        let json = serde_json::to_vec(&event).unwrap();
        let back: Event = serde_json::from_slice(&json).unwrap();
        assert!(matches!(back.change(), Some(Change::Invalidate(t)) if t == target));
        let both: Event = serde_json::from_slice(
            br#"{"kind":"invalidate","streams":["a"],"tenant":"t","origin":"n"}"#,
        )
        .unwrap();
        assert!(both.change().is_none());
    }
}

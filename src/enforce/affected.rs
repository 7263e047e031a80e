//! Which streams a change touches (SPEC §5). Pure: the known stream names and the snapshots
//! before and after the change in, the sorted names out.

use std::collections::BTreeSet;

use crate::policy::lookup;
use crate::policy::store::Snapshot;

/// What a change is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// A name a policy is attached to: an exact stream name, an object id or a base name.
    Object(String),
    /// Everything a tenant's policies cover (a key was revoked or replaced). The empty tenant is
    /// the default policy's.
    Tenant(String),
    /// Exactly this stream name and nothing else (`POST /v1/invalidate` with `streams`).
    Stream(String),
}

/// The stream names `scopes` touch, sorted. `known` are the streams usher has seen; `old` and
/// `new` the snapshots before and after the change (the same one for a plain invalidation).
///
/// For an object name X: every known stream that looks X up (X is one of its lookup candidates),
/// plus X itself. For a tenant: every known stream whose policy belongs to the tenant before or
/// after the change. For a stream: that name.
pub fn affected_streams<'a>(
    known: impl IntoIterator<Item = &'a str>,
    scopes: &[Scope],
    old: &Snapshot,
    new: &Snapshot,
) -> Vec<String> {
    let mut out = BTreeSet::new();
    for scope in scopes {
        if let Scope::Object(name) | Scope::Stream(name) = scope {
            out.insert(name.clone());
        }
    }
    let widens = scopes.iter().any(|s| !matches!(s, Scope::Stream(_)));
    if widens {
        for stream in known {
            if touches(scopes, stream, old, new) {
                out.insert(stream.to_owned());
            }
        }
    }
    out.into_iter().collect()
}

fn touches(scopes: &[Scope], stream: &str, old: &Snapshot, new: &Snapshot) -> bool {
    scopes.iter().any(|scope| match scope {
        Scope::Object(name) => lookup::candidates(stream).any(|c| c == name),
        Scope::Tenant(t) => old.resolve(stream).tenant == *t || new.resolve(stream).tenant == *t,
        Scope::Stream(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::model::{Policy, PolicyEntry, Source};

    fn snapshot(entries: &[(&str, &str)]) -> Snapshot {
        let mut s = Snapshot::new(Policy::Deny);
        for (object, tenant) in entries {
            s.set_policy(PolicyEntry {
                object: (*object).into(),
                tenant: (*tenant).into(),
                policy: Policy::Public,
                publish: crate::policy::model::PublishRule::Deny,
                source: Source::Api,
            });
        }
        s
    }

    const KNOWN: [&str; 5] = ["live+abc", "live+def", "vod", "abc", "other+abc"];

    fn object(name: &str) -> Scope {
        Scope::Object(name.into())
    }

    #[test]
    fn object_touches_streams_that_look_it_up_and_itself() {
        let s = snapshot(&[]);
        let got = affected_streams(KNOWN, &[object("abc")], &s, &s);
        assert_eq!(got, ["abc", "live+abc", "other+abc"]);
    }

    #[test]
    fn base_name_touches_every_wildcard_stream_of_it() {
        let s = snapshot(&[]);
        let got = affected_streams(KNOWN, &[object("live")], &s, &s);
        assert_eq!(got, ["live", "live+abc", "live+def"]);
    }

    #[test]
    fn unknown_object_is_still_named_for_mistserver() {
        let s = snapshot(&[]);
        let got = affected_streams(KNOWN, &[object("new+one")], &s, &s);
        assert_eq!(got, ["new+one"]);
    }

    #[test]
    fn a_stream_scope_names_exactly_that_stream() {
        let s = snapshot(&[]);
        let got = affected_streams(KNOWN, &[Scope::Stream("live".into())], &s, &s);
        assert_eq!(got, ["live"]);
    }

    #[test]
    fn tenant_touches_streams_resolved_to_it_before_or_after() {
        let old = snapshot(&[("live", "t1"), ("vod", "t2")]);
        let new = snapshot(&[("live", "t2"), ("vod", "t1")]);
        let got = affected_streams(KNOWN, &[Scope::Tenant("t1".into())], &old, &new);
        assert_eq!(got, ["live+abc", "live+def", "vod"]);
        let none = affected_streams(KNOWN, &[Scope::Tenant("t3".into())], &old, &new);
        assert!(none.is_empty());
    }
}

//! The permission claim of SPEC §10, in the style of MediaMTX and moq tokens:
//! `{"read": ["live+abc", "live+*"], "publish": ["live+abc"]}` under the tenant's claim name
//! (`usher` unless `permission_claim` renames it). A pattern is an exact stream name, or a prefix
//! ending in `*`; a `*` anywhere else makes the pattern match nothing.

use serde_json::{Map, Value};

/// The claim name when the tenant names none.
pub const DEFAULT_CLAIM: &str = "usher";

/// What a token asks to do with a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Play it (`read`).
    Read,
    /// Push it (`publish`).
    Publish,
}

impl Action {
    /// The list's name inside the claim.
    pub const fn list_name(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Publish => "publish",
        }
    }
}

/// Whether the verified `claims` let the token do `action` on `stream`. Anything malformed —
/// no claim, not an object, a list that is not an array — permits nothing.
pub fn permits(claims: &Map<String, Value>, claim: &str, action: Action, stream: &str) -> bool {
    let Some(Value::Array(patterns)) = claims
        .get(claim)
        .and_then(Value::as_object)
        .and_then(|c| c.get(action.list_name()))
    else {
        return false;
    };
    patterns
        .iter()
        .filter_map(Value::as_str)
        .any(|p| pattern_matches(p, stream))
}

/// An exact name, or a `*`-suffixed prefix; `*` is special only as the last character, and a
/// pattern with a `*` anywhere else matches nothing (rather than something its author did not mean).
pub fn pattern_matches(pattern: &str, stream: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) if !prefix.contains('*') => stream.starts_with(prefix),
        Some(_) => false,
        None if pattern.contains('*') => false,
        None => pattern == stream,
    }
}

/// The claim value `usher sign --read … --publish …` writes.
pub fn claim_value(read: &[String], publish: &[String]) -> Value {
    let mut m = Map::new();
    if !read.is_empty() {
        m.insert(
            "read".into(),
            read.iter().cloned().map(Value::from).collect(),
        );
    }
    if !publish.is_empty() {
        m.insert(
            "publish".into(),
            publish.iter().cloned().map(Value::from).collect(),
        );
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn exact_names_and_star_suffixed_prefixes_match() {
        assert!(pattern_matches("live+abc", "live+abc"));
        assert!(!pattern_matches("live+abc", "live+abcd"));
        assert!(pattern_matches("live+*", "live+abcd"));
        assert!(pattern_matches("*", "anything"));
        assert!(!pattern_matches("live+*", "vod+abc"));
    }

    #[test]
    fn a_star_that_is_not_last_matches_nothing() {
        assert!(!pattern_matches("li*e+abc", "live+abc"));
        assert!(!pattern_matches("li*e+abc", "li*e+abc"));
        assert!(!pattern_matches("*+*", "live+abc"));
    }

    #[test]
    fn read_and_publish_are_separate_lists() {
        let c = claims(json!({"usher": {"read": ["live+*"], "publish": ["live+abc"]}}));
        assert!(permits(&c, "usher", Action::Read, "live+xyz"));
        assert!(!permits(&c, "usher", Action::Publish, "live+xyz"));
        assert!(permits(&c, "usher", Action::Publish, "live+abc"));
    }

    #[test]
    fn a_missing_or_malformed_claim_permits_nothing() {
        for v in [
            json!({}),
            json!({"usher": "live+abc"}),
            json!({"usher": {"read": "live+abc"}}),
            json!({"usher": {"read": [1, null]}}),
            json!({"other": {"read": ["*"]}}),
        ] {
            assert!(
                !permits(&claims(v.clone()), "usher", Action::Read, "live+abc"),
                "{v}"
            );
        }
    }

    #[test]
    fn the_claim_name_is_the_tenants() {
        let c = claims(json!({"perms": {"publish": ["*"]}}));
        assert!(permits(&c, "perms", Action::Publish, "x"));
        assert!(!permits(&c, "usher", Action::Publish, "x"));
    }

    #[test]
    fn claim_value_writes_only_the_lists_given() {
        assert_eq!(claim_value(&["a".into()], &[]), json!({"read": ["a"]}));
        assert_eq!(claim_value(&[], &["b*".into()]), json!({"publish": ["b*"]}));
    }
}

//! What the durable MistServer queue carries: stream names to invalidate (`invalidate_sessions`)
//! and session ids to end (`stop_sessid`, SPEC §9). Both travel as one string key, so the queue's
//! bookkeeping, its merging and the `pending_invalidations` table on disk stay one path: a stream
//! name is its own key (as before, so a table written by an older usher reads the same), a session
//! to end is [`STOP_PREFIX`] + its id. The prefix starts with a NUL byte, which no MistServer stream
//! name holds (stream names are sanitised; usher's own names are printable, see `spec::valid_object`).

use serde_json::{Map, Value, json};

/// The key prefix of a `stop_sessid` command.
pub const STOP_PREFIX: &str = "\0stop_sessid:";

/// The queue key that ends session `id`.
pub fn stop_key(id: &str) -> String {
    format!("{STOP_PREFIX}{id}")
}

/// The session id a key ends, when it is a `stop_sessid` key.
pub fn stopped_session(key: &str) -> Option<&str> {
    key.strip_prefix(STOP_PREFIX)
}

/// One MistServer API body for a chunk of keys: `invalidate_sessions` for the stream names,
/// `stop_sessid` for the sessions; `None` when the chunk holds neither.
pub fn api_body(chunk: &[String]) -> Option<Map<String, Value>> {
    let (mut streams, mut sessions) = (Vec::new(), Vec::new());
    for key in chunk {
        match stopped_session(key) {
            Some(id) => sessions.push(id),
            None => streams.push(key.as_str()),
        }
    }
    let mut body = Map::new();
    if !streams.is_empty() {
        body.insert("invalidate_sessions".into(), json!(streams));
    }
    if !sessions.is_empty() {
        body.insert("stop_sessid".into(), json!(sessions));
    }
    (!body.is_empty()).then_some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_becomes_one_call_with_both_commands() {
        let chunk = vec!["live+a".to_string(), stop_key("abc"), stop_key("def")];
        let body = api_body(&chunk).unwrap();
        assert_eq!(body["invalidate_sessions"], json!(["live+a"]));
        assert_eq!(body["stop_sessid"], json!(["abc", "def"]));
        assert!(api_body(&[]).is_none());
    }

    #[test]
    fn only_prefixed_keys_are_sessions() {
        assert_eq!(stopped_session(&stop_key("x1")), Some("x1"));
        assert_eq!(stopped_session("stop_sessid:x1"), None);
    }
}

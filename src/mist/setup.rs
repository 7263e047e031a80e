//! `usher mist-setup`: registers usher's `USER_NEW` and `STREAM_PUSH` (blocking,
//! `default: "false"`, object form — MistServer fails open otherwise, SPEC §1), `USER_END`, and
//! on request `PUSH_REWRITE`, in MistServer's triggers, leaving every other trigger and handler
//! as it was.

use serde_json::{Map, Value, json};

use super::{MistClient, MistError};
use crate::protocol::Trigger;

/// What `merge_triggers` did to one trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub trigger: &'static str,
    /// `added`, `replaced` or `unchanged`.
    pub action: &'static str,
    /// Other handlers this trigger also has (left untouched; worth an operator's look).
    pub others: usize,
}

/// The entry usher wants for `trigger`.
///
/// `USER_END` is registered blocking too, though MistServer ignores its answer: a non-blocking
/// trigger is sent by the session process as it exits, without waiting, and against MistServer 3.10
/// about one `USER_END` in three never reached usher. Blocking, the process waits for usher's
/// (immediate) answer first.
///
/// `STREAM_PUSH` and `PUSH_REWRITE` (SPEC §10) fail open without a `default` too; `"false"` makes
/// `STREAM_PUSH` refuse the push when usher cannot answer. `PUSH_REWRITE` takes its default as the
/// new stream name (an empty one becomes `"true"` in MistServer), so with usher down a push is
/// renamed to `false` — refused by `STREAM_PUSH`, which then cannot reach usher either (see
/// [`triggers`]).
fn entry(trigger: Trigger, handler: &str) -> Value {
    if trigger.blocking() {
        json!({"handler": handler, "sync": true, "streams": [], "default": "false"})
    } else {
        json!({"handler": handler, "sync": true, "streams": []})
    }
}

/// The triggers `usher mist-setup` registers: `USER_NEW`, `USER_END` and `STREAM_PUSH` always;
/// `PUSH_REWRITE` only when asked. usher never renames a push, so `PUSH_REWRITE` adds a second
/// blocking call to every push and nothing `STREAM_PUSH` does not; and its fallback with usher
/// down is a rename, not a refusal, safe only because `STREAM_PUSH` is registered beside it.
pub fn triggers(push_rewrite: bool) -> &'static [Trigger] {
    if push_rewrite {
        &Trigger::ALL
    } else {
        &[Trigger::UserNew, Trigger::UserEnd, Trigger::StreamPush]
    }
}

/// The handler URL of a trigger entry in either form (object, or MistServer's older array form).
fn handler_of(entry: &Value) -> Option<&str> {
    match entry {
        Value::Object(o) => o.get("handler").and_then(Value::as_str),
        Value::Array(a) => a.first().and_then(Value::as_str),
        _ => None,
    }
}

/// Merges usher's entries for `USER_NEW` and `USER_END` (handler `handler`) into MistServer's
/// `config.triggers` object. Entries with the same handler are replaced; others are kept.
pub fn merge_triggers(
    current: &Value,
    handler: &str,
    wanted_triggers: &[Trigger],
) -> (Value, Vec<Change>) {
    let mut triggers = current.as_object().cloned().unwrap_or_default();
    let mut changes = Vec::new();
    for &trigger in wanted_triggers {
        let wanted = entry(trigger, handler);
        let list = match triggers.get(trigger.as_str()) {
            Some(Value::Array(list)) => list.clone(),
            _ => Vec::new(),
        };
        let (ours, others): (Vec<Value>, Vec<Value>) = list
            .into_iter()
            .partition(|e| handler_of(e) == Some(handler));
        let action = match ours.as_slice() {
            [] => "added",
            [only] if *only == wanted => "unchanged",
            _ => "replaced",
        };
        let mut merged = others.clone();
        merged.push(wanted);
        triggers.insert(trigger.as_str().to_owned(), Value::Array(merged));
        changes.push(Change {
            trigger: trigger.as_str(),
            action,
            others: others.len(),
        });
    }
    (Value::Object(triggers), changes)
}

/// Reads MistServer's triggers, merges usher's entries, and writes the triggers back — saved to
/// MistServer's config file at once — when anything changed. What was written is read back and
/// checked.
pub async fn run(
    client: &MistClient,
    handler: &str,
    wanted: &[Trigger],
) -> Result<Vec<Change>, MistError> {
    let current = read_triggers(client).await?;
    let (merged, changes) = merge_triggers(&current, handler, wanted);
    if changes.iter().all(|c| c.action == "unchanged") {
        return Ok(changes);
    }
    let mut command = Map::new();
    command.insert("config".into(), json!({ "triggers": merged }));
    // Without it MistServer writes its config file about 60 s later, or not at all if it dies.
    command.insert("save".into(), Value::Bool(true));
    client.command(command).await?;
    let written = read_triggers(client).await?;
    if merge_triggers(&written, handler, wanted)
        .1
        .iter()
        .any(|c| c.action != "unchanged")
    {
        return Err(MistError::Protocol(
            "MistServer did not keep the triggers usher wrote",
        ));
    }
    Ok(changes)
}

/// MistServer's `config.triggers`, read with `{"config": true}`: `/api2` answers in minimal form
/// and leaves `config` out otherwise (SPEC §1). Writing replaces the whole triggers object, so an
/// answer without `config` is refused rather than taken for "no triggers" — that would delete every
/// other trigger.
async fn read_triggers(client: &MistClient) -> Result<Value, MistError> {
    let mut command = Map::new();
    command.insert("config".into(), Value::Bool(true));
    let answer = client.command(command).await?;
    let Some(config) = answer.get("config").filter(|c| c.is_object()) else {
        return Err(MistError::Protocol(
            "the answer carries no config object; refusing to write MistServer's triggers",
        ));
    };
    match config.get("triggers") {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(triggers @ Value::Object(_)) => Ok(triggers.clone()),
        Some(_) => Err(MistError::Protocol(
            "config.triggers is not an object; refusing to write MistServer's triggers",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "http://127.0.0.1:4250/trigger";

    #[test]
    fn adds_object_form_entries_with_default_false_and_keeps_other_triggers() {
        let current = json!({"PUSH_REWRITE": [{"handler": "http://x/push", "sync": true}]});
        let (merged, changes) = merge_triggers(&current, H, triggers(false));
        assert_eq!(merged["PUSH_REWRITE"], current["PUSH_REWRITE"]);
        assert_eq!(
            merged["USER_NEW"],
            json!([{"handler": H, "sync": true, "streams": [], "default": "false"}])
        );
        assert_eq!(
            merged["USER_END"][0]["sync"], true,
            "USER_END blocking, so it is not lost"
        );
        assert!(changes.iter().all(|c| c.action == "added"));
    }

    #[test]
    fn replaces_an_array_form_entry_of_ours_and_keeps_other_handlers() {
        let current =
            json!({"USER_NEW": [[H, true, []], {"handler": "http://other/x", "sync": true}]});
        let (merged, changes) = merge_triggers(&current, H, triggers(false));
        let list = merged["USER_NEW"].as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["handler"], "http://other/x");
        assert_eq!(list[1]["default"], "false");
        assert_eq!(changes[0].action, "replaced");
        assert_eq!(changes[0].others, 1);
    }

    #[test]
    fn publisher_triggers_are_registered_failing_closed() {
        let (merged, changes) = merge_triggers(&Value::Null, H, triggers(false));
        assert_eq!(
            merged["STREAM_PUSH"],
            json!([{"handler": H, "sync": true, "streams": [], "default": "false"}])
        );
        assert!(merged.get("PUSH_REWRITE").is_none(), "only when asked");
        assert_eq!(changes.len(), 3);
        let (merged, _) = merge_triggers(&merged, H, triggers(true));
        assert_eq!(merged["PUSH_REWRITE"][0]["default"], "false");
        assert_eq!(merged["PUSH_REWRITE"][0]["sync"], true);
    }

    #[test]
    fn a_second_run_changes_nothing() {
        let (once, _) = merge_triggers(&Value::Null, H, triggers(true));
        let (twice, changes) = merge_triggers(&once, H, triggers(true));
        assert_eq!(once, twice);
        assert!(changes.iter().all(|c| c.action == "unchanged"));
    }
}

//! `usher mist-setup` against a MistServer API stand-in that already holds other triggers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::sync::{Arc, Mutex};

use common::mist_api::MistApi;
use serde_json::{Map, Value, json};

/// Makes the stand-in keep a MistServer config and answer the way MistServer's `/api2` does
/// (minimal form): `config` only when the request names `config`; a `{"config": {"triggers": …}}`
/// write replaces the whole triggers object; `save` is recorded.
fn hold_config(api: &MistApi, triggers: Value) -> Arc<Mutex<Value>> {
    let held = Arc::new(Mutex::new(triggers));
    let state = held.clone();
    api.set_hook(Arc::new(move |body: &Value| {
        let mut triggers = state.lock().unwrap();
        if let Some(new) = body.get("config").and_then(|c| c.get("triggers")) {
            *triggers = new.clone();
        }
        let mut answer = Map::new();
        if body.get("config").is_some() {
            answer.insert(
                "config".into(),
                json!({"triggers": triggers.clone(), "version": "3.10"}),
            );
        }
        answer
    }));
    held
}

/// Whether some request the stand-in accepted asked MistServer to save its config file.
fn saved(api: &MistApi) -> bool {
    api.accepted()
        .iter()
        .any(|b| b.get("save") == Some(&json!(true)) && b.get("config").is_some())
}

fn mist_setup(api_url: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[trigger]\nlisten = \"127.0.0.1:4250\"\n[mist]\nusername = \"admin\"\npassword = \"pw\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
        .args(["mist-setup", "--api", api_url])
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn mist_setup_registers_usher_and_leaves_other_triggers_alone() {
    let api = MistApi::start().await;
    api.require_login("admin", "pw");
    let push = json!([{"handler": "http://127.0.0.1:9000/push", "sync": true, "streams": []}]);
    let other_user_new = json!({"handler": "http://127.0.0.1:9001/analytics", "sync": false});
    let held = hold_config(
        &api,
        json!({
            "PUSH_REWRITE": push,
            // usher's own entry in the array form, which ignores `default`: must be replaced.
            "USER_NEW": [other_user_new, ["http://127.0.0.1:4250/trigger", true, []]],
        }),
    );
    let url = api.url();
    let (ok, out) = tokio::task::spawn_blocking(move || mist_setup(&url))
        .await
        .unwrap();
    assert!(ok, "{out}");
    assert!(
        out.contains("USER_NEW: replaced") && out.contains("USER_END: added"),
        "{out}"
    );

    let triggers = held.lock().unwrap().clone();
    assert_eq!(triggers["PUSH_REWRITE"], push, "other triggers untouched");
    let user_new = triggers["USER_NEW"].as_array().unwrap();
    assert_eq!(user_new[0], other_user_new, "other handlers untouched");
    assert_eq!(
        user_new[1],
        json!({"handler": "http://127.0.0.1:4250/trigger", "sync": true, "streams": [], "default": "false"})
    );
    assert_eq!(
        triggers["USER_END"][0]["handler"],
        "http://127.0.0.1:4250/trigger"
    );
    assert_eq!(
        triggers["STREAM_PUSH"],
        json!([{"handler": "http://127.0.0.1:4250/trigger", "sync": true, "streams": [], "default": "false"}]),
        "pushes fail closed when usher cannot answer"
    );

    let url = api.url();
    let (ok, out) = tokio::task::spawn_blocking(move || mist_setup(&url))
        .await
        .unwrap();
    assert!(ok && out.contains("USER_NEW: unchanged"), "{out}");
    assert!(saved(&api), "the write asks MistServer to save at once");
}

/// Regression: `/api2` answers `{}` to a request that does not name `config`; mist-setup took that
/// for "no triggers" and wrote back only its own two, deleting every other trigger.
#[tokio::test]
async fn mist_setup_against_api2_minimal_form_keeps_other_triggers() {
    let api = MistApi::start().await;
    let buffer = json!([{"handler": "http://127.0.0.1:9002/buffer", "sync": false, "streams": []}]);
    let held = hold_config(&api, json!({ "STREAM_BUFFER": buffer }));
    let url = api.url();
    let (ok, out) = tokio::task::spawn_blocking(move || mist_setup(&url))
        .await
        .unwrap();
    assert!(ok && out.contains("USER_NEW: added"), "{out}");
    let triggers = held.lock().unwrap().clone();
    assert_eq!(triggers["STREAM_BUFFER"], buffer);
    assert_eq!(triggers["USER_NEW"][0]["default"], "false");

    let url = api.url();
    let (ok, out) = tokio::task::spawn_blocking(move || mist_setup(&url))
        .await
        .unwrap();
    assert!(
        ok && out.contains("USER_NEW: unchanged") && out.contains("USER_END: unchanged"),
        "a second run changes nothing: {out}"
    );
}

/// An answer without `config` is never taken for "no triggers": mist-setup refuses to write.
#[tokio::test]
async fn mist_setup_refuses_to_write_when_the_answer_has_no_config() {
    let api = MistApi::start().await;
    api.set_hook(Arc::new(|_: &Value| Map::new()));
    let url = api.url();
    let (ok, out) = tokio::task::spawn_blocking(move || mist_setup(&url))
        .await
        .unwrap();
    assert!(!ok, "{out}");
    assert!(
        api.accepted().iter().all(|b| !b["config"].is_object()),
        "nothing was written: {:?}",
        api.accepted()
    );
}

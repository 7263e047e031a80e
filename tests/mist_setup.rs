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

/// Makes the stand-in keep a MistServer config: answers every request with `config`, and applies
/// a `{"config": {"triggers": …}}` write.
fn hold_config(api: &MistApi, triggers: Value) -> Arc<Mutex<Value>> {
    let held = Arc::new(Mutex::new(triggers));
    let state = held.clone();
    api.set_hook(Arc::new(move |body: &Value| {
        let mut triggers = state.lock().unwrap();
        if let Some(new) = body.get("config").and_then(|c| c.get("triggers")) {
            *triggers = new.clone();
        }
        let mut answer = Map::new();
        answer.insert(
            "config".into(),
            json!({"triggers": triggers.clone(), "version": "3.10"}),
        );
        answer
    }));
    held
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

    let url = api.url();
    let (ok, out) = tokio::task::spawn_blocking(move || mist_setup(&url))
        .await
        .unwrap();
    assert!(ok && out.contains("USER_NEW: unchanged"), "{out}");
}

//! The command line for publishers (SPEC §10): `usher sign --read/--publish` writes the
//! permission claim, `usher verify --publish` evaluates a push against the config file,
//! `usher check-config` refuses a stream key written in the clear.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::path::Path;
use std::process::Output;

use common::cli::{dir_with_key, usher};

use base64::Engine as _;
use sha2::Digest;

fn json_out(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{o:?}"))
}

fn config(key_hash: &str) -> String {
    format!(
        r#"
[trigger]
listen = "127.0.0.1:0"
[control]
listen = "127.0.0.1:0"
[[tenants]]
id = "t1"
[[keys]]
kid = "k1"
tenant = "t1"
public_key_file = "keys/k1.pub.pem"
[[policies]]
object = "live"
tenant = "t1"
type = "jwt"
require_permission = true
publish = {{ type = "jwt" }}
[[policies]]
object = "keyed"
tenant = "t1"
type = "public"
publish = {{ type = "stream_key", stream_key_sha256 = "{key_hash}" }}
"#
    )
}

fn sign(d: &Path, extra: &[&str]) -> String {
    let mut args = vec!["sign", "--key", "keys/k1.key.pem", "--kid", "k1"];
    args.extend_from_slice(extra);
    let out = usher(d, &args);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn sign_writes_the_permission_claim_and_verify_publish_checks_it() {
    let dir = dir_with_key();
    let d = dir.path();
    let hash = hex::encode(sha2::Sha256::digest(b"the-key"));
    std::fs::write(d.join("config.toml"), config(&hash)).unwrap();

    let publisher = sign(d, &["--publish", "live+a", "--publish", "live+b*"]);
    let payload = publisher.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["usher"],
        serde_json::json!({"publish": ["live+a", "live+b*"]})
    );

    let ok = usher(
        d,
        &[
            "verify",
            "--publish",
            "--stream",
            "live+bx",
            "--token",
            &publisher,
        ],
    );
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert_eq!(json_out(&ok)["policy_type"], "jwt");
    let other = usher(
        d,
        &[
            "verify",
            "--publish",
            "--stream",
            "live+c",
            "--token",
            &publisher,
        ],
    );
    assert_eq!(other.status.code(), Some(1));
    assert_eq!(json_out(&other)["reason"], "jwt-permission-denied");
    // The same token may not watch: it lists nothing under read.
    let watch = usher(d, &["verify", "--stream", "live+a", "--token", &publisher]);
    assert_eq!(json_out(&watch)["reason"], "jwt-permission-denied");
    let reader = sign(d, &["--read", "live+*"]);
    let watch = usher(d, &["verify", "--stream", "live+a", "--token", &reader]);
    assert_eq!(watch.status.code(), Some(0), "{watch:?}");
    let push = usher(
        d,
        &[
            "verify",
            "--publish",
            "--stream",
            "live+a",
            "--token",
            &reader,
        ],
    );
    assert_eq!(json_out(&push)["reason"], "jwt-permission-denied");

    let renamed = sign(d, &["--publish", "x", "--permission-claim", "perms"]);
    let payload = renamed.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["perms"]["publish"][0], "x");

    let keyed = usher(
        d,
        &[
            "verify",
            "--publish",
            "--stream",
            "keyed",
            "--key",
            "the-key",
        ],
    );
    assert_eq!(keyed.status.code(), Some(0), "{keyed:?}");
    let wrong = usher(
        d,
        &["verify", "--publish", "--stream", "keyed", "--key", "nope"],
    );
    assert_eq!(json_out(&wrong)["reason"], "stream-key-mismatch");
    assert!(!String::from_utf8_lossy(&wrong.stdout).contains("nope"));
    let misuse = usher(d, &["verify", "--stream", "keyed", "--key", "the-key"]);
    assert_eq!(misuse.status.code(), Some(2), "--key without --publish");
}

#[test]
fn check_config_refuses_a_stream_key_in_the_clear_and_a_bad_hash() {
    let dir = dir_with_key();
    let d = dir.path();
    let clear = config("x").replace("stream_key_sha256 = \"x\"", "stream_key = \"in-the-clear\"");
    std::fs::write(d.join("config.toml"), clear).unwrap();
    let out = usher(d, &["check-config"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("stream_key_sha256"), "{text}");
    assert!(!text.contains("in-the-clear"), "{text}");
    std::fs::write(d.join("config.toml"), config("abcd")).unwrap();
    let out = usher(d, &["check-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("64 hex digits"));
}

#[test]
fn check_config_judges_a_publish_webhook_url_like_a_viewer_webhook() {
    let dir = dir_with_key();
    let d = dir.path();
    let hash = hex::encode(sha2::Sha256::digest(b"k"));
    let hook = config(&hash).replace(
        &format!("{{ type = \"stream_key\", stream_key_sha256 = \"{hash}\" }}"),
        "{ type = \"webhook\", url = \"https://127.0.0.1/publish\", secret = \"s\" }",
    );
    assert!(hook.contains("127.0.0.1/publish"));
    std::fs::write(d.join("config.toml"), hook).unwrap();
    let out = usher(d, &["check-config"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("policies[object=\"keyed\"]"));
}

//! The command line of SPEC §7: keygen → sign → verify, file modes, check-config.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::cli::{dir_with_key, usher};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const CONFIG: &str = r#"
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
object = "vod"
tenant = "t1"
type = "jwt"
required_audience = "viewer"
"#;

#[test]
fn keygen_sign_verify_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keygen = usher(d, &["keygen", "--kid", "k1", "--out", "keys"]);
    assert!(keygen.status.success(), "{keygen:?}");
    let out = stdout(&keygen);
    assert!(
        out.contains("k1") && out.contains("\"kty\":\"EC\""),
        "{out}"
    );
    assert!(
        !out.contains("PRIVATE") && !out.contains("\"d\""),
        "keygen printed the private key"
    );
    let mode = std::fs::metadata(d.join("keys/k1.key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(d.join("keys/k1.pub.pem").exists() && d.join("keys/k1.jwk.json").exists());
    std::fs::write(d.join("config.toml"), CONFIG).unwrap();

    let sign = usher(
        d,
        &[
            "sign",
            "--key",
            "keys/k1.key.pem",
            "--kid",
            "k1",
            "--aud",
            "viewer",
            "--claim",
            "tier=\"pro\"",
        ],
    );
    assert!(sign.status.success(), "{sign:?}");
    let token = stdout(&sign).trim().to_string();
    assert_eq!(token.split('.').count(), 3);

    let verify = usher(d, &["verify", "--stream", "vod", "--token", &token]);
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
    let json: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(json["allowed"], true);
    assert_eq!(json["reason"], "allowed");
    assert_eq!(json["kid"], "k1");
    assert_eq!(json["claims"]["tier"], "pro");

    let wrong_aud = usher(
        d,
        &[
            "sign",
            "--key",
            "keys/k1.key.pem",
            "--kid",
            "k1",
            "--aud",
            "other",
        ],
    );
    let token = stdout(&wrong_aud).trim().to_string();
    let verify = usher(d, &["verify", "--stream", "vod", "--token", &token]);
    assert_eq!(verify.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(json["reason"], "jwt-aud-mismatch");
    assert_eq!(
        json["claims"]["aud"], "other",
        "unverified payload shown on deny"
    );
}

#[test]
fn keygen_refuses_to_overwrite_a_key() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        usher(dir.path(), &["keygen", "--kid", "k1", "--out", "keys"])
            .status
            .success()
    );
    assert!(
        !usher(dir.path(), &["keygen", "--kid", "k1", "--out", "keys"])
            .status
            .success()
    );
}

#[test]
fn verify_with_a_broken_config_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.toml"),
        "[cache]\nallow_ttl_s = \"soon\"\n",
    )
    .unwrap();
    let v = usher(dir.path(), &["verify", "--stream", "vod", "--token", "x"]);
    assert_eq!(v.status.code(), Some(2));
}

#[test]
fn check_config_accepts_the_bundled_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = usher(root, &["check-config", "--config", "config.toml"]);
    assert!(o.status.success(), "{o:?}");
}

#[test]
fn check_config_lists_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let broken = r#"
[control]
listen = "0.0.0.0:4251"
[cache]
deny_ttl_s = 0
[default_policy]
type = "jwt"
[log]
format = "xml"
[[tenants]]
id = "t1"
[[keys]]
kid = "k1"
tenant = "t1"
public_key_pem = "not a key"
[[keys]]
kid = "k2"
tenant = "ghost"
alg = "XS999"
public_key_pem = "x"
[[policies]]
object = "vod"
tenant = "t1"
type = "jwt"
url = "https://example.invalid/"
[[policies]]
object = "hook"
tenant = "t1"
type = "webhook"
url = "https://127.0.0.1/hook"
secret = "s"
[[policies]]
object = "nosecret"
tenant = "t1"
type = "webhook"
url = "https://10.0.0.1/"
"#;
    std::fs::write(dir.path().join("config.toml"), broken).unwrap();
    let o = usher(dir.path(), &["check-config"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    for needle in [
        "deny_ttl_s",
        "default_policy.type",
        "log.format",
        "keys[kid=\"k1\"]",
        "tenant \"ghost\"",
        "unknown alg",
        "policies[object=\"vod\"]",
        "needs a non-empty secret",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
}

#[test]
fn check_config_refuses_webhooks_to_refused_addresses_and_open_control() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = r#"
[control]
listen = "0.0.0.0:4251"
[[tenants]]
id = "t1"
[[policies]]
object = "hook"
tenant = "t1"
type = "webhook"
url = "https://127.0.0.1/hook"
secret = "s"
"#;
    std::fs::write(dir.path().join("config.toml"), cfg).unwrap();
    let out = stdout(&usher(dir.path(), &["check-config"]));
    assert!(
        out.contains("not a loopback address and no control token"),
        "{out}"
    );
    assert!(
        out.contains("127.0.0.1 is not a globally routable"),
        "{out}"
    );
}

#[test]
fn verify_reports_the_viewer_named_by_the_tenants_viewer_claim() {
    let dir = dir_with_key();
    let d = dir.path();
    let config = CONFIG
        .replace("id = \"t1\"", "id = \"t1\"\nviewer_claim = \"uid\"")
        .replace(
            "required_audience = \"viewer\"",
            "required_audience = \"viewer\"\ncut_at_exp = true\nmax_sessions_per_viewer = 2\non_exceed = \"end-oldest\"",
        );
    std::fs::write(d.join("config.toml"), config).unwrap();
    let check = usher(d, &["check-config", "--config", "config.toml"]);
    assert!(check.status.success(), "{check:?}");
    let sign = usher(
        d,
        &[
            "sign",
            "--key",
            "keys/k1.key.pem",
            "--kid",
            "k1",
            "--aud",
            "viewer",
            "--claim",
            "uid=\"u-7\"",
        ],
    );
    let token = stdout(&sign).trim().to_string();
    let verify = usher(d, &["verify", "--stream", "vod", "--token", &token]);
    assert_eq!(verify.status.code(), Some(0), "{verify:?}");
    let json: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(json["viewer"], "u-7", "{json}");
}

#[test]
fn check_config_refuses_an_unknown_policy_type_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let broken = "[default_policy]\ntype = \"maybe\"\n";
    std::fs::write(dir.path().join("config.toml"), broken).unwrap();
    let o = usher(dir.path(), &["check-config"]);
    assert_ne!(o.status.code(), Some(0));
    let out = format!("{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("maybe") && out.contains("type"), "{out}");
}

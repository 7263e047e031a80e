//! Every JWT reason of SPEC §3, through the real daemon, with tokens made by `usher`'s own
//! keygen and signer and by hand where a token must be malformed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::daemon::Daemon;
use common::mist::{session_id, user_new, user_new_body};
use usher::keys::KeyAlg;
use usher::keys::keygen::write_key_files;
use usher::keys::sign::{SignOptions, sign};

struct Setup {
    daemon: Daemon,
    k1: Vec<u8>,
    other: Vec<u8>,
    _keys: tempfile::TempDir,
}

fn setup() -> Setup {
    let keys = tempfile::tempdir().unwrap();
    let k1 = write_key_files(keys.path(), "k1", KeyAlg::Es256, None).unwrap();
    let other = write_key_files(keys.path(), "other", KeyAlg::Es256, None).unwrap();
    let config = format!(
        r#"
[[tenants]]
id = "t1"
[[tenants]]
id = "t2"
[[keys]]
kid = "k1"
tenant = "t1"
public_key_file = "{}"
[[policies]]
object = "vod"
tenant = "t1"
type = "jwt"
[[policies]]
object = "aud"
tenant = "t1"
type = "jwt"
required_audience = "viewer"
[[policies]]
object = "pro"
tenant = "t1"
type = "jwt"
required_claims = {{ tier = "pro" }}
[[policies]]
object = "live"
tenant = "t1"
type = "jwt"
object_claim = "sub"
[[policies]]
object = "short"
tenant = "t1"
type = "jwt"
max_lifetime_s = 3600
[[policies]]
object = "nokeys"
tenant = "t2"
type = "jwt"
[[policies]]
object = "k9only"
tenant = "t1"
type = "jwt"
allowed_kids = ["k9"]
"#,
        k1.public_key.as_ref().unwrap().display()
    );
    Setup {
        daemon: Daemon::start(&config),
        k1: std::fs::read(&k1.private_key).unwrap(),
        other: std::fs::read(&other.private_key).unwrap(),
        _keys: keys,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn token(key: &[u8], kid: &str, edit: impl FnOnce(&mut SignOptions)) -> String {
    let mut opts = SignOptions {
        kid: kid.into(),
        alg: KeyAlg::Es256,
        ..SignOptions::default()
    };
    edit(&mut opts);
    sign(key, &opts, now()).unwrap()
}

/// A token with a hand-made header, signed by `key` over the new header (so only the header differs).
fn with_header(key: &[u8], header: &str) -> String {
    let good = token(key, "k1", |_| {});
    let payload = good.split('.').nth(1).unwrap();
    let signing_input = format!("{}.{payload}", B64.encode(header));
    let ek = jsonwebtoken::EncodingKey::from_ec_pem(key).unwrap();
    let sig = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &ek,
        jsonwebtoken::Algorithm::ES256,
    )
    .unwrap();
    format!("{signing_input}.{sig}")
}

impl Setup {
    /// Asks USER_NEW with the token as the `jwt` query parameter; returns the answer and the
    /// reason the daemon logged (`allowed` when it allowed).
    async fn ask(&self, stream: &str, tok: &str, ip: &str) -> (String, String) {
        let url = format!("http://127.0.0.1:8080/hls/{stream}/index.m3u8?jwt={tok}");
        self.ask_raw(stream, tok, &url, ip).await
    }

    async fn ask_raw(&self, stream: &str, line3: &str, url: &str, ip: &str) -> (String, String) {
        let session = session_id(&format!("{stream}{ip}{line3}{url}"));
        let a = user_new(
            self.daemon.trigger,
            &user_new_body(stream, ip, line3, url, &session, true),
        )
        .await;
        if a.body == "true" {
            return (a.body, "allowed".into());
        }
        let d = &self.daemon;
        d.wait_for_log("the denial", |l| {
            l["message"] == "denied" && l["session"] == session.as_str()
        })
        .await;
        let reason = d
            .logs()
            .into_iter()
            .find(|l| l["message"] == "denied" && l["session"] == session.as_str())
            .map(|l| l["reason"].as_str().unwrap_or("").to_string())
            .unwrap_or_default();
        (a.body, reason)
    }
}

async fn reason(s: &Setup, stream: &str, tok: &str) -> String {
    let (answer, reason) = s.ask(stream, tok, "127.0.0.1").await;
    assert_eq!(answer == "true", reason == "allowed");
    reason
}

#[tokio::test]
async fn valid_es256_token_is_allowed() {
    let s = setup();
    assert_eq!(
        reason(&s, "vod", &token(&s.k1, "k1", |_| {})).await,
        "allowed"
    );
}

#[tokio::test]
async fn bearer_token_missing_its_first_character_is_repaired() {
    let s = setup();
    let t = token(&s.k1, "k1", |_| {});
    let (answer, _) = s
        .ask_raw(
            "vod",
            &t[1..],
            "http://127.0.0.1:8080/hls/vod/index.m3u8",
            "127.0.0.1",
        )
        .await;
    assert_eq!(answer, "true");
}

#[tokio::test]
async fn no_token_is_denied_with_missing_token() {
    let s = setup();
    let (_, r) = s
        .ask_raw(
            "vod",
            "a1b2c3d4",
            "http://127.0.0.1:8080/hls/vod/index.m3u8",
            "127.0.0.1",
        )
        .await;
    assert_eq!(r, "missing-token");
}

#[tokio::test]
async fn garbage_is_denied_with_jwt_not_a_jws() {
    let s = setup();
    assert_eq!(reason(&s, "vod", "abc").await, "jwt-not-a-jws");
    assert_eq!(reason(&s, "vod", "a.b.c").await, "jwt-not-a-jws");
    // Over 8 KiB; sent only in the URL (line 3 a checksum) so the body stays under 16 KiB.
    let huge = format!("eyJ{}.e30.sig", "A".repeat(8300));
    let url = format!("http://127.0.0.1:8080/hls/vod/index.m3u8?jwt={huge}");
    let (_, r) = s.ask_raw("vod", "a1b2c3", &url, "127.0.0.1").await;
    assert_eq!(r, "jwt-not-a-jws");
}

#[tokio::test]
async fn alg_none_and_crit_are_denied_with_jwt_bad_header() {
    let s = setup();
    for header in [
        r#"{"alg":"none","kid":"k1"}"#,
        r#"{"alg":"NoNe","kid":"k1"}"#,
        r#"{"alg":"ES256","kid":"k1","crit":["x"]}"#,
    ] {
        assert_eq!(
            reason(&s, "vod", &with_header(&s.k1, header)).await,
            "jwt-bad-header",
            "{header}"
        );
    }
}

#[tokio::test]
async fn header_without_kid_is_denied_with_jwt_missing_kid() {
    let s = setup();
    let t = with_header(&s.k1, r#"{"alg":"ES256","typ":"JWT"}"#);
    assert_eq!(reason(&s, "vod", &t).await, "jwt-missing-kid");
}

#[tokio::test]
async fn tenant_without_keys_is_denied_with_no_active_keys() {
    let s = setup();
    assert_eq!(
        reason(&s, "nokeys", &token(&s.k1, "k1", |_| {})).await,
        "no-active-keys"
    );
}

#[tokio::test]
async fn unknown_or_disallowed_kid_is_denied_with_jwt_unknown_kid() {
    let s = setup();
    assert_eq!(
        reason(&s, "vod", &token(&s.other, "other", |_| {})).await,
        "jwt-unknown-kid"
    );
    assert_eq!(
        reason(&s, "k9only", &token(&s.k1, "k1", |_| {})).await,
        "jwt-unknown-kid"
    );
}

#[tokio::test]
async fn header_alg_other_than_the_keys_is_denied_with_jwt_wrong_alg() {
    let s = setup();
    let t = with_header(&s.k1, r#"{"alg":"ES384","kid":"k1"}"#);
    assert_eq!(reason(&s, "vod", &t).await, "jwt-wrong-alg");
    let t = with_header(&s.k1, r#"{"alg":"HS256","kid":"k1"}"#);
    assert_eq!(reason(&s, "vod", &t).await, "jwt-wrong-alg");
}

#[tokio::test]
async fn signature_by_another_key_is_denied_with_jwt_sig_fail() {
    let s = setup();
    assert_eq!(
        reason(&s, "vod", &token(&s.other, "k1", |_| {})).await,
        "jwt-sig-fail"
    );
    let good = token(&s.k1, "k1", |_| {});
    let (head, _) = good.rsplit_once('.').unwrap();
    let zero = format!("{head}.{}", B64.encode([0u8; 64]));
    assert_eq!(reason(&s, "vod", &zero).await, "jwt-sig-fail");
}

#[tokio::test]
async fn token_without_numeric_exp_is_denied_with_jwt_missing_exp() {
    let s = setup();
    let t = token(&s.k1, "k1", |o| {
        o.claims.push(("exp".into(), serde_json::json!("tomorrow")))
    });
    assert_eq!(reason(&s, "vod", &t).await, "jwt-missing-exp");
}

#[tokio::test]
async fn expired_token_is_denied_with_jwt_expired() {
    let s = setup();
    let t = token(&s.k1, "k1", |o| o.exp_in_s = Some(-120));
    assert_eq!(reason(&s, "vod", &t).await, "jwt-expired");
    let within_leeway = token(&s.k1, "k1", |o| o.exp_in_s = Some(-30));
    assert_eq!(reason(&s, "vod", &within_leeway).await, "allowed");
}

#[tokio::test]
async fn future_nbf_is_denied_with_jwt_not_yet_valid() {
    let s = setup();
    let t = token(&s.k1, "k1", |o| o.nbf_in_s = Some(600));
    assert_eq!(reason(&s, "vod", &t).await, "jwt-not-yet-valid");
}

#[tokio::test]
async fn exp_beyond_max_lifetime_is_denied_with_jwt_lifetime_too_long() {
    let s = setup();
    let t = token(&s.k1, "k1", |o| o.exp_in_s = Some(7200));
    assert_eq!(reason(&s, "short", &t).await, "jwt-lifetime-too-long");
    let ok = token(&s.k1, "k1", |o| o.exp_in_s = Some(1800));
    assert_eq!(reason(&s, "short", &ok).await, "allowed");
}

#[tokio::test]
async fn wrong_audience_is_denied_with_jwt_aud_mismatch() {
    let s = setup();
    let t = token(&s.k1, "k1", |o| o.aud = Some("other".into()));
    assert_eq!(reason(&s, "aud", &t).await, "jwt-aud-mismatch");
    let ok = token(&s.k1, "k1", |o| o.aud = Some("viewer".into()));
    assert_eq!(reason(&s, "aud", &ok).await, "allowed");
}

#[tokio::test]
async fn required_claim_or_object_claim_mismatch_is_denied_with_jwt_claim_mismatch() {
    let s = setup();
    let free = token(&s.k1, "k1", |o| {
        o.claims.push(("tier".into(), serde_json::json!("free")))
    });
    assert_eq!(reason(&s, "pro", &free).await, "jwt-claim-mismatch");
    let pro = token(&s.k1, "k1", |o| {
        o.claims.push(("tier".into(), serde_json::json!("pro")))
    });
    assert_eq!(reason(&s, "pro", &pro).await, "allowed");
    let sub = token(&s.k1, "k1", |o| o.sub = Some("abc123".into()));
    assert_eq!(reason(&s, "live+abc123", &sub).await, "allowed");
    assert_eq!(reason(&s, "live+zzz999", &sub).await, "jwt-claim-mismatch");
}

#[tokio::test]
async fn viewer_outside_ipa_is_denied_with_jwt_ip_mismatch() {
    let s = setup();
    let t = token(&s.k1, "k1", |o| o.ipa = Some("10.0.0.0/8".into()));
    let (_, r) = s.ask("vod", &t, "127.0.0.1").await;
    assert_eq!(r, "jwt-ip-mismatch");
    let (answer, _) = s.ask("vod", &t, "10.1.2.3").await;
    assert_eq!(answer, "true");
}

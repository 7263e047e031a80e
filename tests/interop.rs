//! Every algorithm, every way a key goes in, against another implementation (issue #34): tokens
//! PyJWT made (`tests/data/interop/pyjwt_vectors.json`, written by `make_vectors.py` there) verify
//! in usher — or are refused with the reason the vector names — with the key given as the config
//! file gives it, as the control API gives it and as a JWKS gives it; and tokens `usher sign` makes
//! with keys `usher keygen` made verify in PyJWT.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use usher::jwt::{self, JwtContext, Kept};
use usher::keys::material::{self, KeyMaterial};
use usher::keys::{KeyAlg, KeyFamily, KeySource, TenantKeys, VerifyingKey};
use usher::policy::model::JwtPolicy;
use usher::spec::KeySpec;

/// One key and token of the committed vectors.
#[derive(Debug, Deserialize)]
struct Vector {
    kid: String,
    alg: String,
    #[serde(default)]
    public_pem: Option<String>,
    #[serde(default)]
    secret_b64: Option<String>,
    jwk: Value,
    token: String,
    /// `allow`, a reason code, or `refused` (the key itself is refused).
    expect: String,
    /// `entry_points` only: `config`, `api` or `jwks`.
    #[serde(default)]
    entry: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Vectors {
    generator: String,
    vectors: Vec<Vector>,
    entry_points: Vec<Vector>,
}

fn vectors() -> Vectors {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/interop/pyjwt_vectors.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

impl Vector {
    fn alg(&self) -> KeyAlg {
        KeyAlg::parse(&self.alg).unwrap()
    }

    fn secret(&self) -> Vec<u8> {
        URL_SAFE_NO_PAD
            .decode(self.secret_b64.as_deref().unwrap())
            .unwrap()
    }

    /// Every way this vector's key goes into usher, each loaded: the config file (a PEM inline
    /// and in a file, a JWK, a secret file), the control API (a PEM, a JWK — `oct` for HS*), and
    /// a tenant's JWKS.
    fn loaded_every_way(&self, dir: &Path) -> Vec<(&'static str, Result<VerifyingKey, String>)> {
        let spec = |f: &dyn Fn(&mut KeySpec)| {
            let mut s = KeySpec {
                tenant: "t1".into(),
                alg: Some(self.alg.clone()),
                ..KeySpec::default()
            };
            f(&mut s);
            s
        };
        let mut out = Vec::new();
        if let Some(pem) = &self.public_pem {
            let file = dir.join(format!("{}.pub.pem", self.kid));
            std::fs::write(&file, pem).unwrap();
            let inline = spec(&|s| s.public_key_pem = Some(pem.clone()));
            let in_file = spec(&|s| s.public_key_file = Some(file.clone()));
            out.push((
                "config pem",
                inline.load(&self.kid, KeySource::Config, Some(dir)),
            ));
            out.push((
                "config pem file",
                in_file.load(&self.kid, KeySource::Config, Some(dir)),
            ));
            out.push(("api pem", inline.load(&self.kid, KeySource::Api, None)));
        } else {
            let file = dir.join(format!("{}.secret", self.kid));
            std::fs::write(&file, self.secret()).unwrap();
            let in_file = spec(&|s| s.secret_file = Some(file.clone()));
            out.push((
                "config secret_file",
                in_file.load(&self.kid, KeySource::Config, Some(dir)),
            ));
        }
        let jwk = spec(&|s| {
            s.alg = None;
            s.jwk = Some(self.jwk.clone());
        });
        out.push((
            "config jwk",
            jwk.load(&self.kid, KeySource::Config, Some(dir)),
        ));
        out.push(("api jwk", jwk.load(&self.kid, KeySource::Api, None)));
        let from_jwks = material::load(
            &self.kid,
            "t1",
            None,
            KeyMaterial::Jwk(&self.jwk),
            KeySource::Jwks,
        )
        .map_err(|e| e.to_string());
        out.push(("jwks", from_jwks));
        out
    }
}

/// The reason code usher gives the token with only `key` active, or `allow`.
fn verdict(token: &str, key: VerifyingKey) -> String {
    let mut keys = TenantKeys::default();
    keys.insert(std::sync::Arc::new(key));
    let ctx = JwtContext {
        object_id: "abc123",
        viewer_ip: "127.0.0.1",
        now_unix_s: 1_800_000_000.0,
        keep: Kept::All,
    };
    match jwt::check(token, &keys, &JwtPolicy::default(), &ctx) {
        Ok(v) => {
            assert_eq!(v.claims["sub"], "abc123");
            "allow".into()
        }
        Err(r) => r.reason.as_str().into(),
    }
}

#[test]
fn pyjwt_tokens_verify_or_are_refused_with_the_key_given_every_way() {
    let all = vectors();
    assert!(all.generator.starts_with("PyJWT "), "{}", all.generator);
    let dir = tempfile::tempdir().unwrap();
    let mut cells = 0;
    for v in all.vectors.iter().chain(&all.entry_points) {
        let alg = v.alg();
        for (way, loaded) in v.loaded_every_way(dir.path()) {
            let at = format!("{} ({}) given as {way}", v.kid, v.alg);
            // A JWKS is public: it never gives a secret. The config file keeps its old 16-byte
            // floor for HS256; every other way asks RFC 7518's 32. (An entry point's `refused`
            // is the JWKS's.)
            let short_secret = v.expect == "refused" && v.entry.is_none();
            let refused = short_secret && !(way.starts_with("config") && alg == KeyAlg::Hs256)
                || (way == "jwks" && alg.family() == KeyFamily::Hmac);
            match loaded {
                Err(e) => assert!(refused, "{at}: refused: {e}"),
                Ok(key) => {
                    assert!(!refused, "{at}: taken, but must be refused");
                    assert_eq!(key.alg, alg, "{at}");
                    let expect = if v.expect == "refused" {
                        "allow"
                    } else {
                        &v.expect
                    };
                    assert_eq!(verdict(&v.token, key), expect, "{at}");
                }
            }
            cells += 1;
        }
    }
    assert!(cells > 300, "{cells} cells");
}

#[test]
fn every_algorithm_is_covered_by_the_vectors_with_each_rsa_size_and_secret_length() {
    let all = vectors();
    for alg in KeyAlg::ALL {
        assert!(
            all.vectors
                .iter()
                .any(|v| v.alg() == alg && v.expect == "allow"),
            "{alg} has a token that verifies"
        );
        for entry in ["config", "api", "jwks"] {
            assert!(
                all.entry_points
                    .iter()
                    .any(|v| v.alg() == alg && v.entry.as_deref() == Some(entry)),
                "{alg} through {entry}"
            );
        }
    }
    for bits in [2048, 3072, 4096] {
        for alg in ["rs256", "rs384", "rs512", "ps256", "ps384", "ps512"] {
            let kid = format!("{alg}-{bits}");
            assert!(all.vectors.iter().any(|v| v.kid == kid), "{kid}");
        }
    }
    for (alg, min) in [
        (KeyAlg::Hs256, 32),
        (KeyAlg::Hs384, 48),
        (KeyAlg::Hs512, 64),
    ] {
        let lengths: Vec<usize> = all
            .vectors
            .iter()
            .filter(|v| v.alg() == alg && v.kid.chars().last().unwrap().is_ascii_digit())
            .map(|v| v.secret().len())
            .collect();
        assert!(
            lengths.contains(&min) && lengths.contains(&(min - 1)),
            "{alg}: {lengths:?}"
        );
        assert!(
            lengths.iter().any(|n| *n > 128),
            "{alg}: longer than a block"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The other direction: usher keygen and usher sign, verified by PyJWT.
// ---------------------------------------------------------------------------------------------

/// A `python3` that can import PyJWT with its cryptography backend. On a machine without it the
/// test installs the pinned version with pip (CI's `.ci/run` does so up front), so `cargo test`
/// is all a newcomer runs; when even that fails, the test fails saying how to install it.
fn python_with_pyjwt() -> PathBuf {
    let python = PathBuf::from("python3");
    let has = || {
        Command::new(&python)
            .args(["-c", "import jwt, cryptography"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has() {
        let _ = Command::new(&python)
            .args(["-m", "pip", "install", "--quiet", "PyJWT[crypto]==2.15.1"])
            .status();
    }
    assert!(
        has(),
        "the interop test needs python3 with PyJWT: pip install 'PyJWT[crypto]==2.15.1'"
    );
    python
}

#[test]
fn tokens_usher_signs_with_keys_usher_makes_verify_in_pyjwt() {
    let dir = tempfile::tempdir().unwrap();
    let mut checks = Vec::new();
    for alg in KeyAlg::ALL {
        let kid = format!("k-{}", alg.as_str().to_lowercase());
        let out = common::cli::usher(
            dir.path(),
            &[
                "keygen",
                "--kid",
                &kid,
                "--alg",
                alg.as_str(),
                "--out",
                "keys",
            ],
        );
        assert!(out.status.success(), "keygen {alg}: {out:?}");
        let printed = String::from_utf8(out.stdout).unwrap();
        let keys = dir.path().join("keys");
        let (key_file, key) = if alg.family() == KeyFamily::Hmac {
            let secret = std::fs::read(keys.join(format!("{kid}.secret"))).unwrap();
            assert!(
                !printed.contains(&URL_SAFE_NO_PAD.encode(&secret)),
                "keygen never prints a secret"
            );
            let file = keys.join(format!("{kid}.secret"));
            (file.clone(), json!({"secret_file": file}))
        } else {
            let public = std::fs::read_to_string(keys.join(format!("{kid}.pub.pem"))).unwrap();
            (
                keys.join(format!("{kid}.key.pem")),
                json!({"public_pem": public}),
            )
        };
        let signed = common::cli::usher(
            dir.path(),
            &[
                "sign",
                "--key",
                key_file.to_str().unwrap(),
                "--kid",
                &kid,
                "--alg",
                alg.as_str(),
                "--sub",
                "abc123",
                "--aud",
                "usher-interop",
            ],
        );
        assert!(signed.status.success(), "sign {alg}: {signed:?}");
        let token = String::from_utf8(signed.stdout).unwrap().trim().to_owned();
        let mut check = json!({"alg": alg.as_str(), "kid": kid, "token": token,
                               "sub": "abc123", "aud": "usher-interop"});
        check
            .as_object_mut()
            .unwrap()
            .extend(key.as_object().unwrap().clone());
        checks.push(check);
    }
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/interop/verify_with_pyjwt.py");
    let mut child = Command::new(python_with_pyjwt())
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(Value::Array(checks).to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(
        out.status.success(),
        "PyJWT refused some: {report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        report.lines().filter(|l| l.starts_with("ok ")).count(),
        KeyAlg::ALL.len()
    );
}

// ---------------------------------------------------------------------------------------------
// A running usher: each algorithm's key given in the config file, over the control API and by a
// tenant's JWKS, and PyJWT's token for it answered by USER_NEW as MistServer asks.
// ---------------------------------------------------------------------------------------------

/// The tenant (and the object of its `jwt` policy) a vector's key belongs to: ten keys at most per
/// tenant, so the shared secrets get tenants of their own.
fn tenant_of(v: &Vector) -> String {
    let family = if v.alg().family() == KeyFamily::Hmac {
        "hs"
    } else {
        "pk"
    };
    format!("{}-{family}", v.entry.as_deref().unwrap())
}

/// The config file's `[[keys]]` entry for a `config` vector: a PEM file or a secret file.
fn config_key(v: &Vector, dir: &Path) -> String {
    let tenant = tenant_of(v);
    match &v.public_pem {
        Some(pem) => {
            let file = dir.join(format!("{}.pub.pem", v.kid));
            std::fs::write(&file, pem).unwrap();
            format!(
                "[[keys]]\nkid = \"{}\"\ntenant = \"{tenant}\"\nalg = \"{}\"\npublic_key_file = \"{}\"\n",
                v.kid,
                v.alg,
                file.display()
            )
        }
        None => {
            let file = dir.join(format!("{}.secret", v.kid));
            std::fs::write(&file, v.secret()).unwrap();
            format!(
                "[[keys]]\nkid = \"{}\"\ntenant = \"{tenant}\"\nalg = \"{}\"\nsecret_file = \"{}\"\n",
                v.kid,
                v.alg,
                file.display()
            )
        }
    }
}

async fn ask(d: &common::daemon::Daemon, v: &Vector, session: &str) -> String {
    let stream = tenant_of(v);
    let url = format!(
        "http://127.0.0.1:8080/hls/{stream}/index.m3u8?jwt={}",
        v.token
    );
    let body = common::mist::user_new_body(
        &stream,
        "127.0.0.1",
        &v.token,
        &url,
        &common::mist::session_id(session),
        true,
    );
    common::mist::user_new(d.trigger, &body).await.body
}

#[tokio::test]
async fn a_running_usher_takes_every_algorithm_from_config_api_and_jwks() {
    use common::jwks_server::{JwksServer, Reply};
    let all = vectors();
    let entry = |e: &str| -> Vec<&Vector> {
        all.entry_points
            .iter()
            .filter(|v| v.entry.as_deref() == Some(e))
            .collect()
    };
    let jwks_keys: Vec<Value> = entry("jwks").iter().map(|v| v.jwk.clone()).collect();
    let server = JwksServer::start("127.0.0.2".parse().unwrap(), Reply::keys(&jwks_keys)).await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().to_path_buf();
    let mut config = format!(
        "{}\n[outbound]\nallow_cidrs = [\"127.0.0.2/32\"]\nca_file = \"{}\"\nnameservers = [\"127.0.0.1:9\"]\n\
         [[tenants]]\nid = \"jwks-pk\"\njwks_url = \"{url}\"\n[[tenants]]\nid = \"jwks-hs\"\njwks_url = \"{url}\"\n\
         [[tenants]]\nid = \"config-pk\"\n[[tenants]]\nid = \"config-hs\"\n\
         [[tenants]]\nid = \"api-pk\"\n[[tenants]]\nid = \"api-hs\"\n",
        common::daemon::base_config(&dir.join("data")),
        server.ca_file(),
        url = server.url(),
    );
    for tenant in [
        "config-pk",
        "config-hs",
        "api-pk",
        "api-hs",
        "jwks-pk",
        "jwks-hs",
    ] {
        config.push_str(&format!(
            "[[policies]]\nobject = \"{tenant}\"\ntenant = \"{tenant}\"\ntype = \"jwt\"\n"
        ));
    }
    for v in entry("config") {
        config.push_str(&config_key(v, &dir));
    }
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, &config).unwrap();
    let start = {
        let (dir, config) = (dir.clone(), config.clone());
        move || common::daemon::Daemon::start_with(&dir, &config).expect("daemon starts")
    };
    let d = tokio::task::spawn_blocking(start.clone()).await.unwrap();
    let api = common::api::Api::new(&d);
    for v in entry("api") {
        let (status, body) = api
            .call(
                "PUT",
                &format!("/v1/keys/{}", v.kid),
                Some(json!({"tenant": tenant_of(v), "jwk": v.jwk})),
            )
            .await;
        assert_eq!(status, 201, "{} over the API: {body}", v.kid);
        assert_eq!(body["alg"], v.alg.as_str());
        if v.secret_b64.is_some() {
            assert_eq!(body["jwk"]["k"], "********", "{body}");
        }
    }
    // Refused when set (422 `invalid-key`), and the refusal does not echo the secret: a secret
    // shorter than its hash, an RSA key under 2048 bits, a raw `secret` (config file only).
    for v in all.vectors.iter().filter(|v| v.expect == "refused") {
        let (status, body) = api
            .call(
                "PUT",
                &format!("/v1/keys/{}", v.kid),
                Some(json!({"tenant": "api-hs", "jwk": v.jwk})),
            )
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (422, Some("invalid-key")),
            "{}: {body}",
            v.kid
        );
        if let Some(k) = &v.secret_b64 {
            assert!(!body.to_string().contains(k.as_str()), "{body}");
        }
    }
    let (status, body) = api
        .call(
            "PUT",
            "/v1/keys/raw",
            Some(json!({"tenant": "api-hs", "alg": "HS256", "secret": "x".repeat(40)})),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad-body")),
        "{body}"
    );
    for (i, v) in all.entry_points.iter().enumerate() {
        let want = if v.expect == "allow" { "true" } else { "false" };
        let got = ask(&d, v, &format!("s{i}")).await;
        assert_eq!(
            got,
            want,
            "{} via {:?}; log:\n{}",
            v.kid,
            v.entry,
            d.log_text()
        );
    }
    // Shown masked, logged never: no secret of any entry point appears in a read or in the log.
    let (_, listed) = api.call("GET", "/v1/keys", None).await;
    let shown = listed.to_string();
    for v in all.entry_points.iter().filter(|v| v.secret_b64.is_some()) {
        let k = v.secret_b64.as_deref().unwrap();
        assert!(!shown.contains(k), "{} shown: {shown}", v.kid);
        assert!(!d.log_text().contains(k), "{} logged", v.kid);
    }
    let hs = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["jwk"]["kty"] == "oct");
    assert_eq!(
        hs.clone().count(),
        6,
        "config and API shared secrets: {listed}"
    );
    assert!(hs.clone().all(|k| k["jwk"]["k"] == "********"), "{listed}");
    // `usher verify` reads the same config file: every config key verifies its token offline.
    for v in entry("config") {
        let out = common::cli::usher(
            &dir,
            &[
                "--config",
                config_path.to_str().unwrap(),
                "verify",
                "--stream",
                &tenant_of(v),
                "--token",
                &v.token,
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "usher verify {}: {out:?}",
            v.kid
        );
    }
    // The API's keys, secrets included, are stored: a restarted usher verifies with them.
    d.stop();
    let d = tokio::task::spawn_blocking(start).await.unwrap();
    for (i, v) in entry("api").into_iter().enumerate() {
        assert_eq!(
            ask(&d, v, &format!("r{i}")).await,
            "true",
            "{} after a restart",
            v.kid
        );
    }
}

//! The wall clock behind token times: a clock that cannot say what time it is denies, never
//! reads as 1970 (where every `exp` is in the future).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use usher::config::Config;
use usher::decision::{Mode, OwnedRequest};
use usher::keys::KeyAlg;
use usher::keys::keygen::write_key_files;
use usher::keys::sign::{SignOptions, sign};
use usher::reason::Reason;

fn before_1970() -> SystemTime {
    UNIX_EPOCH - Duration::from_secs(86_400)
}

/// Collects what tracing writes while it is the thread's default subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Regression: a clock before 1970 made `now` 0, so every token's `exp` was in the future.
#[tokio::test]
async fn clock_before_1970_denies_with_internal_error_and_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_key_files(dir.path(), "k1", KeyAlg::Es256, None).unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(
        &path,
        format!(
            "[state]\ndir = \"{}\"\n[[tenants]]\nid = \"t1\"\n[[keys]]\nkid = \"k1\"\ntenant = \"t1\"\n\
             public_key_file = \"{}\"\n[[policies]]\nobject = \"vod\"\ntenant = \"t1\"\ntype = \"jwt\"\n",
            dir.path().join("data").display(),
            key.public_key.as_ref().unwrap().display()
        ),
    )
    .unwrap();
    let config = Config::load(&path).unwrap();
    let loaded = usher::setup::load_config(config, dir.path(), None)
        .await
        .unwrap();
    let private = std::fs::read(&key.private_key).unwrap();
    let opts = SignOptions {
        kid: "k1".into(),
        ..SignOptions::default()
    };
    // exp = 3600: valid if "now" were read as 0, long expired by any real clock.
    let token_of_1970 = sign(&private, &opts, 0).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let token_of_today = sign(&private, &opts, now.as_secs() as i64).unwrap();

    let honest = loaded.evaluator.clone();
    let broken = loaded
        .evaluator
        .with_clock(usher::clock::Clock::new(before_1970));
    let snapshot = loaded.snapshot;
    let entry = snapshot.resolve("vod").clone();
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .json()
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    for token in [&token_of_1970, &token_of_today] {
        let request = OwnedRequest::dry_run("vod", token, "203.0.113.7", "HLS");
        let d = broken
            .evaluate(&snapshot, &entry, &request.as_request(), Mode::Live)
            .await;
        assert!(!d.allowed, "{d:?}");
        assert_eq!(d.reason, Reason::InternalError, "{d:?}");
    }
    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert_eq!(
        log.matches("internal-error").count(),
        2,
        "one log line per denial: {log}"
    );
    // The same evaluator with a working clock judges the tokens on their merits.
    let request = OwnedRequest::dry_run("vod", &token_of_1970, "203.0.113.7", "HLS");
    let d = honest
        .evaluate(&snapshot, &entry, &request.as_request(), Mode::Live)
        .await;
    assert_eq!(d.reason, Reason::JwtExpired, "{d:?}");
    let request = OwnedRequest::dry_run("vod", &token_of_today, "203.0.113.7", "HLS");
    let d = honest
        .evaluate(&snapshot, &entry, &request.as_request(), Mode::Live)
        .await;
    assert!(d.allowed, "{d:?}");
}

#[test]
fn a_clock_before_1970_gives_no_now() {
    use usher::clock::{BeforeEpoch, Clock};
    assert_eq!(Clock::new(before_1970).unix_s(), Err(BeforeEpoch));
    assert_eq!(Clock::new(|| UNIX_EPOCH).unix_s(), Ok(0.0));
    assert!(Clock::default().unix_s().is_ok_and(|s| s > 1.7e9));
}

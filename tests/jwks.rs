//! Tenant keys from a JWKS URL (SPEC §2), driven through `JwksKeys` against a real HTTPS JWKS
//! endpoint on 127.0.0.2 (allowed through `[outbound] allow_cidrs`, trusted through `ca_file`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::jwks_server::{JwksServer, Reply};
use serde_json::Value;
use usher::config::OutboundConfig;
use usher::jwks::{JwksKeys, JwksOptions, RefreshBounds};
use usher::jwt::{self, JwtContext, Rejected, Verified};
use usher::keys::TenantKeys;
use usher::keys::keygen::{Es256KeyPair, generate_es256};
use usher::keys::sign::{SignOptions, sign};
use usher::net::client::GuardedClient;
use usher::policy::model::JwtPolicy;
use usher::reason::Reason;

const TENANT: &str = "t1";
const WAIT: Duration = Duration::from_secs(10);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// A client that may dial only 127.0.0.2 and trusts `ca_file`. The name server is never asked:
/// every test URL is an IP literal.
fn client(ca_file: String) -> GuardedClient {
    let outbound = OutboundConfig {
        allow_cidrs: vec!["127.0.0.2/32".parse().expect("cidr")],
        allow_http: false,
        ca_file,
        nameservers: vec!["127.0.0.1:9".parse().expect("addr")],
    };
    GuardedClient::new(&outbound).expect("client builds")
}

struct Lab {
    server: JwksServer,
    jwks: JwksKeys,
}

impl Lab {
    /// A JWKS server answering `reply` and a `JwksKeys` for tenant t1 pointed at it.
    async fn start(reply: Reply, options: JwksOptions) -> Lab {
        let server = JwksServer::start(ip("127.0.0.2"), reply).await;
        let jwks = JwksKeys::start(
            vec![(TENANT.into(), server.url())],
            client(server.ca_file()),
            options,
        );
        Lab { server, jwks }
    }

    /// Waits until the set changed `n` times in all.
    async fn wait_for_revision(&self, n: u64) {
        let mut rx = self.jwks.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|r| *r >= n))
            .await
            .expect("the set changes in time")
            .expect("sender alive");
    }

    fn keys(&self) -> Arc<TenantKeys> {
        self.jwks.keys(TENANT).expect("keys fetched")
    }
}

struct Signer {
    kid: &'static str,
    pair: Es256KeyPair,
}

impl Signer {
    fn new(kid: &'static str) -> Signer {
        Signer {
            kid,
            pair: generate_es256(kid).expect("keygen"),
        }
    }

    fn jwk(&self) -> Value {
        self.pair.public_jwk.clone()
    }

    fn token(&self) -> String {
        let opts = SignOptions {
            kid: self.kid.into(),
            ..SignOptions::default()
        };
        sign(self.pair.private_pem.as_bytes(), &opts, now() as i64).expect("signs")
    }
}

fn now() -> f64 {
    usher::clock::Clock::default()
        .unix_s()
        .expect("the clock reads after 1970")
}

fn check(token: &str, keys: &TenantKeys) -> Result<Verified, Rejected> {
    let ctx = JwtContext {
        object_id: "abc123",
        viewer_ip: "203.0.113.7",
        now_unix_s: now(),
        keep: jwt::Kept::All,
    };
    jwt::check(token, keys, &JwtPolicy::default(), &ctx)
}

fn fast_unknown_kid() -> JwksOptions {
    JwksOptions {
        unknown_kid_interval: Duration::ZERO,
        ..JwksOptions::default()
    }
}

#[tokio::test]
async fn the_initial_fetch_picks_up_keys_and_a_token_signed_by_one_verifies() {
    let (k1, k2) = (Signer::new("k1"), Signer::new("k2"));
    let lab = Lab::start(Reply::keys(&[k1.jwk(), k2.jwk()]), JwksOptions::default()).await;
    lab.wait_for_revision(1).await;
    let keys = lab.keys();
    assert_eq!(keys.len(), 2);
    let verified = check(&k2.token(), &keys).expect("verifies");
    assert_eq!(verified.kid, "k2");
    assert_eq!(lab.jwks.changes_since(0), (1, vec![TENANT.to_owned()]));
    assert_eq!(lab.jwks.changes_since(1), (1, vec![]));
    let stats = lab.jwks.stats();
    assert_eq!((stats.ok, stats.error), (1, 0));
}

#[tokio::test]
async fn a_rotated_in_kid_is_picked_up_on_first_use() {
    let (k1, k2) = (Signer::new("k1"), Signer::new("k2"));
    let lab = Lab::start(Reply::keys(&[k1.jwk()]), JwksOptions::default()).await;
    lab.wait_for_revision(1).await;
    lab.server.set_reply(Reply::keys(&[k2.jwk()]));
    let token = k2.token();
    let before = check(&token, &lab.keys()).expect_err("k2 unknown yet");
    assert_eq!(before.reason, Reason::JwtUnknownKid);

    assert!(
        lab.jwks.refresh_for_unknown_kid(TENANT).await,
        "set changed"
    );
    assert_eq!(check(&token, &lab.keys()).expect("verifies").kid, "k2");
    assert!(lab.keys().get("k1").is_none(), "k1 was rotated out");
    assert_eq!(lab.jwks.changes_since(1), (2, vec![TENANT.to_owned()]));
}

#[tokio::test]
async fn a_flood_of_unknown_kids_fetches_at_most_once_per_30_s() {
    let (k1, k2) = (Signer::new("k1"), Signer::new("k2"));
    let lab = Lab::start(Reply::keys(&[k1.jwk()]), JwksOptions::default()).await;
    lab.wait_for_revision(1).await;
    lab.server.set_reply(Reply::keys(&[k1.jwk(), k2.jwk()]));
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let jwks = lab.jwks.clone();
        flood.spawn(async move { jwks.refresh_for_unknown_kid(TENANT).await });
    }
    let answers = flood.join_all().await;
    assert_eq!(lab.server.hits(), 2, "the initial fetch and one refetch");
    let stats = lab.jwks.stats();
    assert_eq!(stats.ok, 2);
    assert_eq!(stats.rate_limited + stats.joined, 199, "{stats:?}");
    // Whoever fetched, and whoever waited for that fetch, learns that the set changed.
    let changed = answers.iter().filter(|c| **c).count() as u64;
    assert_eq!(changed, 1 + stats.joined, "{stats:?}");
    assert!(lab.keys().get("k2").is_some());

    lab.server
        .set_reply(Reply::keys(&[Signer::new("k3").jwk()]));
    assert!(!lab.jwks.refresh_for_unknown_kid(TENANT).await);
    assert_eq!(
        lab.server.hits(),
        2,
        "still within 30 s of the last refetch"
    );
}

#[tokio::test]
async fn the_unknown_kid_budget_comes_back_after_the_interval() {
    let (k1, k2) = (Signer::new("k1"), Signer::new("k2"));
    let options = JwksOptions {
        unknown_kid_interval: Duration::from_millis(300),
        ..JwksOptions::default()
    };
    let lab = Lab::start(Reply::keys(&[k1.jwk()]), options).await;
    lab.wait_for_revision(1).await;
    assert!(!lab.jwks.refresh_for_unknown_kid(TENANT).await, "unchanged");
    lab.server.set_reply(Reply::keys(&[k2.jwk()]));
    assert!(
        !lab.jwks.refresh_for_unknown_kid(TENANT).await,
        "rate-limited"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        lab.jwks.refresh_for_unknown_kid(TENANT).await,
        "allowed again"
    );
    assert_eq!(lab.server.hits(), 3);
}

#[tokio::test]
async fn an_outage_keeps_the_last_good_keys() {
    let (k1, k2) = (Signer::new("k1"), Signer::new("k2"));
    let lab = Lab::start(Reply::keys(&[k1.jwk()]), fast_unknown_kid()).await;
    lab.wait_for_revision(1).await;
    let token = k1.token();
    let oversized = Reply::Set {
        body: format!("{{\"keys\": [], \"pad\": \"{}\"}}", "x".repeat(300 * 1024)),
        etag: None,
        cache_control: None,
    };
    let failures = [
        Reply::Status(500),
        Reply::Status(302),
        Reply::Reset,
        Reply::Set {
            body: "<html>maintenance</html>".into(),
            etag: None,
            cache_control: None,
        },
        oversized,
    ];
    for (i, failure) in failures.into_iter().enumerate() {
        lab.server.set_reply(failure.clone());
        assert!(
            !lab.jwks.refresh_for_unknown_kid(TENANT).await,
            "{failure:?}"
        );
        assert_eq!(lab.jwks.stats().error, i as u64 + 1, "{failure:?}");
        check(&token, &lab.keys()).expect("k1 still verifies");
    }
    lab.server.set_reply(Reply::keys(&[k2.jwk()]));
    assert!(lab.jwks.refresh_for_unknown_kid(TENANT).await, "recovered");
    assert!(check(&token, &lab.keys()).is_err(), "k1 rotated out");
}

#[tokio::test]
async fn a_failing_first_fetch_is_retried_with_backoff_until_it_succeeds() {
    let k1 = Signer::new("k1");
    let options = JwksOptions {
        first_backoff: Duration::from_millis(50),
        refresh: RefreshBounds {
            min: Duration::from_millis(50),
            max: Duration::from_secs(3600),
            default: Duration::from_millis(400),
        },
        ..JwksOptions::default()
    };
    let lab = Lab::start(Reply::Status(503), options).await;
    tokio::time::timeout(WAIT, lab.server.wait_for_hits(3))
        .await
        .expect("retried");
    assert!(lab.jwks.keys(TENANT).is_none());
    lab.server.set_reply(Reply::keys(&[k1.jwk()]));
    lab.wait_for_revision(1).await;
    check(&k1.token(), &lab.keys()).expect("verifies");
}

#[tokio::test]
async fn the_etag_is_sent_back_and_a_304_keeps_the_set() {
    let k1 = Signer::new("k1");
    let reply = Reply::Set {
        body: serde_json::json!({ "keys": [k1.jwk()] }).to_string(),
        etag: Some("\"v1\"".into()),
        cache_control: Some("max-age=600".into()),
    };
    let lab = Lab::start(reply, fast_unknown_kid()).await;
    lab.wait_for_revision(1).await;
    assert!(!lab.jwks.refresh_for_unknown_kid(TENANT).await);
    assert_eq!(
        lab.server.if_none_match(),
        [None, Some("\"v1\"".to_owned())]
    );
    let stats = lab.jwks.stats();
    assert_eq!((stats.ok, stats.not_modified), (1, 1));
    check(&k1.token(), &lab.keys()).expect("still verifies");
    assert_eq!(lab.jwks.changes_since(0).0, 1, "a 304 is not a change");
}

#[tokio::test]
async fn the_background_refresh_follows_max_age_within_the_bounds() {
    let k1 = Signer::new("k1");
    let reply = Reply::Set {
        body: serde_json::json!({ "keys": [k1.jwk()] }).to_string(),
        etag: None,
        cache_control: Some("max-age=0".into()),
    };
    let options = JwksOptions {
        refresh: RefreshBounds {
            min: Duration::from_millis(100),
            ..RefreshBounds::default()
        },
        ..JwksOptions::default()
    };
    let lab = Lab::start(reply, options).await;
    tokio::time::timeout(WAIT, lab.server.wait_for_hits(3))
        .await
        .expect("refreshed at the floor");
    assert_eq!(
        lab.jwks.changes_since(0).0,
        1,
        "an unchanged set is no change"
    );

    lab.jwks.shutdown();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let hits = lab.server.hits();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(lab.server.hits(), hits, "no fetch after shutdown");
    assert!(!lab.jwks.refresh_for_unknown_kid(TENANT).await);
    assert!(lab.jwks.keys(TENANT).is_some(), "keys stay readable");
}

#[tokio::test]
async fn dropping_the_last_handle_stops_the_refresh() {
    let reply = Reply::Set {
        body: serde_json::json!({ "keys": [Signer::new("k1").jwk()] }).to_string(),
        etag: None,
        cache_control: Some("max-age=0".into()),
    };
    let options = JwksOptions {
        refresh: RefreshBounds {
            min: Duration::from_millis(100),
            ..RefreshBounds::default()
        },
        ..JwksOptions::default()
    };
    let Lab { server, jwks } = Lab::start(reply, options).await;
    tokio::time::timeout(WAIT, server.wait_for_hits(2))
        .await
        .expect("refreshing");
    drop(jwks);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let hits = server.hits();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(server.hits(), hits);
}

#[tokio::test]
async fn refused_addresses_and_plain_http_are_never_fetched() {
    let server = JwksServer::start(ip("127.0.0.1"), Reply::keys(&[])).await;
    let refused_ip = server.url();
    let mut plain_http = server.url();
    plain_http.set_scheme("http").expect("scheme");
    plain_http.set_host(Some("127.0.0.2")).expect("host");
    let jwks = JwksKeys::start(
        vec![("a".into(), refused_ip), ("b".into(), plain_http)],
        client(server.ca_file()),
        fast_unknown_kid(),
    );
    assert!(!jwks.refresh_for_unknown_kid("a").await);
    assert!(!jwks.refresh_for_unknown_kid("b").await);
    assert!(jwks.stats().error >= 2);
    assert_eq!(server.hits(), 0);
    assert!(jwks.keys("a").is_none() && jwks.keys("b").is_none());
    assert!(!jwks.refresh_for_unknown_kid("no-such-tenant").await);
}

/// Regression (found by tests/interop.rs): a fetch has brought the kid, but the snapshot has not
/// taken the set yet (the daemon merges it a moment later). A viewer in between was denied
/// `no-active-keys` — the refetch found nothing *new* — and the denial was cached. Now the
/// evaluator checks again with the keys the fetch already holds, without spending the refetch.
#[tokio::test]
async fn a_kid_fetched_before_the_snapshot_took_the_set_verifies_at_once() {
    use usher::decision::{Evaluator, Mode, Request};
    use usher::policy::build;
    use usher::policy::model::{Policy, Source};
    use usher::policy::store::Snapshot;
    use usher::spec::PolicySpec;
    use usher::webhook::WebhookCaller;

    let k1 = Signer::new("k1");
    let lab = Lab::start(Reply::keys(&[k1.jwk()]), JwksOptions::default()).await;
    lab.wait_for_revision(1).await;
    let caller = WebhookCaller::with_client(
        client(lab.server.ca_file()),
        &usher::config::WebhookConfig::default(),
    )
    .unwrap();
    let evaluator = Evaluator::new(caller).with_jwks(lab.jwks.clone());
    // The snapshot as it is before the JWKS change is applied: the tenant, no keys.
    let mut snapshot = Snapshot::new(Policy::Deny);
    snapshot.tenant_mut(TENANT);
    let spec = PolicySpec {
        tenant: TENANT.into(),
        kind: usher::spec::PolicyKind::Jwt,
        ..PolicySpec::default()
    };
    snapshot.set_policy(build::entry("vod", &spec, Source::Config).unwrap());
    let entry = snapshot.policy("vod").unwrap().clone();
    let token = k1.token();
    let url = format!("http://127.0.0.1:8080/hls/vod/index.m3u8?jwt={token}");
    let request = Request {
        stream: "vod",
        session_id: "s1",
        viewer_ip: "127.0.0.1",
        token: &token,
        connector: "HLS",
        request_url: &url,
    };
    let decision = evaluator
        .evaluate(&snapshot, &entry, &request, Mode::Live)
        .await;
    assert!(decision.allowed, "{:?}", decision.reason);
    assert_eq!(lab.server.hits(), 1, "no refetch was needed");
}

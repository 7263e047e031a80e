//! The fleet (SPEC §11) with a real `nats-server -js` and three usher processes, each with its own
//! MistServer API stand-in: writes on one node reach the others through JetStream, a node that was
//! down catches up, NATS going away leaves every node serving from its copy (writes answer 503),
//! and conflicting writes are refused by revision.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::api::{Api, Key};
use common::daemon::{Daemon, base_config};
use common::mist::{post_trigger, session_id, user_end_body, user_new, user_new_body, uuid};
use common::mist_api::MistApi;
use common::nats::Nats;

/// Generous bound for anything that should take milliseconds (a loaded 2-core machine).
const CONVERGE: Duration = Duration::from_secs(20);

/// One usher of the fleet with its MistServer stand-in and its own state directory.
struct Node {
    d: Option<Daemon>,
    mist: MistApi,
    dir: PathBuf,
    config: String,
}

impl Node {
    async fn start(nats: &Nats, id: &str, root: &Path, extra: &str) -> Node {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let mist = MistApi::start().await;
        let config = format!(
            "{}\n[mist]\napi_url = \"{}\"\nack_wait_ms = 2000\n\
             [fleet]\nnats_urls = [\"{}\"]\nnode_id = \"{id}\"\nstatus_interval_ms = 300\n{extra}",
            base_config(&dir.join("data")),
            mist.url(),
            nats.url(),
        );
        let mut node = Node {
            d: None,
            mist,
            dir,
            config,
        };
        node.restart().await;
        node
    }

    /// Waits until the node is connected to NATS and follows the fleet's objects.
    async fn wait_following(&self) {
        let deadline = Instant::now() + CONVERGE;
        loop {
            let metrics = self.api().metrics().await;
            if metrics.contains("usher_fleet_connected 1")
                && metrics.contains("usher_fleet_following 1")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never followed the fleet; log:\n{}",
                self.d().log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn restart(&mut self) {
        let (dir, config) = (self.dir.clone(), self.config.clone());
        let d = tokio::task::spawn_blocking(move || Daemon::start_with(&dir, &config))
            .await
            .unwrap()
            .expect("daemon starts");
        self.d = Some(d);
        self.wait_following().await;
    }

    fn kill(&mut self) {
        let d = self.d.take().expect("running");
        d.signal("KILL");
        drop(d);
    }

    fn d(&self) -> &Daemon {
        self.d.as_ref().expect("running")
    }

    fn api(&self) -> Api {
        Api::new(self.d())
    }

    /// `USER_NEW` for `stream` with `token` in session `session`: `true` or `false`.
    async fn decide(&self, stream: &str, token: &str, session: &str) -> String {
        let url = format!("http://127.0.0.1:8080/hls/{stream}/index.m3u8?jwt={token}");
        let body = user_new_body(
            stream,
            "127.0.0.1",
            token,
            &url,
            &session_id(session),
            false,
        );
        user_new(self.d().trigger, &body).await.body
    }

    /// Polls until `stream` is answered `want`; returns how long it took.
    async fn wait_decision(
        &self,
        stream: &str,
        token: &str,
        session: &str,
        want: &str,
    ) -> Duration {
        let started = Instant::now();
        while started.elapsed() < CONVERGE {
            if self.decide(stream, token, session).await == want {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{stream} never answered {want}; log:\n{}",
            self.d().log_text()
        );
    }
}

async fn put(node: &Node, path: &str, body: Value, if_match: Option<u64>) -> (u16, Value) {
    let api = node.api();
    let mut req = api
        .client
        .put(format!("{}{path}", api.base))
        .header("authorization", format!("Bearer {}", common::api::TOKEN))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(r) = if_match {
        req = req.header("if-match", format!("\"{r}\""));
    }
    let resp = req.send().await.expect("control answers");
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_str(&resp.text().await.unwrap()).unwrap(),
    )
}

fn policy(kind: &str) -> Value {
    json!({"tenant": "t1", "type": kind})
}

#[tokio::test]
async fn a_policy_set_on_node_a_denies_on_node_c_within_one_second() {
    let nats = Nats::start();
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(&nats, "a", root.path(), "").await;
    let b = Node::start(&nats, "b", root.path(), "").await;
    let c = Node::start(&nats, "c", root.path(), "").await;
    let (status, set) = put(&a, "/v1/policies/vod", policy("public"), None).await;
    assert_eq!(status, 201, "{set}");
    assert_eq!(set["applied"], true, "{set}");
    let revision = set["revision"].as_u64().expect("a revision");
    c.wait_decision("vod", "t", "s1", "true").await;
    assert_eq!(c.decide("vod", "t", "s1").await, "true", "cached allow");

    let (status, set) = put(&a, "/v1/policies/vod", policy("deny"), None).await;
    assert_eq!(status, 200, "{set}");
    assert!(set["revision"].as_u64().unwrap() > revision, "{set}");
    let took = c.wait_decision("vod", "t", "s1", "false").await;
    assert!(
        took < Duration::from_secs(1),
        "C denied only after {took:?}"
    );
    assert!(
        c.mist.wait_invalidated("vod", CONVERGE).await,
        "C's MistServer was never told; log:\n{}",
        c.d().log_text()
    );
    b.wait_decision("vod", "t", "s2", "false").await;

    // Every node reports itself; any node lists them all, at the same applied revision.
    let deadline = Instant::now() + CONVERGE;
    loop {
        let (status, fleet) = b.api().call("GET", "/v1/fleet", None).await;
        assert_eq!(status, 200, "{fleet}");
        let nodes = fleet["nodes"].as_array().unwrap().clone();
        let ids: Vec<&str> = nodes.iter().filter_map(|n| n["node_id"].as_str()).collect();
        let revisions: Vec<&Value> = nodes
            .iter()
            .map(|n| &n["applied"]["usher_policies"])
            .collect();
        if ids == ["a", "b", "c"] && revisions.windows(2).all(|w| w[0] == w[1]) {
            assert!(nodes.iter().all(|n| n["pending_invalidations"].is_u64()));
            assert!(nodes.iter().all(|n| n["last_seen"].as_u64().unwrap() > 0));
            break;
        }
        assert!(Instant::now() < deadline, "fleet never complete: {fleet}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = c.api().metrics().await;
    assert!(metrics.contains("usher_fleet_connected 1"), "{metrics}");
    assert!(
        metrics.contains("usher_fleet_applied_revision{bucket=\"usher_policies\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn node_b_killed_while_a_key_is_revoked_denies_after_restart_and_tells_its_mistserver() {
    let nats = Nats::start();
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(&nats, "a", root.path(), "").await;
    let mut b = Node::start(&nats, "b", root.path(), "").await;
    // B's MistServer still has viewers of vod after B restarts (usher's cache is gone by then).
    b.mist.set_hook(Arc::new(|body: &Value| {
        let mut answer = serde_json::Map::new();
        if body.get("active_streams").is_some() {
            answer.insert("active_streams".into(), json!(["vod"]));
        }
        answer
    }));
    let key = Key::new("k1");
    let (status, set) = put(&a, "/v1/keys/k1", key.body("t1"), None).await;
    assert_eq!(status, 201, "{set}");
    let (status, set) = put(
        &a,
        "/v1/policies/vod",
        json!({"tenant": "t1", "type": "jwt"}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{set}");
    let token = key.token();
    b.wait_decision("vod", &token, "b1", "true").await;

    b.kill();
    let (status, revoked) = a.api().call("POST", "/v1/keys/k1/revoke", None).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    a.wait_decision("vod", &token, "a1", "false").await;
    let before = b.mist.invalidated().len();
    b.restart().await;

    b.wait_decision("vod", &token, "b2", "false").await;
    let deadline = Instant::now() + CONVERGE;
    while b.mist.invalidated().len() == before || !b.mist.invalidated().contains(&"vod".into()) {
        assert!(
            Instant::now() < deadline,
            "B's MistServer never received the invalidation; log:\n{}",
            b.d().log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_invalidation_posted_while_a_node_is_down_reaches_its_mistserver_after_restart() {
    let nats = Nats::start();
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(&nats, "a", root.path(), "").await;
    let mut b = Node::start(&nats, "b", root.path(), "").await;
    // B's durable consumer starts with what is sent after it exists, and B creates it in its own
    // task after start: post until one invalidation has reached B, so the consumer surely exists.
    let deadline = Instant::now() + CONVERGE;
    loop {
        let (status, first) = a
            .api()
            .call(
                "POST",
                "/v1/invalidate",
                Some(json!({"streams": ["live+first"]})),
            )
            .await;
        assert_eq!(status, 200, "{first}");
        if b.mist
            .wait_invalidated("live+first", Duration::from_secs(1))
            .await
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B's consumer never received an invalidation; log:\n{}",
            b.d().log_text()
        );
    }
    assert!(a.mist.wait_invalidated("live+first", CONVERGE).await);

    b.kill();
    let (status, posted) = a
        .api()
        .call(
            "POST",
            "/v1/invalidate",
            Some(json!({"streams": ["live+missed"]})),
        )
        .await;
    assert_eq!(status, 200, "{posted}");
    assert!(posted["sequence"].as_u64().is_some(), "{posted}");
    assert!(!b.mist.invalidated().contains(&"live+missed".into()));
    b.restart().await;
    assert!(
        b.mist.wait_invalidated("live+missed", CONVERGE).await,
        "B's MistServer never received what it missed; log:\n{}",
        b.d().log_text()
    );
}

#[tokio::test]
async fn with_nats_down_nodes_serve_their_copies_and_writes_answer_503_then_converge() {
    let mut nats = Nats::start();
    let root = tempfile::tempdir().unwrap();
    let nodes = [
        Node::start(&nats, "a", root.path(), "").await,
        Node::start(&nats, "b", root.path(), "").await,
        Node::start(&nats, "c", root.path(), "").await,
    ];
    let a = &nodes[0];
    assert_eq!(
        put(a, "/v1/policies/vod", policy("public"), None).await.0,
        201
    );
    assert_eq!(
        put(a, "/v1/policies/shut", policy("deny"), None).await.0,
        201
    );
    for n in &nodes {
        n.wait_decision("vod", "t", "warm", "true").await;
        n.wait_decision("shut", "t", "warm", "false").await;
    }

    nats.down();
    for n in &nodes {
        let deadline = Instant::now() + CONVERGE;
        while !n.api().metrics().await.contains("usher_fleet_connected 0") {
            assert!(Instant::now() < deadline, "never noticed NATS is down");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    for (i, n) in nodes.iter().enumerate() {
        // Fresh sessions: evaluated from the local copy, not served from the cache.
        assert_eq!(n.decide("vod", "t", &format!("down-{i}")).await, "true");
        assert_eq!(n.decide("shut", "t", &format!("down-{i}")).await, "false");
        let (status, err) = put(n, "/v1/policies/vod", policy("deny"), None).await;
        assert_eq!(status, 503, "{err}");
        assert_eq!(err["error"], "fleet-unavailable", "{err}");
        let (status, got) = n.api().call("GET", "/v1/policies/vod", None).await;
        assert_eq!((status, &got["type"]), (200, &json!("public")), "{got}");
        let (status, err) = n
            .api()
            .call("POST", "/v1/invalidate", Some(json!({"streams": ["vod"]})))
            .await;
        assert_eq!((status, &err["error"]), (503, &json!("fleet-unavailable")));
    }

    nats.up();
    let deadline = Instant::now() + CONVERGE;
    loop {
        let (status, set) = put(a, "/v1/policies/vod", policy("deny"), None).await;
        if status == 200 {
            break;
        }
        assert!(
            status == 503 && Instant::now() < deadline,
            "writes never came back: {status} {set}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (i, n) in nodes.iter().enumerate() {
        n.wait_decision("vod", "t", &format!("back-{i}"), "false")
            .await;
        let deadline = Instant::now() + CONVERGE;
        while !n.api().metrics().await.contains("usher_fleet_connected 1") {
            assert!(Instant::now() < deadline, "never reconnected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn two_concurrent_writes_of_one_policy_get_exactly_one_409() {
    let nats = Nats::start();
    let root = tempfile::tempdir().unwrap();
    let config_policy = "[[tenants]]\nid = \"t1\"\n[[policies]]\nobject = \"cfg\"\ntenant = \"t1\"\ntype = \"public\"\n";
    let a = Node::start(&nats, "a", root.path(), config_policy).await;
    let b = Node::start(&nats, "b", root.path(), "").await;
    let (status, set) = put(&a, "/v1/policies/vod", policy("public"), None).await;
    assert_eq!(status, 201, "{set}");
    let read = set["revision"].as_u64().unwrap();
    b.wait_decision("vod", "t", "s", "true").await;

    let (one, two) = tokio::join!(
        put(&a, "/v1/policies/vod", policy("deny"), Some(read)),
        put(
            &b,
            "/v1/policies/vod",
            json!({"tenant": "t2", "type": "public"}),
            Some(read)
        ),
    );
    let mut statuses = [one.0, two.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{one:?} {two:?}");
    let conflict = if one.0 == 409 { &one.1 } else { &two.1 };
    assert_eq!(conflict["error"], "revision-conflict", "{conflict}");

    // A read gives the revision to send back.
    let winner = if one.0 == 200 { &one.1 } else { &two.1 };
    let latest = winner["revision"].as_u64().unwrap();
    let deadline = Instant::now() + CONVERGE;
    loop {
        let (status, got) = b.api().call("GET", "/v1/policies/vod", None).await;
        assert_eq!(status, 200, "{got}");
        if got["revision"] == latest {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "GET never showed {latest}: {got}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, set) = put(&b, "/v1/policies/vod", policy("public"), Some(latest)).await;
    assert_eq!(status, 200, "{set}");
    // A stale revision is refused, and so is creating what exists.
    let (status, err) = put(&b, "/v1/policies/vod", policy("public"), Some(read)).await;
    assert_eq!((status, &err["error"]), (409, &json!("revision-conflict")));
    let (status, _) = put(&b, "/v1/policies/vod", policy("public"), Some(0)).await;
    assert_eq!(status, 409);
    // The config file's policies stay node-local and read-only.
    let (status, err) = put(&a, "/v1/policies/cfg", policy("deny"), None).await;
    assert_eq!((status, &err["error"]), (409, &json!("read-only")), "{err}");
}

#[tokio::test]
async fn without_a_fleet_section_get_fleet_is_404() {
    let d = tokio::task::spawn_blocking(|| Daemon::start(""))
        .await
        .unwrap();
    let (status, body) = Api::new(&d).call("GET", "/v1/fleet", None).await;
    assert_eq!(status, 404, "{body}");
    assert!(!Api::new(&d).metrics().await.contains("usher_fleet"));
}

/// A token for viewer `sub` of key `key`, issued now, valid for an hour.
fn viewer_token(key: &Key, sub: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let opts = usher::keys::sign::SignOptions {
        kid: key.kid.clone(),
        sub: Some(sub.into()),
        exp_in_s: Some(3600),
        ..Default::default()
    };
    usher::keys::sign::sign(key.private_pem.as_bytes(), &opts, now).unwrap()
}

/// `USER_NEW` for a new session `session` of `live+a` on `node`: `true` or `false`.
async fn play(node: &Node, token: &str, session: &str) -> String {
    let url = format!("http://127.0.0.1:8080/hls/live+a/index.m3u8?jwt={token}");
    let body = user_new_body("live+a", "127.0.0.1", token, &url, session, true);
    user_new(node.d().trigger, &body).await.body
}

/// Polls until a fresh session of `token` on `node` is answered `want`; returns how long it took.
async fn wait_play(node: &Node, token: &str, want: &str) -> Duration {
    let started = Instant::now();
    for i in 0.. {
        if play(node, token, &session_id(&format!("poll-{i}"))).await == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < CONVERGE,
            "never answered {want}; log:\n{}",
            node.d().log_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    unreachable!()
}

const TENANT: &str = "[[tenants]]\nid = \"t1\"\n";

/// Key `k1` of tenant `t1` and a `jwt` policy on `live` with `rules`, written through `node`.
async fn jwt_setup(node: &Node, rules: Value) -> Key {
    let key = Key::new("k1");
    let (status, set) = put(node, "/v1/keys/k1", key.body("t1"), None).await;
    assert_eq!(status, 201, "{set}");
    let mut policy = json!({"tenant": "t1", "type": "jwt"});
    policy
        .as_object_mut()
        .unwrap()
        .extend(rules.as_object().unwrap().clone());
    let (status, set) = put(node, "/v1/policies/live", policy, None).await;
    assert_eq!(status, 201, "{set}");
    key
}

#[tokio::test]
async fn a_viewer_revoked_on_node_a_is_refused_on_node_c_within_one_second_and_cs_session_ends() {
    let nats = Nats::start();
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(&nats, "a", root.path(), TENANT).await;
    let mut b = Node::start(&nats, "b", root.path(), TENANT).await;
    let c = Node::start(&nats, "c", root.path(), TENANT).await;
    let key = jwt_setup(&a, json!({"max_lifetime_s": 7200})).await;
    let (alice, bob) = (viewer_token(&key, "alice"), viewer_token(&key, "bob"));
    for n in [&a, &b, &c] {
        wait_play(n, &alice, "true").await;
    }
    let (c1, cb) = (session_id("c-alice"), session_id("c-bob"));
    assert_eq!(play(&c, &alice, &c1).await, "true");
    assert_eq!(play(&c, &bob, &cb).await, "true");
    let c_stopped_before = c.mist.stopped().len();

    // B is down while the revocation is written.
    b.kill();
    let (status, revoked) = a
        .api()
        .call(
            "POST",
            "/v1/viewers/revoke",
            Some(json!({"tenant": "t1", "viewer": "alice"})),
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["applied"], true, "{revoked}");
    assert!(revoked["revision"].as_u64().unwrap() > 0, "{revoked}");
    let before = revoked["before"].as_u64().unwrap();
    assert!(before > 0, "{revoked}");
    let took = wait_play(&c, &alice, "false").await;
    assert!(
        took < Duration::from_secs(1),
        "C refused only after {took:?}"
    );
    assert_eq!(play(&a, &alice, &session_id("a-late")).await, "false");
    assert_eq!(play(&c, &bob, &session_id("c-bob-2")).await, "true");

    // C's own MistServer ends alice's session on C, and only hers.
    let deadline = Instant::now() + CONVERGE;
    loop {
        let stopped: Vec<String> = c.mist.stopped().into_iter().map(|(_, id)| id).collect();
        if stopped.contains(&c1) {
            assert!(
                !stopped.contains(&cb),
                "bob's session was stopped: {stopped:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "C's MistServer never received stop_sessid ({c_stopped_before} before); log:\n{}",
            c.d().log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every node holds the same `before` (fixed by A), and /v1/test says why on C.
    let (_, test) = c
        .api()
        .call(
            "POST",
            "/v1/test",
            Some(json!({"stream": "live+a", "viewer_token": alice})),
        )
        .await;
    assert_eq!(test["reason"], "viewer-revoked", "{test}");

    // B catches up after its restart and refuses alice's token, bob still plays.
    b.restart().await;
    wait_play(&b, &alice, "false").await;
    assert_eq!(play(&b, &bob, &session_id("b-bob")).await, "true");

    // A second revocation without If-Match merges (never lowers `before`); a stale If-Match is 409.
    let (status, again) = c
        .api()
        .call(
            "POST",
            "/v1/viewers/revoke",
            Some(json!({"tenant": "t1", "viewer": "alice", "before": 1})),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["before"].as_u64(), Some(before), "{again}");
    assert!(again["revision"].as_u64() > revoked["revision"].as_u64());
    let api = c.api();
    let resp = api
        .client
        .post(format!("{}/v1/viewers/revoke", api.base))
        .header("authorization", format!("Bearer {}", common::api::TOKEN))
        .header("if-match", revoked["revision"].to_string())
        .body(json!({"tenant": "t1", "viewer": "alice"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    // An unknown tenant is refused before anything is written.
    let (status, err) = c
        .api()
        .call(
            "POST",
            "/v1/viewers/revoke",
            Some(json!({"tenant": "nope", "viewer": "alice"})),
        )
        .await;
    assert_eq!((status, &err["error"]), (404, &json!("not-found")), "{err}");
}

/// Polls `node`'s metrics until other nodes report `want` sessions under a limit.
async fn wait_remote_sessions(node: &Node, want: u64) {
    let line = format!("usher_fleet_remote_sessions {want}\n");
    let deadline = Instant::now() + CONVERGE;
    while !node.api().metrics().await.contains(&line) {
        assert!(
            Instant::now() < deadline,
            "never saw {want} remote sessions; log:\n{}",
            node.d().log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_viewer_holding_its_limit_on_node_a_is_refused_a_third_session_on_node_b() {
    let nats = Nats::start();
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(&nats, "a", root.path(), TENANT).await;
    let b = Node::start(&nats, "b", root.path(), TENANT).await;
    let rules = json!({"max_sessions_per_viewer": 2, "on_exceed": "deny-new"});
    let key = jwt_setup(&a, rules).await;
    let (alice, bob) = (viewer_token(&key, "alice"), viewer_token(&key, "bob"));
    // B has the policy once bob plays there (bob holds one session on B from here on).
    wait_play(&b, &bob, "true").await;
    let (a1, a2) = (session_id("a-1"), session_id("a-2"));
    assert_eq!(play(&a, &alice, &a1).await, "true");
    assert_eq!(play(&a, &alice, &a2).await, "true");

    wait_remote_sessions(&b, 2).await;
    assert_eq!(
        play(&b, &alice, &session_id("b-1")).await,
        "false",
        "a third session across the fleet"
    );
    assert_eq!(play(&b, &bob, &session_id("b-bob")).await, "true");
    // A counts bob's session on B, not as alice's.
    wait_remote_sessions(&a, 2).await;
    assert_eq!(play(&a, &bob, &session_id("a-bob")).await, "false");

    // USER_END on A frees a slot across the fleet.
    let body = user_end_body(&alice, "live+a", &a1);
    let answer = post_trigger(a.d().trigger, "USER_END", &uuid(), 1, body.as_bytes()).await;
    assert_eq!(answer.status, 200);
    wait_remote_sessions(&b, 1).await;
    assert_eq!(play(&b, &alice, &session_id("b-2")).await, "true");
    // The last one ends: A's report is deleted, B counts none of A's.
    let body = user_end_body(&alice, "live+a", &a2);
    let answer = post_trigger(a.d().trigger, "USER_END", &uuid(), 1, body.as_bytes()).await;
    assert_eq!(answer.status, 200);
    wait_remote_sessions(&b, 0).await;
}

/// An HS512 secret set over node A's API travels in the keys bucket (issue #34): node B verifies
/// with it, neither node shows or logs it, and a revocation written through B reaches A with the
/// record still loadable (a restarted A denies).
#[tokio::test]
async fn an_hs512_secret_set_on_node_a_verifies_on_node_b_and_is_never_shown() {
    use base64::Engine as _;
    let nats = Nats::start();
    let root = tempfile::tempdir().unwrap();
    let mut a = Node::start(&nats, "a", root.path(), "").await;
    let b = Node::start(&nats, "b", root.path(), "").await;
    let secret: Vec<u8> = (0u8..64)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&secret);
    let jwk = json!({"kty": "oct", "alg": "HS512", "k": k});
    let (status, set) = put(&a, "/v1/keys/hs", json!({"tenant": "t1", "jwk": jwk}), None).await;
    assert_eq!(status, 201, "{set}");
    assert_eq!(set["jwk"]["k"], "********", "{set}");
    let (status, set) = put(&a, "/v1/policies/vod", policy("jwt"), None).await;
    assert_eq!(status, 201, "{set}");
    let opts = usher::keys::sign::SignOptions {
        kid: "hs".into(),
        alg: usher::keys::KeyAlg::Hs512,
        sub: Some("vod".into()),
        ..Default::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let token = usher::keys::sign::sign(&secret, &opts, now).unwrap();
    b.wait_decision("vod", &token, "b1", "true").await;
    let (_, listed) = b.api().call("GET", "/v1/keys", None).await;
    assert_eq!(listed["keys"][0]["jwk"]["k"], "********", "{listed}");
    for node in [&a, &b] {
        assert!(
            !node.d().log_text().contains(&k),
            "a node logged the secret"
        );
    }
    assert!(!listed.to_string().contains(&k));

    let (status, revoked) = b.api().call("POST", "/v1/keys/hs/revoke", None).await;
    assert_eq!(status, 200, "{revoked}");
    a.wait_decision("vod", &token, "a1", "false").await;
    a.kill();
    a.restart().await;
    a.wait_decision("vod", &token, "a2", "false").await;
    assert!(
        !a.d().log_text().contains("skipped"),
        "the revoked record loads: {}",
        a.d().log_text()
    );
}

/// Issue #30: a record written straight into a bucket is held to the rules the API holds a write
/// to. A 60,000-character tenant, refused by `PUT /v1/policies` with 400 `bad-name`, was applied
/// by every node when a raw NATS client wrote it into `usher_policies`; now each node refuses it
/// (skipped with a warning until issue #31 says more), as it does a key of such a tenant and a
/// revocation of a viewer id with a control character. The good records after them apply.
#[tokio::test]
async fn records_written_straight_into_the_buckets_are_held_to_the_apis_rules() {
    use usher::fleet::record::{encode, revocation_key};
    let nats = Nats::start();
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(&nats, "a", root.path(), "").await;
    let long = "t".repeat(60_000);
    let (status, refused) = put(
        &a,
        "/v1/policies/x",
        json!({"tenant": long, "type": "public"}),
        None,
    )
    .await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("bad-name")));

    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let bucket = |name: &'static str| {
        let js = js.clone();
        async move { js.get_key_value(format!("usher_{name}")).await.unwrap() }
    };
    let raw = |v: Value| bytes::Bytes::from(serde_json::to_vec(&v).unwrap());
    let (policies, keys, revocations) = (
        bucket("policies").await,
        bucket("keys").await,
        bucket("revocations").await,
    );
    let key = Key::new("k-long");
    policies
        .put(encode("x"), raw(json!({"tenant": long, "type": "public"})))
        .await
        .unwrap();
    keys.put(encode("k-long"), raw(json!({"tenant": long, "alg": "ES256", "public_key_pem": key.public_pem, "status": "active"})))
        .await
        .unwrap();
    revocations
        .put(
            revocation_key("t1", "u\u{1}"),
            raw(json!({"tenant": "t1", "viewer": "u\u{1}", "before": 1})),
        )
        .await
        .unwrap();
    // Good records behind them, in the same buckets: once these apply, the bad ones were seen.
    policies
        .put(encode("y"), raw(json!({"tenant": "t1", "type": "public"})))
        .await
        .unwrap();
    let ok = Key::new("k-ok");
    keys.put(encode("k-ok"), raw(json!({"tenant": "t1", "alg": "ES256", "public_key_pem": ok.public_pem, "status": "active"})))
        .await
        .unwrap();
    a.wait_decision("y", "", "y1", "true").await;
    let deadline = Instant::now() + CONVERGE;
    loop {
        let (_, listed) = a.api().call("GET", "/v1/keys", None).await;
        if listed.to_string().contains("k-ok") {
            assert!(!listed.to_string().contains("k-long"), "{listed}");
            break;
        }
        assert!(Instant::now() < deadline, "k-ok never applied");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + CONVERGE;
    while a
        .d()
        .log_text()
        .matches("fleet change refused by this node")
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "log:\n{}", a.d().log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        a.decide("x", "", "x1").await,
        "false",
        "x has no policy: the default denies"
    );
    let (status, _) = a.api().call("GET", "/v1/policies/x", None).await;
    assert_eq!(status, 404);
}

/// Regression (issue #30): the fleet's write path did not hash a publish rule's stream key before
/// writing the record, so `PUT /v1/policies` with a `stream_key` answered 422 with `[fleet]` and
/// 201 without. One handler hashes it for both; the bucket holds only the hash.
#[tokio::test]
async fn a_stream_key_set_through_a_fleet_node_is_stored_as_its_hash_only() {
    let nats = Nats::start();
    let root = tempfile::tempdir().unwrap();
    let a = Node::start(&nats, "a", root.path(), "").await;
    let body = json!({"tenant": "t1", "type": "public",
                      "publish": {"type": "stream_key", "stream_key": "s3cret-stream-key"}});
    let (status, set) = put(&a, "/v1/policies/live", body, None).await;
    assert_eq!(status, 201, "{set}");
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let record = js
        .get_key_value("usher_policies")
        .await
        .unwrap()
        .get(usher::fleet::record::encode("live"))
        .await
        .unwrap()
        .expect("the record");
    let record = String::from_utf8(record.to_vec()).unwrap();
    assert!(!record.contains("s3cret-stream-key"), "{record}");
    assert!(record.contains("stream_key_sha256"), "{record}");
}

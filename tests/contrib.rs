//! The Grafana dashboard and the Prometheus alert rules in `contrib/` name only what a running
//! usher exposes: every `usher_*` metric they use is in `/metrics`, with the labels they select
//! on, and every reason code they match is one of SPEC §3.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::api::Api;
use common::daemon::Daemon;
use common::jwks_server::{JwksServer, Reply};
use common::mist::{session_id, user_new, user_new_body};
use common::nats::Nats;
use usher::reason::Reason;

const URL: &str = "http://127.0.0.1:8080/hls/x/index.m3u8";

/// Metric name → label names seen on its samples (histograms under their base name).
fn exposed(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut kinds = BTreeMap::new();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            kinds.insert(name.to_owned(), kind.to_owned());
            out.entry(name.to_owned()).or_default();
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    out.entry(format!("{name}{suffix}")).or_default();
                }
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap();
        let name = &line[..name_end];
        let labels = out.entry(name.to_owned()).or_default();
        if line[name_end..].starts_with('{') {
            let inner = &line[name_end + 1..line.find('}').unwrap()];
            for pair in inner.split(',') {
                labels.insert(pair.split('=').next().unwrap().to_owned());
            }
        }
    }
    out
}

/// A label matcher: (label, operator, value).
type Matcher = (String, String, String);

/// Every `usher_*` selector in `text`: (metric, its matchers).
fn selectors(text: &str) -> Vec<(String, Vec<Matcher>)> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("usher_") {
        let start = i + at;
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        i = end;
        if preceded {
            continue;
        }
        let name = text[start..end].to_owned();
        let mut matchers = Vec::new();
        if text[end..].starts_with('{') {
            let close = end + text[end..].find('}').unwrap();
            // JSON escapes quotes inside PromQL strings; YAML does not.
            let inner = text[end + 1..close].replace("\\\"", "\"");
            for m in inner.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                let op_at = m.find(['=', '!']).unwrap();
                let label = m[..op_at].trim().to_owned();
                let rest = &m[op_at..];
                let op_len =
                    if rest.starts_with("=~") || rest.starts_with("!~") || rest.starts_with("!=") {
                        2
                    } else {
                        1
                    };
                let value = rest[op_len..].trim().trim_matches('"').to_owned();
                matchers.push((label, rest[..op_len].to_owned(), value));
            }
            i = close;
        }
        found.push((name, matchers));
    }
    found
}

/// A running usher's `/metrics`: a fleet node (a real `nats-server`) with a JWKS tenant, after
/// a few decisions, once every family the dashboard and the alerts use has samples.
async fn live_metrics() -> String {
    let nats = tokio::task::spawn_blocking(Nats::start).await.unwrap();
    let k1 = usher::keys::keygen::generate_es256("jwks-1").unwrap();
    let jwks = JwksServer::start(
        "127.0.0.2".parse().unwrap(),
        Reply::keys(std::slice::from_ref(&k1.public_jwk)),
    )
    .await;
    let extra = format!(
        "[outbound]\nallow_cidrs = [\"127.0.0.2/32\"]\nca_file = \"{}\"\nnameservers = [\"127.0.0.1:9\"]\n\
         [[tenants]]\nid = \"t1\"\njwks_url = \"{}\"\n\
         [[policies]]\nobject = \"open\"\ntenant = \"t1\"\ntype = \"public\"\n\
         [fleet]\nnats_urls = [\"{}\"]\nnode_id = \"contrib\"\nstatus_interval_ms = 300\n",
        jwks.ca_file(),
        jwks.url(),
        nats.url()
    );
    let d = tokio::task::spawn_blocking(move || Daemon::start(&extra))
        .await
        .unwrap();
    for (stream, seed) in [("open", "a"), ("open", "a"), ("closed", "b")] {
        let body = user_new_body(stream, "127.0.0.1", "chk", URL, &session_id(seed), true);
        user_new(d.trigger, &body).await;
    }
    let api = Api::new(&d);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let until = |wanted: &'static [&'static str]| {
        let api = &api;
        async move {
            loop {
                let text = api.metrics().await;
                if wanted.iter().all(|w| text.contains(w)) || tokio::time::Instant::now() > deadline
                {
                    return text;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };
    // Once the node follows the fleet, a write through it gives the buckets a revision to report.
    until(&["usher_fleet_following 1"]).await;
    let policy = serde_json::json!({"tenant": "t1", "type": "deny"});
    let (status, _) = api.call("PUT", "/v1/policies/closed", Some(policy)).await;
    assert!(
        matches!(status, 200 | 201),
        "PUT /v1/policies/closed: {status}"
    );
    until(&[
        "usher_jwks_fetches_total{result=",
        "usher_fleet_applied_revision{bucket=",
    ])
    .await
}

fn check(file: &str, text: &str, metrics: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let reasons: BTreeSet<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    let mut problems = Vec::new();
    let found = selectors(text);
    assert!(!found.is_empty(), "{file} names no usher metric");
    for (name, matchers) in found {
        let Some(labels) = metrics.get(&name) else {
            problems.push(format!("{file}: {name} is not exposed by usher"));
            continue;
        };
        for (label, op, value) in matchers {
            if label == "instance" || label == "job" {
                continue; // added by Prometheus when it scrapes
            }
            if !labels.contains(&label) {
                problems.push(format!(
                    "{file}: {name} has no label {label:?} (has {labels:?})"
                ));
            }
            if label == "reason" && !op.starts_with('!') {
                for code in value.split('|') {
                    if !reasons.contains(code) {
                        problems.push(format!("{file}: {code:?} is not a reason code"));
                    }
                }
            }
            if label == "result" && !["allow", "deny"].contains(&value.as_str()) {
                problems.push(format!(
                    "{file}: result={value:?} is neither allow nor deny"
                ));
            }
            if label == "cache" && !["hit", "miss"].contains(&value.as_str()) {
                problems.push(format!("{file}: cache={value:?} is neither hit nor miss"));
            }
        }
    }
    problems
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_alerts_use_is_exposed_by_a_running_usher() {
    let text = live_metrics().await;
    let metrics = exposed(&text);
    let root = env!("CARGO_MANIFEST_DIR");
    let mut problems = Vec::new();
    for file in ["contrib/alerts.yml", "contrib/grafana/usher.json"] {
        let body = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        problems.extend(check(file, &body, &metrics));
    }
    assert!(
        problems.is_empty(),
        "{}\n\n/metrics:\n{text}",
        problems.join("\n")
    );
}

#[test]
fn the_check_catches_an_unknown_metric_label_and_reason() {
    let metrics = exposed(
        "# TYPE usher_decisions_total counter\n\
         usher_decisions_total{trigger=\"USER_NEW\",policy=\"jwt\",result=\"deny\",reason=\"jwt-expired\"} 1\n\
         # TYPE usher_decision_duration_seconds histogram\n\
         usher_decision_duration_seconds_count{cache=\"hit\"} 1\n",
    );
    assert!(metrics.contains_key("usher_decision_duration_seconds_bucket"));
    let rules = "rate(usher_decisions_total{reason=~\"jwt-sig-fail|jwt-nope\",tenant=\"x\"}[5m]) \
                 + usher_nope_total + usher_decision_duration_seconds_count{cache=\"hit\"}";
    let problems = check("x", rules, &metrics);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("\"jwt-nope\" is not a reason code")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("no label \"tenant\"")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("usher_nope_total is not exposed")),
        "{problems:?}"
    );
    assert_eq!(problems.len(), 3, "{problems:?}");
}

//! Benchmark helper for the fleet (SPEC §11): how long a write takes to be applied everywhere.
//!
//! `fleet_bench nodes COUNT CONTROL_A CONTROL_B CONTROL_C`: COUNT policy writes through node A's
//!   control API (alternating public/deny on one object); after each, polls every node's
//!   `/metrics` until its applied revision of the policies bucket reaches the write's revision.
//!   Prints the write's answer time and the time until all three nodes applied it (p50/p99/max).
//! `fleet_bench watchers COUNT NATS_URL WATCHERS`: WATCHERS key-value watchers in this process,
//!   each on its own NATS connection, follow one bucket; COUNT puts, each timed from just before
//!   the put until the last watcher saw it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // bench code: a failure should panic loudly

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use tokio::sync::mpsc;

const TOKEN: &str = "bench-control-token";

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn summary(name: &str, mut v: Vec<Duration>) -> String {
    v.sort();
    format!(
        "{name}_ms p50={:.2} p99={:.2} max={:.2} n={}",
        pct(&v, 0.5),
        pct(&v, 0.99),
        pct(&v, 1.0),
        v.len()
    )
}

async fn applied(client: &reqwest::Client, control: &str) -> u64 {
    let text = client
        .get(format!("http://{control}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("usher_fleet_applied_revision{bucket=\"usher_policies\"} "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

async fn nodes(count: usize, controls: Vec<String>) {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let (mut answered, mut everywhere) = (Vec::new(), Vec::new());
    for i in 0..count {
        let kind = if i % 2 == 0 { "deny" } else { "public" };
        let started = Instant::now();
        let resp = client
            .put(format!("http://{}/v1/policies/fleetbench", controls[0]))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(format!(r#"{{"tenant":"t1","type":"{kind}"}}"#))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: serde_json::Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        assert!(status.is_success(), "{status} {body}");
        answered.push(started.elapsed());
        let revision = body["revision"].as_u64().unwrap();
        for control in &controls {
            while applied(&client, control).await < revision {
                assert!(started.elapsed() < Duration::from_secs(30), "never applied");
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        everywhere.push(started.elapsed());
    }
    println!("{}", summary("write_answered", answered));
    println!("{}", summary("applied_on_all_3", everywhere));
}

async fn watchers(count: usize, url: String, n: usize) {
    let client = async_nats::connect(&url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let names = usher::fleet::record::Names::new("fleetbench");
    let objects = usher::fleet::objects::ensure(&js, &names, 1).await.unwrap();
    let kv = objects.bucket(usher::fleet::record::Role::Policies).clone();
    let bucket = names.bucket(usher::fleet::record::Role::Policies);
    let start = kv.put("warm", "0".into()).await.unwrap() + 1;
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    for _ in 0..n {
        let url = url.clone();
        let bucket = bucket.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let c = async_nats::connect(&url).await.unwrap();
            let kv = async_nats::jetstream::new(c)
                .get_key_value(&bucket)
                .await
                .unwrap();
            let mut watch = kv.watch_all_from_revision(start).await.unwrap();
            while let Some(Ok(entry)) = watch.next().await {
                let _ = tx.send((entry.revision, Instant::now()));
            }
        });
    }
    // Let every watcher subscribe before the first timed put.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut last = Vec::new();
    for i in 0..count {
        let started = Instant::now();
        let revision = kv.put("k", format!("{i}").into()).await.unwrap();
        let mut seen = 0;
        let mut latest = started;
        while seen < n {
            let (r, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .expect("every watcher sees the put")
                .unwrap();
            if r == revision {
                seen += 1;
                latest = latest.max(at);
            }
        }
        last.push(latest - started);
    }
    println!("{}", summary(&format!("seen_by_all_{n}_watchers"), last));
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("nodes") => nodes(args[2].parse().unwrap(), args[3..6].to_vec()).await,
        Some("watchers") => {
            watchers(
                args[2].parse().unwrap(),
                args[3].clone(),
                args[4].parse().unwrap(),
            )
            .await;
        }
        _ => eprintln!("usage: fleet_bench nodes COUNT A B C | watchers COUNT NATS_URL WATCHERS"),
    }
}

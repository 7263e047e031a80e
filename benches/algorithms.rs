//! Token checks per second for every algorithm usher takes (issue #34), single-threaded, through
//! `usher::jwt::check` — the whole check a fresh answer runs (header, key, signature, claims) —
//! with keys `usher keygen` makes (RSA at 2048, 3072 and 4096 bits) and tokens `usher sign` makes.
//! The same token is checked again and again; `check` remembers nothing, so each is a verify.
//!
//! `cargo bench --bench algorithms [-- SECONDS]` prints one `check_per_s alg=… bits=… n=…` line
//! each.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use usher::jwt::{self, JwtContext, Kept};
use usher::keys::keygen::generate;
use usher::keys::material::{KeyMaterial, load};
use usher::keys::sign::{SignOptions, sign};
use usher::keys::{KeyAlg, KeyFamily, KeySource, TenantKeys};
use usher::policy::model::JwtPolicy;

const NOW: i64 = 1_800_000_000;

fn main() {
    let secs: f64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2.0);
    let budget = Duration::from_secs_f64(secs);
    for alg in KeyAlg::ALL {
        let sizes: &[Option<u32>] = if alg.family() == KeyFamily::Rsa {
            &[Some(2048), Some(3072), Some(4096)]
        } else {
            &[None]
        };
        for bits in sizes {
            run(alg, *bits, budget);
        }
    }
}

fn run(alg: KeyAlg, bits: Option<u32>, budget: Duration) {
    let made = generate("k1", alg, bits).expect("keygen");
    let material = match &made.public_pem {
        Some(pem) => KeyMaterial::Pem(pem),
        None => KeyMaterial::Secret(&made.private),
    };
    let key = load("k1", "t1", Some(alg), material, KeySource::Api).expect("usher loads its key");
    let mut keys = TenantKeys::default();
    keys.insert(Arc::new(key));
    let opts = SignOptions {
        kid: "k1".into(),
        alg,
        sub: Some("abc123".into()),
        ..SignOptions::default()
    };
    let token = sign(&made.private, &opts, NOW).expect("sign");
    let rules = JwtPolicy::default();
    let ctx = JwtContext {
        object_id: "abc123",
        viewer_ip: "127.0.0.1",
        now_unix_s: NOW as f64,
        keep: Kept::Also(&[]),
    };
    assert!(
        jwt::check(&token, &keys, &rules, &ctx).is_ok(),
        "{alg}: verifies"
    );
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < budget {
        for _ in 0..16 {
            black_box(jwt::check(black_box(&token), &keys, &rules, &ctx).is_ok());
        }
        n += 16;
    }
    let per_s = n as f64 / started.elapsed().as_secs_f64();
    let bits = bits.map_or("-".to_owned(), |b| b.to_string());
    println!("check_per_s alg={alg} bits={bits} n={per_s:.0}");
}

//! The live-session table at scale (SPEC §9): memory per session at 1,000,000 sessions, and what
//! admitting a session, looking one up (the cached path), forgetting one (`USER_END`) and acting on
//! due deadlines (the timer) cost with 0 and with 1,000,000 deadlines pending.
//!
//! `cargo bench --bench sessions` — prints one line per figure. Memory is the process's resident
//! set (`/proc/self/statm`) before and after filling, divided by the sessions: the table's maps,
//! the shared strings and the allocator's overhead, nothing else allocated meanwhile.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // bench code

use std::time::{Duration, Instant};

use usher::policy::session_rules::SessionRules;
use usher::sessions::table::{Facts, Table};
use usher::sessions::{Revocations, Sessions};

const N: usize = 1_000_000;
const NOW: f64 = 1_800_000_000.0;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn id(i: usize) -> String {
    format!("{i:064x}")
}

fn facts<'a>(stream: &'a str, viewer: &'a str, i: usize) -> Facts<'a> {
    Facts {
        stream,
        tenant: "tenant-1",
        kid: Some("key-2026-01"),
        viewer: Some(viewer),
        exp: NOW as u64 + 60 + (i as u64 % 3600),
        iat: Some(NOW as u64 - 10),
    }
}

fn per_op(start: Instant, n: usize) -> f64 {
    start.elapsed().as_secs_f64() * 1e9 / n as f64
}

fn main() {
    let streams: Vec<String> = (0..1000).map(|i| format!("live+stream{i:04}")).collect();
    let viewers: Vec<String> = (0..N).map(|i| format!("viewer-{i:08}")).collect();
    let cut = SessionRules {
        cut_at_exp: true,
        ..SessionRules::default()
    };

    // Memory: a bare table filled with N sessions, each its own viewer, over 1000 streams.
    let before = rss_bytes();
    let mut table = Table::new(N);
    let base = tokio::time::Instant::now();
    for i in 0..N {
        let due = base + Duration::from_secs(3600 + (i as u64 % 3600));
        table.insert(
            &id(i),
            &facts(&streams[i % 1000], &viewers[i], i),
            due,
            true,
        );
    }
    let after = rss_bytes();
    println!(
        "memory: {} sessions, {:.0} bytes per session (RSS {} MiB -> {} MiB)",
        table.len(),
        (after - before) as f64 / N as f64,
        before >> 20,
        after >> 20
    );

    // The timer: taking 10,000 due sessions out of 1,000,000 pending.
    let t = Instant::now();
    let due = table.take_due(base + Duration::from_secs(3600 + 9), 10_000);
    println!(
        "timer: take_due of {} cut sessions with {} pending: {:.0} ns each",
        due.cut.len(),
        table.len() + due.cut.len(),
        per_op(t, due.cut.len())
    );
    drop(table);

    // Admission and lookup through `Sessions`, at 0 and at N pending deadlines.
    let sessions = Sessions::new(2 * N, Duration::from_secs(600), Revocations::default());
    let probe = 100_000;
    for (label, fill) in [("0", 0), ("1,000,000", N)] {
        for i in 0..fill {
            sessions.admit(&id(i), &facts(&streams[i % 1000], &viewers[i], i), cut, NOW);
        }
        let offset = 2 * N + fill;
        let t = Instant::now();
        for i in 0..probe {
            let j = offset + i;
            sessions.admit(&id(j), &facts(&streams[i % 1000], &viewers[i], i), cut, NOW);
        }
        let admit = per_op(t, probe);
        let t = Instant::now();
        let mut hits = 0;
        for i in 0..probe {
            hits += usize::from(sessions.is_tracked(&id(offset + i)));
        }
        let lookup = per_op(t, probe);
        assert_eq!(hits, probe);
        let t = Instant::now();
        for i in 0..probe {
            sessions.end(&id(offset + i));
        }
        let end = per_op(t, probe);
        assert_eq!(sessions.len(), fill);
        println!(
            "with {label} sessions and deadlines pending: admit {admit:.0} ns, \
             cached-path lookup {lookup:.0} ns, USER_END {end:.0} ns"
        );
    }

    // What each figure above spends formatting its session id, not in the table.
    let t = Instant::now();
    let mut len = 0;
    for i in 0..probe {
        len += std::hint::black_box(id(i)).len();
    }
    let format = per_op(t, probe);
    assert_eq!(len, 64 * probe);
    println!("formatting one session id (in each figure above): {format:.0} ns");
}

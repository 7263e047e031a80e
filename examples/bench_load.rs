//! Benchmark helper: sends `USER_NEW` triggers for COUNT distinct sessions of one stream over CONNS
//! connections and reports how long it took and what usher answered. Used to fill the cache
//! (memory, invalidation), to replay MistServer's re-check storm, and to fire MistServer-style
//! retries (every session sent DUP times at once) at the webhook.
//!
//! `bench_load ADDR STREAM COUNT CONNS MODE LINES DUP [TOKENS_FILE] [TAG]`
//! - MODE `keep` (one kept-alive connection per worker) or `close` (a new connection per request,
//!   as MistServer does);
//! - LINES 7 (first check) or 6 (re-check after `invalidate_sessions`);
//! - TOKENS_FILE: one token per line, token i goes with session i (else line 3 is a checksum);
//! - STREAM ending in `+` (e.g. `names+`): session i watches its own stream `names+TAGi`.
//!   Prints `elapsed_s=… sent=… true=… false=… errors=…`. Gives up after 300 s.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)] // test code: a failure should panic loudly

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Job {
    addr: String,
    stream: String,
    count: usize,
    close: bool,
    lines: usize,
    dup: usize,
    tag: String,
    tokens: Vec<String>,
    wrap: bool,
    next: AtomicUsize,
    yes: AtomicU64,
    no: AtomicU64,
    errors: AtomicU64,
}

impl Job {
    fn body(&self, i: usize) -> String {
        // BENCH_WRAP_TOKENS: session i takes token i modulo the file (more sessions than tokens).
        let i_token = match (self.wrap, self.tokens.len()) {
            (true, n) if n > 0 => i % n,
            _ => i,
        };
        let token = self
            .tokens
            .get(i_token)
            .map(String::as_str)
            .unwrap_or("e7ba6040b648");
        let session = format!("{:0>64}", format!("{}{i:x}", self.tag));
        // A STREAM ending in `+` names a new stream per session (`live+` → `live+TAGi`).
        let stream = if self.stream.ends_with('+') {
            format!("{}{}{i:x}", self.stream, self.tag)
        } else {
            self.stream.clone()
        };
        let mut b = format!(
            "{stream}\n127.0.0.1\n{token}\nHLS\nhttp://127.0.0.1:8080/hls/{stream}/index.m3u8?jwt={token}\n{session}"
        );
        if self.lines == 7 {
            b.push_str("\nfalse");
        }
        format!(
            "POST /trigger HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Trigger: USER_NEW\r\nX-Trigger-UUID: {session}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{b}",
            b.len(),
            if self.close {
                "Connection: close\r\n"
            } else {
                ""
            }
        )
    }
}

/// Sends one request on `conn` and reads one response; `Ok(answer_is_true)`.
async fn exchange(conn: &mut TcpStream, req: &[u8], buf: &mut Vec<u8>) -> std::io::Result<bool> {
    conn.write_all(req).await?;
    buf.clear();
    let mut chunk = [0u8; 1024];
    loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Ok(buf[end + 4..end + 4 + len].starts_with(b"true"));
            }
        }
    }
}

async fn worker(job: Arc<Job>) {
    let mut conn: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let n = job.next.fetch_add(1, Ordering::Relaxed);
        if n >= job.count * job.dup {
            return;
        }
        let req = job.body(n / job.dup);
        for _attempt in 0..3 {
            if conn.is_none() {
                conn = TcpStream::connect(&job.addr).await.ok();
                if let Some(c) = &conn {
                    let _ = c.set_nodelay(true);
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            match exchange(c, req.as_bytes(), &mut buf).await {
                Ok(yes) => {
                    let counter = if yes { &job.yes } else { &job.no };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if job.close {
                        conn = None;
                    }
                    break;
                }
                Err(_) => {
                    conn = None;
                    job.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() < 8 {
        eprintln!("usage: bench_load ADDR STREAM COUNT CONNS MODE LINES DUP [TOKENS_FILE] [TAG]");
        std::process::exit(2);
    }
    let tokens = match a.get(8).filter(|p| !p.is_empty()) {
        Some(path) => std::fs::read_to_string(path)
            .expect("tokens file")
            .lines()
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    let job = Arc::new(Job {
        addr: a[1].clone(),
        stream: a[2].clone(),
        count: a[3].parse().expect("COUNT"),
        close: a[5] == "close",
        lines: a[6].parse().expect("LINES"),
        dup: a[7].parse().expect("DUP"),
        tag: a.get(9).cloned().unwrap_or_default(),
        tokens,
        wrap: std::env::var_os("BENCH_WRAP_TOKENS").is_some(),
        next: AtomicUsize::new(0),
        yes: AtomicU64::new(0),
        no: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let conns: usize = a[4].parse().expect("CONNS");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    rt.block_on(async {
        let workers: Vec<_> = (0..conns)
            .map(|_| tokio::spawn(worker(job.clone())))
            .collect();
        let all = async {
            for w in workers {
                let _ = w.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(300), all)
            .await
            .is_err()
        {
            eprintln!("bench_load: gave up after 300 s");
        }
    });
    println!(
        "elapsed_s={:.3} sent={} true={} false={} errors={}",
        started.elapsed().as_secs_f64(),
        job.count * job.dup,
        job.yes.load(Ordering::Relaxed),
        job.no.load(Ordering::Relaxed),
        job.errors.load(Ordering::Relaxed)
    );
}

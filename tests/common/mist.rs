//! Speaks to usher the way MistServer does: a fresh TCP connection per trigger, `text/plain`
//! bodies of `\n`-joined fields, MistServer's headers.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A session id as MistServer makes them: 64 hex chars.
pub fn session_id(seed: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(seed.as_bytes()))
}

/// A `USER_NEW` body; `first` adds MistServer's 7th line (`false`) of a first check.
pub fn user_new_body(
    stream: &str,
    ip: &str,
    token: &str,
    url: &str,
    session: &str,
    first: bool,
) -> String {
    let mut body = format!("{stream}\n{ip}\n{token}\nHLS\n{url}\n{session}");
    if first {
        body.push_str("\nfalse");
    }
    body
}

/// A `USER_END` body for one stream.
pub fn user_end_body(token: &str, stream: &str, session: &str) -> String {
    format!(
        "{token}\n{stream}\nHLS\n127.0.0.1\n30\n1000\n200000\n\n127.0.0.1:30\nHLS:30\n{stream}:30\n{session}"
    )
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// Posts a trigger like MistServer 3.10 does (new connection, `Connection: close`).
pub async fn post_trigger(
    addr: SocketAddr,
    trigger: &str,
    uuid: &str,
    attempt: u32,
    body: &[u8],
) -> Answer {
    let head = format!(
        "POST /trigger HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         X-Trigger: {trigger}\r\nX-Trigger-UUID: {uuid}\r\nX-Attempt: {attempt}\r\n\
         X-Trigger-UnixMillis: 1700000000000\r\nX-PID: 4242\r\nX-Instance: test\r\nX-Version: 3.10\r\n\
         User-Agent: MistServer/3.10\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut raw = head.into_bytes();
    raw.extend_from_slice(body);
    send_raw(addr, &raw).await
}

/// `USER_NEW` with a random UUID, attempt 1.
pub async fn user_new(addr: SocketAddr, body: &str) -> Answer {
    post_trigger(addr, "USER_NEW", &uuid(), 1, body.as_bytes()).await
}

/// A fresh trigger UUID.
pub fn uuid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "00000000-0000-4000-8000-{:012x}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Sends raw bytes on a new connection and reads the answer until the server closes.
pub async fn send_raw(addr: SocketAddr, raw: &[u8]) -> Answer {
    let fut = async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(raw).await.expect("write");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        parse_answer(&buf)
    };
    tokio::time::timeout(Duration::from_secs(30), fut)
        .await
        .expect("answer within 30 s")
}

fn parse_answer(buf: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        body: body.to_string(),
    }
}

//! A tiny DNS server on 127.0.0.1 (UDP and TCP, one port) answering A/AAAA from a table the test
//! can change at any time (to play DNS rebinding), with TTL 0, counting queries.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

type Table = Arc<Mutex<HashMap<String, Vec<IpAddr>>>>;

/// The running DNS server. Dropping it stops it.
pub struct DnsServer {
    addr: SocketAddr,
    table: Table,
    queries: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl DnsServer {
    /// Starts on `127.0.0.1:<ephemeral>`, UDP and TCP on the same port.
    pub async fn start() -> DnsServer {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("local addr");
        let table: Table = Arc::default();
        let queries = Arc::new(AtomicUsize::new(0));
        let udp_task = tokio::spawn(serve_udp(udp, table.clone(), queries.clone()));
        let tcp_task = tokio::spawn(serve_tcp(tcp, table.clone(), queries.clone()));
        DnsServer {
            addr,
            table,
            queries,
            tasks: vec![udp_task, tcp_task],
        }
    }

    /// Where to send queries (for `[outbound] nameservers`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets (replaces) the answers for `name`; an empty list gives NOERROR with no answer.
    pub fn set(&self, name: &str, ips: &[IpAddr]) {
        self.table
            .lock()
            .expect("lock")
            .insert(normalise(name), ips.to_vec());
    }

    /// Removes `name`: it then answers NXDOMAIN.
    pub fn remove(&self, name: &str) {
        self.table.lock().expect("lock").remove(&normalise(name));
    }

    /// Queries answered so far (A and AAAA count separately).
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

async fn bind_pair() -> (UdpSocket, TcpListener) {
    // The ephemeral UDP port may be taken on TCP by someone else: retry a few times.
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind UDP");
        let addr = udp.local_addr().expect("local addr");
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("no port free on both UDP and TCP");
}

async fn serve_udp(socket: UdpSocket, table: Table, queries: Arc<AtomicUsize>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        if let Some(reply) = answer(&buf[..len], &table, &queries) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

async fn serve_tcp(listener: TcpListener, table: Table, queries: Arc<AtomicUsize>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let (table, queries) = (table.clone(), queries.clone());
        conns.spawn(async move {
            loop {
                let Ok(len) = stream.read_u16().await else {
                    return;
                };
                let mut buf = vec![0u8; usize::from(len)];
                if stream.read_exact(&mut buf).await.is_err() {
                    return;
                }
                let Some(reply) = answer(&buf, &table, &queries) else {
                    return;
                };
                let Ok(len) = u16::try_from(reply.len()) else {
                    return;
                };
                if stream.write_u16(len).await.is_err() || stream.write_all(&reply).await.is_err() {
                    return;
                }
            }
        });
        while conns.try_join_next().is_some() {}
    }
}

fn answer(query: &[u8], table: &Table, queries: &AtomicUsize) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    queries.fetch_add(1, Ordering::SeqCst);
    let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
    reply.metadata.message_type = MessageType::Response;
    reply.metadata.recursion_desired = request.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = true;
    let Some(q) = request.queries.first() else {
        reply.metadata.response_code = ResponseCode::FormErr;
        return reply.to_vec().ok();
    };
    reply.add_query(q.clone());
    let name = normalise(&q.name().to_ascii());
    let entry = table.lock().expect("lock").get(&name).cloned();
    match entry {
        None => reply.metadata.response_code = ResponseCode::NXDomain,
        Some(ips) => {
            for ip in ips {
                let rdata = match (ip, q.query_type()) {
                    (IpAddr::V4(v4), RecordType::A) => RData::A(A(v4)),
                    (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(v6)),
                    _ => continue,
                };
                reply.add_answer(Record::from_rdata(q.name().clone(), 0, rdata));
            }
        }
    }
    reply.to_vec().ok()
}

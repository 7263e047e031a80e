//! The accept loop both HTTP listeners share: HTTP/1.1 with keep-alive, a bounded number of
//! connections that slow clients cannot lock up ([`slots`]), a header read timeout, and a drain
//! bounded in time when shutdown starts.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::shutdown::ShutdownSignal;
use slots::{Admission, Busy, Conn, Slots};

mod slots;

/// Limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once. When all are taken, the oldest one that is not inside a
    /// request is cut to make room; when every one is inside a request, new ones wait.
    pub max_connections: usize,
    /// Time allowed for a request's headers to arrive.
    pub header_timeout: Duration,
    /// Time allowed for in-flight requests to finish once shutdown starts.
    pub drain_timeout: Duration,
}

/// Serves `handler` on `listener` until `shutdown` fires, then drains within `limits.drain_timeout`.
pub async fn serve<H, F>(
    name: &'static str,
    listener: TcpListener,
    limits: Limits,
    handler: H,
    mut shutdown: ShutdownSignal,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let slots = Arc::new(Slots::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.wait() => break,
        };
        let conn = loop {
            match slots.try_admit() {
                Admission::Admitted(conn) => break Some(conn),
                Admission::Full => tokio::select! {
                    _ = slots.changed() => {}
                    _ = shutdown.wait() => break None,
                },
            }
        };
        let Some(conn) = conn else { break };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            builder.clone(),
            stream,
            peer,
            handler.clone(),
            (slots.clone(), conn),
        ));
    }
    drop(listener);
    slots.cut_all();
    let drained = async {
        while slots.open() > 0 {
            slots.changed().await;
        }
    };
    match tokio::time::timeout(limits.drain_timeout, drained).await {
        Ok(()) => tracing::info!(listener = name, "drained"),
        Err(_) => tracing::warn!(
            listener = name,
            "drain timed out; closing remaining connections"
        ),
    }
}

/// Serves one connection in its slot until it closes, is cut to make room, or shutdown comes.
/// Cut or shut down outside a request, it closes at once; inside one, after answering it.
async fn connection<H, F>(
    builder: http1::Builder,
    stream: TcpStream,
    peer: SocketAddr,
    handler: H,
    (slots, state): (Arc<Slots>, Arc<Conn>),
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let in_request = state.clone();
    let service = service_fn(move |req| {
        let busy = Busy::new(in_request.clone());
        // Boxed once: hyper moves the service's future before polling it, and a request's
        // future is a kilobyte or two.
        let response = Box::pin(handler(req, peer));
        async move {
            let response = response.await;
            drop(busy);
            Ok::<_, Infallible>(response)
        }
    });
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    // The connection is polled directly: asking it to close sets a flag and wakes this task, so a
    // poll costs one atomic load on top of hyper's, with no channel or lock per wake-up.
    let mut closing = false;
    let mut waker = None;
    std::future::poll_fn(|cx| {
        loop {
            if !closing && state.cut_requested() {
                if !state.busy() {
                    return Poll::Ready(());
                }
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            if conn.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
            if closing {
                return Poll::Pending;
            }
            state.register(cx, &mut waker);
            // Asked to close between the check above and the registration: act on it now.
            if !state.cut_requested() {
                return Poll::Pending;
            }
        }
    })
    .await;
    slots.release(&state);
}

#[cfg(test)]
mod tests;

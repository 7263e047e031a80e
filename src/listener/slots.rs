//! The connection slots of one listener: at most `max` connections are served at once, and a
//! connection that is not inside a request gives its slot up to a new one when all are taken.
//!
//! A slot used to be taken before `accept` and held until the connection closed, so a few hundred
//! connections that never finished their headers (slowloris) locked everyone else out until the
//! header timeout cut them. Now every connection is accepted, and when the slots are full the
//! oldest connection that is not inside a request is cut to make room: a client waiting for its
//! headers to be read, or idle between kept-alive requests, loses its place to a new one; a request
//! being answered never does. When every slot is inside a request, new connections wait for one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use tokio::sync::Notify;

/// One served connection, as its slot sees it.
pub(super) struct Conn {
    /// Requests being answered on it right now (HTTP/1: 0 or 1).
    busy: AtomicUsize,
    /// Asked to close: to make room, or because shutdown started.
    cut: AtomicBool,
    /// Its task has ended.
    closed: AtomicBool,
    /// The task serving it, woken when it is asked to close.
    waker: Mutex<Option<Waker>>,
    signal: Arc<Signal>,
}

/// What a connection tells the accept loop, shared without a cycle back to [`Slots`].
struct Signal {
    /// Signalled when a connection closes, or finishes a request while an admission waits.
    changed: Notify,
    /// An admission is waiting for room.
    waiting: AtomicBool,
}

impl Conn {
    /// Whether it is inside a request.
    pub(super) fn busy(&self) -> bool {
        self.busy.load(Ordering::Acquire) > 0
    }

    /// Whether it was asked to close.
    pub(super) fn cut_requested(&self) -> bool {
        self.cut.load(Ordering::Acquire)
    }

    /// Asks it to close and wakes its task; false if it already was.
    fn request_cut(&self) -> bool {
        if self.cut.swap(true, Ordering::AcqRel) {
            return false;
        }
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Remembers the task to wake on [`Conn::request_cut`], unless `known` already wakes it
    /// (then no lock is taken: the serving task keeps one waker for its whole life).
    pub(super) fn register(&self, cx: &Context<'_>, known: &mut Option<Waker>) {
        if known.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return;
        }
        *known = Some(cx.waker().clone());
        *self.waker.lock().unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
    }
}

/// Marks a connection busy while a request is being answered.
pub(super) struct Busy(Arc<Conn>);

impl Busy {
    /// Marks `conn` busy until the guard drops.
    pub(super) fn new(conn: Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::AcqRel);
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
        // Only an admission waiting for room cares that this connection may now be cut.
        let signal = &self.0.signal;
        if signal.waiting.load(Ordering::Acquire) {
            signal.changed.notify_one();
        }
    }
}

/// The slots of one listener.
pub(super) struct Slots {
    max: usize,
    inner: Mutex<Inner>,
    signal: Arc<Signal>,
}

struct Inner {
    /// Connections in the order they were admitted (closed ones leave lazily).
    order: VecDeque<Arc<Conn>>,
    open: usize,
}

/// What [`Slots::try_admit`] found.
pub(super) enum Admission {
    /// A slot for the new connection.
    Admitted(Arc<Conn>),
    /// Full; a connection may have been asked to make room. Wait with [`Slots::changed`].
    Full,
}

impl Slots {
    /// `max` slots (at least one).
    pub(super) fn new(max: usize) -> Slots {
        Slots {
            max: max.max(1),
            inner: Mutex::new(Inner {
                order: VecDeque::new(),
                open: 0,
            }),
            signal: Arc::new(Signal {
                changed: Notify::new(),
                waiting: AtomicBool::new(false),
            }),
        }
    }

    /// A slot for a new connection, or asks the oldest connection outside a request to give its
    /// slot up. O(1) amortised: connections inside a request are moved to the back once per pass.
    pub(super) fn try_admit(&self) -> Admission {
        let mut inner = self.lock();
        if inner.open < self.max {
            let conn = Arc::new(Conn {
                busy: AtomicUsize::new(0),
                cut: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                waker: Mutex::new(None),
                signal: self.signal.clone(),
            });
            inner.open += 1;
            // Closed connections leave the queue lazily; keep it within twice the open ones.
            if inner.order.len() >= 2 * self.max {
                inner.order.retain(|c| !c.closed.load(Ordering::Acquire));
            }
            inner.order.push_back(conn.clone());
            self.signal.waiting.store(false, Ordering::Release);
            return Admission::Admitted(conn);
        }
        self.signal.waiting.store(true, Ordering::Release);
        for _ in 0..inner.order.len() {
            let Some(conn) = inner.order.pop_front() else {
                break;
            };
            if conn.closed.load(Ordering::Acquire) {
                continue;
            }
            let cut = !conn.busy() && conn.request_cut();
            inner.order.push_back(conn);
            if cut {
                break;
            }
        }
        Admission::Full
    }

    /// Waits until a slot may be free (a connection closed or left a request).
    pub(super) async fn changed(&self) {
        self.signal.changed.notified().await;
    }

    /// Asks every open connection to close (shutdown): at once outside a request, after it
    /// inside one.
    pub(super) fn cut_all(&self) {
        let open: Vec<Arc<Conn>> = self.lock().order.iter().cloned().collect();
        for conn in open {
            conn.request_cut();
        }
    }

    /// Frees the slot of a connection whose task ended.
    pub(super) fn release(&self, conn: &Conn) {
        conn.closed.store(true, Ordering::Release);
        let mut inner = self.lock();
        inner.open = inner.open.saturating_sub(1);
        drop(inner);
        self.signal.changed.notify_one();
    }

    /// Connections open now.
    pub(super) fn open(&self) -> usize {
        self.lock().open
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

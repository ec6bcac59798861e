//! One client connection's watch, for the HTTP server ([`super::serve`]): what its request is
//! doing and since when, so the server closes it when it sends its head too slowly, sits idle
//! too long or stops taking its answer, and can pick it for eviction at the connection cap.
//! [`ConnState`] is written by the connection's own task (its socket through `guarded_io`,
//! hyper, the service in `conn_service`), all within the poll of hyper's connection, after
//! which that task looks at the deadline; so no change needs a wake-up of its own, but an
//! eviction, which comes from the accept loop.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The server's bounded times (README "Connections that misbehave").
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// A request's head, from connecting or from its first byte on a kept-alive connection.
    pub header: Duration,
    /// A request's whole body from the end of its head; also the longest a write may stall.
    pub body: Duration,
    /// A kept-alive connection between requests.
    pub idle: Duration,
}

/// How long a connection that starts waiting for a request is spared by eviction while
/// connections that waited longer, or trickle a body, can go instead
/// ([`ConnState::eviction_rank`]). A client's request follows its connect by a millisecond or
/// two, so this covers the moment between the accept and the request's arrival in which a
/// health check's fresh connection looks idle (one was evicted there in CI, with no idle
/// socket older than it left to evict); it is short so that a flood of idle sockets opened in
/// one burst still goes before the bodies being trickled (tests/it/slow_clients.rs).
pub const EVICTION_GRACE: Duration = Duration::from_millis(50);

/// Milliseconds on the server's clock, from 1: 0 stands for "not set" in [`ConnState`].
fn now_ms() -> u64 {
    clock_start().elapsed().as_millis() as u64 + 1
}

fn clock_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn instant_of(ms: u64) -> Instant {
    clock_start() + Duration::from_millis(ms.saturating_sub(1))
}

/// Why the server closed a connection by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    Header,
    Idle,
    Send,
}

impl Expiry {
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::Header => "header_timeout",
            Expiry::Idle => "idle_timeout",
            Expiry::Send => "send_timeout",
        }
    }
}

#[derive(Default)]
pub struct ConnState {
    /// A request is in the service: from its complete head to the end of its answer.
    busy: AtomicBool,
    busy_since: AtomicU64,
    requests: AtomicU64,
    /// When the connection last started waiting for a request (connected, or answered one).
    waiting_since: AtomicU64,
    /// The first byte of the next request, while its head is still incomplete.
    first_byte_at: AtomicU64,
    write_stalled_since: AtomicU64,
    /// The request's body has not been read to its end (yet).
    body_pending: AtomicBool,
    body_too_slow: AtomicBool,
    evicted: AtomicBool,
    eviction: Notify,
}

impl ConnState {
    pub fn new() -> Self {
        let state = ConnState::default();
        state.waiting_since.store(now_ms(), Relaxed);
        state
    }

    /// hyper has a complete head and calls the service.
    pub fn request_started(&self, has_body: bool) {
        self.busy_since.store(now_ms(), Relaxed);
        self.busy.store(true, Relaxed);
        self.requests.fetch_add(1, Relaxed);
        self.first_byte_at.store(0, Relaxed);
        self.body_pending.store(has_body, Relaxed);
        self.body_too_slow.store(false, Relaxed);
    }

    /// The answer's body is done (sent to hyper, or dropped).
    pub fn request_finished(&self) {
        self.waiting_since.store(now_ms(), Relaxed);
        self.first_byte_at.store(0, Relaxed);
        self.busy.store(false, Relaxed);
    }

    pub fn body_ended(&self) {
        self.body_pending.store(false, Relaxed);
    }

    /// When the body of the request in service is due: `body` after its head.
    pub fn body_due(&self, body: Duration) -> Instant {
        instant_of(self.busy_since.load(Relaxed)) + body
    }

    /// The body due still arriving, if any: the connection's task rings then, so that the
    /// request's handler, polled in that task, finds it overdue (`conn_service`).
    pub fn pending_body_due(&self, body: Duration) -> Option<Instant> {
        let pending = self.busy.load(Relaxed)
            && self.body_pending.load(Relaxed)
            && !self.body_too_slow.load(Relaxed);
        pending.then(|| self.body_due(body))
    }

    pub fn mark_body_too_slow(&self) {
        self.body_too_slow.store(true, Relaxed);
    }

    pub fn body_too_slow(&self) -> bool {
        self.body_too_slow.load(Relaxed)
    }

    /// A request is in the service.
    pub fn busy(&self) -> bool {
        self.busy.load(Relaxed)
    }

    /// The request's body was not read to its end (yet).
    pub fn body_pending(&self) -> bool {
        self.body_pending.load(Relaxed)
    }

    pub fn bytes_arrived(&self) {
        if !self.busy.load(Relaxed) && self.first_byte_at.load(Relaxed) == 0 {
            self.first_byte_at.store(now_ms(), Relaxed);
        }
    }

    pub fn write_stalled(&self, stalled: bool) {
        let since = self.write_stalled_since.load(Relaxed);
        if stalled && since == 0 {
            self.write_stalled_since.store(now_ms(), Relaxed);
        } else if !stalled && since != 0 {
            self.write_stalled_since.store(0, Relaxed);
        }
    }

    /// Asks the connection's task to close it; false when it was already asked.
    pub fn evict(&self) -> bool {
        let first = !self.evicted.swap(true, Relaxed);
        self.eviction.notify_one();
        first
    }

    /// Its place in the eviction order, lowest first, while it has not sent a complete
    /// request: waiting for one (idle, or its head still arriving) for [`EVICTION_GRACE`] or
    /// longer, by how long; then a request whose body is still arriving, by how long; last a
    /// connection that started waiting less than the grace ago (a client that connected or was
    /// answered a moment ago and is sending its request: a health check must not lose its
    /// fresh connection to a body trickled for seconds). `None` for a request being handled
    /// and once it is evicted.
    pub fn eviction_rank(&self) -> Option<(u8, u64)> {
        self.eviction_rank_at(now_ms())
    }

    fn eviction_rank_at(&self, now: u64) -> Option<(u8, u64)> {
        if self.evicted.load(Relaxed) {
            return None;
        }
        if !self.busy.load(Relaxed) {
            let since = self.waiting_since.load(Relaxed);
            let young = now.saturating_sub(since) < EVICTION_GRACE.as_millis() as u64;
            return Some((if young { 2 } else { 0 }, since));
        }
        let arriving = self.body_pending.load(Relaxed) && !self.body_too_slow.load(Relaxed);
        arriving.then(|| (1, self.busy_since.load(Relaxed)))
    }

    /// When the connection is to be closed if nothing changes, and why. A request in service
    /// has none (but a stalled write's): a late body is answered `408` by the service, which
    /// finds it overdue when the connection's task rings at [`Self::pending_body_due`].
    pub fn deadline(&self, t: &Timeouts) -> Option<(Instant, Expiry)> {
        let stalled = self.write_stalled_since.load(Relaxed);
        let send = (stalled != 0).then(|| (instant_of(stalled) + t.body, Expiry::Send));
        let waiting = if self.busy.load(Relaxed) {
            None
        } else {
            let first_byte = self.first_byte_at.load(Relaxed);
            let since = instant_of(self.waiting_since.load(Relaxed));
            Some(if first_byte != 0 {
                (instant_of(first_byte) + t.header, Expiry::Header)
            } else if self.requests.load(Relaxed) == 0 {
                (since + t.header, Expiry::Header)
            } else {
                (since + t.idle, Expiry::Idle)
            })
        };
        match (send, waiting) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        }
    }

    /// Completes once the connection is evicted.
    pub async fn evicted_signal(&self) {
        self.eviction.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_the_phase() {
        let t = Timeouts {
            header: Duration::from_secs(10),
            body: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        };
        let state = ConnState::new();
        let (at, why) = state.deadline(&t).unwrap();
        assert_eq!(why, Expiry::Header);
        assert!(at <= Instant::now() + t.header);
        let now = now_ms();
        let fresh = state.eviction_rank_at(now).unwrap();
        let grace = EVICTION_GRACE.as_millis() as u64;
        let waited = state.eviction_rank_at(now + grace).unwrap();
        state.request_started(true);
        assert!(state.deadline(&t).is_none());
        let arriving = state.eviction_rank().unwrap();
        assert!(
            waited < arriving,
            "a connection waiting past the grace goes before a body arriving"
        );
        assert!(
            arriving < fresh,
            "a body arriving goes before a connection that just started waiting"
        );
        let due = state.pending_body_due(t.body).unwrap();
        assert!(due > Instant::now() + Duration::from_secs(29));
        state.body_ended();
        assert!(state.pending_body_due(t.body).is_none());
        assert!(
            state.eviction_rank().is_none(),
            "a request being handled stays"
        );
        state.request_finished();
        assert_eq!(state.deadline(&t).unwrap().1, Expiry::Idle);
        state.bytes_arrived();
        assert_eq!(state.deadline(&t).unwrap().1, Expiry::Header);
        state.write_stalled(true);
        assert_eq!(state.deadline(&t).unwrap().1, Expiry::Header);
        assert!(state.evict());
        assert!(!state.evict());
        assert!(state.eviction_rank().is_none());
    }
}

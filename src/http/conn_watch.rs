//! One client connection's watch, for the HTTP server ([`super::serve`]): what its request is
//! doing and since when, so the server closes it when it sends its head too slowly, sits idle
//! too long or stops taking its answer, and can pick it for eviction at the connection cap.
//! [`ConnState`] is written by the connection's own task (its socket, hyper, the service) and
//! read by the accept loop; [`GuardedIo`] is the socket as hyper sees it: it notes arriving
//! bytes and stalled writes, rewrites hyper's own bodiless error answers (to heads it cannot
//! parse: `400`, `414`, `431`) into the CONTRACT JSON, and lingers before closing a connection
//! whose request was not read to its end, so the client reads the answer instead of a reset.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

/// How long, and for how many bytes, a closing connection still reads what its client sends.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

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
    changed: Notify,
}

impl ConnState {
    pub fn new() -> Self {
        let state = ConnState::default();
        state.waiting_since.store(now_ms(), Relaxed);
        state
    }

    /// hyper has a complete head and calls the service.
    pub fn request_started(&self, has_body: bool) {
        self.busy.store(true, Relaxed);
        self.requests.fetch_add(1, Relaxed);
        self.first_byte_at.store(0, Relaxed);
        self.body_pending.store(has_body, Relaxed);
        self.body_too_slow.store(false, Relaxed);
        self.changed.notify_one();
    }

    /// The answer's body is done (sent to hyper, or dropped).
    pub fn request_finished(&self) {
        self.waiting_since.store(now_ms(), Relaxed);
        self.first_byte_at.store(0, Relaxed);
        self.busy.store(false, Relaxed);
        self.changed.notify_one();
    }

    pub fn body_ended(&self) {
        self.body_pending.store(false, Relaxed);
    }

    pub fn mark_body_too_slow(&self) {
        self.body_too_slow.store(true, Relaxed);
    }

    pub fn body_too_slow(&self) -> bool {
        self.body_too_slow.load(Relaxed)
    }

    fn bytes_arrived(&self) {
        if !self.busy.load(Relaxed) && self.first_byte_at.load(Relaxed) == 0 {
            self.first_byte_at.store(now_ms(), Relaxed);
            self.changed.notify_one();
        }
    }

    fn write_stalled(&self, stalled: bool) {
        let since = self.write_stalled_since.load(Relaxed);
        if stalled && since == 0 {
            self.write_stalled_since.store(now_ms(), Relaxed);
            self.changed.notify_one();
        } else if !stalled && since != 0 {
            self.write_stalled_since.store(0, Relaxed);
        }
    }

    /// Asks the connection's task to close it; false when it was already asked.
    pub fn evict(&self) -> bool {
        let first = !self.evicted.swap(true, Relaxed);
        self.changed.notify_one();
        first
    }

    pub fn evicted(&self) -> bool {
        self.evicted.load(Relaxed)
    }

    /// Since when (server clock) the connection has waited without a complete request;
    /// `None` while a request is in service or once it is evicted.
    pub fn waiting_since(&self) -> Option<u64> {
        if self.busy.load(Relaxed) || self.evicted.load(Relaxed) {
            return None;
        }
        Some(self.waiting_since.load(Relaxed))
    }

    /// When the connection is to be closed if nothing changes, and why. A request in
    /// service has none of its own: its body's deadline is the body's (`conn_service`).
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

    /// Completes when any of the above changed (after the last call).
    pub async fn changed(&self) {
        self.changed.notified().await
    }
}

/// The socket as hyper sees it (see the module's doc).
pub struct GuardedIo {
    inner: TcpStream,
    state: std::sync::Arc<ConnState>,
    /// The CONTRACT answer standing in for hyper's own, and how much of it is written.
    rewrite: Option<(Vec<u8>, usize)>,
    linger: Option<Linger>,
}

struct Linger {
    until: Pin<Box<Sleep>>,
    fin_sent: bool,
    discarded: usize,
}

impl GuardedIo {
    pub fn new(inner: TcpStream, state: std::sync::Arc<ConnState>) -> Self {
        GuardedIo {
            inner,
            state,
            rewrite: None,
            linger: None,
        }
    }

    /// Writes what is left of the rewritten answer.
    fn poll_rewrite(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((answer, written)) = &mut self.rewrite else {
            return Poll::Ready(Ok(()));
        };
        while *written < answer.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &answer[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(()))
    }

    /// Takes over a write of hyper's that is one of its own error answers; true when taken.
    fn take_over(&mut self, cx: &mut Context<'_>, first: &[u8]) -> io::Result<bool> {
        if self.state.busy.load(Relaxed) {
            return Ok(false);
        }
        let Some(answer) = contract_answer_for(first) else {
            return Ok(false);
        };
        self.rewrite = Some((answer, 0));
        if let Poll::Ready(Err(e)) = self.poll_rewrite(cx) {
            return Err(e);
        }
        Ok(true)
    }

    /// Half-closes, then discards what the client still sends for a moment: closing with
    /// unread bytes would reset the connection and could destroy the answer in flight.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let linger = self.linger.get_or_insert_with(|| Linger {
            until: Box::pin(tokio::time::sleep(LINGER)),
            fin_sent: false,
            discarded: 0,
        });
        if !linger.fin_sent {
            ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
            linger.fin_sent = true;
        }
        let mut scratch = [0u8; 4096];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    linger.discarded += buf.filled().len();
                    if linger.discarded > LINGER_BYTES {
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return linger.until.as_mut().poll(cx).map(Ok),
            }
        }
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(read, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.bytes_arrived();
        }
        read
    }
}

impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.rewrite.is_some() {
            // hyper closes after its error answer; anything more of it is dropped.
            ready!(this.poll_rewrite(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        if this.take_over(cx, buf)? {
            return Poll::Ready(Ok(buf.len()));
        }
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.state.write_stalled(written.is_pending());
        written
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total = bufs.iter().map(|b| b.len()).sum();
        if this.rewrite.is_some() {
            ready!(this.poll_rewrite(cx))?;
            return Poll::Ready(Ok(total));
        }
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            if this.take_over(cx, first)? {
                return Poll::Ready(Ok(total));
            }
        }
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.state.write_stalled(written.is_pending());
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_rewrite(cx))?;
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        this.state.write_stalled(flushed.is_pending());
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_rewrite(cx))?;
        if this.rewrite.is_some() || this.state.body_pending.load(Relaxed) {
            return this.poll_linger(cx);
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// hyper answers a head it cannot parse by itself, before any service runs, with an empty
/// body. Such an answer is a 4xx/5xx head, written while no request is in service, with no
/// `content-type` (every error answer of ours has one), in one write. The CONTRACT answer
/// to send instead, keeping hyper's status and date.
fn contract_answer_for(write: &[u8]) -> Option<Vec<u8>> {
    if !write.starts_with(b"HTTP/1.") {
        return None;
    }
    let end = write.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&write[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let code = lines.next()?.get(9..12)?;
    let status = StatusCode::from_bytes(code.as_bytes()).ok()?;
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    let mut date = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("content-type") {
            return None;
        }
        if name.eq_ignore_ascii_case("date") {
            date = Some(value.trim());
        }
    }
    let body = super::error::contract_body(status);
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        body.len()
    );
    if let Some(date) = date {
        answer.push_str(&format!("date: {date}\r\n"));
    }
    answer.push_str("\r\n");
    let mut answer = answer.into_bytes();
    answer.extend_from_slice(&body);
    Some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bodiless_error_heads_are_rewritten() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Sat, 06 Dec 2025 17:00:00 GMT\r\n\r\n";
        let answer = String::from_utf8(contract_answer_for(hyper_431).unwrap()).unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(answer.contains("content-type: application/json\r\n"));
        assert!(answer.contains("date: Sat, 06 Dec 2025 17:00:00 GMT\r\n"));
        let body = answer.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "headers_too_large");
        assert!(answer.contains(&format!("content-length: {}\r\n", body.len())));

        let ours = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert!(contract_answer_for(ours).is_none());
        assert!(contract_answer_for(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(contract_answer_for(b"HTTP/1.1 400 Bad Req").is_none());
        assert!(contract_answer_for(b"{\"HTTP/1.1 400\"}").is_none());
    }

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
        state.request_started(true);
        assert!(state.deadline(&t).is_none());
        assert!(state.waiting_since().is_none());
        state.request_finished();
        assert_eq!(state.deadline(&t).unwrap().1, Expiry::Idle);
        state.bytes_arrived();
        assert_eq!(state.deadline(&t).unwrap().1, Expiry::Header);
        state.write_stalled(true);
        assert_eq!(state.deadline(&t).unwrap().1, Expiry::Header);
        assert!(state.evict());
        assert!(!state.evict());
        assert!(state.waiting_since().is_none());
    }
}

//! The socket as hyper sees it, for the HTTP server ([`super::serve`]): [`GuardedIo`] tells
//! the connection's watch ([`ConnState`]) of arriving bytes and stalled writes, rewrites
//! hyper's own bodiless error answers (to heads it cannot parse: `400`, `414`, `431`) into the
//! error JSON (docs/api.md), and lingers before closing a connection whose request was not read to its
//! end, so that the client reads the answer instead of a reset.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use super::conn_watch::ConnState;

/// How long, and for how many bytes, a closing connection still reads what its client sends.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// The socket as hyper sees it (see the module's doc).
pub struct GuardedIo {
    inner: TcpStream,
    state: Arc<ConnState>,
    /// The error answer (docs/api.md) standing in for hyper's own, and how much of it is written.
    rewrite: Option<(Vec<u8>, usize)>,
    linger: Option<Linger>,
}

struct Linger {
    until: Pin<Box<Sleep>>,
    fin_sent: bool,
    discarded: usize,
}

impl GuardedIo {
    pub fn new(inner: TcpStream, state: Arc<ConnState>) -> Self {
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
        if self.state.busy() {
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
        if this.rewrite.is_some() || this.state.body_pending() {
            return this.poll_linger(cx);
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// hyper answers a head it cannot parse by itself, before any service runs, with an empty
/// body. Such an answer is a 4xx/5xx head, written while no request is in service, with no
/// `content-type` (every error answer of ours has one), in one write. The error answer (docs/api.md)
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
}

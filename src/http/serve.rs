//! The HTTP server loop (`run` serves the router with it, in place of `axum::serve`): accepts
//! connections and serves each with hyper over HTTP/1.1 under bounded times for every phase
//! of a request (README "Connections that misbehave"; the times are in the README and in
//! `Config`), and a cap on open connections derived from the open-file limit ([`fdlimit`]).
//! At the cap a newcomer is still served: the connection that has waited longest without
//! sending a complete request (idle or trickling its head first, then trickling a body) is
//! closed instead, so `/healthz` keeps answering while slow clients try to use up the sockets.
//!
//! hyper's own `header_read_timeout` is left off: its clock starts as soon as a connection
//! goes idle, so it would close kept-alive connections after the header timeout too. Each
//! connection's watch ([`ConnState`]) tells idle time from header time instead, and its task
//! closes it when its deadline passes.
//!
//! [`fdlimit`]: super::fdlimit

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::conn_service::ConnService;
use super::conn_watch::{ConnState, Timeouts};
use super::guarded_io::GuardedIo;

/// Largest request head (request line and headers). hyper's default would let each
/// trickling client make the server buffer about 400 KiB; over it the answer is `431`.
const MAX_HEAD_BYTES: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub timeouts: Timeouts,
    pub max_connections: usize,
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting, lets each
/// connection finish the request it is in (still under its timeouts) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_header_size(MAX_HEAD_BYTES);
    let http = Arc::new(http);
    let open = Arc::new(Registry::default());
    let stop = CancellationToken::new();
    // Every connection task holds a receiver; `closed` completes when the last is gone.
    let (all_done, done) = watch::channel(());
    let mut last_warning = None;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e, &open, &mut last_warning).await;
                    continue;
                }
            },
        };
        if open.len() >= limits.max_connections && !open.evict_longest_waiting() {
            // Every connection has a request being handled: this one cannot be served.
            metrics::counter!("billsync_http_connections_refused_total").increment(1);
            continue;
        }
        let entry = open.add();
        let task = Connection {
            stream,
            entry,
            router: router.clone(),
            http: http.clone(),
            timeouts: limits.timeouts,
            stop: stop.clone(),
            _done: done.clone(),
        };
        tokio::spawn(task.run());
    }
    drop(listener);
    stop.cancel();
    drop(done);
    all_done.closed().await;
    Ok(())
}

/// A failed `accept`: out of file descriptors despite the cap's reserve, a waiting
/// connection makes room; other failures are waited out briefly (a warning a second at most).
async fn accept_failed(
    e: io::Error,
    open: &Registry,
    last_warning: &mut Option<tokio::time::Instant>,
) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    let out_of_files = matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE));
    let made_room = out_of_files && open.evict_longest_waiting();
    if last_warning.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
        *last_warning = Some(tokio::time::Instant::now());
        tracing::warn!(error = %e, open = open.len(), made_room, "accepting a connection failed");
    }
    let pause = if made_room { 10 } else { 100 };
    tokio::time::sleep(Duration::from_millis(pause)).await;
}

/// The open connections' watches, for the cap and eviction.
#[derive(Default)]
struct Registry {
    next: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
}

impl Registry {
    fn conns(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        // A panic elsewhere while holding the lock leaves the map itself consistent.
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn len(&self) -> usize {
        self.conns().len()
    }

    fn add(self: &Arc<Self>) -> Entry {
        let id = self.next.fetch_add(1, Relaxed);
        let state = Arc::new(ConnState::new());
        let mut conns = self.conns();
        conns.insert(id, state.clone());
        metrics::gauge!("billsync_http_connections_open").set(conns.len() as f64);
        Entry {
            registry: self.clone(),
            id,
            state,
        }
    }

    /// Closes the connection that has waited longest without sending a complete request: an
    /// idle kept-alive one or one still trickling its head, else one still trickling a body,
    /// else one that started waiting less than 50 ms ago ([`ConnState::eviction_rank`]);
    /// false when every request is being handled.
    fn evict_longest_waiting(&self) -> bool {
        let conns = self.conns();
        let longest = conns
            .values()
            .filter_map(|c| c.eviction_rank().map(|rank| (rank, c)))
            .min_by_key(|(rank, _)| *rank);
        match longest {
            Some((_, c)) => c.evict(),
            None => false,
        }
    }
}

/// A connection's place in the registry, given up when its task ends.
struct Entry {
    registry: Arc<Registry>,
    id: u64,
    state: Arc<ConnState>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut conns = self.registry.conns();
        conns.remove(&self.id);
        metrics::gauge!("billsync_http_connections_open").set(conns.len() as f64);
    }
}

struct Connection {
    stream: TcpStream,
    entry: Entry,
    router: Router,
    http: Arc<http1::Builder>,
    timeouts: Timeouts,
    stop: CancellationToken,
    _done: watch::Receiver<()>,
}

impl Connection {
    /// Serves the connection until it ends, its deadline passes or it is evicted; dropping
    /// hyper's connection closes the socket.
    async fn run(self) {
        let state = self.entry.state.clone();
        let io = TokioIo::new(GuardedIo::new(self.stream, state.clone()));
        let service = ConnService::new(self.router, state.clone(), self.timeouts.body);
        let conn = self.http.serve_connection(io, service);
        tokio::pin!(conn);
        let alarm = tokio::time::sleep(self.timeouts.idle);
        tokio::pin!(alarm);
        let mut armed = None;
        let mut draining = false;
        let closed = loop {
            // Biased: the deadline is looked at right after hyper's connection, so it sees each
            // change that poll made (module `conn_watch`).
            tokio::select! {
                biased;
                ended = conn.as_mut() => {
                    if let Err(e) = ended {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                    return;
                }
                why = deadline_passed(&state, &self.timeouts, alarm.as_mut(), &mut armed) => break why,
                () = state.evicted_signal() => break "evicted",
                () = self.stop.cancelled(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        };
        tracing::debug!(reason = closed, "closing a connection");
        metrics::counter!("billsync_http_connections_closed_total", "reason" => closed)
            .increment(1);
    }
}

/// Completes, with the reason, once the connection's deadline has passed. The alarm is reset
/// only when the deadline moved. A request in service has no deadline here: the alarm rings
/// when its body is due (its handler, polled in this task, then finds the body overdue) or
/// else looks again after the idle timeout.
fn deadline_passed<'a>(
    state: &'a ConnState,
    timeouts: &'a Timeouts,
    mut alarm: Pin<&'a mut Sleep>,
    armed: &'a mut Option<Instant>,
) -> impl Future<Output = &'static str> + 'a {
    std::future::poll_fn(move |cx| loop {
        let now = Instant::now();
        let at = match state.deadline(timeouts) {
            Some((at, why)) if at <= now => return Poll::Ready(why.as_str()),
            Some((at, _)) => at,
            None => match (state.pending_body_due(timeouts.body), *armed) {
                (Some(due), _) if due > now => due,
                (_, Some(at)) if at > now => at,
                _ => now + timeouts.idle,
            },
        };
        if *armed != Some(at) {
            alarm.as_mut().reset(at);
            *armed = Some(at);
        }
        if alarm.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        // Rung: the next turn reads the deadline again and re-arms.
        *armed = None;
    })
}

//! The accept loop: HTTP/1.1 connections served by hyper, each watched by its timers,
//! at most [`ConnectionLimits::max_connections`] at once, drained within a deadline.
//!
//! `axum::serve` has no timer, so a client that sends half its headers, or nothing,
//! holds a connection (and a task) for as long as it likes, and a graceful shutdown
//! waits for it forever. Here every connection is in one of three phases, and a
//! watchdog closes it when its phase's deadline passes:
//!
//! - **headers**: from the connection's start, or from the first byte after an idle
//!   spell, until a request's headers are complete (`header_read_timeout`);
//! - **busy**: a request is being handled; the per-request timeout of the `observe`
//!   middleware bounds it (the body is read inside it), so the watchdog waits;
//! - **idle**: the answer is out and no byte of a next request has come
//!   (`idle_timeout`; it also bounds a client that does not read its answer).
//!
//! This is Go's `ReadHeaderTimeout` and `IdleTimeout`; hyper's own
//! `header_read_timeout` would also cut kept-alive connections after the header time.
//!
//! At the cap the loop stops accepting until a connection ends: newcomers wait in the
//! kernel's listen backlog and are served as slots free, which the timers above make
//! happen within `header_read_timeout` even when every slot is held by a slow client.
//! (Accepting and closing at once would turn every newcomer away while the slots are
//! held, and cost an accept per attempt of the client holding them.)
//!
//! On shutdown the listener closes, idle connections close at once, requests in flight
//! finish (their connections then close) and half-sent ones keep their header
//! deadline; whatever is still open after `shutdown_timeout` is dropped.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::ConnectionLimits;

/// How often, at most, the log says the connection cap is reached.
const CAP_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Serves `router` on `listener` until `stop` turns true (or its sender is dropped),
/// then drains the connections within `limits.shutdown_timeout`.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let service = TowerToHyperService::new(router);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut warned_at: Option<Instant> = None;
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if warned_at.is_none_or(|at| at.elapsed() >= CAP_WARNING_EVERY) {
                    warned_at = Some(Instant::now());
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "the connection cap is reached; new connections wait in the listen backlog (MAX_CONNECTIONS)"
                    );
                }
                tokio::select! {
                    biased;
                    () = stopped(&mut stop) => break,
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        // The semaphore is never closed.
                        Err(_) => break,
                    },
                }
            }
        };
        let accepted = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                connections.spawn(connection(
                    stream,
                    peer,
                    service.clone(),
                    limits,
                    stop.clone(),
                    slot,
                ));
            }
            // The client gave up before it was accepted: nothing to do.
            Err(error) if is_connection_error(&error) => {}
            // Out of file descriptors or memory: wait a little, as `axum::serve` does.
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed; retrying in 1 s");
                tokio::select! {
                    () = stopped(&mut stop) => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        while connections.try_join_next().is_some() {}
    }
    // New clients are refused from here on.
    drop(listener);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            shutdown_timeout_secs = limits.shutdown_timeout.as_secs(),
            "connections still open at the shutdown deadline are closed (SHUTDOWN_TIMEOUT_SECS)"
        );
    }
    connections.shutdown().await;
}

/// Resolves once the server is told to stop (or the one who could tell it is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Accept errors that concern one client only.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Where a connection is, and until when it may stay there.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request's headers, until then.
    Headers(Instant),
    /// Handling a request.
    Busy,
    /// Waiting for the next request, until then.
    Idle(Instant),
}

/// A connection's phase, shared by its reader, its service and its watchdog. A change
/// wakes nothing and arms no timer: the watchdog's one timer never fires later than
/// the current phase's deadline (see [`expiry`]), so requests pay a lock, not a wake.
#[derive(Clone)]
struct SharedPhase(Arc<Mutex<Phase>>);

impl SharedPhase {
    fn get(&self) -> Phase {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, phase: Phase) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = phase;
    }

    /// Idle to headers (the first byte of a next request), else nothing.
    fn wake_up(&self, header_read_timeout: Duration) {
        let mut phase = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*phase, Phase::Idle(_)) {
            *phase = Phase::Headers(Instant::now() + header_read_timeout);
        }
    }
}

impl Phase {
    /// The deadline and what it is, when the phase has one.
    fn deadline(self) -> Option<(Instant, &'static str)> {
        match self {
            Phase::Headers(until) => Some((until, "header read timeout")),
            Phase::Busy => None,
            Phase::Idle(until) => Some((until, "idle timeout")),
        }
    }
}

/// Serves one connection until it ends, its phase's deadline passes, or the server's
/// drain deadline drops it; `_slot` frees its place under the cap when this ends.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    service: TowerToHyperService<Router>,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    // Answers are written at once; do not hold a small one back for an ACK.
    let _ = stream.set_nodelay(true);
    let phase = SharedPhase(Arc::new(Mutex::new(Phase::Headers(
        Instant::now() + limits.header_read_timeout,
    ))));
    let io = Watched {
        stream,
        phase: phase.clone(),
        header_read_timeout: limits.header_read_timeout,
    };
    let handle = {
        let phase = phase.clone();
        hyper::service::service_fn(move |mut request: Request<Incoming>| {
            // What `into_make_service_with_connect_info` gave: the peer for extractors.
            request.extensions_mut().insert(ConnectInfo(peer));
            phase.set(Phase::Busy);
            let answer = service.call(request);
            let phase = phase.clone();
            let idle_timeout = limits.idle_timeout;
            async move {
                let response: Result<Response<Body>, Infallible> = answer.await;
                phase.set(Phase::Idle(Instant::now() + idle_timeout));
                response
            }
        })
    };
    let connection = hyper::server::conn::http1::Builder::new()
        // The watchdog below keeps the time; hyper's header timer would also cut
        // kept-alive connections after the header time.
        .header_read_timeout(None)
        .serve_connection(TokioIo::new(io), handle);
    let mut connection = pin!(connection);
    let step = limits.header_read_timeout.min(limits.idle_timeout);
    let mut expired = pin!(expiry(phase, step));
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "a connection ended with an error");
                }
                return;
            }
            what = &mut expired => {
                // Dropping the connection closes the socket.
                tracing::debug!(%peer, what, "closing a connection");
                return;
            }
            () = stopped(&mut stop), if !stopping => {
                // Idle connections close now; a request in flight is answered first.
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Resolves when the connection has stayed in one phase past its deadline; says which.
///
/// One timer, re-armed only when it fires, at the current phase's deadline or `step`
/// from now, whichever is sooner (`step` is the shorter of the two timeouts). Every
/// phase change sets a deadline at least `step` after the change, so the armed time is
/// never later than the current deadline: when it fires, the phase has expired or the
/// timer is re-armed, and the deadline is kept exactly. An idle or busy connection
/// costs one timer firing per `step`.
async fn expiry(phase: SharedPhase, step: Duration) -> &'static str {
    let next = |now: Instant| match phase.get().deadline() {
        Some((deadline, what)) if deadline <= now => Err(what),
        Some((deadline, _)) => Ok(deadline.min(now + step)),
        None => Ok(now + step),
    };
    let first = match next(Instant::now()) {
        Ok(at) => at,
        Err(what) => return what,
    };
    let mut timer = pin!(tokio::time::sleep_until(first));
    loop {
        timer.as_mut().await;
        match next(Instant::now()) {
            Ok(at) => timer.as_mut().reset(at),
            Err(what) => return what,
        }
    }
}

/// The client's stream, which restarts the header timer when the first byte of a next
/// request arrives on an idle connection.
struct Watched {
    stream: TcpStream,
    phase: SharedPhase,
    header_read_timeout: Duration,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.phase.wake_up(this.header_read_timeout);
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

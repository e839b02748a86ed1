//! One accepted connection of the public listener: its slot under the
//! connection limits, and a deadline for every request head on it.
//!
//! actix times the head of a connection's *first* request only
//! (`client_request_timeout`, answered with a 408); on a kept-alive
//! connection, a client that sends part of its next request and stops is
//! never timed again. [`Connection`] closes that gap: the head of every later
//! request must be complete within [`HEADER_TIMEOUT`] of its first byte, and
//! a connection waiting for a head (or for the client to take an answer)
//! with no progress at all for [`KEEP_ALIVE`] + [`HEADER_TIMEOUT`] is closed.
//! The app tells the clock where requests begin and end ([`track_requests`]).

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::limits::{ConnectionLimits, Permit};

/// A request head must arrive within this time.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle kept-alive connection is closed after this time.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// The local address a connection reached, kept in its connection data.
#[derive(Debug, Clone, Copy)]
pub struct LocalAddr(pub SocketAddr);

/// An accepted TCP stream holding its slot, under a head deadline.
pub struct Connection {
    io: TcpStream,
    clock: Rc<HeadClock>,
    local: Option<SocketAddr>,
    _permit: Permit,
}

impl Connection {
    /// The stream, if `limits` have a slot for its peer; else `None`, and
    /// dropping `io` closes it.
    pub fn admit(io: TcpStream, limits: &std::sync::Arc<ConnectionLimits>) -> Option<Self> {
        let peer = io.peer_addr().ok()?;
        let permit = limits.admit(peer.ip()).ok()?;
        let local = io.local_addr().ok();
        Some(Self {
            io,
            clock: Rc::new(HeadClock::new()),
            local,
            _permit: permit,
        })
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.io.peer_addr().ok()
    }

    /// What requests on this connection can read of it (`on_connect_ext`).
    pub fn describe(&self, data: &mut Extensions) {
        data.insert(Rc::clone(&self.clock));
        if let Some(local) = self.local {
            data.insert(LocalAddr(local));
        }
    }
}

/// Marks where each request begins (its head is parsed) and ends (its
/// answer is ready), for the connection's head deadline.
pub async fn track_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody + 'static>, actix_web::Error> {
    let clock = req.request().conn_data::<Rc<HeadClock>>().cloned();
    if let Some(clock) = &clock {
        clock.request_started();
    }
    let response = next.call(req).await;
    if let Some(clock) = &clock {
        clock.request_answered();
    }
    response
}

/// Where a connection is between requests, and when it must have moved on.
pub struct HeadClock {
    state: RefCell<ClockState>,
}

struct ClockState {
    /// A request is being served: its body and handler have their own limits.
    serving: bool,
    /// Bytes of the next head have arrived (or the head is actix's to time:
    /// the connection's first).
    head_started: bool,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whether `deadline` counts; while a request is served it is kept, not
    /// dropped, so each request reuses one timer instead of making one.
    armed: bool,
    /// The task reading the connection, woken when the deadline moves.
    waker: Option<Waker>,
    /// The connection carries a tunnel (a WebSocket after its 101): no
    /// request head comes again.
    tunneled: bool,
}

impl HeadClock {
    fn new() -> Self {
        Self {
            state: RefCell::new(ClockState {
                serving: false,
                // The first head is timed by actix, which answers it with a 408.
                head_started: true,
                deadline: None,
                armed: false,
                waker: None,
                tunneled: false,
            }),
        }
    }

    fn request_started(&self) {
        let mut state = self.state.borrow_mut();
        state.serving = true;
        state.armed = false;
    }

    /// From now on the connection carries a tunnel (the upstream proxy's
    /// WebSocket), not requests: no head deadline applies any more. The
    /// tunnel lasts until either end closes it, as nginx's and Envoy's do
    /// without a configured idle timeout; the connection keeps its slot
    /// under the connection limits meanwhile.
    pub fn tunnel(&self) {
        let mut state = self.state.borrow_mut();
        state.tunneled = true;
        state.armed = false;
    }

    fn request_answered(&self) {
        let mut state = self.state.borrow_mut();
        if state.tunneled {
            return;
        }
        state.serving = false;
        state.head_started = false;
        state.set_deadline(Instant::now() + KEEP_ALIVE + HEADER_TIMEOUT);
        // Bytes of the next head may be buffered already: the reader must
        // see the new deadline even if the socket stays silent.
        if let Some(waker) = state.waker.take() {
            waker.wake();
        }
    }

    fn bytes_read(&self, n: usize) {
        let mut state = self.state.borrow_mut();
        if n > 0 && !state.serving && !state.head_started && !state.tunneled {
            state.head_started = true;
            state.set_deadline(Instant::now() + HEADER_TIMEOUT);
        }
    }

    /// An answer is still going out: a client taking it, however slowly, is
    /// not stalled.
    fn bytes_written(&self, n: usize) {
        let mut state = self.state.borrow_mut();
        if n == 0 || state.serving || state.tunneled {
            return;
        }
        let pushed = Instant::now()
            + match state.head_started {
                true => HEADER_TIMEOUT,
                false => KEEP_ALIVE + HEADER_TIMEOUT,
            };
        let later = match (&state.deadline, state.armed) {
            (Some(sleep), true) => sleep.deadline() < pushed,
            _ => true,
        };
        if later {
            state.set_deadline(pushed);
        }
    }

    /// Whether the deadline has passed; registers `cx` to be woken when it does.
    fn expired(&self, cx: &mut Context<'_>) -> bool {
        let mut state = self.state.borrow_mut();
        if !state
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waker = Some(cx.waker().clone());
        }
        let armed = state.armed;
        state
            .deadline
            .as_mut()
            .is_some_and(|sleep| armed && sleep.as_mut().poll(cx).is_ready())
    }
}

impl ClockState {
    fn set_deadline(&mut self, at: Instant) {
        self.armed = true;
        match &mut self.deadline {
            Some(sleep) => sleep.as_mut().reset(at),
            None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
        }
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.clock.bytes_read(buf.filled().len() - before);
        }
        if this.clock.expired(cx) {
            tracing::debug!(
                peer = ?this.peer_addr(),
                "closing a connection: no request head within the time allowed"
            );
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request head not received in time",
            )));
        }
        polled
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            this.clock.bytes_written(n);
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            this.clock.bytes_written(n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

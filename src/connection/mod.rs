//! The server side of one connection as an explicit state machine, without sockets:
//!
//! ```text
//! New ──first bytes──▶ Handshaking ──101──▶ Open ──close sent, received or failed──▶ Closing
//!  │                       │                  │                                        │
//!  └──── HTTP reply (page, refusal, 408) ─────┴──▶ Replying ───────────────────────────┴─▶ Closed
//! ```
//!
//! Each state holds its own data: the request head while handshaking, the protocol
//! [`Endpoint`] and route while open or closing, the HTTP reply while replying. The loop hands a
//! connection what it read, the time, end-of-stream and timer expiries; the connection reports
//! what happened ([`ConnectionEvents`]: a request to answer, open, message, close) and leaves
//! what must be written in its queue. It calls no application code itself and knows nothing of
//! the server: the loop dispatches its events. The loop asks it what it wants next
//! ([`Connection::wants_read`], [`Connection::wants_write_shutdown`],
//! [`Connection::next_deadline`]).

mod attached;
mod http;
mod upgrade;

pub(crate) use attached::{Allowance, Attached, RateBucket};

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::debug;

use crate::config::Config;
use crate::ids::ConnectionId;
use crate::protocol::close::CloseCode;
use crate::protocol::deflate::CompressionMode;
use crate::protocol::endpoint::{Endpoint, EndpointConfig, Event, Phase};
use crate::protocol::handshake::{HttpError, Refusal, Request};
use crate::protocol::outbound::{Message, Outbound};
use crate::protocol::stamp::Stamp;
use crate::protocol::write_queue::WriteQueue;

/// Which of the server's routes serves a connection.
pub(crate) type RouteId = usize;

/// The connections' share of the server's [`Config`], made once: every connection's endpoint
/// shares one [`EndpointConfig`] instead of holding a copy.
#[derive(Debug)]
pub(crate) struct ConnectionConfig {
    pub(crate) handshake_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) max_header_size: usize,
    pub(crate) compression_threshold: usize,
    pub(crate) endpoint: Arc<EndpointConfig>,
}

impl ConnectionConfig {
    pub(crate) fn new(config: &Config) -> ConnectionConfig {
        ConnectionConfig {
            handshake_timeout: config.handshake_timeout,
            close_timeout: config.close_timeout,
            max_header_size: config.max_header_size,
            compression_threshold: config.compression_threshold,
            endpoint: Arc::new(config.endpoint()),
        }
    }
}

/// How the server answers a complete request head.
#[derive(Debug)]
pub(crate) enum Answer {
    /// 101: open a WebSocket on this route, with this subprotocol (one the client offered,
    /// checked by whoever answers).
    Upgrade {
        route: RouteId,
        protocol: Option<String>,
        /// How to answer a permessage-deflate offer.
        compression: CompressionMode,
        /// What the connection carries from here on, if anything.
        attached: Option<Box<Attached>>,
    },
    /// A complete HTTP reply (a page) with its status; the connection closes after it.
    Reply { status: u16, response: Vec<u8> },
    /// Refuse with an HTTP error; the connection closes after it.
    Refuse(HttpError),
    /// Read the request's body of `length` bytes (already checked against the limits), then
    /// have it answered ([`ConnectionEvents::on_http`]); the connection stays open for the
    /// next request unless the client asked to close.
    ReadBody { length: usize },
}

/// What a connection reports to whoever drives it. Every callback gets the connection's id; the
/// open-phase ones get its route, its sending half (so replies go straight to its queue) and
/// what it carries.
pub(crate) trait ConnectionEvents {
    /// A complete request head: `upgrade` when it is a valid upgrade request (§4.2.1), false
    /// for a plain HTTP request. Whoever answers may note what it learned in the request.
    fn on_request(&mut self, id: ConnectionId, request: &mut Request, upgrade: bool) -> Answer;

    /// A request answered with [`Answer::ReadBody`] arrived whole: the complete reply to it
    /// (with `Connection: keep-alive`, or `close` when `keep_alive` is false).
    fn on_http(
        &mut self,
        id: ConnectionId,
        request: &Request,
        body: &[u8],
        keep_alive: bool,
    ) -> Vec<u8>;

    /// The request was refused with an HTTP error `status` (already logged and queued).
    fn on_refused(&mut self, status: u16);

    /// The 101 is queued: the connection is open.
    fn on_open(&mut self, id: ConnectionId, route: RouteId, open: Open<'_>);

    /// The connection's queue fell to its route's low watermark after rising above its high
    /// one (the loop tells the connection, which reports it while open).
    fn on_drain(&mut self, id: ConnectionId, route: RouteId, open: Open<'_>);

    /// A whole message arrived.
    fn on_message(
        &mut self,
        id: ConnectionId,
        route: RouteId,
        open: Open<'_>,
        message: Message<'_>,
        gathered: Option<&Arc<Vec<u8>>>,
    );

    /// The connection left the open phase (reported once): `code` is the peer's close code,
    /// the one the server sent, or 1006 when it dropped; `how` says which.
    fn on_close(&mut self, id: ConnectionId, route: RouteId, open: Open<'_>, close: Closed<'_>);
}

/// An open connection's parts a callback works with: its sending half and what it carries.
pub(crate) struct Open<'a> {
    pub(crate) out: &'a mut Outbound,
    pub(crate) attached: &'a mut Option<Box<Attached>>,
}

/// How a connection left the open phase, as reported to [`ConnectionEvents::on_close`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Closed<'a> {
    pub(crate) code: CloseCode,
    pub(crate) reason: &'a str,
    /// "by peer", "by server" or "abnormally", for the log.
    pub(crate) how: &'static str,
}

/// Where a connection is in its life; each state holds its own data.
#[derive(Debug)]
enum State {
    /// Accepted; no byte of the request yet. Holds no buffer.
    New { deadline: Stamp },
    /// Part of the request head has arrived.
    Handshaking { head: Vec<u8>, deadline: Stamp },
    /// Upgraded: messages flow both ways.
    Open {
        ws: Endpoint,
        route: RouteId,
        attached: Option<Box<Attached>>,
    },
    /// A close frame was sent or received, or the connection failed: the endpoint reads on
    /// until the peer's close ([`Phase::CloseSent`]) or reads nothing more ([`Phase::Closed`]);
    /// then the queue drains, the write side is shut down and the rest of the input discarded
    /// until the peer closes or the deadline passes.
    Closing {
        ws: Endpoint,
        route: RouteId,
        deadline: Stamp,
        attached: Option<Box<Attached>>,
    },
    /// Between HTTP requests on a kept-alive connection, or reading one's body (see
    /// `http.rs`).
    Http(Box<http::Exchange>),
    /// An HTTP reply drains; then the same as a drained `Closing`.
    Replying { queue: WriteQueue, deadline: Stamp },
    /// Done: the loop drops the socket.
    Closed,
}

/// One connection; see the module docs.
#[derive(Debug)]
pub(crate) struct Connection {
    id: ConnectionId,
    peer: SocketAddr,
    state: State,
    /// The peer shut down its write side.
    peer_eof: bool,
    /// Accepted on the server's separate HTTP address: only HTTP routes are served.
    http_only: bool,
}

/// Where a connection stands, as the loop needs it after each write (see
/// [`Connection::standing`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Standing {
    /// The route serving it while it is open and accepts messages.
    pub(crate) route: Option<RouteId>,
    /// Bytes waiting to be written.
    pub(crate) buffered: usize,
    /// The loop should drop the socket.
    pub(crate) closed: bool,
}

impl Standing {
    /// Whether the loop should read from the socket: not when closed, and not while the peer
    /// leaves more than `high_watermark` unread (backpressure: stop reading from a peer that
    /// does not read what it is sent).
    pub(crate) fn wants_read(&self, high_watermark: usize) -> bool {
        !self.closed && self.buffered <= high_watermark
    }
}

/// Passes an open endpoint's events to the loop's [`ConnectionEvents`].
fn report<'e, E: ConnectionEvents>(
    events: &'e mut E,
    id: ConnectionId,
    route: RouteId,
    attached: &'e mut Option<Box<Attached>>,
) -> impl FnMut(&mut Outbound, Event<'_>) + 'e {
    move |out, event| match event {
        Event::Message { message, gathered } => {
            let open = Open {
                out,
                attached: &mut *attached,
            };
            events.on_message(id, route, open, message, gathered);
        }
        Event::Ping(_) | Event::Pong(_) => {}
        Event::Closed { code, reason, by } => {
            use crate::protocol::endpoint::ClosedBy;
            let how = match by {
                ClosedBy::Peer => "by peer",
                ClosedBy::Local | ClosedBy::Violation(_) => "by server",
                ClosedBy::Dropped => "abnormally",
            };
            let open = Open {
                out,
                attached: &mut *attached,
            };
            events.on_close(id, route, open, Closed { code, reason, how });
        }
    }
}

impl Connection {
    /// A connection accepted at `now`.
    pub(crate) fn new(
        id: ConnectionId,
        peer: SocketAddr,
        now: Instant,
        config: &ConnectionConfig,
    ) -> Self {
        Connection {
            id,
            peer,
            state: State::New {
                deadline: Stamp::of(now + config.handshake_timeout),
            },
            peer_eof: false,
            http_only: false,
        }
    }

    /// The same connection, accepted on the server's separate HTTP address.
    pub(crate) fn http_only(mut self) -> Self {
        self.http_only = true;
        self
    }

    /// Bytes arrived from the peer. `input` may be changed (payloads are unmasked in place).
    pub(crate) fn receive(
        &mut self,
        input: &mut [u8],
        now: Instant,
        config: &ConnectionConfig,
        events: &mut impl ConnectionEvents,
    ) {
        match &mut self.state {
            State::New { .. } | State::Handshaking { .. } => {
                upgrade::receive_head(self, input, now, config, events);
            }
            State::Open {
                ws,
                route,
                attached,
            } => {
                ws.receive(input, now, &mut report(events, self.id, *route, attached));
                self.settle(now, config);
            }
            State::Closing {
                ws,
                route,
                attached,
                ..
            } => {
                ws.receive(input, now, &mut report(events, self.id, *route, attached));
            }
            State::Http(_) => http::receive(self, input, now, config, events),
            // Discarded until the peer closes.
            State::Replying { .. } | State::Closed => {}
        }
    }

    /// While a large frame's payload is arriving, lets `read` fill its next bytes straight
    /// into the message's buffer (see [`Endpoint::receive_in_place`]). `None` when the next
    /// bytes are better read into the loop's shared buffer and given to
    /// [`Connection::receive`].
    pub(crate) fn receive_in_place(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
        now: Instant,
        config: &ConnectionConfig,
        events: &mut impl ConnectionEvents,
    ) -> Option<(io::Result<usize>, usize)> {
        let done = match &mut self.state {
            State::Open {
                ws,
                route,
                attached,
            }
            | State::Closing {
                ws,
                route,
                attached,
                ..
            } => ws.receive_in_place(read, now, &mut report(events, self.id, *route, attached)),
            _ => None,
        };
        if done.is_some() {
            self.settle(now, config);
        }
        done
    }

    /// Moves an open connection whose endpoint left the open phase to `Closing`. Called after
    /// every read: the check is inlined into the caller, the move is not.
    #[inline]
    fn settle(&mut self, now: Instant, config: &ConnectionConfig) {
        if matches!(&self.state, State::Open { ws, .. } if ws.phase() != Phase::Open) {
            self.start_closing(now, config);
        }
    }

    #[inline(never)]
    fn start_closing(&mut self, now: Instant, config: &ConnectionConfig) {
        let State::Open {
            ws,
            route,
            attached,
        } = std::mem::replace(&mut self.state, State::Closed)
        else {
            unreachable!("called on an open connection");
        };
        self.state = State::Closing {
            ws,
            route,
            deadline: Stamp::of(now + config.close_timeout),
            attached,
        };
    }

    /// The read batch is over: let go of buffers an idle connection need not hold.
    pub(crate) fn end_of_batch(&mut self) {
        if let State::Open { ws, .. } | State::Closing { ws, .. } = &mut self.state {
            ws.release_idle_buffers();
        }
    }

    /// The peer shut down its side of the TCP connection. What is already queued (replies to
    /// what it sent before, a close frame) still goes out; then the connection ends.
    pub(crate) fn on_eof(
        &mut self,
        now: Instant,
        config: &ConnectionConfig,
        events: &mut impl ConnectionEvents,
    ) {
        self.peer_eof = true;
        match &mut self.state {
            State::Open {
                ws,
                route,
                attached,
            }
            | State::Closing {
                ws,
                route,
                attached,
                ..
            } => {
                let mut report = report(events, self.id, *route, attached);
                ws.drop_connection(CloseCode::ABNORMAL, "connection dropped", &mut report);
                drop(report);
                if ws.buffered() == 0 {
                    self.state = State::Closed;
                } else {
                    self.settle(now, config);
                }
            }
            State::Replying { queue, .. } if !queue.is_empty() => {}
            State::Http(exchange) if !exchange.queue.is_empty() => {
                // Its replies still go out, then it ends.
                let queue = std::mem::take(&mut exchange.queue);
                self.state = State::Replying {
                    queue,
                    deadline: Stamp::of(now + config.close_timeout),
                };
            }
            _ => self.state = State::Closed,
        }
    }

    /// Reading or writing the socket failed: the connection is gone.
    pub(crate) fn on_io_error(&mut self, error: &io::Error, events: &mut impl ConnectionEvents) {
        debug!("{} socket error: {error}", self.peer);
        if let State::Open {
            ws,
            route,
            attached,
        } = &mut self.state
        {
            let mut report = report(events, self.id, *route, attached);
            ws.drop_connection(CloseCode::ABNORMAL, "connection dropped", &mut report);
        }
        self.state = State::Closed;
    }

    /// A deadline passed.
    pub(crate) fn on_timeout(
        &mut self,
        now: Instant,
        config: &ConnectionConfig,
        events: &mut impl ConnectionEvents,
    ) {
        match &mut self.state {
            State::New { deadline } | State::Handshaking { deadline, .. }
                if now >= deadline.instant() =>
            {
                let error = Refusal::HandshakeTimeout.into();
                upgrade::reply_error(self, None, &error, None, now, config, events);
            }
            State::Http(_) => http::on_timeout(self, now, config, events),
            State::Open {
                ws,
                route,
                attached,
            } => {
                let expired = attached
                    .as_ref()
                    .and_then(|a| a.expires)
                    .is_some_and(|at| now >= at);
                let mut report = report(events, self.id, *route, attached);
                if expired {
                    debug!("{} token expired", self.peer);
                    ws.close(CloseCode::POLICY_VIOLATION, "token expired", &mut report);
                } else {
                    ws.handle_timeout(now, &mut report);
                }
                drop(report);
                self.settle(now, config);
            }
            State::Closing { deadline, .. } | State::Replying { deadline, .. }
                if now >= deadline.instant() =>
            {
                debug!("{} close timeout", self.peer);
                self.state = State::Closed;
            }
            _ => {}
        }
    }

    /// The queue drained after backpressure: tell the handler, and act on a close it asks for.
    pub(crate) fn on_drain(
        &mut self,
        now: Instant,
        config: &ConnectionConfig,
        events: &mut impl ConnectionEvents,
    ) {
        if let State::Open {
            ws,
            route,
            attached,
        } = &mut self.state
        {
            let open = Open {
                out: ws.outbound(),
                attached: &mut *attached,
            };
            events.on_drain(self.id, *route, open);
            ws.after_send(&mut report(events, self.id, *route, attached));
            self.settle(now, config);
        }
    }

    /// The server is shutting down (1001) or draining (1012): close with `code` and `reason`
    /// and wait for the peer's close. A request not answered yet is dropped.
    pub(crate) fn on_shutdown(
        &mut self,
        now: Instant,
        config: &ConnectionConfig,
        (code, reason): (CloseCode, &str),
        events: &mut impl ConnectionEvents,
    ) {
        match &mut self.state {
            State::New { .. } | State::Handshaking { .. } | State::Http(_) => {
                self.state = State::Closed
            }
            _ => self.close(now, config, (code, reason), events),
        }
    }

    /// The server closes an open connection (asked from outside a callback): with `code` and
    /// `reason`, then waits for the peer's close.
    pub(crate) fn close(
        &mut self,
        now: Instant,
        config: &ConnectionConfig,
        (code, reason): (CloseCode, &str),
        events: &mut impl ConnectionEvents,
    ) {
        if let State::Open {
            ws,
            route,
            attached,
        } = &mut self.state
        {
            ws.close(code, reason, &mut report(events, self.id, *route, attached));
            self.settle(now, config);
        }
    }

    /// The user an open connection's token names, if it had one.
    pub(crate) fn user(&self) -> Option<&str> {
        match &self.state {
            State::Open { attached, .. } => {
                let identity = attached.as_ref()?.identity.as_deref()?;
                Some(identity.user())
            }
            _ => None,
        }
    }

    /// The peer leaves more than `max_buffered` bytes unread: close with 1008 if the close
    /// frame still fits under the limit, else drop the connection outright.
    pub(crate) fn on_slow_consumer(
        &mut self,
        now: Instant,
        config: &ConnectionConfig,
        max_buffered: usize,
        events: &mut impl ConnectionEvents,
    ) {
        const REASON: &str = "slow consumer: too much unread data";
        let State::Open {
            ws,
            route,
            attached,
        } = &mut self.state
        else {
            return;
        };
        let mut report = report(events, self.id, *route, attached);
        let close_frame_len = 2 + 2 + REASON.len();
        if ws.buffered() + close_frame_len <= max_buffered {
            ws.close_and_stop(CloseCode::POLICY_VIOLATION, REASON, &mut report);
            drop(report);
            self.settle(now, config);
        } else {
            ws.drop_connection(CloseCode::POLICY_VIOLATION, REASON, &mut report);
            drop(report);
            self.state = State::Closed;
        }
    }

    /// Ends a connection that is not open yet (or only replying) at once, when nothing can
    /// reach the peer; an open or closing one keeps its own close.
    pub(crate) fn abort(&mut self) {
        if !matches!(self.state, State::Open { .. } | State::Closing { .. }) {
            self.state = State::Closed;
        }
    }

    /// The earliest time the connection needs [`Connection::on_timeout`].
    pub(crate) fn next_deadline(&self) -> Option<Stamp> {
        match &self.state {
            State::New { deadline }
            | State::Handshaking { deadline, .. }
            | State::Closing { deadline, .. }
            | State::Replying { deadline, .. } => Some(*deadline),
            State::Http(exchange) => Some(Stamp::of(exchange.deadline)),
            State::Open { ws, attached, .. } => {
                let protocol = ws.next_timer().map(|(at, _)| at);
                let expires = attached.as_ref().and_then(|a| a.expires).map(Stamp::of);
                match (protocol, expires) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            State::Closed => None,
        }
    }

    /// What the loop asks of a connection after every write, in one look at its state.
    #[inline]
    pub(crate) fn standing(&self) -> Standing {
        let (route, buffered) = match &self.state {
            State::Open { ws, route, .. } => (Some(*route), ws.buffered()),
            State::Closing { ws, .. } => (None, ws.buffered()),
            State::Replying { queue, .. } => (None, queue.len()),
            State::Http(exchange) => (None, exchange.queue.len()),
            State::New { .. } | State::Handshaking { .. } | State::Closed => (None, 0),
        };
        let closed = matches!(self.state, State::Closed);
        Standing {
            route,
            buffered,
            closed,
        }
    }

    /// Bytes waiting to be written.
    pub(crate) fn buffered(&self) -> usize {
        self.standing().buffered
    }

    /// The queue the loop writes out, if any.
    pub(crate) fn queue(&mut self) -> Option<&mut WriteQueue> {
        match &mut self.state {
            State::Open { ws, .. } | State::Closing { ws, .. } => Some(ws.outbound().queue()),
            State::Replying { queue, .. } => Some(queue),
            State::Http(exchange) => Some(&mut exchange.queue),
            _ => None,
        }
    }

    /// Whether the loop should read from the socket (see [`Standing::wants_read`]).
    pub(crate) fn wants_read(&self, high_watermark: usize) -> bool {
        self.standing().wants_read(high_watermark)
    }

    /// Whether the last bytes have been handed to the socket and its write side should now be
    /// shut down (the server closes the TCP connection first, §7.1.1).
    pub(crate) fn wants_write_shutdown(&self) -> bool {
        match &self.state {
            State::Closing { ws, .. } => ws.phase() == Phase::Closed && ws.buffered() == 0,
            State::Replying { queue, .. } => queue.is_empty(),
            _ => false,
        }
    }

    /// Whether the loop should drop the socket.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The loop finished writing the queue; a drained connection whose peer is gone ends here.
    pub(crate) fn after_flush(&mut self) {
        if self.peer_eof && self.wants_write_shutdown() {
            self.state = State::Closed;
        }
    }

    /// This connection's id.
    pub(crate) fn id(&self) -> ConnectionId {
        self.id
    }

    /// The peer's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The route serving this connection while it is open and accepts messages.
    pub(crate) fn route(&self) -> Option<RouteId> {
        self.standing().route
    }

    /// The sending half, while the connection is open and accepts messages.
    pub(crate) fn outbound(&mut self) -> Option<&mut Outbound> {
        self.open().map(|open| open.out)
    }

    /// The sending half and what the connection carries, while it is open and accepts
    /// messages.
    pub(crate) fn open(&mut self) -> Option<Open<'_>> {
        match &mut self.state {
            State::Open { ws, attached, .. } => Some(Open {
                out: ws.outbound(),
                attached,
            })
            .filter(|open| open.out.is_open()),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

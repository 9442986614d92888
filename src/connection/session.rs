//! The parts of a connection that outlive the handshake: state, timers, the write side and the
//! application's callbacks. Every transition of [`State`] after the handshake happens here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use log::{debug, info};

use super::{Closing, State};
use crate::buffer_pool::recycle;
use crate::config::Config;
use crate::handler::{ConnectionId, Context, Current, Message, Outbox, Outgoing};
use crate::protocol::close::{close_body, CloseCode};
use crate::protocol::error::ProtocolError;
use crate::protocol::frame::OpCode;
use crate::protocol::handshake::{error_response, HttpError};
use crate::protocol::message::{DataKind, Received};
use crate::server::app::App;

/// Everything about a connection but its frame reader.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) id: ConnectionId,
    pub(crate) peer: SocketAddr,
    pub(crate) state: State,
    /// The application serving this connection, once open.
    pub(super) route: Option<usize>,
    pub(crate) out: Outgoing,
    /// When the peer last sent anything.
    last_seen: Instant,
    /// A keepalive ping is out and nothing has arrived since.
    ping_outstanding: bool,
    /// The peer shut down its write side.
    peer_eof: bool,
}

impl Session {
    pub(super) fn new(id: ConnectionId, peer: SocketAddr, now: Instant, config: &Config) -> Self {
        Session {
            id,
            peer,
            state: State::New {
                deadline: now + config.handshake_timeout,
            },
            route: None,
            out: Outgoing::default(),
            last_seen: now,
            ping_outstanding: false,
            peer_eof: false,
        }
    }

    /// The peer sent something: it is alive.
    pub(super) fn touch(&mut self, now: Instant) {
        self.last_seen = now;
        self.ping_outstanding = false;
    }

    /// Whether incoming frames still matter: while open, and while waiting for the peer's close.
    pub(super) fn reads_frames(&self) -> bool {
        matches!(
            self.state,
            State::Open
                | State::Closing {
                    stage: Closing::AwaitingPeerClose,
                    ..
                }
        )
    }

    fn path<'a>(&self, app: &'a App) -> &'a str {
        self.route
            .map_or("-", |route| app.routes[route].path.as_str())
    }

    /// The 101 reply is queued: the connection is open (§4.2.2).
    pub(super) fn open(&mut self, route: usize, now: Instant, app: &mut App, outbox: &mut Outbox) {
        self.route = Some(route);
        self.state = State::Open;
        self.last_seen = now;
        self.out.accepting = true;
        info!("{} {} open {}", self.peer, app.routes[route].path, self.id);
        self.callback(app, outbox, Current::None, |handler, ctx| {
            handler.on_open(ctx)
        });
        self.after_callback(now, app, outbox);
    }

    /// Runs a callback of this connection's handler with a fresh context.
    fn callback(
        &mut self,
        app: &mut App,
        outbox: &mut Outbox,
        current: Current<'_>,
        call: impl FnOnce(&mut dyn crate::Handler, &mut Context<'_>),
    ) {
        let Some(route) = self.route else { return };
        let mut ctx = Context {
            id: self.id,
            route,
            out: &mut self.out,
            outbox,
            current,
        };
        call(app.routes[route].handler.as_mut(), &mut ctx);
    }

    /// Acts on a close the application asked for in a callback.
    fn after_callback(&mut self, now: Instant, app: &mut App, outbox: &mut Outbox) {
        if let Some((code, reason)) = self.out.close_request.take() {
            self.start_close(code, &reason, Closing::AwaitingPeerClose, now, app, outbox);
        }
    }

    /// Something complete arrived from the peer.
    pub(super) fn on_received(
        &mut self,
        received: Received<'_>,
        now: Instant,
        app: &mut App,
        outbox: &mut Outbox,
    ) {
        let open = matches!(self.state, State::Open);
        match received {
            // After the server's close, data is read but no longer delivered (§5.5.1).
            Received::Text(_) | Received::Binary(_) | Received::Ping(_) | Received::Pong(_)
                if !open => {}
            Received::Text(text) => self.deliver(Message::Text(text), now, app, outbox),
            Received::Binary(bytes) => self.deliver(Message::Binary(bytes), now, app, outbox),
            // Taken out of the assembler by the connection, and handed to `on_gathered`.
            Received::Gathered(_) => {}
            // §5.5.2: a pong with the ping's payload, as soon as practical.
            Received::Ping(payload) => self.out.queue.push_frame(OpCode::Pong, payload),
            Received::Pong(_) => {}
            Received::Close(code, reason) if open => {
                // §5.5.1: answer with a close, echoing the code; then the server closes first.
                self.out.accepting = false;
                let body = if code == CloseCode::NO_STATUS {
                    Vec::new()
                } else {
                    close_body(code, "")
                };
                self.out.queue.push_frame(OpCode::Close, &body);
                self.closed_log(code, reason, "by peer", app);
                self.callback(app, outbox, Current::None, |handler, ctx| {
                    handler.on_close(ctx, code, reason)
                });
                self.state = draining(now, &app.config);
            }
            Received::Close(..) => self.state = draining(now, &app.config),
        }
    }

    /// Hands a message to the application.
    fn deliver(&mut self, message: Message<'_>, now: Instant, app: &mut App, outbox: &mut Outbox) {
        let current = Current::Borrowed(message);
        self.callback(app, outbox, current, |handler, ctx| {
            handler.on_message(ctx, message)
        });
        self.after_callback(now, app, outbox);
    }

    /// A whole message gathered from pieces, owned, so an echo can queue it without a copy.
    pub(super) fn on_gathered(
        &mut self,
        kind: DataKind,
        payload: Arc<Vec<u8>>,
        now: Instant,
        app: &mut App,
        outbox: &mut Outbox,
    ) {
        if matches!(self.state, State::Open) {
            let (opcode, message) = match kind {
                DataKind::Binary => (OpCode::Binary, Message::Binary(&payload)),
                // Validated as it arrived; this pass only turns it into `&str` without `unsafe`.
                DataKind::Text => match std::str::from_utf8(&payload) {
                    Ok(text) => (OpCode::Text, Message::Text(text)),
                    Err(_) => return self.fail(ProtocolError::InvalidUtf8, now, app, outbox),
                },
            };
            let current = Current::Gathered(opcode, payload.clone());
            self.callback(app, outbox, current, |handler, ctx| {
                handler.on_message(ctx, message)
            });
            self.after_callback(now, app, outbox);
        }
        recycle(payload);
    }

    /// The peer broke the protocol: fail the connection with the error's close code (§7.1.7).
    pub(super) fn fail(
        &mut self,
        error: ProtocolError,
        now: Instant,
        app: &mut App,
        outbox: &mut Outbox,
    ) {
        if matches!(self.state, State::Open) {
            let reason = error.to_string();
            self.start_close(
                error.close_code(),
                &reason,
                Closing::Draining,
                now,
                app,
                outbox,
            );
        } else {
            debug!("{} error while closing: {error}", self.peer);
            self.state = draining(now, &app.config);
        }
    }

    /// Sends a close frame and leaves the open state, telling the application.
    fn start_close(
        &mut self,
        code: CloseCode,
        reason: &str,
        stage: Closing,
        now: Instant,
        app: &mut App,
        outbox: &mut Outbox,
    ) {
        self.out.accepting = false;
        self.out
            .queue
            .push_frame(OpCode::Close, &close_body(code, reason));
        self.closed_log(code, reason, "by server", app);
        self.callback(app, outbox, Current::None, |handler, ctx| {
            handler.on_close(ctx, code, reason)
        });
        self.state = State::Closing {
            stage,
            deadline: now + app.config.close_timeout,
        };
    }

    fn closed_log(&self, code: CloseCode, reason: &str, by: &str, app: &App) {
        info!(
            "{} {} closed {by} {code} {reason:?} {}",
            self.peer,
            self.path(app),
            self.id
        );
    }

    /// After an HTTP reply: send it, then close.
    pub(super) fn start_draining(&mut self, now: Instant, config: &Config) {
        self.state = draining(now, config);
    }

    pub(super) fn on_eof(&mut self, app: &mut App, outbox: &mut Outbox) {
        self.peer_eof = true;
        match self.state {
            State::Open => self.drop_open(CloseCode::ABNORMAL, "connection dropped", app, outbox),
            State::Closing {
                stage: Closing::Draining,
                ..
            } if !self.out.queue.is_empty() => {}
            _ => self.state = State::Closed,
        }
    }

    pub(super) fn on_io_error(
        &mut self,
        error: &std::io::Error,
        app: &mut App,
        outbox: &mut Outbox,
    ) {
        debug!("{} socket error: {error}", self.peer);
        if matches!(self.state, State::Open) {
            self.drop_open(CloseCode::ABNORMAL, "connection dropped", app, outbox);
        }
        self.state = State::Closed;
    }

    /// The connection ends without a closing handshake.
    fn drop_open(&mut self, code: CloseCode, reason: &str, app: &mut App, outbox: &mut Outbox) {
        self.out.accepting = false;
        self.closed_log(code, reason, "abnormally", app);
        self.callback(app, outbox, Current::None, |handler, ctx| {
            handler.on_close(ctx, code, reason)
        });
        self.state = State::Closed;
    }

    pub(super) fn after_flush(&mut self) {
        let drained = matches!(
            self.state,
            State::Closing {
                stage: Closing::Draining,
                ..
            }
        );
        if drained && self.peer_eof && self.out.queue.is_empty() {
            self.state = State::Closed;
        }
    }

    pub(super) fn next_deadline(&self, config: &Config) -> Option<Instant> {
        match self.state {
            State::New { deadline }
            | State::Handshaking { deadline, .. }
            | State::Closing { deadline, .. } => Some(deadline),
            State::Open => {
                let idle = config.idle().map(|t| self.last_seen + t);
                let ping = config
                    .ping()
                    .filter(|_| !self.ping_outstanding)
                    .map(|t| self.last_seen + t);
                idle.into_iter().chain(ping).min()
            }
            State::Closed => None,
        }
    }

    pub(super) fn on_timeout(&mut self, now: Instant, app: &mut App, outbox: &mut Outbox) {
        let config = &app.config;
        match self.state {
            State::New { deadline } | State::Handshaking { deadline, .. } if now >= deadline => {
                info!("{} - refused: 408 handshake timeout", self.peer);
                let error = HttpError {
                    status: 408,
                    reason: "request head took too long",
                };
                self.out.queue.push_bytes(&error_response(&error));
                self.state = draining(now, config);
            }
            State::Open => {
                if config.idle().is_some_and(|t| now >= self.last_seen + t) {
                    let stage = Closing::Draining;
                    self.start_close(
                        CloseCode::GOING_AWAY,
                        "idle timeout",
                        stage,
                        now,
                        app,
                        outbox,
                    );
                } else if !self.ping_outstanding
                    && config.ping().is_some_and(|t| now >= self.last_seen + t)
                {
                    self.out.queue.push_frame(OpCode::Ping, b"");
                    self.ping_outstanding = true;
                }
            }
            State::Closing { deadline, .. } if now >= deadline => {
                debug!("{} close timeout", self.peer);
                self.state = State::Closed;
            }
            _ => {}
        }
    }

    /// The peer leaves more than `max_buffered` bytes unread. Close with 1008 if the close
    /// frame still fits under the limit, else drop the connection outright.
    pub(super) fn on_slow_consumer(&mut self, now: Instant, app: &mut App, outbox: &mut Outbox) {
        const REASON: &str = "slow consumer: too much unread data";
        let close_frame_len = 2 + 2 + REASON.len();
        if self.out.queue.len() + close_frame_len <= app.config.max_buffered {
            let stage = Closing::Draining;
            self.start_close(CloseCode::POLICY_VIOLATION, REASON, stage, now, app, outbox);
        } else {
            self.drop_open(CloseCode::POLICY_VIOLATION, REASON, app, outbox);
        }
    }

    pub(super) fn on_shutdown(&mut self, now: Instant, app: &mut App, outbox: &mut Outbox) {
        match self.state {
            State::New { .. } | State::Handshaking { .. } => self.state = State::Closed,
            State::Open => {
                let stage = Closing::AwaitingPeerClose;
                self.start_close(
                    CloseCode::GOING_AWAY,
                    "server shutting down",
                    stage,
                    now,
                    app,
                    outbox,
                );
            }
            State::Closing { .. } | State::Closed => {}
        }
    }
}

fn draining(now: Instant, config: &Config) -> State {
    State::Closing {
        stage: Closing::Draining,
        deadline: now + config.close_timeout,
    }
}

//! What an application implements ([`Handler`]) and what it is handed ([`Context`]).

use std::fmt;
use std::sync::Arc;

use crate::protocol::close::CloseCode;
use crate::protocol::frame::{encode_frame, OpCode};
use crate::protocol::handshake::{HttpError, Request};
use crate::write_queue::WriteQueue;

/// A data message, borrowed for the duration of a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (always valid UTF-8).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl Message<'_> {
    /// The message's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
        }
    }

    pub(crate) fn opcode(&self) -> OpCode {
        match self {
            Message::Text(_) => OpCode::Text,
            Message::Binary(_) => OpCode::Binary,
        }
    }
}

/// Identifies one connection for as long as the server runs; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub(crate) u64);

impl ConnectionId {
    /// The slab slot this connection occupies.
    pub(crate) fn slot(self) -> usize {
        (self.0 & 0xFFFF_FFFF) as usize
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0 >> 32)
    }
}

/// What happened to a message given to [`Context::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued; it goes out when the socket takes it.
    Queued,
    /// Queued, but the connection's queue is above its high watermark: the peer reads slower
    /// than it is sent to.
    Backpressured,
    /// Not sent: the connection is closing or closed.
    Dropped,
}

/// An application served on one path. One value serves every connection on its path, so
/// per-connection state is kept by [`ConnectionId`]. All callbacks run on the event loop
/// thread: they must not block.
pub trait Handler {
    /// Decides on an upgrade request before it is accepted: `Ok` with the subprotocol to select
    /// (one the client offered, or `None`), or an HTTP error to refuse it (for example 403 for
    /// a bad `Origin` or missing credentials). The default accepts without a subprotocol.
    fn on_upgrade(&mut self, request: &Request) -> Result<Option<String>, HttpError> {
        let _ = request;
        Ok(None)
    }

    /// The connection is open.
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// A whole message arrived.
    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>);

    /// The connection left the open state: `code` is the peer's close code, the one the server
    /// sent, or 1006 when the connection dropped without a close. Sends to this connection are
    /// dropped from here on; broadcasts still reach the others.
    fn on_close(&mut self, ctx: &mut Context<'_>, code: CloseCode, reason: &str) {
        let _ = (ctx, code, reason);
    }
}

/// Where a deferred delivery goes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Every open connection on a route but one.
    RouteExcept { route: usize, except: ConnectionId },
    /// One connection.
    One(ConnectionId),
    /// Several connections.
    Many(Vec<ConnectionId>),
}

/// Frames for other connections, delivered by the event loop once the callback returns.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) deliveries: Vec<(Target, Arc<[u8]>)>,
}

/// A connection's side of a callback: where its sends and close request go.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    pub(crate) queue: WriteQueue,
    /// Set by [`Context::close`]; the connection starts its closing handshake after the callback.
    pub(crate) close_request: Option<(CloseCode, String)>,
    /// Whether sends are still accepted (the connection is open and not closing).
    pub(crate) accepting: bool,
}

/// The queue size at which [`SendStatus::Backpressured`] is reported and reading pauses.
pub(crate) const HIGH_WATERMARK: usize = 1024 * 1024;

/// The message a callback is handling, for [`Context::echo`].
#[derive(Debug, Clone)]
pub(crate) enum Current<'a> {
    /// Not a message callback.
    None,
    /// A message that arrived in one piece, borrowed from the loop's read buffer.
    Borrowed(Message<'a>),
    /// A message gathered from pieces, shared so it can be queued without a copy.
    Gathered(OpCode, Arc<Vec<u8>>),
}

/// Handed to every [`Handler`] callback: the connection it is about, and ways to act.
pub struct Context<'a> {
    pub(crate) id: ConnectionId,
    pub(crate) route: usize,
    pub(crate) out: &'a mut Outgoing,
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) current: Current<'a>,
}

impl Context<'_> {
    /// This connection.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// Sends a message to this connection.
    pub fn send(&mut self, message: Message<'_>) -> SendStatus {
        if !self.out.accepting {
            return SendStatus::Dropped;
        }
        self.out
            .queue
            .push_frame(message.opcode(), message.as_bytes());
        self.status()
    }

    /// What a send just did, judged by the queue.
    fn status(&self) -> SendStatus {
        if self.out.queue.len() > HIGH_WATERMARK {
            SendStatus::Backpressured
        } else {
            SendStatus::Queued
        }
    }

    /// Sends the message being handled back to this connection with its opcode. A large
    /// message gathered from fragments or several reads is queued without being copied.
    /// Outside `on_message` there is no such message: [`SendStatus::Dropped`].
    pub fn echo(&mut self) -> SendStatus {
        match &self.current {
            Current::None => SendStatus::Dropped,
            Current::Borrowed(message) => {
                let message = *message;
                self.send(message)
            }
            Current::Gathered(opcode, payload) => {
                if !self.out.accepting {
                    return SendStatus::Dropped;
                }
                self.out.queue.push_frame_shared(*opcode, payload.clone());
                self.status()
            }
        }
    }

    /// Sends a text message to this connection.
    pub fn send_text(&mut self, text: &str) -> SendStatus {
        self.send(Message::Text(text))
    }

    /// Sends a binary message to this connection.
    pub fn send_binary(&mut self, bytes: &[u8]) -> SendStatus {
        self.send(Message::Binary(bytes))
    }

    /// Sends a message to another connection, if it is still open. Sends to other
    /// connections are delivered after this callback returns; a send to this connection's own
    /// id is queued at once, like [`Context::send`], so every receiver gets its messages in the
    /// order of the calls that sent them.
    pub fn send_to(&mut self, to: ConnectionId, message: Message<'_>) {
        if to == self.id {
            self.send(message);
        } else {
            let frame = Self::encode(message);
            self.outbox.deliveries.push((Target::One(to), frame));
        }
    }

    /// Sends one message to each of `to` that is still open: encoded once, shared by all their
    /// queues. Ordered as for [`Context::send_to`].
    pub fn send_to_many(
        &mut self,
        to: impl IntoIterator<Item = ConnectionId>,
        message: Message<'_>,
    ) {
        let frame = Self::encode(message);
        let mut others = Vec::new();
        for id in to {
            if id != self.id {
                others.push(id);
            } else if self.out.accepting {
                self.out.queue.push_shared(frame.clone());
            }
        }
        if !others.is_empty() {
            self.outbox.deliveries.push((Target::Many(others), frame));
        }
    }

    /// Sends a message to every other open connection on this connection's path. The frame is
    /// encoded once and shared by every receiver's queue.
    pub fn broadcast(&mut self, message: Message<'_>) {
        let frame = Self::encode(message);
        let target = Target::RouteExcept {
            route: self.route,
            except: self.id,
        };
        self.outbox.deliveries.push((target, frame));
    }

    /// Starts the closing handshake (§7.1.2) with `code` and `reason` once this callback
    /// returns. Codes that may not be sent (§7.4.1) become 1000.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        if self.out.accepting {
            let code = if code.is_sendable() {
                code
            } else {
                CloseCode::NORMAL
            };
            self.out.close_request = Some((code, reason.to_string()));
            self.out.accepting = false;
        }
    }

    fn encode(message: Message<'_>) -> Arc<[u8]> {
        let mut frame = Vec::with_capacity(message.as_bytes().len() + 10);
        encode_frame(&mut frame, message.opcode(), message.as_bytes(), None);
        Arc::from(frame)
    }
}

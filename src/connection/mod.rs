//! One connection as an explicit state machine, without sockets:
//!
//! ```text
//! New ──first bytes──▶ Handshaking ──101──▶ Open ──close sent/received──▶ Closing ──▶ Closed
//!  │                       │                  │                              ▲
//!  └───────────── HTTP error reply, timeout ──┴──── protocol error ──────────┘
//! ```
//!
//! The event loop hands a connection the bytes it read, the time, end-of-stream and timer
//! expiries; the connection updates its state, runs the application's callbacks and leaves
//! what must be written in its write queue. The loop asks it what it wants next
//! ([`Connection::wants_read`], [`Connection::wants_write_shutdown`], [`Connection::next_deadline`]).

mod session;
mod upgrade;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::handler::{ConnectionId, Outbox, Outgoing, HIGH_WATERMARK};
use crate::protocol::error::ProtocolError;
use crate::protocol::frame::{Decoded, FrameDecoder, Role};
use crate::protocol::message::{DataKind, MessageAssembler, Received};
use crate::server::app::App;

pub(crate) use session::Session;
use upgrade::Leftover;

/// Where a connection is in its life.
#[derive(Debug)]
pub(crate) enum State {
    /// Accepted; no byte of the request yet. Holds no buffer.
    New { deadline: Instant },
    /// Part of the request head has arrived.
    Handshaking { head: Vec<u8>, deadline: Instant },
    /// Upgraded: frames flow both ways.
    Open,
    /// On the way out; see [`Closing`].
    Closing { stage: Closing, deadline: Instant },
    /// Done: the loop drops the socket.
    Closed,
}

/// The two halves of a close (§7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closing {
    /// The server sent its close frame and reads on until the peer's close arrives.
    AwaitingPeerClose,
    /// Nothing more will be sent after the queue (a close frame or HTTP reply) drains; then the
    /// write side is shut down and the rest of the input discarded until the peer closes.
    Draining,
}

/// Passes what a frame's bytes completed to the session, except a message gathered in the
/// assembler: the caller takes that one (it cannot while `received` borrows the assembler).
fn pass_on(
    received: Result<Option<Received<'_>>, ProtocolError>,
    session: &mut Session,
    now: Instant,
    app: &mut App,
    outbox: &mut Outbox,
) -> Option<DataKind> {
    match received {
        Ok(Some(Received::Gathered(kind))) => return Some(kind),
        Ok(Some(received)) => session.on_received(received, now, app, outbox),
        Ok(None) => {}
        Err(error) => session.fail(error, now, app, outbox),
    }
    None
}

/// The receive half of an open connection: frames in, messages out.
#[derive(Debug)]
struct Reader {
    decoder: FrameDecoder,
    assembler: MessageAssembler,
}

impl Reader {
    /// Hands the message the assembler gathered to the session, uncopied.
    fn deliver_gathered(
        &mut self,
        kind: DataKind,
        session: &mut Session,
        now: Instant,
        app: &mut App,
        outbox: &mut Outbox,
    ) {
        let payload = Arc::new(self.assembler.take_message());
        session.on_gathered(kind, payload, now, app, outbox);
    }
}

/// One connection: its reader and everything else.
#[derive(Debug)]
pub(crate) struct Connection {
    reader: Option<Reader>,
    pub(crate) session: Session,
}

impl Connection {
    /// A connection accepted at `now`.
    pub(crate) fn new(id: ConnectionId, peer: SocketAddr, now: Instant, config: &Config) -> Self {
        Connection {
            reader: None,
            session: Session::new(id, peer, now, config),
        }
    }

    /// Bytes arrived from the peer. `input` may be changed (payloads are unmasked in place).
    pub(crate) fn receive(
        &mut self,
        input: &mut [u8],
        now: Instant,
        app: &mut App,
        outbox: &mut Outbox,
    ) {
        self.session.touch(now);
        match self.session.state {
            // Bytes after the head in the same read are the first frames (§4.2.2).
            State::New { .. } | State::Handshaking { .. } => {
                match self.receive_head(input, now, app, outbox) {
                    None => {}
                    Some(Leftover::InInput { from }) => {
                        self.receive_frames(&mut input[from..], now, app, outbox);
                    }
                    Some(Leftover::Buffered { mut head, from }) => {
                        self.receive_frames(&mut head[from..], now, app, outbox);
                    }
                }
            }
            State::Open
            | State::Closing {
                stage: Closing::AwaitingPeerClose,
                ..
            } => {
                self.receive_frames(input, now, app, outbox);
            }
            State::Closing {
                stage: Closing::Draining,
                ..
            }
            | State::Closed => {}
        }
    }

    /// Feeds request bytes to the handshake. When it completes with an upgrade, returns where
    /// the bytes that follow the head are.
    fn receive_head(
        &mut self,
        input: &[u8],
        now: Instant,
        app: &mut App,
        outbox: &mut Outbox,
    ) -> Option<Leftover> {
        let opened = upgrade::receive_head(&mut self.session, input, now, app, outbox)?;
        let config = &app.config;
        self.reader = Some(Reader {
            decoder: FrameDecoder::new(Role::Server, config.max_frame_size as u64),
            assembler: MessageAssembler::new(config.max_message_size as u64),
        });
        Some(opened)
    }

    /// Runs frames through the reader and the session until the input is used up or the
    /// connection stops listening.
    fn receive_frames(
        &mut self,
        input: &mut [u8],
        now: Instant,
        app: &mut App,
        outbox: &mut Outbox,
    ) {
        let Connection { reader, session } = self;
        let Some(reader) = reader.as_mut() else {
            return;
        };
        let mut pos = 0;
        while session.reads_frames() {
            let step = match reader.decoder.decode(&mut input[pos..]) {
                Ok(Some(step)) => step,
                Ok(None) => break,
                Err(error) => {
                    session.fail(error, now, app, outbox);
                    break;
                }
            };
            pos += step.0;
            let received = match step.1 {
                Decoded::Header(header) => reader.assembler.on_header(&header).map(|()| None),
                Decoded::Payload { data, end_of_frame } => {
                    reader.assembler.on_payload(data, end_of_frame)
                }
            };
            if let Some(kind) = pass_on(received, session, now, app, outbox) {
                reader.deliver_gathered(kind, session, now, app, outbox);
            }
        }
        self.drop_reader_when_done();
    }

    /// When a large frame's payload is arriving, lets `read` fill the next of its bytes straight
    /// into the message's buffer and takes them in, sparing a copy from the loop's read buffer.
    /// Returns what `read` returned and how many bytes it was offered, or `None` when the next
    /// bytes are better read into the loop's buffer and given to [`Connection::receive`].
    pub(crate) fn receive_in_place(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
        now: Instant,
        app: &mut App,
        outbox: &mut Outbox,
    ) -> Option<(io::Result<usize>, usize)> {
        let Connection { reader, session } = self;
        let reader = reader.as_mut().filter(|_| session.reads_frames())?;
        let room = reader
            .assembler
            .payload_room(reader.decoder.payload_remaining())?;
        let offered = room.len();
        let result = read(&mut *room);
        if let Ok(n @ 1..) = result {
            session.touch(now);
            let end_of_frame = reader.decoder.unmask_read_payload(&mut room[..n]);
            let received = reader.assembler.on_payload_in_room(n, end_of_frame);
            if let Some(kind) = pass_on(received, session, now, app, outbox) {
                reader.deliver_gathered(kind, session, now, app, outbox);
            }
            self.drop_reader_when_done();
        }
        Some((result, offered))
    }

    /// The read batch is over: let go of buffers an idle connection need not hold.
    pub(crate) fn end_of_batch(&mut self) {
        if let Some(reader) = self.reader.as_mut() {
            reader.assembler.release_idle_buffers();
        }
    }

    /// The peer shut down its side of the TCP connection.
    pub(crate) fn on_eof(&mut self, app: &mut App, outbox: &mut Outbox) {
        self.session.on_eof(app, outbox);
        self.drop_reader_when_done();
    }

    /// Reading or writing the socket failed: the connection is gone.
    pub(crate) fn on_io_error(
        &mut self,
        error: &std::io::Error,
        app: &mut App,
        outbox: &mut Outbox,
    ) {
        self.session.on_io_error(error, app, outbox);
        self.drop_reader_when_done();
    }

    /// A deadline passed.
    pub(crate) fn on_timeout(&mut self, now: Instant, app: &mut App, outbox: &mut Outbox) {
        self.session.on_timeout(now, app, outbox);
        self.drop_reader_when_done();
    }

    /// The server is shutting down: close with 1001.
    pub(crate) fn on_shutdown(&mut self, now: Instant, app: &mut App, outbox: &mut Outbox) {
        self.session.on_shutdown(now, app, outbox);
        self.drop_reader_when_done();
    }

    /// Messages from other connections went unread past `max_buffered`: close with 1008.
    pub(crate) fn on_slow_consumer(&mut self, now: Instant, app: &mut App, outbox: &mut Outbox) {
        self.session.on_slow_consumer(now, app, outbox);
        self.drop_reader_when_done();
    }

    /// Once the session reads no more frames, a half-received message (and its buffer) need
    /// not wait for the close timeout.
    fn drop_reader_when_done(&mut self) {
        if !self.session.reads_frames() {
            self.reader = None;
        }
    }

    /// The earliest time the connection needs [`Connection::on_timeout`].
    pub(crate) fn next_deadline(&self, config: &Config) -> Option<Instant> {
        self.session.next_deadline(config)
    }

    /// Whether the loop should read from the socket: not when closed, and not while the peer
    /// leaves more than the high watermark unread (backpressure: stop reading from a peer that
    /// does not read what it is sent).
    pub(crate) fn wants_read(&self) -> bool {
        !self.is_closed() && self.session.out.queue.len() <= HIGH_WATERMARK
    }

    /// Whether the queue is drained and the write side should now be shut down.
    pub(crate) fn wants_write_shutdown(&self) -> bool {
        matches!(
            self.session.state,
            State::Closing {
                stage: Closing::Draining,
                ..
            }
        ) && self.session.out.queue.is_empty()
    }

    /// Whether the loop should drop the socket.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.session.state, State::Closed)
    }

    /// The loop finished writing the queue; a drained connection whose peer is gone ends here.
    pub(crate) fn after_flush(&mut self) {
        self.session.after_flush();
    }

    /// This connection's id.
    pub(crate) fn id(&self) -> ConnectionId {
        self.session.id
    }

    /// The route serving this connection, once open.
    pub(crate) fn route(&self) -> Option<usize> {
        self.session.route
    }

    /// Whether messages may still be queued (open, not closing).
    pub(crate) fn accepts_messages(&self) -> bool {
        self.session.out.accepting
    }

    /// Where the outgoing bytes wait.
    pub(crate) fn outgoing(&mut self) -> &mut Outgoing {
        &mut self.session.out
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

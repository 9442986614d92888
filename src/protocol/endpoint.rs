//! One WebSocket endpoint after the opening handshake, in either role: bytes in, events out,
//! frames out into a write queue, deadlines out. No socket and no clock: the caller hands in
//! what it read and the time, and writes out [`Outbound::queue`] when it can.
//!
//! The endpoint owns everything RFC 6455 asks of both sides once the connection is open:
//! - decoding and validating frames (§5.2, §5.5), reassembling messages (§5.4), checking text as
//!   it arrives (§8.1) and the size limits (failing with 1002, 1007 or 1009, §7.1.7, §7.4.1);
//! - answering pings with pongs (§5.5.2, §5.5.3);
//! - the closing handshake (§5.5.1, §7.1.2-§7.1.5): the peer's close is answered with its code,
//!   data after our own close is read but not delivered (unless
//!   [`Endpoint::deliver_after_close`]), and nothing is sent after a close;
//! - keepalive: a ping after `ping_interval` of silence, a close 1001 after `idle_timeout`;
//! - framing everything it sends ([`Outbound`]), masked when it is a client (§5.3).
//!
//! Events reach a callback together with the endpoint's [`Outbound`], so whoever handles a
//! message can reply while the message's bytes are still borrowed (from the caller's read
//! buffer or the endpoint's reassembly buffer): nothing is copied on the way.

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::close::{close_body, CloseCode};
use super::deflate::DeflateParams;
use super::error::ProtocolError;
use super::frame::{take_short_masked_frame, Decoded, FrameDecoder, OpCode, Role, Step};
use super::message::{DataKind, MessageAssembler};
use super::outbound::{MaskKeys, Message, Outbound};
use super::stamp::Stamp;
use super::write_queue::WriteQueue;
use crate::buffer_pool::recycle;
use react::{after_send, react, Next};

/// An endpoint's limits and timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointConfig {
    /// The largest frame payload accepted; larger ones fail the connection with 1009. With
    /// permessage-deflate, a compressed message's frames may be as long as DEFLATE may make
    /// this many bytes ([`max_compressed_len`](super::deflate::max_compressed_len)).
    pub max_frame_size: u64,
    /// The largest message accepted, after reassembly and, when compressed, inflation; larger
    /// ones fail with 1009. A compressed message may take up to `max_compressed_len` of it
    /// before it is inflated.
    pub max_message_size: u64,
    /// Send a ping after this long without hearing from the peer.
    pub ping_interval: Option<Duration>,
    /// Close with 1001 after this long without hearing from the peer.
    pub idle_timeout: Option<Duration>,
}

/// Who ended the open phase of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosedBy {
    /// The peer sent a close frame; it has been answered (§5.5.1).
    Peer,
    /// This side sent a close frame: asked for, or after the idle timeout.
    Local,
    /// The peer broke the protocol; a close frame with the matching code was sent (§7.1.7).
    Violation(ProtocolError),
    /// The connection ended without a closing handshake (code 1006, or a policy's code when
    /// not even a close frame could be sent).
    Dropped,
}

/// Something the peer did, or the end of the open phase.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole data message. When it was gathered from pieces, `gathered` holds the same
    /// bytes, so a receiver can queue them again without a copy ([`Outbound::send_shared`]).
    Message {
        /// The message.
        message: Message<'a>,
        /// Its bytes, shared, when they were gathered.
        gathered: Option<&'a Arc<Vec<u8>>>,
    },
    /// A ping; the pong is already queued.
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
    /// The connection left the open phase; reported exactly once. `code` is the peer's code,
    /// the one sent, or 1006 when it dropped.
    Closed {
        /// The close code.
        code: CloseCode,
        /// The close reason.
        reason: &'a str,
        /// Who ended it.
        by: ClosedBy,
    },
}

/// Where an endpoint is in the closing handshake (§7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Messages flow both ways.
    Open,
    /// Our close frame is sent; frames are read until the peer's close arrives.
    CloseSent,
    /// Nothing more is read or sent: the handshake completed, or the connection failed.
    Closed,
}

/// The endpoint's timers (§5.5.2 keepalive; an idle limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// The peer was silent for `idle_timeout`: close with 1001.
    Idle,
    /// The peer was silent for `ping_interval`: ping it.
    KeepAlive,
}

/// One endpoint; see the module docs.
#[derive(Debug)]
pub struct Endpoint {
    /// The frame decoder and message assembler: made when bytes arrive, and let go between
    /// messages at the end of a batch of reads ([`Endpoint::release_idle_buffers`]), so an
    /// idle connection holds none of it.
    reader: Option<Box<Reader>>,
    out: Outbound,
    /// Its own, or the one a server's endpoints share ([`Endpoint::server_shared`]).
    config: Arc<EndpointConfig>,
    /// When the peer last sent anything.
    last_seen: Stamp,
    phase: Phase,
    /// A keepalive ping is out and nothing has arrived since.
    ping_outstanding: bool,
    /// Data, pings and pongs read after our close are still reported
    /// ([`Endpoint::deliver_after_close`]).
    delivers_after_close: bool,
}

/// What an endpoint needs only while it reads frames.
#[derive(Debug)]
struct Reader {
    decoder: FrameDecoder,
    assembler: MessageAssembler,
}

thread_local! {
    /// The box of the reader let go last on this thread, for the next one made: a loop makes
    /// and lets go of a reader for every connection at every batch of reads, one at a time.
    static SPARE_READER: Cell<Option<Box<Reader>>> = const { Cell::new(None) };
}

impl Reader {
    /// A reader at the start of a frame; `deflate` if permessage-deflate was agreed.
    fn new(role: Role, config: &EndpointConfig, deflate: bool) -> Box<Reader> {
        let mut decoder = FrameDecoder::new(role, config.max_frame_size);
        if deflate {
            decoder.allow_rsv1();
        }
        let reader = Reader {
            decoder,
            assembler: MessageAssembler::new(config.max_message_size),
        };
        match SPARE_READER.try_with(Cell::take).ok().flatten() {
            Some(mut spare) => {
                *spare = reader;
                spare
            }
            None => Box::new(reader),
        }
    }

    /// Lets go of a reader whose message, if any, is abandoned: its box is kept for the next.
    fn release(mut reader: Box<Reader>) {
        reader.assembler.abandon();
        let _ = SPARE_READER.try_with(|spare| spare.set(Some(reader)));
    }

    /// Whether it holds nothing that must outlive this batch of reads: no part of a frame
    /// or of a message.
    fn is_idle(&self) -> bool {
        self.decoder.is_between_frames() && self.assembler.is_idle()
    }
}

impl Endpoint {
    /// A server's open endpoint at `now`, with its own copy of `config`.
    pub fn server(config: &EndpointConfig, now: Instant) -> Endpoint {
        Endpoint::server_shared(Arc::new(*config), now, WriteQueue::default())
    }

    /// A server's open endpoint whose configuration many share (each holds a pointer to it,
    /// not a copy) and whose write queue may already hold bytes (the 101 reply).
    pub fn server_shared(config: Arc<EndpointConfig>, now: Instant, queue: WriteQueue) -> Endpoint {
        Endpoint::open(Outbound::server(queue), config, now)
    }

    /// A client's open endpoint at `now`, masking every frame it sends with a key from `masks`
    /// (§5.3, §10.3: see [`MaskKeys`]).
    pub fn client(config: &EndpointConfig, now: Instant, masks: MaskKeys) -> Endpoint {
        let out = Outbound::client(WriteQueue::default(), masks);
        Endpoint::open(out, Arc::new(*config), now)
    }

    fn open(out: Outbound, config: Arc<EndpointConfig>, now: Instant) -> Endpoint {
        Endpoint {
            reader: None,
            out,
            config,
            last_seen: Stamp::of(now),
            phase: Phase::Open,
            ping_outstanding: false,
            delivers_after_close: false,
        }
    }

    /// From now on, what the peer sends after our close and before its own (data messages,
    /// pings, pongs) is still reported, not just read: for a client, which wants every reply
    /// to what it sent before closing. (Nothing is sent in answer: no pong follows a close.)
    /// By default it is read and dropped, as a server does.
    pub fn deliver_after_close(&mut self) {
        self.delivers_after_close = true;
    }

    /// Whether data read now is reported.
    fn delivers(&self) -> bool {
        self.phase == Phase::Open || (self.phase == Phase::CloseSent && self.delivers_after_close)
    }

    /// Turns on permessage-deflate as agreed in the handshake (RFC 7692): RSV1 is accepted,
    /// compressed messages are inflated (the size limit counts inflated bytes), and data
    /// messages of `threshold` bytes or more are sent compressed.
    pub fn enable_deflate(&mut self, params: &DeflateParams, threshold: usize) {
        // A reader made from now on accepts RSV1 by itself (see `receive_until`).
        if let Some(reader) = self.reader.as_mut() {
            reader.decoder.allow_rsv1();
        }
        self.out.enable_deflate(params, threshold);
    }

    /// Where the endpoint is in the closing handshake.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether incoming bytes still matter: until the peer's close, or a failure.
    pub fn reads_frames(&self) -> bool {
        self.phase != Phase::Closed
    }

    /// The sending half.
    pub fn outbound(&mut self) -> &mut Outbound {
        &mut self.out
    }

    /// Bytes queued and not yet written.
    pub fn buffered(&self) -> usize {
        self.out.buffered()
    }

    /// Bytes arrived from the peer (they are unmasked in place). Reports what they complete,
    /// in order, to `on_event`.
    pub fn receive<F>(&mut self, input: &mut [u8], now: Instant, on_event: &mut F)
    where
        F: FnMut(&mut Outbound, Event<'_>),
    {
        self.receive_until(input, now, on_event, false);
    }

    /// Like [`Endpoint::receive`], but stops right after the first data message or close it
    /// reports, and returns how many bytes of `input` it used. For a caller that hands out one
    /// message at a time and must act on it before the bytes after it are looked at: a client
    /// that echoes a message must do so before a bad frame behind it fails the connection.
    pub fn receive_one<F>(&mut self, input: &mut [u8], now: Instant, on_event: &mut F) -> usize
    where
        F: FnMut(&mut Outbound, Event<'_>),
    {
        self.receive_until(input, now, on_event, true)
    }

    fn receive_until<F>(
        &mut self,
        input: &mut [u8],
        now: Instant,
        on_event: &mut F,
        stop_after_message: bool,
    ) -> usize
    where
        F: FnMut(&mut Outbound, Event<'_>),
    {
        self.touch(now);
        let reported = Cell::new(false);
        let mut on_event = |out: &mut Outbound, event: Event<'_>| {
            if matches!(event, Event::Message { .. } | Event::Closed { .. }) {
                reported.set(true);
            }
            on_event(out, event);
        };
        let mut pos = 0;
        while self.reads_frames() && !(stop_after_message && reported.get()) {
            let delivers = self.delivers();
            if self.reader.is_none() && delivers {
                if pos == input.len() {
                    return pos; // the end of a read, between messages
                }
                // Between messages, the frame a client sends most needs no reader: a whole
                // message in one short frame (see `take_short_masked_frame`).
                let max_len = self.config.max_frame_size.min(self.config.max_message_size);
                let role = self.out.role();
                if let Some((used, header, payload)) =
                    take_short_masked_frame(&mut input[pos..], role, max_len)
                {
                    pos += used;
                    let message = match header.opcode {
                        OpCode::Text => match super::utf8::text(payload) {
                            Ok(text) => Message::Text(text),
                            Err(_) => {
                                self.fail(ProtocolError::InvalidUtf8, &mut on_event);
                                break;
                            }
                        },
                        _ => Message::Binary(payload),
                    };
                    let gathered = None;
                    on_event(&mut self.out, Event::Message { message, gathered });
                    after_send(&mut self.out, &mut self.phase, &mut on_event);
                    continue;
                }
            }
            let reader = self.reader.get_or_insert_with(|| {
                Reader::new(self.out.role(), &self.config, self.out.deflates())
            });
            let (used, step) = match reader.decoder.decode_whole(&mut input[pos..]) {
                Ok(Some(step)) => step,
                Ok(None) => return input.len(),
                Err(error) => {
                    self.fail(error, &mut on_event);
                    break;
                }
            };
            pos += used;
            let assembler = &mut reader.assembler;
            let received = match step {
                Step::Frame { header, payload } => {
                    if delivers {
                        // Most frames are a message each: reported straight from here.
                        if let Some(message) = assembler.single_frame_message(&header, payload) {
                            let gathered = None;
                            on_event(&mut self.out, Event::Message { message, gathered });
                            after_send(&mut self.out, &mut self.phase, &mut on_event);
                            continue;
                        }
                    }
                    match assembler.on_header(&header) {
                        Ok(()) => assembler.on_payload(payload, true),
                        Err(error) => Err(error),
                    }
                }
                Step::Piece(Decoded::Header(header)) => assembler.on_header(&header).map(|()| None),
                Step::Piece(Decoded::Payload { data, end_of_frame }) => {
                    assembler.on_payload(data, end_of_frame)
                }
            };
            let next = react(
                received,
                &mut self.out,
                &mut self.phase,
                delivers,
                &mut on_event,
            );
            self.finish(next, &mut on_event);
        }
        pos
    }

    /// While a large data frame's payload is arriving, lets `read` fill its next bytes straight
    /// into the message's buffer, sparing the copy from a read buffer; then takes them in like
    /// [`Endpoint::receive`]. Returns what `read` returned and how much room it was offered, or
    /// `None` (without calling `read`) when the next bytes are better read into a shared buffer.
    /// Room is earned by bytes already sent, never by an announced length (see
    /// `MessageAssembler::payload_room`).
    pub fn receive_in_place<F, E>(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> Result<usize, E>,
        now: Instant,
        on_event: &mut F,
    ) -> Option<(Result<usize, E>, usize)>
    where
        F: FnMut(&mut Outbound, Event<'_>),
    {
        if !self.reads_frames() {
            return None;
        }
        // Without a reader, no frame is in progress.
        let reader = self.reader.as_deref_mut()?;
        let remaining = reader.decoder.payload_remaining();
        let room = reader.assembler.payload_room(remaining)?;
        let offered = room.len();
        let result = read(&mut *room);
        if let Ok(n @ 1..) = result {
            self.last_seen = Stamp::of(now);
            self.ping_outstanding = false;
            let end_of_frame = reader.decoder.unmask_read_payload(&mut room[..n]);
            let received = reader.assembler.on_payload_in_room(n, end_of_frame);
            let delivers = self.delivers();
            let next = react(received, &mut self.out, &mut self.phase, delivers, on_event);
            self.finish(next, on_event);
        }
        Some((result, offered))
    }

    fn touch(&mut self, now: Instant) {
        self.last_seen = Stamp::of(now);
        self.ping_outstanding = false;
    }

    /// The assembler of the reader a frame was just read with.
    fn assembler(&mut self) -> &mut MessageAssembler {
        let reader = self.reader.as_mut().expect("a frame was read");
        &mut reader.assembler
    }

    /// Lets go of the reader, giving its buffers back and forgetting any message in progress.
    fn drop_reader(&mut self) {
        if let Some(reader) = self.reader.take() {
            Reader::release(reader);
        }
    }

    /// Does what [`react`] could not while the assembler was borrowed.
    fn finish<F>(&mut self, next: Next, on_event: &mut F)
    where
        F: FnMut(&mut Outbound, Event<'_>),
    {
        match next {
            Next::Continue => {}
            Next::Deliver(kind) => {
                let payload = self.assembler().take_message();
                self.deliver_gathered(kind, payload, on_event);
            }
            Next::Inflate(_) if !self.delivers() => {
                // Read after our close, and not delivered: not worth inflating.
                crate::buffer_pool::give_back(self.assembler().take_message());
            }
            Next::Inflate(kind) => {
                let assembler = self.assembler();
                let compressed = assembler.take_message();
                let limit = assembler.max_message_size() as usize;
                let inflated = self.out.inflate(&compressed, limit);
                crate::buffer_pool::give_back(compressed);
                match inflated {
                    Ok(payload) => self.deliver_gathered(kind, payload, on_event),
                    Err(error) => self.fail(error, on_event),
                }
            }
            Next::Fail(error) => self.fail(error, on_event),
            Next::Stop => self.drop_reader(),
        }
    }

    /// Hands out a message gathered in the assembler, shared, then takes its buffer back.
    fn deliver_gathered<F>(&mut self, kind: DataKind, payload: Vec<u8>, on_event: &mut F)
    where
        F: FnMut(&mut Outbound, Event<'_>),
    {
        let payload = Arc::new(payload);
        if self.delivers() {
            let message = match kind {
                DataKind::Binary => Message::Binary(&payload),
                // Validated as it arrived; this pass only turns it into `&str` without `unsafe`.
                DataKind::Text => match super::utf8::text(&payload) {
                    Ok(text) => Message::Text(text),
                    Err(_) => return self.fail(ProtocolError::InvalidUtf8, on_event),
                },
            };
            let gathered = Some(&payload);
            on_event(&mut self.out, Event::Message { message, gathered });
            self.after_send(on_event);
        }
        recycle(payload);
    }

    /// Acts on a close queued through [`Outbound::close`] by whoever handled an event, or by
    /// whoever sent through [`Endpoint::outbound`] outside one: reports it as
    /// [`Event::Closed`] and reads on until the peer's close.
    pub fn after_send<F>(&mut self, on_event: &mut F)
    where
        F: FnMut(&mut Outbound, Event<'_>),
    {
        after_send(&mut self.out, &mut self.phase, on_event);
    }

    /// Fails the connection (§7.1.7): the error's close code, and nothing more is read.
    fn fail<F>(&mut self, error: ProtocolError, on_event: &mut F)
    where
        F: FnMut(&mut Outbound, Event<'_>),
    {
        if self.phase == Phase::Open {
            let (code, reason) = (error.close_code(), error.to_string());
            self.out.queue_close(&close_body(code, &reason));
            let by = ClosedBy::Violation(error);
            on_event(
                &mut self.out,
                Event::Closed {
                    code,
                    reason: &reason,
                    by,
                },
            );
        }
        self.phase = Phase::Closed;
        self.drop_reader();
    }

    /// Starts the closing handshake from this side (§7.1.2), then reads on until the peer's
    /// close. Does nothing unless open.
    pub fn close<F>(&mut self, code: CloseCode, reason: &str, on_event: &mut F)
    where
        F: FnMut(&mut Outbound, Event<'_>),
    {
        if self.phase == Phase::Open && self.out.close(code, reason) {
            self.after_send(on_event);
        }
    }

    /// Sends a close frame and reads nothing more: for a peer that went silent or cannot keep
    /// up, whose answer is not worth waiting for. Does nothing unless open.
    pub fn close_and_stop<F>(&mut self, code: CloseCode, reason: &str, on_event: &mut F)
    where
        F: FnMut(&mut Outbound, Event<'_>),
    {
        if self.phase == Phase::Open {
            self.close(code, reason, on_event);
            self.phase = Phase::Closed;
            self.drop_reader();
        }
    }

    /// The connection is gone without a closing handshake (end of stream, an I/O error, or a
    /// policy that cannot even queue a close frame): reports `code` (1006 for a lost connection)
    /// if it was open.
    pub fn drop_connection<F>(&mut self, code: CloseCode, reason: &str, on_event: &mut F)
    where
        F: FnMut(&mut Outbound, Event<'_>),
    {
        if self.phase == Phase::Open {
            // Nothing may be queued after this: the connection is going.
            self.out.shut();
            let by = ClosedBy::Dropped;
            on_event(&mut self.out, Event::Closed { code, reason, by });
        }
        self.phase = Phase::Closed;
        self.drop_reader();
    }

    /// The next timer due, while open.
    pub fn poll_timeout(&self) -> Option<(Instant, Timer)> {
        self.next_timer().map(|(at, timer)| (at.instant(), timer))
    }

    /// [`Endpoint::poll_timeout`] as a [`Stamp`], for the loop's timers.
    pub(crate) fn next_timer(&self) -> Option<(Stamp, Timer)> {
        if self.phase != Phase::Open {
            return None;
        }
        let (idle, ping) = (self.config.idle_timeout, self.config.ping_interval);
        let idle = idle.map(|t| (self.last_seen.after(t), Timer::Idle));
        let ping = ping
            .filter(|_| !self.ping_outstanding)
            .map(|t| (self.last_seen.after(t), Timer::KeepAlive));
        idle.into_iter().chain(ping).min_by_key(|(at, _)| *at)
    }

    /// Fires what is due at `now`: the idle close (1001), or else a keepalive ping.
    pub fn handle_timeout<F>(&mut self, now: Instant, on_event: &mut F)
    where
        F: FnMut(&mut Outbound, Event<'_>),
    {
        if self.phase != Phase::Open {
            return;
        }
        let last_seen = self.last_seen.instant();
        let due = |timeout: Option<Duration>| timeout.is_some_and(|t| now >= last_seen + t);
        if due(self.config.idle_timeout) {
            self.close_and_stop(CloseCode::GOING_AWAY, "idle timeout", on_event);
        } else if !self.ping_outstanding && due(self.config.ping_interval) {
            self.out.ping(b"");
            self.ping_outstanding = true;
        }
    }

    /// A batch of reads is over: lets go of what an idle connection need not hold (the reader
    /// between messages; else the buffers the message in progress does not need).
    pub fn release_idle_buffers(&mut self) {
        match self.reader.as_mut() {
            Some(reader) if reader.is_idle() => self.drop_reader(),
            Some(reader) => reader.assembler.release_idle_buffers(),
            None => {}
        }
    }
}

#[path = "endpoint_react.rs"]
mod react;

#[cfg(test)]
#[path = "endpoint_tests/mod.rs"]
mod tests;

//! The sending half of an endpoint: every frame either role sends is encoded here, once, into
//! the endpoint's [`WriteQueue`] (§5.2), masked with a fresh key from the caller's
//! [`MaskKeys`] when the endpoint is a client (§5.3, §10.3) and never when it is a server (§5.1).

use std::fmt;
use std::sync::{Arc, OnceLock};

use super::close::{close_body, CloseCode};
use super::deflate::{
    compress_smaller_shared, inflate_shared, DeflateParams, Deflater, InflateError, Inflater,
};
use super::error::ProtocolError;
use super::frame::{encode_frame, short_header, OpCode, Role, MAX_HEADER_LEN};
use super::write_queue::WriteQueue;
use crate::buffer_pool::{give_back, take_buffer};

/// A data message, borrowed for as long as it is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (always valid UTF-8).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The message's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(bytes) => bytes,
        }
    }

    /// The opcode of the frame that carries it.
    pub fn opcode(&self) -> OpCode {
        match self {
            Message::Text(_) => OpCode::Text,
            Message::Binary(_) => OpCode::Binary,
        }
    }
}

/// A message prepared once for many receivers: its opcode and payload, and the unmasked frame
/// a server sends, shared by every receiver's queue. It keeps the payload apart from the framing
/// so whatever carries it further (another loop, another process, a compressor) can frame it
/// itself.
#[derive(Debug, Clone)]
pub struct Prepared {
    opcode: OpCode,
    /// Header, then payload.
    frame: Arc<[u8]>,
    header_len: u8,
    /// The frame compressed the shared way (no context takeover, 15-bit window), made for the
    /// first receiver that wants it and shared by all the others (the uncompressed frame again
    /// if compressing did not make it smaller).
    deflated: OnceLock<Arc<[u8]>>,
}

impl Prepared {
    /// Frames `message` once.
    pub fn new(message: Message<'_>) -> Prepared {
        let payload = message.as_bytes();
        let mut frame = Vec::with_capacity(payload.len() + 10);
        encode_frame(&mut frame, false, message.opcode(), payload, None);
        Prepared {
            opcode: message.opcode(),
            header_len: (frame.len() - payload.len()) as u8,
            frame: Arc::from(frame),
            deflated: OnceLock::new(),
        }
    }

    /// The frame compressed once with the loop's shared compressor, RSV1 set; or, when that
    /// does not make it smaller, the uncompressed frame.
    fn deflated_frame(&self) -> &Arc<[u8]> {
        self.deflated.get_or_init(|| {
            let mut compressed = Vec::new();
            if !compress_smaller_shared(self.payload(), &mut compressed) {
                return self.frame.clone();
            }
            let mut frame = Vec::with_capacity(compressed.len() + MAX_HEADER_LEN);
            encode_frame(&mut frame, true, self.opcode, &compressed, None);
            Arc::from(frame)
        })
    }

    /// The message it carries. Its text, if text, is checked again: it was made from a
    /// `&str`, but only `unsafe` could hand it out as one unchecked. Sending never needs it
    /// ([`Outbound::send_prepared`] takes [`Prepared::payload`]), so a broadcast checks
    /// nothing per receiver.
    pub fn message(&self) -> Message<'_> {
        match self.opcode {
            OpCode::Text => Message::Text(super::utf8::text(self.payload()).unwrap_or_default()),
            _ => Message::Binary(self.payload()),
        }
    }

    /// The opcode of the frame that carries it: text or binary.
    pub fn opcode(&self) -> OpCode {
        self.opcode
    }

    /// The message's bytes (valid UTF-8 for text, as it was made from a `&str`).
    pub fn payload(&self) -> &[u8] {
        &self.frame[usize::from(self.header_len)..]
    }

    /// The frame's length on the wire (unmasked).
    pub fn frame_len(&self) -> usize {
        self.frame.len()
    }
}

/// permessage-deflate as agreed for one endpoint: how it compresses what it sends and inflates
/// what it receives.
#[derive(Debug)]
struct Deflate {
    /// Messages shorter than this go uncompressed.
    threshold: usize,
    /// This side's compression: no context takeover, and window bits.
    send: (bool, u8),
    /// The peer's.
    receive: (bool, u8),
    /// This endpoint's own compressor and decompressor, made when first needed; the shared
    /// ones (per thread) serve a side with no context takeover and a full window.
    deflater: Option<Box<Deflater>>,
    inflater: Option<Box<Inflater>>,
}

impl Deflate {
    fn new(params: &DeflateParams, role: Role, threshold: usize) -> Deflate {
        let server = (
            params.server_no_context_takeover,
            params.server_max_window_bits.unwrap_or(15),
        );
        let client = (
            params.client_no_context_takeover,
            params.client_max_window_bits.unwrap_or(15),
        );
        let (send, receive) = match role {
            Role::Server => (server, client),
            Role::Client => (client, server),
        };
        Deflate {
            threshold,
            send,
            receive,
            deflater: None,
            inflater: None,
        }
    }

    /// Sends the shared way: the loop's compressor, and a published message compressed once.
    fn shares(&self) -> bool {
        self.send == (true, 15)
    }

    /// Appends `payload` compressed to `out` if that makes it smaller; see
    /// [`Deflater::compress_smaller`].
    fn compress_smaller(&mut self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        if self.shares() {
            return compress_smaller_shared(payload, out);
        }
        let (no_context, bits) = self.send;
        self.deflater
            .get_or_insert_with(|| Box::new(Deflater::new(bits, no_context)))
            .compress_smaller(payload, out)
    }

    fn inflate(&mut self, compressed: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
        if self.receive == (true, 15) {
            return inflate_shared(compressed, limit);
        }
        let (no_context, bits) = self.receive;
        self.inflater
            .get_or_insert_with(|| Box::new(Inflater::new(bits, no_context)))
            .inflate(compressed, limit)
    }
}

/// Where a client endpoint's masking keys come from: a fresh key for every frame it sends
/// (RFC 6455 §5.3). The keys must be unpredictable to anyone who can see or shape the traffic
/// (§10.3), so in real use they come from a cryptographically strong source such as the OS's
/// (the crate's client and bench use `getrandom`: `wsloop::client::os_mask_keys`). The
/// protocol core does no I/O itself, so the caller hands it the source; a test may hand it a
/// fixed-seed generator to get the same bytes on every run.
pub struct MaskKeys(Box<dyn FnMut() -> [u8; 4] + Send>);

impl MaskKeys {
    /// Keys from `next`, called once for every frame.
    pub fn new(next: impl FnMut() -> [u8; 4] + Send + 'static) -> MaskKeys {
        MaskKeys(Box::new(next))
    }

    fn next(&mut self) -> [u8; 4] {
        (self.0)()
    }
}

impl fmt::Debug for MaskKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MaskKeys(..)")
    }
}

/// What only some endpoints need, boxed together so that the others (a server's connections
/// without compression, most of them) pay one pointer for both.
#[derive(Debug, Default)]
struct Extras {
    /// A client's masking keys.
    masks: Option<MaskKeys>,
    /// permessage-deflate, when it was negotiated.
    deflate: Option<Deflate>,
}

/// What an endpoint's sending half is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SendState {
    /// Messages may be sent.
    Open,
    /// A close frame is queued: nothing may follow it (§5.5.1).
    CloseQueued,
}

/// The sending half of an endpoint: see the module docs. Handed to whoever handles an event,
/// so a reply can be queued while the event's data is still borrowed.
#[derive(Debug)]
pub struct Outbound {
    queue: WriteQueue,
    role: Role,
    state: SendState,
    /// A close queued through [`Outbound::close`] that the endpoint has not acted on yet.
    close_request: Option<Box<(CloseCode, String)>>,
    /// A client's masking keys; permessage-deflate.
    extras: Option<Box<Extras>>,
}

impl Outbound {
    /// The sending half of a server's endpoint.
    pub(super) fn server(queue: WriteQueue) -> Outbound {
        Outbound {
            queue,
            role: Role::Server,
            state: SendState::Open,
            close_request: None,
            extras: None,
        }
    }

    /// The sending half of a client's endpoint, masking every frame with a key from `masks`.
    pub(super) fn client(queue: WriteQueue, masks: MaskKeys) -> Outbound {
        let extras = Extras {
            masks: Some(masks),
            deflate: None,
        };
        Outbound {
            role: Role::Client,
            extras: Some(Box::new(extras)),
            ..Outbound::server(queue)
        }
    }

    /// permessage-deflate was agreed: data messages of `threshold` bytes or more are sent
    /// compressed, and compressed ones are inflated.
    pub(super) fn enable_deflate(&mut self, params: &DeflateParams, threshold: usize) {
        let deflate = Deflate::new(params, self.role, threshold);
        self.extras.get_or_insert_with(Box::default).deflate = Some(deflate);
    }

    fn deflate(&self) -> Option<&Deflate> {
        self.extras.as_ref()?.deflate.as_ref()
    }

    fn deflate_mut(&mut self) -> Option<&mut Deflate> {
        self.extras.as_mut()?.deflate.as_mut()
    }

    /// The role it frames for.
    pub(super) fn role(&self) -> Role {
        self.role
    }

    /// Whether permessage-deflate was agreed.
    pub(super) fn deflates(&self) -> bool {
        self.deflate().is_some()
    }

    /// The message a compressed one holds, at most `limit` bytes (RFC 7692 §7.2.2).
    pub(super) fn inflate(
        &mut self,
        compressed: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, ProtocolError> {
        let deflate = self
            .deflate_mut()
            .ok_or(ProtocolError::ReservedBits(0b100))?;
        deflate.inflate(compressed, limit).map_err(|e| match e {
            InflateError::TooBig => ProtocolError::MessageTooBig((limit as u64).saturating_add(1)),
            InflateError::Corrupt => ProtocolError::BadCompression,
        })
    }

    /// Whether a data message of `len` bytes goes out compressed.
    fn compresses(&self, len: usize) -> bool {
        self.deflate().is_some_and(|d| len >= d.threshold)
    }

    /// Queues a data message compressed, RSV1 set, when permessage-deflate was agreed, the
    /// message is not under the threshold and compressing makes it smaller. Returns false,
    /// queuing nothing, otherwise: the caller sends it uncompressed (RFC 7692 §6.1 lets any
    /// message go either way).
    #[inline]
    fn send_compressed(&mut self, opcode: OpCode, payload: &[u8]) -> bool {
        // The check stays in the caller's per-message path; compressing is out of line.
        self.compresses(payload.len()) && self.compress_and_queue(opcode, payload)
    }

    /// [`Outbound::send_compressed`] once the message is to be compressed.
    #[inline(never)]
    fn compress_and_queue(&mut self, opcode: OpCode, payload: &[u8]) -> bool {
        let mut compressed = take_buffer(payload.len() / 2 + 64);
        let deflate = self.deflate_mut().expect("compresses");
        let smaller = deflate.compress_smaller(payload, &mut compressed);
        if smaller {
            let mask = self.mask();
            self.queue.push_frame(true, opcode, &compressed, mask);
        }
        give_back(compressed);
        smaller
    }

    /// A client's next masking key; none for a server.
    fn mask(&mut self) -> Option<[u8; 4]> {
        let masks = self.extras.as_mut()?.masks.as_mut()?;
        Some(masks.next())
    }

    /// Whether messages are still accepted: the connection is open and no close is queued.
    pub fn is_open(&self) -> bool {
        self.state == SendState::Open
    }

    /// Queues a message in one frame (compressed, with permessage-deflate, from the threshold
    /// up, unless that would not make it smaller). Returns false, queuing nothing, once a close
    /// is queued.
    #[inline]
    pub fn send(&mut self, message: Message<'_>) -> bool {
        // A server's message under 126 bytes without compression, the most common, is queued
        // here in the caller; anything else out of line. No extras: a server's endpoint that
        // agreed no permessage-deflate (a client's always holds its masking keys there).
        if self.extras.is_none() && self.is_open() {
            let payload = message.as_bytes();
            if let Some(header) = short_header(false, message.opcode(), payload.len()) {
                self.queue.push_short_frame(header, payload);
                return true;
            }
        }
        self.send_framed(message)
    }

    /// [`Outbound::send`] for every message but a server's short uncompressed one.
    #[inline(never)]
    fn send_framed(&mut self, message: Message<'_>) -> bool {
        if self.is_open() && self.send_compressed(message.opcode(), message.as_bytes()) {
            return true;
        }
        self.frame(message.opcode(), message.as_bytes())
    }

    /// Queues a message received in one piece whose payload is still at `offset` in the input
    /// buffer being received: a server queues that range instead of a copy (see
    /// [`WriteQueue::push_frame_from_input`]; whoever drives the endpoint writes it from that
    /// buffer or has it copied before reusing the buffer). A client's, or one compressed, is
    /// queued as [`Outbound::send`] does (one that compressing would not shrink is queued from
    /// the input all the same).
    pub(crate) fn send_from_input(&mut self, message: Message<'_>, offset: usize) -> bool {
        if self.role == Role::Client || !self.is_open() {
            return self.send(message);
        }
        if !self.send_compressed(message.opcode(), message.as_bytes()) {
            let len = message.as_bytes().len();
            self.queue
                .push_frame_from_input(message.opcode(), offset, len);
        }
        true
    }

    /// Queues a message whose payload the caller shares (one gathered from pieces): a server
    /// queues it by reference, a client copies it to mask it.
    pub fn send_shared(&mut self, opcode: OpCode, payload: &Arc<Vec<u8>>) -> bool {
        if !self.is_open() {
            return false;
        }
        if self.send_compressed(opcode, payload) {
            return true;
        }
        match self.role {
            Role::Server => self.queue.push_frame_shared(opcode, payload.clone()),
            Role::Client => {
                let mask = self.mask();
                self.queue.push_frame(false, opcode, payload, mask);
            }
        }
        true
    }

    /// Queues a prepared message: a server shares its frame with every other receiver, a client
    /// frames and masks its payload.
    pub fn send_prepared(&mut self, prepared: &Prepared) -> bool {
        if !self.is_open() {
            return false;
        }
        let payload = prepared.payload();
        let shares = self.deflate().is_some_and(Deflate::shares);
        if shares && self.role == Role::Server && self.compresses(payload.len()) {
            // Receivers that compress the shared way share one compressed frame (or the
            // uncompressed one, if compressing did not make it smaller).
            self.queue.push_shared(prepared.deflated_frame());
            return true;
        }
        if self.send_compressed(prepared.opcode, payload) {
            return true;
        }
        match self.role {
            Role::Server => self.queue.push_shared(&prepared.frame),
            Role::Client => {
                let mask = self.mask();
                self.queue.push_frame(false, prepared.opcode, payload, mask);
            }
        }
        true
    }

    /// Queues a ping (§5.5.2) with at most 125 bytes of `payload`.
    pub fn ping(&mut self, payload: &[u8]) -> bool {
        self.frame(OpCode::Ping, &payload[..payload.len().min(125)])
    }

    /// Queues a pong answering a ping (§5.5.3).
    pub(super) fn pong(&mut self, payload: &[u8]) {
        self.frame(OpCode::Pong, payload);
    }

    fn frame(&mut self, opcode: OpCode, payload: &[u8]) -> bool {
        if !self.is_open() {
            return false;
        }
        let mask = self.mask();
        self.queue.push_frame(false, opcode, payload, mask);
        true
    }

    /// Starts the closing handshake (§7.1.2): queues a close frame with `code` (one that may
    /// not be sent, §7.4.1, becomes 1000) and as much of `reason` as fits. Nothing can be sent
    /// after it. Returns false if a close was already queued.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> bool {
        if !self.is_open() {
            return false;
        }
        let code = if code.is_sendable() {
            code
        } else {
            CloseCode::NORMAL
        };
        self.queue_close(&close_body(code, reason));
        self.close_request = Some(Box::new((code, reason.to_string())));
        true
    }

    /// Queues the close frame with `body`, the last frame this endpoint sends.
    pub(super) fn queue_close(&mut self, body: &[u8]) {
        let mask = self.mask();
        self.queue.push_frame(false, OpCode::Close, body, mask);
        self.state = SendState::CloseQueued;
    }

    /// Accepts nothing more, queuing no close frame: the connection is going without one.
    pub(super) fn shut(&mut self) {
        self.state = SendState::CloseQueued;
    }

    /// A close queued with [`Outbound::close`] that the endpoint has yet to act on.
    pub(super) fn close_requested(&self) -> bool {
        self.close_request.is_some()
    }

    /// Takes the close [`Outbound::close_requested`] says is there.
    pub(super) fn take_close_request(&mut self) -> Option<Box<(CloseCode, String)>> {
        self.close_request.take()
    }

    /// Bytes waiting to be written.
    pub fn buffered(&self) -> usize {
        self.queue.len()
    }

    /// The queue the transport writes out.
    pub fn queue(&mut self) -> &mut WriteQueue {
        &mut self.queue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_masks() -> MaskKeys {
        crate::test_rng::mask_keys(7)
    }

    fn sent(out: &mut Outbound) -> Vec<u8> {
        let mut bytes = Vec::new();
        out.queue().write_to(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_server_frames_unmasked_and_a_client_masked() {
        let mut server = Outbound::server(WriteQueue::default());
        server.send(Message::Text("hi"));
        assert_eq!(sent(&mut server), b"\x81\x02hi");
        let mut client = Outbound::client(WriteQueue::default(), test_masks());
        client.send(Message::Binary(b"hi"));
        let frame = sent(&mut client);
        assert_eq!(&frame[..2], b"\x82\x82");
        let key: [u8; 4] = frame[2..6].try_into().unwrap();
        let mut payload = frame[6..].to_vec();
        super::super::mask::apply_mask(&mut payload, key, 0);
        assert_eq!(payload, b"hi");
    }

    #[test]
    fn nothing_follows_a_close() {
        let mut out = Outbound::server(WriteQueue::default());
        assert!(out.close(CloseCode(1005), "bye"));
        assert!(!out.send(Message::Text("late")));
        assert!(!out.close(CloseCode::NORMAL, "again"));
        // An unsendable code becomes 1000.
        assert_eq!(sent(&mut out), b"\x88\x05\x03\xe8bye");
        assert_eq!(
            *out.take_close_request().unwrap(),
            (CloseCode::NORMAL, "bye".into())
        );
    }

    /// A prepared text is a `&str` checked once, by whoever made it: sending it to many
    /// receivers, compressed or not, server or client, checks none of its bytes again.
    #[test]
    fn a_prepared_text_is_not_checked_again_for_each_receiver() {
        let text = "héllo, everyone ".repeat(100);
        let prepared = Prepared::new(Message::Text(&text));
        let params = |no_context| DeflateParams {
            server_no_context_takeover: no_context,
            client_no_context_takeover: no_context,
            server_max_window_bits: None,
            client_max_window_bits: None,
        };
        let mut receivers = Vec::new();
        for compression in [None, Some(params(true)), Some(params(false))] {
            for _ in 0..10 {
                let server = Outbound::server(WriteQueue::default());
                let client = Outbound::client(WriteQueue::default(), test_masks());
                for mut out in [server, client] {
                    if let Some(params) = &compression {
                        out.enable_deflate(params, 64);
                    }
                    receivers.push(out);
                }
            }
        }
        let before = super::super::utf8::checked_bytes();
        for out in &mut receivers {
            assert!(out.send_prepared(&prepared));
            assert!(!sent(out).is_empty());
        }
        assert_eq!(super::super::utf8::checked_bytes() - before, 0);
    }

    #[test]
    fn a_prepared_message_keeps_its_payload_and_frame() {
        let prepared = Prepared::new(Message::Text("héllo"));
        assert_eq!(prepared.message(), Message::Text("héllo"));
        let mut out = Outbound::server(WriteQueue::default());
        out.send_prepared(&prepared);
        assert_eq!(sent(&mut out), b"\x81\x06h\xc3\xa9llo");
    }
}

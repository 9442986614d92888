//! The sending half of an endpoint: every frame either role sends is encoded here, once, into
//! the endpoint's [`WriteQueue`] (§5.2), masked with a fresh key when the endpoint is a client
//! (§5.3, §10.3) and never when it is a server (§5.1).

use std::sync::Arc;

use super::close::{close_body, CloseCode};
use super::frame::{encode_frame, OpCode, Role};
use super::write_queue::WriteQueue;

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
}

impl Prepared {
    /// Frames `message` once.
    pub fn new(message: Message<'_>) -> Prepared {
        let payload = message.as_bytes();
        let mut frame = Vec::with_capacity(payload.len() + 10);
        encode_frame(&mut frame, message.opcode(), payload, None);
        Prepared {
            opcode: message.opcode(),
            header_len: (frame.len() - payload.len()) as u8,
            frame: Arc::from(frame),
        }
    }

    /// The message it carries.
    pub fn message(&self) -> Message<'_> {
        let payload = &self.frame[usize::from(self.header_len)..];
        match self.opcode {
            // Built from a `Message::Text`, so the bytes are UTF-8; checked again rather than
            // trusted, since this crate has no `unsafe`.
            OpCode::Text => Message::Text(std::str::from_utf8(payload).unwrap_or_default()),
            _ => Message::Binary(payload),
        }
    }

    /// The frame's length on the wire (unmasked).
    pub fn frame_len(&self) -> usize {
        self.frame.len()
    }
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
}

impl Outbound {
    pub(super) fn new(role: Role, queue: WriteQueue) -> Outbound {
        Outbound {
            queue,
            role,
            state: SendState::Open,
            close_request: None,
        }
    }

    fn mask(&self) -> Option<[u8; 4]> {
        (self.role == Role::Client).then(random)
    }

    /// Whether messages are still accepted: the connection is open and no close is queued.
    pub fn is_open(&self) -> bool {
        self.state == SendState::Open
    }

    /// Queues a message in one frame. Returns false, queuing nothing, once a close is queued.
    pub fn send(&mut self, message: Message<'_>) -> bool {
        self.frame(message.opcode(), message.as_bytes())
    }

    /// Queues a message whose payload the caller shares (one gathered from pieces): a server
    /// queues it by reference, a client copies it to mask it.
    pub fn send_shared(&mut self, opcode: OpCode, payload: &Arc<Vec<u8>>) -> bool {
        if !self.is_open() {
            return false;
        }
        match self.role {
            Role::Server => self.queue.push_frame_shared(opcode, payload.clone()),
            Role::Client => self.queue.push_frame(opcode, payload, self.mask()),
        }
        true
    }

    /// Queues a prepared message: a server shares its frame with every other receiver, a client
    /// frames and masks its payload.
    pub fn send_prepared(&mut self, prepared: &Prepared) -> bool {
        if !self.is_open() {
            return false;
        }
        match self.role {
            Role::Server => self.queue.push_shared(prepared.frame.clone()),
            Role::Client => {
                let payload = prepared.message().as_bytes();
                self.queue.push_frame(prepared.opcode, payload, self.mask());
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
        self.queue.push_frame(opcode, payload, mask);
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
        self.queue.push_frame(OpCode::Close, body, mask);
        self.state = SendState::CloseQueued;
    }

    /// Accepts nothing more, queuing no close frame: the connection is going without one.
    pub(super) fn shut(&mut self) {
        self.state = SendState::CloseQueued;
    }

    /// A close queued with [`Outbound::close`] that the endpoint has yet to act on.
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

/// A random masking key from the OS (§5.3: unpredictable, fresh for every frame).
fn random() -> [u8; 4] {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes).expect("the OS entropy source works");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(out: &mut Outbound) -> Vec<u8> {
        let mut bytes = Vec::new();
        out.queue().write_to(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_server_frames_unmasked_and_a_client_masked() {
        let mut server = Outbound::new(Role::Server, WriteQueue::default());
        server.send(Message::Text("hi"));
        assert_eq!(sent(&mut server), b"\x81\x02hi");
        let mut client = Outbound::new(Role::Client, WriteQueue::default());
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
        let mut out = Outbound::new(Role::Server, WriteQueue::default());
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

    #[test]
    fn a_prepared_message_keeps_its_payload_and_frame() {
        let prepared = Prepared::new(Message::Text("héllo"));
        assert_eq!(prepared.message(), Message::Text("héllo"));
        let mut out = Outbound::new(Role::Server, WriteQueue::default());
        out.send_prepared(&prepared);
        assert_eq!(sent(&mut out), b"\x81\x06h\xc3\xa9llo");
    }
}

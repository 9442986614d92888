//! Two endpoints, a client and a server, talking in memory (after quinn-proto's `Pair`): bytes
//! move from one side's write queue into the other's `receive`, time is a fake clock advanced by
//! hand, and each side's events are recorded as owned values.

use super::*;
use crate::protocol::frame::{encode_header, OpCode, MAX_HEADER_LEN};
use crate::protocol::mask::apply_mask;

mod closing;
mod deflate;
mod keepalive;
mod messages;
mod violations;
mod ways_in;

/// An event, owned, so it outlives the callback that reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnedEvent {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Closed(u16, String, ClosedBy),
}

impl OwnedEvent {
    fn of(event: &Event<'_>) -> OwnedEvent {
        match *event {
            Event::Message { message, gathered } => {
                if let Some(shared) = gathered {
                    assert_eq!(
                        shared.as_slice(),
                        message.as_bytes(),
                        "the gathered bytes are the message"
                    );
                }
                match message {
                    Message::Text(text) => OwnedEvent::Text(text.to_string()),
                    Message::Binary(bytes) => OwnedEvent::Binary(bytes.to_vec()),
                }
            }
            Event::Ping(payload) => OwnedEvent::Ping(payload.to_vec()),
            Event::Pong(payload) => OwnedEvent::Pong(payload.to_vec()),
            Event::Closed { code, reason, by } => {
                OwnedEvent::Closed(code.0, reason.to_string(), by)
            }
        }
    }
}

fn text(s: &str) -> OwnedEvent {
    OwnedEvent::Text(s.to_string())
}

fn closed(code: u16, reason: &str, by: ClosedBy) -> OwnedEvent {
    OwnedEvent::Closed(code, reason.to_string(), by)
}

/// What a side's handler does with an event, besides recording it.
type Reply = Box<dyn FnMut(&mut Outbound, &OwnedEvent)>;

/// A reply that sends every data message back.
fn echo() -> Reply {
    Box::new(|out, event| match event {
        OwnedEvent::Text(text) => {
            out.send(Message::Text(text));
        }
        OwnedEvent::Binary(bytes) => {
            out.send(Message::Binary(bytes));
        }
        _ => {}
    })
}

/// The handler a side hands its endpoint: records each event, then lets `reply` act on it.
fn handler<'a>(
    events: &'a mut Vec<OwnedEvent>,
    reply: &'a mut Option<Reply>,
) -> impl FnMut(&mut Outbound, Event<'_>) + 'a {
    move |out, event| {
        let owned = OwnedEvent::of(&event);
        if let Some(reply) = reply.as_mut() {
            reply(out, &owned);
        }
        events.push(owned);
    }
}

/// One endpoint, what it reported and everything it wrote.
struct Side {
    endpoint: Endpoint,
    events: Vec<OwnedEvent>,
    reply: Option<Reply>,
    /// Every byte written out of the endpoint's queue so far, in order.
    wire: Vec<u8>,
}

impl Side {
    fn new(role: Role, config: &EndpointConfig, now: Instant) -> Side {
        Side::of(match role {
            Role::Server => Endpoint::server(config, now),
            Role::Client => Endpoint::client(config, now, crate::test_rng::mask_keys(1)),
        })
    }

    fn of(endpoint: Endpoint) -> Side {
        Side {
            endpoint,
            events: Vec::new(),
            reply: None,
            wire: Vec::new(),
        }
    }

    fn receive(&mut self, bytes: &[u8], now: Instant) {
        let mut input = bytes.to_vec();
        let mut on_event = handler(&mut self.events, &mut self.reply);
        self.endpoint.receive(&mut input, now, &mut on_event);
    }

    /// Writes out the endpoint's queue; returns what it held.
    fn take_output(&mut self) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.endpoint
            .outbound()
            .queue()
            .write_to(&mut bytes)
            .unwrap();
        self.wire.extend_from_slice(&bytes);
        bytes
    }

    fn send(&mut self, message: Message<'_>) -> bool {
        self.endpoint.outbound().send(message)
    }

    fn close(&mut self, code: u16, reason: &str) {
        let mut on_event = handler(&mut self.events, &mut self.reply);
        self.endpoint.close(CloseCode(code), reason, &mut on_event);
    }

    fn close_and_stop(&mut self, code: u16, reason: &str) {
        let mut on_event = handler(&mut self.events, &mut self.reply);
        self.endpoint
            .close_and_stop(CloseCode(code), reason, &mut on_event);
    }

    fn drop_connection(&mut self, code: u16, reason: &str) {
        let mut on_event = handler(&mut self.events, &mut self.reply);
        self.endpoint
            .drop_connection(CloseCode(code), reason, &mut on_event);
    }

    fn handle_timeout(&mut self, now: Instant) {
        let mut on_event = handler(&mut self.events, &mut self.reply);
        self.endpoint.handle_timeout(now, &mut on_event);
    }

    fn after_send(&mut self) {
        let mut on_event = handler(&mut self.events, &mut self.reply);
        self.endpoint.after_send(&mut on_event);
    }

    fn phase(&self) -> Phase {
        self.endpoint.phase()
    }

    /// The frames this side wrote, parsed and unmasked.
    fn wire_frames(&self) -> Vec<WireFrame> {
        frames(&self.wire)
    }
}

/// A client and a server endpoint connected in memory, with a fake clock.
struct Pair {
    client: Side,
    server: Side,
    epoch: Instant,
    time: Duration,
}

fn config() -> EndpointConfig {
    EndpointConfig {
        max_frame_size: 1 << 20,
        max_message_size: 1 << 20,
        ping_interval: None,
        idle_timeout: None,
    }
}

impl Pair {
    fn new() -> Pair {
        Pair::with_configs(&config(), &config())
    }

    fn with_configs(client: &EndpointConfig, server: &EndpointConfig) -> Pair {
        let epoch = Instant::now();
        Pair {
            client: Side::new(Role::Client, client, epoch),
            server: Side::new(Role::Server, server, epoch),
            epoch,
            time: Duration::ZERO,
        }
    }

    /// A pair whose server sends every message back.
    fn echoing_server() -> Pair {
        let mut pair = Pair::new();
        pair.server.reply = Some(echo());
        pair
    }

    fn now(&self) -> Instant {
        self.epoch + self.time
    }

    fn advance(&mut self, by: Duration) {
        self.time += by;
    }

    /// Moves bytes both ways until neither side has anything left to write.
    fn drive(&mut self) {
        for _ in 0..100 {
            let now = self.now();
            let from_client = self.client.take_output();
            let from_server = self.server.take_output();
            if from_client.is_empty() && from_server.is_empty() {
                return;
            }
            if !from_client.is_empty() {
                self.server.receive(&from_client, now);
            }
            if !from_server.is_empty() {
                self.client.receive(&from_server, now);
            }
        }
        panic!("the endpoints never went quiet");
    }

    /// Hands `bytes` to the server as if the client had sent them.
    fn deliver_to_server(&mut self, bytes: &[u8]) {
        let now = self.now();
        self.server.receive(bytes, now);
    }

    /// Hands `bytes` to the client as if the server had sent them.
    fn deliver_to_client(&mut self, bytes: &[u8]) {
        let now = self.now();
        self.client.receive(bytes, now);
    }
}

/// A frame as it appeared on the wire, its payload unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WireFrame {
    fin: bool,
    /// A compressed message (RFC 7692 §6).
    rsv1: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
}

impl WireFrame {
    /// The frame without its masking key, for comparing a client's frames.
    fn unkeyed(mut self) -> WireFrame {
        self.mask = None;
        self
    }

    /// The code of a close frame.
    fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, 0x8, "not a close frame: {self:?}");
        u16::from_be_bytes([self.payload[0], self.payload[1]])
    }
}

/// Parses whole frames, independently of the decoder under test.
/// The opcodes of the frames `side` has written since the last look.
fn opcodes_sent(side: &mut Side) -> Vec<u8> {
    frames(&side.take_output())
        .iter()
        .map(|f| f.opcode)
        .collect()
}

fn frames(mut bytes: &[u8]) -> Vec<WireFrame> {
    let mut found = Vec::new();
    while !bytes.is_empty() {
        let fin = bytes[0] & 0x80 != 0;
        let rsv1 = bytes[0] & 0x40 != 0;
        let opcode = bytes[0] & 0x0F;
        let masked = bytes[1] & 0x80 != 0;
        let (len, mut at) = match bytes[1] & 0x7F {
            126 => (usize::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 => (
                u64::from_be_bytes(bytes[2..10].try_into().unwrap()) as usize,
                10,
            ),
            short => (usize::from(short), 2),
        };
        let mask = masked.then(|| {
            let key: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
            at += 4;
            key
        });
        let mut payload = bytes[at..at + len].to_vec();
        if let Some(key) = mask {
            apply_mask(&mut payload, key, 0);
        }
        found.push(WireFrame {
            fin,
            rsv1,
            opcode,
            mask,
            payload,
        });
        bytes = &bytes[at + len..];
    }
    found
}

/// An unmasked frame as a server sends it, `fin` and `opcode` as given.
fn server_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut header, fin, false, opcode, payload.len() as u64, None);
    let mut out = header[..n].to_vec();
    out.extend_from_slice(payload);
    out
}

/// A masked frame as a client sends it, `fin` and `opcode` as given.
fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encode_header(
        &mut header,
        fin,
        false,
        opcode,
        payload.len() as u64,
        Some(key),
    );
    let mut out = header[..n].to_vec();
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
    out
}

fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(reason.as_bytes());
    body
}

//! Two endpoints, a client and a server, talking in memory (after quinn-proto's `Pair`): bytes
//! move from one side's write queue into the other's `receive`, time is a fake clock advanced by
//! hand, and each side's events are recorded as owned values.

use super::*;
use crate::protocol::frame::{encode_header, OpCode, MAX_HEADER_LEN};
use crate::protocol::mask::apply_mask;

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
        Side {
            endpoint: Endpoint::new(role, config, now),
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
    let n = encode_header(&mut header, fin, opcode, payload.len() as u64, None);
    let mut out = header[..n].to_vec();
    out.extend_from_slice(payload);
    out
}

/// A masked frame as a client sends it, `fin` and `opcode` as given.
fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut header, fin, opcode, payload.len() as u64, Some(key));
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

// 1. Echo, and masking on the wire.

#[test]
fn text_and_binary_echo_from_client_to_server() {
    let mut pair = Pair::echoing_server();
    assert!(pair.client.send(Message::Text("hello")));
    assert!(pair.client.send(Message::Binary(&[0, 1, 2, 255])));
    pair.drive();

    assert_eq!(
        pair.server.events,
        [text("hello"), OwnedEvent::Binary(vec![0, 1, 2, 255])]
    );
    assert_eq!(
        pair.client.events,
        [text("hello"), OwnedEvent::Binary(vec![0, 1, 2, 255])]
    );

    // The client masks every frame (§5.3): mask bit, key, masked payload.
    let client_wire = pair.client.wire_frames();
    assert_eq!(client_wire.len(), 2);
    for (frame, (opcode, payload)) in client_wire
        .iter()
        .zip([(0x1, &b"hello"[..]), (0x2, &[0, 1, 2, 255][..])])
    {
        assert!(frame.fin);
        assert_eq!(frame.opcode, opcode);
        assert!(frame.mask.is_some(), "a client frame is masked");
        assert_eq!(frame.payload, payload, "unmasked with its key");
    }
    assert_eq!(pair.client.wire[1], 0x80 | 5, "mask bit and length");
    // The server never masks (§5.1): the exact bytes.
    assert_eq!(pair.server.wire, b"\x81\x05hello\x82\x04\x00\x01\x02\xff");
    assert_eq!(pair.client.phase(), Phase::Open);
    assert_eq!(pair.server.phase(), Phase::Open);
}

#[test]
fn text_and_binary_echo_from_server_to_client() {
    let mut pair = Pair::new();
    pair.client.reply = Some(echo());
    assert!(pair.server.send(Message::Text("héllo")));
    assert!(pair.server.send(Message::Binary(&[9; 300])));
    pair.drive();

    assert_eq!(
        pair.client.events,
        [text("héllo"), OwnedEvent::Binary(vec![9; 300])]
    );
    assert_eq!(
        pair.server.events,
        [text("héllo"), OwnedEvent::Binary(vec![9; 300])]
    );
    let mut expected = b"\x81\x06h\xc3\xa9llo\x82\x7e\x01\x2c".to_vec();
    expected.extend_from_slice(&[9; 300]);
    assert_eq!(pair.server.wire, expected);
    let echoed = pair.client.wire_frames();
    assert!(echoed.iter().all(|f| f.mask.is_some()));
    assert_eq!(echoed[0].payload, "héllo".as_bytes());
    assert_eq!(echoed[1].payload, [9; 300]);
    // Masked, the bytes on the wire are not the plain payload (unless the key is all zeros,
    // one chance in 2^32).
    let on_wire = &pair.client.wire[pair.client.wire.len() - 300..];
    assert_ne!(on_wire, &[9; 300][..]);
}

// 2. Fragmentation.

#[test]
fn fragments_arrive_as_one_message_with_a_ping_answered_between_them() {
    let mut pair = Pair::echoing_server();
    let mut stream = client_frame(false, OpCode::Text, b"Hel");
    stream.extend(client_frame(true, OpCode::Ping, b"are you there"));
    // "✓" is split across fragments: valid once the message is whole.
    let check = "✓".as_bytes();
    let mut second = b"lo, ".to_vec();
    second.extend_from_slice(&check[..1]);
    stream.extend(client_frame(false, OpCode::Continuation, &second));
    let mut third = check[1..].to_vec();
    third.extend_from_slice(b" world");
    stream.extend(client_frame(true, OpCode::Continuation, &third));
    pair.deliver_to_server(&stream);
    pair.drive();

    assert_eq!(
        pair.server.events,
        [
            OwnedEvent::Ping(b"are you there".to_vec()),
            text("Hello, ✓ world")
        ]
    );
    // The pong went out as soon as the ping arrived, before the message was complete.
    let sent = pair.server.wire_frames();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        (sent[0].opcode, &sent[0].payload[..]),
        (0xA, &b"are you there"[..])
    );
    assert_eq!(sent[1].opcode, 0x1);
    assert_eq!(
        pair.client.events,
        [
            OwnedEvent::Pong(b"are you there".to_vec()),
            text("Hello, ✓ world")
        ]
    );
}

#[test]
fn a_client_gathers_a_fragmented_server_message_and_answers_its_ping() {
    let mut pair = Pair::new();
    let mut stream = server_frame(false, OpCode::Binary, &[1, 2]);
    stream.extend(server_frame(false, OpCode::Continuation, &[]));
    stream.extend(server_frame(true, OpCode::Ping, b"p"));
    stream.extend(server_frame(true, OpCode::Continuation, &[3]));
    pair.deliver_to_client(&stream);
    assert_eq!(
        pair.client.events,
        [
            OwnedEvent::Ping(b"p".to_vec()),
            OwnedEvent::Binary(vec![1, 2, 3])
        ]
    );
    let pong = frames(&pair.client.take_output());
    assert_eq!(pong.len(), 1);
    assert_eq!((pong[0].opcode, &pong[0].payload[..]), (0xA, &b"p"[..]));
    assert!(pong[0].mask.is_some(), "a client's pong is masked");
}

// 3. Delivery in pieces.

/// A client's stream exercising every path: single frames, a long frame, fragments with a ping
/// between them and a code point split across fragments, a pong, and a close.
fn client_stream() -> Vec<u8> {
    let mut stream = client_frame(true, OpCode::Text, "héllo".as_bytes());
    stream.extend(client_frame(
        true,
        OpCode::Binary,
        &(0..=200).collect::<Vec<u8>>(),
    ));
    stream.extend(client_frame(false, OpCode::Text, b"fra\xe2\x9c"));
    stream.extend(client_frame(true, OpCode::Ping, b"p"));
    stream.extend(client_frame(false, OpCode::Continuation, b"\x93g"));
    stream.extend(client_frame(true, OpCode::Continuation, b"ment"));
    stream.extend(client_frame(true, OpCode::Binary, b""));
    stream.extend(client_frame(true, OpCode::Pong, b"q"));
    stream.extend(client_frame(
        true,
        OpCode::Close,
        &close_payload(1000, "done"),
    ));
    stream
}

/// An echoing server fed `stream` in pieces ending at `cuts`, letting go of what it can after
/// each piece as the server's loop does after each batch of reads: its events and output.
fn server_fed(stream: &[u8], cuts: &[usize]) -> (Vec<OwnedEvent>, Vec<u8>) {
    let now = Instant::now();
    let mut server = Side::new(Role::Server, &config(), now);
    server.reply = Some(echo());
    let mut start = 0;
    for &end in cuts.iter().chain([stream.len()].iter()) {
        server.receive(&stream[start..end], now);
        server.endpoint.release_idle_buffers();
        start = end;
    }
    let output = server.take_output();
    (server.events, output)
}

#[test]
fn a_server_sees_the_same_events_however_the_bytes_are_split() {
    let stream = client_stream();
    let (events, output) = server_fed(&stream, &[]);
    assert_eq!(
        events,
        [
            text("héllo"),
            OwnedEvent::Binary((0..=200).collect()),
            OwnedEvent::Ping(b"p".to_vec()),
            text("fra✓gment"),
            OwnedEvent::Binary(Vec::new()),
            OwnedEvent::Pong(b"q".to_vec()),
            closed(1000, "done", ClosedBy::Peer),
        ]
    );
    let sent: Vec<_> = frames(&output)
        .into_iter()
        .map(|f| (f.opcode, f.payload))
        .collect();
    assert_eq!(
        sent,
        [
            (0x1, "héllo".as_bytes().to_vec()),
            (0x2, (0..=200).collect()),
            (0xA, b"p".to_vec()),
            (0x1, "fra✓gment".as_bytes().to_vec()),
            (0x2, Vec::new()),
            (0x8, close_payload(1000, "")),
        ]
    );

    for cut in 0..=stream.len() {
        assert_eq!(
            server_fed(&stream, &[cut]),
            (events.clone(), output.clone()),
            "split at {cut}"
        );
    }
    let every_byte: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(server_fed(&stream, &every_byte), (events, output));
}

#[test]
fn between_messages_an_endpoint_lets_go_of_its_reader() {
    let now = Instant::now();
    let mut server = Side::new(Role::Server, &config(), now);
    server.receive(&client_frame(true, OpCode::Text, b"one"), now);
    server.endpoint.release_idle_buffers();
    assert!(server.endpoint.reader.is_none(), "idle: no reader");
    // Cut anywhere, this holds part of a header, a frame or a message across the batch.
    let mut stream = client_frame(false, OpCode::Text, b"tw");
    stream.extend(client_frame(true, OpCode::Ping, b"p"));
    stream.extend(client_frame(true, OpCode::Continuation, b"o"));
    let mut expected = vec![text("one")];
    for cut in 1..stream.len() {
        server.receive(&stream[..cut], now);
        server.endpoint.release_idle_buffers();
        assert!(server.endpoint.reader.is_some(), "cut at {cut}");
        server.receive(&stream[cut..], now);
        server.endpoint.release_idle_buffers();
        assert!(server.endpoint.reader.is_none(), "cut at {cut}");
        expected.extend([OwnedEvent::Ping(b"p".to_vec()), text("two")]);
    }
    assert_eq!(server.events, expected);
}

#[test]
fn a_client_sees_the_same_events_however_the_bytes_are_split() {
    let mut stream = server_frame(true, OpCode::Text, "✓ ok".as_bytes());
    stream.extend(server_frame(false, OpCode::Binary, &[7; 130]));
    stream.extend(server_frame(true, OpCode::Ping, b""));
    stream.extend(server_frame(true, OpCode::Continuation, &[8; 3]));
    stream.extend(server_frame(true, OpCode::Close, &[]));

    let fed = |cuts: &[usize]| {
        let now = Instant::now();
        let mut client = Side::new(Role::Client, &config(), now);
        let mut start = 0;
        for &end in cuts.iter().chain([stream.len()].iter()) {
            client.receive(&stream[start..end], now);
            start = end;
        }
        let output: Vec<WireFrame> = frames(&client.take_output())
            .into_iter()
            .map(WireFrame::unkeyed)
            .collect();
        (client.events, output)
    };
    let whole = fed(&[]);
    let mut gathered = vec![7; 130];
    gathered.extend_from_slice(&[8; 3]);
    assert_eq!(
        whole.0,
        [
            text("✓ ok"),
            OwnedEvent::Ping(Vec::new()),
            OwnedEvent::Binary(gathered),
            // An empty close is reported as 1005 and answered with an empty close.
            closed(1005, "", ClosedBy::Peer),
        ]
    );
    assert_eq!(
        whole
            .1
            .iter()
            .map(|f| (f.opcode, f.payload.len()))
            .collect::<Vec<_>>(),
        [(0xA, 0), (0x8, 0)]
    );
    for cut in 0..=stream.len() {
        assert_eq!(fed(&[cut]), whole, "split at {cut}");
    }
    let every_byte: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(fed(&every_byte), whole);
}

// 4. and 5. The closing handshake.

#[test]
fn closing_handshake_started_by_the_client() {
    let mut pair = Pair::echoing_server();
    pair.client.close(1000, "bye");
    assert_eq!(pair.client.events, [closed(1000, "bye", ClosedBy::Local)]);
    assert_eq!(pair.client.phase(), Phase::CloseSent);
    assert!(
        !pair.client.send(Message::Text("late")),
        "nothing after a close"
    );
    assert_eq!(pair.client.endpoint.poll_timeout(), None);
    pair.drive();

    assert_eq!(pair.server.events, [closed(1000, "bye", ClosedBy::Peer)]);
    // The client sees the answer, but no second Closed event.
    assert_eq!(pair.client.events, [closed(1000, "bye", ClosedBy::Local)]);
    assert_eq!(pair.client.phase(), Phase::Closed);
    assert_eq!(pair.server.phase(), Phase::Closed);
    assert!(!pair.client.endpoint.reads_frames());
    assert!(!pair.server.endpoint.reads_frames());

    // The client's close on the wire: masked, 1000 "bye".
    let client_sent = pair.client.wire_frames();
    assert_eq!(client_sent.len(), 1);
    assert!(client_sent[0].mask.is_some());
    assert_eq!(client_sent[0].payload, close_payload(1000, "bye"));
    // The server answered with the code, and its close is the last thing it sent.
    assert_eq!(pair.server.wire, b"\x88\x02\x03\xe8");
    assert!(!pair.server.send(Message::Text("after")));
    pair.deliver_to_server(&client_frame(true, OpCode::Text, b"more"));
    pair.deliver_to_server(&client_frame(true, OpCode::Ping, b"x"));
    assert_eq!(pair.server.take_output(), b"");
    assert_eq!(pair.server.events.len(), 1);
}

#[test]
fn closing_handshake_started_by_the_server() {
    let mut pair = Pair::echoing_server();
    pair.client.reply = Some(echo());
    pair.server.close(1001, "shutting down");
    assert_eq!(
        pair.server.events,
        [closed(1001, "shutting down", ClosedBy::Local)]
    );
    assert_eq!(pair.server.phase(), Phase::CloseSent);
    let server_close = pair.server.take_output();

    // Before the close reaches it, the client sends data and a ping: the server reads them but
    // neither delivers the data nor answers the ping, and waits on.
    assert!(pair.client.send(Message::Text("in flight")));
    assert!(pair.client.endpoint.outbound().ping(b"hello?"));
    let from_client = pair.client.take_output();
    pair.deliver_to_server(&from_client);
    assert_eq!(pair.server.events.len(), 1, "{:?}", pair.server.events);
    assert_eq!(pair.server.phase(), Phase::CloseSent);
    assert!(pair.server.endpoint.reads_frames());
    assert_eq!(pair.server.take_output(), b"", "nothing after the close");

    pair.deliver_to_client(&server_close);
    assert_eq!(
        pair.client.events,
        [closed(1001, "shutting down", ClosedBy::Peer)]
    );
    assert_eq!(pair.client.phase(), Phase::Closed);
    pair.drive();
    assert_eq!(pair.server.phase(), Phase::Closed);
    assert_eq!(
        pair.server.events,
        [closed(1001, "shutting down", ClosedBy::Local)]
    );
    // The client answered with the same code; the server's close was all it sent.
    let answer = pair.client.wire_frames().pop().unwrap();
    assert_eq!(answer.payload, close_payload(1001, ""));
    assert_eq!(
        pair.server.wire_frames(),
        [WireFrame {
            fin: true,
            opcode: 0x8,
            mask: None,
            payload: close_payload(1001, "shutting down"),
        }]
    );
}

#[test]
fn a_close_queued_outside_a_callback_is_reported_by_after_send() {
    let mut pair = Pair::new();
    assert!(pair
        .server
        .endpoint
        .outbound()
        .close(CloseCode(4000), "app"));
    assert!(pair.server.events.is_empty());
    pair.server.after_send();
    assert_eq!(pair.server.events, [closed(4000, "app", ClosedBy::Local)]);
    assert_eq!(pair.server.phase(), Phase::CloseSent);
    pair.server.after_send();
    assert_eq!(pair.server.events.len(), 1, "reported once");
    pair.drive();
    assert_eq!(pair.client.events, [closed(4000, "app", ClosedBy::Peer)]);
    assert_eq!(pair.server.phase(), Phase::Closed);
}

#[test]
fn an_unsendable_close_code_goes_out_as_1000() {
    let mut pair = Pair::new();
    pair.server.close(1006, "odd");
    assert_eq!(pair.server.events, [closed(1000, "odd", ClosedBy::Local)]);
    pair.drive();
    assert_eq!(pair.client.events, [closed(1000, "odd", ClosedBy::Peer)]);
}

#[test]
fn close_and_stop_reads_nothing_more() {
    let mut pair = Pair::new();
    pair.server.close_and_stop(1008, "go away");
    assert_eq!(
        pair.server.events,
        [closed(1008, "go away", ClosedBy::Local)]
    );
    assert_eq!(pair.server.phase(), Phase::Closed);
    pair.client.send(Message::Text("ignored"));
    pair.drive();
    assert_eq!(
        pair.client.events,
        [closed(1008, "go away", ClosedBy::Peer)]
    );
    assert_eq!(pair.server.events.len(), 1);
    assert_eq!(pair.server.wire_frames().len(), 1);
}

// 6. Protocol violations.

/// Feeds `bytes` to a fresh server with `max_message_size` and checks it failed with `code`
/// and `error` right away, said so on the wire, and then reads nothing more.
fn server_fails(bytes: &[u8], max_message_size: u64, error: ProtocolError) {
    let mut server_config = config();
    server_config.max_message_size = max_message_size;
    let mut pair = Pair::with_configs(&config(), &server_config);
    pair.server.reply = Some(echo());
    pair.deliver_to_server(bytes);
    let code = error.close_code().0;
    let reason = error.to_string();
    assert_eq!(
        pair.server.events.last(),
        Some(&closed(code, &reason, ClosedBy::Violation(error))),
        "{:?}",
        pair.server.events
    );
    assert_eq!(
        pair.server
            .events
            .iter()
            .filter(|e| matches!(e, OwnedEvent::Closed(..)))
            .count(),
        1
    );
    assert_eq!(pair.server.phase(), Phase::Closed);
    let before = pair.server.events.len();

    // Nothing more is read: not data, not a ping, not a close.
    let mut more = client_frame(true, OpCode::Text, b"after");
    more.extend(client_frame(true, OpCode::Ping, b"p"));
    more.extend(client_frame(true, OpCode::Close, &close_payload(1000, "")));
    pair.deliver_to_server(&more);
    assert_eq!(pair.server.events.len(), before);

    // The close frame with the code is the last thing it sent.
    let sent = frames(&pair.server.take_output());
    let last = sent.last().expect("a close frame");
    assert_eq!(last.close_code(), code);
    assert_eq!(&last.payload[2..], reason.as_bytes());

    // The client learns the code.
    pair.deliver_to_client(&pair.server.wire.clone());
    assert_eq!(
        pair.client.events.last(),
        Some(&closed(code, &reason, ClosedBy::Peer))
    );
}

#[test]
fn an_unmasked_client_frame_fails_with_1002() {
    server_fails(
        b"\x81\x02hi",
        1 << 20,
        ProtocolError::BadMasking { masked: false },
    );
}

#[test]
fn a_masked_server_frame_fails_the_client_with_1002() {
    let mut pair = Pair::new();
    pair.deliver_to_client(&client_frame(true, OpCode::Text, b"hi"));
    let error = ProtocolError::BadMasking { masked: true };
    assert_eq!(
        pair.client.events,
        [closed(1002, &error.to_string(), ClosedBy::Violation(error))]
    );
    pair.deliver_to_client(&server_frame(true, OpCode::Text, b"ok"));
    assert_eq!(pair.client.events.len(), 1);
    let sent = frames(&pair.client.take_output());
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].close_code(), 1002);
}

#[test]
fn invalid_utf8_fails_with_1007() {
    server_fails(
        &client_frame(true, OpCode::Text, b"ok\xff"),
        1 << 20,
        ProtocolError::InvalidUtf8,
    );
    // A message that ends in the middle of a code point.
    server_fails(
        &client_frame(true, OpCode::Text, b"ok\xe2\x9c"),
        1 << 20,
        ProtocolError::InvalidUtf8,
    );
}

#[test]
fn invalid_utf8_fails_on_the_fragment_that_carries_it() {
    let mut pair = Pair::echoing_server();
    pair.deliver_to_server(&client_frame(false, OpCode::Text, b"fine so far"));
    assert!(pair.server.events.is_empty());
    // The bad byte arrives; the message has not ended, and the connection fails already.
    pair.deliver_to_server(&client_frame(false, OpCode::Continuation, b" \xc3\x28"));
    assert_eq!(
        pair.server.events,
        [closed(
            1007,
            &ProtocolError::InvalidUtf8.to_string(),
            ClosedBy::Violation(ProtocolError::InvalidUtf8)
        )]
    );
    assert_eq!(pair.server.phase(), Phase::Closed);
    pair.deliver_to_server(&client_frame(true, OpCode::Continuation, b"end"));
    assert_eq!(pair.server.events.len(), 1);
    let sent = frames(&pair.server.take_output());
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].close_code(), 1007);
}

#[test]
fn invalid_utf8_fails_mid_frame() {
    // Even inside one frame, the bad byte fails the connection before the frame ends.
    let mut pair = Pair::echoing_server();
    let frame = client_frame(true, OpCode::Text, b"abc\xffdefghij");
    pair.deliver_to_server(&frame[..6 + 4]);
    assert_eq!(pair.server.phase(), Phase::Closed);
    assert_eq!(pair.server.events.len(), 1);
}

#[test]
fn a_message_over_the_limit_fails_with_1009() {
    // At the limit is fine.
    let mut server_config = config();
    server_config.max_message_size = 16;
    let mut pair = Pair::with_configs(&config(), &server_config);
    pair.server.reply = Some(echo());
    let mut exact = client_frame(false, OpCode::Binary, &[1; 10]);
    exact.extend(client_frame(true, OpCode::Continuation, &[2; 6]));
    pair.deliver_to_server(&exact);
    let mut expected = vec![1; 10];
    expected.extend_from_slice(&[2; 6]);
    assert_eq!(pair.server.events, [OwnedEvent::Binary(expected)]);

    // One byte over, in one frame or across fragments.
    server_fails(
        &client_frame(true, OpCode::Binary, &[0; 17]),
        16,
        ProtocolError::MessageTooBig(17),
    );
    let mut fragments = client_frame(false, OpCode::Text, b"0123456789");
    fragments.extend(client_frame(false, OpCode::Continuation, b"abcdefg"));
    server_fails(&fragments, 16, ProtocolError::MessageTooBig(17));
}

#[test]
fn a_frame_over_the_frame_limit_fails_with_1009() {
    let mut server_config = config();
    server_config.max_frame_size = 8;
    let mut pair = Pair::with_configs(&config(), &server_config);
    pair.deliver_to_server(&client_frame(true, OpCode::Binary, &[0; 9]));
    assert_eq!(
        pair.server.events,
        [closed(
            1009,
            &ProtocolError::FrameTooBig(9).to_string(),
            ClosedBy::Violation(ProtocolError::FrameTooBig(9))
        )]
    );
}

#[test]
fn a_reserved_opcode_fails_with_1002() {
    let mut frame = client_frame(true, OpCode::Binary, b"x");
    frame[0] = 0x80 | 0x3;
    server_fails(&frame, 1 << 20, ProtocolError::ReservedOpcode(3));
    frame[0] = 0x80 | 0xB;
    server_fails(&frame, 1 << 20, ProtocolError::ReservedOpcode(0xB));
}

#[test]
fn a_close_with_a_one_byte_body_fails_with_1002() {
    server_fails(
        &client_frame(true, OpCode::Close, &[0x03]),
        1 << 20,
        ProtocolError::CloseBodyTooShort,
    );
}

#[test]
fn messages_before_a_violation_are_delivered() {
    let mut pair = Pair::echoing_server();
    let mut stream = client_frame(true, OpCode::Text, b"first");
    stream.extend_from_slice(b"\x81\x02hi"); // unmasked
    pair.deliver_to_server(&stream);
    let error = ProtocolError::BadMasking { masked: false };
    assert_eq!(
        pair.server.events,
        [
            text("first"),
            closed(1002, &error.to_string(), ClosedBy::Violation(error))
        ]
    );
    assert_eq!(opcodes_sent(&mut pair.server), [0x1, 0x8]);
}

// 7. Keepalive.

#[test]
fn keepalive_pings_after_silence_and_a_pong_resets_the_idle_timer() {
    let mut server_config = config();
    server_config.ping_interval = Some(Duration::from_secs(10));
    server_config.idle_timeout = Some(Duration::from_secs(30));
    let mut pair = Pair::with_configs(&config(), &server_config);
    let t0 = pair.now();
    let secs = Duration::from_secs;

    assert_eq!(pair.client.endpoint.poll_timeout(), None, "no timers");
    assert_eq!(
        pair.server.endpoint.poll_timeout(),
        Some((t0 + secs(10), Timer::KeepAlive))
    );

    // Not due yet: nothing happens.
    pair.advance(secs(9));
    pair.server.handle_timeout(pair.now());
    assert_eq!(pair.server.endpoint.buffered(), 0);

    // Due: a ping goes out, and the next deadline is the idle one.
    pair.advance(secs(1));
    pair.server.handle_timeout(pair.now());
    let ping = frames(&pair.server.take_output());
    assert_eq!(ping.len(), 1);
    assert_eq!((ping[0].opcode, ping[0].payload.len()), (0x9, 0));
    assert_eq!(
        pair.server.endpoint.poll_timeout(),
        Some((t0 + secs(30), Timer::Idle))
    );
    // Firing again does not send another ping.
    pair.server.handle_timeout(pair.now());
    assert_eq!(pair.server.endpoint.buffered(), 0);

    // The ping arrives at t=15; the client answers by itself; the pong resets the timers.
    pair.advance(secs(5));
    pair.deliver_to_client(&frames_bytes(&ping));
    assert_eq!(pair.client.events, [OwnedEvent::Ping(Vec::new())]);
    pair.drive();
    assert_eq!(pair.server.events, [OwnedEvent::Pong(Vec::new())]);
    let t15 = t0 + secs(15);
    assert_eq!(
        pair.server.endpoint.poll_timeout(),
        Some((t15 + secs(10), Timer::KeepAlive))
    );
    assert_eq!(pair.server.phase(), Phase::Open);

    pair.advance(secs(10));
    pair.server.handle_timeout(pair.now()); // t=25: a second ping
    assert_eq!(
        pair.server.endpoint.poll_timeout(),
        Some((t15 + secs(30), Timer::Idle))
    );
    pair.drive(); // answered at t=25
    assert_eq!(
        pair.server.endpoint.poll_timeout(),
        Some((t0 + secs(35), Timer::KeepAlive))
    );
    // At t=44, well past the first idle deadline (t=30), the connection is still open.
    pair.advance(secs(19));
    pair.server.handle_timeout(pair.now());
    assert_eq!(pair.server.phase(), Phase::Open);
    assert_eq!(
        pair.server.events,
        [OwnedEvent::Pong(Vec::new()), OwnedEvent::Pong(Vec::new())]
    );
}

/// Frames back to bytes (unmasked, as a server sends them).
fn frames_bytes(frames: &[WireFrame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        assert!(f.mask.is_none());
        let opcode = OpCode::from_bits(f.opcode).unwrap();
        out.extend(server_frame(f.fin, opcode, &f.payload));
    }
    out
}

#[test]
fn a_silent_peer_is_closed_with_1001_at_the_idle_timeout() {
    let mut server_config = config();
    server_config.ping_interval = Some(Duration::from_secs(10));
    server_config.idle_timeout = Some(Duration::from_secs(30));
    let mut pair = Pair::with_configs(&config(), &server_config);
    let t0 = pair.now();
    let secs = Duration::from_secs;

    pair.advance(secs(10));
    pair.server.handle_timeout(pair.now());
    // The ping reaches the client, but its pong never reaches the server.
    let ping = pair.server.take_output();
    pair.deliver_to_client(&ping);
    let lost_pong = pair.client.take_output();
    assert!(!lost_pong.is_empty());
    assert_eq!(
        pair.server.endpoint.poll_timeout(),
        Some((t0 + secs(30), Timer::Idle))
    );

    pair.advance(secs(19)); // t=29
    pair.server.handle_timeout(pair.now());
    assert_eq!(pair.server.phase(), Phase::Open);
    assert!(pair.server.events.is_empty());

    pair.advance(secs(1)); // t=30
    pair.server.handle_timeout(pair.now());
    assert_eq!(
        pair.server.events,
        [closed(1001, "idle timeout", ClosedBy::Local)]
    );
    assert_eq!(pair.server.phase(), Phase::Closed);
    assert_eq!(pair.server.endpoint.poll_timeout(), None);
    let close = frames(&pair.server.take_output());
    assert_eq!(close.len(), 1);
    assert_eq!(close[0].payload, close_payload(1001, "idle timeout"));

    // The late pong, and the client's answer to the close, change nothing.
    pair.deliver_to_server(&lost_pong);
    pair.deliver_to_client(&frames_bytes(&close));
    pair.drive();
    assert_eq!(pair.server.events.len(), 1);
    assert_eq!(
        pair.client.events,
        [
            OwnedEvent::Ping(Vec::new()),
            closed(1001, "idle timeout", ClosedBy::Peer)
        ]
    );
    pair.advance(secs(100));
    pair.server.handle_timeout(pair.now());
    assert_eq!(pair.server.events.len(), 1);
    assert_eq!(pair.server.take_output(), b"");
}

#[test]
fn any_traffic_postpones_the_keepalive_ping() {
    let mut server_config = config();
    server_config.ping_interval = Some(Duration::from_secs(10));
    server_config.idle_timeout = Some(Duration::from_secs(30));
    let mut pair = Pair::with_configs(&config(), &server_config);
    pair.server.reply = Some(echo());
    let t0 = pair.now();
    for step in 1..=5u32 {
        pair.advance(Duration::from_secs(8));
        pair.server.handle_timeout(pair.now());
        pair.client.send(Message::Text("tick"));
        pair.drive();
        assert_eq!(
            pair.server.endpoint.poll_timeout(),
            Some((
                t0 + Duration::from_secs(8 * u64::from(step) + 10),
                Timer::KeepAlive
            ))
        );
    }
    assert!(pair.server.wire_frames().iter().all(|f| f.opcode == 0x1));
    assert_eq!(pair.server.events.len(), 5);
}

// 8. Dropping the connection.

#[test]
fn drop_connection_reports_1006_once_and_stops_sending() {
    let mut pair = Pair::echoing_server();
    pair.server.drop_connection(1006, "connection reset");
    assert_eq!(
        pair.server.events,
        [closed(1006, "connection reset", ClosedBy::Dropped)]
    );
    assert_eq!(pair.server.phase(), Phase::Closed);
    assert!(!pair.server.send(Message::Text("too late")));
    assert!(!pair.server.endpoint.outbound().ping(b""));
    assert!(!pair.server.endpoint.outbound().is_open());
    assert_eq!(pair.server.endpoint.buffered(), 0, "no close frame either");

    // Nothing reports it again: a second drop, a close, timers, incoming bytes.
    pair.server.drop_connection(1006, "again");
    pair.server.close(1000, "bye");
    pair.server
        .handle_timeout(pair.now() + Duration::from_secs(3600));
    pair.deliver_to_server(&client_frame(true, OpCode::Text, b"hello"));
    pair.deliver_to_server(&client_frame(true, OpCode::Close, &close_payload(1000, "")));
    assert_eq!(pair.server.events.len(), 1);
    assert_eq!(pair.server.take_output(), b"");
}

#[test]
fn drop_connection_after_a_close_reports_nothing() {
    let mut pair = Pair::new();
    pair.client.close(1000, "");
    pair.client.drop_connection(1006, "lost"); // while CloseSent
    assert_eq!(pair.client.events, [closed(1000, "", ClosedBy::Local)]);
    assert_eq!(pair.client.phase(), Phase::Closed);
}

// 9. A close requested by a handler.

/// A server that echoes, but closes when it reads "quit".
fn quitting_server() -> Pair {
    let mut pair = Pair::new();
    pair.server.reply = Some(Box::new(|out, event| match event {
        OwnedEvent::Text(text) if text == "quit" => {
            assert!(out.close(CloseCode(4001), "asked to"));
        }
        OwnedEvent::Text(text) => {
            out.send(Message::Text(text));
        }
        _ => {}
    }));
    pair
}

#[test]
fn a_close_from_a_handler_is_reported_right_after_its_event() {
    for fragmented in [false, true] {
        let mut pair = quitting_server();
        let mut stream = client_frame(true, OpCode::Text, b"a");
        if fragmented {
            stream.extend(client_frame(false, OpCode::Text, b"qu"));
            stream.extend(client_frame(true, OpCode::Continuation, b"it"));
        } else {
            stream.extend(client_frame(true, OpCode::Text, b"quit"));
        }
        stream.extend(client_frame(true, OpCode::Text, b"b"));
        stream.extend(client_frame(true, OpCode::Ping, b"p"));
        pair.deliver_to_server(&stream);

        assert_eq!(
            pair.server.events,
            [
                text("a"),
                text("quit"),
                closed(4001, "asked to", ClosedBy::Local)
            ],
            "fragmented: {fragmented}"
        );
        assert_eq!(pair.server.phase(), Phase::CloseSent);
        // The echo of "a", then the close: no echo of "b", no pong.
        let sent: Vec<_> = frames(&pair.server.take_output())
            .into_iter()
            .map(|f| (f.opcode, f.payload))
            .collect();
        assert_eq!(
            sent,
            [(0x1, b"a".to_vec()), (0x8, close_payload(4001, "asked to"))]
        );
        pair.deliver_to_client(&pair.server.wire.clone());

        // Later data from the client is not delivered either; its close ends the handshake.
        pair.client.send(Message::Text("c"));
        pair.drive();
        assert_eq!(pair.server.events.len(), 3);
        assert_eq!(pair.server.phase(), Phase::Closed);
        assert_eq!(
            pair.client.events,
            [text("a"), closed(4001, "asked to", ClosedBy::Peer)]
        );
    }
}

#[test]
fn a_close_from_a_ping_handler_follows_the_pong() {
    let mut pair = Pair::new();
    pair.server.reply = Some(Box::new(|out, event| {
        if let OwnedEvent::Ping(_) = event {
            out.close(CloseCode::NORMAL, "pinged");
        }
    }));
    let mut stream = client_frame(true, OpCode::Ping, b"1");
    stream.extend(client_frame(true, OpCode::Text, b"unseen"));
    pair.deliver_to_server(&stream);
    assert_eq!(
        pair.server.events,
        [
            OwnedEvent::Ping(b"1".to_vec()),
            closed(1000, "pinged", ClosedBy::Local)
        ]
    );
    assert_eq!(opcodes_sent(&mut pair.server), [0xA, 0x8]);
}

// The other ways in.

#[test]
fn receive_one_stops_after_the_first_message() {
    let now = Instant::now();
    let mut server = Side::new(Role::Server, &config(), now);
    let first = client_frame(true, OpCode::Ping, b"p");
    let mut stream = first.clone();
    let message = client_frame(true, OpCode::Text, b"one");
    stream.extend_from_slice(&message);
    stream.extend(client_frame(true, OpCode::Text, b"two"));
    let mut input = stream.clone();
    let used = {
        let mut on_event = handler(&mut server.events, &mut server.reply);
        server.endpoint.receive_one(&mut input, now, &mut on_event)
    };
    assert_eq!(used, first.len() + message.len());
    assert_eq!(
        server.events,
        [OwnedEvent::Ping(b"p".to_vec()), text("one")]
    );
    let mut rest = stream[used..].to_vec();
    let used_again = {
        let mut on_event = handler(&mut server.events, &mut server.reply);
        server.endpoint.receive_one(&mut rest, now, &mut on_event)
    };
    assert_eq!(used_again, rest.len());
    assert_eq!(
        server.events,
        [OwnedEvent::Ping(b"p".to_vec()), text("one"), text("two")]
    );
}

#[test]
fn a_large_message_read_in_place_equals_one_received() {
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut stream = client_frame(false, OpCode::Binary, &payload[..100_000]);
    stream.extend(client_frame(
        true,
        OpCode::Continuation,
        &payload[100_000..],
    ));
    stream.extend(client_frame(true, OpCode::Text, b"after"));

    let now = Instant::now();
    let mut server = Side::new(Role::Server, &config(), now);
    let mut pos = 0;
    let mut in_place = 0;
    while pos < stream.len() {
        let rest = &stream[pos..];
        let mut on_event = handler(&mut server.events, &mut server.reply);
        let read = server.endpoint.receive_in_place(
            |room: &mut [u8]| {
                let n = room.len().min(rest.len());
                room[..n].copy_from_slice(&rest[..n]);
                Ok::<usize, ()>(n)
            },
            now,
            &mut on_event,
        );
        match read {
            Some((Ok(n), offered)) => {
                assert!(n <= offered);
                pos += n;
                in_place += n;
            }
            Some((Err(()), _)) => unreachable!(),
            None => {
                let n = rest.len().min(1000);
                let mut piece = rest[..n].to_vec();
                server.endpoint.receive(&mut piece, now, &mut on_event);
                pos += n;
            }
        }
    }
    assert!(
        in_place > 100_000,
        "most of it was read in place: {in_place}"
    );
    assert_eq!(server.events, [OwnedEvent::Binary(payload), text("after")]);
}

#[test]
fn a_violation_after_our_close_is_not_reported_again() {
    let mut pair = Pair::new();
    pair.server.close(1000, "done");
    pair.server.take_output();
    pair.deliver_to_server(&client_frame(true, OpCode::Text, b"\xff"));
    assert_eq!(pair.server.events, [closed(1000, "done", ClosedBy::Local)]);
    assert_eq!(pair.server.phase(), Phase::Closed);
    assert_eq!(pair.server.take_output(), b"", "one close frame only");
}

#[test]
fn other_violations_fail_with_their_codes() {
    let mut rsv1 = client_frame(true, OpCode::Text, b"x");
    rsv1[0] |= 0x40;
    let mut long_ping = client_frame(true, OpCode::Ping, &[0; 125]);
    long_ping[1] = 0x80 | 126;
    let mut nested = client_frame(false, OpCode::Text, b"a");
    nested.extend(client_frame(true, OpCode::Text, b"b"));
    let cases = [
        (rsv1, ProtocolError::ReservedBits(4)),
        (long_ping, ProtocolError::ControlTooLong(126)),
        (
            client_frame(false, OpCode::Ping, b""),
            ProtocolError::FragmentedControl,
        ),
        (
            client_frame(true, OpCode::Continuation, b"x"),
            ProtocolError::UnexpectedContinuation,
        ),
        (nested, ProtocolError::ExpectedContinuation),
        // 1005 may not appear on the wire.
        (
            client_frame(true, OpCode::Close, &close_payload(1005, "")),
            ProtocolError::InvalidCloseCode(1005),
        ),
        (
            client_frame(true, OpCode::Close, b"\x03\xe8\xff"),
            ProtocolError::InvalidUtf8,
        ),
    ];
    for (bytes, error) in cases {
        server_fails(&bytes, 1 << 20, error);
    }
}

//! The connection state machine driven in memory with simulated time: no sockets, no sleeps.

use std::time::{Duration, Instant};

use super::*;
use crate::app::{Backpressure, Route, Router};
use crate::buffer_pool::spare_bytes;
use crate::protocol::frame::{encode_frame, OpCode};

const REQUEST: &str = "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// The high watermark of a connection without a route, as the event loop has it.
const DEFAULT_HIGH_WATERMARK: usize = 1 << 20;

fn config() -> Config {
    Config {
        ping_interval: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        ..Config::default()
    }
}

/// What the event loop's dispatch does for a server with one echo route: requests go through
/// a real [`Router`] (404 for other paths), every message comes back as
/// [`Context::echo`](crate::Context::echo) sends it (a gathered message shared, a borrowed one
/// copied), and every close is recorded.
/// The route's handler: only its `on_upgrade` (the default, accept) is ever called here, since
/// [`TestEvents`] answers messages itself.
struct Accepting;

impl crate::Handler for Accepting {
    fn on_message(&mut self, _ctx: &mut crate::Context<'_>, _message: Message<'_>) {
        unreachable!("TestEvents answers messages itself")
    }
}

struct TestEvents {
    router: Router,
    opened: usize,
    closes: Vec<(CloseCode, String)>,
}

impl TestEvents {
    fn new(config: &Config) -> TestEvents {
        TestEvents {
            router: Router {
                routes: vec![Route {
                    path: "/echo".into(),
                    handler: Box::new(Accepting),
                    backpressure: Backpressure::new(config.max_buffered),
                    compression: config.compression,
                }],
                allowed_origins: Vec::new(),
                index_page: None,
                http_routes: Vec::new(),
            },
            opened: 0,
            closes: Vec::new(),
        }
    }
}

impl ConnectionEvents for TestEvents {
    fn on_request(&mut self, _id: ConnectionId, request: &mut Request, upgrade: bool) -> Answer {
        if request.path().starts_with("/api/") {
            let length = request
                .header("Content-Length")
                .map_or(0, |n| n.parse().unwrap());
            return Answer::ReadBody { length };
        }
        self.router.answer(request, upgrade, |_| Ok(()))
    }

    /// An HTTP route that answers with the body it got.
    fn on_http(
        &mut self,
        _id: ConnectionId,
        _request: &Request,
        body: &[u8],
        keep_alive: bool,
    ) -> Vec<u8> {
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let mut reply = format!(
            "HTTP/1.1 200 OK\r\nConnection: {connection}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        reply.extend_from_slice(body);
        reply
    }

    fn on_refused(&mut self, _status: u16) {}

    fn on_open(&mut self, _id: ConnectionId, _route: RouteId, _open: Open<'_>) {
        self.opened += 1;
    }

    fn on_drain(&mut self, _id: ConnectionId, _route: RouteId, _open: Open<'_>) {}

    fn on_message(
        &mut self,
        _id: ConnectionId,
        _route: RouteId,
        open: Open<'_>,
        message: Message<'_>,
        gathered: Option<&Arc<Vec<u8>>>,
    ) {
        let out = open.out;
        if let Some(payload) = gathered {
            out.send_shared(message.opcode(), payload);
        } else {
            out.send(message);
        }
    }

    fn on_close(&mut self, _id: ConnectionId, _route: RouteId, _open: Open<'_>, close: Closed<'_>) {
        self.closes.push((close.code, close.reason.to_string()));
    }
}

struct Harness {
    conn: Connection,
    config: ConnectionConfig,
    events: TestEvents,
    t0: Instant,
}

impl Harness {
    fn new() -> Harness {
        let config = config();
        let t0 = Instant::now();
        let id = ConnectionId(1 << 32);
        let events = TestEvents::new(&config);
        let config = ConnectionConfig::new(&config);
        let conn = Connection::new(id, "127.0.0.1:1".parse().unwrap(), t0, &config);
        Harness {
            conn,
            config,
            events,
            t0,
        }
    }

    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }

    fn feed(&mut self, bytes: &[u8], secs: u64) {
        let now = self.at(secs);
        self.conn
            .receive(&mut bytes.to_vec(), now, &self.config, &mut self.events);
    }

    fn tick(&mut self, secs: u64) {
        let now = self.at(secs);
        self.conn.on_timeout(now, &self.config, &mut self.events);
    }

    fn eof(&mut self, secs: u64) {
        let now = self.at(secs);
        self.conn.on_eof(now, &self.config, &mut self.events);
    }

    /// Whether the event loop would read from the connection: its route's high watermark.
    fn wants_read(&self) -> bool {
        let high_watermark = self
            .events
            .router
            .backpressure(self.conn.route())
            .map_or(DEFAULT_HIGH_WATERMARK, |policy| policy.high_watermark);
        self.conn.wants_read(high_watermark)
    }

    /// Everything the event loop would write to the peer now: the queue, if the connection
    /// still has one.
    fn sent(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(queue) = self.conn.queue() {
            queue.write_to(&mut out).unwrap();
        }
        out
    }

    fn open(&mut self) {
        self.feed(REQUEST.as_bytes(), 0);
        let reply = self.sent();
        assert!(reply.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
        assert_eq!(self.events.opened, 1);
    }

    /// The closes reported to the application so far.
    fn closes(&self) -> Vec<(u16, &str)> {
        let closes = self.events.closes.iter();
        closes
            .map(|(code, reason)| (code.0, reason.as_str()))
            .collect()
    }
}

fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, false, opcode, payload, Some([1, 2, 3, 4]));
    out
}

fn server_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, false, opcode, payload, None);
    out
}

#[test]
fn handshake_split_anywhere_opens_and_keeps_trailing_frames() {
    let mut stream = REQUEST.as_bytes().to_vec();
    stream.extend(client_frame(OpCode::Text, b"hi"));
    for split in [1, 2, 7, 64, stream.len()] {
        let mut h = Harness::new();
        for piece in stream.chunks(split) {
            h.feed(piece, 0);
        }
        assert!(matches!(h.conn.state, State::Open { .. }), "split {split}");
        assert_eq!(h.events.opened, 1, "split {split}");
        let sent = h.sent();
        assert!(
            sent.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"),
            "split {split}"
        );
        assert!(
            sent.ends_with(&server_frame(OpCode::Text, b"hi")),
            "split {split}"
        );
    }
}

#[test]
fn an_upgrade_to_an_unknown_path_gets_404_then_closes() {
    let mut h = Harness::new();
    h.feed(REQUEST.replace("/echo", "/nowhere").as_bytes(), 0);
    assert!(h.sent().starts_with(b"HTTP/1.1 404 "));
    assert_eq!(h.events.opened, 0);
    assert!(h.conn.wants_write_shutdown());
    h.tick(5);
    assert!(h.conn.is_closed());
}

#[test]
fn slow_handshake_gets_408_then_closes() {
    let mut h = Harness::new();
    h.feed(b"GET /echo HTTP/1.1\r\n", 1);
    assert_eq!(h.conn.next_deadline().map(Stamp::instant), Some(h.at(10)));
    h.tick(9);
    assert!(matches!(h.conn.state, State::Handshaking { .. }));
    h.tick(10);
    assert!(h.sent().starts_with(b"HTTP/1.1 408 "));
    assert!(h.conn.wants_write_shutdown());
    h.tick(15);
    assert!(h.conn.is_closed());
}

#[test]
fn quiet_connection_is_pinged_then_closed_1001() {
    let mut h = Harness::new();
    h.open();
    assert_eq!(h.conn.next_deadline().map(Stamp::instant), Some(h.at(30)));
    h.tick(30);
    assert_eq!(h.sent(), server_frame(OpCode::Ping, b""));
    assert_eq!(h.conn.next_deadline().map(Stamp::instant), Some(h.at(60)));
    h.tick(60);
    let mut close = vec![0x03, 0xE9];
    close.extend_from_slice(b"idle timeout");
    assert_eq!(h.sent(), server_frame(OpCode::Close, &close));
    assert!(h.conn.wants_write_shutdown());
    assert_eq!(h.closes(), [(1001, "idle timeout")]);
}

#[test]
fn a_pong_keeps_the_connection_alive() {
    let mut h = Harness::new();
    h.open();
    h.tick(30);
    h.sent();
    h.feed(&client_frame(OpCode::Pong, b""), 31);
    h.tick(60);
    assert!(matches!(h.conn.state, State::Open { .. }));
    assert_eq!(h.conn.next_deadline().map(Stamp::instant), Some(h.at(61)));
    assert!(h.closes().is_empty());
}

#[test]
fn peer_close_is_echoed_and_the_server_closes_first() {
    let mut h = Harness::new();
    h.open();
    h.feed(
        &client_frame(OpCode::Close, &[0x03, 0xE8, b'b', b'y', b'e']),
        1,
    );
    assert_eq!(h.sent(), server_frame(OpCode::Close, &[0x03, 0xE8]));
    assert!(h.conn.wants_write_shutdown());
    assert_eq!(h.closes(), [(1000, "bye")]);
    // Anything after the close is ignored: no echo, no pong.
    h.feed(&client_frame(OpCode::Ping, b"late"), 2);
    assert!(h.sent().is_empty());
    h.eof(1);
    assert!(h.conn.is_closed());
    assert_eq!(h.closes().len(), 1, "the close is reported once");
}

#[test]
fn protocol_error_closes_1002_and_ignores_the_rest() {
    let mut h = Harness::new();
    h.open();
    let mut bytes = server_frame(OpCode::Text, b"unmasked");
    bytes.extend(client_frame(OpCode::Text, b"after"));
    h.feed(&bytes, 1);
    let sent = h.sent();
    assert_eq!(&sent[..4], &[0x88, 25, 0x03, 0xEA]);
    assert_eq!(sent.len(), 2 + 25, "nothing after the close frame");
    assert!(h.conn.wants_write_shutdown());
    let reason = std::str::from_utf8(&sent[4..]).unwrap();
    assert_eq!(h.closes(), [(1002, reason)]);
    h.tick(6);
    assert!(h.conn.is_closed(), "dropped after the close timeout");
}

#[test]
fn shutdown_sends_1001_and_waits_for_the_peer_close() {
    let mut h = Harness::new();
    h.open();
    let close = (CloseCode::GOING_AWAY, "server shutting down");
    h.conn.on_shutdown(h.at(1), &h.config, close, &mut h.events);
    assert_eq!(&h.sent()[..4], &[0x88, 22, 0x03, 0xE9]);
    assert_eq!(h.closes(), [(1001, "server shutting down")]);
    assert!(!h.conn.wants_write_shutdown(), "waits for the peer's close");
    h.feed(&client_frame(OpCode::Text, b"in flight"), 2);
    assert!(h.sent().is_empty(), "no data after the server's close");
    h.feed(&client_frame(OpCode::Close, &[0x03, 0xE9]), 2);
    assert!(h.conn.wants_write_shutdown());
    assert_eq!(h.closes().len(), 1, "the close is reported once");
}

#[test]
fn backpressure_stops_reading_until_the_peer_catches_up() {
    let mut h = Harness::new();
    h.open();
    let big = vec![7u8; 600 * 1024];
    h.feed(&client_frame(OpCode::Binary, &big), 1);
    assert!(h.wants_read());
    h.feed(&client_frame(OpCode::Binary, &big), 1);
    assert!(!h.wants_read(), "1.2 MiB unread by the peer");
    h.sent();
    assert!(h.wants_read());
}

#[test]
fn a_half_received_message_is_let_go_when_the_idle_timeout_closes() {
    let mut h = Harness::new();
    h.open();
    // Half of a 1 MiB frame, then silence.
    let frame = client_frame(OpCode::Binary, &vec![7u8; 1 << 20]);
    let half = frame.len() / 2;
    let header_len = frame.len() - (1 << 20);
    h.feed(&frame[..half], 1);
    // The message's buffer comes from, and goes back to, the thread's spare pool.
    let spare = spare_bytes();
    h.conn.end_of_batch();
    assert_eq!(
        spare_bytes(),
        spare,
        "a message in progress keeps its buffer across batches"
    );
    h.tick(31); // ping
    h.tick(61); // idle timeout: close 1001, draining
    assert!(
        matches!(&h.conn.state, State::Closing { ws, .. } if !ws.reads_frames()),
        "nothing more is read after the idle close"
    );
    assert_eq!(h.closes(), [(1001, "idle timeout")]);
    h.sent(); // The ping's and close's queue chunk goes back to the pool too.
    assert!(
        spare_bytes() >= spare + (half - header_len),
        "the half message is held until the close timeout"
    );
}

#[test]
fn eof_while_open_reports_1006_once() {
    let mut h = Harness::new();
    h.open();
    h.eof(1);
    assert!(h.conn.is_closed());
    assert_eq!(h.closes(), [(1006, "connection dropped")]);
    h.eof(1);
    assert_eq!(h.closes().len(), 1);
}

#[test]
fn replies_queued_before_the_peers_eof_still_go_out() {
    // A client that sends its request and a message, then shuts down its write side: the
    // loop reads all of it, and the end of stream, before it next writes.
    let mut h = Harness::new();
    let mut stream = REQUEST.as_bytes().to_vec();
    stream.extend(client_frame(OpCode::Text, b"hi"));
    h.feed(&stream, 0);
    h.eof(1);
    assert_eq!(h.closes(), [(1006, "connection dropped")]);
    let sent = h.sent();
    assert!(
        sent.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"),
        "the 101 is written: {:?}",
        String::from_utf8_lossy(&sent)
    );
    assert!(
        sent.ends_with(&server_frame(OpCode::Text, b"hi")),
        "the echo is written"
    );
    h.conn.after_flush();
    assert!(h.conn.is_closed(), "closed once the replies are out");
}

/// A request to the test's HTTP route (which answers with the body) with `body`.
fn api_request(body: &str, extra: &str) -> String {
    format!(
        "POST /api/x HTTP/1.1\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
}

fn api_reply(body: &str, connection: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nConnection: {connection}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn pipelined_http_requests_split_anywhere_are_answered_in_order_on_one_connection() {
    let bodies = ["first", "", "{\"third\":3}"];
    let stream: String = bodies.iter().map(|b| api_request(b, "")).collect();
    let expected: String = bodies.iter().map(|b| api_reply(b, "keep-alive")).collect();
    for split in [1, 2, 5, 17, stream.len()] {
        let mut h = Harness::new();
        let mut sent = Vec::new();
        for piece in stream.as_bytes().chunks(split) {
            h.feed(piece, 0);
            sent.extend(h.sent());
        }
        assert_eq!(String::from_utf8(sent).unwrap(), expected, "split {split}");
        assert!(matches!(h.conn.state, State::Http(_)), "split {split}");
        assert!(!h.conn.wants_write_shutdown());
    }
}

#[test]
fn a_body_slower_than_the_handshake_timeout_gets_408_and_an_idle_connection_closes_quietly() {
    let mut h = Harness::new();
    h.feed(b"POST /api/x HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", 1);
    assert_eq!(h.conn.next_deadline().map(Stamp::instant), Some(h.at(11)));
    h.tick(10);
    assert!(h.sent().is_empty());
    h.tick(11);
    assert!(h.sent().starts_with(b"HTTP/1.1 408 "));
    assert!(h.conn.wants_write_shutdown());

    // Answered, then nothing more: closed at the deadline without a reply.
    let mut h = Harness::new();
    h.feed(api_request("hi", "").as_bytes(), 1);
    assert_eq!(h.sent(), api_reply("hi", "keep-alive").as_bytes());
    h.tick(3);
    h.feed(api_request("again", "").as_bytes(), 3);
    assert_eq!(h.sent(), api_reply("again", "keep-alive").as_bytes());
    assert_eq!(h.conn.next_deadline().map(Stamp::instant), Some(h.at(13)));
    h.tick(13);
    assert!(h.sent().is_empty());
    assert!(h.conn.wants_write_shutdown());
}

#[test]
fn connection_close_is_honoured_and_what_follows_is_not_read() {
    let mut h = Harness::new();
    let mut stream = api_request("bye", "Connection: close\r\n");
    stream += &api_request("never", "");
    h.feed(stream.as_bytes(), 0);
    assert_eq!(h.sent(), api_reply("bye", "close").as_bytes());
    assert!(h.conn.wants_write_shutdown());
}

#[test]
fn an_upgrade_after_an_http_request_on_the_same_connection_opens_after_its_reply() {
    let mut h = Harness::new();
    let stream = api_request("one", "") + REQUEST;
    h.feed(stream.as_bytes(), 0);
    let sent = String::from_utf8(h.sent()).unwrap();
    let (reply, upgrade) = sent.split_at(api_reply("one", "keep-alive").len());
    assert_eq!(reply, api_reply("one", "keep-alive"));
    assert!(upgrade.starts_with("HTTP/1.1 101 "), "{upgrade}");
    assert!(matches!(h.conn.state, State::Open { .. }));
}

//! The connection state machine driven in memory with simulated time: no sockets, no sleeps.

use std::time::{Duration, Instant};

use super::*;
use crate::apps::Echo;
use crate::protocol::frame::{encode_frame, OpCode};
use crate::server::app::Route;

const REQUEST: &str = "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

fn app() -> App {
    let config = Config {
        ping_interval: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        ..Config::default()
    };
    App {
        config,
        routes: vec![Route {
            path: "/echo".into(),
            handler: Box::new(Echo),
        }],
        index_page: None,
    }
}

struct Harness {
    conn: Connection,
    app: App,
    outbox: Outbox,
    t0: Instant,
}

impl Harness {
    fn new() -> Harness {
        let app = app();
        let t0 = Instant::now();
        let id = ConnectionId(1 << 32);
        let conn = Connection::new(id, "127.0.0.1:1".parse().unwrap(), t0, &app.config);
        Harness {
            conn,
            app,
            outbox: Outbox::default(),
            t0,
        }
    }

    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }

    fn feed(&mut self, bytes: &[u8], secs: u64) {
        let now = self.at(secs);
        self.conn
            .receive(&mut bytes.to_vec(), now, &mut self.app, &mut self.outbox);
    }

    fn tick(&mut self, secs: u64) {
        let now = self.at(secs);
        self.conn.on_timeout(now, &mut self.app, &mut self.outbox);
    }

    /// Everything queued for the peer so far.
    fn sent(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        self.conn.outgoing().queue.write_to(&mut out).unwrap();
        out
    }

    fn open(&mut self) {
        self.feed(REQUEST.as_bytes(), 0);
        let reply = self.sent();
        assert!(reply.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    }
}

fn client_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, opcode, payload, Some([1, 2, 3, 4]));
    out
}

fn server_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, opcode, payload, None);
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
        assert!(matches!(h.conn.session.state, State::Open), "split {split}");
        let sent = h.sent();
        assert!(
            sent.ends_with(&server_frame(OpCode::Text, b"hi")),
            "split {split}"
        );
    }
}

#[test]
fn slow_handshake_gets_408_then_closes() {
    let mut h = Harness::new();
    h.feed(b"GET /echo HTTP/1.1\r\n", 1);
    assert_eq!(h.conn.next_deadline(&h.app.config), Some(h.at(10)));
    h.tick(9);
    assert!(matches!(h.conn.session.state, State::Handshaking { .. }));
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
    assert_eq!(h.conn.next_deadline(&h.app.config), Some(h.at(30)));
    h.tick(30);
    assert_eq!(h.sent(), server_frame(OpCode::Ping, b""));
    assert_eq!(h.conn.next_deadline(&h.app.config), Some(h.at(60)));
    h.tick(60);
    let mut close = vec![0x03, 0xE9];
    close.extend_from_slice(b"idle timeout");
    assert_eq!(h.sent(), server_frame(OpCode::Close, &close));
    assert!(h.conn.wants_write_shutdown());
}

#[test]
fn a_pong_keeps_the_connection_alive() {
    let mut h = Harness::new();
    h.open();
    h.tick(30);
    h.sent();
    h.feed(&client_frame(OpCode::Pong, b""), 31);
    h.tick(60);
    assert!(matches!(h.conn.session.state, State::Open));
    assert_eq!(h.conn.next_deadline(&h.app.config), Some(h.at(61)));
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
    // Anything after the close is ignored: no echo, no pong.
    h.feed(&client_frame(OpCode::Ping, b"late"), 2);
    assert!(h.sent().is_empty());
    h.conn.on_eof(&mut h.app, &mut h.outbox);
    assert!(h.conn.is_closed());
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
    assert!(h.conn.wants_write_shutdown());
    h.tick(6);
    assert!(h.conn.is_closed(), "dropped after the close timeout");
}

#[test]
fn shutdown_sends_1001_and_waits_for_the_peer_close() {
    let mut h = Harness::new();
    h.open();
    h.conn.on_shutdown(h.at(1), &mut h.app, &mut h.outbox);
    assert_eq!(&h.sent()[..4], &[0x88, 22, 0x03, 0xE9]);
    assert!(!h.conn.wants_write_shutdown(), "waits for the peer's close");
    h.feed(&client_frame(OpCode::Text, b"in flight"), 2);
    assert!(h.sent().is_empty(), "no data after the server's close");
    h.feed(&client_frame(OpCode::Close, &[0x03, 0xE9]), 2);
    assert!(h.conn.wants_write_shutdown());
}

#[test]
fn backpressure_stops_reading_until_the_peer_catches_up() {
    let mut h = Harness::new();
    h.open();
    let big = vec![7u8; 600 * 1024];
    h.feed(&client_frame(OpCode::Binary, &big), 1);
    assert!(h.conn.wants_read());
    h.feed(&client_frame(OpCode::Binary, &big), 1);
    assert!(!h.conn.wants_read(), "1.2 MiB unread by the peer");
    h.sent();
    assert!(h.conn.wants_read());
}

#[test]
fn a_half_received_message_is_let_go_when_the_idle_timeout_closes() {
    let mut h = Harness::new();
    h.open();
    // Half of a 1 MiB frame, then silence.
    let frame = client_frame(OpCode::Binary, &vec![7u8; 1 << 20]);
    h.feed(&frame[..frame.len() / 2], 1);
    h.conn.end_of_batch();
    assert!(h.conn.reader.is_some());
    h.tick(31); // ping
    h.tick(61); // idle timeout: close 1001, draining
    assert!(!h.conn.session.reads_frames());
    assert!(
        h.conn.reader.is_none(),
        "the half message is held until the close timeout"
    );
}

/// The read loop's mix of in-place and buffered reads, randomised.
#[path = "read_loop_tests.rs"]
mod read_loop;

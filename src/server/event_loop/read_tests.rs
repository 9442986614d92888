//! The loop's read path ([`read_batch`]) over a scripted socket, with the real dispatch, a
//! real route whose handler echoes with [`Context::echo`] (so large messages go out from the
//! read buffer), and random client streams: however the bytes arrive, whether reads are
//! interrupted, whether the socket takes a write whole or in part, and whichever bytes go
//! through the shared buffer or straight into a message buffer, the replies are those of one
//! read of the whole stream.

use std::io::{self, ErrorKind, Write};
use std::sync::Arc;
use std::time::Instant;

use super::dispatch::{App, Dispatch};
use super::read::{read_batch, BatchEnd, ReadUntil, Socket};
use crate::app::{Backpressure, Route, Router};
use crate::config::Config;
use crate::connection::{Connection, ConnectionConfig};
use crate::ids::ConnectionId;
use crate::protocol::frame::{encode_header, OpCode, MAX_HEADER_LEN};
use crate::protocol::mask::apply_mask;
use crate::protocol::write_queue::WriteQueue;
use crate::server::context::{Outbox, Services};
use crate::server::directory::Directory;
use crate::server::ShutdownHandle;
use crate::test_rng::Rng;
use crate::{Context, Handler, Message};

const REQUEST: &str = "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// The echo route's handler, as `apps::Echo` has it.
struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, ctx: &mut Context<'_>, _message: Message<'_>) {
        ctx.echo();
    }
}

fn app(config: &Config) -> App {
    App {
        router: Router {
            routes: vec![Route {
                path: "/echo".into(),
                handler: Box::new(Echo),
                backpressure: Backpressure::new(config.max_buffered),
                compression: config.compression,
            }],
            allowed_origins: Vec::new(),
            index_page: None,
            http_routes: Vec::new(),
        },
        services: Services {
            hub: Default::default(),
            outbox: Outbox::default(),
            directory: Arc::new(Directory::new()),
            history: None,
            presence: None,
            auth: None,
        },
        metrics: Default::default(),
        serve_metrics: false,
        board: None,
        cluster_dropped: None,
        stop: ShutdownHandle::new(Arc::new([])),
        gate: None,
        max_message_rate: None,
        publisher: crate::server::Publisher::new(Arc::new([]), None, None),
        max_http_body: config.max_http_body,
        http_separate: false,
    }
}

/// A stream a client might send after the upgrade request: text, binary, fragments and control
/// frames, many payloads large enough to be read in place, the odd corrupted byte.
fn random_client_stream(rng: &mut Rng) -> Vec<u8> {
    let mut stream = REQUEST.as_bytes().to_vec();
    for _ in 0..rng.below(10) + 1 {
        let opcode = match rng.below(8) {
            0 => OpCode::Ping,
            1 => OpCode::Continuation,
            2..=4 => OpCode::Text,
            _ => OpCode::Binary,
        };
        let len = match rng.below(8) {
            _ if opcode.is_control() => rng.below(126) as usize,
            0 => 65_535,
            1 => 65_536,
            2 => 70_000 + rng.below(200_000) as usize,
            3 => 2_000 + rng.below(20_000) as usize, // echoed from the read buffer
            _ => rng.below(130) as usize,
        };
        let payload = if rng.below(2) == 0 {
            "héllo wörld ✓ 𝄞".repeat(len / 10 + 1).into_bytes()[..len].to_vec()
        } else {
            rng.bytes(len)
        };
        let fin = opcode.is_control() || rng.below(3) != 0;
        let key = [rng.next() as u8, 7, 42, rng.next() as u8];
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut header, fin, false, opcode, len as u64, Some(key));
        stream.extend_from_slice(&header[..n]);
        let start = stream.len();
        stream.extend_from_slice(&payload);
        apply_mask(&mut stream[start..], key, 0);
        if rng.below(25) == 0 && len > 0 {
            let at = start + rng.below(len as u64) as usize;
            stream[at] ^= 0x80;
        }
    }
    stream
}

/// A socket that has `available` bytes of the stream to read (then `WouldBlock`, or the end),
/// may interrupt a read once, and takes at most `write_room` bytes of writes.
struct ScriptedSocket<'a> {
    stream: &'a [u8],
    pos: usize,
    available: usize,
    interrupt: bool,
    written: Vec<u8>,
    write_room: usize,
}

impl Socket for ScriptedSocket<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if std::mem::take(&mut self.interrupt) {
            return Err(ErrorKind::Interrupted.into());
        }
        if self.pos == self.stream.len() {
            return Ok(0);
        }
        if self.pos == self.available {
            return Err(ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.available - self.pos);
        buf[..n].copy_from_slice(&self.stream[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }

    fn short_read_drains(&self) -> bool {
        true
    }

    fn write_from(&mut self, queue: &mut WriteQueue, input: &[u8]) -> io::Result<usize> {
        let mut sink = Limited {
            out: &mut self.written,
            room: &mut self.write_room,
        };
        queue.write_from_input(&mut sink, input)
    }
}

/// Takes what fits in `room`, then would block.
struct Limited<'a> {
    out: &'a mut Vec<u8>,
    room: &'a mut usize,
}

impl Write for Limited<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(*self.room);
        if n == 0 && !buf.is_empty() {
            return Err(ErrorKind::WouldBlock.into());
        }
        self.out.extend_from_slice(&buf[..n]);
        *self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A fresh connection on the echo route, what its events go to, and the time.
fn fixture() -> (ConnectionConfig, App, Connection, Instant) {
    let config = Config::default();
    let conn_config = ConnectionConfig::new(&config);
    let now = Instant::now();
    let peer = "127.0.0.1:1".parse().unwrap();
    let conn = Connection::new(ConnectionId::new(1, 0, 0), peer, now, &conn_config);
    (conn_config, app(&config), conn, now)
}

/// The replies to `stream` given in one piece, then the end.
fn replies_to_one_read(stream: &[u8]) -> Vec<u8> {
    let (conn_config, mut app, mut conn, now) = fixture();
    let mut events = Dispatch::new(&mut app, conn.peer(), now);
    conn.receive(&mut stream.to_vec(), now, &conn_config, &mut events);
    conn.on_eof(now, &conn_config, &mut events);
    let mut replies = Vec::new();
    if let Some(queue) = conn.queue() {
        queue.write_to(&mut replies).unwrap();
    }
    replies
}

/// The replies when `read_batch` runs over `stream` turn after turn: at each readiness event
/// a random amount more is available, a read may be interrupted, the socket takes a random
/// part of what is written during the reads, and the turn's flush takes the rest.
fn replies_through_the_read_path(stream: &[u8], rng: &mut Rng) -> Vec<u8> {
    let (conn_config, mut app, mut conn, now) = fixture();
    let high_watermark = Backpressure::new(Config::default().max_buffered).high_watermark;
    let mut events = Dispatch::new(&mut app, conn.peer(), now);
    let mut read_buffer = vec![0u8; 64 * 1024];
    let mut socket = ScriptedSocket {
        stream,
        pos: 0,
        available: 0,
        interrupt: false,
        written: Vec::new(),
        write_room: 0,
    };
    for _ in 0..100_000 {
        if conn.is_closed() {
            return socket.written;
        }
        let more = socket.pos + 1 + rng.below(200_000) as usize;
        socket.available = socket.available.max(more).min(stream.len());
        socket.interrupt = rng.below(10) == 0;
        socket.write_room = [0, 100, 5_000, usize::MAX][rng.below(4) as usize];
        let until = [ReadUntil::ShortRead, ReadUntil::WouldBlock][rng.below(2) as usize];
        let end = read_batch(
            &mut conn,
            &mut socket,
            &mut read_buffer,
            until,
            high_watermark,
            now,
            &conn_config,
            &mut events,
        );
        assert!(
            end != BatchEnd::Done || conn.is_closed() || socket.pos == socket.available,
            "stopped with input left and no reason to come back: {end:?}"
        );
        conn.end_of_batch();
        if let Some(queue) = conn.queue() {
            queue.write_to(&mut socket.written).unwrap();
        }
        conn.after_flush();
    }
    panic!("the connection never closed");
}

#[test]
fn the_read_path_replies_as_if_the_stream_came_in_one_read() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for round in 0..150 {
        let stream = random_client_stream(&mut rng);
        let whole = replies_to_one_read(&stream);
        for attempt in 0..3 {
            let replies = replies_through_the_read_path(&stream, &mut rng);
            assert!(
                replies == whole,
                "round {round}, attempt {attempt}: {} bytes of replies, {} expected",
                replies.len(),
                whole.len()
            );
        }
    }
}

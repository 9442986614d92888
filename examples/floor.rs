//! The floor: the least an echo server on wsloop's loop shape can do per message, so the
//! benchmarks can say how far above it each real server runs (`scripts/bench.py`).
//!
//! One thread, one mio `Poll`, the connections in a `Slab`, like wsloop. Per readable event it
//! makes the syscalls a real server makes: one `read` into the connection's buffer (another
//! only if that one filled the buffer: a short read means the socket is drained), and one
//! `write` of every reply that read completed. Between the two it does only what echo cannot
//! skip: find each complete frame, unmask its payload in place and turn its header into the
//! server's (no mask bit, no key), so the reply is written from the bytes that were read.
//!
//! What it skips, and why that is the point of a floor: no validation (reserved bits, opcodes,
//! control frame sizes, fragment order, UTF-8 of text, the handshake's headers, path and
//! version: the 101 answers any request, with the accept key from Sec-WebSocket-Key), no
//! message reassembly (fragments are echoed frame by frame), no timers, no limits beyond the
//! largest frame it will buffer, no close handshake beyond echoing the close frame and hanging
//! up. Pings come back as pongs; nothing else is answered. Echo only: no `/broadcast`.
//!
//! Run: `cargo run --release --example floor -- --bind 127.0.0.1:9004`

use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::process::ExitCode;

use base64::Engine;
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Token};
use sha1::{Digest, Sha1};
use slab::Slab;

const DEFAULT_BIND: &str = "127.0.0.1:9004";
const LISTENER: Token = Token(usize::MAX);
/// Each connection's first read buffer; it grows to hold a larger frame whole.
const BUFFER: usize = 64 << 10;
/// The largest frame buffered (wsloop's default message limit); a longer one drops the
/// connection rather than allocate whatever a header says.
const MAX_FRAME: usize = 16 << 20;

fn main() -> ExitCode {
    let bind = match parse_args() {
        Ok(bind) => bind,
        Err(message) => {
            eprintln!("floor: {message}");
            eprintln!("usage: floor [--bind ADDR]   (default {DEFAULT_BIND})");
            return ExitCode::from(2);
        }
    };
    match serve(&bind) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--bind ADDR` (or `--bind=ADDR`) is the only flag, as for the peers in examples/.
fn parse_args() -> Result<String, String> {
    let mut bind = DEFAULT_BIND.to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => bind = args.next().ok_or("--bind needs an address")?,
            _ => match arg.strip_prefix("--bind=") {
                Some(addr) => bind = addr.to_string(),
                None => return Err(format!("unexpected argument '{arg}'")),
            },
        }
    }
    Ok(bind)
}

/// Binds, prints `listening on ws://ADDR` (the line tools read the port from) and runs the
/// loop until killed.
fn serve(bind: &str) -> io::Result<()> {
    let addr: SocketAddr = bind
        .parse()
        .map_err(|e| io::Error::new(ErrorKind::InvalidInput, format!("{bind}: {e}")))?;
    let mut listener = TcpListener::bind(addr)?;
    let mut poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut stdout = io::stdout();
    // A closed stdout must not stop the server.
    let _ = writeln!(stdout, "listening on ws://{}", listener.local_addr()?);
    let _ = stdout.flush();

    let mut conns = Slab::new();
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in &events {
            if event.token() == LISTENER {
                accept(&listener, poll.registry(), &mut conns);
                continue;
            }
            let key = event.token().0;
            let Some(conn) = conns.get_mut(key) else {
                continue; // already dropped this turn
            };
            // Any error drops the connection, as does the end of its input or its close.
            if !matches!(conn.ready(event, poll.registry()), Ok(true)) {
                conns.remove(key); // closing the socket takes it out of the poll set
            }
        }
    }
}

/// Accepts every pending connection (TCP_NODELAY, as the peers); errors such as EMFILE are
/// logged and the connections already open keep being served.
fn accept(listener: &TcpListener, registry: &Registry, conns: &mut Slab<Conn>) {
    loop {
        let (mut stream, _) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => {
                eprintln!("accept: {e}");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let entry = conns.vacant_entry();
        let token = Token(entry.key());
        if registry
            .register(&mut stream, token, Interest::READABLE)
            .is_ok()
        {
            entry.insert(Conn {
                buf: vec![0; BUFFER],
                filled: 0,
                unmasked: 0,
                open: false,
                closing: false,
                socket: Socket {
                    stream,
                    token,
                    out: Vec::new(),
                    sent: 0,
                },
            });
        }
    }
}

/// One connection: handshaking until `open`, then frames.
struct Conn {
    /// Input in `buf[..filled]`: complete frames are turned into replies here, and the partial
    /// frame at the end waits (moved to the front) for the rest.
    buf: Vec<u8>,
    filled: usize,
    /// How much of the partial frame's payload is unmasked already.
    unmasked: usize,
    open: bool,
    /// A close frame was echoed: hang up once it is written.
    closing: bool,
    socket: Socket,
}

impl Conn {
    /// Handles one readiness event; `Ok(false)` when the connection is done.
    fn ready(&mut self, event: &Event, registry: &Registry) -> io::Result<bool> {
        if self.socket.backlogged() {
            // Back-pressure: no reading while replies wait. Once they are written, read what
            // came meanwhile (edge-triggered: no new event would say so).
            if !event.is_writable() || !self.socket.flush(registry)? {
                return Ok(true);
            }
            if self.closing {
                return Ok(false);
            }
        }
        self.read(registry)
    }

    /// One read (another only if it filled the buffer), the replies, one write.
    fn read(&mut self, registry: &Registry) -> io::Result<bool> {
        loop {
            let n = match self.socket.stream.read(&mut self.buf[self.filled..]) {
                Ok(0) => return Ok(false),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.filled += n;
            let full = self.filled == self.buf.len();
            let mut at = 0;
            if !self.open {
                // An incomplete head is an error once it fills the buffer, so this read was
                // short: the socket is drained.
                let Some((head, answer)) = self.handshake()? else {
                    return Ok(true);
                };
                self.socket.send(&answer, registry)?;
                (at, self.open) = (head, true);
            }
            let (replies, end) = self.frames(at);
            self.socket.send(&self.buf[replies], registry)?;
            self.keep_tail(end)?;
            if self.closing {
                return Ok(self.socket.backlogged());
            }
            if !full || self.socket.backlogged() {
                return Ok(true);
            }
        }
    }

    /// Turns every complete frame from `buf[at..]` into its reply in place, the replies packed
    /// one after the other; returns where they lie and where the unprocessed input begins.
    ///
    /// A client header is the server header for the same payload plus the 4-byte masking key,
    /// so the server header is written 4 bytes later, ending where the payload begins.
    fn frames(&mut self, mut at: usize) -> (Range<usize>, usize) {
        let buf = &mut self.buf[..self.filled];
        let mut replies = at..at;
        while let Some((header, len)) = client_header(&buf[at..]) {
            let payload = at + header;
            let end = payload.saturating_add(len);
            // Unmasks what has arrived while it is still in cache (a large frame is read in
            // pieces): a second pass over a whole 1 MiB frame would cost more than wsloop's.
            let key = buf[payload - 4..payload].try_into().expect("4 bytes");
            let arrived = end.min(buf.len());
            unmask(
                &mut buf[payload + self.unmasked..arrived],
                key,
                self.unmasked,
            );
            if end > buf.len() {
                self.unmasked = arrived - payload;
                break;
            }
            self.unmasked = 0;
            buf.copy_within(at..payload - 4, at + 4);
            buf[at + 5] &= 0x7f; // no mask bit
            let opcode = buf[at + 4] & 0x0f;
            if opcode == 0x9 {
                buf[at + 4] ^= 0x9 ^ 0xa; // ping -> pong
            }
            if replies.is_empty() {
                replies = at + 4..at + 4; // the first reply starts where its header was put
            } else {
                buf.copy_within(at + 4..end, replies.end); // packs the replies together
            }
            replies.end += end - (at + 4);
            at = end;
            if opcode == 0x8 {
                self.closing = true; // the close goes back; whatever follows it is ignored
                break;
            }
        }
        (replies, at)
    }

    /// Moves the partial frame at `buf[end..filled]` to the front, and grows the buffer when
    /// its header says the frame will not fit.
    fn keep_tail(&mut self, end: usize) -> io::Result<()> {
        self.buf.copy_within(end..self.filled, 0);
        self.filled -= end;
        if let Some((header, len)) = client_header(&self.buf[..self.filled]) {
            let size = header.saturating_add(len);
            if size > MAX_FRAME {
                return Err(io::Error::new(ErrorKind::InvalidData, "frame too large"));
            }
            if size > self.buf.len() {
                // Room to spare: a read that just completes the frame is then short, and
                // needs no second read to learn that the socket is drained.
                self.buf.resize(size + BUFFER, 0);
            }
        }
        Ok(())
    }

    /// Once the request head is complete: its length and the fixed 101 answer, with the accept
    /// key computed from Sec-WebSocket-Key (nothing else is looked at).
    fn handshake(&self) -> io::Result<Option<(usize, Vec<u8>)>> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        let head = match request.parse(&self.buf[..self.filled]) {
            Ok(httparse::Status::Complete(head)) => head,
            Ok(httparse::Status::Partial) if self.filled < self.buf.len() => return Ok(None),
            _ => return Err(io::Error::new(ErrorKind::InvalidData, "bad request head")),
        };
        let key = request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
            .map_or(&b""[..], |h| h.value);
        let mut sha = Sha1::new();
        sha.update(key.trim_ascii());
        sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
        let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        Ok(Some((head, answer.into_bytes())))
    }
}

/// The socket and the replies it has not taken yet, `out[sent..]`.
struct Socket {
    stream: TcpStream,
    token: Token,
    out: Vec<u8>,
    sent: usize,
}

impl Socket {
    fn backlogged(&self) -> bool {
        self.sent < self.out.len()
    }

    /// One `write` of `bytes` (queued behind a backlog instead, if there is one). What the
    /// socket does not take is kept, and only then is WRITABLE asked for.
    fn send(&mut self, bytes: &[u8], registry: &Registry) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        if self.backlogged() {
            self.out.extend_from_slice(bytes);
            return Ok(());
        }
        let n = match self.stream.write(bytes) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => 0,
            Err(e) => return Err(e),
        };
        if n < bytes.len() {
            (self.out, self.sent) = (bytes[n..].to_vec(), 0);
            let both = Interest::READABLE | Interest::WRITABLE;
            registry.reregister(&mut self.stream, self.token, both)?;
        }
        Ok(())
    }

    /// On WRITABLE: one `write` of the backlog; true once it is all written (and WRITABLE is
    /// no longer asked for).
    fn flush(&mut self, registry: &Registry) -> io::Result<bool> {
        match self.stream.write(&self.out[self.sent..]) {
            Ok(n) => self.sent += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            Err(e) => return Err(e),
        }
        if self.backlogged() {
            return Ok(false);
        }
        (self.out, self.sent) = (Vec::new(), 0);
        registry.reregister(&mut self.stream, self.token, Interest::READABLE)?;
        Ok(true)
    }
}

/// A client frame's header length (masking key included) and payload length, once the whole
/// header is in `bytes`. The mask bit is assumed, not checked.
fn client_header(bytes: &[u8]) -> Option<(usize, usize)> {
    let (extended, len) = match *bytes.get(1)? & 0x7f {
        126 => (
            2,
            u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?) as usize,
        ),
        127 => (
            8,
            u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?) as usize,
        ),
        len => (0, len as usize),
    };
    let header = 2 + extended + 4;
    (bytes.len() >= header).then_some((header, len))
}

/// XORs `payload` with the masking key from payload position `offset` on, eight bytes at a
/// time (as wsloop's `apply_mask`).
fn unmask(payload: &mut [u8], mut key: [u8; 4], offset: usize) {
    key.rotate_left(offset & 3);
    let [a, b, c, d] = key;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut chunks = payload.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let word = u64::from_ne_bytes(chunk.try_into().expect("8 bytes")) ^ wide;
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

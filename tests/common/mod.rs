//! Shared test helpers: a server on a thread that stops when dropped, and a tiny raw client
//! that can write any frame (legal or not) and read the server's frames byte by byte.
//!
//! Every socket read has a timeout, so a server that hangs fails the test instead of hanging it.
#![allow(dead_code)] // each test file uses a different subset

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wsloop::{Config, Server, ServerBuilder, ShutdownHandle};

pub mod chat;
pub mod http;
pub mod pubsub;
pub mod redis;
pub mod tokens;

/// Starts the `wsloop` binary on a free port of 127.0.0.1 with `args`; returns it and the
/// address its first line announces (`ws://` or, with TLS, `wss://`). Its stdout is drained on a thread; its log (stderr) is
/// dropped.
pub fn spawn_wsloop(args: &[&str]) -> (std::process::Child, String) {
    let (child, addr, _log, _printed) = spawn(args, false);
    (child, addr)
}

/// [`spawn_wsloop`], with every line it logs (stderr) sent to the receiver as it comes.
pub fn spawn_wsloop_logged(args: &[&str]) -> (std::process::Child, String, mpsc::Receiver<String>) {
    let (child, addr, log, _) = spawn(args, true);
    (child, addr, log)
}

/// [`spawn_wsloop_logged`], with the lines it prints (stdout) after the first too.
pub fn spawn_wsloop_printed(
    args: &[&str],
) -> (
    std::process::Child,
    String,
    mpsc::Receiver<String>,
    mpsc::Receiver<String>,
) {
    spawn(args, true)
}

fn spawn(
    args: &[&str],
    logged: bool,
) -> (
    std::process::Child,
    String,
    mpsc::Receiver<String>,
    mpsc::Receiver<String>,
) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if logged {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("start wsloop");
    let stdout = child.stdout.take().unwrap();
    let (line_tx, line_rx) = mpsc::channel();
    let (printed_tx, printed) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = line_tx.send(first);
        }
        for line in lines.map_while(Result::ok) {
            let _ = printed_tx.send(line);
        }
    });
    let (log_tx, log_rx) = mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = log_tx.send(line);
            }
        });
    }
    let first = line_rx
        .recv_timeout(TIMEOUT)
        .expect("wsloop printed no first line");
    let addr = (first.strip_prefix("listening on ws://"))
        .or_else(|| first.strip_prefix("listening on wss://"))
        .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
        .to_string();
    (child, addr, log_rx, printed)
}

/// `wsloop ARGS` (a subcommand, or a server that exits at once) with the variables `env` and
/// `stdin` piped in, run to its end: its exit status and output. The command's own flags
/// (--count, --wait, --timeout) bound it.
pub fn run_wsloop(args: &[&str], env: &[(&str, &str)], stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsloop");
    let mut input = child.stdin.take().expect("piped");
    // A command that exits without reading its input must not fail the test.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().expect("wsloop ran")
}

/// How long any single blocking step may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);

pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// The masking key used by [`client_frame`].
pub const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

/// The RFC 6455 §1.3 sample nonce.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// A server running on its own thread, bound to a free port on 127.0.0.1. Dropping it shuts the
/// server down and waits for its thread.
pub struct TestServer {
    addr: SocketAddr,
    handle: ShutdownHandle,
    done: mpsc::Receiver<Result<(), wsloop::Error>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serves like the `wsloop` binary: echo on `/` and `/echo`, the index page at `GET /`.
    pub fn new(config: Config) -> TestServer {
        TestServer::with_routes(config, |builder| {
            builder
                .route("/", wsloop::apps::Echo)
                .route("/echo", wsloop::apps::Echo)
                .index_page(wsloop::INDEX_HTML)
        })
    }

    /// The default configuration, routed like the binary.
    pub fn start() -> TestServer {
        TestServer::new(Config::default())
    }

    /// A server whose routes are set by `routes`, run on its own thread.
    pub fn with_routes(
        config: Config,
        routes: impl FnOnce(ServerBuilder) -> ServerBuilder,
    ) -> TestServer {
        let builder = routes(Server::builder().bind("127.0.0.1:0").config(config));
        let server = builder.build().expect("server builds");
        let addr = server.local_addr();
        let handle = server.shutdown_handle();
        // `run`'s result comes back on a channel, so waiting for it can be bounded.
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let _ = done_tx.send(server.run());
        });
        TestServer {
            addr,
            handle,
            done,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Asks the server to shut down, without waiting.
    pub fn begin_shutdown(&self) {
        self.handle.shutdown();
    }

    /// Asks the server to drain (`ShutdownHandle::drain`), without waiting.
    pub fn begin_drain(&self) {
        self.handle.drain();
    }

    /// Waits (bounded) for `run` to return and gives its result.
    pub fn wait(mut self) -> Result<(), wsloop::Error> {
        let result = self
            .done
            .recv_timeout(TIMEOUT)
            .expect("Server::run did not return after shutdown");
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread panicked");
        }
        result
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        self.handle.shutdown();
        // Twice the default close timeout: a server that will not stop must not hang the suite.
        match self.done.recv_timeout(2 * TIMEOUT) {
            Ok(_) => {
                let _ = thread.join();
            }
            Err(_) if std::thread::panicking() => {}
            Err(_) => panic!("server did not stop after shutdown"),
        }
    }
}

/// An upgrade request for `path` with the sample key, plus `extra` header lines (each ending
/// in `\r\n`).
pub fn upgrade_request(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {SAMPLE_KEY}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

/// A frame header with any bits set; `mask` sets the mask bit and appends the key.
pub fn frame_header(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | ((rsv & 0x7) << 4) | (opcode & 0xF)];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    out
}

/// `payload` masked with `key`, starting at the beginning of the key.
pub fn masked(payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    payload
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect()
}

/// Any frame: every header bit is the caller's choice. The payload is masked when `mask` is set.
pub fn raw_frame(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let mut out = frame_header(fin, rsv, opcode, mask, payload.len() as u64);
    match mask {
        Some(key) => out.extend_from_slice(&masked(payload, key)),
        None => out.extend_from_slice(payload),
    }
    out
}

/// A well-formed masked client frame.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    raw_frame(fin, 0, opcode, Some(MASK), payload)
}

/// A masked close frame with `code` and `reason`.
pub fn close_frame(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(reason);
    client_frame(true, CLOSE, &body)
}

/// A frame the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFrame {
    pub fin: bool,
    /// RSV1: a compressed message (permessage-deflate).
    pub compressed: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The status code of a close frame.
    pub fn close_code(&self) -> u16 {
        assert_eq!(self.opcode, CLOSE, "expected a close frame, got {self:?}");
        assert!(self.payload.len() >= 2, "close frame without a code");
        u16::from_be_bytes([self.payload[0], self.payload[1]])
    }
}

/// An HTTP response head.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header with this name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A whole HTTP response, read until the server closed the connection.
#[derive(Debug)]
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
}

/// A raw TCP client with a read buffer, so bytes after a response head or a frame are kept.
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    /// A TCP connection with read and write timeouts; nothing sent yet.
    pub fn connect(addr: SocketAddr) -> RawClient {
        RawClient::from_stream(TcpStream::connect(addr).expect("connect"))
    }

    /// A client on a socket connected elsewhere (say with socket options of the test's own).
    pub fn from_stream(stream: TcpStream) -> RawClient {
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects, upgrades on `path` and checks for 101.
    pub fn upgrade(addr: SocketAddr, path: &str) -> RawClient {
        let mut client = RawClient::connect(addr);
        client.send(upgrade_request(path, "").as_bytes());
        let head = client.read_head();
        assert_eq!(head.status, 101, "upgrade refused: {head:?}");
        client
    }

    /// Another handle on the same socket, with its own (empty) read buffer: one thread can
    /// write while another reads. Only for a client with nothing buffered yet.
    pub fn try_clone(&self) -> RawClient {
        assert!(self.buf.is_empty(), "bytes buffered in the original handle");
        RawClient {
            stream: self.stream.try_clone().expect("clone the socket"),
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to server");
    }

    /// Reads more bytes into the buffer; returns how many (0 at EOF). Panics on timeout.
    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return n;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => panic!("reading from the server failed (timeout?): {e}"),
            }
        }
    }

    /// Like [`RawClient::fill`], but `None` when nothing arrived within `wait`.
    fn try_fill(&mut self, wait: Duration) -> Option<usize> {
        self.stream
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))))
            .unwrap();
        let mut chunk = [0u8; 16 * 1024];
        let result = loop {
            match self.stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    break Some(n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break None
                }
                Err(e) => panic!("reading from the server failed: {e}"),
            }
        };
        self.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        result
    }

    /// Reads an HTTP response head; bytes after it stay buffered.
    pub fn read_head(&mut self) -> Head {
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(
                self.fill() > 0,
                "EOF before a complete response head: {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let head: Vec<u8> = self.buf.drain(..end).collect();
        let text = String::from_utf8(head).expect("response head is UTF-8");
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "status line: {status_line}");
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line: {status_line}"));
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, value) = l.split_once(':').expect("header line has a colon");
                (name.trim().to_string(), value.trim().to_string())
            })
            .collect();
        Head { status, headers }
    }

    /// Reads a whole response: the head, then the body until the server closes the connection.
    /// Checks that Content-Length matches the body.
    pub fn read_response(&mut self) -> Response {
        let head = self.read_head();
        let body = self.read_to_eof();
        let length: usize = head
            .header("Content-Length")
            .expect("response has Content-Length")
            .parse()
            .expect("numeric Content-Length");
        assert_eq!(length, body.len(), "Content-Length vs body for {head:?}");
        Response { head, body }
    }

    /// Everything until the server ends the connection. Panics if it does not within the timeout.
    pub fn read_to_eof(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + TIMEOUT;
        while self.fill() > 0 {
            assert!(
                Instant::now() < deadline,
                "server kept sending past the timeout"
            );
        }
        std::mem::take(&mut self.buf)
    }

    /// Parses one frame from the front of the buffer, if a whole one is there.
    fn parse_frame(&mut self) -> Option<ServerFrame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        // RSV1 only marks compression (see ServerFrame::compressed); RSV2 and RSV3, never.
        assert_eq!(b[0] & 0x30, 0, "server set RSV bits: {:#04x}", b[0]);
        assert_eq!(b[1] & 0x80, 0, "server frame is masked");
        let (len, header_len) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => (u64::from_be_bytes(b[2..10].try_into().unwrap()), 10),
            126 | 127 => return None,
            short => (u64::from(short), 2),
        };
        let total = header_len + usize::try_from(len).unwrap();
        if b.len() < total {
            return None;
        }
        let frame = ServerFrame {
            fin: b[0] & 0x80 != 0,
            compressed: b[0] & 0x40 != 0,
            opcode: b[0] & 0x0F,
            payload: b[header_len..total].to_vec(),
        };
        self.buf.drain(..total);
        Some(frame)
    }

    /// Reads one server frame. Panics on EOF or timeout.
    pub fn read_frame(&mut self) -> ServerFrame {
        loop {
            if let Some(frame) = self.parse_frame() {
                return frame;
            }
            assert!(
                self.fill() > 0,
                "EOF in the middle of a frame or before one ({} bytes buffered)",
                self.buf.len()
            );
        }
    }

    /// Reads one server frame if one arrives by `deadline`; `None` if none did. Panics on EOF.
    pub fn read_frame_by(&mut self, deadline: Instant) -> Option<ServerFrame> {
        loop {
            if let Some(frame) = self.parse_frame() {
                return Some(frame);
            }
            let wait = deadline.checked_duration_since(Instant::now())?;
            match self.try_fill(wait) {
                None => return None,
                Some(0) => panic!("server ended the connection"),
                Some(_) => {}
            }
        }
    }

    /// Reads one server frame, or `None` if the connection ended first (EOF, or a reset).
    /// Panics on timeout.
    pub fn read_frame_or_end(&mut self) -> Option<ServerFrame> {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(frame) = self.parse_frame() {
                return Some(frame);
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("reading from the server failed (timeout?): {e}"),
            }
        }
    }

    /// Expects a close frame with `code`, then the end of the connection with nothing after the
    /// close frame.
    pub fn expect_close(&mut self, code: u16) {
        let frame = self.read_frame();
        assert_eq!(
            frame.close_code(),
            code,
            "close reason: {:?}",
            String::from_utf8_lossy(&frame.payload[2..])
        );
        assert!(
            std::str::from_utf8(&frame.payload[2..]).is_ok(),
            "close reason is not UTF-8"
        );
        let rest = self.read_to_eof();
        assert!(
            rest.is_empty(),
            "server sent {rest:?} after its close frame"
        );
    }
}

/// A directory of its own for a test's files (certificates, keys), removed with what is in it
/// when dropped, so test runs leave no private keys behind in the temporary directory.
pub struct ScratchDir(std::path::PathBuf);

impl ScratchDir {
    /// A fresh, empty directory named `{prefix}-{pid}-{n}` in the temporary directory.
    pub fn new(prefix: &str) -> ScratchDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

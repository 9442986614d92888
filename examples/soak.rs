//! A bounded soak of a running wsloop server on loopback: churning connections, garbage,
//! non-readers, half-open handshakes and oversize frames, while a checker verifies echo and
//! broadcast round trips and records their latency. `scripts/soak.sh` builds and starts the
//! server, runs this against it and watches the server's memory and descriptors.
//!
//! ```sh
//! target/release/wsloop --bind 127.0.0.1:9001 --max-message-size 64KiB \
//!     --max-frame-size 64KiB --max-buffered 256KiB --handshake-timeout 2s &
//! cargo run --release --example soak -- --addr 127.0.0.1:9001 --duration 60 \
//!     --max-message-size 65536 --handshake-timeout 2
//! cargo run --release --example soak -- --self-test   # the checker must catch a broken server
//! ```
//!
//! Every actor stops at the deadline (every blocking call has a timeout of a few seconds), and
//! the counts are printed as one block at the end. The exit status is non-zero when the
//! checker saw a wrong echo, a wrong or missing broadcast, or could not do its round trips.
//! Server closes and resets met by the abusers are counted, never fatal.

use std::collections::BTreeMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use base64::Engine as _;
use wsloop::client::{Client, ClientError, ClientOptions, Incoming};
use wsloop::{CloseCode, Context, Handler, Message, Publish, Server};

/// How long any single blocking operation of an actor may take.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the checker waits for one round trip before counting a failure.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause between two checker round trips (each checker).
const CHECK_INTERVAL: Duration = Duration::from_millis(20);
/// The counters of wrong bytes: any of them fails the run.
const WRONG_BYTES: [&str; 4] = [
    "checker_echo_mismatches",
    "checker_broadcast_mismatches",
    "checker_flood_corrupt",
    "churn_echo_mismatches",
];
/// The counters of round trips the checker could not do: any of them fails the run.
const FAILED_ROUND_TRIPS: [&str; 3] = [
    "checker_echo_failures",
    "checker_broadcast_failures",
    "checker_connect_failures",
];
const CHECKER_PROBLEMS: [&str; 7] = [
    WRONG_BYTES[0],
    WRONG_BYTES[1],
    WRONG_BYTES[2],
    WRONG_BYTES[3],
    FAILED_ROUND_TRIPS[0],
    FAILED_ROUND_TRIPS[1],
    FAILED_ROUND_TRIPS[2],
];
/// Checker failures printed in full (the rest are only counted).
const FAILURES_SHOWN: u64 = 10;

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Debug, Clone)]
struct Settings {
    addr: SocketAddr,
    duration: Duration,
    /// The server's --max-message-size (and frame size), in bytes.
    max_message_size: u64,
    /// The server's --handshake-timeout.
    handshake_timeout: Duration,
    churn_threads: usize,
    /// New churn connections per second, over all churn threads.
    churn_rate: f64,
    garbage_threads: usize,
    /// Garbage connections per second, over all garbage threads.
    garbage_rate: f64,
    oversize_threads: usize,
    /// Oversize connections per second, over all oversize threads.
    oversize_rate: f64,
    /// Non-readers held at once.
    nonreaders: usize,
    halfopen_threads: usize,
    /// Half-open handshakes each half-open thread holds at once.
    halfopen_batch: usize,
    /// Broadcast flood: bytes per message and messages per second.
    flood_size: usize,
    flood_rate: f64,
    self_test: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            addr: "127.0.0.1:9001".parse().expect("a valid address"),
            duration: Duration::from_secs(600),
            max_message_size: 64 << 10,
            handshake_timeout: Duration::from_secs(2),
            churn_threads: 8,
            churn_rate: 100.0,
            garbage_threads: 3,
            garbage_rate: 30.0,
            oversize_threads: 2,
            oversize_rate: 20.0,
            nonreaders: 32,
            halfopen_threads: 2,
            halfopen_batch: 64,
            flood_size: 8192,
            flood_rate: 100.0,
            self_test: false,
        }
    }
}

const USAGE: &str = "\
usage: soak [--addr HOST:PORT] [--duration SECS] [--max-message-size BYTES]
            [--handshake-timeout SECS] [--churn-threads N] [--churn-rate CONNS_PER_SEC]
            [--garbage-threads N] [--garbage-rate CONNS_PER_SEC]
            [--oversize-threads N] [--oversize-rate CONNS_PER_SEC] [--nonreaders N]
            [--halfopen-threads N] [--halfopen-batch N] [--flood-size BYTES]
            [--flood-rate MSGS_PER_SEC]
       soak --self-test   (the checker against a deliberately broken in-process server)
Only loopback addresses are accepted.";

fn parse_args() -> Result<Settings, String> {
    let mut s = Settings::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--self-test" {
            s.self_test = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        let num = |v: &str| v.parse::<f64>().map_err(|e| bad(&e));
        let count = |v: &str| v.parse::<usize>().map_err(|e| bad(&e));
        match flag.as_str() {
            "--addr" => s.addr = value.parse().map_err(|e| bad(&e))?,
            "--duration" => s.duration = Duration::from_secs_f64(num(&value)?),
            "--max-message-size" => s.max_message_size = value.parse().map_err(|e| bad(&e))?,
            "--handshake-timeout" => s.handshake_timeout = Duration::from_secs_f64(num(&value)?),
            "--churn-threads" => s.churn_threads = count(&value)?,
            "--churn-rate" => s.churn_rate = num(&value)?,
            "--garbage-threads" => s.garbage_threads = count(&value)?,
            "--garbage-rate" => s.garbage_rate = num(&value)?,
            "--oversize-threads" => s.oversize_threads = count(&value)?,
            "--oversize-rate" => s.oversize_rate = num(&value)?,
            "--nonreaders" => s.nonreaders = count(&value)?,
            "--halfopen-threads" => s.halfopen_threads = count(&value)?,
            "--halfopen-batch" => s.halfopen_batch = count(&value)?,
            "--flood-size" => s.flood_size = count(&value)?.max(16),
            "--flood-rate" => s.flood_rate = num(&value)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if !s.addr.ip().is_loopback() {
        return Err(format!("{}: only loopback addresses are soaked", s.addr));
    }
    let rates = [s.churn_rate, s.garbage_rate, s.oversize_rate, s.flood_rate];
    if rates.iter().any(|r| !r.is_finite() || *r <= 0.0) {
        return Err("rates must be positive".into());
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// Shared state: the deadline, counters, latencies

/// Named counters; an actor's every outcome is one of them.
#[derive(Default)]
struct Stats {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    fn add(&self, key: &str, n: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        *counts.entry(key.to_string()).or_default() += n;
    }

    fn inc(&self, key: &str) {
        self.add(key, 1);
    }

    fn max(&self, key: &str, value: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let slot = counts.entry(key.to_string()).or_default();
        *slot = (*slot).max(value);
    }

    fn get(&self, key: &str) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(key).copied().unwrap_or(0)
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

struct Shared {
    settings: Settings,
    deadline: Instant,
    stats: Stats,
    /// Round-trip latencies in microseconds.
    echo_latency: Mutex<Vec<u64>>,
    broadcast_latency: Mutex<Vec<u64>>,
    /// Tells this run's checker messages from anyone else's.
    nonce: u64,
    /// Flood sequence numbers, shared by the flooders.
    flood_seq: AtomicU64,
}

impl Shared {
    fn running(&self) -> bool {
        Instant::now() < self.deadline
    }

    fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Sleeps for `d`, or until the deadline if that comes first.
    fn sleep(&self, d: Duration) {
        let d = d.min(self.left());
        if !d.is_zero() {
            thread::sleep(d);
        }
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.settings.addr)
    }
}

/// Spaces out an actor's iterations to a rate; never bursts to catch up.
struct Pacer {
    interval: Duration,
    next: Instant,
}

impl Pacer {
    /// `rate` per second over `threads` threads, for one of them.
    fn new(rate: f64, threads: usize) -> Pacer {
        Pacer {
            interval: Duration::from_secs_f64(threads.max(1) as f64 / rate),
            next: Instant::now(),
        }
    }

    /// Waits until `n` more iterations are due (or the deadline).
    fn wait(&mut self, shared: &Shared, n: u32) {
        self.next += self.interval * n;
        let now = Instant::now();
        if self.next > now {
            shared.sleep(self.next - now);
        } else if now - self.next > Duration::from_secs(1) {
            self.next = now; // behind (a slow machine): do not catch up in a burst
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Randomness: xorshift64*, seeded from the OS

struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("the OS entropy source works");
        Rng(u64::from_le_bytes(seed) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// True with probability `percent`%.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Printable ASCII (always valid UTF-8).
    fn text(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b' ' + (self.next() % 95) as u8))
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Raw WebSocket over std TcpStream, for the abusers

fn tcp_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

fn upgrade_request(path: &str, addr: SocketAddr, rng: &mut Rng) -> String {
    let key = base64::engine::general_purpose::STANDARD.encode(rng.bytes(16));
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Why a raw upgrade failed.
enum UpgradeError {
    Io(io::Error),
    /// The server answered with another status (its status line).
    Refused(String),
}

/// A raw upgraded connection and the bytes read past the response head.
struct RawWs {
    tcp: TcpStream,
    reader: FrameReader,
}

fn raw_upgrade(shared: &Shared, path: &str, rng: &mut Rng) -> Result<RawWs, UpgradeError> {
    let mut tcp = tcp_connect(shared.settings.addr).map_err(UpgradeError::Io)?;
    tcp.write_all(upgrade_request(path, shared.settings.addr, rng).as_bytes())
        .map_err(UpgradeError::Io)?;
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tcp.read(&mut chunk).map_err(UpgradeError::Io)?;
        if n == 0 {
            return Err(UpgradeError::Io(ErrorKind::UnexpectedEof.into()));
        }
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&head, b"\r\n\r\n") {
            let status_line =
                String::from_utf8_lossy(&head[..find(&head, b"\r\n").unwrap_or(0)]).into_owned();
            if !status_line.starts_with("HTTP/1.1 101") {
                return Err(UpgradeError::Refused(status_line));
            }
            let mut reader = FrameReader::default();
            reader.buf.extend_from_slice(&head[end + 4..]);
            return Ok(RawWs { tcp, reader });
        }
        if head.len() > 16 << 10 {
            return Err(UpgradeError::Refused("response head too long".into()));
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The header of a masked client frame.
fn frame_header(opcode: u8, fin: bool, len: u64, mask: [u8; 4]) -> Vec<u8> {
    let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as u64 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out
}

/// A whole masked client frame.
fn client_frame(opcode: u8, fin: bool, payload: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mask = (rng.next() as u32).to_le_bytes();
    let mut out = frame_header(opcode, fin, payload.len() as u64, mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// One server frame.
struct Frame {
    opcode: u8,
    payload: Vec<u8>,
}

impl Frame {
    /// The close code of a close frame (1005 when it has none).
    fn close_code(&self) -> u16 {
        match self.payload.get(..2) {
            Some(code) => u16::from_be_bytes([code[0], code[1]]),
            None => 1005,
        }
    }
}

/// How a read of server frames ended.
enum ReadEnd {
    Frame(Frame),
    Eof,
    Reset,
    Timeout,
    Error,
}

/// Parses server frames out of a byte stream.
#[derive(Default)]
struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// The next frame, reading until `deadline`.
    fn next(&mut self, tcp: &mut TcpStream, deadline: Instant) -> ReadEnd {
        let mut chunk = [0u8; 16 << 10];
        loop {
            if let Some(frame) = self.parse() {
                return ReadEnd::Frame(frame);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tcp.set_read_timeout(Some(left)).is_err() {
                return ReadEnd::Timeout;
            }
            match tcp.read(&mut chunk) {
                Ok(0) => return ReadEnd::Eof,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return classify(&e),
            }
        }
    }

    fn parse(&mut self) -> Option<Frame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let opcode = b[0] & 0x0f;
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            126 | 127 => return None,
            n => (n as u64, 2),
        };
        let mask = if masked {
            let m = b.get(at..at + 4)?;
            at += 4;
            Some([m[0], m[1], m[2], m[3]])
        } else {
            None
        };
        let end = at.checked_add(usize::try_from(len).ok()?)?;
        if b.len() < end {
            return None;
        }
        let mut payload = b[at..end].to_vec();
        if let Some(mask) = mask {
            payload
                .iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x ^= mask[i % 4]);
        }
        self.buf.drain(..end);
        Some(Frame { opcode, payload })
    }
}

fn classify(e: &io::Error) -> ReadEnd {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => ReadEnd::Timeout,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            ReadEnd::Reset
        }
        _ => ReadEnd::Error,
    }
}

/// Reads frames until a close frame, the end of the stream or `deadline`, and counts how it
/// ended under `prefix` (`prefix_close_1009`, `prefix_eof`, ...).
fn expect_close(shared: &Shared, ws: &mut RawWs, deadline: Instant, prefix: &str) -> Option<u16> {
    loop {
        match ws.reader.next(&mut ws.tcp, deadline) {
            ReadEnd::Frame(frame) if frame.opcode == 0x8 => {
                let code = frame.close_code();
                shared.stats.inc(&format!("{prefix}_close_{code}"));
                return Some(code);
            }
            ReadEnd::Frame(_) => continue,
            end => {
                shared.stats.inc(&format!("{prefix}_{}", end_name(&end)));
                return None;
            }
        }
    }
}

fn end_name(end: &ReadEnd) -> &'static str {
    match end {
        ReadEnd::Frame(_) => "frame",
        ReadEnd::Eof => "eof_without_close",
        ReadEnd::Reset => "reset",
        ReadEnd::Timeout => "no_close_in_time",
        ReadEnd::Error => "read_error",
    }
}

/// Writes, counting a failure (the server closed first) instead of failing.
fn write_counted(shared: &Shared, tcp: &mut TcpStream, bytes: &[u8], prefix: &str) -> bool {
    match tcp.write_all(bytes) {
        Ok(()) => true,
        Err(e) => {
            let what = match classify(&e) {
                ReadEnd::Timeout => "write_timeout",
                ReadEnd::Reset => "write_reset_by_server",
                _ => "write_error",
            };
            shared.stats.inc(&format!("{prefix}_{what}"));
            false
        }
    }
}

fn count_upgrade_error(shared: &Shared, prefix: &str, e: &UpgradeError) {
    match e {
        UpgradeError::Io(e) => shared
            .stats
            .inc(&format!("{prefix}_upgrade_io_error_{:?}", e.kind())),
        UpgradeError::Refused(status) => {
            let code = status.split_whitespace().nth(1).unwrap_or("?");
            shared
                .stats
                .inc(&format!("{prefix}_upgrade_refused_{code}"));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Churn: open, upgrade, a few echoes, close cleanly or drop

fn churn(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let mut pacer = Pacer::new(shared.settings.churn_rate, shared.settings.churn_threads);
    let options = ClientOptions {
        timeout: IO_TIMEOUT,
        ..Default::default()
    };
    while shared.running() {
        let batch = rng.range(1, 16);
        let mut clients = Vec::new();
        for _ in 0..batch {
            if !shared.running() {
                break;
            }
            let path = if rng.chance(20) { "/broadcast" } else { "/" };
            match Client::connect_with(&shared.url(path), &options) {
                Ok(client) => {
                    shared.stats.inc("upgrades");
                    shared.stats.inc("churn_upgrades");
                    clients.push((client, path));
                }
                Err(e) => shared
                    .stats
                    .inc(&format!("churn_connect_failed_{}", error_kind(&e))),
            }
        }
        for (client, path) in &mut clients {
            if *path == "/" {
                churn_echoes(&shared, client, &mut rng);
            }
        }
        shared.sleep(Duration::from_millis(rng.range(0, 200)));
        for (mut client, _) in clients {
            match rng.range(0, 3) {
                0 | 1 => match client.close(CloseCode::NORMAL, "churn") {
                    Ok(()) => shared.stats.inc("churn_closed_clean"),
                    Err(e) => shared
                        .stats
                        .inc(&format!("churn_close_failed_{}", error_kind(&e))),
                },
                2 => {
                    // Something unread is on its way when the socket goes: the kernel resets.
                    let _ = client.send(Message::Text("bye"));
                    drop(client);
                    shared.stats.inc("churn_dropped_with_unread");
                }
                _ => {
                    drop(client);
                    shared.stats.inc("churn_dropped");
                }
            }
        }
        pacer.wait(&shared, batch as u32);
    }
}

fn churn_echoes(shared: &Shared, client: &mut Client, rng: &mut Rng) {
    let _ = client.set_read_timeout(Some(IO_TIMEOUT));
    for _ in 0..rng.range(1, 4) {
        let len = rng.range(0, 2048) as usize;
        let (sent, expected) = if rng.chance(50) {
            let text = rng.text(len);
            (
                client.send(Message::Text(&text)),
                Incoming::Text(text.clone()),
            )
        } else {
            let bytes = rng.bytes(len);
            (
                client.send(Message::Binary(&bytes)),
                Incoming::Binary(bytes.clone()),
            )
        };
        if let Err(e) = sent {
            shared
                .stats
                .inc(&format!("churn_echo_failed_{}", error_kind(&e)));
            return;
        }
        match client.recv() {
            Ok(got) if got == expected => shared.stats.inc("churn_echoes"),
            Ok(Incoming::Close(code, _)) => {
                shared
                    .stats
                    .inc(&format!("churn_echo_server_closed_{code}"));
                return;
            }
            Ok(_) => shared.stats.inc("churn_echo_mismatches"),
            Err(e) => {
                shared
                    .stats
                    .inc(&format!("churn_echo_failed_{}", error_kind(&e)));
                return;
            }
        }
    }
}

fn error_kind(e: &ClientError) -> String {
    match e {
        ClientError::Io(e) | ClientError::Connect(e) => format!("{:?}", e.kind()),
        ClientError::Handshake(e) => format!("handshake({e})").replace(' ', "_"),
        ClientError::Protocol(_) => "protocol".into(),
        ClientError::Closed => "closed".into(),
        _ => "other".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// Garbage: random bytes before and after the upgrade, an oversized request head

fn garbage(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let settle = shared.settings.handshake_timeout + Duration::from_secs(3);
    let mut pacer = Pacer::new(
        shared.settings.garbage_rate,
        shared.settings.garbage_threads,
    );
    while shared.running() {
        pacer.wait(&shared, 1);
        if !shared.running() {
            break;
        }
        match rng.range(0, 3) {
            0 => {
                let len = rng.range(1, 2048) as usize;
                let bytes = rng.bytes(len);
                garbage_head(&shared, &bytes, "garbage_pre", settle);
            }
            1 => {
                let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
                while head.len() < 16 << 10 {
                    head.extend_from_slice(
                        b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
                    );
                }
                garbage_head(&shared, &head, "garbage_big_head", settle);
            }
            variant => {
                let path = if rng.chance(50) { "/" } else { "/broadcast" };
                let mut ws = match raw_upgrade(&shared, path, &mut rng) {
                    Ok(ws) => ws,
                    Err(e) => {
                        count_upgrade_error(&shared, "garbage_post", &e);
                        continue;
                    }
                };
                shared.stats.inc("upgrades");
                shared.stats.inc("garbage_post_upgrades");
                shared.stats.inc("abusive_connections");
                let mut bytes = Vec::new();
                if variant == 3 && path == "/" {
                    // A valid message first: it must still be echoed before the garbage hits.
                    bytes = client_frame(0x1, true, b"valid before garbage", &mut rng);
                }
                let len = rng.range(1, 4096) as usize;
                bytes.extend(rng.bytes(len));
                if write_counted(&shared, &mut ws.tcp, &bytes, "garbage_post") {
                    // Random bytes may be a frame header waiting for a payload that never
                    // comes: then the server rightly waits, and the connection is dropped here.
                    expect_close(
                        &shared,
                        &mut ws,
                        Instant::now() + Duration::from_secs(3),
                        "garbage_post",
                    );
                }
            }
        }
    }
}

/// Sends a bad request head and sees how the server answers.
fn garbage_head(shared: &Shared, bytes: &[u8], prefix: &str, settle: Duration) {
    let mut tcp = match tcp_connect(shared.settings.addr) {
        Ok(tcp) => tcp,
        Err(e) => {
            shared
                .stats
                .inc(&format!("{prefix}_connect_failed_{:?}", e.kind()));
            return;
        }
    };
    shared.stats.inc(&format!("{prefix}_sent"));
    shared.stats.inc("abusive_connections");
    // The server may answer and close before everything is written: that is fine.
    let _ = tcp.write_all(bytes);
    let deadline = Instant::now() + settle;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tcp.set_read_timeout(Some(left)).is_err() {
            break ReadEnd::Timeout;
        }
        match tcp.read(&mut chunk) {
            Ok(0) => break ReadEnd::Eof,
            Ok(n) if reply.len() < 4096 => reply.extend_from_slice(&chunk[..n]),
            Ok(_) => {}
            Err(e) => break classify(&e),
        }
    };
    if reply.starts_with(b"HTTP/1.1 ") && reply.len() >= 12 {
        let status = String::from_utf8_lossy(&reply[9..12]).into_owned();
        shared.stats.inc(&format!("{prefix}_answered_{status}"));
    }
    match end {
        ReadEnd::Eof | ReadEnd::Reset => shared.stats.inc(&format!("{prefix}_closed_by_server")),
        ReadEnd::Timeout => shared.stats.inc(&format!("{prefix}_not_closed_in_time")),
        _ => shared.stats.inc(&format!("{prefix}_read_error")),
    }
}

// ---------------------------------------------------------------------------------------------
// Oversize: frame headers claiming more than the limit, fragments adding up past it

fn oversize(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let max = shared.settings.max_message_size;
    let mut pacer = Pacer::new(
        shared.settings.oversize_rate,
        shared.settings.oversize_threads,
    );
    while shared.running() {
        pacer.wait(&shared, 1);
        if !shared.running() {
            break;
        }
        let variant = rng.range(0, 3);
        let path = if variant == 3 { "/broadcast" } else { "/" };
        let mut ws = match raw_upgrade(&shared, path, &mut rng) {
            Ok(ws) => ws,
            Err(e) => {
                count_upgrade_error(&shared, "oversize", &e);
                continue;
            }
        };
        shared.stats.inc("upgrades");
        shared.stats.inc("oversize_upgrades");
        shared.stats.inc("abusive_connections");
        let mask = (rng.next() as u32).to_le_bytes();
        let sent = match variant {
            // One past the limit, with part of the payload following.
            0 | 3 => {
                let mut bytes = frame_header(0x2, true, max + 1, mask);
                bytes.extend(rng.bytes(1024));
                write_counted(&shared, &mut ws.tcp, &bytes, "oversize")
            }
            // A 64-bit length of 2^62.
            1 => {
                let bytes = frame_header(0x2, true, 1 << 62, mask);
                write_counted(&shared, &mut ws.tcp, &bytes, "oversize")
            }
            // Fragments each within the limit, together past it.
            _ => {
                let part = rng.bytes((max / 2 + 1) as usize);
                let mut ok = true;
                for (i, opcode) in [0x2, 0x0, 0x0].into_iter().enumerate() {
                    let frame = client_frame(opcode, i == 2, &part, &mut rng);
                    ok = write_counted(&shared, &mut ws.tcp, &frame, "oversize_fragmented");
                    if !ok {
                        break;
                    }
                }
                ok
            }
        };
        if sent {
            let kind = [
                "oversize_header",
                "oversize_huge",
                "oversize_fragmented",
                "oversize_broadcast",
            ][variant as usize];
            expect_close(&shared, &mut ws, Instant::now() + IO_TIMEOUT, kind);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Non-readers: subscribe to /broadcast and never read; the server must close them

fn nonreaders(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let target = shared.settings.nonreaders;
    // (the connection, when it is let go)
    let mut held: Vec<(RawWs, Instant)> = Vec::new();
    while shared.running() {
        // Top up a few at a time, so their ends are spread out.
        for _ in 0..4 {
            if held.len() >= target || !shared.running() {
                break;
            }
            match raw_upgrade(&shared, "/broadcast", &mut rng) {
                Ok(ws) => {
                    shared.stats.inc("upgrades");
                    shared.stats.inc("nonreader_upgrades");
                    shared.stats.inc("abusive_connections");
                    let hold = Duration::from_millis(rng.range(20_000, 40_000));
                    held.push((ws, Instant::now() + hold));
                }
                Err(e) => count_upgrade_error(&shared, "nonreader", &e),
            }
        }
        let now = Instant::now();
        let mut i = 0;
        while i < held.len() {
            if held[i].1 <= now && shared.running() {
                let (ws, _) = held.swap_remove(i);
                nonreader_verdict(&shared, ws);
            } else {
                i += 1;
            }
        }
        shared.sleep(Duration::from_millis(200));
    }
    shared
        .stats
        .add("nonreader_dropped_at_deadline", held.len() as u64);
}

/// Reads what a non-reader was sent, to see whether the server closed it.
fn nonreader_verdict(shared: &Shared, mut ws: RawWs) {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut bytes = 0u64;
    let mut close = None;
    let end = loop {
        match ws.reader.next(&mut ws.tcp, deadline) {
            ReadEnd::Frame(frame) => {
                bytes += frame.payload.len() as u64;
                if frame.opcode == 0x8 {
                    close = Some(frame.close_code());
                }
            }
            end => break end,
        }
    };
    shared.stats.max("nonreader_max_unread_bytes", bytes);
    match (close, &end) {
        (Some(code), _) => shared
            .stats
            .inc(&format!("nonreader_closed_by_server_{code}")),
        (None, ReadEnd::Eof | ReadEnd::Reset) => shared
            .stats
            .inc("nonreader_dropped_by_server_without_close"),
        // Still open after its hold: the server kept queueing for a client that never reads.
        (None, _) => shared.stats.inc("nonreader_still_open_after_hold"),
    }
}

// ---------------------------------------------------------------------------------------------
// Half-open handshakes: silent, partial and drip-fed requests

fn halfopen(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let timeout = shared.settings.handshake_timeout;
    let slack = Duration::from_millis(2000);
    while shared.running() {
        struct Held {
            tcp: TcpStream,
            kind: &'static str,
            opened: Instant,
            request: Vec<u8>,
            sent: usize,
            reply: Vec<u8>,
            done: bool,
        }
        let mut batch = Vec::new();
        for _ in 0..shared.settings.halfopen_batch {
            if !shared.running() {
                break;
            }
            let mut tcp = match tcp_connect(shared.settings.addr) {
                Ok(tcp) => tcp,
                Err(e) => {
                    shared
                        .stats
                        .inc(&format!("halfopen_connect_failed_{:?}", e.kind()));
                    continue;
                }
            };
            let request =
                upgrade_request("/broadcast", shared.settings.addr, &mut rng).into_bytes();
            let (kind, sent) = match rng.range(0, 2) {
                0 => ("halfopen_silent", 0),
                1 => ("halfopen_partial", request.len() / 2),
                _ => ("halfopen_drip", 0),
            };
            if tcp.write_all(&request[..sent]).is_err() || tcp.set_nonblocking(true).is_err() {
                shared.stats.inc("halfopen_write_failed");
                continue;
            }
            shared.stats.inc(&format!("{kind}_opened"));
            shared.stats.inc("abusive_connections");
            batch.push(Held {
                tcp,
                kind,
                opened: Instant::now(),
                request,
                sent,
                reply: Vec::new(),
                done: false,
            });
        }
        if batch.is_empty() {
            shared.sleep(Duration::from_millis(200)); // the server is gone: do not spin
            continue;
        }
        let bound = Instant::now() + timeout + slack + Duration::from_secs(3);
        let mut last_drip = Instant::now();
        let mut chunk = [0u8; 1024];
        while batch.iter().any(|h| !h.done) && Instant::now() < bound && shared.running() {
            let drip = last_drip.elapsed() >= Duration::from_millis(300);
            if drip {
                last_drip = Instant::now();
            }
            for h in batch.iter_mut().filter(|h| !h.done) {
                // One byte every 300 ms: the whole request would take about a minute.
                if drip
                    && h.kind == "halfopen_drip"
                    && h.sent < h.request.len() - 1
                    && h.tcp.write(&h.request[h.sent..h.sent + 1]).is_ok()
                {
                    h.sent += 1;
                }
                let closed = match h.tcp.read(&mut chunk) {
                    Ok(0) => true,
                    Ok(n) => {
                        if h.reply.len() < 1024 {
                            h.reply.extend_from_slice(&chunk[..n]);
                        }
                        false
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                    Err(_) => true,
                };
                if closed {
                    h.done = true;
                    let took = h.opened.elapsed();
                    shared
                        .stats
                        .max("halfopen_slowest_close_ms", took.as_millis() as u64);
                    if took <= timeout + slack {
                        shared.stats.inc(&format!("{}_closed_in_time", h.kind));
                    } else {
                        shared.stats.inc(&format!("{}_closed_late", h.kind));
                    }
                    if h.reply.starts_with(b"HTTP/1.1 ") && h.reply.len() >= 12 {
                        let status = String::from_utf8_lossy(&h.reply[9..12]).into_owned();
                        shared.stats.inc(&format!("halfopen_answered_{status}"));
                    }
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        for h in &batch {
            if !h.done {
                if shared.running() {
                    shared.stats.inc(&format!("{}_never_closed", h.kind));
                } else {
                    shared.stats.inc("halfopen_dropped_at_deadline");
                }
            }
        }
        for h in batch {
            let _ = h.tcp.shutdown(Shutdown::Both);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The broadcast flood: what fills the non-readers' queues

/// A flood message: "FLD", its sequence number, then a pattern the checker verifies.
fn flood_payload(seq: u64, size: usize) -> Vec<u8> {
    let mut payload = b"FLD".to_vec();
    payload.extend_from_slice(&seq.to_le_bytes());
    let start = payload.len();
    payload.extend((start..size).map(|i| (seq as u8).wrapping_add(i as u8)));
    payload
}

fn flood_payload_intact(payload: &[u8]) -> bool {
    if payload.len() < 11 {
        return false;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&payload[3..11]);
    let seq = u64::from_le_bytes(seq);
    payload[11..]
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (seq as u8).wrapping_add((i + 11) as u8))
}

/// A raw /broadcast connection whose incoming messages are read and thrown away by a thread,
/// so it never becomes a slow consumer itself. Returns the writing half.
fn discarding_broadcaster(
    shared: &Arc<Shared>,
    rng: &mut Rng,
    prefix: &'static str,
) -> Option<(TcpStream, thread::JoinHandle<()>)> {
    let ws = match raw_upgrade(shared, "/broadcast", rng) {
        Ok(ws) => ws,
        Err(e) => {
            count_upgrade_error(shared, prefix, &e);
            return None;
        }
    };
    shared.stats.inc("upgrades");
    shared.stats.inc(&format!("{prefix}_upgrades"));
    let mut reader = ws.tcp.try_clone().ok()?;
    let shared2 = shared.clone();
    let handle = thread::spawn(move || {
        let mut sink = vec![0u8; 64 << 10];
        let _ = reader.set_read_timeout(Some(Duration::from_millis(500)));
        while shared2.running() {
            match reader.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
    });
    Some((ws.tcp, handle))
}

fn flood(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let mut pacer = Pacer::new(shared.settings.flood_rate, 1);
    while shared.running() {
        let Some((mut tcp, reader)) = discarding_broadcaster(&shared, &mut rng, "flood") else {
            shared.sleep(Duration::from_millis(500));
            continue;
        };
        while shared.running() {
            let seq = shared.flood_seq.fetch_add(1, Ordering::Relaxed);
            let frame = client_frame(
                0x2,
                true,
                &flood_payload(seq, shared.settings.flood_size),
                &mut rng,
            );
            if !write_counted(&shared, &mut tcp, &frame, "flood") {
                shared.stats.inc("flood_reconnects");
                break;
            }
            shared.stats.inc("flood_messages");
            pacer.wait(&shared, 1);
        }
        let _ = tcp.shutdown(Shutdown::Both);
        let _ = reader.join();
    }
}

// ---------------------------------------------------------------------------------------------
// The checker

fn report_failure(shared: &Shared, key: &str, detail: String) {
    shared.stats.inc(key);
    if shared.stats.get(key) <= FAILURES_SHOWN {
        eprintln!("soak: checker: {key}: {detail}");
    }
}

fn checker_connect(shared: &Shared, path: &str) -> Option<Client> {
    let options = ClientOptions {
        timeout: CHECK_TIMEOUT,
        ..Default::default()
    };
    while shared.running() {
        match Client::connect_with(&shared.url(path), &options) {
            Ok(client) => {
                shared.stats.inc("upgrades");
                return Some(client);
            }
            Err(e) => {
                report_failure(shared, "checker_connect_failures", format!("{path}: {e}"));
                shared.sleep(Duration::from_millis(200));
            }
        }
    }
    None
}

/// Echo round trips on `/`: text and binary, verified byte for byte.
fn check_echo(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let mut seq = 0u64;
    'connection: while shared.running() {
        let Some(mut client) = checker_connect(&shared, "/") else {
            return;
        };
        while shared.running() {
            seq += 1;
            // Mostly small, sometimes near the server's limit.
            let len = if rng.chance(2) {
                rng.range(
                    1024,
                    shared
                        .settings
                        .max_message_size
                        .saturating_sub(1024)
                        .max(1024),
                )
            } else {
                rng.range(1, 2048)
            } as usize;
            let expected = if seq.is_multiple_of(2) {
                let mut text = format!("echo {} {seq} ", shared.nonce);
                text.push_str(&rng.text(len));
                Incoming::Text(text)
            } else {
                let mut bytes = seq.to_le_bytes().to_vec();
                bytes.extend(rng.bytes(len));
                Incoming::Binary(bytes)
            };
            let started = Instant::now();
            let sent = match &expected {
                Incoming::Text(text) => client.send(Message::Text(text)),
                Incoming::Binary(bytes) => client.send(Message::Binary(bytes)),
                Incoming::Close(..) => unreachable!("only messages are sent"),
            };
            if let Err(e) = sent {
                report_failure(
                    &shared,
                    "checker_echo_failures",
                    format!("send #{seq}: {e}"),
                );
                continue 'connection;
            }
            let _ = client.set_read_timeout(Some(CHECK_TIMEOUT));
            match client.recv() {
                Ok(got) if got == expected => {
                    let micros = started.elapsed().as_micros() as u64;
                    shared
                        .echo_latency
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(micros);
                }
                Ok(Incoming::Close(code, reason)) => {
                    report_failure(
                        &shared,
                        "checker_echo_failures",
                        format!("#{seq}: server closed {code} {reason:?}"),
                    );
                    continue 'connection;
                }
                Ok(got) => {
                    let describe = |m: &Incoming| match m {
                        Incoming::Text(t) => format!("text of {} bytes", t.len()),
                        Incoming::Binary(b) => format!("binary of {} bytes", b.len()),
                        Incoming::Close(..) => "close".into(),
                    };
                    report_failure(
                        &shared,
                        "checker_echo_mismatches",
                        format!(
                            "#{seq}: sent {}, got a different {}",
                            describe(&expected),
                            describe(&got)
                        ),
                    );
                }
                Err(e) => {
                    report_failure(
                        &shared,
                        "checker_echo_failures",
                        format!("recv #{seq}: {e}"),
                    );
                    continue 'connection;
                }
            }
            shared.sleep(CHECK_INTERVAL);
        }
        let _ = client.close(CloseCode::NORMAL, "checker done");
    }
}

/// Broadcast round trips on `/broadcast`: a message sent on one connection must arrive,
/// unchanged, on the other (the broadcast goes to everyone but its sender). Flood messages
/// seen on the way are verified too.
fn check_broadcast(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let mut seq = 0u64;
    'connection: while shared.running() {
        let Some(mut rx) = checker_connect(&shared, "/broadcast") else {
            return;
        };
        let Some((mut tx, tx_reader)) = discarding_broadcaster(&shared, &mut rng, "checker_tx")
        else {
            report_failure(
                &shared,
                "checker_connect_failures",
                "/broadcast sender".into(),
            );
            shared.sleep(Duration::from_millis(200));
            continue;
        };
        // Both are subscribed once the upgrade answers have been sent; give the loop a turn.
        thread::sleep(Duration::from_millis(50));
        let prefix = format!("bcast {} ", shared.nonce);
        let mut failed = false;
        while shared.running() && !failed {
            seq += 1;
            let len = rng.range(1, 512) as usize;
            let text = format!("{prefix}{seq} {}", rng.text(len));
            let started = Instant::now();
            let frame = client_frame(0x1, true, text.as_bytes(), &mut rng);
            if tx.write_all(&frame).is_err() {
                report_failure(
                    &shared,
                    "checker_broadcast_failures",
                    format!("send #{seq}: the server closed the sender"),
                );
                break;
            }
            let deadline = started + CHECK_TIMEOUT;
            let mut arrived = false;
            while !arrived {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    report_failure(
                        &shared,
                        "checker_broadcast_failures",
                        format!("#{seq}: not received within {CHECK_TIMEOUT:?}"),
                    );
                    break;
                }
                let _ = rx.set_read_timeout(Some(left));
                match rx.recv() {
                    Ok(Incoming::Text(got)) if got == text => {
                        arrived = true;
                        let micros = started.elapsed().as_micros() as u64;
                        shared
                            .broadcast_latency
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(micros);
                    }
                    Ok(Incoming::Text(got)) if got.starts_with(&prefix) => {
                        let got_seq = got[prefix.len()..]
                            .split(' ')
                            .next()
                            .and_then(|s| s.parse::<u64>().ok());
                        if got_seq == Some(seq) {
                            report_failure(
                                &shared,
                                "checker_broadcast_mismatches",
                                format!(
                                    "#{seq}: arrived changed ({} bytes sent, {} received)",
                                    text.len(),
                                    got.len()
                                ),
                            );
                            arrived = true;
                        } else {
                            shared.stats.inc("checker_broadcast_late_arrivals");
                        }
                    }
                    Ok(Incoming::Binary(got)) if got.starts_with(b"FLD") => {
                        if flood_payload_intact(&got) {
                            shared.stats.inc("checker_flood_messages_verified");
                        } else {
                            report_failure(
                                &shared,
                                "checker_flood_corrupt",
                                format!("{} bytes", got.len()),
                            );
                        }
                    }
                    Ok(Incoming::Close(code, reason)) => {
                        report_failure(
                            &shared,
                            "checker_broadcast_failures",
                            format!("#{seq}: server closed the receiver {code} {reason:?}"),
                        );
                        failed = true;
                        break;
                    }
                    Ok(_) => shared.stats.inc("checker_broadcast_other_messages"),
                    Err(e) if e.is_timeout() => {}
                    Err(e) => {
                        report_failure(
                            &shared,
                            "checker_broadcast_failures",
                            format!("recv #{seq}: {e}"),
                        );
                        failed = true;
                        break;
                    }
                }
            }
            // Keep reading floods until the next round trip, so rx never falls behind.
            let next = Instant::now() + CHECK_INTERVAL;
            while !failed && Instant::now() < next {
                let _ = rx.set_read_timeout(Some(
                    next.saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1)),
                ));
                match rx.recv() {
                    Ok(Incoming::Binary(got)) if got.starts_with(b"FLD") => {
                        if flood_payload_intact(&got) {
                            shared.stats.inc("checker_flood_messages_verified");
                        } else {
                            report_failure(
                                &shared,
                                "checker_flood_corrupt",
                                format!("{} bytes", got.len()),
                            );
                        }
                    }
                    Ok(Incoming::Text(got)) if got.starts_with(&prefix) => {
                        shared.stats.inc("checker_broadcast_late_arrivals")
                    }
                    Ok(Incoming::Close(code, reason)) => {
                        report_failure(
                            &shared,
                            "checker_broadcast_failures",
                            format!("server closed the receiver {code} {reason:?}"),
                        );
                        failed = true;
                    }
                    Ok(_) => shared.stats.inc("checker_broadcast_other_messages"),
                    Err(e) if e.is_timeout() => {}
                    Err(e) => {
                        report_failure(&shared, "checker_broadcast_failures", format!("recv: {e}"));
                        failed = true;
                    }
                }
            }
        }
        let _ = tx.shutdown(Shutdown::Write);
        let _ = rx.close(CloseCode::NORMAL, "checker done");
        drop(tx);
        let _ = tx_reader.join();
        if failed {
            continue 'connection;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The report

fn percentile(sorted: &[u64], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

fn latency_line(name: &str, latencies: &Mutex<Vec<u64>>) -> (usize, String) {
    let mut v = latencies.lock().unwrap_or_else(|e| e.into_inner()).clone();
    v.sort_unstable();
    let line = format!(
        "{name:<34} {:>8} round trips   p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        v.len(),
        percentile(&v, 50),
        percentile(&v, 99),
        v.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    (v.len(), line)
}

/// Prints the one final block; returns the number of checker errors.
fn report(shared: &Shared, elapsed: Duration) -> u64 {
    let counts = shared.stats.snapshot();
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    let (echo_n, echo_line) = latency_line("checker echo (/)", &shared.echo_latency);
    let (bcast_n, bcast_line) =
        latency_line("checker broadcast (/broadcast)", &shared.broadcast_latency);
    let mismatches: u64 = WRONG_BYTES.iter().map(|k| get(k)).sum();
    let failures: u64 = FAILED_ROUND_TRIPS.iter().map(|k| get(k)).sum();
    let errors = mismatches + failures + u64::from(echo_n == 0) + u64::from(bcast_n == 0);
    println!(
        "=== soak tool: {} against ws://{} ===",
        if shared.settings.self_test {
            "self-test"
        } else {
            "soak"
        },
        shared.settings.addr
    );
    println!("{:<34} {}", "load", describe(&shared.settings));
    println!("{:<34} {:.1} s", "ran for", elapsed.as_secs_f64());
    println!(
        "{:<34} {}",
        "connections served (upgrades)",
        get("upgrades")
    );
    println!("{echo_line}");
    println!("{bcast_line}");
    println!(
        "{:<34} {} (wrong bytes: {mismatches}, failed round trips: {failures})",
        "checker errors", errors
    );
    println!("{:<34} {}", "churn connections", get("churn_upgrades"));
    println!(
        "{:<34} {}",
        "abusive connections",
        get("abusive_connections")
    );
    println!("counts:");
    for (key, value) in &counts {
        println!("  {key:<52} {value}");
    }
    println!(
        "RESULT upgrades={} checker_round_trips={} echo_round_trips={echo_n} broadcast_round_trips={bcast_n} checker_errors={errors}",
        get("upgrades"),
        echo_n + bcast_n
    );
    errors
}

// ---------------------------------------------------------------------------------------------
// Self-test: a deliberately broken server that the checker must catch

/// Echoes, but changes one byte of every fifth message.
struct BrokenEcho(u64);

impl Handler for BrokenEcho {
    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        self.0 += 1;
        if !self.0.is_multiple_of(5) {
            ctx.echo();
            return;
        }
        match message {
            Message::Text(text) => {
                let mut changed = text.to_string();
                changed.push('!');
                ctx.send_text(&changed);
            }
            Message::Binary(bytes) => {
                let mut changed = bytes.to_vec();
                if let Some(last) = changed.last_mut() {
                    *last ^= 0x20;
                }
                ctx.send_binary(&changed);
            }
        }
    }
}

/// Broadcasts, but changes every fifth message and drops every seventh.
struct BrokenBroadcast(u64);

impl Handler for BrokenBroadcast {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.subscribe("all");
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        self.0 += 1;
        if self.0.is_multiple_of(7) {
            return;
        }
        match message {
            Message::Text(text) if self.0.is_multiple_of(5) => {
                let changed = format!("{text}?");
                ctx.publish("all", Message::Text(&changed), Publish::ToOthers);
            }
            _ => {
                ctx.publish("all", message, Publish::ToOthers);
            }
        }
    }
}

fn self_test(settings: &mut Settings) -> ExitCode {
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .route("/", BrokenEcho(0))
        .route("/broadcast", BrokenBroadcast(0))
        .build();
    let server = match server {
        Ok(server) => server,
        Err(e) => {
            eprintln!("soak: self-test server: {e}");
            return ExitCode::FAILURE;
        }
    };
    settings.addr = server.local_addr();
    settings.duration = Duration::from_secs(3);
    let handle = server.shutdown_handle();
    let runner = thread::spawn(move || server.run());
    let shared = new_shared(settings.clone());
    let started = Instant::now();
    let threads = [
        spawn("check-echo", &shared, check_echo),
        spawn("check-broadcast", &shared, check_broadcast),
    ];
    for t in threads {
        let _ = t.join();
    }
    let errors = report(&shared, started.elapsed());
    handle.shutdown();
    let _ = runner.join();
    let echo_caught = shared.stats.get("checker_echo_mismatches") > 0;
    let broadcast_caught = shared.stats.get("checker_broadcast_mismatches") > 0
        && shared.stats.get("checker_broadcast_failures") > 0;
    if errors > 0 && echo_caught && broadcast_caught {
        println!("self-test PASSED: the checker caught the broken server ({errors} errors)");
        ExitCode::SUCCESS
    } else {
        println!(
            "self-test FAILED: echo caught {echo_caught}, broadcast caught {broadcast_caught}"
        );
        ExitCode::FAILURE
    }
}

// ---------------------------------------------------------------------------------------------

/// The load, in one line.
fn describe(s: &Settings) -> String {
    format!(
        "{} s against ws://{}: churn {} threads at {}/s; garbage {} threads at {}/s; \
         oversize {} threads at {}/s; {} non-readers; half-open {}x{}; flood {} B x {}/s",
        s.duration.as_secs_f64(),
        s.addr,
        s.churn_threads,
        s.churn_rate,
        s.garbage_threads,
        s.garbage_rate,
        s.oversize_threads,
        s.oversize_rate,
        s.nonreaders,
        s.halfopen_threads,
        s.halfopen_batch,
        s.flood_size,
        s.flood_rate,
    )
}

fn new_shared(settings: Settings) -> Arc<Shared> {
    let deadline = Instant::now() + settings.duration;
    Arc::new(Shared {
        settings,
        deadline,
        stats: Stats::default(),
        echo_latency: Mutex::default(),
        broadcast_latency: Mutex::default(),
        nonce: Rng::new().next() % 1_000_000,
        flood_seq: AtomicU64::new(0),
    })
}

/// A thread's body: runs until the deadline.
type Actor = fn(Arc<Shared>);

fn spawn(name: &str, shared: &Arc<Shared>, actor: Actor) -> thread::JoinHandle<()> {
    let shared = shared.clone();
    let name = name.to_string();
    thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            // An actor that panics is a bug in this tool: count it, never take the run down.
            let caught =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| actor(shared.clone())));
            if caught.is_err() {
                shared.stats.inc(&format!("tool_panics_{name}"));
            }
        })
        .expect("a thread can be started")
}

fn main() -> ExitCode {
    let mut settings = match parse_args() {
        Ok(settings) => settings,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("soak: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if settings.self_test {
        return self_test(&mut settings);
    }
    eprintln!("soak: {}", describe(&settings));
    let shared = new_shared(settings.clone());
    let started = Instant::now();
    let mut threads = vec![
        spawn("check-echo", &shared, check_echo),
        spawn("check-broadcast", &shared, check_broadcast),
        spawn("flood", &shared, flood),
    ];
    if settings.nonreaders > 0 {
        threads.push(spawn("nonreaders", &shared, nonreaders));
    }
    let groups: [(usize, &str, Actor); 4] = [
        (settings.churn_threads, "churn", churn),
        (settings.garbage_threads, "garbage", garbage),
        (settings.oversize_threads, "oversize", oversize),
        (settings.halfopen_threads, "halfopen", halfopen),
    ];
    for (n, name, actor) in groups {
        for i in 0..n {
            threads.push(spawn(&format!("{name}-{i}"), &shared, actor));
        }
    }
    // A progress line every 30 s, on stderr.
    let mut next_progress = started + Duration::from_secs(30);
    while shared.running() {
        thread::sleep(Duration::from_millis(200).min(shared.left().max(Duration::from_millis(1))));
        if Instant::now() >= next_progress && shared.running() {
            next_progress += Duration::from_secs(30);
            eprintln!(
                "soak: {:>4.0} s: {} upgrades, {} echo + {} broadcast round trips, {} checker problems",
                started.elapsed().as_secs_f64(),
                shared.stats.get("upgrades"),
                shared.echo_latency.lock().map(|v| v.len()).unwrap_or(0),
                shared.broadcast_latency.lock().map(|v| v.len()).unwrap_or(0),
                CHECKER_PROBLEMS.iter().map(|k| shared.stats.get(k)).sum::<u64>(),
            );
        }
    }
    for t in threads {
        let _ = t.join();
    }
    let errors = report(&shared, started.elapsed());
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

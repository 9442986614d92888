//! Raw WebSocket over a std `TcpStream`, for the abusers: the upgrade request, masked client
//! frames, a parser of server frames, and helpers that count how a read or write ended instead
//! of failing.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

use base64::Engine as _;

use crate::rng::Rng;
use crate::shared::{Shared, IO_TIMEOUT};

pub fn tcp_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

pub fn upgrade_request(path: &str, addr: SocketAddr, rng: &mut Rng) -> String {
    let key = base64::engine::general_purpose::STANDARD.encode(rng.bytes(16));
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Why a raw upgrade failed.
pub enum UpgradeError {
    Io(io::Error),
    /// The server answered with another status (its status line).
    Refused(String),
}

/// A raw upgraded connection and the bytes read past the response head.
pub struct RawWs {
    pub tcp: TcpStream,
    pub reader: FrameReader,
}

pub fn raw_upgrade(shared: &Shared, path: &str, rng: &mut Rng) -> Result<RawWs, UpgradeError> {
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
pub fn frame_header(opcode: u8, fin: bool, len: u64, mask: [u8; 4]) -> Vec<u8> {
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
pub fn client_frame(opcode: u8, fin: bool, payload: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mask = (rng.next() as u32).to_le_bytes();
    let mut out = frame_header(opcode, fin, payload.len() as u64, mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// One server frame.
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code of a close frame (1005 when it has none).
    pub fn close_code(&self) -> u16 {
        match self.payload.get(..2) {
            Some(code) => u16::from_be_bytes([code[0], code[1]]),
            None => 1005,
        }
    }
}

/// How a read of server frames ended.
pub enum ReadEnd {
    Frame(Frame),
    Eof,
    Reset,
    Timeout,
    Error,
}

/// Parses server frames out of a byte stream.
#[derive(Default)]
pub struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// The next frame, reading until `deadline`.
    pub fn next(&mut self, tcp: &mut TcpStream, deadline: Instant) -> ReadEnd {
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

pub fn classify(e: &io::Error) -> ReadEnd {
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
pub fn expect_close(
    shared: &Shared,
    ws: &mut RawWs,
    deadline: Instant,
    prefix: &str,
) -> Option<u16> {
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
pub fn write_counted(shared: &Shared, tcp: &mut TcpStream, bytes: &[u8], prefix: &str) -> bool {
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

pub fn count_upgrade_error(shared: &Shared, prefix: &str, e: &UpgradeError) {
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

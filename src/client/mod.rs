//! A blocking WebSocket client on the same sans-IO core as the server, in the client role: it
//! masks every frame it sends with a fresh random key (§5.3) and fails on masked server frames,
//! bad UTF-8, bad close frames and the rest exactly as the server does.
//!
//! ```no_run
//! use wsloop::client::{Client, Incoming};
//! use wsloop::Message;
//!
//! let mut client = Client::connect("ws://127.0.0.1:9001/echo")?;
//! client.send(Message::Text("hello"))?;
//! assert_eq!(client.recv()?, Incoming::Text("hello".into()));
//! client.close(wsloop::CloseCode::NORMAL, "done")?;
//! # Ok::<(), wsloop::client::ClientError>(())
//! ```

mod url;

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::protocol::client_handshake::{parse_response, upgrade_request, ResponseError};
use crate::protocol::close::{close_body, CloseCode};
use crate::protocol::error::ProtocolError;
use crate::protocol::frame::{encode_frame, Decoded, FrameDecoder, OpCode, Role};
use crate::protocol::message::{DataKind, MessageAssembler, Received};
use crate::Message;
pub use url::WsUrl;

/// How long [`Client::close`] waits, in all, for the server's close and end of stream.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What a client receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// The server's close frame (already answered): its code and reason.
    Close(CloseCode, String),
}

/// Why a client call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL cannot be used.
    Url(String),
    /// The TCP connection could not be made.
    Connect(io::Error),
    /// The server did not accept the upgrade.
    Handshake(ResponseError),
    /// Reading or writing failed (including read timeouts: `WouldBlock`/`TimedOut`).
    Io(io::Error),
    /// The server broke the protocol; the client sent the matching close code.
    Protocol(ProtocolError),
    /// The connection is closed.
    Closed,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Url(e) => write!(f, "bad URL: {e}"),
            ClientError::Connect(e) => write!(f, "cannot connect: {e}"),
            ClientError::Handshake(e) => write!(f, "handshake refused: {e}"),
            ClientError::Io(e) => write!(f, "connection error: {e}"),
            ClientError::Protocol(e) => write!(f, "server broke the protocol: {e}"),
            ClientError::Closed => f.write_str("the connection is closed"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> ClientError {
        ClientError::Io(e)
    }
}

impl ClientError {
    /// Whether this is a read timeout rather than a failure.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

/// Options for [`Client::connect_with`].
#[derive(Debug, Clone)]
pub struct ClientOptions<'a> {
    /// Subprotocols to offer, in order of preference.
    pub protocols: &'a [&'a str],
    /// The largest message accepted from the server (and frame); larger ones fail with 1009.
    pub max_message_size: usize,
    /// Limit on connecting and on the handshake.
    pub timeout: Duration,
}

impl Default for ClientOptions<'_> {
    fn default() -> Self {
        ClientOptions {
            protocols: &[],
            max_message_size: 64 << 20,
            timeout: Duration::from_secs(10),
        }
    }
}

/// A connected WebSocket client; see the module docs.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    decoder: FrameDecoder,
    assembler: MessageAssembler,
    read_buffer: Box<[u8]>,
    write_buffer: Vec<u8>,
    incoming: VecDeque<Incoming>,
    protocol: Option<String>,
    /// Frames that arrived with the handshake reply, not yet processed.
    leftover: Vec<u8>,
    /// A violation found after messages that are still to be handed out: reported (and the
    /// connection failed) once they have been, so nothing valid before it is lost.
    pending_error: Option<ProtocolError>,
    close_sent: bool,
    close_received: bool,
    failed: bool,
}

/// A random 4-byte masking key or 16-byte nonce from the OS.
fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS entropy source works");
    bytes
}

impl Client {
    /// Connects to a `ws://` URL with default options.
    pub fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, &ClientOptions::default())
    }

    /// Connects and completes the opening handshake (§4.1).
    pub fn connect_with(url: &str, options: &ClientOptions<'_>) -> Result<Client, ClientError> {
        let url = WsUrl::parse(url).map_err(ClientError::Url)?;
        let stream = connect_tcp(&url, options.timeout)?;
        stream.set_read_timeout(Some(options.timeout))?;
        let _ = stream.set_nodelay(true);
        let max = options.max_message_size as u64;
        let mut client = Client {
            stream,
            decoder: FrameDecoder::new(Role::Client, max),
            assembler: MessageAssembler::new(max),
            read_buffer: vec![0; 64 * 1024].into_boxed_slice(),
            write_buffer: Vec::new(),
            incoming: VecDeque::new(),
            protocol: None,
            leftover: Vec::new(),
            pending_error: None,
            close_sent: false,
            close_received: false,
            failed: false,
        };
        client.handshake(&url, options.protocols)?;
        client.stream.set_read_timeout(None)?;
        Ok(client)
    }

    fn handshake(&mut self, url: &WsUrl, protocols: &[&str]) -> Result<(), ClientError> {
        let (request, key) =
            upgrade_request(&url.host_header(), &url.resource, random(), protocols);
        self.stream.write_all(&request)?;
        let mut head = Vec::new();
        loop {
            let n = self.stream.read(&mut self.read_buffer)?;
            if n == 0 {
                return Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            head.extend_from_slice(&self.read_buffer[..n]);
            if let Some(accepted) =
                parse_response(&head, &key, protocols).map_err(ClientError::Handshake)?
            {
                self.protocol = accepted.protocol;
                self.leftover = head.split_off(accepted.head_len);
                return Ok(());
            }
            if head.len() > 64 * 1024 {
                return Err(ClientError::Handshake(ResponseError::Malformed));
            }
        }
    }

    /// The subprotocol the server selected.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Limits how long [`Client::recv`] blocks; `None` blocks until something arrives.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<(), ClientError> {
        Ok(self.stream.set_read_timeout(timeout)?)
    }

    /// Sends a message in one masked frame.
    pub fn send(&mut self, message: Message<'_>) -> Result<(), ClientError> {
        let opcode = match message {
            Message::Text(_) => OpCode::Text,
            Message::Binary(_) => OpCode::Binary,
        };
        self.send_frame(opcode, message.as_bytes())
    }

    /// Sends a ping with `payload` (at most 125 bytes).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.send_frame(OpCode::Ping, &payload[..payload.len().min(125)])
    }

    fn send_frame(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), ClientError> {
        if self.close_sent {
            return Err(ClientError::Closed);
        }
        write_frame(&mut self.stream, &mut self.write_buffer, opcode, payload)?;
        self.close_sent = opcode == OpCode::Close;
        Ok(())
    }

    /// The next message or the server's close. Pings are answered on the way.
    pub fn recv(&mut self) -> Result<Incoming, ClientError> {
        loop {
            if let Some(incoming) = self.incoming.pop_front() {
                return Ok(incoming);
            }
            if let Some(error) = self.pending_error.take() {
                return Err(self.fail(error));
            }
            if !self.leftover.is_empty() {
                let mut frames = std::mem::take(&mut self.leftover);
                self.process(&mut frames)?;
                continue;
            }
            if self.close_received || self.failed {
                return Err(ClientError::Closed);
            }
            let n = self.stream.read(&mut self.read_buffer)?;
            if n == 0 {
                self.failed = true;
                let dropped = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection dropped without a close frame",
                );
                return Err(ClientError::Io(dropped));
            }
            let mut input = std::mem::take(&mut self.read_buffer);
            let result = self.process(&mut input[..n]);
            self.read_buffer = input;
            result?;
        }
    }

    /// Runs received bytes through the decoder and assembler, until they are used up, the
    /// server's close arrives, or a violation is found (kept in `pending_error`).
    fn process(&mut self, input: &mut [u8]) -> Result<(), ClientError> {
        let mut pos = 0;
        while !self.close_received && self.pending_error.is_none() {
            let step = match self.decoder.decode(&mut input[pos..]) {
                Ok(Some(step)) => step,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.pending_error = Some(e);
                    return Ok(());
                }
            };
            pos += step.0;
            let received = match step.1 {
                Decoded::Header(header) => self.assembler.on_header(&header).map(|()| None),
                Decoded::Payload { data, end_of_frame } => {
                    self.assembler.on_payload(data, end_of_frame)
                }
            };
            let incoming = match received {
                Ok(None) => continue,
                Ok(Some(Received::Text(text))) => Incoming::Text(text.to_string()),
                Ok(Some(Received::Binary(data))) => Incoming::Binary(data.to_vec()),
                // Gathered from pieces: handed over without a copy.
                Ok(Some(Received::Gathered(DataKind::Binary))) => {
                    Incoming::Binary(self.assembler.take_message())
                }
                Ok(Some(Received::Gathered(DataKind::Text))) => {
                    match String::from_utf8(self.assembler.take_message()) {
                        Ok(text) => Incoming::Text(text),
                        Err(_) => {
                            self.pending_error = Some(ProtocolError::InvalidUtf8);
                            return Ok(());
                        }
                    }
                }
                Ok(Some(Received::Ping(payload))) => {
                    if !self.close_sent {
                        write_frame(
                            &mut self.stream,
                            &mut self.write_buffer,
                            OpCode::Pong,
                            payload,
                        )?;
                    }
                    continue;
                }
                Ok(Some(Received::Pong(_))) => continue,
                Ok(Some(Received::Close(code, reason))) => {
                    let incoming = Incoming::Close(code, reason.to_string());
                    self.close_received = true;
                    if !self.close_sent {
                        // §5.5.1: echo the code; an empty close is answered with an empty close.
                        let body = if code == CloseCode::NO_STATUS {
                            Vec::new()
                        } else {
                            close_body(code, "")
                        };
                        self.send_frame(OpCode::Close, &body)?;
                    }
                    incoming
                }
                Err(e) => {
                    self.pending_error = Some(e);
                    return Ok(());
                }
            };
            self.incoming.push_back(incoming);
        }
        Ok(())
    }

    /// Fails the connection (§7.1.7): send the error's close code, stop reading frames.
    fn fail(&mut self, error: ProtocolError) -> ClientError {
        self.failed = true;
        if !self.close_sent {
            let _ = self.send_frame(
                OpCode::Close,
                &close_body(error.close_code(), &error.to_string()),
            );
        }
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        ClientError::Protocol(error)
    }

    /// Sends a close frame (§5.5.1) without waiting. Messages the server sent before its own
    /// close still arrive through [`Client::recv`], which then returns the server's close.
    pub fn start_close(&mut self, code: CloseCode, reason: &str) -> Result<(), ClientError> {
        if !self.close_sent {
            let code = if code.is_sendable() {
                code
            } else {
                CloseCode::NORMAL
            };
            self.send_frame(OpCode::Close, &close_body(code, reason))?;
        }
        Ok(())
    }

    /// Starts the closing handshake if it has not started, and waits (up to 5 s) for the
    /// server's close and for the server to close the TCP connection. Messages still arriving
    /// are discarded.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), ClientError> {
        self.start_close(code, reason)?;
        // One deadline for the whole close: a server that keeps sending must not hold it open.
        let deadline = Instant::now() + CLOSE_WAIT;
        while !self.close_received && !self.failed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.recv() {
                Ok(_) => {}
                Err(ClientError::Protocol(e)) => return Err(ClientError::Protocol(e)),
                Err(_) => break,
            }
        }
        // The server closes TCP first (§7.1.1); wait for its FIN within the same deadline.
        let mut sink = [0u8; 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                return Ok(());
            }
            if !matches!(self.stream.read(&mut sink), Ok(n) if n > 0) {
                return Ok(());
            }
        }
    }
}

fn connect_tcp(url: &WsUrl, timeout: Duration) -> Result<TcpStream, ClientError> {
    use std::net::ToSocketAddrs;
    let addrs = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(ClientError::Connect)?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(ClientError::Connect(last))
}

/// Writes one masked frame with a fresh key.
fn write_frame(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    opcode: OpCode,
    payload: &[u8],
) -> io::Result<()> {
    buffer.clear();
    encode_frame(buffer, opcode, payload, Some(random()));
    stream.write_all(buffer)
}

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

mod error;
mod options;
mod refusal;
mod stream;
mod tls_error;
mod url;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::protocol::client_handshake::{
    parse_response_to, upgrade_request_offering, ResponseError,
};
use crate::protocol::close::CloseCode;
pub use crate::protocol::deflate::{ClientOffer, DeflateParams};
use crate::protocol::endpoint::{ClosedBy, Endpoint, EndpointConfig, Event, Phase};
use crate::protocol::error::ProtocolError;
use crate::protocol::outbound::MaskKeys;
use crate::Message;
pub use error::ClientError;
pub use options::ClientOptions;
use stream::Stream;
pub use url::WsUrl;

/// Messages shorter than this are sent uncompressed when permessage-deflate was agreed.
const COMPRESSION_THRESHOLD: usize = 64;

/// How much is read from the server at once.
const READ_BUFFER_SIZE: usize = 64 * 1024;

/// How long [`Client::close`] waits, in all, for the server's close and end of stream.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What a client receives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// The server's close frame (already answered): its code and reason.
    Close(CloseCode, String),
    /// A ping from the server, with its payload (already answered with a pong). Only with
    /// [`ClientOptions::report_pings`].
    Ping(Vec<u8>),
    /// A pong from the server (the answer to [`Client::ping`], or one unasked for), with its
    /// payload. Only with [`ClientOptions::report_pings`].
    Pong(Vec<u8>),
}

/// A connected WebSocket client; see the module docs.
#[derive(Debug)]
pub struct Client {
    stream: Stream,
    /// The protocol endpoint, in the client role.
    ws: Endpoint,
    /// Bytes read from the server; `input[unread..filled]` are not processed yet (the frames
    /// after a message handed out, or after the handshake reply).
    input: Box<[u8]>,
    unread: usize,
    filled: usize,
    incoming: VecDeque<Incoming>,
    protocol: Option<String>,
    /// permessage-deflate as agreed in the handshake.
    compression: Option<DeflateParams>,
    /// Pings and pongs are handed out too ([`ClientOptions::report_pings`]).
    report_pings: bool,
    /// A violation found after messages that are still to be handed out: reported once they
    /// have been, so nothing valid before it is lost. (The endpoint has already sent the
    /// matching close.)
    pending_error: Option<ProtocolError>,
}

/// Masking keys from the OS's entropy source, for a client endpoint (RFC 6455 §5.3: fresh for
/// every frame and unpredictable, §10.3). They are drawn 64 at a time, one system call for 64
/// frames.
pub fn os_mask_keys() -> MaskKeys {
    let mut keys = [0u8; 256];
    let mut used = keys.len();
    MaskKeys::new(move || {
        if used == keys.len() {
            getrandom::fill(&mut keys).expect("the OS entropy source works");
            used = 0;
        }
        used += 4;
        keys[used - 4..used].try_into().expect("4 bytes")
    })
}

/// A random 16-byte handshake nonce from the OS.
fn nonce() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS entropy source works");
    bytes
}

impl Client {
    /// Connects to a `ws://` or `wss://` URL with default options.
    pub fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, &ClientOptions::default())
    }

    /// Connects and completes the opening handshake (§4.1).
    pub fn connect_with(url: &str, options: &ClientOptions<'_>) -> Result<Client, ClientError> {
        let url = WsUrl::parse(url).map_err(ClientError::Url)?;
        // TLS is set up first: a configuration that cannot be made needs no network to say so.
        let tls = match (&options.tls, url.secure) {
            (_, false) => None,
            (Some(config), true) => Some(config.clone()),
            (None, true) => Some(
                crate::tls::client_config(None, false)
                    .map_err(|e| ClientError::TlsSetup(e.to_string()))?,
            ),
        };
        let tcp = connect_tcp(&url, options.timeout)?;
        tcp.set_read_timeout(Some(options.timeout))?;
        let _ = tcp.set_nodelay(true);
        let stream = match tls {
            Some(config) => Stream::tls(tcp, &url.host, config)?,
            None => Stream::Plain(tcp),
        };
        let max = options.max_message_size as u64;
        let config = EndpointConfig {
            max_frame_size: max,
            max_message_size: max,
            ping_interval: None,
            idle_timeout: None,
        };
        let mut ws = Endpoint::client(&config, Instant::now(), os_mask_keys());
        // What the server sent before its close answers ours still reaches `recv`.
        ws.deliver_after_close();
        let mut client = Client {
            stream,
            ws,
            input: vec![0; READ_BUFFER_SIZE].into_boxed_slice(),
            unread: 0,
            filled: 0,
            incoming: VecDeque::new(),
            protocol: None,
            compression: None,
            report_pings: options.report_pings,
            pending_error: None,
        };
        let offers = options.compression.then_some(options.compression_offers);
        client.handshake(&url, options.protocols, offers)?;
        client.stream.set_read_timeout(None)?;
        Ok(client)
    }

    fn handshake(
        &mut self,
        url: &WsUrl,
        protocols: &[&str],
        deflate: Option<&[ClientOffer]>,
    ) -> Result<(), ClientError> {
        let host = url.host_header();
        let (request, key) =
            upgrade_request_offering(&host, &url.resource, nonce(), protocols, deflate);
        self.stream.write_all(&request)?;
        let mut head = Vec::new();
        loop {
            let n = self.stream.read(&mut self.input)?;
            if n == 0 {
                return Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            head.extend_from_slice(&self.input[..n]);
            let parsed = match parse_response_to(&head, &key, protocols, deflate.is_some()) {
                Err(ResponseError::Status(status, reason)) => {
                    let message = refusal::body_reason(&mut self.stream, &head);
                    return Err(ClientError::Refused {
                        status,
                        reason: refusal::one_line(&reason),
                        message,
                    });
                }
                other => other.map_err(ClientError::Handshake)?,
            };
            if let Some(accepted) = parsed {
                self.protocol = accepted.protocol;
                if let Some(params) = &accepted.deflate {
                    self.ws.enable_deflate(params, COMPRESSION_THRESHOLD);
                }
                self.compression = accepted.deflate;
                // The head ended in this read: the frames after it are where they were read.
                self.filled = n;
                self.unread = n - (head.len() - accepted.head_len);
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

    /// permessage-deflate (RFC 7692) as the server agreed to it ([`DeflateParams::header`]
    /// names the parameters), or `None` when messages go uncompressed: it was not offered
    /// ([`ClientOptions::compression`]), or the server declined.
    pub fn compression(&self) -> Option<&DeflateParams> {
        self.compression.as_ref()
    }

    /// Limits how long [`Client::recv`] blocks; `None` blocks until something arrives.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<(), ClientError> {
        Ok(self.stream.set_read_timeout(timeout)?)
    }

    /// Sends a message in one masked frame.
    pub fn send(&mut self, message: Message<'_>) -> Result<(), ClientError> {
        if !self.ws.outbound().send(message) {
            return Err(ClientError::Closed);
        }
        self.flush()
    }

    /// Sends a ping with `payload` (at most 125 bytes).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        if !self.ws.outbound().ping(payload) {
            return Err(ClientError::Closed);
        }
        self.flush()
    }

    /// Writes out what the endpoint queued (the socket blocks until it takes everything).
    fn flush(&mut self) -> Result<(), ClientError> {
        let queue = self.ws.outbound().queue();
        while !queue.is_empty() {
            queue.write_to(&mut self.stream)?;
        }
        Ok(())
    }

    /// The next message, or the server's close (which is answered at once). Pings are
    /// answered on the way (and, with [`ClientOptions::report_pings`], pings and pongs are
    /// returned too). After [`Client::start_close`], the messages the server sent before
    /// its close, then [`ClientError::Closed`]. Blocks until something arrives or the read
    /// timeout ([`Client::set_read_timeout`]) passes; a read interrupted by a signal is tried
    /// again, so a program that handles Ctrl+C sets a timeout to look at its flag.
    pub fn recv(&mut self) -> Result<Incoming, ClientError> {
        loop {
            if let Some(incoming) = self.incoming.pop_front() {
                return Ok(incoming);
            }
            if let Some(error) = self.pending_error.take() {
                // The endpoint sent the error's close code (§7.1.7); reading stops here.
                self.stream.shutdown_write();
                return Err(ClientError::Protocol(error));
            }
            if self.unread < self.filled {
                self.process()?;
                continue;
            }
            if !self.ws.reads_frames() {
                return Err(ClientError::Closed);
            }
            let n = self.stream.read(&mut self.input)?;
            if n == 0 {
                self.ws
                    .drop_connection(CloseCode::ABNORMAL, "", &mut |_, _| {});
                let dropped = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection dropped without a close frame",
                );
                return Err(ClientError::Io(dropped));
            }
            (self.unread, self.filled) = (0, n);
        }
    }

    /// Runs unread bytes through the endpoint up to the first message or close they complete,
    /// then writes what it queued in reply (pongs, a close). One message at a time, so the
    /// caller can answer it before a bad frame behind it fails the connection.
    fn process(&mut self) -> Result<(), ClientError> {
        let Client {
            ws,
            input,
            unread,
            filled,
            incoming,
            pending_error,
            report_pings,
            ..
        } = self;
        let unprocessed = &mut input[*unread..*filled];
        *unread += ws.receive_one(unprocessed, Instant::now(), &mut |_, event| match event {
            Event::Message { message, .. } => incoming.push_back(match message {
                Message::Text(text) => Incoming::Text(text.to_string()),
                Message::Binary(bytes) => Incoming::Binary(bytes.to_vec()),
            }),
            Event::Closed { code, reason, by } => match by {
                ClosedBy::Peer => incoming.push_back(Incoming::Close(code, reason.to_string())),
                ClosedBy::Violation(error) => *pending_error = Some(error),
                ClosedBy::Local | ClosedBy::Dropped => {}
            },
            Event::Ping(payload) if *report_pings => {
                incoming.push_back(Incoming::Ping(payload.to_vec()))
            }
            Event::Pong(payload) if *report_pings => {
                incoming.push_back(Incoming::Pong(payload.to_vec()))
            }
            Event::Ping(_) | Event::Pong(_) => {}
        });
        if !ws.reads_frames() {
            *unread = *filled; // the rest is not for anyone
        }
        self.flush()
    }

    /// Sends a close frame (§5.5.1) without waiting; nothing more can be sent. Every message
    /// the server sent before its own close still arrives through [`Client::recv`]; once the
    /// server's close has arrived (the closing handshake is complete), `recv` returns
    /// [`ClientError::Closed`].
    pub fn start_close(&mut self, code: CloseCode, reason: &str) -> Result<(), ClientError> {
        self.ws.close(code, reason, &mut |_, _| {});
        self.flush()
    }

    /// Starts the closing handshake if it has not started, and waits (up to 5 s) for the
    /// server's close and for the server to close the TCP connection. Messages still arriving
    /// are discarded.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), ClientError> {
        self.start_close(code, reason)?;
        // One deadline for the whole close: a server that keeps sending must not hold it open.
        let deadline = Instant::now() + CLOSE_WAIT;
        while self.ws.phase() == Phase::CloseSent {
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

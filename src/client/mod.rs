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

mod stream;
mod url;

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::protocol::client_handshake::{
    parse_response_to, upgrade_request_offering, ResponseError,
};
use crate::protocol::close::CloseCode;
pub use crate::protocol::deflate::ClientOffer;
use crate::protocol::endpoint::{ClosedBy, Endpoint, EndpointConfig, Event, Phase};
use crate::protocol::error::ProtocolError;
use crate::protocol::outbound::MaskKeys;
use crate::Message;
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
    /// Offer permessage-deflate (RFC 7692); with the server's agreement, messages of 64 bytes
    /// or more are sent compressed, and compressed ones are inflated (within
    /// `max_message_size`).
    pub compression: bool,
    /// With `compression`: the offers to make, in order (empty: the default offer, which asks
    /// nothing of the server).
    pub compression_offers: &'a [ClientOffer],
    /// The TLS configuration for `wss://` URLs; by default the server is verified against
    /// the system's trusted roots ([`crate::tls::client_config`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientOptions<'_> {
    fn default() -> Self {
        ClientOptions {
            protocols: &[],
            max_message_size: 64 << 20,
            timeout: Duration::from_secs(10),
            compression: false,
            compression_offers: &[],
            tls: None,
        }
    }
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
        let tcp = connect_tcp(&url, options.timeout)?;
        tcp.set_read_timeout(Some(options.timeout))?;
        let _ = tcp.set_nodelay(true);
        let stream = if url.secure {
            let config = match &options.tls {
                Some(config) => config.clone(),
                None => crate::tls::client_config(None, false)
                    .map_err(|e| ClientError::Url(e.to_string()))?,
            };
            Stream::tls(tcp, &url.host, config)?
        } else {
            Stream::Plain(tcp)
        };
        let max = options.max_message_size as u64;
        let config = EndpointConfig {
            max_frame_size: max,
            max_message_size: max,
            ping_interval: None,
            idle_timeout: None,
        };
        let mut client = Client {
            stream,
            ws: Endpoint::client(&config, Instant::now(), os_mask_keys()),
            input: vec![0; READ_BUFFER_SIZE].into_boxed_slice(),
            unread: 0,
            filled: 0,
            incoming: VecDeque::new(),
            protocol: None,
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
            if let Some(accepted) = parse_response_to(&head, &key, protocols, deflate.is_some())
                .map_err(ClientError::Handshake)?
            {
                self.protocol = accepted.protocol;
                if let Some(params) = &accepted.deflate {
                    self.ws.enable_deflate(params, COMPRESSION_THRESHOLD);
                }
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

    /// The next message or the server's close. Pings are answered on the way.
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
            Event::Ping(_) | Event::Pong(_) => {}
        });
        if !ws.reads_frames() {
            *unread = *filled; // the rest is not for anyone
        }
        self.flush()
    }

    /// Sends a close frame (§5.5.1) without waiting. Messages the server sent before its own
    /// close still arrive through [`Client::recv`], which then returns the server's close.
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

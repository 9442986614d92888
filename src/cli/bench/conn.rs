//! One load-generator connection on the mio loop: connect, handshake (client side of the
//! protocol core), then send a pre-encoded masked frame as often as asked and report each data
//! message that comes back. What arrives goes through the protocol endpoint in the client role,
//! which validates it, answers pings and runs the closing handshake; large payloads are read
//! straight into the message buffer, as the server does.
//!
//! The frame is framed and masked once (per connection, or once for all) and then sent as is:
//! a load generator needs the server to do the full unmasking work, not fresh keys per frame.

use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use super::payload::{encode, message};
use super::stream::BenchStream;
use wsloop::client::{os_mask_keys, ClientError, WsUrl};
use wsloop::protocol::client_handshake::{parse_response_to, upgrade_request_offering};
use wsloop::protocol::endpoint::{ClosedBy, Endpoint, EndpointConfig, Event, Phase as WsPhase};
use wsloop::{CloseCode, Message};

/// The most copies of the frame written with one system call.
const MAX_COPIES: usize = 64;

/// Where a bench connection is.
#[derive(Debug, PartialEq, Eq)]
pub enum Phase {
    /// TCP connect in progress.
    Connecting,
    /// Upgrade request sent (or being sent); waiting for the 101.
    Handshaking,
    /// Frames flow.
    Open,
    /// The run is over: a close frame is sent or queued; waiting for the server's.
    Closing,
    /// Done, cleanly or not.
    Closed,
}

/// What a read produced.
#[derive(Debug, Default)]
pub struct ReadOutcome {
    /// Data messages completed.
    pub messages: usize,
    /// The connection just opened.
    pub opened: bool,
    /// Bytes read.
    pub bytes: usize,
    /// The connection failed or the server closed it.
    pub failed: Option<String>,
    /// A message came back that is not the one sent: what it was.
    pub mismatch: Option<String>,
    /// A pong was queued: the connection has something to write.
    pub wants_write: bool,
    /// The server answered this connection's close (or hung up) while it was closing.
    pub closed: bool,
}

/// One connection.
pub struct BenchConn {
    pub stream: BenchStream,
    pub phase: Phase,
    handshake_out: Vec<u8>,
    handshake_in: Vec<u8>,
    key: String,
    /// The protocol endpoint once the handshake is done. Its queue holds the control frames
    /// it sends (pongs, the close), written between copies of the data frame.
    ws: Option<Endpoint>,
    /// The frame to send, and how many copies are still to go.
    frame: Arc<[u8]>,
    /// permessage-deflate is offered; if agreed, the message goes compressed.
    compression: bool,
    /// The payload every message that comes back must carry.
    payload: Arc<[u8]>,
    /// It is text (else binary).
    text: bool,
    pub to_send: usize,
    /// Bytes of the first unsent copy already written.
    offset: usize,
    /// Whether each message that arrives must be the one sent (else any message counts).
    pub checks: bool,
    /// Whether it reads once open (a --non-readers connection does not).
    pub reads: bool,
}

impl BenchConn {
    /// A connection that will send `frame` (with `compression`, permessage-deflate is offered,
    /// and if the server agrees, the same message compressed instead) and must get `payload`
    /// back (as text when `text`).
    pub fn new(
        stream: BenchStream,
        url: &WsUrl,
        frame: Arc<[u8]>,
        compression: bool,
        payload: Arc<[u8]>,
        text: bool,
    ) -> BenchConn {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).expect("the OS entropy source works");
        let host = url.host_header();
        let offer = compression.then_some(&[][..]);
        let (request, key) = upgrade_request_offering(&host, &url.resource, nonce, &[], offer);
        BenchConn {
            stream,
            phase: Phase::Connecting,
            handshake_out: request,
            handshake_in: Vec::new(),
            key,
            ws: None,
            frame,
            compression,
            payload,
            text,
            to_send: 0,
            offset: 0,
            checks: true,
            reads: true,
        }
    }

    /// Whether bytes wait to be written.
    pub fn wants_write(&self) -> bool {
        match self.phase {
            Phase::Connecting => true,
            Phase::Closed => false,
            _ if self.stream.records_waiting() => true,
            Phase::Handshaking => !self.handshake_out.is_empty(),
            Phase::Open | Phase::Closing => self.to_send > 0 || self.control_waiting(),
        }
    }

    /// Writes what waits until the socket is full. `Err` means the connection failed.
    pub fn write(&mut self) -> Result<(), String> {
        if self.phase == Phase::Connecting {
            if let Ok(Some(e)) | Err(e) = self.stream.tcp().take_error() {
                return Err(format!("connect failed: {e}"));
            }
            match self.stream.tcp().peer_addr() {
                Ok(_) => {
                    // Small frames must leave at once, not wait for Nagle's algorithm.
                    let _ = self.stream.tcp().set_nodelay(true);
                    self.phase = Phase::Handshaking;
                }
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connect failed: {e}")),
            }
        }
        let result = self.stream.push().and_then(|()| match self.phase {
            Phase::Handshaking => write_some(&mut self.stream, &self.handshake_out).map(|n| {
                self.handshake_out.drain(..n);
            }),
            Phase::Open | Phase::Closing => self.write_frames(),
            _ => Ok(()),
        });
        result.map_err(|e| failure("write", e))
    }

    /// Whether the endpoint has control frames waiting.
    fn control_waiting(&self) -> bool {
        self.ws.as_ref().is_some_and(|ws| ws.buffered() > 0)
    }

    /// Writes the endpoint's control frames, only between data frames; returns whether they
    /// all went out.
    fn write_control(&mut self) -> io::Result<bool> {
        let Some(ws) = self.ws.as_mut().filter(|_| self.offset == 0) else {
            return Ok(false);
        };
        let queue = ws.outbound().queue();
        if !queue.is_empty() {
            queue.write_to(&mut self.stream)?;
        }
        Ok(queue.is_empty())
    }

    /// Writes queued copies of the frame, up to [`MAX_COPIES`] per system call, and pongs
    /// between them.
    fn write_frames(&mut self) -> io::Result<()> {
        if self.control_waiting() && !self.write_control()? {
            return Ok(());
        }
        let len = self.frame.len();
        while self.to_send > 0 {
            let copies = self.to_send.min(MAX_COPIES);
            let mut slices = [IoSlice::new(&self.frame); MAX_COPIES];
            slices[0] = IoSlice::new(&self.frame[self.offset..]);
            // One frame goes out with `send`, cheaper in the kernel than `writev`.
            let result = if copies == 1 {
                self.stream.write(&slices[0])
            } else {
                self.stream.write_vectored(&slices[..copies])
            };
            let written = match result {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            let progressed = self.offset + written;
            self.to_send -= progressed / len;
            self.offset = progressed % len;
        }
        // A close queued after the last frame.
        self.write_control()?;
        Ok(())
    }

    /// Ends an open connection the way RFC 6455 asks (§7.1.2): finishes the frame being
    /// written, sends no more messages, queues a close 1000, and waits for the server's close.
    pub fn start_close(&mut self) {
        if self.phase != Phase::Open {
            return;
        }
        self.phase = Phase::Closing;
        self.to_send = usize::from(self.offset > 0);
        if let Some(ws) = self.ws.as_mut() {
            ws.close(CloseCode::NORMAL, "bench done", &mut |_, _| {});
        }
    }

    /// Reads until `WouldBlock` into `buffer`, decoding what arrives. A failure is reported in
    /// the outcome; the caller closes the connection.
    ///
    /// With `short_read_drains`, a read that does not fill the buffer ends the loop: the
    /// socket was empty then, and Linux raises a new edge for anything that arrives later.
    pub fn read(&mut self, buffer: &mut [u8], short_read_drains: bool) -> ReadOutcome {
        let short_read_drains = short_read_drains && self.stream.short_read_drains();
        let mut outcome = ReadOutcome::default();
        loop {
            let now = Instant::now();
            // The rest of a large payload goes straight into its message's buffer.
            let in_place = match self.ws.as_mut() {
                Some(ws) => {
                    let stream = &mut self.stream;
                    let expected = self.checks.then_some((&self.payload[..], self.text));
                    let phase = &self.phase;
                    let mut report = |_: &mut _, event: Event<'_>| {
                        note(event, phase, expected, &mut outcome);
                    };
                    ws.receive_in_place(|room| stream.read(room), now, &mut report)
                }
                None => None,
            };
            let (result, offered) = match in_place {
                Some(done) => done,
                None => {
                    let result = self.stream.read(buffer);
                    if let Ok(n @ 1..) = result {
                        if let Err(e) = self.receive(&mut buffer[..n], now, &mut outcome) {
                            outcome.failed = Some(e);
                            return outcome;
                        }
                    }
                    (result, buffer.len())
                }
            };
            if self
                .ws
                .as_ref()
                .is_some_and(|ws| ws.phase() == WsPhase::Closed)
            {
                if self.phase == Phase::Closing && outcome.failed.is_none() {
                    outcome.closed = true;
                }
                return outcome;
            }
            match result {
                Ok(0) if self.phase == Phase::Closing => {
                    outcome.closed = true;
                    return outcome;
                }
                Ok(0) => {
                    outcome.failed = Some("the server closed the connection".into());
                    return outcome;
                }
                Ok(n) => {
                    outcome.bytes += n;
                    if short_read_drains && n < offered {
                        return outcome;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return outcome,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    outcome.failed = Some(failure("read", e));
                    return outcome;
                }
            }
        }
    }

    fn receive(
        &mut self,
        input: &mut [u8],
        now: Instant,
        outcome: &mut ReadOutcome,
    ) -> Result<(), String> {
        if let Some(ws) = self.ws.as_mut() {
            let phase = &self.phase;
            let expected = self.checks.then_some((&self.payload[..], self.text));
            ws.receive(input, now, &mut |_, event| {
                note(event, phase, expected, outcome)
            });
            return Ok(());
        }
        self.handshake_in.extend_from_slice(input);
        let offered = self.compression;
        match parse_response_to(&self.handshake_in, &self.key, &[], offered) {
            Ok(None) => Ok(()),
            Ok(Some(accepted)) => {
                self.phase = Phase::Open;
                outcome.opened = true;
                let mut rest = self.handshake_in.split_off(accepted.head_len);
                self.handshake_in = Vec::new();
                let mut ws = Endpoint::client(&ENDPOINT, now, os_mask_keys());
                if let Some(params) = &accepted.deflate {
                    // Only control frames go through the endpoint: it need compress nothing.
                    ws.enable_deflate(params, usize::MAX);
                    // The message compressed as agreed, framed once for the whole run.
                    self.frame = encode(message(&self.payload, self.text), Some(params));
                }
                self.ws = Some(ws);
                self.receive(&mut rest, now, outcome)
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The bench's endpoint: as large a message as the server may echo, no keepalive.
const ENDPOINT: EndpointConfig = EndpointConfig {
    max_frame_size: 1 << 30,
    max_message_size: 1 << 30,
    ping_interval: None,
    idle_timeout: None,
};

/// Whether a message that came back is the one sent: the same kind, as long, the same bytes (all of
/// them up to 4 KiB; beyond, the first and last 2 KiB, so a large echo costs no full compare).
fn check(message: Message<'_>, (payload, text): (&[u8], bool)) -> Result<(), String> {
    let (kind, bytes) = match message {
        Message::Text(text) => ("text", text.as_bytes()),
        Message::Binary(bytes) => ("binary", bytes),
    };
    let sent = if text { "text" } else { "binary" };
    let same = |n: usize| {
        bytes[..n] == payload[..n] && bytes[bytes.len() - n..] == payload[payload.len() - n..]
    };
    if kind == sent && bytes.len() == payload.len() {
        if same(bytes.len().min(2048)) {
            return Ok(());
        }
        return Err(
            "got another payload of the same size (another connection's message: \
                    not an echo endpoint?)"
                .into(),
        );
    }
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(60)]);
    Err(format!(
        "got {kind} of {} bytes ({shown:?}), sent {sent} of {} bytes",
        bytes.len(),
        payload.len()
    ))
}

/// Adds what the endpoint reported to the outcome of a read.
fn note(
    event: Event<'_>,
    phase: &Phase,
    expected: Option<(&[u8], bool)>,
    outcome: &mut ReadOutcome,
) {
    match event {
        Event::Message { message, .. } => match expected.map_or(Ok(()), |e| check(message, e)) {
            Ok(()) => outcome.messages += 1,
            Err(why) => {
                outcome.mismatch.get_or_insert(why);
            }
        },
        // The endpoint queued the pong.
        Event::Ping(_) => outcome.wants_write = true,
        Event::Pong(_) => {}
        Event::Closed { code, reason, by } => {
            outcome.wants_write = true;
            match by {
                ClosedBy::Local => {}
                ClosedBy::Peer if *phase == Phase::Closing => outcome.closed = true,
                ClosedBy::Peer | ClosedBy::Dropped => {
                    outcome.failed = Some(format!("the server closed with {code} {reason:?}"));
                }
                ClosedBy::Violation(e) => {
                    outcome.failed = Some(format!("bad frame from the server: {e}"));
                }
            }
        }
    }
}

/// Why a read or write failed, in one line; a TLS failure in plain words (with what to do when
/// the server's certificate was not accepted).
fn failure(what: &str, e: io::Error) -> String {
    match ClientError::from(e) {
        ClientError::Io(e) => format!("{what} failed: {e}"),
        certificate @ ClientError::Certificate(_) => format!(
            "{certificate}; --ca FILE trusts the CA that signed it (--insecure skips the check, \
             for testing only)"
        ),
        tls => tls.to_string(),
    }
}

fn write_some(stream: &mut BenchStream, bytes: &[u8]) -> io::Result<usize> {
    match stream.write(bytes) {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

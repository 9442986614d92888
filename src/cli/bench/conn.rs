//! One load-generator connection on the mio loop: connect, handshake (client side of the
//! protocol core), then send a pre-encoded masked frame as often as asked and report each data
//! message that comes back.
//!
//! The frame is masked once per connection with a random key and then sent as is: a load
//! generator needs the server to do the full unmasking work, not fresh keys per frame.

use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use wsloop::client::WsUrl;
use wsloop::protocol::client_handshake::{parse_response, upgrade_request};
use wsloop::protocol::frame::{encode_frame, Decoded, FrameDecoder, OpCode, Role};

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
    /// The connection failed or the server closed it.
    pub failed: Option<String>,
    /// A pong was queued: the connection has something to write.
    pub wants_write: bool,
    /// The server answered this connection's close (or hung up) while it was closing.
    pub closed: bool,
}

/// One connection.
pub struct BenchConn {
    pub stream: TcpStream,
    pub phase: Phase,
    handshake_out: Vec<u8>,
    handshake_in: Vec<u8>,
    key: String,
    decoder: FrameDecoder,
    /// The current frame is a final data frame (its end completes a message).
    in_final_data: bool,
    /// The payload of a ping being received, to answer with a pong (§5.5.2).
    ping: Option<Vec<u8>>,
    /// Control frames to send (pongs), written between data frames.
    control_out: Vec<u8>,
    /// The frame to send, and how many copies are still to go.
    frame: Arc<[u8]>,
    pub to_send: usize,
    /// Bytes of the first unsent copy already written.
    offset: usize,
}

impl BenchConn {
    pub fn new(stream: TcpStream, url: &WsUrl, frame: Arc<[u8]>) -> BenchConn {
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).expect("the OS entropy source works");
        let (request, key) = upgrade_request(&url.host_header(), &url.resource, nonce, &[]);
        BenchConn {
            stream,
            phase: Phase::Connecting,
            handshake_out: request,
            handshake_in: Vec::new(),
            key,
            decoder: FrameDecoder::new(Role::Client, 1 << 30),
            in_final_data: false,
            ping: None,
            control_out: Vec::new(),
            frame,
            to_send: 0,
            offset: 0,
        }
    }

    /// Whether bytes wait to be written.
    pub fn wants_write(&self) -> bool {
        match self.phase {
            Phase::Connecting => true,
            Phase::Handshaking => !self.handshake_out.is_empty(),
            Phase::Open | Phase::Closing => self.to_send > 0 || !self.control_out.is_empty(),
            Phase::Closed => false,
        }
    }

    /// Writes what waits until the socket is full. `Err` means the connection failed.
    pub fn write(&mut self) -> Result<(), String> {
        if self.phase == Phase::Connecting {
            if let Ok(Some(e)) | Err(e) = self.stream.take_error() {
                return Err(format!("connect failed: {e}"));
            }
            match self.stream.peer_addr() {
                Ok(_) => {
                    // Small frames must leave at once, not wait for Nagle's algorithm.
                    let _ = self.stream.set_nodelay(true);
                    self.phase = Phase::Handshaking;
                }
                Err(e) if e.kind() == ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connect failed: {e}")),
            }
        }
        let result = match self.phase {
            Phase::Handshaking => write_some(&mut self.stream, &self.handshake_out).map(|n| {
                self.handshake_out.drain(..n);
            }),
            Phase::Open | Phase::Closing => self.write_frames(),
            _ => Ok(()),
        };
        result.map_err(|e| format!("write failed: {e}"))
    }

    /// Writes queued copies of the frame, up to [`MAX_COPIES`] per system call, and pongs
    /// between them.
    fn write_frames(&mut self) -> io::Result<()> {
        if self.offset == 0 && !self.control_out.is_empty() {
            let n = write_some(&mut self.stream, &self.control_out)?;
            self.control_out.drain(..n);
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
        if self.offset == 0 && !self.control_out.is_empty() {
            let n = write_some(&mut self.stream, &self.control_out)?;
            self.control_out.drain(..n);
        }
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
        let mut key = [0u8; 4];
        getrandom::fill(&mut key).expect("the OS entropy source works");
        let mut body = 1000u16.to_be_bytes().to_vec();
        body.extend_from_slice(b"bench done");
        encode_frame(&mut self.control_out, OpCode::Close, &body, Some(key));
    }

    /// Reads until `WouldBlock` into `buffer`, decoding what arrives. A failure is reported in
    /// the outcome; the caller closes the connection.
    ///
    /// With `short_read_drains`, a read that does not fill the buffer ends the loop: the
    /// socket was empty then, and Linux raises a new edge for anything that arrives later.
    pub fn read(&mut self, buffer: &mut [u8], short_read_drains: bool) -> ReadOutcome {
        let mut outcome = ReadOutcome::default();
        loop {
            match self.stream.read(buffer) {
                Ok(0) if self.phase == Phase::Closing => {
                    outcome.closed = true;
                    return outcome;
                }
                Ok(0) => {
                    outcome.failed = Some("the server closed the connection".into());
                    return outcome;
                }
                Ok(n) => {
                    if let Err(e) = self.receive(&mut buffer[..n], &mut outcome) {
                        outcome.failed = Some(e);
                        return outcome;
                    }
                    if outcome.closed {
                        return outcome;
                    }
                    if short_read_drains && n < buffer.len() {
                        return outcome;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return outcome,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    outcome.failed = Some(format!("read failed: {e}"));
                    return outcome;
                }
            }
        }
    }

    fn receive(&mut self, input: &mut [u8], outcome: &mut ReadOutcome) -> Result<(), String> {
        if self.phase != Phase::Handshaking {
            return self.receive_frames(input, outcome);
        }
        self.handshake_in.extend_from_slice(input);
        match parse_response(&self.handshake_in, &self.key, &[]) {
            Ok(None) => Ok(()),
            Ok(Some(accepted)) => {
                self.phase = Phase::Open;
                outcome.opened = true;
                let mut rest = self.handshake_in.split_off(accepted.head_len);
                self.handshake_in = Vec::new();
                self.receive_frames(&mut rest, outcome)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn receive_frames(
        &mut self,
        input: &mut [u8],
        outcome: &mut ReadOutcome,
    ) -> Result<(), String> {
        let mut pos = 0;
        loop {
            let (n, decoded) = match self.decoder.decode(&mut input[pos..]) {
                Ok(Some(step)) => step,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("bad frame from the server: {e}")),
            };
            pos += n;
            match decoded {
                Decoded::Header(header) => {
                    if header.opcode == OpCode::Close && self.phase == Phase::Closing {
                        outcome.closed = true;
                        return Ok(());
                    }
                    if header.opcode == OpCode::Close {
                        return Err("the server sent a close frame".into());
                    }
                    self.in_final_data = header.fin && !header.opcode.is_control();
                    self.ping = (header.opcode == OpCode::Ping).then(Vec::new);
                }
                Decoded::Payload { data, end_of_frame } => {
                    if end_of_frame && self.in_final_data {
                        outcome.messages += 1;
                    }
                    if let Some(ping) = self.ping.as_mut() {
                        ping.extend_from_slice(data);
                        if end_of_frame {
                            let mut key = [0u8; 4];
                            getrandom::fill(&mut key).expect("the OS entropy source works");
                            encode_frame(&mut self.control_out, OpCode::Pong, ping, Some(key));
                            self.ping = None;
                            outcome.wants_write = true;
                        }
                    }
                }
            }
        }
    }
}

fn write_some(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<usize> {
    match stream.write(bytes) {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

//! The fuzz harnesses: one function per target, each taking arbitrary bytes and panicking only
//! when wsloop's protocol core panics itself or breaks one of the invariants checked here.
//!
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`, nightly, libFuzzer) and the
//! stable smoke test (`tests/fuzz_smoke.rs`, which drives them with mutated seed files), both
//! through `#[path]`. Only wsloop's public API is used, and nothing beyond std, so it builds
//! in either crate. `fuzz/README.md` describes the input format of each harness.
#![allow(dead_code)]

use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsloop::protocol::client_handshake::{parse_response_to, Accepted, ResponseError};
use wsloop::protocol::close::{close_body, parse_close_body, CloseCode};
use wsloop::protocol::deflate::{
    inflate_shared, max_compressed_len, negotiate, CompressionMode, DeflateParams, Deflater,
    InflateError, Inflater,
};
use wsloop::protocol::endpoint::{ClosedBy, Endpoint, EndpointConfig, Event, Phase, Timer};
use wsloop::protocol::error::ProtocolError;
use wsloop::protocol::frame::{encode_frame, Decoded, FrameDecoder, FrameHeader, OpCode, Role};
use wsloop::protocol::handshake::{
    accept_key, classify, error_response, parse_request, switching_protocols,
    switching_protocols_with, without_body, Intent, Parsed, Request,
};
use wsloop::protocol::outbound::{MaskKeys, Message, Outbound, Prepared};
use wsloop::protocol::write_queue::WriteQueue;

/// The request head limit the server uses by default (`Config::max_header_size`).
pub const MAX_HEAD: usize = 8 << 10;
/// The key of RFC 6455 §1.3's example, which the client handshake harness "sent".
pub const CLIENT_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// Its `Sec-WebSocket-Accept`.
pub const CLIENT_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// The subprotocols the client handshake harness "offered".
pub const CLIENT_PROTOCOLS: &[&str] = &["chat", "superchat"];
/// The threshold the client compresses from (`client::COMPRESSION_THRESHOLD` is private).
const CLIENT_COMPRESSION_THRESHOLD: usize = 64;

/// A harness: arbitrary bytes in, a panic out if wsloop misbehaves.
pub type Harness = fn(&[u8]);

/// Every harness, by target name: what the smoke test dispatches on.
pub const TARGETS: &[(&str, Harness)] = &[
    ("handshake_request", handshake_request),
    ("client_handshake", client_handshake),
    ("endpoint_server", endpoint_server),
    ("endpoint_client", endpoint_client),
    ("close_frame", close_frame),
    ("deflate", deflate),
];

/// Finding 1 (fixed): with context takeover, `Deflater::compress` of an empty message that
/// follows another compressed it to no bytes at all (zlib skips a second consecutive sync
/// flush), where RFC 7692 §7.2.3.6 wants the empty stored block `0x00`; the receiver's appended
/// tail then opened a stored block and the next message failed to inflate (1002). Kept as a
/// regression check (fuzz/artifacts-found/ holds its reproducers).
fn known_empty_compressed_message() {
    panic!(
        "finding 1 is back: an empty message compressed to an empty payload (RFC 7692 \
         §7.2.3.6 wants 0x00), with context takeover"
    );
}

// ---------------------------------------------------------------------------------------------
// (1) The server's upgrade-request parser: `parse_request` and `classify`.
// ---------------------------------------------------------------------------------------------

/// The input is the raw bytes a client sent, head and whatever follows it.
pub fn handshake_request(data: &[u8]) {
    let full = parse_request(data, MAX_HEAD);
    check_parsed(data, MAX_HEAD, &full);
    // A smaller limit never turns a refusal or a partial head into a different request.
    let small_max = (data.len() * 3 / 4).clamp(1, MAX_HEAD);
    let small = parse_request(data, small_max);
    check_parsed(data, small_max, &small);
    if let Ok(Parsed::Complete { request, head_len }) = &small {
        match &full {
            Ok(Parsed::Complete {
                request: r,
                head_len: n,
            }) => assert!(
                r == request && n == head_len,
                "the head limit changed the request"
            ),
            other => panic!("complete under {small_max} bytes but {other:?} under {MAX_HEAD}"),
        }
    }
    if let Ok(Parsed::Complete { request, head_len }) = full {
        check_request(data, &request, head_len);
    }
}

fn check_parsed(data: &[u8], max: usize, parsed: &Result<Parsed, wsloop::HttpError>) {
    match parsed {
        Ok(Parsed::Partial) => assert!(data.len() < max, "partial at or over the head limit"),
        Ok(Parsed::Complete { head_len, .. }) => {
            assert!(
                *head_len > 0 && *head_len <= data.len().min(max),
                "head_len {head_len}"
            );
        }
        Err(error) => {
            assert!(
                matches!(error.status, 400 | 431),
                "parse refused with {error:?}"
            );
            check_error_response(error);
        }
    }
}

fn check_error_response(error: &wsloop::HttpError) {
    let response = error_response(error);
    let status = format!("HTTP/1.1 {} ", error.status);
    assert!(response.starts_with(status.as_bytes()));
    let head = without_body(response.clone());
    assert!(head.ends_with(b"\r\n\r\n") && response.starts_with(&head));
    assert!(response.ends_with(format!("{}\n", error.reason).as_bytes()));
}

fn check_request(data: &[u8], request: &Request, head_len: usize) {
    // The head alone parses to the same request, and one byte less does not complete it.
    match parse_request(&data[..head_len], MAX_HEAD) {
        Ok(Parsed::Complete {
            request: r,
            head_len: n,
        }) => assert!(
            &r == request && n == head_len,
            "the head alone parses differently"
        ),
        other => panic!("the head alone is {other:?}"),
    }
    if let Ok(Parsed::Complete { .. }) = parse_request(&data[..head_len - 1], MAX_HEAD) {
        panic!("a head one byte shorter is complete too");
    }
    assert!(request.target().starts_with(request.path()));
    assert!(!request.method().is_empty());
    match classify(request) {
        Ok(Intent::Upgrade { accept }) => check_upgrade(request, &accept),
        Ok(Intent::Plain) => assert!(
            !has_token(request, "Upgrade", "websocket"),
            "an Upgrade: websocket request classified as plain"
        ),
        Err(error) => {
            assert!(
                matches!(error.status, 400 | 426),
                "classify refused with {error:?}"
            );
            check_error_response(&error);
        }
    }
}

/// Splits a comma-separated header value as RFC 9110 §5.6.1 lists are split.
fn tokens(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(|t| t.trim_matches([' ', '\t']))
        .filter(|t| !t.is_empty())
        .collect()
}

fn has_token(request: &Request, name: &str, token: &str) -> bool {
    request
        .headers_named(name)
        .flat_map(tokens)
        .any(|t| t.eq_ignore_ascii_case(token))
}

/// An accepted upgrade satisfies every item of RFC 6455 §4.2.1, and the 101 built for it is
/// accepted by wsloop's own client with the same subprotocol and deflate parameters.
fn check_upgrade(request: &Request, accept: &str) {
    assert_eq!(request.method(), "GET");
    assert!(request.header("Host").is_some(), "upgrade without Host");
    assert!(has_token(request, "Upgrade", "websocket"));
    assert!(has_token(request, "Connection", "upgrade"));
    let versions: Vec<&str> = request.headers_named("Sec-WebSocket-Version").collect();
    assert_eq!(versions, ["13"]);
    let keys: Vec<&str> = request.headers_named("Sec-WebSocket-Key").collect();
    assert_eq!(keys.len(), 1, "upgrade accepted with keys {keys:?}");
    let key = keys[0];
    let alphabet = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    assert!(
        key.len() == 24 && key.ends_with("==") && key.bytes().take(22).all(alphabet),
        "upgrade accepted with key {key:?}, not 16 bytes in base64"
    );
    assert_eq!(accept, accept_key(key));
    assert_eq!(accept.len(), 28);

    let offered: Vec<&str> = request.protocols().collect();
    // A server may only pick a subprotocol that is a token (RFC 6455 §4.1, RFC 9110 §5.6.2).
    let chosen = offered.iter().copied().find(|p| p.bytes().all(is_tchar));
    let modes = [
        CompressionMode::Off,
        CompressionMode::Shared,
        CompressionMode::Dedicated { window_bits: 9 },
        CompressionMode::Dedicated { window_bits: 12 },
        CompressionMode::Dedicated { window_bits: 15 },
    ];
    for mode in modes {
        let params = negotiate(request.headers_named("Sec-WebSocket-Extensions"), mode);
        check_negotiated(params.as_ref(), mode);
        let extensions = params.map(|p| p.header());
        let reply = switching_protocols_with(accept, chosen, extensions.as_deref());
        let mut wire = reply.clone();
        wire.extend_from_slice(b"\x81\x00");
        let result = parse_response_to(&wire, key, &offered, true);
        if params.is_some_and(|p| p.client_max_window_bits == Some(8)) {
            // The server may grant the 8-bit window a client offered; wsloop's client never
            // offers it and refuses it (zlib cannot compress with 8 bits).
            let refused = Err(ResponseError::BadHeader("Sec-WebSocket-Extensions"));
            assert_eq!(result, refused);
            continue;
        }
        let expected = Accepted {
            head_len: reply.len(),
            protocol: chosen.map(str::to_string),
            deflate: params.map(|p| DeflateParams {
                client_no_context_takeover: true,
                ..p
            }),
        };
        assert_eq!(result, Ok(Some(expected)), "our own 101 for {mode:?}");
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

fn check_negotiated(params: Option<&DeflateParams>, mode: CompressionMode) {
    let Some(p) = params else { return };
    let limit = match mode {
        CompressionMode::Off => panic!("compression off, yet deflate negotiated"),
        CompressionMode::Shared => {
            assert!(p.server_no_context_takeover && p.client_no_context_takeover);
            assert_eq!(p.client_max_window_bits, None);
            15
        }
        CompressionMode::Dedicated { window_bits } => window_bits,
    };
    assert!(p
        .server_max_window_bits
        .is_none_or(|b| (9..=limit).contains(&b)));
    assert!(p
        .client_max_window_bits
        .is_none_or(|b| (8..=limit).contains(&b)));
    if limit < 15 {
        assert!(
            p.server_max_window_bits.is_some(),
            "a bounded window left unnamed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (2) The client's handshake response parser: `parse_response_to`.
// ---------------------------------------------------------------------------------------------

/// The input is what the server answered to a request with [`CLIENT_KEY`] offering
/// [`CLIENT_PROTOCOLS`] (and permessage-deflate, in one of the two parses). When the response
/// is accepted, the bytes after its head go to a client endpoint set up as agreed.
pub fn client_handshake(data: &[u8]) {
    let plain = parse_response_to(data, CLIENT_KEY, CLIENT_PROTOCOLS, false);
    let offered = parse_response_to(data, CLIENT_KEY, CLIENT_PROTOCOLS, true);
    // Without the offer, an agreed permessage-deflate is refused; nothing else changes, but
    // for that refusal coming first.
    let extension = ResponseError::BadHeader("Sec-WebSocket-Extensions");
    let plain_refused = plain.as_ref().err() == Some(&extension);
    match &offered {
        Ok(None) => assert_eq!(plain, Ok(None), "completeness depends on the offer"),
        Ok(Some(accepted)) if accepted.deflate.is_some() => assert!(plain_refused, "{plain:?}"),
        Ok(Some(_)) => assert_eq!(plain, offered),
        Err(error) if *error == extension => assert!(plain_refused, "{plain:?}"),
        Err(error) => assert!(
            plain.as_ref().err() == Some(error) || plain_refused,
            "offering deflate changed {plain:?} into {error:?}"
        ),
    }
    if let Ok(Some(accepted)) = &plain {
        assert_eq!(accepted.deflate, None);
    }
    match offered {
        Ok(None) => {}
        Err(ResponseError::Status(code, _)) => assert_ne!(code, 101),
        Err(ResponseError::Malformed | ResponseError::BadHeader(_)) => {}
        Ok(Some(accepted)) => {
            check_accepted(data, &accepted);
            let deflate = accepted
                .deflate
                .map(|params| (params, CLIENT_COMPRESSION_THRESHOLD));
            let script = Script {
                flags: 0,
                steps: Vec::new(),
                stream: &data[accepted.head_len..],
            };
            run_endpoint(Role::Client, deflate, &script);
        }
    }
}

fn check_accepted(data: &[u8], accepted: &Accepted) {
    let head_len = accepted.head_len;
    assert!(
        head_len > 0 && head_len <= data.len(),
        "head_len {head_len}"
    );
    let head = &data[..head_len];
    assert!(
        head.windows(CLIENT_ACCEPT.len())
            .any(|w| w == CLIENT_ACCEPT.as_bytes()),
        "accepted a 101 without the right Sec-WebSocket-Accept"
    );
    if let Some(protocol) = &accepted.protocol {
        assert!(
            CLIENT_PROTOCOLS.contains(&protocol.as_str()),
            "{protocol:?}"
        );
    }
    if let Some(p) = accepted.deflate {
        assert!(
            p.client_no_context_takeover,
            "the client's offer keeps no context"
        );
        assert!(p
            .client_max_window_bits
            .is_none_or(|b| (9..=15).contains(&b)));
        assert!(p
            .server_max_window_bits
            .is_none_or(|b| (8..=15).contains(&b)));
    }
    // The head alone is the same reply, and one byte less is not complete.
    let again = parse_response_to(head, CLIENT_KEY, CLIENT_PROTOCOLS, true);
    assert_eq!(again.as_ref().ok().and_then(Option::as_ref), Some(accepted));
    let shorter = parse_response_to(&head[..head_len - 1], CLIENT_KEY, CLIENT_PROTOCOLS, true);
    assert!(
        !matches!(shorter, Ok(Some(_))),
        "a head one byte shorter is complete too"
    );
}

// ---------------------------------------------------------------------------------------------
// (3), (4) The endpoint in either role; (6b) with permessage-deflate.
// ---------------------------------------------------------------------------------------------

/// A server endpoint (frames from a client): see [`Script`] for the input format.
pub fn endpoint_server(data: &[u8]) {
    run_endpoint(Role::Server, None, &Script::parse(data));
}

/// A client endpoint (frames from a server): see [`Script`] for the input format.
pub fn endpoint_client(data: &[u8]) {
    run_endpoint(Role::Client, None, &Script::parse(data));
}

/// An endpoint's input: what to do, then the bytes the peer sends.
///
/// - byte 0, `flags`: bits 0-1 the limits ([`config`]), bit 2 a 10 s ping interval, bit 3 a
///   30 s idle timeout, bit 4 read with `receive_one` (else `receive`), bit 5 echo every message
///   (a message starting with `!` is answered with a close from inside the callback instead),
///   bit 6 close (1000) at the end of the stream and then read the whole stream again, bit 7
///   `close_and_stop` before the final `drop_connection`;
/// - byte 1: the number of steps, modulo 16;
/// - two bytes per step, `(action, len)`: the next piece of the stream is `len` bytes long, and
///   `action` says what happens before it is fed (below 128: nothing that changes the outcome,
///   see [`Run::step`]; from 128: time passes, a send, a ping, a close, a drop);
/// - the rest is the stream; what the steps leave is fed as the last piece.
#[derive(Debug)]
pub struct Script<'a> {
    flags: u8,
    steps: Vec<(u8, usize)>,
    stream: &'a [u8],
}

impl<'a> Script<'a> {
    fn parse(data: &'a [u8]) -> Script<'a> {
        let flags = data.first().copied().unwrap_or(0);
        let count = data.get(1).map_or(0, |b| usize::from(b % 16));
        let rest = data.get(2..).unwrap_or(&[]);
        let count = count.min(rest.len() / 2);
        let steps = rest[..2 * count]
            .chunks_exact(2)
            .map(|s| (s[0], usize::from(s[1])))
            .collect();
        Script {
            flags,
            steps,
            stream: &rest[2 * count..],
        }
    }

    /// Whether every step is neutral: the outcome must then not depend on the split points.
    fn neutral(&self) -> bool {
        self.steps.iter().all(|&(action, _)| action < 128)
    }
}

/// Masking keys for the client role: a fixed sequence (xorshift64*), so a run's output is the
/// same every time it is replayed.
fn mask_keys() -> MaskKeys {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    MaskKeys::new(move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        ((state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32).to_be_bytes()
    })
}

/// The limits and timers selected by the low bits of `flags`.
pub fn config(flags: u8) -> EndpointConfig {
    let (max_frame_size, max_message_size) = match flags & 3 {
        0 => (1 << 20, 1 << 20),
        1 => (125, 256),
        2 => (16, 40),
        _ => (100_000, 200_000),
    };
    EndpointConfig {
        max_frame_size,
        max_message_size,
        ping_interval: (flags & 4 != 0).then_some(Duration::from_secs(10)),
        idle_timeout: (flags & 8 != 0).then_some(Duration::from_secs(30)),
    }
}

/// permessage-deflate parameters from one byte: bit 0 server_no_context_takeover, bit 1
/// client_no_context_takeover, bits 2-3 the server's window, bits 4-5 the client's, bits 6-7
/// the compression threshold.
pub fn deflate_setup(b: u8) -> (DeflateParams, usize) {
    let server_bits = [None, Some(9), Some(12), Some(15)][usize::from((b >> 2) & 3)];
    let client_bits = [None, Some(8), Some(11), Some(15)][usize::from((b >> 4) & 3)];
    let threshold = [0, 8, 64, usize::MAX][usize::from(b >> 6)];
    let params = DeflateParams {
        server_no_context_takeover: b & 1 != 0,
        client_no_context_takeover: b & 2 != 0,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
    };
    (params, threshold)
}

/// Runs `script` against a fresh endpoint; when every step is neutral, runs the stream again
/// in one piece and asserts the same outcome.
fn run_endpoint(role: Role, deflate: Option<(DeflateParams, usize)>, script: &Script<'_>) {
    let mut run = Run::new(role, deflate, script.flags);
    for &(action, len) in &script.steps {
        run.step(script, action, len);
    }
    let rest = &script.stream[run.fed.min(script.stream.len())..];
    run.feed(rest, false);
    let split = run.finish(script);
    if script.neutral() {
        let mut whole = Run::new(role, deflate, script.flags);
        whole.feed(script.stream, false);
        let unsplit = whole.finish(script);
        assert_eq!(
            split, unsplit,
            "the outcome depends on how the stream was split"
        );
    }
}

/// What the endpoint reported, in a form to compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Message {
        text: bool,
        bytes: Vec<u8>,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Closed {
        code: u16,
        reason: String,
        by: String,
    },
}

/// A frame the endpoint sent, decoded (and inflated).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sent {
    opcode: u8,
    compressed: bool,
    payload: Vec<u8>,
}

/// Everything one endpoint run did, compared between a split and an unsplit run.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Ev>,
    frames: Vec<Sent>,
}

/// What the event callback keeps and checks.
struct Log {
    role: Role,
    config: EndpointConfig,
    deflate: bool,
    echo: bool,
    events: Vec<Ev>,
    /// `Event::Closed` was reported: nothing may be reported after it.
    closed: bool,
    /// A close was queued from inside the callback: `Event::Closed` (local) must follow.
    close_pending: bool,
    /// Payloads of reported pings: each must be answered by one pong, in order.
    pings: Vec<Vec<u8>>,
    /// Payloads of the pings the endpoint or we queued.
    own_pings: Vec<Vec<u8>>,
    /// Data messages accepted for sending, in order.
    sent: Vec<(OpCode, Vec<u8>)>,
}

impl Log {
    fn on_event(&mut self, out: &mut Outbound, event: Event<'_>) {
        assert!(!self.closed, "{event:?} reported after Closed");
        if self.close_pending {
            assert!(
                matches!(&event, Event::Closed { by: ClosedBy::Local, code, reason }
                    if *code == CloseCode::NORMAL && *reason == "bang"),
                "a close from the callback, then {event:?}"
            );
            self.close_pending = false;
        }
        match event {
            Event::Message { message, gathered } => {
                let bytes = message.as_bytes();
                assert!(
                    bytes.len() as u64 <= self.config.max_message_size,
                    "a message of {} bytes, over the limit of {}",
                    bytes.len(),
                    self.config.max_message_size
                );
                if let Some(shared) = gathered {
                    assert_eq!(shared.as_slice(), bytes);
                }
                let text = matches!(message, Message::Text(_));
                self.events.push(Ev::Message {
                    text,
                    bytes: bytes.to_vec(),
                });
                if !self.echo {
                    return;
                }
                assert!(out.is_open(), "a message reported after our close");
                if bytes.first() == Some(&b'!') {
                    assert!(out.close(CloseCode::NORMAL, "bang"));
                    self.close_pending = true;
                    return;
                }
                let accepted = match gathered {
                    Some(shared) => out.send_shared(message.opcode(), shared),
                    None => out.send(message),
                };
                assert!(accepted, "an open outbound refused the echo");
                self.sent.push((message.opcode(), bytes.to_vec()));
            }
            Event::Ping(payload) => {
                assert!(payload.len() <= 125);
                self.pings.push(payload.to_vec());
                self.events.push(Ev::Ping(payload.to_vec()));
            }
            Event::Pong(payload) => {
                assert!(payload.len() <= 125);
                self.events.push(Ev::Pong(payload.to_vec()));
            }
            Event::Closed { code, reason, by } => {
                self.closed = true;
                assert!(
                    !out.is_open(),
                    "Closed reported while sends are still accepted"
                );
                match by {
                    ClosedBy::Peer => {
                        assert!(code.is_sendable() || code == CloseCode::NO_STATUS, "{code}");
                        assert!(
                            reason.len() <= 123,
                            "a close reason of {} bytes",
                            reason.len()
                        );
                    }
                    ClosedBy::Local => assert!(code.is_sendable(), "sent close code {code}"),
                    ClosedBy::Violation(error) => {
                        assert_eq!(code, error.close_code());
                        self.check_violation(error);
                    }
                    ClosedBy::Dropped => {}
                }
                self.events.push(Ev::Closed {
                    code: code.0,
                    reason: reason.to_string(),
                    by: format!("{by:?}"),
                });
            }
        }
    }

    fn check_violation(&self, error: ProtocolError) {
        let config = &self.config;
        match error {
            ProtocolError::MessageTooBig(n) => assert!(n > config.max_message_size, "{error}"),
            ProtocolError::CompressedTooBig(n) => {
                assert!(self.deflate, "{error} without deflate");
                assert!(n > max_compressed_len(config.max_message_size), "{error}");
            }
            ProtocolError::FrameTooBig(n) => assert!(n > config.max_frame_size, "{error}"),
            ProtocolError::ControlTooLong(n) => assert!(n > 125, "{error}"),
            ProtocolError::ReservedBits(bits) => assert!(bits != 0 && bits < 8, "{error}"),
            ProtocolError::ReservedOpcode(op) => {
                assert!(matches!(op, 0x3..=0x7 | 0xB..=0xF), "{error}");
            }
            ProtocolError::BadMasking { masked } => {
                assert_eq!(masked, self.role == Role::Client, "{error}");
            }
            ProtocolError::BadCompression => assert!(self.deflate, "{error} without deflate"),
            _ => {}
        }
    }
}

/// A sink that takes at most `max` bytes per write, as a socket with a small buffer would.
struct Trickle<'a> {
    out: &'a mut Vec<u8>,
    max: usize,
}

impl Write for Trickle<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.max);
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One endpoint, the virtual clock, and what it reported and wrote.
struct Run {
    ep: Endpoint,
    log: Log,
    flags: u8,
    deflate: Option<(DeflateParams, usize)>,
    now: Instant,
    /// Bytes of the stream fed so far by steps.
    fed: usize,
    /// A keepalive ping is out and nothing was received since: the ping timer is off.
    keepalive_out: bool,
    /// Everything the endpoint wrote, starting with `prefix`.
    output: Vec<u8>,
    /// What was queued before the endpoint started (a server's 101 reply).
    prefix: Vec<u8>,
}

impl Run {
    fn new(role: Role, deflate: Option<(DeflateParams, usize)>, flags: u8) -> Run {
        let config = config(flags);
        let now = Instant::now();
        let (mut ep, prefix) = match role {
            Role::Server => {
                let reply = switching_protocols(CLIENT_ACCEPT, None);
                let mut queue = WriteQueue::default();
                queue.push_bytes(&reply);
                (Endpoint::server_shared(Arc::new(config), now, queue), reply)
            }
            Role::Client => (Endpoint::client(&config, now, mask_keys()), Vec::new()),
        };
        if let Some((params, threshold)) = &deflate {
            ep.enable_deflate(params, *threshold);
        }
        let log = Log {
            role,
            config,
            deflate: deflate.is_some(),
            echo: flags & 0x20 != 0,
            events: Vec::new(),
            closed: false,
            close_pending: false,
            pings: Vec::new(),
            own_pings: Vec::new(),
            sent: Vec::new(),
        };
        let run = Run {
            ep,
            log,
            flags,
            deflate,
            now,
            fed: 0,
            keepalive_out: false,
            output: Vec::new(),
            prefix,
        };
        assert_eq!(run.ep.buffered(), run.prefix.len());
        run.check_state();
        run
    }

    /// One step: `action` below 128 is neutral (bit 0: write out what is queued first, bit 3
    /// through a sink taking `(action >> 4) + 1` bytes a write; bit 1: release idle buffers
    /// after; bit 2: read the piece in place where the endpoint offers room). From 128, bits
    /// 4-6 pick an action with bits 0-3 as its parameter, done before the piece is fed.
    fn step(&mut self, script: &Script<'_>, action: u8, len: usize) {
        let start = self.fed.min(script.stream.len());
        let end = (start + len).min(script.stream.len());
        let piece = &script.stream[start..end];
        self.fed = end;
        if action < 128 {
            if action & 1 != 0 {
                let max = (action & 8 != 0).then_some(usize::from(action >> 4) + 1);
                self.drain(max);
            }
            self.feed(piece, action & 4 != 0);
            if action & 2 != 0 {
                self.ep.release_idle_buffers();
            }
            return;
        }
        let param = action & 15;
        match (action >> 4) & 7 {
            0 => self.pass_time(Duration::from_secs(1 << (param & 7))),
            1 => {
                let text = "wsløøp ".repeat(usize::from(param));
                self.send(Message::Text(&text), param);
            }
            2 => self.send(Message::Binary(piece), param),
            3 => {
                let payload = &piece[..piece.len().min(125)];
                let queued = self.ep.outbound().ping(piece);
                assert_eq!(queued, self.ep.phase() == Phase::Open);
                if queued {
                    self.log.own_pings.push(payload.to_vec());
                }
            }
            4 => self.close(param, Closer::Endpoint),
            5 => self.close(param, Closer::AndStop),
            6 => self.close(param, Closer::Drop),
            _ => self.close(param, Closer::Outbound),
        }
        self.check_state();
        self.feed(piece, false);
    }

    /// Sends `message` one of four ways, picked by `how`.
    fn send(&mut self, message: Message<'_>, how: u8) {
        let open = self.ep.phase() == Phase::Open;
        let out = self.ep.outbound();
        let accepted = match how & 3 {
            0 => out.send(message),
            1 => out.send_shared(message.opcode(), &Arc::new(message.as_bytes().to_vec())),
            _ => out.send_prepared(&Prepared::new(message)),
        };
        assert_eq!(accepted, open, "a send while {:?}", self.ep.phase());
        if accepted {
            self.log
                .sent
                .push((message.opcode(), message.as_bytes().to_vec()));
        }
        let before = self.log.events.len();
        self.ep.after_send(&mut |o, e| self.log.on_event(o, e));
        assert_eq!(
            self.log.events.len(),
            before,
            "after_send reported without a close"
        );
    }

    fn pass_time(&mut self, by: Duration) {
        // Nothing is due yet at the current time.
        let (events, buffered) = (self.log.events.len(), self.ep.buffered());
        self.ep
            .handle_timeout(self.now, &mut |o, e| self.log.on_event(o, e));
        assert_eq!(
            (self.log.events.len(), self.ep.buffered()),
            (events, buffered)
        );

        self.now += by;
        let due = self.ep.poll_timeout().filter(|&(at, _)| at <= self.now);
        self.ep
            .handle_timeout(self.now, &mut |o, e| self.log.on_event(o, e));
        let fired = self.log.events.len() > events || self.ep.buffered() > buffered;
        assert_eq!(fired, due.is_some(), "due {due:?}, fired {fired}");
        if due.is_none() {
            return;
        }
        if self.ep.phase() == Phase::Open {
            // A keepalive ping, and no event.
            assert_eq!(self.log.events.len(), events);
            assert!(self.log.config.ping_interval.is_some() && !self.keepalive_out);
            self.keepalive_out = true;
            self.log.own_pings.push(Vec::new());
        } else {
            // The idle close: 1001, locally, and nothing more is read.
            assert!(self.log.config.idle_timeout.is_some());
            assert_eq!(self.ep.phase(), Phase::Closed);
            assert_eq!(self.log.events.len(), events + 1);
            let expected = Ev::Closed {
                code: 1001,
                reason: "idle timeout".into(),
                by: "Local".into(),
            };
            assert_eq!(self.log.events[events], expected);
        }
    }

    fn close(&mut self, param: u8, closer: Closer) {
        const CODES: [u16; 8] = [1000, 1001, 1005, 1006, 1011, 3000, 4999, 5000];
        let code = CloseCode(CODES[usize::from(param & 7)]);
        let reason = if param & 8 != 0 {
            "é".repeat(70)
        } else {
            String::new()
        };
        let phase = self.ep.phase();
        let before = self.log.events.len();
        let log = &mut self.log;
        let mut on_event = |o: &mut Outbound, e: Event<'_>| log.on_event(o, e);
        match closer {
            Closer::Endpoint => self.ep.close(code, &reason, &mut on_event),
            Closer::AndStop => self.ep.close_and_stop(code, &reason, &mut on_event),
            Closer::Drop => self.ep.drop_connection(code, &reason, &mut on_event),
            Closer::Outbound => {
                let queued = self.ep.outbound().close(code, &reason);
                assert_eq!(queued, phase == Phase::Open);
                self.ep.after_send(&mut on_event);
            }
        }
        let after = self.ep.phase();
        if phase != Phase::Open {
            assert_eq!(
                self.log.events.len(),
                before,
                "{closer:?} reported when not open"
            );
            let expected = if closer == Closer::Drop {
                Phase::Closed
            } else {
                phase
            };
            assert_eq!(after, expected);
            return;
        }
        assert_eq!(self.log.events.len(), before + 1, "{closer:?} when open");
        let sent_code = if closer == Closer::Drop || code.is_sendable() {
            code
        } else {
            CloseCode::NORMAL
        };
        let by = if closer == Closer::Drop {
            "Dropped"
        } else {
            "Local"
        };
        let expected = Ev::Closed {
            code: sent_code.0,
            reason: reason.clone(),
            by: by.to_string(),
        };
        assert_eq!(self.log.events[before], expected);
        let expected_phase = match closer {
            Closer::Endpoint | Closer::Outbound => Phase::CloseSent,
            Closer::AndStop | Closer::Drop => Phase::Closed,
        };
        assert_eq!(after, expected_phase);
    }

    /// Feeds `piece` as it arrived from the peer.
    fn feed(&mut self, piece: &[u8], in_place: bool) {
        let mut buf = piece.to_vec();
        let mut pos = 0;
        let now = self.now;
        let before = self.ep.buffered();
        let was_reading = self.ep.reads_frames();
        let events = self.log.events.len();
        if in_place {
            while pos < buf.len() {
                let rest = &buf[pos..];
                let mut n = 0;
                let log = &mut self.log;
                let read = |room: &mut [u8]| {
                    n = room.len().min(rest.len());
                    room[..n].copy_from_slice(&rest[..n]);
                    Ok::<usize, ()>(n)
                };
                match self
                    .ep
                    .receive_in_place(read, now, &mut |o, e| log.on_event(o, e))
                {
                    None => break,
                    Some((result, offered)) => {
                        assert_eq!(result, Ok(n));
                        assert!(n > 0 && n <= offered, "read {n} of {offered} offered");
                        pos += n;
                    }
                }
                self.check_state();
            }
        }
        let rest = &mut buf[pos..];
        let log = &mut self.log;
        let mut on_event = |o: &mut Outbound, e: Event<'_>| log.on_event(o, e);
        if self.flags & 0x10 != 0 {
            let mut at = 0;
            loop {
                let used = self.ep.receive_one(&mut rest[at..], now, &mut on_event);
                assert!(
                    used <= rest.len() - at,
                    "used {used} of {}",
                    rest.len() - at
                );
                at += used;
                if at == rest.len() || !self.ep.reads_frames() {
                    break;
                }
                assert!(used > 0, "receive_one made no progress");
            }
        } else {
            self.ep.receive(rest, now, &mut on_event);
        }
        // Every receive call counts as hearing from the peer.
        self.keepalive_out = false;
        if !was_reading {
            assert_eq!(
                self.log.events.len(),
                events,
                "events after the endpoint stopped"
            );
            assert_eq!(
                self.ep.buffered(),
                before,
                "bytes queued after the endpoint stopped"
            );
        }
        self.check_state();
    }

    /// Writes out what is queued, all of it or through a trickling sink.
    fn drain(&mut self, max: Option<usize>) {
        let queued = self.ep.buffered();
        let start = self.output.len();
        let written = match max {
            None => self.ep.outbound().queue().write_to(&mut self.output),
            Some(max) => {
                let mut sink = Trickle {
                    out: &mut self.output,
                    max,
                };
                self.ep.outbound().queue().write_to(&mut sink)
            }
        };
        assert_eq!(written.ok(), Some(queued));
        assert_eq!(self.output.len() - start, queued);
        assert_eq!(self.ep.buffered(), 0);
    }

    /// The invariants between calls.
    fn check_state(&self) {
        let phase = self.ep.phase();
        assert_eq!(
            phase != Phase::Open,
            self.log.closed,
            "phase {phase:?}, Closed reported: {}",
            self.log.closed
        );
        assert!(
            !self.log.close_pending,
            "a close from the callback went unreported"
        );
        assert_eq!(self.ep.reads_frames(), phase != Phase::Closed);
        let config = &self.log.config;
        let timers =
            config.idle_timeout.is_some() || config.ping_interval.is_some() && !self.keepalive_out;
        match self.ep.poll_timeout() {
            None => assert!(phase != Phase::Open || !timers, "no timer while open"),
            Some((at, timer)) => {
                assert_eq!(phase, Phase::Open, "a timer while {phase:?}");
                assert!(at > self.now, "a timer due at the present was not fired");
                match timer {
                    Timer::Idle => assert!(config.idle_timeout.is_some()),
                    Timer::KeepAlive => {
                        assert!(config.ping_interval.is_some() && !self.keepalive_out)
                    }
                }
            }
        }
    }

    /// The end of the stream: closes as the flags say, checks that a closed endpoint stays
    /// silent, then decodes and checks everything it sent.
    fn finish(mut self, script: &Script<'_>) -> Outcome {
        if self.flags & 0x40 != 0 {
            self.close(0, Closer::Endpoint);
            // The peer goes on sending: read (not delivered) until its close.
            self.feed(script.stream, false);
        }
        if self.flags & 0x80 != 0 {
            self.close(1, Closer::AndStop);
        }
        self.close(3, Closer::Drop);
        assert_eq!(self.ep.phase(), Phase::Closed);
        assert!(self.ep.poll_timeout().is_none());
        // Closed: nothing is read, reported, sent or due any more.
        self.feed(script.stream, false);
        self.feed(script.stream, true);
        let queued = self.ep.buffered();
        let later = self.now + Duration::from_secs(86_400);
        self.ep
            .handle_timeout(later, &mut |o, e| self.log.on_event(o, e));
        let out = self.ep.outbound();
        assert!(!out.is_open());
        assert!(!out.ping(b"late"));
        assert!(!out.send(Message::Text("late")));
        assert!(!out.close(CloseCode::NORMAL, "late"));
        assert_eq!(self.ep.buffered(), queued);
        self.drain(None);
        let frames = self.check_output();
        Outcome {
            events: self.log.events,
            frames,
        }
    }

    /// Decodes what the endpoint wrote as its peer would, and checks it against what was
    /// reported and sent.
    fn check_output(&self) -> Vec<Sent> {
        assert!(
            self.output.starts_with(&self.prefix),
            "the queued reply went first"
        );
        let mut bytes = self.output[self.prefix.len()..].to_vec();
        let peer = match self.log.role {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        };
        let mut decoder = FrameDecoder::new(peer, u64::MAX >> 1);
        if self.deflate.is_some() {
            decoder.allow_rsv1();
        }
        let mut frames: Vec<(FrameHeader, Vec<u8>)> = Vec::new();
        let mut current: Option<(FrameHeader, Vec<u8>)> = None;
        let mut pos = 0;
        while pos < bytes.len() || current.is_some() {
            match decoder.decode(&mut bytes[pos..]) {
                Err(error) => panic!("the endpoint sent a frame its peer refuses: {error}"),
                Ok(None) => panic!("the endpoint's output ends inside a frame"),
                Ok(Some((used, Decoded::Header(header)))) => {
                    assert!(current.is_none());
                    current = Some((header, Vec::new()));
                    pos += used;
                }
                Ok(Some((used, Decoded::Payload { data, end_of_frame }))) => {
                    let (_, payload) = current.as_mut().expect("a header before payload");
                    payload.extend_from_slice(data);
                    pos += used;
                    if end_of_frame {
                        frames.extend(current.take());
                    }
                }
            }
        }
        // The sender's side of the agreement, to inflate what it compressed.
        let mut inflater = self.deflate.map(|(p, _)| {
            let (no_context, bits) = match self.log.role {
                Role::Server => (p.server_no_context_takeover, p.server_max_window_bits),
                Role::Client => (p.client_no_context_takeover, p.client_max_window_bits),
            };
            (no_context, Inflater::new(bits.unwrap_or(15), no_context))
        });
        let (mut pongs, mut pings, mut data, mut sent) = (vec![], vec![], vec![], vec![]);
        // Payloads not checked past finding 1: only the opcodes are.
        let mut out_of_step = false;
        let mut closed = false;
        for (header, payload) in frames {
            assert!(!closed, "a frame after the close frame");
            assert!(header.fin, "the endpoint fragments nothing");
            assert!(!header.compressed || header.opcode.bits() < 8);
            sent.push(Sent {
                opcode: header.opcode.bits(),
                compressed: header.compressed,
                payload: payload.clone(),
            });
            match header.opcode {
                OpCode::Close => {
                    closed = true;
                    if let Err(error) = parse_close_body(&payload) {
                        panic!("the endpoint sent a close frame {payload:?}: {error}");
                    }
                }
                OpCode::Ping => pings.push(payload),
                OpCode::Pong => pongs.push(payload),
                OpCode::Continuation => panic!("a continuation frame"),
                OpCode::Text | OpCode::Binary if header.compressed => {
                    let (no_context, inflater) = inflater.as_mut().expect("RSV1 only with deflate");
                    if payload.is_empty() && !*no_context {
                        known_empty_compressed_message();
                        out_of_step = true;
                    }
                    if out_of_step {
                        data.push((header.opcode, None));
                        continue;
                    }
                    let inflated = match inflater.inflate(&payload, 1 << 24) {
                        Ok(inflated) => inflated,
                        Err(error) => panic!("the endpoint sent bad DEFLATE: {error:?}"),
                    };
                    if header.opcode == OpCode::Text {
                        assert!(std::str::from_utf8(&inflated).is_ok(), "text not UTF-8");
                    }
                    data.push((header.opcode, Some(inflated)));
                }
                OpCode::Text | OpCode::Binary => {
                    if header.opcode == OpCode::Text {
                        assert!(std::str::from_utf8(&payload).is_ok(), "text not UTF-8");
                    }
                    data.push((header.opcode, Some(payload)));
                }
            }
        }
        assert_eq!(pongs, self.log.pings, "pongs answer the reported pings");
        assert_eq!(pings, self.log.own_pings, "pings sent");
        assert_eq!(data.len(), self.log.sent.len(), "data messages sent");
        for ((opcode, payload), (sent_opcode, sent_payload)) in data.iter().zip(&self.log.sent) {
            assert_eq!(opcode, sent_opcode, "data messages sent");
            if let Some(payload) = payload {
                assert!(
                    payload == sent_payload,
                    "a data message sent changed on the way"
                );
            }
        }
        // The masking keys differ between runs, so the comparison is of decoded payloads,
        // and compressed payloads as the peer inflated them.
        sent.into_iter()
            .map(|mut s| {
                if s.compressed {
                    s.payload.clear();
                }
                s
            })
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closer {
    /// `Endpoint::close`.
    Endpoint,
    /// `Endpoint::close_and_stop`.
    AndStop,
    /// `Endpoint::drop_connection`.
    Drop,
    /// `Outbound::close`, then `Endpoint::after_send`.
    Outbound,
}

// ---------------------------------------------------------------------------------------------
// (5) Close frame bodies.
// ---------------------------------------------------------------------------------------------

/// The input is a close frame's body. It is parsed directly, sent to a server endpoint in a
/// masked close frame (when it fits one), and used as a reason for `close_body`.
pub fn close_frame(data: &[u8]) {
    let parsed = parse_close_body(data);
    match (data, &parsed) {
        ([], Ok((code, reason))) => assert!(*code == CloseCode::NO_STATUS && reason.is_empty()),
        ([_], Err(ProtocolError::CloseBodyTooShort)) => {}
        ([hi, lo, rest @ ..], Ok((code, reason))) => {
            assert_eq!(code.0, u16::from_be_bytes([*hi, *lo]));
            assert!(code.is_sendable(), "accepted close code {code}");
            assert_eq!(reason.as_bytes(), rest);
        }
        ([hi, lo, _rest @ ..], Err(ProtocolError::InvalidCloseCode(code))) => {
            assert_eq!(*code, u16::from_be_bytes([*hi, *lo]));
            assert!(!CloseCode(*code).is_sendable());
        }
        ([hi, lo, rest @ ..], Err(ProtocolError::InvalidCloseReason)) => {
            assert!(CloseCode(u16::from_be_bytes([*hi, *lo])).is_sendable());
            assert!(std::str::from_utf8(rest).is_err());
        }
        (_, other) => panic!("close body {data:?} parsed as {other:?}"),
    }

    // The same body in a close frame from a client.
    if data.len() <= 125 {
        let mut frame = Vec::new();
        encode_frame(
            &mut frame,
            false,
            OpCode::Close,
            data,
            Some([0x37, 0xfa, 0x21, 0x3d]),
        );
        let config = config(0);
        let mut ep = Endpoint::server(&config, Instant::now());
        let mut events = Vec::new();
        ep.receive(&mut frame, Instant::now(), &mut |_, e| {
            if let Event::Closed { code, reason, by } = e {
                events.push((code, reason.to_string(), by));
            }
        });
        assert_eq!(ep.phase(), Phase::Closed);
        let mut written = Vec::new();
        ep.outbound().queue().write_to(&mut written).unwrap();
        match &parsed {
            Ok((code, reason)) => {
                assert_eq!(events, [(*code, reason.to_string(), ClosedBy::Peer)]);
                // The answer echoes the code; an empty close is answered with an empty one.
                let echo = if data.is_empty() {
                    vec![0x88, 0x00]
                } else {
                    let [hi, lo] = code.0.to_be_bytes();
                    vec![0x88, 0x02, hi, lo]
                };
                assert_eq!(written, echo);
            }
            Err(error) => {
                assert_eq!(events.len(), 1);
                assert_eq!(events[0].2, ClosedBy::Violation(*error));
                assert_eq!(events[0].0, error.close_code());
                let body = &written[2..];
                assert_eq!(written[0], 0x88);
                assert_eq!(usize::from(written[1]), body.len());
                assert!(parse_close_body(body).is_ok());
            }
        }
    }

    // Building a body: the code, and the longest prefix of the reason that fits, whole
    // characters only.
    let code = match data {
        [hi, lo, ..] => CloseCode(u16::from_be_bytes([*hi, *lo])),
        _ => CloseCode::NORMAL,
    };
    let reason = String::from_utf8_lossy(data.get(2..).unwrap_or(&[]));
    let body = close_body(code, &reason);
    assert!(body.len() <= 125, "a close body of {} bytes", body.len());
    assert_eq!(body[..2], code.0.to_be_bytes());
    let kept = &body[2..];
    assert!(reason.as_bytes().starts_with(kept));
    let next = reason[kept.len()..].chars().next();
    assert!(
        next.is_none_or(|c| kept.len() + c.len_utf8() > 123),
        "close_body cut {} bytes short",
        reason.len() - kept.len()
    );
    if code.is_sendable() {
        assert_eq!(parse_close_body(&body), Ok((code, &reason[..kept.len()])));
    }
}

// ---------------------------------------------------------------------------------------------
// (6) permessage-deflate: the inflater, and endpoints with deflate negotiated.
// ---------------------------------------------------------------------------------------------

/// Byte 0 is the mode: bit 0 clear, the rest goes to [`inflate_messages`] with byte 0 as its
/// settings; set, byte 1 picks the parameters ([`deflate_setup`]) and the rest is a [`Script`]
/// for an endpoint with deflate enabled, a client when bit 1 is set, else a server.
pub fn deflate(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        return inflate_messages(mode, rest);
    }
    let Some((&setup, rest)) = rest.split_first() else {
        return;
    };
    let role = if mode & 2 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    run_endpoint(role, Some(deflate_setup(setup)), &Script::parse(rest));
}

/// Compressed messages for one inflater. `mode`: bits 1-3 the window (8 + value), bit 4 no
/// context takeover, bits 5-6 the size limit (64 B, 1 KiB, 64 KiB, 1 MiB). Byte 0 of `data`
/// is the number of cuts (modulo 8), then a length byte per cut; the rest is cut into that
/// many messages plus one.
pub fn inflate_messages(mode: u8, data: &[u8]) {
    let bits = 8 + ((mode >> 1) & 7);
    let no_context = mode & 0x10 != 0;
    let limit = [64, 1 << 10, 64 << 10, 1 << 20][usize::from((mode >> 5) & 3)];
    let count = data.first().map_or(0, |b| usize::from(b % 8));
    let rest = data.get(1..).unwrap_or(&[]);
    let count = count.min(rest.len());
    let mut messages = Vec::new();
    let mut body = &rest[count..];
    for &len in &rest[..count] {
        let (message, tail) = body.split_at(usize::from(len).min(body.len()));
        messages.push(message);
        body = tail;
    }
    messages.push(body);

    let mut inflater = Inflater::new(bits, no_context);
    let mut fresh = true;
    let mut inflated = Vec::new();
    for message in &messages {
        let result = inflater.inflate(message, limit);
        if let Ok(out) = &result {
            assert!(
                out.len() <= limit,
                "inflated {} bytes past the limit {limit}",
                out.len()
            );
        }
        if fresh {
            check_fresh_inflate(bits, message, limit, &result);
        }
        // The state is fresh again after a failure (the inflater resets), and with no
        // context takeover; a final block (BFINAL) also resets it, which is not visible here.
        fresh = no_context || result.is_err();
        if let Ok(out) = result {
            inflated.push(out);
        }
    }
    // What was inflated survives a round trip through the compressor, with and without
    // context takeover; so do the raw inputs, as payloads.
    round_trip(bits, no_context, &inflated);
    round_trip(bits, no_context, &messages);
}

/// An inflation from a fresh state agrees with a fresh inflater, the shared one, and itself
/// under other limits.
fn check_fresh_inflate(
    bits: u8,
    message: &[u8],
    limit: usize,
    result: &Result<Vec<u8>, InflateError>,
) {
    let again = Inflater::new(bits, true).inflate(message, limit);
    assert_eq!(&again, result, "a fresh inflater disagrees");
    if bits == 15 {
        assert_eq!(
            &inflate_shared(message, limit),
            result,
            "the shared inflater disagrees"
        );
    }
    match result {
        Ok(out) => {
            // The limit is exact: the output's length passes, one byte less does not.
            let exact = Inflater::new(bits, true).inflate(message, out.len());
            assert_eq!(
                exact.as_ref(),
                Ok(out),
                "refused at a limit equal to the output"
            );
            if let Some(less) = out.len().checked_sub(1) {
                let short = Inflater::new(bits, true).inflate(message, less);
                assert_eq!(short, Err(InflateError::TooBig), "accepted past the limit");
            }
        }
        Err(InflateError::TooBig) => {
            let more = Inflater::new(bits, true).inflate(message, limit * 4);
            assert!(
                !matches!(&more, Ok(out) if out.len() <= limit),
                "too big at {limit}, yet {} bytes at a higher limit",
                more.map_or(0, |o| o.len())
            );
        }
        Err(InflateError::Corrupt) => {}
    }
}

fn round_trip<T: AsRef<[u8]>>(bits: u8, no_context: bool, messages: &[T]) {
    let mut deflater = Deflater::new(bits, no_context);
    let mut inflater = Inflater::new(bits, no_context);
    for message in messages {
        let message = message.as_ref();
        let mut compressed = Vec::new();
        deflater.compress(message, &mut compressed);
        if compressed.is_empty() && !no_context {
            // The inflater's stream is out of step from here on.
            return known_empty_compressed_message();
        }
        match inflater.inflate(&compressed, message.len()) {
            Ok(out) => assert!(out == message, "the round trip changed the message"),
            Err(error) => panic!("our own compressed message does not inflate: {error:?}"),
        }
    }
}

//! permessage-deflate, RFC 7692: negotiating its parameters (§5, §7.1) and compressing and
//! inflating messages (§7.2). DEFLATE itself is zlib-rs, through flate2: raw streams, window
//! bits, sync flush.

use std::cell::RefCell;

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

/// The extension's name in `Sec-WebSocket-Extensions`.
pub const EXTENSION: &str = "permessage-deflate";
/// The smallest window this crate uses: zlib cannot deflate with 8 bits (it uses 9).
pub const MIN_WINDOW_BITS: u8 = 9;
/// The largest window DEFLATE has (32 KiB).
pub const MAX_WINDOW_BITS: u8 = 15;
/// What sync flush ends every compressed message with, removed before sending (§7.2.1) and
/// put back before inflating (§7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// How a server answers permessage-deflate offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionMode {
    /// Never: connections run uncompressed.
    Off,
    /// No context takeover either way: a connection keeps no compression state between
    /// messages, one compressor and one decompressor serve the whole loop, and a message
    /// published to many is compressed once.
    Shared,
    /// Context takeover where the client allows it (the best ratio), each connection with its
    /// own compressor (made on its first compressed message), windows of at most this many bits.
    Dedicated {
        /// 9 to 15.
        window_bits: u8,
    },
}

/// The parameters agreed for one connection (§7.1). A window is `None` when the response does
/// not name it (15 bits then).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server's compression window.
    pub server_max_window_bits: Option<u8>,
    /// The client's compression window.
    pub client_max_window_bits: Option<u8>,
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` value that names exactly these parameters.
    pub fn header(&self) -> String {
        let mut header = EXTENSION.to_string();
        if self.server_no_context_takeover {
            header.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            header.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            header.push_str(&format!("; server_max_window_bits={bits}"));
        }
        if let Some(bits) = self.client_max_window_bits {
            header.push_str(&format!("; client_max_window_bits={bits}"));
        }
        header
    }

    /// Whether the server's messages are compressed the shared way: no context, full window
    /// (one compressed frame then serves every such receiver).
    pub fn server_shares(&self) -> bool {
        self.server_no_context_takeover && self.server_max_window_bits.is_none_or(|b| b == 15)
    }
}

/// One offer's parameters as the client sent them.
#[derive(Debug, Default, PartialEq, Eq)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// Present (`Some`), perhaps with a value.
    client_max_window_bits: Option<Option<u8>>,
}

/// The extensions in `Sec-WebSocket-Extensions` values: each one's name and parameters.
fn extensions<'a>(
    values: impl Iterator<Item = &'a str>,
) -> impl Iterator<Item = (&'a str, Vec<(&'a str, Option<&'a str>)>)> {
    values
        .flat_map(|value| value.split(','))
        .map(|extension| {
            let mut parts = extension.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let params = parts
                .filter(|p| !p.is_empty())
                .map(|param| match param.split_once('=') {
                    Some((key, value)) => (key.trim(), Some(value.trim().trim_matches('"'))),
                    None => (param, None),
                })
                .collect();
            (name, params)
        })
        .filter(|(name, _)| !name.is_empty())
}

/// A window size value (§7.1.2): 8 to 15, written without leading zeros.
fn window_bits(value: Option<&str>) -> Result<u8, ()> {
    let value = value.ok_or(())?;
    match value.parse::<u8>() {
        Ok(bits @ 8..=15) if !value.starts_with('0') => Ok(bits),
        _ => Err(()),
    }
}

/// Parses one permessage-deflate offer; `Err` when it is not acceptable: an unknown or repeated
/// parameter, or a value where none belongs or a bad one (§7).
fn parse_offer(params: &[(&str, Option<&str>)]) -> Result<Offer, ()> {
    let mut offer = Offer::default();
    let mut seen = Vec::new();
    for &(name, value) in params {
        if seen.contains(&name) {
            return Err(());
        }
        seen.push(name);
        match (name, value) {
            ("server_no_context_takeover", None) => offer.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => offer.client_no_context_takeover = true,
            ("server_max_window_bits", value) => {
                offer.server_max_window_bits = Some(window_bits(value)?)
            }
            ("client_max_window_bits", None) => offer.client_max_window_bits = Some(None),
            ("client_max_window_bits", value) => {
                offer.client_max_window_bits = Some(Some(window_bits(value)?))
            }
            _ => return Err(()),
        }
    }
    Ok(offer)
}

/// The server's side of the negotiation (§5.1, §7.1): the first acceptable permessage-deflate
/// offer in the request's `Sec-WebSocket-Extensions` values, answered as `mode` allows. `None`:
/// the connection runs uncompressed (every offer unacceptable, none made, or compression off).
pub fn negotiate<'a>(
    values: impl Iterator<Item = &'a str>,
    mode: CompressionMode,
) -> Option<DeflateParams> {
    let limit = match mode {
        CompressionMode::Off => return None,
        CompressionMode::Shared => MAX_WINDOW_BITS,
        CompressionMode::Dedicated { window_bits } => window_bits,
    };
    for (name, params) in extensions(values) {
        if name != EXTENSION {
            continue;
        }
        let Ok(offer) = parse_offer(&params) else {
            continue;
        };
        // The server's window: at most what the client allows (§7.1.2.1); 8 bits cannot be
        // honoured with zlib, so such an offer is declined.
        let server_bits = offer.server_max_window_bits.unwrap_or(15).min(limit);
        if server_bits < MIN_WINDOW_BITS {
            continue;
        }
        let server_max_window_bits =
            (offer.server_max_window_bits.is_some() || server_bits < 15).then_some(server_bits);
        return Some(match mode {
            CompressionMode::Shared => DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits,
                client_max_window_bits: None,
            },
            _ => DeflateParams {
                server_no_context_takeover: offer.server_no_context_takeover,
                client_no_context_takeover: offer.client_no_context_takeover,
                server_max_window_bits,
                // The client's window can be bounded only if it offered to be (§7.1.2.2).
                client_max_window_bits: offer
                    .client_max_window_bits
                    .map(|bits| bits.unwrap_or(15).min(limit)),
            },
        });
    }
    None
}

/// The client's default offer: permessage-deflate, the client keeping no context between
/// messages (a compressor's state is not held between them, and the server may rely on it),
/// and the server free to bound the client's window.
pub const CLIENT_OFFER: &str =
    "permessage-deflate; client_no_context_takeover; client_max_window_bits";

/// One permessage-deflate offer a client can make (§7.1): what it asks of the server's side.
/// Every offer is [`CLIENT_OFFER`] and adds these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientOffer {
    /// Ask the server to reset its compressor after every message.
    pub server_no_context_takeover: bool,
    /// Ask the server to use a window of at most this many bits (8 to 15).
    pub server_max_window_bits: Option<u8>,
}

impl ClientOffer {
    /// The `Sec-WebSocket-Extensions` value offering `offers`, in order of preference.
    pub fn header(offers: &[ClientOffer]) -> String {
        if offers.is_empty() {
            return CLIENT_OFFER.to_string();
        }
        let each = offers.iter().map(|offer| {
            let mut text = CLIENT_OFFER.to_string();
            if offer.server_no_context_takeover {
                text.push_str("; server_no_context_takeover");
            }
            if let Some(bits) = offer.server_max_window_bits {
                text.push_str(&format!("; server_max_window_bits={bits}"));
            }
            text
        });
        each.collect::<Vec<_>>().join(", ")
    }
}

/// The client's side (§5.2, §7.1): what the server's `Sec-WebSocket-Extensions` values agreed
/// to, for offers made with [`CLIENT_OFFER`] (so the client keeps no context takeover whatever
/// the response says). `Err` with why when the response cannot be accepted (an
/// extension not offered, a repeated or unknown parameter, a bad value): the client must then
/// fail the connection (RFC 6455 §9.1).
pub fn accept_response<'a>(
    values: impl Iterator<Item = &'a str>,
) -> Result<Option<DeflateParams>, String> {
    let mut agreed = None;
    for (name, params) in extensions(values) {
        if name != EXTENSION || agreed.is_some() {
            return Err(format!(
                "the server answered with an extension not offered: {name}"
            ));
        }
        let offer = parse_offer(&params)
            .map_err(|()| format!("the server's {EXTENSION} parameters cannot be used"))?;
        let client_bits = match offer.client_max_window_bits {
            Some(None) => return Err("client_max_window_bits without a value".into()),
            // zlib cannot compress within an 8-bit window (it uses 9).
            Some(Some(8)) => return Err("client_max_window_bits=8 cannot be honoured".into()),
            Some(Some(bits)) => Some(bits),
            None => None,
        };
        agreed = Some(DeflateParams {
            server_no_context_takeover: offer.server_no_context_takeover,
            // Offered: the client keeps none, told or not.
            client_no_context_takeover: true,
            server_max_window_bits: offer.server_max_window_bits,
            client_max_window_bits: client_bits,
        });
    }
    Ok(agreed)
}

/// The most bytes a compressed message of up to `len` bytes may take on the wire (its frames'
/// payloads, the sync flush's tail removed), however a peer's compressor made it.
///
/// The size limits bound messages as the application sees them: inflated. A compressed
/// message is gathered whole before it is inflated, so its own size needs a bound too, and
/// that bound must let through every way a real compressor can encode `len` bytes, or a peer
/// is refused a message the limit allows (Python's websockets compresses 65,536 random bytes
/// into 65,697). DEFLATE itself bounds nothing (a stream may hold any number of empty
/// blocks); what bounds real streams is how their compressors choose blocks. zlib's
/// `deflateBound` (1.2.12 and later) takes the worst of its parameters, and so does this:
///
/// - Stored blocks cost 5 bytes each (3 header bits padded to a byte, then LEN and NLEN),
///   and zlib ends a block when its buffer of symbols is full: 2^(memLevel + 6) - 1 of them,
///   so at memLevel 1 every 127 bytes (websockets uses memLevel 5: every 2,047 bytes; the
///   default, 8: every 16,383; a 65,535-byte block is the most DEFLATE allows). 5 bytes per
///   127 is under `len/32 + len/128 + len/2048`: about 4%.
/// - Fixed-Huffman blocks spend 9 bits on a literal byte of 144 or more. zlib falls back to
///   them when a stored block is impossible (the block's bytes have left a small window) and
///   zlib-ng's and zlib-rs' level 1 use nothing else (random bytes grow by 5.5% there):
///   `len/8 + len/256 + len/512` (12.5% for 9-bit literals, and each block's header and end).
///
/// The larger of the two, plus zlib's constants for the stream's end and `MESSAGE_END` for
/// how a message ends: about 13% over `len`.
pub fn max_compressed_len(len: u64) -> u64 {
    if len > u64::MAX / 2 {
        return u64::MAX; // no limit, no bound
    }
    let stored = len + (len >> 5) + (len >> 7) + (len >> 11) + 7;
    let fixed = len + (len >> 3) + (len >> 8) + (len >> 9) + 4;
    stored.max(fixed) + MESSAGE_END
}

/// What the end of a compressed message may add to its blocks (see [`max_compressed_len`]):
/// the sync flush's empty stored block is its 3 header bits and their padding (1 byte) once its
/// 4-byte tail is removed, or 5 bytes from a peer that leaves the tail in (§7.2.2 inflates that
/// too); a final block (§7.2.3.3) ends with at most a byte of padding.
pub(crate) const MESSAGE_END: u64 = 8;

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates past the size limit (1009); inflation stopped there.
    TooBig,
    /// It is not valid DEFLATE data (1002).
    Corrupt,
}

/// Compresses messages (§7.2.1).
#[derive(Debug)]
pub struct Deflater {
    inner: Compress,
    /// Reset after every message.
    no_context_takeover: bool,
}

impl Deflater {
    /// A compressor with a window of `window_bits` (9 to 15).
    ///
    /// Level 1 (zlib-rs' `deflate_quick`: fixed Huffman codes only) is 3x to 8x faster than
    /// any other level on chat-sized messages, and 3x on text, for a fifth to a third more
    /// output than level 2 (`tests/deflate_levels.rs` has the figures). It is also the one
    /// level that makes incompressible data larger (random bytes by 5.5%, where levels 2 to 9
    /// fall back to stored blocks, +0.03%); such a message is sent uncompressed anyway (see
    /// [`Deflater::compress_smaller`]), so that costs nothing on the wire.
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Deflater {
        let bits = window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        Deflater {
            inner: Compress::new_with_window_bits(flate2::Compression::fast(), false, bits),
            no_context_takeover,
        }
    }

    /// Appends `payload` compressed, without the sync flush's tail, to `out`.
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        self.deflate(payload, out, usize::MAX);
    }

    /// Appends `payload` compressed to `out` and returns true if that is shorter than
    /// `payload`; else returns false with `out` as it was, and the message is better sent
    /// uncompressed, RSV1 clear, which RFC 7692 §6.1 allows for any message (random bytes, or
    /// anything compressed already, do not shrink). Compression stops as soon as the output is
    /// as long as the payload.
    ///
    /// A message sent uncompressed never reaches the peer's decompressor, but this compressor
    /// has taken it in (some or all of it). With context takeover its window would then hold
    /// bytes the peer's lacks, and a later message could point back into them: the peer would
    /// inflate garbage, or fail. So the compressor is reset. A reset compressor points back
    /// only into what it compresses afterwards, which the peer inflates into its own window
    /// too, so the two windows agree again on everything the stream can refer to: a sender may
    /// drop its context before any message without telling the peer. (Rewinding the
    /// compressor instead is not possible through flate2, and keeping the larger output would
    /// break the rule for every message sent with context takeover.) The cost is the next
    /// message's context, paid only after a message that did not shrink. Without context
    /// takeover the compressor is reset after every message anyway.
    pub fn compress_smaller(&mut self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        let start = out.len();
        let finished = self.deflate(payload, out, payload.len());
        if finished && out.len() - start < payload.len() {
            return true;
        }
        out.truncate(start);
        if !finished {
            self.end_message_into_nothing();
        }
        self.inner.reset();
        false
    }

    /// Brings a message given up midway to the end of its sync flush, the bytes thrown away,
    /// so the compressor can be reset. zlib-rs (0.6.8) resets only a compressor between
    /// messages cleanly: reset midway, it keeps its undrained output's offset (and later
    /// panics, "buf.len() must fit in remaining()") and, at level 1, the open block (so the
    /// next message lacks a block header and does not inflate).
    fn end_message_into_nothing(&mut self) {
        let mut scratch = [0u8; 4096];
        loop {
            let before = self.inner.total_out();
            self.inner
                .compress(&[], &mut scratch, FlushCompress::Sync)
                .expect("compressing into a buffer cannot fail");
            // The flush is complete once it left room in the output.
            if self.inner.total_out() - before < scratch.len() as u64 {
                return;
            }
        }
    }

    /// Appends `payload` compressed, without the sync flush's tail, to `out`; gives up, with
    /// false and the compressor mid-message, once the output passes `most` bytes.
    fn deflate(&mut self, payload: &[u8], out: &mut Vec<u8>, most: usize) -> bool {
        let start = out.len();
        let base = self.inner.total_in();
        // Past `most` bytes and the tail, the output is of no use.
        let limit = most.saturating_add(TAIL.len() + 1);
        out.reserve((payload.len() / 2 + 64).min(limit));
        loop {
            let used = (self.inner.total_in() - base) as usize;
            let status = self
                .inner
                .compress_vec(&payload[used..], out, FlushCompress::Sync)
                .expect("compressing into a vector cannot fail");
            let done = (self.inner.total_in() - base) as usize == payload.len();
            // The flush is complete once it left room in the output.
            if done && out.len() < out.capacity() || status == Status::StreamEnd {
                break;
            }
            let made = out.len() - start;
            if made >= limit {
                return false;
            }
            out.reserve(out.capacity().max(64).min(limit - made));
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        // zlib skips a second sync flush with no input between: an empty message right after
        // another comes out empty. §7.2.3.6: it is the one octet 0x00 (an empty stored block
        // without its tail); without it, the receiver's appended tail opens a stored block
        // that swallows the next message.
        if out.len() == start {
            out.push(0x00);
        }
        if self.no_context_takeover {
            self.inner.reset();
        }
        true
    }
}

/// Inflates messages (§7.2.2).
#[derive(Debug)]
pub struct Inflater {
    inner: Decompress,
    /// Reset after every message.
    no_context_takeover: bool,
}

impl Inflater {
    /// A decompressor for a peer's window of up to `window_bits` (8 to 15: a peer's 8-bit
    /// window is read with 9 bits, which reads any stream a smaller window made).
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Inflater {
        let bits = window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS);
        Inflater {
            inner: Decompress::new_with_window_bits(false, bits),
            no_context_takeover,
        }
    }

    /// The message that `compressed` holds, failing as soon as it passes `limit` bytes, so a
    /// small message that inflates to a huge one costs no more than the limit.
    pub fn inflate(&mut self, compressed: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        let result = match self.feed(compressed, &mut out, limit) {
            // A final block (BFINAL) ended the stream: nothing follows it, not even the tail,
            // and the next message starts a new stream (§7.2.3.3).
            Ok(Fed::StreamEnd) => {
                self.inner.reset(false);
                Ok(())
            }
            Ok(Fed::All) => self.feed(&TAIL, &mut out, limit).map(drop),
            Err(e) => Err(e),
        };
        if self.no_context_takeover || result.is_err() {
            self.inner.reset(false);
        }
        result.map(|()| out)
    }

    fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<Fed, InflateError> {
        // The output never holds more than one byte past the limit, so passing it is seen at
        // once and costs no more memory than the limit.
        let most = limit.saturating_add(1);
        loop {
            if out.len() == out.capacity() {
                let room = (most - out.len().min(most)).clamp(1, 64 * 1024);
                out.reserve_exact(room);
            }
            let (before_in, before_out) = (self.inner.total_in(), out.len());
            let status = self
                .inner
                .decompress_vec(input, out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Corrupt)?;
            let used = (self.inner.total_in() - before_in) as usize;
            input = &input[used..];
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            if status == Status::StreamEnd {
                return Ok(Fed::StreamEnd);
            }
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(Fed::All);
            }
            if used == 0 && out.len() == before_out {
                // No progress with input left: not a DEFLATE stream.
                return if input.is_empty() {
                    Ok(Fed::All)
                } else {
                    Err(InflateError::Corrupt)
                };
            }
        }
    }
}

/// How far [`Inflater::feed`] got.
enum Fed {
    /// It took all its input.
    All,
    /// A final block ended the stream; the rest of the input is ignored.
    StreamEnd,
}

thread_local! {
    /// The loop's shared compressor (no context takeover, 15 bits): one per thread.
    static SHARED_DEFLATER: RefCell<Deflater> = RefCell::new(Deflater::new(15, true));
    /// The loop's shared decompressor for peers without context takeover.
    static SHARED_INFLATER: RefCell<Inflater> = RefCell::new(Inflater::new(15, true));
}

/// [`Deflater::compress_smaller`] with this thread's shared compressor (no context takeover,
/// 15-bit window).
pub(crate) fn compress_smaller_shared(payload: &[u8], out: &mut Vec<u8>) -> bool {
    SHARED_DEFLATER.with(|deflater| deflater.borrow_mut().compress_smaller(payload, out))
}

/// Inflates with this thread's shared decompressor (a peer without context takeover).
pub fn inflate_shared(compressed: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    SHARED_INFLATER.with(|inflater| inflater.borrow_mut().inflate(compressed, limit))
}

#[cfg(test)]
#[path = "deflate_tests.rs"]
pub(crate) mod tests;

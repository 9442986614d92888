//! The base framing protocol, RFC 6455 §5.2: opcodes, the frame header, an encoder and an
//! incremental decoder.
//!
//! The decoder is a push parser: hand it whatever bytes arrived, it takes what it can and says
//! what it found. It yields a frame's header as soon as the header is complete, then the
//! payload in pieces, unmasked in place, as the pieces arrive. Header rules that do not depend on
//! earlier frames (§5.2, §5.5) are checked here, as early as the bytes allow, so a bad frame fails
//! before its payload is read. Rules across frames live in `message`.

use super::deflate::max_compressed_len;
use super::error::ProtocolError;
use super::mask::apply_mask;

/// The longest possible frame header: 2 + 8 (64-bit length) + 4 (mask key).
pub const MAX_HEADER_LEN: usize = 14;
/// RSV1 in a frame's first byte: the frame starts a compressed message (RFC 7692 §6).
const RSV1: u8 = 0x40;
/// The largest payload a control frame may carry (§5.5).
pub(crate) const MAX_CONTROL_PAYLOAD: u64 = 125;

/// A frame's opcode (§5.2, §11.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// Decodes the low nibble of a frame's first byte; 0x3-0x7 and 0xB-0xF are reserved.
    pub fn from_bits(bits: u8) -> Result<OpCode, ProtocolError> {
        Ok(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// The opcode's wire value.
    pub fn bits(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Control frames are those with the high bit of the opcode set (§5.5).
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the last frame of its message.
    pub fin: bool,
    /// The frame's opcode.
    pub opcode: OpCode,
    /// The masking key, when the mask bit is set.
    pub mask: Option<[u8; 4]>,
    /// RSV1: the message this frame starts is compressed (RFC 7692 §6), when permessage-deflate
    /// was negotiated.
    pub compressed: bool,
    /// Payload length in bytes.
    pub payload_len: u64,
}

/// Which side of the connection the decoder is on: servers accept only masked frames, clients
/// only unmasked ones (§5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Decodes frames sent by a client.
    Server,
    /// Decodes frames sent by a server.
    Client,
}

/// What the decoder found at the front of its input.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A complete, valid header; payload pieces follow (even for an empty payload).
    Header(FrameHeader),
    /// The next piece of the current frame's payload, already unmasked.
    Payload {
        /// The bytes.
        data: &'a [u8],
        /// This piece ends the frame.
        end_of_frame: bool,
    },
}

/// What [`FrameDecoder::decode_whole`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    /// A whole frame, its payload unmasked: what a header and its payload pieces would say.
    Frame {
        /// The frame's header.
        header: FrameHeader,
        /// Its whole payload.
        payload: &'a [u8],
    },
    /// A piece, as [`FrameDecoder::decode`] gives it.
    Piece(Decoded<'a>),
}

#[derive(Debug)]
enum DecodeState {
    /// Collecting header bytes; `len` of them are in `buf`.
    Header {
        buf: [u8; MAX_HEADER_LEN],
        len: usize,
    },
    /// Inside a payload: `remaining` bytes to go, `offset` into the mask key.
    Payload {
        mask: Option<[u8; 4]>,
        remaining: u64,
        offset: usize,
    },
}

/// What a header is checked against.
#[derive(Debug, Clone, Copy)]
struct Limits {
    role: Role,
    /// The longest payload of a frame of an uncompressed message.
    max_frame_size: u64,
    /// With permessage-deflate (RSV1 allowed), the longest payload of a frame of a compressed
    /// message: what DEFLATE may make of `max_frame_size` bytes.
    max_compressed_frame: Option<u64>,
    /// The data message in progress is compressed: its continuation frames carry no RSV1
    /// (RFC 7692 §6.1) but are held to the compressed limit.
    continuing_compressed: bool,
}

/// Incremental frame decoder; see the module docs.
#[derive(Debug)]
pub struct FrameDecoder {
    limits: Limits,
    state: DecodeState,
}

impl FrameDecoder {
    /// A decoder for frames arriving at `role`, failing frames longer than `max_frame_size`.
    pub fn new(role: Role, max_frame_size: u64) -> FrameDecoder {
        let limits = Limits {
            role,
            max_frame_size,
            max_compressed_frame: None,
            continuing_compressed: false,
        };
        FrameDecoder {
            limits,
            state: Self::fresh_header(),
        }
    }

    /// Accepts RSV1 from now on: permessage-deflate was negotiated (RFC 7692 §6). The frames of
    /// a compressed message (its first has RSV1) may then be as long as DEFLATE may make
    /// `max_frame_size` bytes ([`max_compressed_len`]): the frame limit, like the message
    /// limit, bounds the data, and compressing incompressible data makes it slightly longer.
    pub fn allow_rsv1(&mut self) {
        let limits = &mut self.limits;
        limits.max_compressed_frame = Some(max_compressed_len(limits.max_frame_size));
    }

    /// A header was read: the frames after it are held to the limit of its message.
    fn note(&mut self, header: &FrameHeader) {
        if matches!(header.opcode, OpCode::Text | OpCode::Binary) {
            self.limits.continuing_compressed = header.compressed;
        }
    }

    fn fresh_header() -> DecodeState {
        DecodeState::Header {
            buf: [0; MAX_HEADER_LEN],
            len: 0,
        }
    }

    /// Decodes from the front of `input`, unmasking payload bytes in place.
    ///
    /// Returns how many bytes of `input` were consumed and what they were, or `None` when all of
    /// `input` was consumed (it may be partway through a header) and more is needed.
    pub fn decode<'a>(
        &mut self,
        input: &'a mut [u8],
    ) -> Result<Option<(usize, Decoded<'a>)>, ProtocolError> {
        match &mut self.state {
            DecodeState::Header { buf, len } => {
                let take = (MAX_HEADER_LEN - *len).min(input.len());
                buf[*len..*len + take].copy_from_slice(&input[..take]);
                let available = *len + take;
                match parse_header(&buf[..available], self.limits)? {
                    None => {
                        *len = available;
                        Ok(None)
                    }
                    Some((header, header_len)) => {
                        let consumed = header_len - *len;
                        self.state = DecodeState::Payload {
                            mask: header.mask,
                            remaining: header.payload_len,
                            offset: 0,
                        };
                        self.note(&header);
                        Ok(Some((consumed, Decoded::Header(header))))
                    }
                }
            }
            DecodeState::Payload { remaining, .. } => {
                if input.is_empty() && *remaining > 0 {
                    return Ok(None);
                }
                let take = (*remaining).min(input.len() as u64) as usize;
                let data = &mut input[..take];
                let end_of_frame = self.unmask_read_payload(data);
                Ok(Some((take, Decoded::Payload { data, end_of_frame })))
            }
        }
    }

    /// Like [`FrameDecoder::decode`], but a frame that lies whole at the front of `input` (the
    /// common case for small messages) comes in one step, its payload unmasked in place:
    /// half the steps, and no copy of its header.
    #[inline(always)]
    pub(crate) fn decode_whole<'a>(
        &mut self,
        input: &'a mut [u8],
    ) -> Result<Option<(usize, Step<'a>)>, ProtocolError> {
        if input.is_empty() && self.is_between_frames() {
            return Ok(None); // the end of a read: nothing to decode
        }
        if self.is_between_frames() {
            let head = &input[..input.len().min(MAX_HEADER_LEN)];
            let parsed = match parse_short_masked_header(head, self.limits) {
                Some(short) => Some(short),
                None => parse_header(head, self.limits)?,
            };
            if let Some((header, header_len)) = parsed {
                let available = (input.len() - header_len) as u64;
                if header.payload_len <= available {
                    self.note(&header);
                    let end = header_len + header.payload_len as usize;
                    let payload = &mut input[header_len..end];
                    if let Some(key) = header.mask {
                        apply_mask(payload, key, 0);
                    }
                    return Ok(Some((end, Step::Frame { header, payload })));
                }
            }
        }
        Ok(self
            .decode(input)?
            .map(|(used, piece)| (used, Step::Piece(piece))))
    }

    /// Whether the decoder is between frames, holding no byte of the next header.
    pub(crate) fn is_between_frames(&self) -> bool {
        matches!(self.state, DecodeState::Header { len: 0, .. })
    }

    /// Payload bytes of the current frame still to come; 0 between frames.
    pub(crate) fn payload_remaining(&self) -> u64 {
        match self.state {
            DecodeState::Payload { remaining, .. } => remaining,
            DecodeState::Header { .. } => 0,
        }
    }

    /// The current frame's next payload bytes, which the caller read itself (see
    /// [`MessageAssembler::payload_room`]): unmasks them in place and returns whether they end
    /// the frame.
    ///
    /// # Panics
    /// If `data` is longer than [`FrameDecoder::payload_remaining`].
    ///
    /// [`MessageAssembler::payload_room`]: super::message::MessageAssembler::payload_room
    pub(crate) fn unmask_read_payload(&mut self, data: &mut [u8]) -> bool {
        let DecodeState::Payload {
            mask,
            remaining,
            offset,
        } = &mut self.state
        else {
            panic!("payload bytes between frames");
        };
        assert!(data.len() as u64 <= *remaining, "payload beyond the frame");
        if let Some(key) = *mask {
            *offset = apply_mask(data, key, *offset);
        }
        *remaining -= data.len() as u64;
        let end_of_frame = *remaining == 0;
        if end_of_frame {
            self.state = Self::fresh_header();
        }
        end_of_frame
    }
}

/// Parses a header from the front of `bytes`: `None` when more bytes are needed. Checks
/// what can be checked from the bytes present, so a bad first byte fails at once.
#[inline(always)]
fn parse_header(
    bytes: &[u8],
    limits: Limits,
) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let [b0, b1, rest @ ..] = bytes else {
        return Ok(None);
    };
    let fin = b0 & 0x80 != 0;
    let rsv = (b0 >> 4) & 0x7;
    let opcode = OpCode::from_bits(b0 & 0x0F)?;
    // RSV1 only with permessage-deflate, and never on a control frame (RFC 7692 §6.1).
    let compressed = rsv == 0b100 && limits.max_compressed_frame.is_some() && !opcode.is_control();
    if rsv != 0 && !compressed {
        return Err(ProtocolError::ReservedBits(rsv));
    }
    let masked = b1 & 0x80 != 0;
    if masked != (limits.role == Role::Server) {
        return Err(ProtocolError::BadMasking { masked });
    }
    let len7 = b1 & 0x7F;
    if opcode.is_control() {
        if !fin {
            return Err(ProtocolError::FragmentedControl);
        }
        if u64::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::ControlTooLong(u64::from(len7)));
        }
    }
    let (payload_len, len_bytes) = match len7 {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Ok(None),
        },
        127 => match rest.get(..8) {
            Some(ext) => {
                let len = u64::from_be_bytes(ext.try_into().expect("8 bytes"));
                if len >> 63 != 0 {
                    return Err(ProtocolError::LengthOverflow);
                }
                (len, 8)
            }
            None => return Ok(None),
        },
        short => (u64::from(short), 0),
    };
    let of_compressed =
        compressed || opcode == OpCode::Continuation && limits.continuing_compressed;
    let max = match limits.max_compressed_frame {
        Some(max) if of_compressed => max,
        _ => limits.max_frame_size,
    };
    if payload_len > max {
        return Err(ProtocolError::FrameTooBig(payload_len));
    }
    let mask_len = if masked { 4 } else { 0 };
    let Some(key) = rest.get(len_bytes..len_bytes + mask_len) else {
        return Ok(None);
    };
    let mask = masked.then(|| key.try_into().expect("4 bytes"));
    let header = FrameHeader {
        fin,
        opcode,
        mask,
        payload_len,
        compressed,
    };
    Ok(Some((header, 2 + len_bytes + mask_len)))
}

/// A whole frame at the front of `input` of the kind [`parse_short_masked_header`] recognises,
/// read without a [`FrameDecoder`]: between messages a decoder holds no state, and a final
/// frame under 126 bytes leaves none behind. The payload is unmasked in place (§5.3). Returns
/// the bytes the frame spans, its header and its payload. `None`, with `input` untouched, for
/// any other frame, for one longer than `max_len` (the smaller of the frame and message
/// limits, so that refusing it is left to the decoder) and for one not wholly in `input`.
#[inline(always)]
pub(crate) fn take_short_masked_frame(
    input: &mut [u8],
    role: Role,
    max_len: u64,
) -> Option<(usize, FrameHeader, &mut [u8])> {
    let limits = Limits {
        role,
        max_frame_size: max_len,
        max_compressed_frame: None,
        continuing_compressed: false,
    };
    let head = &input[..input.len().min(MAX_HEADER_LEN)];
    let (header, header_len) = parse_short_masked_header(head, limits)?;
    let end = header_len + header.payload_len as usize;
    let payload = input.get_mut(header_len..end)?;
    apply_mask(payload, header.mask?, 0);
    Some((end, header, payload))
}

/// The header a client sends most, parsed in one test of its first two bytes: FIN, no RSV
/// bit, a text or binary opcode, the mask bit, a 7-bit length under 126 (§5.2), then the
/// masking key. `None` for anything else, a frame the limits refuse included:
/// [`parse_header`] then checks it. Gives what `parse_header` would for the same bytes.
#[inline(always)]
fn parse_short_masked_header(bytes: &[u8], limits: Limits) -> Option<(FrameHeader, usize)> {
    let [b0, b1, k0, k1, k2, k3, ..] = *bytes else {
        return None;
    };
    let opcode = match b0 {
        0x81 => OpCode::Text,
        0x82 => OpCode::Binary,
        _ => return None,
    };
    let payload_len = u64::from(b1 ^ 0x80);
    if b1 < 0x80 || payload_len > 125 || limits.role != Role::Server {
        return None;
    }
    if payload_len > limits.max_frame_size {
        return None;
    }
    let header = FrameHeader {
        fin: true,
        opcode,
        mask: Some([k0, k1, k2, k3]),
        compressed: false,
        payload_len,
    };
    Some((header, 6))
}

/// Writes a frame header into `out` and returns its length (§5.2). The length uses the
/// shortest form, as the RFC requires. `rsv1` marks a compressed message's first frame
/// (permessage-deflate, RFC 7692 §6); RSV2 and RSV3 are always clear.
pub fn encode_header(
    out: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload_len: u64,
    mask: Option<[u8; 4]>,
) -> usize {
    out[0] = if fin { 0x80 } else { 0 } | if rsv1 { RSV1 } else { 0 } | opcode.bits();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut n = match payload_len {
        0..=125 => {
            out[1] = mask_bit | payload_len as u8;
            2
        }
        126..=0xFFFF => {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
            4
        }
        _ => {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&payload_len.to_be_bytes());
            10
        }
    };
    if let Some(key) = mask {
        out[n..n + 4].copy_from_slice(&key);
        n += 4;
    }
    n
}

/// The two-byte header of an unmasked final frame whose payload is under 126 bytes (§5.2), or
/// `None` for a longer one: [`encode_header`]'s result for the most common frame a server
/// sends, returned by value so it never passes through memory.
#[inline]
pub fn short_header(rsv1: bool, opcode: OpCode, payload_len: usize) -> Option<[u8; 2]> {
    let len = u8::try_from(payload_len).ok().filter(|&len| len <= 125)?;
    Some([0x80 | if rsv1 { RSV1 } else { 0 } | opcode.bits(), len])
}

/// Appends one complete frame (FIN set, RSV1 as given) to `out`; masks the payload when `mask`
/// is given.
pub fn encode_frame(
    out: &mut Vec<u8>,
    rsv1: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut header, true, rsv1, opcode, payload.len() as u64, mask);
    out.reserve(n + payload.len());
    out.extend_from_slice(&header[..n]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key, 0);
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;

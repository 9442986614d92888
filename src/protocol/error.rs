//! Every way a peer can break the framing rules, and the close code each one earns (§7.4.1).

use std::fmt;

use super::close::CloseCode;

/// A violation of RFC 6455 by the peer, detected while decoding its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV1-3 set without a negotiated extension (§5.2).
    ReservedBits(u8),
    /// Opcodes 0x3-0x7 and 0xB-0xF are reserved (§5.2).
    ReservedOpcode(u8),
    /// A control frame with FIN clear (§5.5).
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload (§5.5).
    ControlTooLong(u64),
    /// A client frame without the mask bit (§5.1), or a masked server frame (§5.1).
    BadMasking {
        /// Whether the offending frame was masked.
        masked: bool,
    },
    /// A 64-bit length with the most significant bit set (§5.2).
    LengthOverflow,
    /// A continuation frame with no fragmented message in progress (§5.4).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is still open (§5.4).
    ExpectedContinuation,
    /// A text message that is not UTF-8 (§8.1).
    InvalidUtf8,
    /// A close frame whose reason is not UTF-8 (§5.5.1).
    InvalidCloseReason,
    /// A close frame whose body is one byte (§5.5.1).
    CloseBodyTooShort,
    /// A close code that may not be sent on the wire (§7.4).
    InvalidCloseCode(u16),
    /// A frame longer than the configured frame limit.
    FrameTooBig(u64),
    /// A message longer than the configured message limit (inflated, when compressed).
    MessageTooBig(u64),
    /// A compressed message whose frames hold more than any compressor makes of a message of
    /// the configured limit ([`max_compressed_len`](super::deflate::max_compressed_len)).
    CompressedTooBig(u64),
    /// A compressed message that is not valid DEFLATE data (RFC 7692 §8.2: fail the connection).
    BadCompression,
}

impl ProtocolError {
    /// The close code the endpoint sends when it fails the connection for this error.
    pub fn close_code(self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 | ProtocolError::InvalidCloseReason => {
                CloseCode::INVALID_PAYLOAD
            }
            ProtocolError::FrameTooBig(_)
            | ProtocolError::MessageTooBig(_)
            | ProtocolError::CompressedTooBig(_) => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedBits(bits) => write!(f, "reserved bits {bits:#05b} set"),
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::FragmentedControl => f.write_str("fragmented control frame"),
            ProtocolError::ControlTooLong(n) => write!(f, "control frame of {n} bytes"),
            ProtocolError::BadMasking { masked: false } => f.write_str("client frame not masked"),
            ProtocolError::BadMasking { masked: true } => f.write_str("server frame masked"),
            ProtocolError::LengthOverflow => f.write_str("frame length has the top bit set"),
            ProtocolError::UnexpectedContinuation => f.write_str("continuation without a message"),
            ProtocolError::ExpectedContinuation => {
                f.write_str("new message inside a fragmented one")
            }
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            ProtocolError::InvalidCloseReason => f.write_str("close reason is not UTF-8"),
            ProtocolError::CloseBodyTooShort => f.write_str("close frame with a 1-byte body"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            ProtocolError::FrameTooBig(n) => write!(f, "frame of {n} bytes over the limit"),
            ProtocolError::MessageTooBig(n) => write!(f, "message of {n} bytes over the limit"),
            ProtocolError::CompressedTooBig(n) => {
                write!(f, "compressed message of {n} bytes over the limit")
            }
            ProtocolError::BadCompression => f.write_str("compressed message is not valid DEFLATE"),
        }
    }
}

impl std::error::Error for ProtocolError {}

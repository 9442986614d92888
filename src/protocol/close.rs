//! Close codes and close frame bodies, RFC 6455 §5.5.1 and §7.4.

use std::fmt;

use super::error::ProtocolError;

/// A WebSocket close status code (RFC 6455 §7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, idle timeout).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: the connection dropped without a close frame (never sent on the wire).
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: a text message was not UTF-8.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a message or frame was larger than the configured limit.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the service is restarting; the client may reconnect (a server that drains).
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);

    /// Whether this code may appear in a close frame on the wire (§7.4.1, §7.4.2):
    /// 1000-1003 and 1007-1014 (the codes IANA's registry assigns), 3000-4999 (libraries and
    /// applications). 1004, 1005, 1006, 1015 and unassigned codes are reserved: never sent.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Parses the body of a received close frame (§5.5.1): empty, or a 2-byte code followed by a
/// UTF-8 reason. Returns the code (1005 when absent) and the reason.
pub fn parse_close_body(body: &[u8]) -> Result<(CloseCode, &str), ProtocolError> {
    match body {
        [] => Ok((CloseCode::NO_STATUS, "")),
        [_] => Err(ProtocolError::CloseBodyTooShort),
        [hi, lo, reason @ ..] => {
            let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
            if !code.is_sendable() {
                return Err(ProtocolError::InvalidCloseCode(code.0));
            }
            let reason =
                std::str::from_utf8(reason).map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok((code, reason))
        }
    }
}

/// Builds a close frame body: the code and as much of `reason` as fits in a control frame
/// (123 bytes), cut at a character boundary.
pub fn close_body(code: CloseCode, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut body = Vec::with_capacity(2 + cut);
    body.extend_from_slice(&code.0.to_be_bytes());
    body.extend_from_slice(&reason.as_bytes()[..cut]);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_ranges() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1014, 3000, 4999,
        ] {
            assert!(CloseCode(code).is_sendable(), "{code}");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
            assert!(!CloseCode(code).is_sendable(), "{code}");
        }
    }

    #[test]
    fn close_body_parsing() {
        assert_eq!(parse_close_body(&[]), Ok((CloseCode::NO_STATUS, "")));
        assert_eq!(
            parse_close_body(&[3]),
            Err(ProtocolError::CloseBodyTooShort)
        );
        assert_eq!(
            parse_close_body(&[0x03, 0xE8, b'o', b'k']),
            Ok((CloseCode::NORMAL, "ok"))
        );
        assert_eq!(
            parse_close_body(&[0x03, 0xED]),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            parse_close_body(&[0x03, 0xE8, 0xFF]),
            Err(ProtocolError::InvalidCloseReason)
        );
    }

    #[test]
    fn long_reason_is_cut_at_a_char_boundary() {
        let reason = "é".repeat(100); // 200 bytes
        let body = close_body(CloseCode::NORMAL, &reason);
        assert!(body.len() <= 125);
        assert!(std::str::from_utf8(&body[2..]).is_ok());
    }
}

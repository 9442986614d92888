//! The opening handshake, client side, RFC 6455 §4.1: the upgrade request, and the checks on
//! the server's reply (§4.1 "the client MUST validate the server's response").

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::deflate::{accept_response, ClientOffer, DeflateParams};
use super::handshake::accept_key;

/// The most header lines a response may carry.
const MAX_HEADERS: usize = 64;

/// Builds the upgrade request for `path` on `host` (with `:port` when not the default), with
/// the 16-byte `nonce` as key and the offered subprotocols.
pub fn upgrade_request(
    host: &str,
    path: &str,
    nonce: [u8; 16],
    protocols: &[&str],
) -> (Vec<u8>, String) {
    upgrade_request_offering(host, path, nonce, protocols, None)
}

/// [`upgrade_request`], also offering permessage-deflate when `deflate` is given (RFC 7692 §5):
/// these offers in order, or the default one when the list is empty.
pub fn upgrade_request_offering(
    host: &str,
    path: &str,
    nonce: [u8; 16],
    protocols: &[&str],
    deflate: Option<&[ClientOffer]>,
) -> (Vec<u8>, String) {
    let key = BASE64.encode(nonce);
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if !protocols.is_empty() {
        request.push_str(&format!(
            "Sec-WebSocket-Protocol: {}\r\n",
            protocols.join(", ")
        ));
    }
    if let Some(offers) = deflate {
        let offer = ClientOffer::header(offers);
        request.push_str(&format!("Sec-WebSocket-Extensions: {offer}\r\n"));
    }
    request.push_str("\r\n");
    (request.into_bytes(), key)
}

/// Why the server's reply does not open a WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// Not a parseable HTTP/1.1 response head.
    Malformed,
    /// A status other than 101: the status and its reason phrase.
    Status(u16, String),
    /// 101, but a required header is missing or wrong: which one.
    BadHeader(&'static str),
}

impl std::fmt::Display for ResponseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResponseError::Malformed => f.write_str("the server's reply is not HTTP"),
            ResponseError::Status(code, reason) => write!(f, "the server answered {code} {reason}"),
            ResponseError::BadHeader(name) => write!(f, "the server's 101 has a bad {name} header"),
        }
    }
}

impl std::error::Error for ResponseError {}

/// A complete, valid 101 reply.
#[derive(Debug, PartialEq, Eq)]
pub struct Accepted {
    /// Length of the response head; later bytes are frames.
    pub head_len: usize,
    /// The subprotocol the server selected.
    pub protocol: Option<String>,
    /// permessage-deflate as the server agreed to it, if it did.
    pub deflate: Option<DeflateParams>,
}

/// Checks the reply at the front of `buf` against the request's `key` and offered
/// `protocols`. `Ok(None)` means the head is not complete yet.
pub fn parse_response(
    buf: &[u8],
    key: &str,
    protocols: &[&str],
) -> Result<Option<Accepted>, ResponseError> {
    parse_response_to(buf, key, protocols, false)
}

/// [`parse_response`] for a request that offered permessage-deflate when `deflate_offered`.
pub fn parse_response_to(
    buf: &[u8],
    key: &str,
    protocols: &[&str],
    deflate_offered: bool,
) -> Result<Option<Accepted>, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ResponseError::Malformed),
    };
    let code = response.code.unwrap_or(0);
    if code != 101 {
        return Err(ResponseError::Status(
            code,
            response.reason.unwrap_or("").to_string(),
        ));
    }
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    };
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("Upgrade", "websocket") {
        return Err(ResponseError::BadHeader("Upgrade"));
    }
    if !has_token("Connection", "upgrade") {
        return Err(ResponseError::BadHeader("Connection"));
    }
    if header("Sec-WebSocket-Accept") != Some(accept_key(key).as_str()) {
        return Err(ResponseError::BadHeader("Sec-WebSocket-Accept"));
    }
    let extensions = response
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("Sec-WebSocket-Extensions"))
        .filter_map(|h| std::str::from_utf8(h.value).ok());
    let deflate = match accept_response(extensions) {
        // An extension the client did not offer fails the connection (RFC 6455 §9.1).
        Ok(Some(_)) if !deflate_offered => {
            return Err(ResponseError::BadHeader("Sec-WebSocket-Extensions"))
        }
        Ok(agreed) => agreed,
        Err(_) => return Err(ResponseError::BadHeader("Sec-WebSocket-Extensions")),
    };
    let protocol = header("Sec-WebSocket-Protocol").map(str::to_string);
    if protocol.as_deref().is_some_and(|p| !protocols.contains(&p)) {
        return Err(ResponseError::BadHeader("Sec-WebSocket-Protocol"));
    }
    Ok(Some(Accepted {
        head_len,
        protocol,
        deflate,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: [u8; 16] = *b"the sample nonce";

    #[test]
    fn request_carries_the_rfc_key() {
        let (request, key) = upgrade_request("server.example.com", "/chat", NONCE, &["chat"]);
        assert_eq!(key, "dGhlIHNhbXBsZSBub25jZQ==");
        let text = String::from_utf8(request).unwrap();
        assert!(text.starts_with("GET /chat HTTP/1.1\r\nHost: server.example.com\r\n"));
        assert!(text.contains("Sec-WebSocket-Protocol: chat\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn valid_reply_is_accepted_and_frames_after_it_kept() {
        let reply =
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        let mut bytes = reply.as_bytes().to_vec();
        bytes.extend_from_slice(&[0x81, 0x00]);
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let accepted = parse_response(&bytes, key, &[]).unwrap().unwrap();
        assert_eq!(accepted.head_len, reply.len());
        assert_eq!(parse_response(&bytes[..20], key, &[]), Ok(None));
    }

    #[test]
    fn bad_replies_are_refused() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let not_found = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        let err = parse_response(not_found.as_bytes(), key, &[]).unwrap_err();
        assert_eq!(err, ResponseError::Status(404, "Not Found".into()));
        let wrong_accept = "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
                            Sec-WebSocket-Accept: AAAA\r\n\r\n";
        let err = parse_response(wrong_accept.as_bytes(), key, &[]).unwrap_err();
        assert_eq!(err, ResponseError::BadHeader("Sec-WebSocket-Accept"));
        let unoffered = "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
                         Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: x\r\n\r\n";
        let err = parse_response(unoffered.as_bytes(), key, &["chat"]).unwrap_err();
        assert_eq!(err, ResponseError::BadHeader("Sec-WebSocket-Protocol"));
    }
}

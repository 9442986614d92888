//! The opening handshake, server side, RFC 6455 §4.2: parse the HTTP/1.1 request head, decide
//! whether it is a valid upgrade, and build the reply.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::auth::Identity;

/// The GUID every accept key is derived with (§1.3).
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The most header lines a request may carry.
const MAX_HEADERS: usize = 64;

/// A parsed HTTP request head, and what the server learned of who sent it: the peer's address
/// and, with [`ServerBuilder::auth`](crate::ServerBuilder::auth), the verified identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    peer: Option<SocketAddr>,
    identity: Option<Arc<Identity>>,
    /// It came through the server's separate HTTP address (`ServerBuilder::http_bind`).
    http_only: bool,
}

impl Request {
    /// The address the request came from (`None` only for a request parsed outside a server).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Who the request's token says sent it, when the server checks tokens and this one
    /// carried a valid token; `None` for an anonymous request.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// Notes who sent the request, and whether it came through the separate HTTP address.
    pub(crate) fn set_peer(&mut self, peer: SocketAddr, http_only: bool) {
        self.peer = Some(peer);
        self.http_only = http_only;
    }

    /// Whether it came through the server's separate HTTP address.
    pub(crate) fn http_only(&self) -> bool {
        self.http_only
    }

    pub(crate) fn set_identity(&mut self, identity: Option<Arc<Identity>>) {
        self.identity = identity;
    }

    pub(crate) fn shared_identity(&self) -> Option<Arc<Identity>> {
        self.identity.clone()
    }

    /// The target as logs show it: the path, and the query's parameter names with every value
    /// left out (a token in the query must never reach a log).
    pub fn logged_target(&self) -> String {
        // A fragment is never sent by browsers; whatever a client put there stays out too.
        let (target, fragment) = match self.path.split_once('#') {
            Some((target, _)) => (target, "#…"),
            None => (self.path.as_str(), ""),
        };
        let Some((path, query)) = target.split_once('?') else {
            return format!("{target}{fragment}");
        };
        // A bare parameter (no `=`) may be a token sent without its name: left out whole.
        let names: Vec<String> = (query.split('&'))
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}=…"),
                None => "…".to_string(),
            })
            .collect();
        format!("{path}?{}{fragment}", names.join("&"))
    }

    /// The request method (`GET` for any valid upgrade).
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The request target's path, without the query string.
    pub fn path(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    /// The whole request target, query string included.
    pub fn target(&self) -> &str {
        &self.path
    }

    /// The value of the first query parameter called `name`, decoded as a browser's
    /// `URLSearchParams` encodes it (`%XX` escapes, `+` for a space; a malformed escape is
    /// kept as it is). `None` when the target has no such parameter: `?token=x` has `token`,
    /// but `?notatoken=x` and `?a=token=x` do not.
    pub fn query(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        let (_, query) = self.path.split_once('?')?;
        let query = query.split('#').next().unwrap_or("");
        query
            .split('&')
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .find(|(key, _)| form_decode(key) == name)
            .map(|(_, value)| form_decode(value))
    }

    /// The first header with this name (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every header line with this name, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Origin` header browsers send (§4.2.1 item 7, §10.2).
    pub fn origin(&self) -> Option<&str> {
        self.header("Origin")
    }

    /// The subprotocols the client offers in `Sec-WebSocket-Protocol`, in its order of
    /// preference.
    pub fn protocols(&self) -> impl Iterator<Item = &str> {
        self.headers_named("Sec-WebSocket-Protocol")
            .flat_map(tokens)
    }

    /// Whether a comma-separated header contains `token`, case-insensitively.
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers_named(name)
            .flat_map(tokens)
            .any(|t| t.eq_ignore_ascii_case(token))
    }
}

/// `application/x-www-form-urlencoded` decoding of one key or value: borrowed when there is
/// nothing to decode.
fn form_decode(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return text.into();
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2)) {
                    out.push((high * 16 + low) as u8);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned().into()
}

/// Splits a comma-separated header value into its non-empty, trimmed elements.
fn tokens(value: &str) -> impl Iterator<Item = &str> {
    value
        .split(',')
        .map(|t| t.trim_matches([' ', '\t']))
        .filter(|t| !t.is_empty())
}

/// An HTTP error reply: the status, a one-line reason sent as the body, and any headers the
/// status needs (`WWW-Authenticate` with 401, `Retry-After` with 429 or 503).
///
/// ```
/// use wsloop::HttpError;
///
/// let error = HttpError::new(429, "too many connections").header("Retry-After", "5");
/// assert_eq!((error.status, error.reason.as_ref()), (429, "too many connections"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpError {
    /// The status code.
    pub status: u16,
    /// Why, in one line.
    pub reason: std::borrow::Cow<'static, str>,
    /// Header lines added to the reply, as (name, value). One whose name is not an HTTP token
    /// or whose value holds a line break is left out.
    pub headers: Vec<(String, String)>,
}

impl HttpError {
    /// A reply with this status and reason, and no extra header.
    pub fn new(status: u16, reason: impl Into<std::borrow::Cow<'static, str>>) -> HttpError {
        HttpError {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }

    /// The same reply with one more header line.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> HttpError {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// Every way the server itself refuses a request, each mapped to its status and one-line
/// reason in [`Refusal::http_error`], the one place they are written. (A handler refuses with
/// an [`HttpError`] of its choosing, from [`Handler::on_upgrade`](crate::Handler::on_upgrade).)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub(crate) enum Refusal {
    /// httparse could not parse the head.
    Malformed,
    /// Not HTTP/1.1 (§4.1 item 2).
    NotHttp11,
    /// A header value is not UTF-8.
    HeaderNotUtf8,
    /// The head is longer than `max_header_size`.
    HeadTooLarge,
    /// More header lines than the parser takes.
    TooManyHeaders,
    /// An upgrade request that is not a GET (§4.2.1 item 1).
    NotGet,
    /// A plain request other than GET or HEAD.
    MethodNotAllowed,
    /// No `Host` (§4.2.1 item 2).
    MissingHost,
    /// `Connection` lacks `upgrade` (§4.2.1 item 4).
    NoConnectionUpgrade,
    /// A version other than 13 (§4.2.1 item 6, §4.4).
    UnsupportedVersion,
    /// No `Sec-WebSocket-Key`, or several (§4.2.1 item 5).
    KeyCount,
    /// A key that is not 16 bytes in base64 (§4.2.1 item 5).
    BadKey,
    /// An upgrade from a browser page whose `Origin` is not allowed (§10.2).
    OriginNotAllowed,
    /// A plain request for a path no one serves.
    NoSuchPath,
    /// An upgrade request for a path no WebSocket route serves.
    NoWebSocketRoute,
    /// A plain request for a WebSocket route.
    WebSocketOnly,
    /// The whole head did not arrive within `handshake_timeout`.
    HandshakeTimeout,
    /// The handler chose a subprotocol the client did not offer (§4.2.2 item 5.4).
    SubprotocolNotOffered,
    /// The server holds `max_connections` already.
    AtCapacity,
}

impl Refusal {
    /// The status and reason sent for it.
    pub fn http_error(self) -> HttpError {
        let (status, reason) = match self {
            Refusal::Malformed => (400, "malformed HTTP request"),
            Refusal::NotHttp11 => (400, "HTTP/1.1 is required"),
            Refusal::HeaderNotUtf8 => (400, "header value is not UTF-8"),
            Refusal::HeadTooLarge => (431, "request head is larger than the header limit"),
            Refusal::TooManyHeaders => (431, "request has too many header lines"),
            Refusal::NotGet => (400, "method must be GET"),
            Refusal::MethodNotAllowed => (405, "only GET and HEAD are served"),
            Refusal::MissingHost => (400, "missing Host header"),
            Refusal::NoConnectionUpgrade => (400, "Connection header must contain upgrade"),
            Refusal::UnsupportedVersion => (426, "Sec-WebSocket-Version must be 13"),
            Refusal::KeyCount => (400, "exactly one Sec-WebSocket-Key is required"),
            Refusal::BadKey => (400, "Sec-WebSocket-Key must be 16 bytes in base64"),
            Refusal::OriginNotAllowed => (403, "origin not allowed"),
            Refusal::NoSuchPath => (404, "no such endpoint"),
            Refusal::NoWebSocketRoute => (404, "no WebSocket endpoint at this path"),
            Refusal::WebSocketOnly => (426, "this path speaks WebSocket"),
            Refusal::HandshakeTimeout => (408, "request head took too long"),
            Refusal::SubprotocolNotOffered => (500, "server chose a subprotocol not offered"),
            Refusal::AtCapacity => (503, "server is at its connection limit"),
        };
        HttpError::new(status, reason)
    }
}

impl From<Refusal> for HttpError {
    fn from(refusal: Refusal) -> HttpError {
        refusal.http_error()
    }
}

/// The result of feeding bytes to [`parse_request`].
#[derive(Debug)]
pub enum Parsed {
    /// The head is not complete yet.
    Partial,
    /// A complete head of `head_len` bytes; bytes after it belong to the WebSocket.
    Complete {
        /// The request.
        request: Request,
        /// How many bytes the head took.
        head_len: usize,
    },
}

/// Parses the request head at the front of `buf`, refusing heads over `max_head_size` bytes
/// (431) and malformed ones (400).
pub fn parse_request(buf: &[u8], max_head_size: usize) -> Result<Parsed, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let limited = &buf[..buf.len().min(max_head_size)];
    let head_len = match parsed.parse(limited) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= max_head_size => {
            return Err(Refusal::HeadTooLarge.into());
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::TooManyHeaders.into());
        }
        Err(_) => return Err(Refusal::Malformed.into()),
    };
    if parsed.version != Some(1) {
        return Err(Refusal::NotHttp11.into());
    }
    let mut fields = Vec::with_capacity(parsed.headers.len());
    for h in parsed.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| Refusal::HeaderNotUtf8)?;
        fields.push((h.name.to_string(), value.trim().to_string()));
    }
    let request = Request {
        method: parsed.method.unwrap_or_default().to_string(),
        path: parsed.path.unwrap_or_default().to_string(),
        headers: fields,
        peer: None,
        identity: None,
        http_only: false,
    };
    Ok(Parsed::Complete { request, head_len })
}

/// What a complete request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Intent {
    /// A valid WebSocket upgrade; the value is the `Sec-WebSocket-Accept` to answer with.
    Upgrade {
        /// The accept key for the 101 reply.
        accept: String,
    },
    /// A plain HTTP request, not trying to upgrade.
    Plain,
}

/// Checks a request against §4.2.1. A request without an `Upgrade: websocket` is `Plain`; one
/// that tries to upgrade must be complete and correct, else the error says what is wrong.
pub fn classify(request: &Request) -> Result<Intent, HttpError> {
    if !request.has_token("Upgrade", "websocket") {
        return Ok(Intent::Plain);
    }
    if request.method() != "GET" {
        return Err(Refusal::NotGet.into());
    }
    if request.header("Host").is_none() {
        return Err(Refusal::MissingHost.into());
    }
    if !request.has_token("Connection", "upgrade") {
        return Err(Refusal::NoConnectionUpgrade.into());
    }
    let versions: Vec<&str> = request.headers_named("Sec-WebSocket-Version").collect();
    if versions != ["13"] {
        return Err(Refusal::UnsupportedVersion.into());
    }
    let mut keys = request.headers_named("Sec-WebSocket-Key");
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) => key,
        _ => return Err(Refusal::KeyCount.into()),
    };
    match BASE64.decode(key) {
        Ok(nonce) if nonce.len() == 16 => Ok(Intent::Upgrade {
            accept: accept_key(key),
        }),
        _ => Err(Refusal::BadKey.into()),
    }
}

/// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)) (§4.2.2 item 5.4).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WEBSOCKET_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// The 101 reply that opens the connection, with the selected subprotocol if any.
pub fn switching_protocols(accept: &str, protocol: Option<&str>) -> Vec<u8> {
    switching_protocols_with(accept, protocol, None)
}

/// [`switching_protocols`] with the agreed `Sec-WebSocket-Extensions` value, if any.
pub fn switching_protocols_with(
    accept: &str,
    protocol: Option<&str>,
    extensions: Option<&str>,
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n"
    );
    if let Some(protocol) = protocol {
        out.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    if let Some(extensions) = extensions {
        out.push_str(&format!("Sec-WebSocket-Extensions: {extensions}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A complete HTTP reply with a body; the connection closes after it.
pub(crate) fn http_response(
    status: u16,
    content_type: &str,
    extra_headers: &str,
    body: &[u8],
) -> Vec<u8> {
    response(status, content_type, "close", extra_headers, body)
}

fn response(
    status: u16,
    content_type: &str,
    connection: &str,
    extra_headers: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: {connection}\r\n{extra_headers}\r\n",
        reason_phrase(status),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The reply for an [`HttpError`]: its reason as a plain-text body; for 426 the version this
/// server speaks (§4.2.2), for 405 the methods it serves.
pub fn error_response(error: &HttpError) -> Vec<u8> {
    let (connection, extra) = match error.status {
        // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to, and §7.8: whoever sends
        // Upgrade lists it in Connection, beside close.
        426 => (
            "Upgrade, close",
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
        ),
        405 => ("close", "Allow: GET, HEAD\r\n"),
        _ => ("close", ""),
    };
    let mut extra = extra.to_string();
    let token = |name: &str| {
        !name.is_empty()
            && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    for (name, value) in &error.headers {
        if token(name) && !value.contains(['\r', '\n']) {
            extra += &format!("{name}: {value}\r\n");
        }
    }
    // The reason is one line, whatever a handler put in it.
    let body = format!("{}\n", error.reason.replace(['\r', '\n'], " "));
    let content_type = "text/plain; charset=utf-8";
    response(
        error.status,
        content_type,
        connection,
        &extra,
        body.as_bytes(),
    )
}

/// The head of a reply without its body: the answer to a HEAD request (RFC 9110 §9.3.2).
pub fn without_body(mut response: Vec<u8>) -> Vec<u8> {
    if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
        response.truncate(end + 4);
    }
    response
}

pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;

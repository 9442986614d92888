//! Why a client call failed.

use std::fmt;
use std::io;

use crate::protocol::client_handshake::ResponseError;
use crate::protocol::error::ProtocolError;

/// Why a client call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL cannot be used.
    Url(String),
    /// The TCP connection could not be made.
    Connect(io::Error),
    /// The server's reply to the upgrade is not a valid one: not HTTP, or a 101 with a
    /// missing or wrong header. (A reply with another status is [`ClientError::Refused`].)
    Handshake(ResponseError),
    /// The server refused the upgrade: it answered with another status than 101 (say 403 for
    /// an origin it does not allow, or 404 for a path it does not serve).
    Refused {
        /// The HTTP status.
        status: u16,
        /// The status line's reason phrase.
        reason: String,
        /// Why, as the server said in a plain-text body: its first line, at most 200
        /// characters, without control characters. Empty when it said nothing more.
        message: String,
    },
    /// The TLS configuration could not be made: the system's trusted root certificates could
    /// not be loaded, say. Why, in one line.
    TlsSetup(String),
    /// The server's certificate was not accepted (signed by no trusted CA, for another host
    /// name, expired...): why, in one line.
    Certificate(String),
    /// TLS failed otherwise (the server refused the handshake, or spoke no TLS): why, in one
    /// line.
    Tls(String),
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
            ClientError::Handshake(e) => write!(f, "handshake failed: {e}"),
            ClientError::Refused {
                status,
                reason,
                message,
            } => {
                write!(
                    f,
                    "handshake refused: the server answered {status} {reason}"
                )?;
                if !message.is_empty() && !message.eq_ignore_ascii_case(reason) {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            ClientError::TlsSetup(why) => write!(f, "cannot set up TLS: {why}"),
            ClientError::Certificate(why) | ClientError::Tls(why) => write!(f, "TLS failed: {why}"),
            ClientError::Io(e) => write!(f, "connection error: {e}"),
            ClientError::Protocol(e) => write!(f, "server broke the protocol: {e}"),
            ClientError::Closed => f.write_str("the connection is closed"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    /// An I/O error; one that carries a rustls error (how a TLS stream reports a failed
    /// handshake or a bad record) becomes [`ClientError::Certificate`] or [`ClientError::Tls`].
    fn from(e: io::Error) -> ClientError {
        let tls = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>());
        match tls {
            Some(tls) => super::tls_error::tls_error(tls),
            None => ClientError::Io(e),
        }
    }
}

impl ClientError {
    /// Whether this is a read timeout rather than a failure.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

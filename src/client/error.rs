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
    /// The server did not accept the upgrade.
    Handshake(ResponseError),
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
            ClientError::Handshake(e) => write!(f, "handshake refused: {e}"),
            ClientError::Io(e) => write!(f, "connection error: {e}"),
            ClientError::Protocol(e) => write!(f, "server broke the protocol: {e}"),
            ClientError::Closed => f.write_str("the connection is closed"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> ClientError {
        ClientError::Io(e)
    }
}

impl ClientError {
    /// Whether this is a read timeout rather than a failure.
    pub fn is_timeout(&self) -> bool {
        matches!(self, ClientError::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }
}

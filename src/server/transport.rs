//! The byte pipe under a connection: the only place the loop reads or writes a socket. Plain
//! TCP today; TLS (rustls' sans-IO server connection over the same socket) plugs in here as a
//! second variant, and nothing above it changes.

use std::io::{self, Read};
use std::net::Shutdown;

use mio::net::TcpStream;

use crate::protocol::write_queue::WriteQueue;

/// One connection's transport.
#[derive(Debug)]
pub(crate) enum Transport {
    /// A plain TCP socket.
    Plain {
        stream: TcpStream,
        /// The write side is shut down.
        write_shut: bool,
    },
}

impl Transport {
    pub(crate) fn plain(stream: TcpStream) -> Transport {
        Transport::Plain {
            stream,
            write_shut: false,
        }
    }

    /// The socket, to register with the poll.
    pub(crate) fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain { stream, .. } => stream,
        }
    }

    /// Reads what the peer sent into `buf`: `Ok(0)` is end of stream.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain { stream, .. } => stream.read(buf),
        }
    }

    /// Whether a read that returned less than it was offered proves the socket drained, so
    /// the next read can wait for the next readiness event instead of returning `WouldBlock`.
    /// True for plain TCP on Linux, whose edge-triggered epoll raises a new event for anything
    /// that arrives later; not under TLS, where a short read of plaintext says nothing about the
    /// socket.
    pub(crate) fn short_read_drains(&self) -> bool {
        match self {
            Transport::Plain { .. } => cfg!(target_os = "linux"),
        }
    }

    /// Writes as much of `queue` as the socket takes (see [`WriteQueue::write_to`] for the
    /// contract); returns the bytes written.
    pub(crate) fn flush(&mut self, queue: &mut WriteQueue) -> io::Result<usize> {
        match self {
            Transport::Plain { stream, .. } => queue.write_to(stream),
        }
    }

    /// Whether bytes wait to be written: `queued` in the connection's queue, or inside the
    /// transport.
    pub(crate) fn wants_write(&self, queued: usize) -> bool {
        match self {
            Transport::Plain { .. } => queued > 0,
        }
    }

    /// Shuts down the write side once (the server closes the TCP connection first, §7.1.1).
    pub(crate) fn shutdown(&mut self) {
        match self {
            Transport::Plain { stream, write_shut } => {
                if !*write_shut {
                    *write_shut = true;
                    let _ = stream.shutdown(Shutdown::Write);
                }
            }
        }
    }
}

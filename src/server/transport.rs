//! The byte pipe under a connection: the only place the loop reads or writes a socket. Plain
//! TCP, or TLS: rustls' sans-IO server connection over the same non-blocking socket, on the
//! same loop. Nothing above it knows which.

use std::io::{self, ErrorKind, Read};
use std::net::Shutdown;
use std::sync::Arc;

use log::info;
use mio::net::TcpStream;
use rustls::{Connection, ServerConfig, ServerConnection};

use crate::protocol::write_queue::WriteQueue;
use crate::tls;

/// The most plaintext and records rustls holds for one connection before it takes no more:
/// the rest waits in the connection's write queue, where it counts for backpressure.
const TLS_BUFFER_LIMIT: usize = 64 * 1024;

/// One connection's transport.
#[derive(Debug)]
pub(crate) enum Transport {
    /// A plain TCP socket.
    Plain {
        stream: TcpStream,
        /// The write side is shut down.
        write_shut: bool,
    },
    /// TLS over a TCP socket.
    Tls(Box<Tls>),
}

/// The TLS state of one connection.
#[derive(Debug)]
pub(crate) struct Tls {
    stream: TcpStream,
    /// The server side of a rustls connection.
    tls: Connection,
    /// close_notify is queued.
    closing: bool,
    /// The write side is shut down (after close_notify went out).
    write_shut: bool,
    /// A TLS failure was logged.
    failed: bool,
}

impl Transport {
    pub(crate) fn plain(stream: TcpStream) -> Transport {
        Transport::Plain {
            stream,
            write_shut: false,
        }
    }

    /// TLS on `stream` with `config`.
    pub(crate) fn tls(stream: TcpStream, config: Arc<ServerConfig>) -> io::Result<Transport> {
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        tls.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        Ok(Transport::Tls(Box::new(Tls {
            stream,
            tls: Connection::Server(tls),
            closing: false,
            write_shut: false,
            failed: false,
        })))
    }

    /// The socket, to register with the poll.
    pub(crate) fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain { stream, .. } => stream,
            Transport::Tls(tls) => &mut tls.stream,
        }
    }

    /// Reads what the peer sent into `buf`: `Ok(0)` is end of stream.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain { stream, .. } => stream.read(buf),
            Transport::Tls(tls) => tls.read(buf),
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
            Transport::Tls(_) => false,
        }
    }

    /// Writes as much of `queue` as the socket takes (see [`WriteQueue::write_to`] for the
    /// contract), and whatever the transport itself has to send (TLS handshake records).
    pub(crate) fn flush(&mut self, queue: Option<&mut WriteQueue>) -> io::Result<usize> {
        self.flush_from_input(queue, &[])
    }

    /// Like [`Transport::flush`] for a queue that holds payloads of `input`, the buffer they
    /// were read into ([`WriteQueue::push_frame_from_input`]).
    pub(crate) fn flush_from_input(
        &mut self,
        queue: Option<&mut WriteQueue>,
        input: &[u8],
    ) -> io::Result<usize> {
        match self {
            Transport::Plain { stream, .. } => match queue {
                Some(queue) if !queue.is_empty() => queue.write_from_input(stream, input),
                _ => Ok(0),
            },
            Transport::Tls(tls) => tls.flush(queue, input),
        }
    }

    /// Whether bytes wait to be written: `queued` in the connection's queue, or inside the
    /// transport.
    pub(crate) fn wants_write(&self, queued: usize) -> bool {
        match self {
            Transport::Plain { .. } => queued > 0,
            Transport::Tls(tls) => queued > 0 || tls.tls.wants_write(),
        }
    }

    /// Whether what the connection queues can reach the peer: not before a TLS handshake
    /// completes.
    pub(crate) fn is_established(&self) -> bool {
        match self {
            Transport::Plain { .. } => true,
            Transport::Tls(tls) => !tls.tls.is_handshaking(),
        }
    }

    /// Ends the write side (the server closes the TCP connection first, §7.1.1): under TLS,
    /// close_notify first. Called again until it is done.
    /// Makes closing the socket abortive (`SO_LINGER` 0: an RST, not a FIN): what is still
    /// unsent in the kernel is discarded, so a peer that stopped reading does not hold the
    /// socket's memory and the port for minutes after the server let go of it.
    pub(crate) fn reset_on_close(&mut self) {
        let stream: &TcpStream = match self {
            Transport::Plain { stream, .. } => stream,
            Transport::Tls(tls) => &tls.stream,
        };
        let _ = socket2::SockRef::from(stream).set_linger(Some(std::time::Duration::ZERO));
    }

    pub(crate) fn shutdown(&mut self) {
        match self {
            Transport::Plain { stream, write_shut } => {
                if !*write_shut {
                    *write_shut = true;
                    let _ = stream.shutdown(Shutdown::Write);
                }
            }
            Transport::Tls(tls) => tls.shutdown(),
        }
    }
}

impl Tls {
    /// Plaintext the peer sent, reading and decrypting records as needed.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let result = tls::read_plaintext(&mut self.tls, &mut self.stream, buf);
        if let Err(e) = &result {
            if e.kind() == ErrorKind::InvalidData && !self.failed {
                self.failed = true;
                let peer = self.stream.peer_addr().map(|a| a.to_string());
                let peer = peer.unwrap_or_else(|_| "-".into());
                info!(peer = peer.as_str(); "{peer} TLS failed: {e}");
            }
        }
        result
    }

    /// Moves queued plaintext into TLS records and writes the records out.
    fn flush(&mut self, mut queue: Option<&mut WriteQueue>, input: &[u8]) -> io::Result<usize> {
        let mut taken = 0;
        loop {
            tls::write_records(&mut self.tls, &mut self.stream)?;
            if self.tls.wants_write() {
                return Ok(taken); // the socket is full
            }
            let Some(queue) = queue.as_deref_mut().filter(|q| !q.is_empty()) else {
                return Ok(taken);
            };
            if self.tls.is_handshaking() || self.closing {
                return Ok(taken); // plaintext waits in the queue until it can go out
            }
            taken += queue.write_from_input(&mut tls::Plaintext(&mut self.tls), input)?;
            if !self.tls.wants_write() {
                return Ok(taken);
            }
        }
    }

    fn shutdown(&mut self) {
        if !self.closing {
            self.closing = true;
            // Before the handshake completes there is no session to close.
            if !self.tls.is_handshaking() {
                self.tls.send_close_notify();
            }
        }
        let _ = self.flush(None, &[]);
        if !self.write_shut && !self.tls.wants_write() {
            self.write_shut = true;
            let _ = self.stream.shutdown(Shutdown::Write);
        }
    }
}

//! A bench connection's byte stream: plain TCP, or TLS over it (rustls' client connection
//! driven over the non-blocking socket with the library's `wsloop::tls` helpers).

use std::io::{self, ErrorKind, IoSlice, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use wsloop::rustls::pki_types::ServerName;
use wsloop::rustls::{ClientConfig, ClientConnection, Connection};
use wsloop::tls::{read_plaintext, write_records, Plaintext};

/// What a bench connection reads and writes.
pub enum BenchStream {
    Plain(TcpStream),
    Tls {
        tcp: TcpStream,
        tls: Box<Connection>,
    },
}

impl BenchStream {
    /// TLS to `host` over `tcp` (the handshake goes out with the first writes).
    pub fn tls(tcp: TcpStream, host: &str, config: Arc<ClientConfig>) -> Result<Self, String> {
        let name = ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
        let tls = ClientConnection::new(config, name).map_err(|e| e.to_string())?;
        Ok(BenchStream::Tls {
            tcp,
            tls: Box::new(Connection::Client(tls)),
        })
    }

    /// The socket, to register and to ask about the connect.
    pub fn tcp(&mut self) -> &mut TcpStream {
        match self {
            BenchStream::Plain(tcp) | BenchStream::Tls { tcp, .. } => tcp,
        }
    }

    /// Whether a short read proves the socket drained (plain TCP on Linux only).
    pub fn short_read_drains(&self) -> bool {
        matches!(self, BenchStream::Plain(_)) && cfg!(target_os = "linux")
    }

    /// Whether TLS records wait to be written.
    pub fn records_waiting(&self) -> bool {
        matches!(self, BenchStream::Tls { tls, .. } if tls.wants_write())
    }

    /// Writes the TLS records that are ready, until the socket is full.
    pub fn push(&mut self) -> io::Result<()> {
        match self {
            BenchStream::Plain(_) => Ok(()),
            BenchStream::Tls { tcp, tls } => write_records(tls, tcp),
        }
    }

    /// Writes through TLS: encrypts what the plaintext side takes, then sends the records.
    fn encrypt(
        &mut self,
        write: impl FnOnce(&mut Plaintext<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let BenchStream::Tls { tls, .. } = self else {
            unreachable!("plain streams write directly");
        };
        let taken = write(&mut Plaintext(tls));
        // Records already made go out even when no more plaintext fits.
        self.push()?;
        taken
    }
}

impl Read for BenchStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            BenchStream::Plain(tcp) => tcp.read(buf),
            BenchStream::Tls { tcp, tls } => {
                let result = read_plaintext(tls, tcp, buf);
                // Handshake replies the records just read called for.
                match write_records(tls, tcp) {
                    Err(e) if e.kind() != ErrorKind::WouldBlock => Err(e),
                    _ => result,
                }
            }
        }
    }
}

impl Write for BenchStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            BenchStream::Plain(tcp) => tcp.write(buf),
            BenchStream::Tls { .. } => self.encrypt(|plain| plain.write(buf)),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            BenchStream::Plain(tcp) => tcp.write_vectored(bufs),
            BenchStream::Tls { .. } => self.encrypt(|plain| plain.write_vectored(bufs)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.push()
    }
}

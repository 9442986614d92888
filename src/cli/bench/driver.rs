//! The bench's mio loop: opening the connections, one poll and its events, writing what
//! waits, failing a connection, and the close handshakes at the end of a run.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Token};

use super::conn::{BenchConn, Phase};
use super::scale::{
    connect_error, descriptors_short, open_files_limit, ConnectFigures, Connecting, RESERVED_FDS,
};
use super::stream::BenchStream;
use super::{Bench, Mode, CLOSE_WAIT, CONNECT_WINDOW};

/// How long the connecting may go without one more connection opening before the run gives up.
const STALLED: Duration = Duration::from_secs(30);

impl Bench<'_> {
    /// Opens every connection (receivers first, then the sender in broadcast mode), with a
    /// progress line each second; fails at once when this process cannot hold them all, and
    /// when no connection has opened for [`STALLED`].
    pub(super) fn connect_all(&mut self) -> Result<ConnectFigures, String> {
        let mut events = Events::with_capacity(1024);
        let wanted = self.conns.capacity();
        // As far as the hard limit allows; what stays short is said below.
        let _ = crate::cli::open_files::raise_to(wanted as u64 + RESERVED_FDS);
        if let Some(why) = descriptors_short(wanted, open_files_limit()) {
            return Err(why);
        }
        self.connecting = Connecting::new(Instant::now(), wanted);
        while self.open + self.failed() < wanted {
            while self.started < wanted && self.started - self.open - self.failed() < CONNECT_WINDOW
            {
                // The sender connects last, once every receiver is a member.
                if self.args.mode == Mode::Broadcast
                    && self.started == self.receivers()
                    && self.open < self.receivers()
                {
                    break;
                }
                self.start_connection()?;
            }
            let now = Instant::now();
            if now - self.connecting.last_progress > STALLED {
                let failed = match self.failed() {
                    0 => String::new(),
                    n => format!("; {n} failed: {}", self.stats.failures()),
                };
                return Err(format!(
                    "only {} of {wanted} connections opened: none for {} s{failed}",
                    self.open,
                    STALLED.as_secs()
                ));
            }
            if let Some(line) = self.connecting.progress(now, self.open) {
                println!("{line}");
            }
            self.turn(&mut events, Some(Duration::from_millis(100)))?;
        }
        if self.open < wanted {
            // One line for them all: a hundred refused connects are one problem.
            return Err(format!(
                "{} of {wanted} connections failed: {}",
                self.failed(),
                self.stats.failures()
            ));
        }
        Ok(self.connecting.finish(Instant::now(), self.open))
    }

    pub(super) fn failed(&self) -> usize {
        self.stats.errors as usize
    }

    pub(super) fn start_connection(&mut self) -> Result<(), String> {
        let key = self.conns.len();
        let reads = self.reads(key);
        let tcp = if reads {
            TcpStream::connect(self.addr)
        } else {
            connect_with_small_receive_buffer(self.addr)
        };
        let tcp = tcp.map_err(|e| connect_error(&e, self.open, self.addr))?;
        let (frame, payload) = self.frame_for(self.conns.len());
        let mut stream = match &self.tls {
            Some(config) => BenchStream::tls(tcp, &self.url.host, config.clone())?,
            None => BenchStream::Plain(tcp),
        };
        self.poll
            .registry()
            .register(
                stream.tcp(),
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| e.to_string())?;
        let mut conn = BenchConn::new(
            stream,
            &self.url,
            frame,
            self.args.compression,
            payload,
            self.text(),
        );
        // Held connections take whatever the server sends them.
        conn.checks = !self.args.idle;
        conn.reads = reads;
        self.conns.push(conn);
        self.writable.push(true);
        self.sent_at.push(VecDeque::new());
        self.fan_out.received.push(0);
        self.connecting.began(key, Instant::now());
        self.started += 1;
        Ok(())
    }

    /// Writes what the connection has queued and keeps WRITABLE registered only while needed.
    pub(super) fn flush(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if let Err(e) = conn.write() {
            self.fail(key, &e);
            return;
        }
        let wants = conn.wants_write();
        if wants != self.writable[key] {
            let interest = if wants {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let _ = self
                .poll
                .registry()
                .reregister(conn.stream.tcp(), Token(key), interest);
            self.writable[key] = wants;
        }
    }

    pub(super) fn fail(&mut self, key: usize, why: &str) {
        let conn = &mut self.conns[key];
        if conn.phase == Phase::Closing {
            // The run is over: a connection that ends badly now changes no figure.
            self.finish_close(key);
            return;
        }
        if conn.phase == Phase::Open && !conn.reads {
            self.cut_off(key);
            return;
        }
        if conn.phase == Phase::Open {
            self.open -= 1;
            let readers = self.open - self.stalled;
            if let Some(hold) = self.hold.as_mut() {
                hold.closed(why, readers);
            }
            if self.args.mode == Mode::Broadcast && Some(key) != self.sender {
                self.lose_receiver(key);
            }
        }
        let conn = &mut self.conns[key];
        if conn.phase != Phase::Closed {
            conn.phase = Phase::Closed;
            let _ = self.poll.registry().deregister(conn.stream.tcp());
            // Told once, grouped by reason, when the run ends.
            self.stats.fail(why);
        }
    }

    /// One poll and the handling of its events.
    pub(super) fn turn(
        &mut self,
        events: &mut Events,
        timeout: Option<Duration>,
    ) -> Result<(), String> {
        if let Err(e) = self.poll.poll(events, timeout) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("poll: {e}"));
            }
        }
        let mut buffer = std::mem::take(&mut self.read_buffer);
        for event in events.iter() {
            let key = event.token().0;
            let conn = &self.conns[key];
            if conn.phase == Phase::Closed {
                continue;
            }
            let hung_up = event.is_read_closed() || event.is_error();
            if !conn.reads && conn.phase == Phase::Open {
                // A non-reader only notices the end: the server's reset or FIN.
                if hung_up {
                    self.cut_off(key);
                }
                continue;
            }
            if event.is_writable() {
                self.flush(key);
            }
            if event.is_readable() || hung_up {
                let outcome = self.conns[key].read(&mut buffer, !hung_up);
                if self.measuring {
                    self.stats.bytes_in += outcome.bytes as u64;
                }
                if let Some(why) = outcome.mismatch {
                    return Err(format!(
                        "connection {key}: not an echo of what was sent: {why}"
                    ));
                }
                if outcome.opened {
                    self.on_open(key);
                }
                if outcome.messages > 0 {
                    self.on_messages(key, outcome.messages)?;
                }
                if outcome.wants_write {
                    self.flush(key);
                }
                if let Some(why) = outcome.failed {
                    self.fail(key, &why);
                } else if outcome.closed {
                    self.finish_close(key);
                }
            }
        }
        self.read_buffer = buffer;
        Ok(())
    }

    /// Closes every open connection with a close handshake, so the server sees clean closes
    /// (1000), not dropped connections; gives up on the stragglers after [`CLOSE_WAIT`].
    pub(super) fn close_all(&mut self) -> Result<(), String> {
        self.measuring = false;
        for key in 0..self.conns.len() {
            let conn = &mut self.conns[key];
            if conn.phase == Phase::Open && !conn.reads {
                // It would never read the server's answer: it just goes.
                conn.phase = Phase::Closed;
                let _ = self.poll.registry().deregister(conn.stream.tcp());
                let _ = conn.stream.tcp().shutdown(std::net::Shutdown::Both);
                continue;
            }
            if conn.phase == Phase::Open {
                self.conns[key].start_close();
                self.closing += 1;
                self.flush(key);
            }
        }
        let mut events = Events::with_capacity(1024);
        let deadline = Instant::now() + CLOSE_WAIT;
        while self.closing > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.turn(&mut events, Some(left))?;
        }
        Ok(())
    }

    /// The server ended a connection that does not read (--non-readers): expected, counted
    /// apart from the failures.
    pub(super) fn cut_off(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        conn.phase = Phase::Closed;
        let _ = self.poll.registry().deregister(conn.stream.tcp());
        self.open -= 1;
        self.stalled -= 1;
        if let Some(hold) = self.hold.as_mut() {
            hold.cut_off(self.stalled);
        }
    }

    /// A closing connection is done.
    pub(super) fn finish_close(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        conn.phase = Phase::Closed;
        let _ = self.poll.registry().deregister(conn.stream.tcp());
        self.closing -= 1;
    }
}

/// A connection whose socket has a 4 KiB receive buffer, set before the connect so the window
/// the handshake announces is that small: a client that stops reading is found out after
/// kilobytes, not after the default buffer's hundred.
fn connect_with_small_receive_buffer(addr: std::net::SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.set_recv_buffer_size(4096)?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(socket.into()))
}

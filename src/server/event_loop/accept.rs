//! Admitting connections: accepting until `WouldBlock`, the connection limit, TLS for each new
//! connection, and the signals that stop (or drain) the server or reload its certificate.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use log::{info, warn};
use mio::net::TcpStream;
use mio::{Interest, Token};
use rustls::ServerConfig;

use super::{Entry, EventLoop, ACCEPT_RETRY};
use crate::connection::Connection;
use crate::ids::ConnectionId;
use crate::protocol::handshake::{error_response, Refusal};
use crate::protocol::stamp::Stamp;
use crate::server::transport::Transport;

/// Where new connections' TLS configuration comes from; shared by a server's loops, so a
/// reload on one reaches them all.
#[derive(Debug, Clone)]
pub(crate) struct TlsSource {
    pub(crate) config: Arc<Mutex<Arc<ServerConfig>>>,
    /// The certificate and key files, to reload on SIGHUP.
    pub(crate) files: Option<(PathBuf, PathBuf)>,
}

/// Which of the loop's listeners a connection came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listener {
    /// The server's address: everything it serves.
    Main,
    /// The separate HTTP address (`ServerBuilder::http_bind`): HTTP routes only.
    Http,
}

/// What comes in floods (refusals at the connection limit when a crowd reconnects at once,
/// accepts failing while out of descriptors): one line a second says so, with how many it
/// left out, instead of one line per connection.
#[derive(Debug, Default)]
pub(super) struct OncePerSecond {
    logged_at: Option<Instant>,
    unlogged: u64,
}

impl OncePerSecond {
    /// One more refusal at `now`: `Some(n)` when it is to be logged, `n` being how many since
    /// the last logged one were not.
    pub(super) fn due(&mut self, now: Instant) -> Option<u64> {
        let quiet = self
            .logged_at
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1));
        if quiet {
            self.unlogged += 1;
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// How many went unlogged, once a second has passed since the last line (then they are
    /// told, and the count starts again): a flood that stops is still counted in full.
    pub(super) fn overdue(&mut self, now: Instant) -> Option<u64> {
        let quiet = self
            .logged_at
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1));
        if quiet {
            return None;
        }
        self.rest(now)
    }

    /// How many went unlogged, if any, now (the loop is stopping).
    pub(super) fn rest(&mut self, now: Instant) -> Option<u64> {
        if self.unlogged == 0 {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

impl EventLoop {
    /// Logs the refusals and failed accepts a flood's last second left out (called each turn;
    /// with `stopping`, as the loop stops, whatever the time).
    pub(super) fn tell_unlogged_refusals(&mut self, now: Instant, stopping: bool) {
        let (refusals, accept_errors) = if stopping {
            (self.refusals.rest(now), self.accept_errors.rest(now))
        } else {
            (self.refusals.overdue(now), self.accept_errors.overdue(now))
        };
        if let Some(n) = refusals {
            warn!(
                status = 503;
                "{n} more refused: 503 connection limit {} reached",
                self.config.max_connections
            );
        }
        if let Some(n) = accept_errors {
            warn!("{n} more accepts failed (out of file descriptors?); retrying every 100 ms");
        }
    }

    /// Accepts from both listeners (after an accept error: the backlog raises no new edge).
    pub(super) fn accept_all(&mut self, now: Instant) {
        self.accept(Listener::Main, now);
        self.accept(Listener::Http, now);
    }

    pub(super) fn accept(&mut self, which: Listener, now: Instant) {
        loop {
            let listener = match which {
                Listener::Main => self.listener.as_ref(),
                Listener::Http => self.http_listener.as_ref(),
            };
            let Some(listener) = listener else {
                return;
            };
            match listener.accept() {
                Ok((socket, peer)) => self.admit(socket, peer, which, now),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: leave the rest in the backlog and retry shortly.
                    if let Some(others) = self.accept_errors.due(now) {
                        let also = match others {
                            0 => String::new(),
                            n => format!(" ({n} more failures since the last such line)"),
                        };
                        warn!("accept failed: {e}; retrying every 100 ms{also}");
                    }
                    self.accept_retry_at = Some(now + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    fn admit(&mut self, mut socket: TcpStream, peer: SocketAddr, which: Listener, now: Instant) {
        self.app.metrics.accepted += 1;
        if self.entries.len() >= self.config.max_connections {
            if let Some(others) = self.refusals.due(now) {
                let also = match others {
                    0 => String::new(),
                    n => format!(" ({n} more refused since the last such line)"),
                };
                warn!(
                    peer:% = peer, status = 503;
                    "{peer} refused: 503 connection limit {} reached{also}",
                    self.config.max_connections
                );
            }
            // Over TLS, a reply would need a handshake first: the connection is just closed.
            self.app.metrics.refused(503);
            if self.tls.is_none() {
                let error = Refusal::AtCapacity.http_error();
                let _ = io::Write::write(&mut socket, &error_response(&error));
            }
            return;
        }
        if let Err(e) = socket.set_nodelay(true) {
            warn!("{peer} TCP_NODELAY failed: {e}");
        }
        if let Some(bytes) = self.config.send_buffer {
            if let Err(e) = socket2::SockRef::from(&socket).set_send_buffer_size(bytes) {
                warn!("{peer} SO_SNDBUF failed: {e}");
            }
        }
        let slot = self.entries.vacant_entry();
        let key = slot.key();
        self.serial += 1;
        let id = ConnectionId::new(self.serial, self.index, key);
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut socket, Token(key), Interest::READABLE)
        {
            warn!("{peer} register failed: {e}");
            return;
        }
        let transport = match &self.tls {
            None => Transport::plain(socket),
            Some(tls) => match Transport::tls(socket, current(&tls.config)) {
                Ok(transport) => transport,
                Err(e) => {
                    warn!("{peer} TLS setup failed: {e}");
                    return;
                }
            },
        };
        let mut conn = Connection::new(id, peer, now, &self.conn_config);
        if which == Listener::Http {
            conn = conn.http_only();
        }
        slot.insert(Entry {
            transport,
            conn,
            interest: Interest::READABLE,
            timer_at: Stamp::NEVER,
            dirty: false,
            backpressured: false,
            dropping: false,
            membership: None,
            read_paused: false,
            read_pending: false,
        });
        self.app.publisher.count(self.index, self.entries.len());
        self.mark_dirty(key);
    }

    /// SIGTERM: drain (what service managers and orchestrators send to stop a service, so
    /// its clients should reconnect elsewhere, spread out). SIGINT: shut down at once (Ctrl+C:
    /// someone at a terminal wants it gone now; it also cuts a drain short). SIGHUP: reload
    /// the certificate and key. Stopping asks every other loop too.
    pub(super) fn on_signals(&mut self, now: Instant) {
        use signal_hook::consts::{SIGHUP, SIGINT};
        let caught: Vec<i32> = match self.signals.as_mut() {
            Some(signals) => signals.pending().collect(),
            None => return,
        };
        for signal in caught {
            match signal {
                SIGHUP => {
                    let reloadable = self.tls.as_ref().is_some_and(|tls| tls.files.is_some())
                        || self.app.services.auth.is_some()
                        || self.on_reload.is_some();
                    if !reloadable {
                        info!("SIGHUP: nothing to reload (no certificate files, token keys or configuration file)");
                    }
                    self.reload_tls();
                    self.reload_auth();
                    self.reload_config();
                }
                SIGINT => {
                    self.stop.shutdown();
                    self.on_stop_request(now, Some("SIGINT"));
                }
                _ => {
                    self.stop.drain();
                    self.on_stop_request(now, Some("SIGTERM"));
                }
            }
        }
    }

    /// Reads the certificate and key again; new connections use them. A pair that cannot be
    /// used is logged and the old one kept.
    fn reload_tls(&mut self) {
        let Some(TlsSource {
            config,
            files: Some((cert, key)),
        }) = self.tls.as_mut()
        else {
            return;
        };
        match crate::tls::server_config(cert, key) {
            Ok(reloaded) => {
                *config.lock().unwrap_or_else(PoisonError::into_inner) = reloaded;
                info!(
                    "SIGHUP: reloaded the TLS certificate from {}",
                    cert.display()
                );
            }
            Err(e) => warn!("SIGHUP: keeping the old TLS certificate: {e}"),
        }
    }
}

impl EventLoop {
    /// Reads the token key files again; new upgrades are checked with them. A set that cannot
    /// be used is logged and the old one kept.
    fn reload_auth(&mut self) {
        let Some(auth) = self.app.services.auth.as_ref() else {
            return;
        };
        match auth.reload() {
            Ok(keys) => info!("SIGHUP: reloaded {keys} token key(s)"),
            Err(e) => warn!("SIGHUP: keeping the old token keys: {e}"),
        }
    }
}

/// The configuration new connections get now.
fn current(config: &Mutex<Arc<ServerConfig>>) -> Arc<ServerConfig> {
    config
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_refusals_is_one_line_a_second_with_the_count_left_out() {
        let mut log = OncePerSecond::default();
        let start = Instant::now();
        assert_eq!(log.due(start), Some(0));
        for ms in 1..1000 {
            assert_eq!(log.due(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(log.due(start + Duration::from_millis(1000)), Some(999));
        assert_eq!(log.due(start + Duration::from_millis(5000)), Some(0));
        // A flood that stops: what it left out is told a second after the last line.
        assert_eq!(log.due(start + Duration::from_millis(5001)), None);
        assert_eq!(log.overdue(start + Duration::from_millis(5500)), None);
        assert_eq!(log.overdue(start + Duration::from_millis(6000)), Some(1));
        assert_eq!(log.overdue(start + Duration::from_millis(9000)), None);
    }
}

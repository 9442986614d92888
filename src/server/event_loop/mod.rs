//! The only place that knows about mio: one `Poll`, the listener, a `Slab` of entries (a
//! transport and its connection), the deadline heap, and the shared read buffer.
//!
//! One turn: wait for readiness or the earliest deadline; accept until `WouldBlock`; read each
//! ready transport until `WouldBlock` (or its read budget) into the shared buffer and hand the
//! bytes to its connection (the rest of a large payload is read straight into its message's
//! buffer instead, see [`Connection::receive_in_place`]); the connection reports its events
//! to a [`Dispatch`], which calls the route's handler; deliver what handlers sent to other
//! connections; fire due deadlines; then flush every connection touched this turn with one
//! write, and derive its interest and next deadline from its state. A connection whose read
//! sent only to itself (an echo) is flushed right after that read instead, while its state is
//! still in the cache.

use std::io::{self, ErrorKind};
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use log::info;
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

mod accept;
mod app_timers;
mod delivery;
mod dispatch;
mod drain;
mod flush;
mod http;
mod read;
#[cfg(test)]
mod read_tests;
mod reconfigure;

use super::cluster::ClusterLink;
use super::context::Outbox;
use super::directory::Directory;
use super::history::History;
use super::hub::{Hub, Membership};
use super::mailbox::Postbox;
use super::metrics::{Board, Metrics};
use super::presence::Presence;
use super::timers::Timers;
use super::transport::Transport;
use super::{Publisher, ShutdownHandle};
use crate::app::Router;
use crate::auth::Verifier;
use crate::buffer_pool;
use crate::config::Config;
use crate::connection::{Connection, ConnectionConfig, RouteId};
use crate::ids::ConnectionId;
use crate::protocol::stamp::Stamp;
use crate::protocol::write_queue;
use crate::server::context::Services;
use crate::server::limits::Gate;
use accept::Listener;
pub(crate) use accept::TlsSource;
use app_timers::AppTimers;
use dispatch::{App, Dispatch};
use drain::Drain;
use read::{read_batch, BatchEnd, ReadUntil};

pub(crate) const LISTENER: Token = Token(usize::MAX - 1);
pub(crate) const WAKER: Token = Token(usize::MAX - 2);
const SIGNALS: Token = Token(usize::MAX - 3);
const HTTP_LISTENER: Token = Token(usize::MAX - 4);
/// The one read buffer all connections share.
const READ_BUFFER_SIZE: usize = 64 * 1024;
/// How long a spare buffer may go unused before the loop lets go of it (see `buffer_pool`).
const TRIM_PERIOD: Duration = Duration::from_secs(1);

/// How long to wait before accepting again after an accept error.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The high watermark of a connection without a route (handshaking, replying).
const DEFAULT_HIGH_WATERMARK: usize = 1 << 20;

/// A transport and its connection, with what the loop registered for it.
struct Entry {
    transport: Transport,
    conn: Connection,
    interest: Interest,
    /// The deadline currently in the heap for this connection; [`Stamp::NEVER`] when none.
    timer_at: Stamp,
    /// Queued in `dirty` for this turn's flush.
    dirty: bool,
    /// Its queue went above its route's high watermark: tell the handler when it drains.
    backpressured: bool,
    /// Messages were dropped for it (a slow consumer on a route that drops): logged once.
    dropping: bool,
    /// Its place in the hub while it is open and accepts messages.
    membership: Option<Membership>,
    /// Reading stopped (backpressure) with input perhaps left in the socket: read again as
    /// soon as the connection wants input, since no new readiness edge will say so.
    read_paused: bool,
    /// Already in `pending_reads`.
    read_pending: bool,
}

/// What one event loop is made of (see [`EventLoop::new`]).
pub(crate) struct LoopSetup {
    pub(crate) index: usize,
    /// With a cluster: the way to other instances.
    pub(crate) cluster: Option<ClusterLink>,
    /// With several loops and metrics served: where the loops leave copies of their counters.
    pub(crate) board: Option<Board>,
    pub(crate) poll: Poll,
    pub(crate) listener: TcpListener,
    /// The separate address of the HTTP routes, on loop 0, if they have one.
    pub(crate) http_listener: Option<TcpListener>,
    /// The HTTP routes have their own address (on loop 0): no loop serves them on the main one.
    pub(crate) http_separate: bool,
    pub(crate) config: Config,
    pub(crate) router: Router,
    pub(crate) tls: Option<TlsSource>,
    pub(crate) stop: ShutdownHandle,
    /// Only one loop of a server takes SIGINT, SIGTERM and SIGHUP.
    pub(crate) handle_signals: bool,
    /// What SIGHUP asks for a new configuration, on the loop that takes signals.
    pub(crate) on_reload: Option<ReloadHook>,
    pub(crate) postbox: Postbox,
    /// The server's directory of claimed keys, shared by its loops.
    pub(crate) directory: Arc<Directory>,
    /// The server's history, if topics keep any; loop 0 lets go of what expired.
    pub(crate) history: Option<Arc<History>>,
    /// The server's presence, if topics keep any.
    pub(crate) presence: Option<Arc<Presence>>,
    /// The server's token checks, if any; SIGHUP reloads their keys.
    pub(crate) auth: Option<Arc<Verifier>>,
    /// The server's per-IP and per-user connection counts, if limited.
    pub(crate) gate: Option<Arc<Gate>>,
    /// The server as HTTP routes act on it; where this loop says how many connections it
    /// holds.
    pub(crate) publisher: Publisher,
}

/// What SIGHUP asks for a new configuration (`ServerBuilder::on_reload`).
pub(crate) type ReloadHook = Box<dyn FnMut() -> Option<Config> + Send>;

/// The server's event loop.
pub(crate) struct EventLoop {
    pub(crate) poll: Poll,
    listener: Option<TcpListener>,
    /// The HTTP routes' own address, if they have one (`ServerBuilder::http_bind`).
    http_listener: Option<TcpListener>,
    signals: Option<signal_hook_mio::v1_0::Signals>,
    on_reload: Option<ReloadHook>,
    /// The TLS configuration new connections get, if the server speaks TLS.
    tls: Option<TlsSource>,
    entries: Slab<Entry>,
    config: Config,
    /// The connections' share of `config`.
    conn_config: ConnectionConfig,
    /// The router, the hub and the outbox: what connections' events are dispatched to.
    app: App,
    timers: Timers,
    /// The timers handlers set.
    app_timers: AppTimers,
    /// Connections to flush at the end of this turn.
    dirty: Vec<usize>,
    /// Connections to read again next turn without waiting for readiness.
    pending_reads: Vec<usize>,
    /// A topic's subscribers while a message is delivered to them (kept to reuse its memory).
    scratch: Vec<ConnectionId>,
    read_buffer: Box<[u8]>,
    /// Which of the server's loops this is (0 unless `threads(n)`); part of every id.
    index: usize,
    /// Stops every loop of the server.
    stop: ShutdownHandle,
    /// The other loops' inboxes, and this one's.
    postbox: Postbox,
    /// With a cluster: the bridge to other instances.
    cluster: Option<ClusterLink>,
    /// While draining: whose close comes when (see `drain.rs`).
    drain: Option<Drain>,
    /// Set once shutdown began: the time by which the loop exits regardless.
    shutdown_deadline: Option<Instant>,
    /// Accepting failed (out of file descriptors): try again at this time, since the
    /// connections left in the backlog raise no new readiness edge.
    accept_retry_at: Option<Instant>,
    /// The connection limit's refusals, logged at most once a second.
    refusals: accept::OncePerSecond,
    /// Failed accepts (out of descriptors), logged at most once a second.
    accept_errors: accept::OncePerSecond,
    /// When to let go of spare buffers that went unused since the last trim; `None` while
    /// there are none.
    trim_at: Option<Instant>,
    /// When to refresh the metrics gauges that walk every connection; `None` unless
    /// `/metrics` is served.
    metrics_refresh_at: Option<Instant>,
    /// When loop 0 next lets go of expired history; `None` without history.
    history_expire_at: Option<Instant>,
    serial: u64,
}

impl EventLoop {
    pub(crate) fn new(setup: LoopSetup) -> io::Result<EventLoop> {
        let LoopSetup {
            index,
            cluster,
            board,
            poll,
            mut listener,
            mut http_listener,
            http_separate,
            config,
            router,
            tls,
            stop,
            handle_signals,
            on_reload,
            postbox,
            directory,
            history,
            presence,
            auth,
            gate,
            publisher,
        } = setup;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        if let Some(http) = http_listener.as_mut() {
            (poll.registry()).register(http, HTTP_LISTENER, Interest::READABLE)?;
        }
        let signals = if handle_signals {
            use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
            // SIGHUP reloads what can be reloaded, and says so when nothing can: its default
            // action would end the process.
            let caught: &[i32] = &[SIGINT, SIGTERM, SIGHUP];
            let mut signals = signal_hook_mio::v1_0::Signals::new(caught)?;
            poll.registry()
                .register(&mut signals, SIGNALS, Interest::READABLE)?;
            Some(signals)
        } else {
            None
        };
        let serve_metrics = config.metrics;
        let max_message_rate = config.max_message_rate;
        let max_http_body = config.max_http_body;
        Ok(EventLoop {
            poll,
            listener: Some(listener),
            http_listener,
            signals,
            on_reload,
            tls,
            // Reserved, not touched: the pages of unused slots never become resident, and the
            // table never doubles (and copies) under a burst of connections.
            entries: Slab::with_capacity(config.max_connections),
            metrics_refresh_at: config.metrics.then(Instant::now),
            history_expire_at: (index == 0 && history.is_some()).then(Instant::now),
            conn_config: ConnectionConfig::new(&config),
            config,
            app: App {
                router,
                services: Services {
                    hub: Hub::default(),
                    outbox: Outbox {
                        spans_loops: postbox.has_others() || cluster.is_some(),
                        ..Outbox::default()
                    },
                    directory,
                    history,
                    presence,
                    auth,
                },
                metrics: Metrics::default(),
                serve_metrics,
                board: board.map(|board| (board, index)),
                cluster_dropped: cluster.as_ref().map(ClusterLink::dropped),
                stop: stop.clone(),
                gate,
                max_message_rate,
                publisher,
                max_http_body,
                http_separate,
            },
            timers: Timers::new(),
            app_timers: AppTimers::default(),
            dirty: Vec::new(),
            pending_reads: Vec::new(),
            scratch: Vec::new(),
            read_buffer: vec![0; READ_BUFFER_SIZE].into_boxed_slice(),
            index,
            stop,
            postbox,
            cluster,
            drain: None,
            shutdown_deadline: None,
            accept_retry_at: None,
            refusals: accept::OncePerSecond::default(),
            accept_errors: accept::OncePerSecond::default(),
            trim_at: None,
            serial: 0,
        })
    }

    /// Runs until shutdown completes.
    pub(crate) fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.poll_timeout(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(Listener::Main, now),
                    HTTP_LISTENER => self.accept(Listener::Http, now),
                    WAKER => {
                        self.on_stop_request(now, None);
                        self.deliver_mail(now);
                    }
                    SIGNALS => self.on_signals(now),
                    Token(key) => {
                        if event.is_writable() {
                            self.mark_dirty(key);
                        }
                        if event.is_read_closed() || event.is_error() {
                            self.read(key, now, ReadUntil::WouldBlock);
                        } else if event.is_readable() {
                            self.read(key, now, ReadUntil::ShortRead);
                        }
                    }
                }
            }
            for key in std::mem::take(&mut self.pending_reads) {
                if let Some(entry) = self.entries.get_mut(key) {
                    entry.read_pending = false;
                    self.read(key, now, ReadUntil::WouldBlock);
                }
            }
            if self.accept_retry_at.is_some_and(|at| at <= now) {
                self.accept_retry_at = None;
                self.accept_all(now);
            }
            self.tell_unlogged_refusals(now, false);
            self.fire_timers(now);
            self.fire_app_timers(now);
            self.drain_turn(now);
            self.flush(now);
            if self.trim_at.is_none_or(|at| at <= now) {
                let buffers_left = buffer_pool::trim();
                let records_left = write_queue::trim_spare_records();
                self.trim_at = (buffers_left || records_left).then_some(now + TRIM_PERIOD);
            }
            if self.index == 0 && self.history_expire_at.is_some_and(|at| at <= now) {
                self.history_expire_at = Some(now + TRIM_PERIOD);
                if let Some(history) = &self.app.services.history {
                    history.expire();
                }
            }
            if self.app.serve_metrics {
                self.refresh_metrics(now);
            }
            if self.shutdown_is_over(now) {
                return Ok(());
            }
        }
    }

    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.pending_reads.is_empty() {
            return Some(Duration::ZERO);
        }
        let deadlines = [
            self.timers.next(),
            self.app_timers.next(),
            self.shutdown_deadline,
            self.drain.as_ref().map(Drain::next_at),
            self.accept_retry_at,
            self.trim_at,
            self.metrics_refresh_at,
            self.history_expire_at,
        ];
        let next = deadlines.into_iter().flatten().min()?;
        // Round up so a deadline is never polled for a few microseconds early, again and again.
        Some(next.saturating_duration_since(now) + Duration::from_millis(1))
    }

    /// Times the turn that began at `began` (when `poll` returned), and once a second sums
    /// what every connection leaves unwritten.
    fn refresh_metrics(&mut self, began: Instant) {
        let end = Instant::now();
        self.app.metrics.turn(end - began);
        if self.metrics_refresh_at.is_some_and(|at| at <= end) {
            self.metrics_refresh_at = Some(end + Metrics::REFRESH);
            let buffered = self.entries.iter().map(|(_, e)| e.conn.buffered() as u64);
            self.app.metrics.write_buffered = buffered.sum();
            if let Some((board, me)) = &self.app.board {
                let routes = self.app.router.routes.len();
                let mut copy = self.app.metrics.clone();
                copy.connections = (0..routes)
                    .map(|r| self.app.services.hub.members(r).len())
                    .collect();
                let mut copies = board.lock().unwrap_or_else(PoisonError::into_inner);
                copies[*me] = copy;
            }
        }
    }

    /// Reads the connection next turn without waiting for readiness.
    fn read_again(&mut self, key: usize) {
        if let Some(entry) = self.entries.get_mut(key) {
            if !entry.read_pending {
                entry.read_pending = true;
                self.pending_reads.push(key);
            }
        }
    }

    pub(super) fn mark_dirty(&mut self, key: usize) {
        if let Some(entry) = self.entries.get_mut(key) {
            if !entry.dirty {
                entry.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Reads what the connection has for us (see [`read_batch`]), then delivers what its
    /// handler sent and writes or schedules its replies.
    fn read(&mut self, key: usize, now: Instant, until: ReadUntil) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        let high_watermark = high_watermark(&self.app.router, entry.conn.route());
        let mut events = Dispatch::new(&mut self.app, entry.conn.peer(), now);
        let end = read_batch(
            &mut entry.conn,
            &mut entry.transport,
            &mut self.read_buffer,
            until,
            high_watermark,
            now,
            &self.conn_config,
            &mut events,
        );
        if end == BatchEnd::Paused {
            entry.read_paused = true;
        }
        entry.conn.end_of_batch();
        // Stopped on the budget with input perhaps still waiting: come back next turn.
        if end == BatchEnd::BudgetSpent {
            self.read_again(key);
        }
        // What it sent only to itself (an echo) goes out now, while its state is still in the
        // cache: with a thousand connections a turn, waiting for the turn's end means loading
        // it all again. What it sent to others, or what waits for it already, waits for the
        // turn's flush, so that one write carries everything this turn queued.
        let only_itself = self.app.services.outbox.deliveries.is_empty();
        self.deliver_outbox(now);
        if only_itself && self.entries.get(key).is_some_and(|entry| !entry.dirty) {
            self.flush_one(key, now);
        } else {
            self.mark_dirty(key);
        }
    }

    fn fire_timers(&mut self, now: Instant) {
        while let Some(deadline) = self.timers.pop_due(now) {
            let key = deadline.id.slot();
            let Some(entry) = self.entries.get_mut(key) else {
                continue;
            };
            if entry.conn.id() != deadline.id || entry.timer_at != deadline.at {
                continue; // stale: the connection is gone or has a newer deadline
            }
            entry.timer_at = Stamp::NEVER;
            if entry.transport.is_established() {
                let mut events = Dispatch::new(&mut self.app, entry.conn.peer(), now);
                entry.conn.on_timeout(now, &self.conn_config, &mut events);
            } else {
                // A TLS handshake unfinished at the handshake deadline: no reply can reach
                // the peer, so the connection just ends.
                let peer = entry.conn.peer();
                info!(peer:% = peer; "{peer} TLS handshake not finished in time: dropped");
                entry.conn.abort();
            }
            // Ended by a deadline (a closing handshake or a reply the peer never took): what
            // the kernel still holds for it would linger for minutes, so it is reset instead.
            if entry.conn.is_closed() {
                entry.transport.reset_on_close();
            }
            self.deliver_outbox(now);
            self.mark_dirty(key);
        }
    }
}

/// The queue size past which a connection is not read: its route's high watermark.
fn high_watermark(router: &Router, route: Option<RouteId>) -> usize {
    router
        .backpressure(route)
        .map_or(DEFAULT_HIGH_WATERMARK, |policy| policy.high_watermark)
}

#[cfg(test)]
mod tests {
    /// The fixed part of an idle connection: its slab entry and its timer. The idle-memory goal
    /// is 256 bytes per connection (server RSS growth at 10,000 idle connections, measured by
    /// `scripts/bench.sh`'s idle row), which also pays for its place in its route's member list
    /// and for the allocator's slack. (Release builds: 8 bytes less, as mio's debug builds add
    /// a selector id to every socket.) 8 of these bytes are the pointer to what a connection
    /// carries (`Attached`: identity, data, token expiry, rate bucket), null without auth,
    /// attached data or limits. The times it keeps (its timer, when its peer was last heard, a
    /// deadline while it opens or closes) are 8-byte `Stamp`s, not 16-byte `Instant`s.
    ///
    /// What this does not see: the heap. Without compression an idle connection has none (its
    /// reader is let go at the end of each batch, its queue when it empties); with
    /// permessage-deflate agreed it keeps a box for the negotiated parameters, and in
    /// `dedicated` mode, once it has sent or received a compressed message, a zlib state of tens
    /// of KiB. Those are the price of compression, and not part of the 256 B goal.
    #[test]
    fn an_idle_connection_fits_in_its_slab_entry() {
        let entry = std::mem::size_of::<super::Entry>();
        let timer = std::mem::size_of::<crate::server::timers::Deadline>();
        assert!(entry + timer <= 208, "entry {entry} B + timer {timer} B");
    }
}

//! The server: a builder for its routes and limits, and the loop that runs them.

mod access;
mod cluster;
pub(crate) mod context;
pub(crate) mod directory;
mod event_loop;
pub(crate) mod history;
mod hub;
pub(crate) mod limits;
mod mailbox;
mod metrics;
pub(crate) mod presence;
pub(crate) mod publisher;
mod shutdown;
mod timers;
mod transport;

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mio::{Poll, Waker};

use crate::app::{Backpressure, HttpRoute, Route, RouteOptions, Router};
use crate::auth::{Auth, AuthError};
use crate::config::{Config, ConfigError};
use crate::handler::Handler;
use crate::http::HttpHandler;
use crate::ids::ConnectionId;
use cluster::Bridge;
pub use cluster::ClusterUrl;
use directory::Directory;
use event_loop::{EventLoop, LoopSetup, TlsSource, WAKER};
use history::{History, HistoryOptions};
use mailbox::{Inbox, Postbox};
pub use presence::{PresenceStats, Present};
pub use publisher::{PublishError, Publisher};
pub use shutdown::ShutdownHandle;

/// Why a server could not start or stopped. Its `Debug` is its one-line `Display`, so a `main`
/// that returns `Result<(), wsloop::Error>` prints a readable line, not a struct.
#[non_exhaustive]
pub enum Error {
    /// The configuration was refused.
    Config(ConfigError),
    /// The address could not be resolved or bound.
    Bind {
        /// The address as given.
        addr: String,
        /// What the OS said.
        source: io::Error,
    },
    /// The TLS certificate or key cannot be used.
    Tls(crate::tls::TlsError),
    /// A token key file ([`ServerBuilder::auth`]) cannot be used.
    Auth(AuthError),
    /// The event loop failed.
    Io(io::Error),
    /// The history's store ([`HistoryOptions::sqlite`](crate::HistoryOptions)) cannot be
    /// used: not an SQLite file, not a wsloop history, in use by another process, or not
    /// where it can be created.
    HistoryStore {
        /// The file as given.
        path: PathBuf,
        /// Why, in a few words.
        reason: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "invalid configuration: {e}"),
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Tls(e) => write!(f, "TLS: {e}"),
            Error::Auth(e) => write!(f, "auth: {e}"),
            Error::Io(e) => write!(f, "event loop failed: {e}"),
            Error::HistoryStore { path, reason } => {
                write!(f, "history store {}: {reason}", path.display())
            }
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(e) => Some(e),
            Error::Bind { source, .. } => Some(source),
            Error::Tls(e) => Some(e),
            Error::Auth(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::HistoryStore { .. } => None,
        }
    }
}

/// Configures a [`Server`]: where it listens, its limits and what it serves.
pub struct ServerBuilder {
    addr: String,
    config: Config,
    /// Each route's path and handler(s), and the options it set for itself.
    routes: Vec<(String, Handlers, RouteOptions)>,
    index_page: Option<Vec<u8>>,
    handle_signals: bool,
    tls: Option<Tls>,
    threads: usize,
    cluster: Option<ClusterUrl>,
    cluster_ttl: Duration,
    history: Option<HistoryOptions>,
    auth: Option<Auth>,
    /// Each HTTP route's path prefix and what makes its handler for each loop.
    http_routes: Vec<(String, MakeHttp)>,
    /// Which topics keep presence.
    presence: Option<presence::Keeps>,
    /// The HTTP routes' own address, if not the server's.
    http_bind: Option<String>,
    /// What SIGHUP asks for a new configuration ([`ServerBuilder::on_reload`]).
    on_reload: Option<event_loop::ReloadHook>,
}

type MakeHttp = Box<dyn Fn() -> Box<dyn HttpHandler + Send> + Send>;

/// Where a route's handler comes from.
enum Handlers {
    /// One handler (one event loop), until that loop takes it.
    One(Option<Box<dyn Handler + Send>>),
    /// A handler made for each event loop.
    Each(Box<dyn Fn() -> Box<dyn Handler + Send> + Send>),
}

/// How the server gets its TLS configuration.
enum Tls {
    /// Given ready-made.
    Config(Arc<rustls::ServerConfig>),
    /// Read from PEM files at build, and again on SIGHUP.
    Files(PathBuf, PathBuf),
}

impl ServerBuilder {
    /// The address to listen on, such as `127.0.0.1:9001` (port 0 picks a free port).
    pub fn bind(mut self, addr: impl Into<String>) -> Self {
        self.addr = addr.into();
        self
    }

    /// Checks a signed token (JWT) on every WebSocket upgrade, as `auth` says: the key files
    /// are read at [`build`](Self::build) (a file that cannot be used stops it, named) and
    /// again on SIGHUP with [`ServerBuilder::handle_signals`] (a set that cannot be used is
    /// logged and the old one kept). A missing or bad token is refused with 401; a verified
    /// one is the connection's [`Identity`](crate::auth::Identity).
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Limits and timers; see [`Config`] for the defaults.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Serves `handler` to WebSocket upgrades at `path` (exact match, query string ignored).
    /// A plain HTTP request to the path is answered with 426. The handler moves with the
    /// server to the thread that runs it, hence `Send`.
    pub fn route(self, path: impl Into<String>, handler: impl Handler + Send + 'static) -> Self {
        let handler = Handlers::One(Some(Box::new(handler)));
        self.add_route(path.into(), handler, RouteOptions::default())
    }

    /// Serves `path` with a handler `make` makes for each event loop: what a route needs when
    /// the server runs several ([`ServerBuilder::threads`]). State the loops' handlers share
    /// must be shared by what `make` returns, e.g. behind an `Arc<Mutex<..>>`; unique names
    /// need none: [`Context::claim`](crate::Context::claim) spans loops (and instances).
    pub fn route_each<H: Handler + Send + 'static>(
        self,
        path: impl Into<String>,
        make: impl Fn() -> H + Send + 'static,
    ) -> Self {
        self.route_each_with(path, make, RouteOptions::default())
    }

    /// [`ServerBuilder::route_each`] with the route's own options, as for
    /// [`ServerBuilder::route_with`].
    pub fn route_each_with<H: Handler + Send + 'static>(
        self,
        path: impl Into<String>,
        make: impl Fn() -> H + Send + 'static,
        options: impl Into<RouteOptions>,
    ) -> Self {
        let make = Box::new(move || Box::new(make()) as Box<dyn Handler + Send>);
        self.add_route(path.into(), Handlers::Each(make), options.into())
    }

    /// Runs `n` event loops on `n` threads (default 1), each with its own listening socket on
    /// the same address (`SO_REUSEPORT`: the kernel spreads new connections) and its own
    /// connections. Messages to other connections (sends by id, broadcasts, topics) reach the
    /// other loops' connections through each loop's mailbox. Every route needs a handler per
    /// loop: [`ServerBuilder::route_each`].
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n;
        self
    }

    /// Joins other instances through Redis pub/sub: topics and route broadcasts reach their
    /// clients too (see the README's Scaling section for what is guaranteed). The server
    /// connects on its own threads, serves its own clients whether or not Redis is up, and
    /// reconnects when it comes back.
    pub fn cluster(mut self, redis: ClusterUrl) -> Self {
        self.cluster = Some(redis);
        self
    }

    /// How long a dead instance's claims ([`Context::claim`](crate::Context::claim): chat
    /// names) outlive it in a cluster, and how long other instances go on trusting what it
    /// last said it holds; it renews them every third of that. Default 15 s, at least 300 ms.
    pub fn cluster_ttl(mut self, ttl: Duration) -> Self {
        self.cluster_ttl = ttl;
        self
    }

    /// Like [`ServerBuilder::route`], with the route's own options instead of the server's
    /// defaults: its [`Backpressure`] policy (a `Backpressure` converts into options), its
    /// compression mode.
    pub fn route_with(
        self,
        path: impl Into<String>,
        handler: impl Handler + Send + 'static,
        options: impl Into<RouteOptions>,
    ) -> Self {
        self.add_route(
            path.into(),
            Handlers::One(Some(Box::new(handler))),
            options.into(),
        )
    }

    /// Serves plain HTTP requests whose path starts with `prefix` (such as `/api/`) with a
    /// handler `make` makes for each event loop (see [`crate::http`]): requests with bodies,
    /// on kept-alive connections, beside the WebSocket routes on the same port.
    pub fn http_route_each<H: HttpHandler + Send + 'static>(
        mut self,
        prefix: impl Into<String>,
        make: impl Fn() -> H + Send + 'static,
    ) -> Self {
        let make = Box::new(move || Box::new(make()) as Box<dyn HttpHandler + Send>);
        self.http_routes.push((prefix.into(), make));
        self
    }

    /// Serves the HTTP routes ([`ServerBuilder::http_route_each`]) on their own address
    /// (such as a private interface, `10.0.0.5:9002`) instead of the server's: there only
    /// they are served (anything else is 404), and the server's address no longer serves
    /// them. One loop accepts there; [`Server::http_addr`] says where it listens.
    pub fn http_bind(mut self, addr: impl Into<String>) -> Self {
        self.http_bind = Some(addr.into());
        self
    }

    fn add_route(mut self, path: String, handler: Handlers, options: RouteOptions) -> Self {
        self.routes.push((path, handler, options));
        self
    }

    /// An HTML page served to a plain `GET /`.
    pub fn index_page(mut self, html: impl Into<Vec<u8>>) -> Self {
        self.index_page = Some(html.into());
        self
    }

    /// Serves wss:// and https:// with this rustls configuration instead of plain TCP, on the
    /// same loop (see [`crate::tls`]).
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(Tls::Config(config));
        self
    }

    /// Serves wss:// and https:// with the PEM certificate chain in `cert` and its private key
    /// in `key` (PKCS#8, PKCS#1 or SEC1), read when the server is built; with
    /// [`ServerBuilder::handle_signals`], SIGHUP reads them again (a pair that cannot be used is
    /// logged and the old one kept).
    pub fn tls_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = Some(Tls::Files(cert.into(), key.into()));
        self
    }

    /// Topics keep history ([`HistoryOptions`]: which topics, how many messages, how long, how
    /// much memory): each message published to one gets a position in its topic's stream, and
    /// [`Context::history`](crate::Context::history) serves what a client missed. One history
    /// serves every loop; it is kept in memory and lost when the server stops, unless it is
    /// written to a file too (`HistoryOptions::sqlite`, with the `sqlite` feature), which this
    /// opens and loads. With a [`cluster`](Self::cluster), Redis orders every kept topic and
    /// keeps its stream (Redis Streams, shared by every instance: a client recovers on any of
    /// them); memory holds each instance's copy, which serves reads.
    pub fn history(mut self, options: HistoryOptions) -> Self {
        self.history = Some(options);
        self
    }

    /// Topics for which `keeps` is true keep presence: who subscribes to them, on every loop
    /// of the server, with the user each one's token names; what
    /// [`Publisher::presence`] and [`Publisher::presence_stats`] (and the HTTP API's
    /// `/api/presence`) answer. It costs a lock per subscribe, unsubscribe and close of such a
    /// topic, and memory per subscription: keep it for topics someone asks about. Per
    /// instance: with a cluster, each instance knows its own.
    pub fn presence(mut self, keeps: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.presence = Some(Box::new(keeps));
        self
    }

    /// Take SIGTERM as [`ShutdownHandle::drain`] (close every connection with 1012 over the
    /// drain window: what a service manager or an orchestrator sends) and SIGINT as
    /// [`ShutdownHandle::shutdown`] (close every connection with 1001 at once: Ctrl+C), then
    /// return from [`Server::run`]. Off by default: a library should not take over a
    /// process's signals.
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.handle_signals = on;
        self
    }

    /// With [`ServerBuilder::handle_signals`]: on SIGHUP (after the certificate and token
    /// keys are read again), call `reload` on the first loop's thread for a new
    /// configuration (`None`: keep the current one). A valid one applies, on every loop, to
    /// what can change while connections are open, for connections (and requests) that begin
    /// after it: `max_message_size`, `max_frame_size`, `max_header_size`, `max_http_body`,
    /// `max_connections`, `max_message_rate`, `handshake_timeout`, `ping_interval`,
    /// `idle_timeout`, `close_timeout`, `drain_window`, `compression_threshold` and
    /// `allowed_origins`. The rest of it is ignored (it needs a new server); one that does
    /// not validate is logged and ignored.
    pub fn on_reload(mut self, reload: impl FnMut() -> Option<Config> + Send + 'static) -> Self {
        self.on_reload = Some(Box::new(reload));
        self
    }

    /// Validates the configuration and binds the listening socket(s).
    pub fn build(mut self) -> Result<Server, Error> {
        self.config.validate().map_err(Error::Config)?;
        warn_if_capped(self.config.send_buffer);
        let mut on_reload = self.on_reload.take();
        let threads = self.threads;
        if !(1..=ConnectionId::MAX_LOOPS).contains(&threads) {
            let why = format!("threads must be 1 to {}", ConnectionId::MAX_LOOPS);
            return Err(Error::Config(ConfigError(why)));
        }
        if let Some(why) = self.history.as_ref().and_then(HistoryOptions::invalid) {
            return Err(Error::Config(ConfigError(why)));
        }
        #[cfg(feature = "sqlite")]
        if let (Some(history), Some(_)) = (&self.history, &self.cluster) {
            if history.sqlite.is_some() {
                let why = "with a cluster, history lives in Redis Streams, shared by every \
                           instance: an SQLite history store cannot be used with it";
                return Err(Error::Config(ConfigError(why.into())));
            }
        }
        if self.cluster_ttl < Duration::from_millis(300) {
            let why = format!(
                "the cluster TTL ({:?}) must be at least 300 ms",
                self.cluster_ttl
            );
            return Err(Error::Config(ConfigError(why)));
        }
        if threads > 1 {
            if let Some((path, ..)) = (self.routes.iter()).find(|r| matches!(r.1, Handlers::One(_)))
            {
                let why = format!(
                    "route {path} has one handler, and each of the {threads} loops needs its own \
                     (ServerBuilder::route_each)"
                );
                return Err(Error::Config(ConfigError(why)));
            }
        }
        // Before the socket is bound: no client connects to a server that cannot start.
        let auth = match self.auth {
            Some(auth) => Some(Arc::new(auth.load().map_err(Error::Auth)?)),
            None => None,
        };
        let gate = limits::Gate::new(
            self.config.max_connections_per_ip,
            self.config.max_connections_per_user,
        )
        .map(Arc::new);
        let history = match self.history {
            Some(options) => Some(Arc::new(History::open(options)?)),
            None => None,
        };
        let tls = match self.tls {
            None => None,
            Some(Tls::Config(config)) => Some(TlsSource {
                config: Arc::new(Mutex::new(config)),
                files: None,
            }),
            Some(Tls::Files(cert, key)) => Some(TlsSource {
                config: Arc::new(Mutex::new(
                    crate::tls::server_config(&cert, &key).map_err(Error::Tls)?,
                )),
                files: Some((cert, key)),
            }),
        };
        let bind_error = |source| Error::Bind {
            addr: self.addr.clone(),
            source,
        };
        let addr = self
            .addr
            .to_socket_addrs()
            .map_err(bind_error)?
            .next()
            .ok_or_else(|| bind_error(io::Error::new(io::ErrorKind::InvalidInput, "no address")))?;
        // The first listener picks the port when 0 is asked for; the others take the same one.
        let mut listeners = vec![listen(addr, threads > 1).map_err(bind_error)?];
        let local_addr = listeners[0].local_addr().map_err(Error::Io)?;
        for _ in 1..threads {
            listeners.push(listen(local_addr, true).map_err(bind_error)?);
        }
        let mut http_listener = match &self.http_bind {
            None => None,
            Some(addr) => {
                let error = |source| Error::Bind {
                    addr: addr.clone(),
                    source,
                };
                let resolved =
                    (addr.to_socket_addrs().map_err(error)?.next()).ok_or_else(|| {
                        error(io::Error::new(io::ErrorKind::InvalidInput, "no address"))
                    })?;
                Some(listen(resolved, false).map_err(error)?)
            }
        };
        let http_addr = match &http_listener {
            Some(listener) => Some(listener.local_addr().map_err(Error::Io)?),
            None => None,
        };
        let mut polls = Vec::with_capacity(threads);
        let mut wakers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let poll = Poll::new().map_err(Error::Io)?;
            wakers.push(Arc::new(
                Waker::new(poll.registry(), WAKER).map_err(Error::Io)?,
            ));
            polls.push(poll);
        }
        let handle = ShutdownHandle::new(wakers.clone().into());
        let inboxes: Arc<[Inbox]> = wakers.into_iter().map(Inbox::new).collect();
        let default_policy = Backpressure::new(self.config.max_buffered);
        let mut routes: Vec<(String, Handlers, RouteOptions)> = self.routes;
        let paths: Vec<String> = routes.iter().map(|(path, ..)| path.clone()).collect();
        let directory = Arc::new(Directory::new());
        let presence = self
            .presence
            .map(|keeps| Arc::new(presence::Presence::new(keeps)));
        let bridge = match self.cluster {
            Some(url) => Some(
                Bridge::start(
                    url,
                    self.cluster_ttl,
                    inboxes.clone(),
                    paths,
                    directory.clone(),
                    history.clone(),
                    presence.clone(),
                )
                .map_err(Error::Io)?,
            ),
            None => None,
        };
        let board = (threads > 1 && self.config.metrics)
            .then(|| Arc::new(Mutex::new(vec![metrics::Metrics::default(); threads])));
        let publisher = Publisher::new(
            inboxes.clone(),
            history.clone(),
            bridge.as_ref().map(Bridge::link),
        )
        .with_presence(presence.clone());
        let mut loops = Vec::with_capacity(threads);
        for (index, (poll, listener)) in polls.into_iter().zip(listeners).enumerate().rev() {
            let routes = routes
                .iter_mut()
                .map(|(path, handlers, options)| Route {
                    path: path.clone(),
                    handler: match handlers {
                        Handlers::Each(make) => make(),
                        // Only with one loop (checked above): it takes the handler.
                        Handlers::One(one) => one.take().expect("one loop takes it"),
                    },
                    backpressure: options.backpressure.unwrap_or(default_policy),
                    compression: options.compression.unwrap_or(self.config.compression),
                })
                .collect();
            let router = Router {
                routes,
                allowed_origins: self.config.allowed_origins.clone(),
                index_page: self.index_page.clone(),
                http_routes: (self.http_routes.iter())
                    .map(|(prefix, make)| HttpRoute {
                        prefix: prefix.clone(),
                        handler: make(),
                    })
                    .collect(),
            };
            let postbox = Postbox::new(inboxes.clone(), index);
            let event_loop = EventLoop::new(LoopSetup {
                index,
                cluster: bridge.as_ref().map(Bridge::link),
                board: board.clone(),
                poll,
                listener,
                http_listener: if index == 0 {
                    http_listener.take()
                } else {
                    None
                },
                http_separate: http_addr.is_some(),
                config: self.config.clone(),
                router,
                tls: tls.clone(),
                stop: handle.clone(),
                handle_signals: self.handle_signals && index == 0,
                on_reload: if index == 0 { on_reload.take() } else { None },
                postbox,
                directory: directory.clone(),
                history: history.clone(),
                presence: presence.clone(),
                auth: auth.clone(),
                gate: gate.clone(),
                publisher: publisher.clone(),
            })
            .map_err(Error::Io)?;
            loops.push(event_loop);
        }
        loops.reverse();
        Ok(Server {
            loops,
            local_addr,
            http_addr,
            handle,
            publisher,
            bridge,
            history,
        })
    }
}

/// One line at start when the kernel will not give connections the send buffer asked for:
/// Linux caps `SO_SNDBUF` at `net.core.wmem_max` for an unprivileged process.
fn warn_if_capped(send_buffer: Option<usize>) {
    let Some(asked) = send_buffer else { return };
    let max = std::fs::read_to_string("/proc/sys/net/core/wmem_max");
    if let Some(max) = max.ok().and_then(|m| m.trim().parse::<usize>().ok()) {
        if asked > max {
            log::warn!(
                "send-buffer {asked} B is over net.core.wmem_max ({max} B): Linux caps it there \
                 (and doubles that for its bookkeeping); raise the sysctl for more"
            );
        }
    }
}

/// A listening socket on `addr`; with `shared`, one that other sockets may bind too
/// (`SO_REUSEPORT`), each getting its share of new connections.
fn listen(addr: SocketAddr, shared: bool) -> io::Result<mio::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if shared {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(mio::net::TcpListener::from_std(socket.into()))
}

/// The accept queue asked for: the kernel caps it at `net.core.somaxconn` (4096 by default),
/// so raising that sysctl raises it. (mio's `bind` asks for 128, which thousands of clients
/// connecting at once overflow: their SYNs are dropped and retried a second later.)
const LISTEN_BACKLOG: i32 = 65_535;

/// A bound WebSocket server, ready to [`run`](Server::run).
///
/// ```
/// use std::net::TcpStream;
/// use wsloop::{Context, Handler, Message, Server};
///
/// struct Echo;
///
/// impl Handler for Echo {
///     fn on_message(&mut self, ctx: &mut Context<'_>, _message: Message<'_>) {
///         ctx.echo();
///     }
/// }
///
/// let server = Server::builder().bind("127.0.0.1:0").route("/echo", Echo).build()?;
/// let addr = server.local_addr();
/// let stop = server.shutdown_handle();
/// let thread = std::thread::spawn(move || server.run());
///
/// // Any WebSocket client can now talk to ws://{addr}/echo.
/// TcpStream::connect(addr).expect("the server accepts connections");
///
/// stop.shutdown();
/// thread.join().expect("no panic")?;
/// # Ok::<(), wsloop::Error>(())
/// ```
pub struct Server {
    /// One per thread; the first runs on the thread that calls [`Server::run`].
    loops: Vec<EventLoop>,
    local_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    handle: ShutdownHandle,
    publisher: Publisher,
    /// With a cluster: the Redis bridge's threads.
    bridge: Option<Bridge>,
    /// The history, whose store (if any) is closed once every loop is done.
    history: Option<Arc<History>>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A builder listening on `127.0.0.1:9001` with the default [`Config`] and no routes.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            addr: "127.0.0.1:9001".into(),
            config: Config::default(),
            routes: Vec::new(),
            index_page: None,
            handle_signals: false,
            tls: None,
            threads: 1,
            cluster: None,
            cluster_ttl: cluster::DEFAULT_TTL,
            history: None,
            auth: None,
            http_routes: Vec::new(),
            presence: None,
            http_bind: None,
            on_reload: None,
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the HTTP routes listen when they have their own address
    /// ([`ServerBuilder::http_bind`]).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// A handle that stops the server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// A handle that publishes to topics, sends to connections and closes them from any
    /// thread while the server runs (see [`Publisher`]).
    pub fn publisher(&self) -> Publisher {
        self.publisher.clone()
    }

    /// Serves on the calling thread (and, with [`ServerBuilder::threads`], on as many more
    /// threads as there are other loops) until shut down (by [`ShutdownHandle::shutdown`] or
    /// [`ShutdownHandle::drain`] or, if enabled, a signal). Shutdown closes every connection
    /// with 1001 at once, a drain with 1012 over the drain window; either then waits up to the
    /// close timeout for the closing handshakes, and stops every loop. Then the history's
    /// store (if any) writes what is queued and closes its file (bounded in time).
    pub fn run(self) -> Result<(), Error> {
        let mut loops = self.loops.into_iter();
        let first = loops.next().expect("a server has a loop");
        let others: Vec<_> = loops
            .enumerate()
            .map(|(i, event_loop)| {
                let handle = self.handle.clone();
                std::thread::Builder::new()
                    .name(format!("wsloop-{}", i + 1))
                    .spawn(move || run_loop(i + 1, event_loop, &handle))
            })
            .collect::<Result<_, _>>()
            .map_err(Error::Io)?;
        let mut result = run_loop(0, first, &self.handle);
        for thread in others {
            let stopped = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("an event loop thread panicked")));
            result = result.and(stopped);
        }
        if let Some(bridge) = self.bridge {
            bridge.stop(); // every loop is done: so is the bridge, once it sent what waits
        }
        if let Some(history) = &self.history {
            history.close(); // nothing appends any more
        }
        result.map_err(Error::Io)
    }
}

/// Runs one loop to its end. A loop that fails, by an error or by a panic that escaped every
/// callback's isolation, stops the others: a server never goes on with a loop missing.
fn run_loop(index: usize, mut event_loop: EventLoop, handle: &ShutdownHandle) -> io::Result<()> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| event_loop.run()))
        .unwrap_or_else(|_| Err(io::Error::other(format!("event loop {index} panicked"))));
    if result.is_err() {
        handle.shutdown();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_from_main_prints_as_one_readable_line() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let error = Server::builder().bind(addr.clone()).build().unwrap_err();
        let shown = format!("{error:?}");
        assert_eq!(shown, error.to_string());
        assert!(
            shown.starts_with(&format!("cannot listen on {addr}: ")),
            "{shown}"
        );
    }
}

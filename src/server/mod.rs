//! The server: a builder for its routes and limits, and the loop that runs them.

pub(crate) mod context;
mod event_loop;
mod hub;
mod metrics;
mod timers;
mod transport;

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mio::{Poll, Waker};

use crate::app::{Backpressure, Route, RouteOptions, Router};
use crate::config::{Config, ConfigError};
use crate::handler::Handler;
use event_loop::{EventLoop, TlsSource, WAKER};

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
    /// The event loop failed.
    Io(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => write!(f, "invalid configuration: {e}"),
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Tls(e) => write!(f, "TLS: {e}"),
            Error::Io(e) => write!(f, "event loop failed: {e}"),
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
            Error::Io(e) => Some(e),
        }
    }
}

/// Configures a [`Server`]: where it listens, its limits and what it serves.
pub struct ServerBuilder {
    addr: String,
    config: Config,
    /// Each route's path and handler, and the options it set for itself.
    routes: Vec<(String, Box<dyn Handler + Send>, RouteOptions)>,
    index_page: Option<Vec<u8>>,
    handle_signals: bool,
    tls: Option<Tls>,
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

    /// Limits and timers; see [`Config`] for the defaults.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Serves `handler` to WebSocket upgrades at `path` (exact match, query string ignored).
    /// A plain HTTP request to the path is answered with 426. The handler moves with the
    /// server to the thread that runs it, hence `Send`.
    pub fn route(self, path: impl Into<String>, handler: impl Handler + Send + 'static) -> Self {
        self.add_route(path.into(), Box::new(handler), RouteOptions::default())
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
        self.add_route(path.into(), Box::new(handler), options.into())
    }

    fn add_route(
        mut self,
        path: String,
        handler: Box<dyn Handler + Send>,
        options: RouteOptions,
    ) -> Self {
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

    /// On SIGINT or SIGTERM, close every connection with 1001 and return from
    /// [`Server::run`]. Off by default: a library should not take over a process's signals.
    pub fn handle_signals(mut self, on: bool) -> Self {
        self.handle_signals = on;
        self
    }

    /// Validates the configuration and binds the listening socket.
    pub fn build(self) -> Result<Server, Error> {
        self.config.validate().map_err(Error::Config)?;
        let tls = match self.tls {
            None => None,
            Some(Tls::Config(config)) => Some(TlsSource {
                config,
                files: None,
            }),
            Some(Tls::Files(cert, key)) => Some(TlsSource {
                config: crate::tls::server_config(&cert, &key).map_err(Error::Tls)?,
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
        let listener = mio::net::TcpListener::bind(addr).map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(Error::Io)?;
        let poll = Poll::new().map_err(Error::Io)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(Error::Io)?);
        let shutdown = Arc::new(AtomicBool::new(false));
        let default_policy = Backpressure::new(self.config.max_buffered);
        let routes = self
            .routes
            .into_iter()
            .map(|(path, handler, options)| Route {
                path,
                handler,
                backpressure: options.backpressure.unwrap_or(default_policy),
                compression: options.compression.unwrap_or(self.config.compression),
            })
            .collect();
        let router = Router {
            routes,
            allowed_origins: self.config.allowed_origins.clone(),
            index_page: self.index_page,
        };
        let event_loop = EventLoop::new(
            poll,
            listener,
            self.config,
            router,
            tls,
            shutdown.clone(),
            self.handle_signals,
        )
        .map_err(Error::Io)?;
        Ok(Server {
            event_loop,
            local_addr,
            handle: ShutdownHandle { waker, shutdown },
        })
    }
}

/// A bound WebSocket server, ready to [`run`](Server::run).
///
/// ```
/// use std::net::TcpStream;
/// use wsloop::{apps::Echo, Server};
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
    event_loop: EventLoop,
    local_addr: SocketAddr,
    handle: ShutdownHandle,
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
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A handle that stops the server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.handle.clone()
    }

    /// Serves on the calling thread until shut down (by [`ShutdownHandle::shutdown`] or, if
    /// enabled, a signal). Shutdown closes every connection with 1001 and waits up to the close
    /// timeout for them to finish.
    pub fn run(mut self) -> Result<(), Error> {
        self.event_loop.run().map_err(Error::Io)
    }
}

/// Stops a running [`Server`]; cheap to clone and send to other threads.
#[derive(Clone)]
pub struct ShutdownHandle {
    waker: Arc<Waker>,
    shutdown: Arc<AtomicBool>,
}

impl fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShutdownHandle").finish_non_exhaustive()
    }
}

impl ShutdownHandle {
    /// Asks the server to close every connection with 1001 and stop.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }
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

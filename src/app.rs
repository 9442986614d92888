//! The router: which handler serves which path, each route's backpressure policy, and the page
//! served at `GET /` with its scripts and the client library. The event loop dispatches a
//! connection's events through it; connections only know a route by its [`RouteId`].

use crate::connection::{Answer, Attached, RouteId};
use crate::handler::{Accept, Handler};
use crate::http::HttpHandler;
use crate::protocol::deflate::CompressionMode;
use crate::protocol::handshake::{http_response, without_body, HttpError, Refusal, Request};

/// What is served next to the index page: its icon and scripts, by path. The client library
/// ([`WSLOOP_JS`](crate::WSLOOP_JS)) is served too.
const PAGE_FILES: [(&str, &str); 5] = [
    ("/favicon.ico", include_str!("../static/favicon.svg")),
    ("/page/main.js", include_str!("../static/page/main.js")),
    ("/page/chat.js", include_str!("../static/page/chat.js")),
    ("/page/pubsub.js", include_str!("../static/page/pubsub.js")),
    ("/page/server.js", include_str!("../static/page/server.js")),
];

/// A file served next to the index page: its content type and text.
fn page_file(path: &str) -> Option<(&'static str, &'static str)> {
    let (_, text) = PAGE_FILES
        .iter()
        .chain(crate::WSLOOP_JS.iter())
        .find(|(at, _)| *at == path)?;
    let content_type = match path.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "ico" => "image/svg+xml",
        "js" => "text/javascript; charset=utf-8",
        _ => "text/plain; charset=utf-8", // wsloop.d.ts
    };
    Some((content_type, text))
}

/// What happens to a message for a receiver that already leaves
/// [`Backpressure::max_buffered`] bytes unread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowConsumer {
    /// Close the receiver with 1008 (or drop its connection when even the close frame would
    /// not fit): it cannot keep up, and the others must not wait for it.
    Close,
    /// Drop the message for that receiver, keep the connection, and report it (a log line per
    /// connection, and [`SendStatus::Dropped`](crate::SendStatus::Dropped) for its own sends).
    DropMessages,
}

/// A route's backpressure policy, after uWebSockets' `maxBackpressure`: how much a connection
/// may leave unread, and what happens past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backpressure {
    /// Above this many unread bytes, sends report
    /// [`SendStatus::Backpressured`](crate::SendStatus::Backpressured) and the server stops
    /// reading from the connection until it reads what it was sent. Default 1 MiB.
    pub high_watermark: usize,
    /// Once a backpressured connection's unread bytes fall to this,
    /// [`Handler::on_drain`] is called. Default 256 KiB.
    pub low_watermark: usize,
    /// The most bytes a connection may leave unread of what others send it; past it,
    /// `slow_consumer` applies. Default: the server's `max_buffered` (4 MiB).
    pub max_buffered: usize,
    /// What happens past `max_buffered`. Default [`SlowConsumer::Close`].
    pub slow_consumer: SlowConsumer,
}

impl Backpressure {
    /// The default policy with `max_buffered` bytes.
    pub fn new(max_buffered: usize) -> Backpressure {
        Backpressure {
            high_watermark: 1 << 20,
            low_watermark: 256 << 10,
            max_buffered,
            slow_consumer: SlowConsumer::Close,
        }
    }

    /// The same policy with another `high_watermark`.
    pub fn high_watermark(mut self, bytes: usize) -> Self {
        self.high_watermark = bytes;
        self
    }

    /// The same policy with another `low_watermark`.
    pub fn low_watermark(mut self, bytes: usize) -> Self {
        self.low_watermark = bytes;
        self
    }

    /// The same policy with another `max_buffered`.
    pub fn max_buffered(mut self, bytes: usize) -> Self {
        self.max_buffered = bytes;
        self
    }

    /// The same policy with another [`SlowConsumer`] rule.
    pub fn slow_consumer(mut self, rule: SlowConsumer) -> Self {
        self.slow_consumer = rule;
        self
    }
}

/// What a route may set for itself instead of taking the server's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteOptions {
    /// Its backpressure policy; default: [`Backpressure::new`] with the server's `max_buffered`.
    pub backpressure: Option<Backpressure>,
    /// Its permessage-deflate mode; default: the server's [`Config::compression`](crate::Config).
    pub compression: Option<CompressionMode>,
}

impl RouteOptions {
    /// The same options with this backpressure policy.
    pub fn backpressure(mut self, policy: Backpressure) -> Self {
        self.backpressure = Some(policy);
        self
    }

    /// The same options with this compression mode.
    pub fn compression(mut self, mode: CompressionMode) -> Self {
        self.compression = Some(mode);
        self
    }
}

impl From<Backpressure> for RouteOptions {
    fn from(policy: Backpressure) -> RouteOptions {
        RouteOptions::default().backpressure(policy)
    }
}

/// A path, the handler serving it, and its policies.
pub(crate) struct Route {
    pub(crate) path: String,
    pub(crate) handler: Box<dyn Handler + Send>,
    pub(crate) backpressure: Backpressure,
    pub(crate) compression: CompressionMode,
}

/// Every route, the origins allowed to open WebSockets, and the page served at `GET /`.
pub(crate) struct Router {
    pub(crate) routes: Vec<Route>,
    /// Empty: any origin.
    pub(crate) allowed_origins: Vec<String>,
    /// Served to a plain `GET /`.
    pub(crate) index_page: Option<Vec<u8>>,
    /// Plain HTTP routes, by path prefix.
    pub(crate) http_routes: Vec<HttpRoute>,
}

/// A plain HTTP route: every path that starts with `prefix`.
pub(crate) struct HttpRoute {
    pub(crate) prefix: String,
    pub(crate) handler: Box<dyn HttpHandler + Send>,
}

impl Router {
    /// The HTTP route serving `path`, if any.
    pub(crate) fn http_route_for(&self, path: &str) -> Option<usize> {
        (self.http_routes.iter()).position(|route| path.starts_with(&route.prefix))
    }

    /// The route serving `path`, if any.
    pub(crate) fn route_for(&self, path: &str) -> Option<RouteId> {
        self.routes.iter().position(|route| route.path == path)
    }

    /// Routes a complete request: the index page, an upgrade the route's handler accepts, or
    /// an error. An upgrade to a route from an allowed origin is first `authenticate`d (which
    /// may note an identity in the request), then offered to the handler.
    pub(crate) fn answer(
        &mut self,
        request: &mut Request,
        upgrade: bool,
        authenticate: impl FnOnce(&mut Request) -> Result<(), HttpError>,
    ) -> Answer {
        let refuse = |refusal: Refusal| Answer::Refuse(refusal.into());
        let path = request.path();
        let route = self.route_for(path);
        if !upgrade {
            if !matches!(request.method(), "GET" | "HEAD") {
                return refuse(Refusal::MethodNotAllowed);
            }
            let file = self.index_page.as_ref().and_then(|_| page_file(path));
            let (content_type, body): (&str, &[u8]) = match (path, &self.index_page, route, file) {
                ("/", Some(page), _, _) => ("text/html; charset=utf-8", page),
                (_, _, _, Some((content_type, text))) => (content_type, text.as_bytes()),
                (_, _, Some(_), None) => return refuse(Refusal::WebSocketOnly),
                (_, _, None, None) => return refuse(Refusal::NoSuchPath),
            };
            // Public files: a page on any origin may import the library (a module needs CORS).
            let cors = if file.is_some() {
                "Access-Control-Allow-Origin: *\r\n"
            } else {
                ""
            };
            let response = http_response(200, content_type, cors, body);
            return Answer::Reply {
                status: 200,
                response: if request.method() == "HEAD" {
                    without_body(response)
                } else {
                    response
                },
            };
        }
        let Some(route) = route else {
            return refuse(Refusal::NoWebSocketRoute);
        };
        // Cross-site WebSocket hijacking (§10.2): a browser names the page's origin.
        if let Some(origin) = request.origin() {
            if !self.allowed_origins.is_empty() && !self.allowed_origins.iter().any(|o| o == origin)
            {
                return refuse(Refusal::OriginNotAllowed);
            }
        }
        if let Err(error) = authenticate(request) {
            return Answer::Refuse(error);
        }
        let compression = self.routes[route].compression;
        let Accept { protocol, data } = match self.routes[route].handler.on_upgrade(request) {
            Ok(accept) => accept,
            Err(error) => return Answer::Refuse(error),
        };
        if let Some(chosen) = &protocol {
            if !request.protocols().any(|offered| offered == chosen) {
                return refuse(Refusal::SubprotocolNotOffered);
            }
        }
        let identity = request.shared_identity();
        let attached = (identity.is_some() || data.is_some()).then(|| {
            Box::new(Attached {
                identity,
                data,
                ..Attached::default()
            })
        });
        Answer::Upgrade {
            route,
            protocol,
            compression,
            attached,
        }
    }

    /// The backpressure policy of `route`, for a connection that has one.
    pub(crate) fn backpressure(&self, route: Option<RouteId>) -> Option<&Backpressure> {
        route.map(|route| &self.routes[route].backpressure)
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let paths: Vec<&str> = self.routes.iter().map(|r| r.path.as_str()).collect();
        f.debug_struct("Router").field("routes", &paths).finish()
    }
}

//! HTTP routes: plain HTTP/1.1 requests with JSON (or any) bodies, served by the event loops
//! beside the WebSocket routes, on kept-alive connections
//! ([`ServerBuilder::http_route_each`](crate::ServerBuilder::http_route_each)). What a backend
//! uses to reach a running server without holding a WebSocket: the bundled HTTP API
//! (`wsloop::apps::Api`, with the `apps` feature) is one.
//!
//! The server reads the request: a body needs `Content-Length` (411 without; chunked bodies
//! are refused the same way), at most [`Config::max_http_body`](crate::Config::max_http_body)
//! (413), and the whole request within the handshake timeout (408). The handler answers it;
//! the connection then waits for the next request, unless the client said `Connection: close`.

use std::borrow::Cow;
use std::net::SocketAddr;

use crate::protocol::handshake::Request;
use crate::protocol::outbound::Message;
use crate::server::context::Outbox;
use crate::server::history::{History, StreamPosition};
use crate::server::publisher::{route_message, route_text, Routed};
use crate::server::Publisher;

/// What serves an HTTP route. One value per event loop; its calls run on the loop's thread
/// and must not block.
pub trait HttpHandler {
    /// Answers a request whose path starts with the route's prefix; `body` is empty for a
    /// request without one. A panic here is answered 500 and the loop goes on.
    fn on_request(
        &mut self,
        ctx: &mut HttpContext<'_>,
        request: &Request,
        body: &[u8],
    ) -> HttpResponse;
}

/// What an [`HttpHandler`] is handed: who asked, and the server to act on.
pub struct HttpContext<'a> {
    pub(crate) peer: SocketAddr,
    pub(crate) publisher: &'a Publisher,
    /// The loop's outbox: what this request publishes goes out in the same turn.
    pub(crate) outbox: &'a mut Outbox,
    pub(crate) history: Option<&'a History>,
}

impl HttpContext<'_> {
    /// Publishes `message` to `topic`, as [`Publisher::publish`] does, but from the loop
    /// itself: delivered when the request's handler returns, in the same turn. Returns the
    /// position when this server gave it one.
    pub fn publish(&mut self, topic: &str, message: Message<'_>) -> Option<StreamPosition> {
        let routed = route_message(self.history, topic, message);
        self.queue(routed)
    }

    /// Publishes the text `make` builds from its position in `topic`'s stream, as
    /// [`Publisher::publish_with`] does, from the loop itself.
    pub fn publish_with(
        &mut self,
        topic: &str,
        make: impl FnOnce(Option<&StreamPosition>) -> String,
    ) -> Option<StreamPosition> {
        let routed = route_text(self.history, topic, make);
        self.queue(routed)
    }

    /// Leaves a routed publish in the loop's outbox, which hands it to the other loops and
    /// instances too.
    fn queue(&mut self, routed: Routed) -> Option<StreamPosition> {
        match routed {
            Routed::ToRedis => None,
            Routed::Deliver {
                target,
                prepared,
                position,
            } => {
                self.outbox.deliveries.push((target, prepared));
                position
            }
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The running server: publish to topics, send to and close connections, read history,
    /// count connections. What it posts reaches this loop's connections on its next turn, as
    /// it reaches every other loop's.
    pub fn server(&self) -> &Publisher {
        self.publisher
    }
}

/// A reply to an HTTP request.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) content_type: Cow<'static, str>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// What the server's log line for this reply says after the status.
    pub(crate) note: Option<String>,
}

impl HttpResponse {
    /// A reply with `status`, a body and its type.
    pub fn new(
        status: u16,
        content_type: impl Into<Cow<'static, str>>,
        body: impl Into<Vec<u8>>,
    ) -> HttpResponse {
        HttpResponse {
            status,
            content_type: content_type.into(),
            headers: Vec::new(),
            body: body.into(),
            note: None,
        }
    }

    /// A JSON reply (`application/json`) with `status`.
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> HttpResponse {
        HttpResponse::new(status, "application/json", body)
    }

    /// Adds a header (one whose name is not a token, or whose value holds a line break, is
    /// left out when the reply is written).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> HttpResponse {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Says why in the server's log line for this reply (one line per request: at debug
    /// level for a success, info for an error). Never put a secret here.
    pub fn note(mut self, why: impl Into<String>) -> HttpResponse {
        self.note = Some(why.into());
        self
    }

    /// The status.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

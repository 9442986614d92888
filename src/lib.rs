//! # wsloop
//!
//! A WebSocket server ([RFC 6455]) on a single-threaded [mio] event loop, with a sans-IO
//! protocol core.
//!
//! An application implements [`Handler`] and is served on a path by a [`Server`]:
//!
//! ```no_run
//! use wsloop::{Context, Handler, Message, Server};
//!
//! /// Answers every text message with its upper-case form.
//! struct Shout;
//!
//! impl Handler for Shout {
//!     fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
//!         if let Message::Text(text) = message {
//!             ctx.send_text(&text.to_uppercase());
//!         }
//!     }
//! }
//!
//! let server = Server::builder().bind("127.0.0.1:9002").route("/shout", Shout).build()?;
//! println!("listening on ws://{}", server.local_addr());
//! server.run()?;
//! # Ok::<(), wsloop::Error>(())
//! ```
//!
//! ## Architecture
//! (`ARCHITECTURE.md` in the repository has the whole picture.)
//! - [`protocol`] is RFC 6455 as plain data in, data out: handshakes, frames, masking,
//!   fragmentation, UTF-8, close codes, and one [`Endpoint`](protocol::endpoint::Endpoint) for
//!   both roles (bytes in, events out, frames out, deadlines out). It never touches a socket or
//!   a clock; the server, [`client`] and the benchmark tool all drive the same endpoint.
//! - A server connection is a state machine (`New → Handshaking → Open → Closing → Closed`) over
//!   that endpoint, still without I/O. It reports what happens (a request to answer, open,
//!   message, close) and never calls application code itself.
//! - The event loop owns the mio `Poll`, the listener and a slab of connections with their
//!   transports. It reads every ready socket into one shared buffer, dispatches the connection's
//!   events to your [`Handler`], delivers what the handler sent to others (topics, broadcasts),
//!   and writes each touched connection's queue once per turn.
//!
//! Callbacks run on the loop's thread, so they must not block; they get a [`Context`] to send,
//! subscribe to topics and publish, broadcast and close.
//!
//! Who a connection is: [`ServerBuilder::auth`] checks a signed token on every upgrade
//! ([`auth`]: HMAC secrets, PEM keys, JWK sets; channel permissions from its claims), and
//! [`Handler::on_upgrade`] may attach data of its own ([`Accept::data`]); every later callback
//! reads both from its [`Context`]. [`Config`] sets the flood limits (messages per second,
//! connections per IP and per user).
//!
//! [RFC 6455]: https://www.rfc-editor.org/rfc/rfc6455
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod app;
#[cfg(feature = "apps")]
pub mod apps;
pub mod auth;
mod buffer_pool;
pub mod client;
mod config;
mod connection;
mod handler;
pub mod http;
mod ids;
pub mod protocol;
mod server;
#[cfg(test)]
mod test_rng;
pub mod tls;

pub use app::{Backpressure, RouteOptions, SlowConsumer};
pub use config::{Config, ConfigError};
pub use handler::{Accept, Handler};
pub use ids::{ConnectionId, SendStatus};
pub use protocol::close::CloseCode;
pub use protocol::deflate::CompressionMode;
pub use protocol::handshake::{HttpError, Request};
pub use protocol::outbound::Message;
/// The TLS library whose configurations [`ServerBuilder::tls`] and the client take.
pub use rustls;
pub use server::context::Context;
pub use server::context::Publish;
pub use server::directory::Claim;
pub use server::history::{HistoryOptions, HistoryPage, Kept, NotRecovered, StreamPosition};
pub use server::{
    ClusterUrl, Error, PresenceStats, Present, PublishError, Publisher, Server, ServerBuilder,
    ShutdownHandle,
};

/// The browser test client, embedded so `GET /` works from any directory. It loads its scripts
/// and the client library ([`WSLOOP_JS`]) by relative paths, which a server with an index page
/// ([`ServerBuilder::index_page`]) answers too.
pub const INDEX_HTML: &str = include_str!("../static/index.html");

/// The JavaScript client library (README: "The JavaScript client"), by the path a server with
/// an index page answers it at: the ES module, its TypeScript declarations, and the three
/// classic scripts the module loads (a page opened from disk loads those with script tags).
pub const WSLOOP_JS: [(&str, &str); 5] = [
    ("/wsloop.js", include_str!("../static/wsloop.js")),
    ("/wsloop.d.ts", include_str!("../static/wsloop.d.ts")),
    ("/wsloop/core.js", include_str!("../static/wsloop/core.js")),
    ("/wsloop/chat.js", include_str!("../static/wsloop/chat.js")),
    (
        "/wsloop/client.js",
        include_str!("../static/wsloop/client.js"),
    ),
];

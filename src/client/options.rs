//! How a client connects: [`ClientOptions`].

use std::sync::Arc;
use std::time::Duration;

use super::ClientOffer;

/// Options for [`Client::connect_with`](super::Client::connect_with).
///
/// Built from the defaults with one setter per field (new options are not breaking changes):
///
/// ```
/// use std::time::Duration;
/// use wsloop::client::ClientOptions;
///
/// let options = ClientOptions::default()
///     .protocols(&["chat"])
///     .timeout(Duration::from_secs(3))
///     .compression(true);
/// assert!(options.compression && !options.report_pings);
/// ```
///
/// It cannot be built field by field outside this crate, so a new option breaks no one:
///
/// ```compile_fail
/// let options = wsloop::client::ClientOptions {
///     compression: true,
///     ..Default::default()
/// };
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions<'a> {
    /// Subprotocols to offer, in order of preference. Default none.
    pub protocols: &'a [&'a str],
    /// The largest message accepted from the server (and frame); larger ones fail with 1009.
    /// Default 64 MiB.
    pub max_message_size: usize,
    /// Limit on connecting and on the handshake. Default 10 s.
    pub timeout: Duration,
    /// Offer permessage-deflate (RFC 7692); with the server's agreement, messages of 64 bytes
    /// or more are sent compressed, and compressed ones are inflated (within
    /// `max_message_size`). [`Client::compression`](super::Client::compression) tells whether
    /// the server agreed. Default off.
    pub compression: bool,
    /// With `compression`: the offers to make, in order (empty, the default: the default
    /// offer, which asks nothing of the server).
    pub compression_offers: &'a [ClientOffer],
    /// The TLS configuration for `wss://` URLs; by default the server is verified against
    /// the system's trusted roots ([`crate::tls::client_config`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Report the server's pings and pongs through [`Client::recv`](super::Client::recv) as
    /// [`Incoming::Ping`](super::Incoming::Ping) and [`Incoming::Pong`](super::Incoming::Pong)
    /// (a ping is answered with its pong all the same). Default off: `recv` returns only
    /// messages and the close, and pings are answered silently.
    pub report_pings: bool,
}

impl Default for ClientOptions<'_> {
    fn default() -> Self {
        ClientOptions {
            protocols: &[],
            max_message_size: 64 << 20,
            timeout: Duration::from_secs(10),
            compression: false,
            compression_offers: &[],
            tls: None,
            report_pings: false,
        }
    }
}

impl<'a> ClientOptions<'a> {
    /// Sets [`ClientOptions::protocols`].
    pub fn protocols(mut self, value: &'a [&'a str]) -> Self {
        self.protocols = value;
        self
    }

    /// Sets [`ClientOptions::max_message_size`].
    pub fn max_message_size(mut self, value: usize) -> Self {
        self.max_message_size = value;
        self
    }

    /// Sets [`ClientOptions::timeout`].
    pub fn timeout(mut self, value: Duration) -> Self {
        self.timeout = value;
        self
    }

    /// Sets [`ClientOptions::compression`].
    pub fn compression(mut self, value: bool) -> Self {
        self.compression = value;
        self
    }

    /// Sets [`ClientOptions::compression_offers`].
    pub fn compression_offers(mut self, value: &'a [ClientOffer]) -> Self {
        self.compression_offers = value;
        self
    }

    /// Sets [`ClientOptions::tls`] to `value`.
    pub fn tls(mut self, value: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(value);
        self
    }

    /// Sets [`ClientOptions::report_pings`].
    pub fn report_pings(mut self, value: bool) -> Self {
        self.report_pings = value;
        self
    }
}

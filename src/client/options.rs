//! How a client connects: [`ClientOptions`].

use std::sync::Arc;
use std::time::Duration;

use super::ClientOffer;

/// Options for [`Client::connect_with`].
#[derive(Debug, Clone)]
pub struct ClientOptions<'a> {
    /// Subprotocols to offer, in order of preference.
    pub protocols: &'a [&'a str],
    /// The largest message accepted from the server (and frame); larger ones fail with 1009.
    pub max_message_size: usize,
    /// Limit on connecting and on the handshake.
    pub timeout: Duration,
    /// Offer permessage-deflate (RFC 7692); with the server's agreement, messages of 64 bytes
    /// or more are sent compressed, and compressed ones are inflated (within
    /// `max_message_size`).
    pub compression: bool,
    /// With `compression`: the offers to make, in order (empty: the default offer, which asks
    /// nothing of the server).
    pub compression_offers: &'a [ClientOffer],
    /// The TLS configuration for `wss://` URLs; by default the server is verified against
    /// the system's trusted roots ([`crate::tls::client_config`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
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
        }
    }
}

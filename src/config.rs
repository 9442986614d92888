//! Server limits and timers, with safe defaults and start-up validation.

use std::fmt;
use std::time::Duration;

use crate::protocol::deflate::CompressionMode;
use crate::protocol::endpoint::EndpointConfig;

/// Limits and timers for a [`crate::Server`]. Every limit has a safe default; zero durations
/// for `ping_interval` and `idle_timeout` turn those timers off.
///
/// Built from the defaults with one setter per field (new options are not breaking changes):
///
/// ```
/// use std::time::Duration;
/// use wsloop::Config;
///
/// let config = Config::default()
///     .max_message_size(64 << 10)
///     .idle_timeout(Duration::from_secs(20))
///     .ping_interval(Duration::from_secs(5));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The largest message, after reassembly, in bytes; larger ones are closed with 1009.
    /// Default 16 MiB.
    pub max_message_size: usize,
    /// The largest single frame payload in bytes; larger ones are closed with 1009. A value
    /// above `max_message_size` means `max_message_size`. Default 16 MiB.
    pub max_frame_size: usize,
    /// The largest HTTP request head in bytes; larger ones get 431. Default 8 KiB.
    pub max_header_size: usize,
    /// The largest body of a request to an HTTP route
    /// ([`ServerBuilder::http_route_each`](crate::ServerBuilder::http_route_each)); larger
    /// ones get 413. Default 1 MiB.
    pub max_http_body: usize,
    /// The most connections held at once; more are refused with 503. Default 100,000.
    pub max_connections: usize,
    /// The most bytes a connection may leave unread of what other connections send it
    /// (broadcasts, private messages); past it the slow reader is closed with 1008 so it never
    /// holds up the others or the server's memory. A single larger message still reaches a
    /// receiver that has read everything, so a queue holds at most this plus one message.
    /// Default 4 MiB.
    pub max_buffered: usize,
    /// The kernel's send buffer (`SO_SNDBUF`) for every accepted connection. Default `None`:
    /// the kernel sizes it, and over loopback that is megabytes from the first write. What a
    /// reader that stopped reading holds is its receive buffer, this, and `max_buffered`;
    /// a smaller send buffer bounds the kernel's share, so a stalled reader among many is found
    /// and closed sooner and costs less socket memory. Linux caps the value at
    /// `net.core.wmem_max` (208 KiB by default), then doubles it for its bookkeeping. It bounds
    /// a reader that keeps up too: a burst faster than it reads must fit in this and
    /// `max_buffered`, or it is closed as slow.
    pub send_buffer: Option<usize>,
    /// How long a client has to send its whole upgrade request. Default 10 s.
    pub handshake_timeout: Duration,
    /// A connection that sent nothing for this long is pinged. Default 30 s.
    pub ping_interval: Duration,
    /// A connection that sent nothing for this long is closed with 1001. Default 60 s.
    pub idle_timeout: Duration,
    /// How long a closing handshake may take before the TCP connection is dropped. Default 5 s.
    pub close_timeout: Duration,
    /// How long a drain ([`ShutdownHandle::drain`](crate::ShutdownHandle::drain), SIGTERM)
    /// spreads its closes (1012) over: each loop closes its open connections one after
    /// another, evenly over this window, while `GET /readyz` answers 503 and the listener
    /// stays open; then the closing handshakes get `close_timeout`. Zero: all at once, and the
    /// listener closes at once. Default 2 s.
    pub drain_window: Duration,
    /// permessage-deflate (RFC 7692): off, shared or dedicated. Default off.
    pub compression: CompressionMode,
    /// Messages shorter than this are sent uncompressed. Default 64 B.
    pub compression_threshold: usize,
    /// When not empty, an upgrade whose `Origin` header is not one of these (exact match) is
    /// refused with 403 (cross-site WebSocket hijacking, RFC 6455 §10.2); a request without
    /// `Origin` (not a browser) is let through. Default empty: every origin.
    pub allowed_origins: Vec<String>,
    /// Serve `GET /metrics` (Prometheus text format 0.0.4) on the server's own port. Counting
    /// goes on either way; without this, `/metrics` is 404 like any unknown path. Default off.
    pub metrics: bool,
    /// Flood limit: the most messages a connection may send per second, with a burst of as
    /// many. A message over it is not handed to the application
    /// ([`Handler::on_rate_limited`](crate::Handler::on_rate_limited) is called instead,
    /// which closes 1008 `rate limit` unless the route replies otherwise); a connection
    /// that goes on for another burst is closed 1008 either way. Default off.
    pub max_message_rate: Option<u32>,
    /// The most open WebSocket connections from one client IP address, counted across every
    /// loop; past it an upgrade gets 429 with `Retry-After`. Default off (benchmarks and
    /// tests open thousands from one address).
    pub max_connections_per_ip: Option<u32>,
    /// The most open WebSocket connections of one user (a token's `sub`), across every loop;
    /// past it 429. Default off.
    pub max_connections_per_user: Option<u32>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_message_size: 16 << 20,
            max_frame_size: 16 << 20,
            max_header_size: 8 << 10,
            max_http_body: 1 << 20,
            max_connections: 100_000,
            max_buffered: 4 << 20,
            send_buffer: None,
            handshake_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            close_timeout: Duration::from_secs(5),
            drain_window: Duration::from_secs(2),
            compression: CompressionMode::Off,
            compression_threshold: 64,
            allowed_origins: Vec::new(),
            metrics: false,
            max_message_rate: None,
            max_connections_per_ip: None,
            max_connections_per_user: None,
        }
    }
}

/// Setters, one per field, each returning the changed configuration.
impl Config {
    /// Sets [`Config::max_message_size`](#structfield.max_message_size).
    pub fn max_message_size(mut self, value: usize) -> Self {
        self.max_message_size = value;
        self
    }

    /// Sets [`Config::max_frame_size`](#structfield.max_frame_size).
    pub fn max_frame_size(mut self, value: usize) -> Self {
        self.max_frame_size = value;
        self
    }

    /// Sets [`Config::max_header_size`](#structfield.max_header_size).
    pub fn max_header_size(mut self, value: usize) -> Self {
        self.max_header_size = value;
        self
    }

    /// Sets [`Config::max_http_body`](#structfield.max_http_body).
    pub fn max_http_body(mut self, value: usize) -> Self {
        self.max_http_body = value;
        self
    }

    /// Sets [`Config::max_connections`](#structfield.max_connections).
    pub fn max_connections(mut self, value: usize) -> Self {
        self.max_connections = value;
        self
    }

    /// Sets [`Config::max_buffered`](#structfield.max_buffered).
    pub fn max_buffered(mut self, value: usize) -> Self {
        self.max_buffered = value;
        self
    }

    /// Sets [`Config::send_buffer`](#structfield.send_buffer).
    pub fn send_buffer(mut self, value: Option<usize>) -> Self {
        self.send_buffer = value;
        self
    }

    /// Sets [`Config::handshake_timeout`](#structfield.handshake_timeout).
    pub fn handshake_timeout(mut self, value: Duration) -> Self {
        self.handshake_timeout = value;
        self
    }

    /// Sets [`Config::ping_interval`](#structfield.ping_interval).
    pub fn ping_interval(mut self, value: Duration) -> Self {
        self.ping_interval = value;
        self
    }

    /// Sets [`Config::idle_timeout`](#structfield.idle_timeout).
    pub fn idle_timeout(mut self, value: Duration) -> Self {
        self.idle_timeout = value;
        self
    }

    /// Sets [`Config::close_timeout`](#structfield.close_timeout).
    pub fn close_timeout(mut self, value: Duration) -> Self {
        self.close_timeout = value;
        self
    }
    /// Sets [`Config::compression`](#structfield.compression).
    pub fn compression(mut self, value: CompressionMode) -> Self {
        self.compression = value;
        self
    }

    /// Sets [`Config::allowed_origins`](#structfield.allowed_origins).
    pub fn allowed_origins(mut self, value: Vec<String>) -> Self {
        self.allowed_origins = value;
        self
    }

    /// Sets [`Config::drain_window`](#structfield.drain_window).
    pub fn drain_window(mut self, value: Duration) -> Self {
        self.drain_window = value;
        self
    }

    /// Sets [`Config::metrics`](#structfield.metrics).
    pub fn metrics(mut self, value: bool) -> Self {
        self.metrics = value;
        self
    }

    /// Sets [`Config::compression_threshold`](#structfield.compression_threshold).
    pub fn compression_threshold(mut self, value: usize) -> Self {
        self.compression_threshold = value;
        self
    }

    /// Sets [`Config::max_message_rate`](#structfield.max_message_rate).
    pub fn max_message_rate(mut self, value: Option<u32>) -> Self {
        self.max_message_rate = value;
        self
    }

    /// Sets [`Config::max_connections_per_ip`](#structfield.max_connections_per_ip).
    pub fn max_connections_per_ip(mut self, value: Option<u32>) -> Self {
        self.max_connections_per_ip = value;
        self
    }

    /// Sets [`Config::max_connections_per_user`](#structfield.max_connections_per_user).
    pub fn max_connections_per_user(mut self, value: Option<u32>) -> Self {
        self.max_connections_per_user = value;
        self
    }
}

/// A configuration that cannot work, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The largest accepted value for a size limit (1 GiB): a typo must not disable a limit.
const MAX_SIZE_LIMIT: usize = 1 << 30;
/// The longest accepted duration: a day. Longer ones are typos, and far-future deadlines
/// would overflow `Instant`.
const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// A byte count for people: whole KiB, MiB or GiB when it is one, bytes otherwise.
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}KiB", b >> 10),
        b => format!("{b}B"),
    }
}

impl Config {
    /// Checks that the limits make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        for (name, value) in [
            ("max-message-size", self.max_message_size),
            ("max-frame-size", self.max_frame_size),
        ] {
            if value == 0 || value > MAX_SIZE_LIMIT {
                return err(format!(
                    "{name} must be between 1B and 1GiB, got {}",
                    size(value)
                ));
            }
        }
        if !(256..=1 << 20).contains(&self.max_header_size) {
            return err(format!(
                "max-header-size must be between 256B and 1MiB, got {}",
                size(self.max_header_size)
            ));
        }
        if !(1..=MAX_SIZE_LIMIT).contains(&self.max_http_body) {
            return err(format!(
                "max-http-body must be between 1B and 1GiB, got {}",
                size(self.max_http_body)
            ));
        }
        if !(1024..=MAX_SIZE_LIMIT).contains(&self.max_buffered) {
            return err(format!(
                "max-buffered must be between 1KiB and 1GiB, got {}",
                size(self.max_buffered)
            ));
        }
        if let Some(bytes) = self
            .send_buffer
            .filter(|b| !(4096..=MAX_SIZE_LIMIT).contains(b))
        {
            return err(format!(
                "send-buffer must be between 4KiB and 1GiB, got {}",
                size(bytes)
            ));
        }
        if let CompressionMode::Dedicated { window_bits } = self.compression {
            if !(9..=15).contains(&window_bits) {
                return err(format!(
                    "compression-window-bits must be between 9 and 15, got {window_bits}"
                ));
            }
        }
        if let Some(bad) = self
            .allowed_origins
            .iter()
            .find(|o| o.contains('*') || !o.contains("://") || o.ends_with('/'))
        {
            return err(format!(
                "allow-origin takes an exact origin such as https://example.com (a scheme, a \
                 host, maybe a port, no path), not {bad:?}"
            ));
        }
        if self.max_connections == 0 {
            return err("max-connections must be at least 1".into());
        }
        if self.max_connections >= crate::ids::ConnectionId::MAX_SLOTS {
            return err(format!(
                "max-connections is at most {} per event loop",
                crate::ids::ConnectionId::MAX_SLOTS
            ));
        }
        for (name, value) in [
            ("handshake-timeout", self.handshake_timeout),
            ("close-timeout", self.close_timeout),
        ] {
            if value.is_zero() {
                return err(format!("{name} must be greater than zero"));
            }
        }
        for (name, value) in [
            ("handshake-timeout", self.handshake_timeout),
            ("close-timeout", self.close_timeout),
            ("drain-window", self.drain_window),
            ("ping-interval", self.ping_interval),
            ("idle-timeout", self.idle_timeout),
        ] {
            if value > MAX_DURATION {
                return err(format!("{name} must be at most 24h, got {value:?}"));
            }
        }
        for (name, value) in [
            ("max-message-rate", self.max_message_rate),
            ("max-connections-per-ip", self.max_connections_per_ip),
            ("max-connections-per-user", self.max_connections_per_user),
        ] {
            if value == Some(0) {
                return err(format!(
                    "{name} must be at least 1 (leave it out for no limit)"
                ));
            }
        }
        if !self.ping_interval.is_zero()
            && !self.idle_timeout.is_zero()
            && self.ping_interval >= self.idle_timeout
        {
            return err(format!(
                "ping-interval ({:?}) must be shorter than idle-timeout ({:?}), or pings never \
                 keep a connection alive",
                self.ping_interval, self.idle_timeout
            ));
        }
        Ok(())
    }

    /// The protocol endpoint's share of the configuration.
    pub(crate) fn endpoint(&self) -> EndpointConfig {
        EndpointConfig {
            // A frame longer than a message can never be valid: the smaller limit applies.
            max_frame_size: self.max_frame_size.min(self.max_message_size) as u64,
            max_message_size: self.max_message_size as u64,
            ping_interval: self.ping(),
            idle_timeout: self.idle(),
        }
    }

    /// The ping interval, if pings are on.
    pub(crate) fn ping(&self) -> Option<Duration> {
        (!self.ping_interval.is_zero()).then_some(self.ping_interval)
    }

    /// The idle timeout, if it is on.
    pub(crate) fn idle(&self) -> Option<Duration> {
        (!self.idle_timeout.is_zero()).then_some(self.idle_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn a_smaller_message_limit_alone_bounds_frames_too() {
        let config = Config::default().max_message_size(64 << 10);
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.endpoint().max_frame_size, 64 << 10);
    }

    #[test]
    fn sizes_print_with_their_unit() {
        assert_eq!(size(16 << 20), "16MiB");
        assert_eq!(size(64 << 10), "64KiB");
        assert_eq!(size(1 << 30), "1GiB");
        assert_eq!(size(1000), "1000B");
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        let bad = [
            Config {
                max_message_size: 0,
                ..Config::default()
            },
            Config {
                max_header_size: 10,
                ..Config::default()
            },
            Config {
                close_timeout: Duration::ZERO,
                ..Config::default()
            },
            Config {
                handshake_timeout: Duration::MAX,
                ..Config::default()
            },
            Config {
                drain_window: Duration::from_secs(25 * 3600),
                ..Config::default()
            },
            Config {
                ping_interval: Duration::from_secs(90),
                ..Config::default()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}

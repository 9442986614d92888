//! The sans-IO protocol core: RFC 6455 as plain functions and state machines over bytes.
//!
//! Nothing here touches a socket, a clock or mio, so every rule can be tested byte by byte and
//! the same code serves the server, a client and the benchmark tool.
//!
//! | RFC 6455 | module |
//! |---|---|
//! | §4.1 opening handshake (client) | [`client_handshake`] |
//! | §4.2 opening handshake (server) | [`handshake`] |
//! | §5.2 framing, §5.5 control frame rules | [`frame`] |
//! | §5.3 masking | [`mask`] |
//! | §5.4 fragmentation, §5.5 control frames, size limits | `message` (crate-private; through [`endpoint`]) |
//! | §5.5.1, §7.4 close frames and codes | [`close`] |
//! | §8.1 UTF-8 | [`utf8`] |
//! | §5.1-§5.5, §7.1: one endpoint of an open connection, either role | [`endpoint`] |
//! | §5.2, §5.3: everything an endpoint sends, framed once | [`outbound`], [`write_queue`] |
//!
//! Only [`endpoint`] drives the frame decoder and the message assembler; the server, the client
//! and the benchmark tool all go through it.

pub mod client_handshake;
pub mod close;
pub mod deflate;
pub mod endpoint;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub(crate) mod message;
pub mod outbound;
mod reassembly;
pub(crate) mod stamp;
pub mod utf8;
pub mod write_queue;

#[cfg(test)]
mod random_tests;

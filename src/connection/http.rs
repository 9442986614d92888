//! Plain HTTP/1.1 requests with a body and kept-alive connections (RFC 9112), for the routes
//! that serve HTTP (an HTTP API): read a request's body of `Content-Length` bytes, have it
//! answered, and read the next request on the same connection, in order.
//!
//! One request is handled at a time: bytes after it (pipelined requests) wait, unparsed, until
//! its reply is queued; the reply queue is bounded by the loop (it stops reading a connection
//! whose queue is above its watermark). The whole of a request, head and body, must arrive
//! within the handshake timeout of its first byte (408 otherwise); a kept-alive connection
//! that sends nothing for as long is closed without a reply.

use std::time::Instant;

use log::debug;

use super::upgrade::{answer_head, reply_error};
use super::{Connection, ConnectionConfig, ConnectionEvents, State};
use crate::protocol::handshake::{parse_request, HttpError, Parsed, Refusal, Request};
use crate::protocol::stamp::Stamp;
use crate::protocol::write_queue::WriteQueue;

/// A connection between HTTP requests, or reading one's body.
#[derive(Debug)]
pub(crate) struct Exchange {
    /// Replies not written yet.
    pub(super) queue: WriteQueue,
    /// Bytes read and not handled yet: the body being read, and what follows it.
    input: Vec<u8>,
    /// The request whose body is being read, and the body's length.
    reading: Option<(Request, usize)>,
    /// When the request being read must be complete, or the idle connection closes.
    pub(super) deadline: Instant,
}

impl Exchange {
    /// Whether a request is under way (some of it has arrived).
    fn busy(&self) -> bool {
        self.reading.is_some() || !self.input.is_empty()
    }
}

/// The head of `request` asked for a body of `length` bytes (already within the limits);
/// `rest` is what followed the head in the same read, and `queue` what earlier replies left.
#[allow(clippy::too_many_arguments)] // called once, each argument a different thing
pub(super) fn read_body(
    conn: &mut Connection,
    request: Request,
    length: usize,
    rest: &[u8],
    queue: WriteQueue,
    deadline: Instant,
    now: Instant,
    config: &ConnectionConfig,
    events: &mut impl ConnectionEvents,
) {
    conn.state = State::Http(Box::new(Exchange {
        queue,
        input: Vec::new(),
        reading: Some((request, length)),
        deadline,
    }));
    receive(conn, rest, now, config, events);
}

/// Bytes arrived for a connection in [`State::Http`].
pub(super) fn receive(
    conn: &mut Connection,
    bytes: &[u8],
    now: Instant,
    config: &ConnectionConfig,
    events: &mut impl ConnectionEvents,
) {
    let State::Http(exchange) = &mut conn.state else {
        unreachable!("only called in the HTTP state");
    };
    if !exchange.busy() {
        exchange.deadline = now + config.handshake_timeout; // a new request begins
    }
    exchange.input.extend_from_slice(bytes);
    loop {
        let State::Http(exchange) = &mut conn.state else {
            return; // replied and closing, or upgraded
        };
        match exchange.reading.take() {
            Some((request, length)) if exchange.input.len() >= length => {
                let keep_alive = !(request.header("Connection"))
                    .is_some_and(|c| c.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
                let reply =
                    events.on_http(conn.id, &request, &exchange.input[..length], keep_alive);
                exchange.input.drain(..length);
                exchange.queue.push_bytes(&reply);
                if !keep_alive {
                    let queue = std::mem::take(&mut exchange.queue);
                    conn.state = State::Replying {
                        queue,
                        deadline: Stamp::of(now + config.close_timeout),
                    };
                    return;
                }
                // The next request (or the idle wait for it) has the timeout from now.
                exchange.deadline = now + config.handshake_timeout;
            }
            Some(reading) => {
                exchange.reading = Some(reading);
                return;
            }
            None if exchange.input.is_empty() => {
                exchange.input = Vec::new(); // an idle connection holds no buffer
                return;
            }
            None => match parse_request(&exchange.input, config.max_header_size) {
                Ok(Parsed::Partial) => return,
                Err(error) => {
                    let queue = std::mem::take(&mut exchange.queue);
                    return reply_error(conn, None, &error, Some(queue), now, config, events);
                }
                Ok(Parsed::Complete {
                    mut request,
                    head_len,
                }) => {
                    request.set_peer(conn.peer, conn.http_only);
                    let mut input = std::mem::take(&mut exchange.input);
                    let queue = std::mem::take(&mut exchange.queue);
                    let deadline = exchange.deadline;
                    let rest = &mut input[head_len..];
                    answer_head(conn, request, rest, queue, deadline, now, config, events);
                }
            },
        }
    }
}

/// The deadline passed: 408 for a request under way, a quiet close for an idle connection.
pub(super) fn on_timeout(
    conn: &mut Connection,
    now: Instant,
    config: &ConnectionConfig,
    events: &mut impl ConnectionEvents,
) {
    let State::Http(exchange) = &mut conn.state else {
        return;
    };
    if now < exchange.deadline {
        return;
    }
    let queue = std::mem::take(&mut exchange.queue);
    if let Some((request, length)) = exchange.reading.take() {
        let (got, timeout) = (exchange.input.len(), config.handshake_timeout);
        let reason = format!("the body took too long ({got} of {length} bytes in {timeout:?})");
        let error = HttpError::new(408, reason);
        reply_error(
            conn,
            Some(&request),
            &error,
            Some(queue),
            now,
            config,
            events,
        );
    } else if exchange.busy() {
        let error = Refusal::HandshakeTimeout.into();
        reply_error(conn, None, &error, Some(queue), now, config, events);
    } else {
        debug!("{} HTTP connection idle: closed", conn.peer);
        conn.state = State::Replying {
            queue,
            deadline: Stamp::of(now + config.close_timeout),
        };
    }
}

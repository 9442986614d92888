//! The connection's handshake phase (§4.2): gather the request head, ask the loop how to
//! answer it, then open, reply, or refuse with a status and a one-line reason.

use std::time::Instant;

use log::{debug, info};

use super::{http, report, Answer, Connection, ConnectionConfig, ConnectionEvents, Open, State};
use crate::protocol::deflate;
use crate::protocol::endpoint::Endpoint;
use crate::protocol::handshake::{
    classify, error_response, parse_request, switching_protocols_with, without_body, HttpError,
    Intent, Parsed, Request,
};
use crate::protocol::stamp::Stamp;
use crate::protocol::write_queue::WriteQueue;

/// Feeds `input` to the request head; once it is complete, answers it. Bytes after the head
/// in the same read are the first frames (§4.2.2).
pub(super) fn receive_head(
    conn: &mut Connection,
    input: &mut [u8],
    now: Instant,
    config: &ConnectionConfig,
    events: &mut impl ConnectionEvents,
) {
    let limit = config.max_header_size;
    let (parsed, mut buffered) = match std::mem::replace(&mut conn.state, State::Closed) {
        // The common case: the whole head in the first read, parsed where it lies.
        State::New { deadline } => match parse_request(input, limit) {
            Ok(Parsed::Partial) => {
                conn.state = State::Handshaking {
                    head: input.to_vec(),
                    deadline,
                };
                return;
            }
            other => (other, None),
        },
        State::Handshaking { mut head, deadline } => {
            head.extend_from_slice(input);
            match parse_request(&head, limit) {
                Ok(Parsed::Partial) => {
                    conn.state = State::Handshaking { head, deadline };
                    return;
                }
                other => (other, Some(head)),
            }
        }
        _ => unreachable!("receive_head is only called during the handshake"),
    };
    let (mut request, head_len) = match parsed {
        Ok(Parsed::Complete { request, head_len }) => (request, head_len),
        Ok(Parsed::Partial) => unreachable!("handled above"),
        Err(error) => return reply_error(conn, None, &error, None, now, config, events),
    };
    request.set_peer(conn.peer, conn.http_only);
    let deadline = now + config.handshake_timeout;
    let rest = match buffered.as_mut() {
        None => &mut input[head_len..],
        Some(head) => &mut head[head_len..],
    };
    answer_head(
        conn,
        request,
        rest,
        WriteQueue::default(),
        deadline,
        now,
        config,
        events,
    );
}

/// Answers a complete request head; `rest` is what followed it in the same read (the first
/// frames of a WebSocket, a body, pipelined requests), `queue` what earlier replies on this
/// connection left unwritten, and `deadline` when the whole request must have arrived.
#[allow(clippy::too_many_arguments)] // one call per caller, each argument a different thing
pub(super) fn answer_head(
    conn: &mut Connection,
    mut request: Request,
    rest: &mut [u8],
    queue: WriteQueue,
    deadline: Instant,
    now: Instant,
    config: &ConnectionConfig,
    events: &mut impl ConnectionEvents,
) {
    match answer(conn, &mut request, queue, now, config, events) {
        Answered::Opened if !rest.is_empty() => conn.receive(rest, now, config, events),
        Answered::Opened | Answered::Closing => {}
        Answered::ReadBody(queue, length) => http::read_body(
            conn, request, length, rest, queue, deadline, now, config, events,
        ),
    }
}

/// What became of a request.
enum Answered {
    /// The connection is open: what follows the head is frames.
    Opened,
    /// A reply is queued and the connection closes after it.
    Closing,
    /// Its body of this length is to be read, then answered.
    ReadBody(WriteQueue, usize),
}

/// Answers a complete request.
fn answer(
    conn: &mut Connection,
    request: &mut Request,
    mut queue: WriteQueue,
    now: Instant,
    config: &ConnectionConfig,
    events: &mut impl ConnectionEvents,
) -> Answered {
    let (accept, upgrade) = match classify(request) {
        Ok(Intent::Upgrade { accept }) => (Some(accept), true),
        Ok(Intent::Plain) => (None, false),
        Err(error) => {
            reply_error(
                conn,
                Some(request),
                &error,
                Some(queue),
                now,
                config,
                events,
            );
            return Answered::Closing;
        }
    };
    match events.on_request(conn.id, request, upgrade) {
        Answer::Upgrade {
            route,
            protocol,
            compression,
            mut attached,
        } => {
            let Some(accept) = accept else {
                unreachable!("only an upgrade request is answered with an upgrade");
            };
            debug_assert!(
                (protocol.iter()).all(|chosen| request.protocols().any(|p| p == chosen)),
                "the router checks the subprotocol is one offered"
            );
            // permessage-deflate: the first acceptable offer, as the configuration allows.
            let offers = request.headers_named("Sec-WebSocket-Extensions");
            let deflate = deflate::negotiate(offers, compression);
            let extensions = deflate.map(|params| params.header());
            let reply =
                switching_protocols_with(&accept, protocol.as_deref(), extensions.as_deref());
            queue.push_bytes(&reply);
            let endpoint = config.endpoint.clone();
            let mut ws = Endpoint::server_shared(endpoint, now, queue);
            if let Some(params) = &deflate {
                ws.enable_deflate(params, config.compression_threshold);
            }
            let open = Open {
                out: ws.outbound(),
                attached: &mut attached,
            };
            events.on_open(conn.id, route, open);
            // A close asked for in on_open.
            ws.after_send(&mut report(events, conn.id, route, &mut attached));
            conn.state = State::Open {
                ws,
                route,
                attached,
            };
            conn.settle(now, config);
            Answered::Opened
        }
        Answer::ReadBody { length } => Answered::ReadBody(queue, length),
        Answer::Reply { status, response } => {
            let (method, target) = (request.method(), request.logged_target());
            // A page or a metrics scrape: not a WebSocket event, and scraped every few seconds.
            debug!(
                peer:% = conn.peer, path = target.as_str(), status = status;
                "{} {method} {target} {status}", conn.peer
            );
            reply_then_close(conn, &response, Some(queue), now, config);
            Answered::Closing
        }
        Answer::Refuse(error) => {
            reply_error(
                conn,
                Some(request),
                &error,
                Some(queue),
                now,
                config,
                events,
            );
            Answered::Closing
        }
    }
}

/// Queues an HTTP error reply, logs it, and starts closing.
pub(super) fn reply_error(
    conn: &mut Connection,
    request: Option<&Request>,
    error: &HttpError,
    queue: Option<WriteQueue>,
    now: Instant,
    config: &ConnectionConfig,
    events: &mut impl ConnectionEvents,
) {
    events.on_refused(error.status);
    let target = request.map_or("-".into(), Request::logged_target);
    info!(
        peer:% = conn.peer, path = target.as_str(), status = error.status,
        reason = error.reason.as_ref();
        "{} {target} refused: {} {}", conn.peer, error.status, error.reason
    );
    let response = error_response(error);
    let response = match request {
        Some(request) if request.method() == "HEAD" => without_body(response),
        _ => response,
    };
    reply_then_close(conn, &response, queue, now, config);
}

/// Queues `reply` after what `queue` holds (earlier replies on a kept-alive connection) and
/// closes once it is written.
fn reply_then_close(
    conn: &mut Connection,
    reply: &[u8],
    queue: Option<WriteQueue>,
    now: Instant,
    config: &ConnectionConfig,
) {
    let mut queue = queue.unwrap_or_default();
    queue.push_bytes(reply);
    conn.state = State::Replying {
        queue,
        deadline: Stamp::of(now + config.close_timeout),
    };
}

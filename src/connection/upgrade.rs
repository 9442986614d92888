//! The connection's handshake phase: gather the request head, then open, answer plain HTTP, or
//! refuse with a status and a one-line reason.

use std::time::Instant;

use log::info;

use super::{Session, State};
use crate::handler::Outbox;
use crate::protocol::handshake::{
    classify, http_response, parse_request, switching_protocols, HttpError, Intent, Parsed, Request,
};
use crate::server::app::App;

/// Where the bytes after a complete request head are.
pub(super) enum Leftover {
    /// In the input just received, from this offset.
    InInput { from: usize },
    /// In the buffered head, from this offset.
    Buffered { head: Vec<u8>, from: usize },
}

/// Feeds `input` to the request head. Returns `Some` only when the connection opened.
pub(super) fn receive_head(
    session: &mut Session,
    input: &[u8],
    now: Instant,
    app: &mut App,
    outbox: &mut Outbox,
) -> Option<Leftover> {
    let limit = app.config.max_header_size;
    let (parsed, buffered) = match std::mem::replace(&mut session.state, State::Closed) {
        // The common case: the whole head in the first read, parsed where it lies.
        State::New { deadline } => match parse_request(input, limit) {
            Ok(Parsed::Partial) => {
                session.state = State::Handshaking {
                    head: input.to_vec(),
                    deadline,
                };
                return None;
            }
            other => (other, None),
        },
        State::Handshaking { mut head, deadline } => {
            head.extend_from_slice(input);
            match parse_request(&head, limit) {
                Ok(Parsed::Partial) => {
                    session.state = State::Handshaking { head, deadline };
                    return None;
                }
                other => (other, Some(head)),
            }
        }
        _ => unreachable!("receive_head is only called during the handshake"),
    };
    let (request, head_len) = match parsed {
        Ok(Parsed::Complete { request, head_len }) => (request, head_len),
        Ok(Parsed::Partial) => unreachable!("handled above"),
        Err(error) => {
            reject(session, None, &error, now, app);
            return None;
        }
    };
    if !answer(session, &request, now, app, outbox) {
        return None;
    }
    Some(match buffered {
        None => Leftover::InInput { from: head_len },
        Some(head) => Leftover::Buffered {
            head,
            from: head_len,
        },
    })
}

/// What the server answers a complete request with.
enum Answer {
    /// 101: the connection opens on this route.
    Open { route: usize, reply: Vec<u8> },
    /// 200: the index page.
    Page(Vec<u8>),
    /// An HTTP error.
    Refuse(HttpError),
}

/// Answers a complete request; returns whether the connection is now open.
fn answer(
    session: &mut Session,
    request: &Request,
    now: Instant,
    app: &mut App,
    outbox: &mut Outbox,
) -> bool {
    match decide(request, app) {
        Answer::Open { route, reply } => {
            session.out.queue.push_bytes(&reply);
            session.open(route, now, app, outbox);
            true
        }
        Answer::Page(reply) => {
            session.out.queue.push_bytes(&reply);
            info!("{} GET {} 200", session.peer, request.target());
            session.start_draining(now, &app.config);
            false
        }
        Answer::Refuse(error) => {
            reject(session, Some(request), &error, now, app);
            false
        }
    }
}

/// Routes a request: the index page, an upgrade the route's handler accepts, or an error.
fn decide(request: &Request, app: &mut App) -> Answer {
    let refuse = |status, reason| Answer::Refuse(HttpError { status, reason });
    let path = request.path();
    let route = app.route_for(path);
    let accept = match classify(request) {
        Ok(Intent::Upgrade { accept }) => accept,
        Err(error) => return Answer::Refuse(error),
        Ok(Intent::Plain) => {
            return match (path, &app.index_page, route) {
                ("/", Some(page), _) => {
                    Answer::Page(http_response(200, "text/html; charset=utf-8", "", page))
                }
                (_, _, Some(_)) => refuse(426, "this path speaks WebSocket"),
                (_, _, None) => refuse(404, "no such endpoint"),
            };
        }
    };
    let Some(route) = route else {
        return refuse(404, "no WebSocket endpoint at this path");
    };
    let protocol = match app.routes[route].handler.on_upgrade(request) {
        Ok(protocol) => protocol,
        Err(error) => return Answer::Refuse(error),
    };
    if let Some(chosen) = &protocol {
        if !request.protocols().any(|offered| offered == chosen) {
            return refuse(500, "server chose a subprotocol not offered");
        }
    }
    Answer::Open {
        route,
        reply: switching_protocols(&accept, protocol.as_deref()),
    }
}

/// Queues an HTTP error reply and starts closing.
fn reject(
    session: &mut Session,
    request: Option<&Request>,
    error: &HttpError,
    now: Instant,
    app: &App,
) {
    let target = request.map_or("-", Request::target);
    info!(
        "{} {target} refused: {} {}",
        session.peer, error.status, error.reason
    );
    session
        .out
        .queue
        .push_bytes(&crate::protocol::handshake::error_response(error));
    session.start_draining(now, &app.config);
}

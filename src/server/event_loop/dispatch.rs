//! Where a connection's events meet the application: the loop hands each connection a
//! [`Dispatch`], which answers requests through the router and calls the route's handler with
//! a [`Context`] for every open, message and close, logging each open and close once.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use log::{error, info};

use crate::app::{Route, Router};
use crate::auth::{TokenError, Verifier};
use crate::connection::{
    Allowance, Answer, Attached, Closed, ConnectionEvents, Open, RateBucket, RouteId,
};
use crate::handler::Handler;
use crate::ids::ConnectionId;
use crate::protocol::close::CloseCode;
use crate::protocol::handshake::{http_response, without_body, HttpError, Request};
use crate::protocol::outbound::Message;
use crate::server::context::{Context, Current, Services};
use crate::server::limits::Gate;
use crate::server::metrics::{Board, Gauges, Metrics};
use crate::server::shutdown::Stop;
use crate::server::{Publisher, ShutdownHandle};

/// A probe's answer is about now: no cache may keep it.
const NO_STORE: &str = "Cache-Control: no-store\r\n";

/// What connections' events are dispatched to: the router with its handlers, the services
/// callbacks reach (the topic hub, the outbox for messages to other connections, ...), and the
/// loop's counters.
pub(crate) struct App {
    pub(crate) router: Router,
    /// The hub, the outbox, and what else callbacks may reach.
    pub(crate) services: Services,
    pub(crate) metrics: Metrics,
    /// `GET /metrics` is served ([`Config::metrics`](crate::Config)).
    pub(crate) serve_metrics: bool,
    /// With several loops: where they leave copies of their counters, and this loop's index.
    pub(crate) board: Option<(Board, usize)>,
    /// With a cluster: the count of messages for other instances dropped.
    pub(crate) cluster_dropped: Option<Arc<AtomicU64>>,
    /// The server's stop state, shared by its loops: `/readyz` fails once it is not `No`.
    pub(crate) stop: ShutdownHandle,
    /// With connection limits per IP or per user: the server's counts.
    pub(crate) gate: Option<Arc<Gate>>,
    /// [`Config::max_message_rate`](crate::Config::max_message_rate).
    pub(crate) max_message_rate: Option<u32>,
    /// The server as HTTP routes act on it.
    pub(crate) publisher: Publisher,
    /// [`Config::max_http_body`](crate::Config::max_http_body).
    pub(crate) max_http_body: usize,
    /// The HTTP routes have their own address (`ServerBuilder::http_bind`): not served on the
    /// main one.
    pub(crate) http_separate: bool,
}

impl App {
    /// `GET /healthz` (liveness: 200 while the process serves, through a drain too) and
    /// `GET /readyz` (readiness: 200 while serving, 503 once draining or stopping), on every
    /// loop, with or without `--metrics`. A route the application set at either path wins: the
    /// request goes to the router instead.
    fn probe(&self, request: &Request) -> Option<Answer> {
        let path = request.path();
        let (status, body) = match path {
            "/healthz" => (200, "ok\n"),
            "/readyz" if self.stop.requested() == Stop::No => (200, "ok\n"),
            "/readyz" => (503, "draining\n"),
            _ => return None,
        };
        if self.router.route_for(path).is_some() {
            return None;
        }
        let content_type = "text/plain; charset=utf-8";
        let response = http_response(status, content_type, NO_STORE, body.as_bytes());
        Some(Answer::Reply {
            status,
            response: if request.method() == "HEAD" {
                without_body(response)
            } else {
                response
            },
        })
    }

    /// `GET /metrics`: the Prometheus exposition of this loop's counters. A page opened from
    /// another origin (the test page as a file) may read it when that origin may open
    /// WebSockets here (`--allow-origin`, or any when none is set).
    fn metrics_reply(&self, request: &Request) -> Answer {
        let open_here: Vec<usize> = (0..self.router.routes.len())
            .map(|route| self.services.hub.members(route).len())
            .collect();
        let (metrics, open) = match &self.board {
            Some((board, me)) => {
                let mut mine = self.metrics.clone();
                mine.connections = open_here;
                Metrics::summed_on(mine, board, *me)
            }
            None => (self.metrics.clone(), open_here),
        };
        let connections: Vec<(&str, usize)> = (self.router.routes.iter())
            .zip(open.iter().chain(std::iter::repeat(&0)))
            .map(|(r, &open)| (r.path.as_str(), open))
            .collect();
        let body = metrics.render(&Gauges {
            connections: &connections,
            cluster_dropped: (self.cluster_dropped.as_ref()).map(|n| n.load(Ordering::Relaxed)),
            history: self
                .services
                .history
                .as_ref()
                .map(|history| history.stats()),
        });
        let allowed = &self.router.allowed_origins;
        let cors = match request.origin() {
            Some(origin) if allowed.is_empty() || allowed.iter().any(|o| o == origin) => {
                format!("Access-Control-Allow-Origin: {origin}\r\nVary: Origin\r\n")
            }
            _ => String::new(),
        };
        let content_type = "text/plain; version=0.0.4; charset=utf-8";
        let response = http_response(200, content_type, &cors, body.as_bytes());
        Answer::Reply {
            status: 200,
            response: if request.method() == "HEAD" {
                without_body(response)
            } else {
                response
            },
        }
    }
}

/// The loop's side of one connection's events.
pub(crate) struct Dispatch<'a> {
    pub(super) app: &'a mut App,
    pub(super) peer: SocketAddr,
    /// The loop's time for this turn.
    pub(super) now: Instant,
    /// Where the loop's read buffer is, while the connection receives from it: a message
    /// found there can be echoed from it (see [`Context::echo`]).
    pub(super) input: Option<InputBuffer>,
}

/// The address range of the loop's read buffer. Only compared with a message's address, to
/// tell whether the message lies in it and where; never turned back into a pointer.
#[derive(Debug, Clone, Copy)]
pub(super) struct InputBuffer {
    pub(super) start: usize,
    pub(super) len: usize,
}

impl InputBuffer {
    pub(super) fn of(buffer: &[u8]) -> InputBuffer {
        InputBuffer {
            start: buffer.as_ptr() as usize,
            len: buffer.len(),
        }
    }

    /// Where `bytes` start in the buffer, if they lie in it.
    fn offset_of(self, bytes: &[u8]) -> Option<usize> {
        let offset = (bytes.as_ptr() as usize).checked_sub(self.start)?;
        (offset + bytes.len() <= self.len).then_some(offset)
    }
}

impl<'a> Dispatch<'a> {
    /// The events of one connection (`peer`) at `now`, outside a read (no input buffer).
    pub(super) fn new(app: &'a mut App, peer: SocketAddr, now: Instant) -> Self {
        Dispatch {
            app,
            peer,
            now,
            input: None,
        }
    }
}

impl Dispatch<'_> {
    /// Runs a callback of the route's handler with a fresh context.
    ///
    /// A panic in the handler is caught here: it is logged once with its message and the
    /// connection is closed with 1011, while the loop and every other connection go on. The
    /// handler is called again for other connections afterwards. That is sound in Rust's sense
    /// (`AssertUnwindSafe`: no memory is left invalid by an unwind), but whatever the handler
    /// was changing when it panicked may be half done; like a poisoned lock that is used
    /// anyway, keeping its state consistent across a panic is the handler's part.
    pub(super) fn call(
        &mut self,
        id: ConnectionId,
        route: RouteId,
        open: Open<'_>,
        current: Current<'_>,
        callback: impl FnOnce(&mut dyn Handler, &mut Context<'_>),
    ) {
        let Open { out, attached } = open;
        let Route {
            path,
            handler,
            backpressure,
            ..
        } = &mut self.app.router.routes[route];
        let services = &mut self.app.services;
        let sent = &mut self.app.metrics.messages_sent;
        let peer = &self.peer;
        let run = AssertUnwindSafe(|| {
            let mut ctx = Context {
                id,
                route,
                path,
                peer,
                out: &mut *out,
                attached,
                backpressure,
                services,
                current,
                sent,
            };
            callback(handler.as_mut(), &mut ctx);
        });
        if let Err(panic) = std::panic::catch_unwind(run) {
            let what = panic_message(&*panic);
            error!(
                peer:% = self.peer, path = path.as_str(), id:% = id, code = 1011;
                "{} {path} handler panicked: {what}; closing {id} with 1011",
                self.peer
            );
            out.close(CloseCode::INTERNAL_ERROR, "internal error");
        }
    }
}

/// What a caught panic says: its message when it has one.
pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    (panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

impl ConnectionEvents for Dispatch<'_> {
    fn on_request(&mut self, _id: ConnectionId, request: &mut Request, upgrade: bool) -> Answer {
        let get = matches!(request.method(), "GET" | "HEAD");
        if !upgrade && get {
            if let Some(answer) = self.app.probe(request) {
                return answer;
            }
            if self.app.serve_metrics && request.path() == "/metrics" {
                return self.app.metrics_reply(request);
            }
        }
        // With their own address, the HTTP routes are served there and only there.
        let http_here = request.http_only() || !self.app.http_separate;
        let http_route = (self.app.router.http_route_for(request.path())).filter(|_| http_here);
        match http_route {
            Some(route) if !upgrade => return self.http_head(route, request),
            _ if request.http_only() => {
                return Answer::Refuse(HttpError::new(404, "only the HTTP API is served here"))
            }
            _ => {}
        }
        // Draining: the listener stays open for the window, but a new WebSocket would only be
        // closed again; 503 sends its client elsewhere (or back later) at once.
        if upgrade && self.app.stop.requested() != Stop::No {
            return Answer::Refuse(HttpError::new(503, "server draining"));
        }
        // The router calls the route's `Handler::on_upgrade`: a panic there is isolated like
        // one in any other callback, and the request answered 500.
        let (router, metrics) = (&mut self.app.router, &mut self.app.metrics);
        let auth = self.app.services.auth.as_deref();
        let authenticate = |request: &mut Request| authenticate(auth, request, metrics);
        let answer = || router.answer(request, upgrade, authenticate);
        match std::panic::catch_unwind(AssertUnwindSafe(answer)) {
            Ok(Answer::Upgrade {
                route,
                protocol,
                compression,
                attached,
            }) => match self.admit(attached) {
                Ok(attached) => Answer::Upgrade {
                    route,
                    protocol,
                    compression,
                    attached,
                },
                Err(error) => Answer::Refuse(error),
            },
            Ok(answer) => answer,
            Err(panic) => {
                let (peer, path) = (self.peer, request.path());
                error!(
                    peer:% = peer, path = path, status = 500;
                    "{peer} {path} on_upgrade panicked: {}; answering 500", panic_message(&*panic)
                );
                Answer::Refuse(HttpError::new(500, "internal error"))
            }
        }
    }

    fn on_http(
        &mut self,
        _id: ConnectionId,
        request: &Request,
        body: &[u8],
        keep_alive: bool,
    ) -> Vec<u8> {
        self.serve_http(request, body, keep_alive)
    }

    fn on_refused(&mut self, status: u16) {
        self.app.metrics.refused(status);
    }

    fn on_open(&mut self, id: ConnectionId, route: RouteId, open: Open<'_>) {
        let path = self.app.router.routes[route].path.as_str();
        let user = (open.attached.as_ref()).and_then(|a| a.identity.as_ref().map(|i| i.user()));
        match user {
            Some(user) => info!(
                peer:% = self.peer, path = path, id:% = id, user = user;
                "{} {path} open {id} user {user:?}", self.peer
            ),
            None => {
                info!(peer:% = self.peer, path = path, id:% = id; "{} {path} open {id}", self.peer)
            }
        }
        self.call(id, route, open, Current::None, |handler, ctx| {
            handler.on_open(ctx)
        });
    }

    fn on_message(
        &mut self,
        id: ConnectionId,
        route: RouteId,
        open: Open<'_>,
        message: Message<'_>,
        gathered: Option<&Arc<Vec<u8>>>,
    ) {
        self.app.metrics.messages_received += 1;
        let rate = (open.attached.as_mut()).and_then(|a| a.rate.as_mut());
        match rate.map_or(Allowance::Within, |rate| rate.take(self.now)) {
            Allowance::Within => {}
            Allowance::Over => {
                self.app.metrics.rate_limited += 1;
                return self.call(id, route, open, Current::None, |handler, ctx| {
                    handler.on_rate_limited(ctx, message)
                });
            }
            Allowance::Flood => {
                self.app.metrics.rate_limited += 1;
                open.out.close(CloseCode::POLICY_VIOLATION, "rate limit");
                return;
            }
        }
        let current = match gathered {
            Some(payload) => Current::Gathered(&message, payload),
            None => match self.input.and_then(|i| i.offset_of(message.as_bytes())) {
                Some(offset) => Current::InInput(&message, offset),
                None => Current::Borrowed(&message),
            },
        };
        self.call(id, route, open, current, |handler, ctx| {
            handler.on_message(ctx, message)
        });
    }

    fn on_close(&mut self, id: ConnectionId, route: RouteId, open: Open<'_>, close: Closed<'_>) {
        let Closed { code, reason, how } = close;
        self.app.metrics.closed(code.0);
        let path = &self.app.router.routes[route].path;
        info!(
            peer:% = self.peer, path = path.as_str(), id:% = id, code = code.0, reason = reason;
            "{} {path} closed {how} {code} {reason:?} {id}", self.peer
        );
        if let (Some(gate), Some(attached)) = (&self.app.gate, open.attached.as_mut()) {
            if std::mem::take(&mut attached.counted) {
                let user = attached.identity.as_ref().map(|i| i.user());
                gate.release(self.peer.ip(), user);
            }
        }
        self.call(id, route, open, Current::None, |handler, ctx| {
            handler.on_close(ctx, code, reason)
        });
        let topics = self.app.services.hub.unsubscribe_all(id);
        if let Some(presence) = &self.app.services.presence {
            presence.leave(&topics, id);
        }
        self.app.services.directory.release_all(id);
    }

    fn on_drain(&mut self, id: ConnectionId, route: RouteId, open: Open<'_>) {
        self.call(id, route, open, Current::None, |handler, ctx| {
            handler.on_drain(ctx)
        });
    }
}

/// Checks an upgrade's token, when the server checks tokens: from the `token` query parameter
/// (browsers cannot set headers on a WebSocket; the first one wins) or else `Authorization:
/// Bearer`. A valid one is
/// noted in the request; a bad one is refused 401 and counted, whether or not one is required.
fn authenticate(
    auth: Option<&Verifier>,
    request: &mut Request,
    metrics: &mut Metrics,
) -> Result<(), HttpError> {
    let Some(verifier) = auth else {
        return Ok(());
    };
    // RFC 7235 §2.1: the scheme is case-insensitive. An empty token is no token.
    let bearer = (request.header("Authorization"))
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, token)| token.trim().to_string());
    let query = request.query("token").map(|t| t.into_owned());
    let token = query
        .filter(|t| !t.is_empty())
        .or(bearer.filter(|t| !t.is_empty()));
    let identity = match token {
        None if verifier.required() => Err(TokenError::Missing),
        None => Ok(None),
        Some(token) => verifier.verify(&token).map(Some),
    };
    match identity {
        Ok(identity) => {
            request.set_identity(identity.map(Arc::new));
            Ok(())
        }
        Err(error) => {
            metrics.access_refused(error.code());
            Err(error.http_error())
        }
    }
}

impl Dispatch<'_> {
    /// Fills in what an accepted upgrade carries: when its token expires, its rate bucket,
    /// and its place in the per-IP and per-user counts (or 429 when there is none left).
    fn admit(
        &mut self,
        mut attached: Option<Box<Attached>>,
    ) -> Result<Option<Box<Attached>>, HttpError> {
        let identity = attached.as_ref().and_then(|a| a.identity.clone());
        let leeway = self.app.services.auth.as_ref().map(|auth| auth.leeway());
        let expires = identity
            .as_deref()
            .zip(leeway)
            .and_then(|(identity, leeway)| crate::auth::time_left(identity, leeway));
        if let Some(left) = expires {
            attached.get_or_insert_default().expires = Some(self.now + left);
        }
        if let Some(rate) = self.app.max_message_rate {
            attached.get_or_insert_default().rate = Some(RateBucket::new(rate, self.now));
        }
        if let Some(gate) = &self.app.gate {
            let user = identity.as_deref().map(|i| i.user());
            if let Err(limit) = gate.admit(self.peer.ip(), user) {
                self.app.metrics.access_refused(limit.code());
                return Err(limit.http_error());
            }
            attached.get_or_insert_default().counted = true;
        }
        Ok(attached)
    }
}

//! Plain HTTP routes on the loop ([`crate::http`]): whether a request head may have its body
//! read (the framing and size rules, RFC 9112 §6), and the reply the route's handler gives it.

use std::panic::AssertUnwindSafe;

use log::{debug, error, info};

use super::dispatch::{panic_message, Dispatch};
use crate::connection::Answer;
use crate::http::{HttpContext, HttpResponse};
use crate::protocol::handshake::{HttpError, Request};

impl Dispatch<'_> {
    /// A request head for HTTP route `route`: read its body, or refuse it. A body needs its
    /// length up front (`Content-Length`; 411 for chunked or missing on a method that sends
    /// one) and within `max_http_body` (413).
    pub(super) fn http_head(&mut self, _route: usize, request: &Request) -> Answer {
        let refuse =
            |status, reason: &str| Answer::Refuse(HttpError::new(status, reason.to_string()));
        if request.header("Transfer-Encoding").is_some() {
            return refuse(411, "send the body with a Content-Length, not chunked");
        }
        let lengths: Vec<&str> = request.headers_named("Content-Length").collect();
        let length = match lengths.as_slice() {
            [] if matches!(request.method(), "POST" | "PUT" | "PATCH") => {
                return refuse(411, "Content-Length required");
            }
            [] => 0,
            [one] => match one.parse::<usize>() {
                Ok(n) if one.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return refuse(400, "Content-Length is not a number"),
            },
            _ => return refuse(400, "more than one Content-Length"),
        };
        if length > self.app.max_http_body {
            let max = self.app.max_http_body;
            return refuse(413, &format!("the body is over {max} bytes"));
        }
        Answer::ReadBody { length }
    }

    /// The reply of the route serving `request` (whole, with `body`), written out. A panic in
    /// the handler is answered 500.
    pub(super) fn serve_http(
        &mut self,
        request: &Request,
        body: &[u8],
        keep_alive: bool,
    ) -> Vec<u8> {
        let peer = self.peer;
        let target = request.logged_target();
        // CORS (a page in a browser calling the route): only for origins --allow-origin names;
        // for any other, no CORS header, so the browser keeps the answer from the page.
        let cors = (request.origin())
            .filter(|origin| self.app.router.allowed_origins.iter().any(|o| o == origin))
            .map(str::to_string);
        let preflight = request.method() == "OPTIONS"
            && request.header("Access-Control-Request-Method").is_some();
        let response = match self.app.router.http_route_for(request.path()) {
            _ if preflight => match &cors {
                Some(_) => HttpResponse::new(204, "text/plain; charset=utf-8", "")
                    .header("Access-Control-Allow-Methods", "GET, POST")
                    .header(
                        "Access-Control-Allow-Headers",
                        "Authorization, Content-Type",
                    )
                    .header("Access-Control-Max-Age", "600"),
                None => HttpResponse::new(403, "text/plain; charset=utf-8", "origin not allowed\n")
                    .note("origin not allowed"),
            },
            None => HttpResponse::new(404, "text/plain; charset=utf-8", "no such path\n"),
            Some(route) => {
                let handler = &mut self.app.router.http_routes[route].handler;
                let mut ctx = HttpContext {
                    peer,
                    publisher: &self.app.publisher,
                    outbox: &mut self.app.services.outbox,
                    history: self.app.services.history.as_deref(),
                };
                let run = AssertUnwindSafe(|| handler.on_request(&mut ctx, request, body));
                match std::panic::catch_unwind(run) {
                    Ok(response) => response,
                    Err(panic) => {
                        error!(
                            peer:% = peer, path = target.as_str(), status = 500;
                            "{peer} {target} HTTP handler panicked: {}; answering 500",
                            panic_message(&*panic)
                        );
                        HttpResponse::json(500, r#"{"error":"internal error"}"#)
                    }
                }
            }
        };
        let (method, status) = (request.method(), response.status);
        let note = response.note.as_deref().unwrap_or("");
        if status >= 400 {
            self.app.metrics.refused(status);
            info!(
                peer:% = peer, path = target.as_str(), status = status, reason = note;
                "{peer} {method} {target} {status} {note}"
            );
        } else {
            debug!(
                peer:% = peer, path = target.as_str(), status = status;
                "{peer} {method} {target} {status} {note}"
            );
        }
        let response = match cors {
            Some(origin) => response
                .header("Access-Control-Allow-Origin", origin)
                .header("Vary", "Origin"),
            None => response,
        };
        let mut reply = write_response(&response, keep_alive);
        if method == "HEAD" {
            reply = crate::protocol::handshake::without_body(reply);
        }
        reply
    }
}

/// `response` as HTTP/1.1 bytes.
fn write_response(response: &HttpResponse, keep_alive: bool) -> Vec<u8> {
    let token = |name: &str| {
        !name.is_empty()
            && (name.bytes()).all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        response.status,
        crate::protocol::handshake::reason_phrase(response.status),
        response.content_type.replace(['\r', '\n'], ""),
        response.body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    for (name, value) in &response.headers {
        if token(name) && !value.contains(['\r', '\n']) {
            head += &format!("{name}: {value}\r\n");
        }
    }
    head += "\r\n";
    let mut out = head.into_bytes();
    out.extend_from_slice(&response.body);
    out
}

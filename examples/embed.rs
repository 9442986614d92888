//! Embedding wsloop: a handler with an origin check, subprotocol selection and per-connection
//! state, served next to the stock echo endpoint.
//!
//! Run: `cargo run --example embed`, then connect to ws://127.0.0.1:9002/count.

use std::collections::HashMap;

use wsloop::apps::Echo;
use wsloop::{CloseCode, ConnectionId, Context, Handler, HttpError, Message, Request, Server};

/// Counts each connection's messages and answers every text with its running count.
/// Offers the `count.v1` subprotocol; refuses browsers from foreign origins.
#[derive(Default)]
struct Counter {
    counts: HashMap<ConnectionId, u64>,
}

impl Handler for Counter {
    fn on_upgrade(&mut self, request: &Request) -> Result<Option<String>, HttpError> {
        match request.origin() {
            Some(origin) if !is_local_origin(origin) && origin != "null" => Err(HttpError {
                status: 403,
                reason: "origin not allowed",
            }),
            _ => Ok(request
                .protocols()
                .find(|p| *p == "count.v1")
                .map(str::to_string)),
        }
    }

    fn on_open(&mut self, ctx: &mut Context<'_>) {
        self.counts.insert(ctx.id(), 0);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        let count = self.counts.entry(ctx.id()).or_default();
        *count += 1;
        match message {
            Message::Text("bye") => ctx.close(CloseCode::NORMAL, "see you"),
            Message::Text(text) => {
                ctx.send_text(&format!("{count}: {text}"));
            }
            Message::Binary(_) => ctx.close(CloseCode::UNSUPPORTED_DATA, "text only"),
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, code: CloseCode, _reason: &str) {
        let count = self.counts.remove(&ctx.id()).unwrap_or(0);
        println!("{} left with code {code} after {count} messages", ctx.id());
    }
}

/// Whether a browser's `Origin` (RFC 6454: `scheme://host[:port]`, nothing after) names a page
/// served from this machine. The host is compared whole: a prefix check would let
/// `http://127.0.0.1.evil.example` in.
fn is_local_origin(origin: &str) -> bool {
    let Some(authority) =
        (origin.strip_prefix("http://")).or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

fn main() -> Result<(), wsloop::Error> {
    let server = Server::builder()
        .bind("127.0.0.1:9002")
        .route("/count", Counter::default())
        .route("/echo", Echo)
        .handle_signals(true)
        .build()?;
    println!("listening on ws://{}", server.local_addr());
    server.run()
}

#[cfg(test)]
mod tests {
    use super::is_local_origin;

    #[test]
    fn only_this_machines_pages_are_local() {
        for local in [
            "http://127.0.0.1",
            "http://127.0.0.1:8080",
            "https://localhost:9002",
            "http://[::1]:1",
        ] {
            assert!(is_local_origin(local), "{local}");
        }
        for foreign in [
            "http://127.0.0.1.evil.example",
            "http://127.0.0.1:80@evil.example",
            "http://localhost.evil.example:80",
            "http://evil.example/127.0.0.1",
            "ftp://127.0.0.1",
            "127.0.0.1",
        ] {
            assert!(!is_local_origin(foreign), "{foreign}");
        }
    }
}

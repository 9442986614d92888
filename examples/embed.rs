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
            Some(origin) if !origin.starts_with("http://127.0.0.1") && origin != "null" => {
                Err(HttpError {
                    status: 403,
                    reason: "origin not allowed",
                })
            }
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

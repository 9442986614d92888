//! Embedding wsloop: a handler with an origin check, subprotocol selection and per-connection
//! data (attached at the upgrade, read back in every callback), served next to the stock echo
//! endpoint.
//!
//! Run: `cargo run --example embed`, then connect to ws://127.0.0.1:9002/count.

use wsloop::apps::Echo;
use wsloop::{Accept, CloseCode, Context, Handler, HttpError, Message, Request, Server};

/// Counts each connection's messages and answers every text with its running count.
/// Offers the `count.v1` subprotocol; refuses browsers from foreign origins.
struct Counter;

/// What each connection carries: its messages so far.
struct Count(u64);

impl Handler for Counter {
    fn on_upgrade(&mut self, request: &Request) -> Result<Accept, HttpError> {
        if let Some(origin) = request.origin() {
            if !is_local_origin(origin) && origin != "null" {
                return Err(HttpError::new(403, "origin not allowed"));
            }
        }
        let accept = Accept::new().data(Count(0));
        Ok(match request.protocols().find(|p| *p == "count.v1") {
            Some(protocol) => accept.protocol(protocol),
            None => accept,
        })
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        let Some(Count(count)) = ctx.data_mut::<Count>() else {
            return;
        };
        *count += 1;
        let count = *count;
        match message {
            Message::Text("bye") => ctx.close(CloseCode::NORMAL, "see you"),
            Message::Text(text) => {
                ctx.send_text(&format!("{count}: {text}"));
            }
            Message::Binary(_) => ctx.close(CloseCode::UNSUPPORTED_DATA, "text only"),
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, code: CloseCode, _reason: &str) {
        let count = ctx.data::<Count>().map_or(0, |c| c.0);
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
        .route("/count", Counter)
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

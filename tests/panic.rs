//! A panicking handler: the connection it was serving is closed with 1011, and the loop, the
//! other connections and the handler itself go on.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use common::{client_frame, close_frame, RawClient, TestServer, TEXT};
use wsloop::{Config, Context, Handler, Message};

/// Echoes, except that "boom" panics mid-callback.
struct Fragile;

impl Handler for Fragile {
    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        if message == Message::Text("boom") {
            panic!("boom, as asked");
        }
        ctx.echo();
    }
}

#[test]
fn a_panic_closes_its_connection_with_1011_and_nothing_else() {
    let server = TestServer::with_routes(Config::default(), |b| b.route("/fragile", Fragile));
    let mut bystander = RawClient::upgrade(server.addr(), "/fragile");
    let mut victim = RawClient::upgrade(server.addr(), "/fragile");
    victim.send(&client_frame(true, TEXT, b"boom"));
    let close = victim.read_frame();
    assert_eq!(close.close_code(), 1011);
    assert_eq!(&close.payload[2..], b"internal error");
    victim.send(&close_frame(1011, b""));
    assert!(victim.read_to_eof().is_empty(), "nothing after the close");
    // The other connection and new ones are served by the same handler as before.
    bystander.send(&client_frame(true, TEXT, b"still here"));
    assert_eq!(bystander.read_frame().payload, b"still here");
    let mut newcomer = RawClient::upgrade(server.addr(), "/fragile");
    newcomer.send(&client_frame(true, TEXT, b"hello"));
    assert_eq!(newcomer.read_frame().payload, b"hello");
}

//! A handler's `on_upgrade` decides the handshake: it selects a subprotocol or refuses.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use common::{client_frame, upgrade_request, RawClient, TestServer, TEXT};
use wsloop::{Accept, Config, Context, Handler, HttpError, Message, Request};

/// Echo that speaks "chat" when offered, and only to one origin.
struct ChatOnly;

impl Handler for ChatOnly {
    fn on_upgrade(&mut self, request: &Request) -> Result<Accept, HttpError> {
        if request.origin().is_some_and(|o| o != "http://good.example") {
            return Err(HttpError::new(403, "origin not allowed"));
        }
        Ok(match request.protocols().find(|p| *p == "chat") {
            Some(chat) => Accept::new().protocol(chat),
            None => Accept::new(),
        })
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        ctx.send(message);
    }
}

fn server() -> TestServer {
    TestServer::with_routes(Config::default(), |builder| {
        builder.route("/chat", ChatOnly)
    })
}

#[test]
fn offered_subprotocol_is_selected_and_the_connection_works() {
    let server = server();
    let mut client = RawClient::connect(server.addr());
    let extra = "Sec-WebSocket-Protocol: superchat, chat\r\n";
    client.send(upgrade_request("/chat", extra).as_bytes());
    let head = client.read_head();
    assert_eq!(head.status, 101);
    assert_eq!(head.header("Sec-WebSocket-Protocol"), Some("chat"));
    client.send(&client_frame(true, TEXT, b"hi"));
    assert_eq!(client.read_frame().payload, b"hi");
}

#[test]
fn no_subprotocol_header_when_none_is_selected() {
    let server = server();
    let mut client = RawClient::connect(server.addr());
    let extra = "Sec-WebSocket-Protocol: superchat\r\n";
    client.send(upgrade_request("/chat", extra).as_bytes());
    let head = client.read_head();
    assert_eq!(head.status, 101);
    assert_eq!(head.header("Sec-WebSocket-Protocol"), None);
}

#[test]
fn bad_origin_is_refused_with_the_handlers_403() {
    let server = server();
    let mut client = RawClient::connect(server.addr());
    let extra = "Origin: http://evil.example\r\n";
    client.send(upgrade_request("/chat", extra).as_bytes());
    let response = client.read_response();
    assert_eq!(response.head.status, 403);
    assert_eq!(response.body, b"origin not allowed\n");
}

#[test]
fn good_origin_is_accepted() {
    let server = server();
    let mut client = RawClient::connect(server.addr());
    let extra = "Origin: http://good.example\r\n";
    client.send(upgrade_request("/chat", extra).as_bytes());
    assert_eq!(client.read_head().status, 101);
}

#[test]
fn only_allowed_origins_may_open_a_websocket() {
    let config = wsloop::Config::default().allowed_origins(vec!["https://good.example".into()]);
    let server = TestServer::new(config);
    let status = |extra: &str| {
        let mut client = RawClient::connect(server.addr());
        client.send(upgrade_request("/echo", extra).as_bytes());
        client.read_head().status
    };
    assert_eq!(status("Origin: https://good.example\r\n"), 101);
    assert_eq!(status("Origin: https://evil.example\r\n"), 403);
    assert_eq!(status(""), 101, "no Origin: not a browser, let through");
    let star = wsloop::Config::default().allowed_origins(vec!["*".into()]);
    assert!(star
        .validate()
        .unwrap_err()
        .to_string()
        .contains("exact origin"));
}

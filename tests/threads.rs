//! A server with two event loops (`threads(2)`): broadcast and chat behave as with one loop
//! for clients that landed on different loops.
//!
//! Every connection first gets a `{"type":"loop"}` event naming its loop (the [`Tagged`]
//! wrapper), so a test can hold one client on each loop; which loop the kernel picks is not
//! up to the test, so it connects until it has the one it wants (bounded).

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use common::chat::ChatClient;
use common::{client_frame, RawClient, TestServer, TEXT};
use serde_json::json;
use wsloop::apps::{Broadcast, Chat};
use wsloop::{Accept, CloseCode, Config, Context, Handler, HttpError, Message, Request};

/// Tells each new connection which loop it is on, then serves it with the inner handler.
struct Tagged<H>(H);

impl<H: Handler> Handler for Tagged<H> {
    fn on_upgrade(&mut self, request: &Request) -> Result<Accept, HttpError> {
        self.0.on_upgrade(request)
    }

    fn on_open(&mut self, ctx: &mut Context<'_>) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let tag = json!({"type": "loop", "loop": ctx.id().loop_index(), "ts": ts});
        ctx.send_text(&tag.to_string());
        self.0.on_open(ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        self.0.on_message(ctx, message);
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, code: CloseCode, reason: &str) {
        self.0.on_close(ctx, code, reason);
    }
}

fn two_loops() -> TestServer {
    let chat = Chat::default();
    TestServer::with_routes(Config::default(), move |builder| {
        builder
            .threads(2)
            .route_each("/broadcast", || Tagged(Broadcast))
            .route_each("/chat", move || Tagged(chat.clone()))
    })
}

/// A connection on `path` that landed on loop `wanted`, its tag read.
fn on_loop(addr: SocketAddr, path: &str, wanted: u64) -> RawClient {
    for _ in 0..200 {
        let mut client = RawClient::upgrade(addr, path);
        let tag: serde_json::Value = serde_json::from_slice(&client.read_frame().payload).unwrap();
        assert_eq!(tag["type"], "loop", "{tag}");
        if tag["loop"] == wanted {
            return client;
        }
    }
    panic!("200 connections and none on loop {wanted}: are there two loops?");
}

fn text(client: &mut RawClient) -> String {
    let frame = client.read_frame();
    assert_eq!(frame.opcode, TEXT, "{frame:?}");
    String::from_utf8(frame.payload).unwrap()
}

#[test]
fn broadcast_crosses_loops_in_order_and_exactly_once() {
    let server = two_loops();
    let mut a = on_loop(server.addr(), "/broadcast", 0);
    let mut b = on_loop(server.addr(), "/broadcast", 1);
    for i in 0..200 {
        a.send(&client_frame(true, TEXT, format!("a{i}").as_bytes()));
    }
    a.send(&client_frame(true, TEXT, b"end"));
    // In publish order, each once: a duplicate or a gap would break the sequence before "end".
    for i in 0..200 {
        assert_eq!(text(&mut b), format!("a{i}"));
    }
    assert_eq!(text(&mut b), "end");
    // The other way, and the sender never gets its own messages back.
    b.send(&client_frame(true, TEXT, b"from b"));
    assert_eq!(text(&mut a), "from b");
}

/// A chat client on loop `wanted`, not joined yet.
fn chat_on_loop(addr: SocketAddr, wanted: u64) -> ChatClient {
    ChatClient {
        raw: on_loop(addr, "/chat", wanted),
    }
}

#[test]
fn chat_names_messages_lists_and_leaves_span_loops() {
    let server = two_loops();
    let addr = server.addr();
    let mut alice = chat_on_loop(addr, 0);
    assert_eq!(alice.enter("alice", "room"), ["alice"]);

    // Names are unique across loops, case-insensitively.
    let mut bob = chat_on_loop(addr, 1);
    bob.request(json!({"type": "join", "name": "ALICE", "room": "room"}));
    bob.expect_error("name_taken");
    assert_eq!(bob.enter("bob", "room"), ["alice", "bob"]);
    alice.expect_joined("bob", "room");
    assert_eq!(alice.list(), ["alice", "bob"]);

    // Room messages, typing and private messages both ways.
    bob.request(json!({"type": "message", "text": "hi from loop 1"}));
    bob.expect_message("bob", "room", "hi from loop 1");
    alice.expect_message("bob", "room", "hi from loop 1");
    alice.request(json!({"type": "typing", "active": true}));
    let typing = bob.expect("typing");
    assert_eq!(
        (&typing["name"], &typing["active"]),
        (&json!("alice"), &json!(true))
    );
    alice.request(json!({"type": "pm", "to": "Bob", "text": "psst"}));
    let pm = bob.expect("pm");
    assert_eq!(
        (&pm["from"], &pm["text"]),
        (&json!("alice"), &json!("psst"))
    );
    alice.expect("pm"); // the sender's copy

    // Bob leaves: Alice on the other loop is told, and the name is free again.
    drop(bob);
    alice.expect_left("bob", "room");
    let mut bob_again = chat_on_loop(addr, 0);
    assert_eq!(bob_again.enter("Bob", "room"), ["alice", "Bob"]);
}

#[test]
fn one_handler_for_two_loops_is_refused_with_a_clear_error() {
    let error = wsloop::Server::builder()
        .bind("127.0.0.1:0")
        .threads(2)
        .route("/chat", Chat::default())
        .build()
        .unwrap_err();
    let shown = error.to_string();
    assert!(
        shown.contains("route /chat") && shown.contains("route_each"),
        "{shown}"
    );
}

/// A scrape answered by either loop counts both: 16 connections spread by the kernel all show
/// up (other loops' counts are refreshed once a second, so the scrape is repeated until then).
#[test]
fn metrics_sum_every_loop() {
    let server = TestServer::with_routes(Config::default().metrics(true), |builder| {
        builder.threads(2).route_each("/broadcast", || Broadcast)
    });
    let clients: Vec<RawClient> = (0..16)
        .map(|_| RawClient::upgrade(server.addr(), "/broadcast"))
        .collect();
    let deadline = std::time::Instant::now() + common::TIMEOUT;
    loop {
        let mut scrape = RawClient::connect(server.addr());
        scrape.send(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
        let body = String::from_utf8(scrape.read_response().body).unwrap();
        if body
            .lines()
            .any(|l| l == "wsloop_connections{path=\"/broadcast\"} 16")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never 16 open:\n{body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Whichever loop answers, a counter never goes back from one scrape to the next.
    let mut last = 0;
    for _ in 0..40 {
        let mut scrape = RawClient::connect(server.addr());
        scrape.send(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
        let body = String::from_utf8(scrape.read_response().body).unwrap();
        let accepted: u64 = (body.lines())
            .find_map(|l| l.strip_prefix("wsloop_connections_accepted_total "))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no accepted count in\n{body}"));
        assert!(accepted >= last, "accepted went from {last} to {accepted}");
        last = accepted;
    }
    drop(clients);
}

/// Shutdown stops every loop: clients on both get 1001, and `run` returns once all are done.
#[test]
fn shutdown_closes_connections_on_every_loop() {
    let server = two_loops();
    let mut a = on_loop(server.addr(), "/broadcast", 0);
    let mut b = on_loop(server.addr(), "/broadcast", 1);
    server.begin_shutdown();
    for client in [&mut a, &mut b] {
        let close = client.read_frame();
        assert_eq!(close.close_code(), 1001);
        client.send(&common::close_frame(1001, b""));
    }
    drop((a, b));
    server.wait().expect("run returns Ok");
}

/// Refuses by panicking: an upgrade whose query says `panic` makes `on_upgrade` panic.
struct PanicsOnUpgrade;

impl Handler for PanicsOnUpgrade {
    fn on_upgrade(&mut self, request: &Request) -> Result<Accept, HttpError> {
        if request.target().ends_with("?panic") {
            panic!("on_upgrade was asked to panic");
        }
        Ok(Accept::new())
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, _message: Message<'_>) {
        ctx.echo();
    }
}

/// A panic in `on_upgrade` is isolated like one in any callback: that request gets 500, and
/// both loops go on serving (a loop the panic had ended would take no more connections, so
/// no client would land on it). Twenty requests: the kernel spreads them over both loops.
#[test]
fn a_panic_in_on_upgrade_answers_500_and_every_loop_serves_on() {
    let server = TestServer::with_routes(Config::default(), |builder| {
        builder
            .threads(2)
            .route_each("/broadcast", || Tagged(Broadcast))
            .route_each("/echo", || Tagged(PanicsOnUpgrade))
    });
    for _ in 0..20 {
        let mut client = RawClient::connect(server.addr());
        client.send(common::upgrade_request("/echo?panic", "").as_bytes());
        let response = client.read_response();
        assert_eq!(response.head.status, 500, "{response:?}");
    }
    for wanted in [0, 1] {
        let mut client = on_loop(server.addr(), "/echo", wanted);
        client.send(&client_frame(true, common::TEXT, b"still here"));
        assert_eq!(text(&mut client), "still here");
    }
}

//! Topics and per-route backpressure through the public API: subscribe, unsubscribe and
//! publish across routes; a route that drops messages for a slow reader instead of closing it;
//! and `on_drain` once a backpressured connection catches up.
//!
//! A text command handler drives the topic tests: `sub T`, `unsub T`, `others T text` and
//! `all T text` (publish to T's other subscribers, or to all of them), each answered with
//! `ok N` (N: whether it changed anything, or how many receivers the publish went to).

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::time::{Duration, Instant};

use common::{client_frame, RawClient, TestServer, TEXT};
use wsloop::{Backpressure, Config, Context, Handler, Message, Publish, SendStatus, SlowConsumer};

struct Commands;

impl Handler for Commands {
    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        let Message::Text(text) = message else {
            return;
        };
        let mut words = text.splitn(3, ' ');
        let (verb, topic) = (words.next().unwrap(), words.next().unwrap_or(""));
        let body = words.next().unwrap_or("");
        let n = match verb {
            "sub" => usize::from(ctx.subscribe(topic)),
            "unsub" => usize::from(ctx.unsubscribe(topic)),
            "others" => ctx.publish(topic, Message::Text(body), Publish::ToOthers),
            "all" => ctx.publish(topic, Message::Text(body), Publish::ToAll),
            _ => return,
        };
        ctx.send_text(&format!("ok {n}"));
    }
}

fn say(client: &mut RawClient, command: &str) -> String {
    client.send(&client_frame(true, TEXT, command.as_bytes()));
    next_text(client)
}

fn next_text(client: &mut RawClient) -> String {
    let frame = client.read_frame();
    assert_eq!(frame.opcode, TEXT, "{frame:?}");
    String::from_utf8(frame.payload).unwrap()
}

/// Nothing arrives for `client` within a short wait.
fn quiet(client: &mut RawClient) {
    let deadline = Instant::now() + Duration::from_millis(200);
    assert_eq!(client.read_frame_by(deadline), None);
}

#[test]
fn publishes_reach_subscribers_on_any_route_until_they_leave() {
    let server = TestServer::with_routes(Config::default(), |builder| {
        builder.route("/a", Commands).route("/b", Commands)
    });
    let mut alice = RawClient::upgrade(server.addr(), "/a");
    let mut bob = RawClient::upgrade(server.addr(), "/b");
    let mut carol = RawClient::upgrade(server.addr(), "/a");
    assert_eq!(say(&mut alice, "sub news"), "ok 1");
    assert_eq!(say(&mut alice, "sub news"), "ok 0", "subscribed twice");
    assert_eq!(say(&mut bob, "sub news"), "ok 1");

    // To the others: bob (another route) gets it, alice does not, carol never subscribed.
    assert_eq!(say(&mut alice, "others news hello"), "ok 1");
    assert_eq!(next_text(&mut bob), "hello");
    // To all: alice's own copy comes before her answer, in call order.
    assert_eq!(say(&mut alice, "all news again"), "again");
    assert_eq!(next_text(&mut alice), "ok 2");
    assert_eq!(next_text(&mut bob), "again");
    // A non-subscriber may publish, and is never a receiver.
    assert_eq!(say(&mut carol, "all news from carol"), "ok 2");
    assert_eq!(next_text(&mut alice), "from carol");
    assert_eq!(next_text(&mut bob), "from carol");
    quiet(&mut carol);

    assert_eq!(say(&mut bob, "unsub news"), "ok 1");
    assert_eq!(say(&mut carol, "all news after bob left"), "ok 1");
    assert_eq!(next_text(&mut alice), "after bob left");
    quiet(&mut bob);

    // A closed connection leaves its topics.
    drop(alice);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let receivers = say(&mut carol, "all news anyone");
        if receivers == "ok 0" {
            break;
        }
        assert!(Instant::now() < deadline, "alice never left the topic");
    }
}

/// Relays every message to every other connection on the route, whatever it costs them.
struct Relay;

impl Handler for Relay {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.subscribe("all");
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        ctx.publish("all", message, Publish::ToOthers);
    }
}

#[test]
fn a_route_that_drops_keeps_its_slow_reader_open() {
    let policy = Backpressure::new(64 << 10).slow_consumer(SlowConsumer::DropMessages);
    let server = TestServer::with_routes(Config::default(), |builder| {
        builder.route_with("/relay", Relay, policy)
    });
    let mut sleeper = RawClient::upgrade(server.addr(), "/relay");
    let mut sender = RawClient::upgrade(server.addr(), "/relay");
    // 1000 x 16 KiB to a reader that reads nothing: far past 64 KiB and the socket buffers.
    let message = vec![b'x'; 16 << 10];
    let mut burst = Vec::new();
    for _ in 0..1000 {
        burst.extend(client_frame(true, TEXT, &message));
    }
    sender.send(&burst);
    sender.send(&client_frame(true, TEXT, b"last"));
    // Some messages were dropped for the sleeper, but it was not closed: once it reads, what
    // was queued arrives, then everything sent after it caught up.
    let mut received = 0;
    loop {
        let frame = sleeper.read_frame();
        assert_eq!(frame.opcode, TEXT, "the sleeper was closed: {frame:?}");
        if frame.payload == b"last" {
            break;
        }
        received += 1;
    }
    assert!(received < 1000, "nothing was dropped ({received} arrived)");
    sender.send(&client_frame(true, TEXT, b"after"));
    assert_eq!(next_text(&mut sleeper), "after");
}

/// Sends 64 KiB messages until the connection is backpressured, then says so when it drains.
struct Flood;

impl Handler for Flood {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        let chunk = vec![b'f'; 64 << 10];
        let mut sent = 0;
        while ctx.send_binary(&chunk) != SendStatus::Backpressured {
            sent += 1;
            assert!(sent < 1000, "never backpressured");
        }
    }

    fn on_message(&mut self, _ctx: &mut Context<'_>, _message: Message<'_>) {}

    fn on_drain(&mut self, ctx: &mut Context<'_>) {
        ctx.send_text("drained");
    }
}

#[test]
fn on_drain_follows_backpressure_once_the_reader_catches_up() {
    let policy = Backpressure::new(4 << 20)
        .high_watermark(256 << 10)
        .low_watermark(0);
    let server = TestServer::with_routes(Config::default(), |builder| {
        builder.route_with("/flood", Flood, policy)
    });
    let mut client = RawClient::upgrade(server.addr(), "/flood");
    let mut floods = 0;
    loop {
        let frame = client.read_frame();
        if frame.opcode == TEXT {
            assert_eq!(frame.payload, b"drained");
            break;
        }
        assert_eq!(frame.payload.len(), 64 << 10);
        floods += 1;
    }
    // The high watermark was reached before the drain was reported.
    assert!(floods * (64 << 10) >= 256 << 10, "{floods} floods");
}

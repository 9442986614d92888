//! The `/pubsub` endpoint with history: acknowledged commands, publications with offsets,
//! recovery after a reconnect (exactly what was missed, in order, none twice), what cannot be
//! recovered, and every bad input answered with an error that keeps the connection.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use common::pubsub::Client;
use common::{client_frame, TestServer, BINARY, TEXT};
use serde_json::{json, Value};
use wsloop::apps::PubSub;
use wsloop::{Config, HistoryOptions};

fn server(history: HistoryOptions) -> TestServer {
    TestServer::with_routes(Config::default(), |builder| {
        builder.route("/pubsub", PubSub).history(history)
    })
}

fn offsets(publications: &Value) -> Vec<u64> {
    publications
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].as_u64().unwrap())
        .collect()
}

#[test]
fn publications_carry_offsets_and_every_command_is_acknowledged() {
    let server = server(HistoryOptions::default());
    let mut a = Client::connect(server.addr());
    let mut b = Client::connect(server.addr());
    let subscribed = a.ask(json!({"type": "subscribe", "channel": "news"}), 1);
    assert_eq!(subscribed["type"], "subscribed");
    assert_eq!(
        (
            subscribed["offset"].as_u64(),
            subscribed["publications"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    let published = b.publish("news", json!({"headline": "hi", "n": 1.50}), 2);
    assert_eq!(published["offset"], 1);
    assert_eq!(
        published["epoch"],
        subscribed["epoch"]
            .as_str()
            .map_or(published["epoch"].clone(), |_| published["epoch"].clone())
    );
    let publication = a.next();
    assert_eq!(publication["type"], "publication");
    assert_eq!(
        (
            publication["channel"].as_str(),
            publication["offset"].as_u64()
        ),
        (Some("news"), Some(1))
    );
    assert_eq!(publication["data"], json!({"headline": "hi", "n": 1.50}));
    // The publisher gets its own publication too once it subscribes; ids may be strings.
    let reply = b.ask(json!({"type": "subscribe", "channel": "news"}), 3);
    assert_eq!(reply["offset"], 1);
    a.publish("news", json!("second"), 4);
    assert_eq!(b.next()["offset"], 2);
    assert_eq!(a.next()["offset"], 2);
    let reply = a.ask(
        json!({"type": "unsubscribe", "channel": "news", "id": "x"}),
        5,
    );
    assert_eq!(reply["type"], "unsubscribed");
    b.publish("news", json!(3), 6);
    assert_eq!(b.next()["data"], 3);
    a.publish("other", json!(null), 7);
    assert_eq!(
        a.ask(json!({"type": "history", "channel": "news", "limit": 2}), 8)["publications"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "a did not get the third: it left"
    );
}

/// The test: a subscriber disconnects, 1,000 messages are published, it subscribes
/// again with its last position and receives exactly those 1,000, in order, none twice
/// (reply pages and `history` for the rest).
#[test]
fn a_subscriber_that_comes_back_gets_exactly_what_it_missed() {
    let server = server(HistoryOptions::default());
    let mut subscriber = Client::connect(server.addr());
    let reply = subscriber.ask(json!({"type": "subscribe", "channel": "feed"}), 1);
    let mut publisher = Client::connect(server.addr());
    publisher.publish("feed", json!("before"), 1);
    let first = subscriber.next();
    let (seen, epoch) = (first["offset"].as_u64().unwrap(), first["epoch"].clone());
    assert_eq!(seen, 1);
    assert!(
        reply["epoch"] == "" || reply["epoch"] == epoch,
        "{reply} {first}"
    );
    drop(subscriber);
    let payload = "x".repeat(1000); // 1,000 x 1 KB: more than one reply holds
    for n in 0..1000 {
        publisher
            .send(json!({"type": "publish", "channel": "feed", "data": {"n": n, "pad": payload}}));
    }
    for _ in 0..1000 {
        assert_eq!(publisher.next()["type"], "published");
    }
    let mut back = Client::connect(server.addr());
    let since = json!({"offset": seen, "epoch": epoch});
    let reply = back.ask(
        json!({"type": "subscribe", "channel": "feed", "since": since}),
        2,
    );
    assert_eq!(reply["recovered"], true, "{}", reply["reason"]);
    let mut got = offsets(&reply["publications"]);
    let mut more = reply["more"].as_bool().unwrap();
    assert!(more, "1 MB does not fit one reply");
    let mut id = 3;
    while more {
        let last = *got.last().unwrap();
        let since = json!({"offset": last, "epoch": epoch});
        let page = back.ask(
            json!({"type": "history", "channel": "feed", "since": since}),
            id,
        );
        assert_eq!(page["type"], "history", "{page}");
        got.extend(offsets(&page["publications"]));
        more = page["more"].as_bool().unwrap();
        id += 1;
    }
    assert_eq!(got, (2..=1001).collect::<Vec<u64>>());
    // Live again: the next publication follows on.
    publisher.publish("feed", json!("after"), 9999);
    assert_eq!(back.next()["offset"], 1002);
}

#[test]
fn what_is_no_longer_kept_is_not_recovered_and_the_client_is_told_why() {
    let server = server(HistoryOptions::default().size(10));
    let mut publisher = Client::connect(server.addr());
    for n in 0..30 {
        publisher.publish("small", json!(n), n);
    }
    let epoch = publisher.ask(
        json!({"type": "history", "channel": "small", "limit": 1}),
        100,
    )["epoch"]
        .clone();
    let mut back = Client::connect(server.addr());
    let reply = back.ask(
        json!({"type": "subscribe", "channel": "small", "since": {"offset": 5, "epoch": epoch}}),
        1,
    );
    assert_eq!(
        (reply["recovered"].as_bool(), reply["reason"].as_str()),
        (Some(false), Some("no longer kept"))
    );
    assert_eq!(reply["offset"], 30, "the current position comes with it");
    let reply = back.ask(
        json!({"type": "history", "channel": "small", "since": {"offset": 25, "epoch": "other"}}),
        2,
    );
    assert_eq!(
        (reply["code"].as_str(), reply["offset"].as_u64()),
        (Some("not_recovered"), Some(30))
    );
    let reply = back.ask(
        json!({"type": "history", "channel": "small", "since": {"offset": 31, "epoch": epoch}}),
        3,
    );
    assert_eq!(reply["reason"], "offset ahead of the stream");
    // Without since: the latest, oldest first.
    let latest = back.ask(
        json!({"type": "history", "channel": "small", "limit": 3}),
        4,
    );
    assert_eq!(offsets(&latest["publications"]), [28, 29, 30]);
}

#[test]
fn bad_commands_get_an_error_with_their_id_and_the_connection_stays() {
    let server = server(HistoryOptions::default());
    let mut c = Client::connect(server.addr());
    let long = "c".repeat(256);
    let cases = [
        (
            json!({"type": "subscribe", "channel": long}),
            "bad_channel",
            "at most 255 bytes",
        ),
        (
            json!({"type": "subscribe", "channel": "a\u{7}b"}),
            "bad_channel",
            "control",
        ),
        (
            json!({"type": "publish", "channel": "/chat:lobby", "data": 1}),
            "bad_channel",
            "server's own",
        ),
        (
            json!({"type": "subscribe"}),
            "bad_request",
            "missing field \"channel\"",
        ),
        (
            json!({"type": "publish", "channel": "x"}),
            "bad_request",
            "missing field \"data\"",
        ),
        (
            json!({"type": "history", "channel": "x", "limit": 5000}),
            "bad_request",
            "over the cap of 1000",
        ),
        (
            json!({"type": "history", "channel": "x", "limit": -1}),
            "bad_request",
            "whole number",
        ),
        (
            json!({"type": "subscribe", "channel": "x", "since": {"offset": "7"}}),
            "bad_request",
            "\"since\"",
        ),
        (
            json!({"type": "shout"}),
            "bad_request",
            "unknown type \"shout\"",
        ),
        (
            json!({"type": "unsubscribe", "channel": "x"}),
            "not_subscribed",
            "not subscribed",
        ),
    ];
    for (n, (command, code, says)) in cases.into_iter().enumerate() {
        let (got_code, message) = c.error(command.clone(), n as u64);
        assert_eq!(got_code, code, "{command}: {message}");
        assert!(message.contains(says), "{command}: {message}");
    }
    c.ask(json!({"type": "subscribe", "channel": "x"}), 50);
    assert_eq!(
        c.error(json!({"type": "subscribe", "channel": "x"}), 51).0,
        "already_subscribed"
    );
    // Not JSON, or binary: an error without an id, and the connection stays.
    c.0.send(&client_frame(true, TEXT, b"{not json"));
    assert_eq!(c.next()["code"], "bad_request");
    c.0.send(&client_frame(true, BINARY, b"\x00\x01"));
    assert_eq!(c.next()["code"], "bad_request");
    c.publish("x", json!("still here"), 52);
    assert_eq!(c.next()["data"], "still here");
}

#[test]
fn without_history_publications_have_no_offset_and_recovery_says_so() {
    let server = TestServer::with_routes(Config::default(), |b| b.route("/pubsub", PubSub));
    let mut c = Client::connect(server.addr());
    c.ask(json!({"type": "subscribe", "channel": "live"}), 1);
    let ack = c.publish("live", json!(1), 2);
    assert!(ack.get("offset").is_none(), "{ack}");
    let publication = c.next();
    assert!(publication.get("offset").is_none(), "{publication}");
    let mut d = Client::connect(server.addr());
    let reply = d.ask(
        json!({"type": "subscribe", "channel": "live", "since": {"offset": 1, "epoch": "e"}}),
        3,
    );
    assert_eq!(reply["recovered"], false);
}

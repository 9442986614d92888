//! Chat rooms keep history: a joiner gets the room's last events, a user who comes back with
//! the last position seen gets exactly what was missed (messages, joins, leaves), and typing
//! indicators are never kept.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use common::chat::ChatClient;
use common::TestServer;
use serde_json::{json, Value};
use wsloop::apps::Chat;
use wsloop::{Config, HistoryOptions};

fn server(joiners_get: usize) -> TestServer {
    TestServer::with_routes(Config::default(), move |builder| {
        builder
            .route("/chat", Chat::with_history(joiners_get))
            .history(HistoryOptions::default().topics(|topic| topic.starts_with("/chat:")))
    })
}

/// (type, offset, text or name) of each event in a history.
fn events(history: &Value) -> Vec<(String, u64, String)> {
    let events = history["events"].as_array().expect("events");
    events
        .iter()
        .map(|e| {
            let what = e["text"].as_str().or(e["name"].as_str()).unwrap_or("?");
            (
                e["type"].as_str().unwrap().into(),
                e["offset"].as_u64().unwrap(),
                what.into(),
            )
        })
        .collect()
}

#[test]
fn a_user_who_comes_back_gets_exactly_what_was_missed() {
    let server = server(50);
    let mut alice = ChatClient::join(server.addr(), "alice", "lobby");
    let mut bob = ChatClient::join(server.addr(), "bob", "lobby");
    alice.expect_joined("bob", "lobby");
    bob.request(json!({"type": "message", "text": "one"}));
    bob.expect("message");
    let seen = alice.expect("message");
    assert_eq!(seen["text"], "one");
    let since = json!({"offset": seen["offset"], "epoch": seen["epoch"]});
    drop(alice);
    bob.expect_left("alice", "lobby");
    for text in ["two", "three"] {
        bob.request(json!({"type": "message", "text": text}));
        bob.expect("message");
    }
    bob.request(json!({"type": "typing", "active": true})); // never kept

    let mut back = ChatClient::connect(server.addr());
    back.request(json!({"type": "join", "name": "alice", "room": "lobby", "since": since}));
    let history = back.expect_history("lobby");
    assert_eq!(history["recovered"], true, "{history}");
    let first = seen["offset"].as_u64().unwrap() + 1;
    assert_eq!(
        events(&history),
        [
            ("left".into(), first, "alice".into()),
            ("message".into(), first + 1, "two".into()),
            ("message".into(), first + 2, "three".into()),
        ]
    );
    back.expect_joined("alice", "lobby");
    back.expect("users");
}

#[test]
fn a_joiner_gets_the_rooms_latest_events_and_typing_is_not_among_them() {
    let server = server(3);
    let mut bob = ChatClient::join(server.addr(), "bob", "den");
    for text in ["a", "b", "c", "d"] {
        bob.request(json!({"type": "message", "text": text}));
        bob.request(json!({"type": "typing", "active": false}));
        bob.expect("message");
    }
    let mut carol = ChatClient::connect(server.addr());
    carol.request(json!({"type": "join", "name": "carol", "room": "den"}));
    let history = carol.expect_history("den");
    assert!(
        history.get("recovered").is_none(),
        "nothing was asked: {history}"
    );
    let texts: Vec<String> = events(&history).into_iter().map(|(_, _, t)| t).collect();
    assert_eq!(texts, ["b", "c", "d"]);
    carol.expect_joined("carol", "den");
    carol.expect("users");
    // More on request, from a position.
    let since = json!({"offset": 1, "epoch": history["epoch"]});
    carol.request(json!({"type": "history", "since": since, "limit": 2}));
    let page = carol.expect_history("den");
    assert_eq!(
        events(&page).iter().map(|e| e.1).collect::<Vec<_>>(),
        [2, 3]
    );
    assert_eq!(page["more"], true);
}

#[test]
fn a_position_that_cannot_be_served_gets_the_latest_events_and_says_why() {
    let server = server(2);
    let mut bob = ChatClient::join(server.addr(), "bob", "lobby");
    bob.request(json!({"type": "message", "text": "hello"}));
    bob.expect("message");
    let mut carol = ChatClient::connect(server.addr());
    let since = json!({"offset": 1, "epoch": "elsewhere"});
    carol.request(json!({"type": "join", "name": "carol", "room": "lobby", "since": since}));
    let history = carol.expect_history("lobby");
    assert_eq!(
        (history["recovered"].as_bool(), history["reason"].as_str()),
        (Some(false), Some("epoch changed"))
    );
    let texts: Vec<String> = events(&history).into_iter().map(|(_, _, t)| t).collect();
    assert_eq!(
        texts,
        ["bob", "hello"],
        "the latest two: bob's join and message"
    );
}

//! Refused `/chat` requests: each is an `error` event with a code, and the connection stays
//! open (a valid request afterwards is answered).

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use common::chat::{chat_server, ChatClient};
use serde_json::json;

#[test]
fn taken_name_is_refused_case_insensitively_and_another_name_works() {
    let server = chat_server();
    let mut alice = ChatClient::join(server.addr(), "Alice", "lobby");
    let mut other = ChatClient::connect(server.addr());
    for name in ["Alice", "alice", "ALICE"] {
        other.request(json!({"type": "join", "name": name}));
        other.expect_error("name_taken");
    }
    // Also from another room: names are server-wide.
    other.request(json!({"type": "join", "name": "alice", "room": "den"}));
    other.expect_error("name_taken");
    assert_eq!(other.enter("bob", "lobby"), ["Alice", "bob"]);
    alice.expect_joined("bob", "lobby");
}

#[test]
fn bad_names_are_refused() {
    let server = chat_server();
    let mut client = ChatClient::connect(server.addr());
    let too_long = "x".repeat(33);
    for name in [
        "",
        too_long.as_str(),
        "bo\u{7}b",
        "tab\there",
        " bob",
        "bob ",
    ] {
        client.request(json!({"type": "join", "name": name}));
        client.expect_error("bad_name");
    }
    // The limit is 32 characters, not bytes: 32 two-byte characters are fine.
    let longest = "é".repeat(32);
    let names = client.enter(&longest, "lobby");
    assert_eq!(names, [longest]);
}

#[test]
fn requests_before_join_are_refused_with_not_joined() {
    let server = chat_server();
    let mut client = ChatClient::connect(server.addr());
    client.request(json!({"type": "message", "text": "hello?"}));
    client.expect_error("not_joined");
    client.request(json!({"type": "list"}));
    client.expect_error("not_joined");
    assert_eq!(client.enter("late", "lobby"), ["late"]);
}

#[test]
fn malformed_requests_are_bad_request_and_the_connection_stays_open() {
    let server = chat_server();
    let mut client = ChatClient::connect(server.addr());
    for text in [
        "hello",                          // not JSON
        "[1, 2]",                         // JSON, not an object
        r#"{"type": "dance"}"#,           // unknown type
        r#"{"name": "alice"}"#,           // no type
        r#"{"type": "join"}"#,            // missing field
        r#"{"type": "join", "name": 7}"#, // wrong field type
    ] {
        client.send_text(text);
        client.expect_error("bad_request");
    }
    client.send_binary(br#"{"type": "join", "name": "alice"}"#);
    client.expect_error("bad_request");
    assert_eq!(client.enter("alice", "lobby"), ["alice"]);
}

#[test]
fn text_over_4096_bytes_is_bad_request() {
    let server = chat_server();
    let mut alice = ChatClient::join(server.addr(), "alice", "lobby");
    let mut bob = ChatClient::join(server.addr(), "bob", "lobby");
    alice.expect_joined("bob", "lobby");

    // Bytes, not characters: 2049 characters, 4097 bytes.
    let over = format!("a{}", "é".repeat(2048));
    assert_eq!(over.len(), 4097);
    alice.request(json!({"type": "message", "text": over}));
    alice.expect_error("bad_request");
    alice.request(json!({"type": "pm", "to": "bob", "text": over}));
    alice.expect_error("bad_request");
    bob.assert_nothing_pending();

    // Exactly 4096 bytes goes through.
    let longest = "é".repeat(2048);
    alice.request(json!({"type": "message", "text": longest}));
    alice.expect_message("alice", "lobby", &longest);
    bob.expect_message("alice", "lobby", &longest);
}

#[test]
fn bad_requests_say_plainly_what_is_wrong() {
    let server = chat_server();
    let mut client = ChatClient::connect(server.addr());
    for (text, says) in [
        (
            r#"{"type": "foo"}"#,
            r#"unknown type "foo"; expected one of join, message, pm, typing, room, list, history, refresh"#,
        ),
        (r#"{"type": "join"}"#, r#"missing field "name""#),
        (
            r#"{"type": "join", "name": "a", "since": {"offset": -1, "epoch": "e"}}"#,
            r#"field "since" must be {"offset": a whole number, "epoch": a string}"#,
        ),
        (
            r#"{"type": "history", "limit": 5000}"#,
            r#"field "limit" must be a whole number from 1 to 1000"#,
        ),
        (
            r#"{"type": "join", "name": 7}"#,
            r#"field "name" must be a string"#,
        ),
        (
            "hello",
            r#"not JSON: a request is a JSON object such as {"type":"message","text":"hi"}"#,
        ),
    ] {
        client.send_text(text);
        let error = client.expect("error");
        assert_eq!(error["code"], "bad_request", "{error}");
        assert_eq!(error["message"], says, "{error}");
    }
    client.enter("alice", "lobby");
    client.request(json!({"type": "message"}));
    let error = client.expect("error");
    assert_eq!(error["message"], r#"missing field "text""#, "{error}");
}

#[test]
fn blank_text_is_bad_request() {
    let server = chat_server();
    let mut alice = ChatClient::join(server.addr(), "alice", "lobby");
    let mut bob = ChatClient::join(server.addr(), "bob", "lobby");
    alice.expect_joined("bob", "lobby");
    for blank in ["", " ", "  \t \n", "\u{3000}"] {
        alice.request(json!({"type": "message", "text": blank}));
        let error = alice.expect("error");
        assert_eq!(error["code"], "bad_request", "{error}");
        assert!(
            error["message"].as_str().unwrap().contains("non-space"),
            "{error}"
        );
        alice.request(json!({"type": "pm", "to": "bob", "text": blank}));
        alice.expect_error("bad_request");
    }
    bob.assert_nothing_pending();
    // Spaces around a word are fine, and kept.
    alice.request(json!({"type": "message", "text": " hi "}));
    alice.expect_message("alice", "lobby", " hi ");
    bob.expect_message("alice", "lobby", " hi ");
}

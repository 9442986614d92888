//! The `/chat` endpoint: joining, room messages, private messages, typing, rooms, lists and
//! leaving. Refused requests are in `chat_errors.rs`.
//!
//! "X got nothing" is checked with [`ChatClient::assert_nothing_pending`], after a client that
//! did receive the event proved the request was handled.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use common::chat::{chat_server, ChatClient};
use common::close_frame;
use serde_json::json;

#[test]
fn joiner_gets_joined_then_users_and_the_room_hears_of_it() {
    let server = chat_server();
    let mut alice = ChatClient::connect(server.addr());
    assert_eq!(alice.enter("alice", "lobby"), ["alice"]);
    let mut bob = ChatClient::connect(server.addr());
    assert_eq!(bob.enter("bob", "lobby"), ["alice", "bob"]);
    alice.expect_joined("bob", "lobby");

    // A join without a room enters the lobby.
    let mut dave = ChatClient::connect(server.addr());
    dave.request(json!({"type": "join", "name": "dave"}));
    dave.expect_history("lobby");
    dave.expect_joined("dave", "lobby");
    assert_eq!(
        common::chat::names(&dave.expect("users")),
        ["alice", "bob", "dave"]
    );
    alice.expect_joined("dave", "lobby");
    bob.expect_joined("dave", "lobby");

    // Another room's join is not announced in the lobby, nor are lobby members listed there.
    let mut carol = ChatClient::connect(server.addr());
    assert_eq!(carol.enter("carol", "den"), ["carol"]);
    alice.assert_nothing_pending();
    bob.assert_nothing_pending();
}

#[test]
fn message_reaches_the_whole_room_including_the_sender_and_no_other_room() {
    let server = chat_server();
    let mut alice = ChatClient::join(server.addr(), "alice", "lobby");
    let mut bob = ChatClient::join(server.addr(), "bob", "lobby");
    alice.expect_joined("bob", "lobby");
    let mut carol = ChatClient::join(server.addr(), "carol", "den");

    alice.request(json!({"type": "message", "text": "hi, κόσμε"}));
    alice.expect_message("alice", "lobby", "hi, κόσμε");
    bob.expect_message("alice", "lobby", "hi, κόσμε");
    carol.assert_nothing_pending();

    carol.request(json!({"type": "message", "text": "anyone?"}));
    carol.expect_message("carol", "den", "anyone?");
    alice.assert_nothing_pending();
    bob.assert_nothing_pending();
}

#[test]
fn pm_reaches_the_recipient_in_any_room_and_the_sender_only() {
    let server = chat_server();
    let mut alice = ChatClient::join(server.addr(), "alice", "lobby");
    let mut bob = ChatClient::join(server.addr(), "Bob", "den");
    let mut carol = ChatClient::join(server.addr(), "carol", "lobby");
    alice.expect_joined("carol", "lobby");

    // Names are looked up case-insensitively; the event names the recipient as it joined.
    alice.request(json!({"type": "pm", "to": "bob", "text": "psst"}));
    let expected = json!({"type": "pm", "from": "alice", "to": "Bob", "text": "psst"});
    for client in [&mut bob, &mut alice] {
        let mut event = client.expect("pm");
        event.as_object_mut().unwrap().remove("ts");
        assert_eq!(event, expected);
    }
    carol.assert_nothing_pending();

    alice.request(json!({"type": "pm", "to": "zed", "text": "hello?"}));
    alice.expect_error("unknown_user");
    bob.assert_nothing_pending();
    carol.assert_nothing_pending();
}

#[test]
fn typing_goes_to_the_others_in_the_room_not_the_sender() {
    let server = chat_server();
    let mut alice = ChatClient::join(server.addr(), "alice", "lobby");
    let mut bob = ChatClient::join(server.addr(), "bob", "lobby");
    alice.expect_joined("bob", "lobby");
    let mut dave = ChatClient::join(server.addr(), "dave", "den");

    for active in [true, false] {
        alice.request(json!({"type": "typing", "active": active}));
        let event = bob.expect("typing");
        assert_eq!(
            (&event["name"], &event["active"]),
            (&json!("alice"), &json!(active))
        );
        alice.assert_nothing_pending();
        dave.assert_nothing_pending();
    }
}

#[test]
fn switching_rooms_tells_both_rooms_and_moves_the_messages() {
    let server = chat_server();
    let mut alice = ChatClient::join(server.addr(), "alice", "lobby");
    let mut bob = ChatClient::join(server.addr(), "bob", "lobby");
    alice.expect_joined("bob", "lobby");
    let mut carol = ChatClient::join(server.addr(), "carol", "den");

    alice.request(json!({"type": "room", "room": "den"}));
    alice.expect_left("alice", "lobby");
    alice.expect_history("den");
    alice.expect_joined("alice", "den");
    let users = alice.expect("users");
    assert_eq!(users["room"], "den");
    assert_eq!(common::chat::names(&users), ["alice", "carol"]);
    bob.expect_left("alice", "lobby");
    carol.expect_joined("alice", "den");

    alice.request(json!({"type": "message", "text": "moved"}));
    alice.expect_message("alice", "den", "moved");
    carol.expect_message("alice", "den", "moved");
    assert_eq!(
        bob.list(),
        ["bob"],
        "bob's lobby still lists alice, or she spoke there"
    );
}

#[test]
fn list_gives_the_room_sorted_by_name() {
    let server = chat_server();
    let mut carol = ChatClient::join(server.addr(), "carol", "lobby");
    let _alice = ChatClient::join(server.addr(), "alice", "lobby");
    let _bob = ChatClient::join(server.addr(), "Bob", "lobby");
    let _aaron = ChatClient::join(server.addr(), "aaron", "den");
    carol.expect_joined("alice", "lobby");
    carol.expect_joined("Bob", "lobby");
    // Sorted ignoring case, as people read names (a byte order would put "Bob" first).
    assert_eq!(carol.list(), ["alice", "Bob", "carol"]);
}

#[test]
fn closing_leaves_the_room_and_frees_the_name() {
    let server = chat_server();
    let mut alice = ChatClient::join(server.addr(), "alice", "lobby");
    let mut bob = ChatClient::join(server.addr(), "bob", "lobby");
    alice.expect_joined("bob", "lobby");

    bob.raw.send(&close_frame(1000, b"bye"));
    bob.raw.expect_close(1000);
    alice.expect_left("bob", "lobby");

    let _bob_again = ChatClient::join(server.addr(), "bob", "lobby");
    alice.expect_joined("bob", "lobby");
}

#[test]
fn dropped_connection_leaves_the_room_and_frees_the_name() {
    let server = chat_server();
    let mut alice = ChatClient::join(server.addr(), "alice", "lobby");
    let bob = ChatClient::join(server.addr(), "bob", "lobby");
    alice.expect_joined("bob", "lobby");

    drop(bob); // closes the TCP socket without a close frame
    alice.expect_left("bob", "lobby");

    let _bob_again = ChatClient::join(server.addr(), "bob", "lobby");
    alice.expect_joined("bob", "lobby");
}

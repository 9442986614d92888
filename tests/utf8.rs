//! Text that is not UTF-8 fails the connection with 1007, as soon as the bad byte arrives.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use common::{client_frame, frame_header, masked, RawClient, TestServer, CONTINUATION, MASK, TEXT};

fn upgraded() -> (TestServer, RawClient) {
    let server = TestServer::start();
    let client = RawClient::upgrade(server.addr(), "/echo");
    (server, client)
}

#[test]
fn invalid_text_frame_is_1007() {
    let (_server, mut client) = upgraded();
    client.send(&client_frame(true, TEXT, b"caf\xC3\x28"));
    client.expect_close(1007);
}

#[test]
fn text_ending_inside_a_character_is_1007() {
    let (_server, mut client) = upgraded();
    // The first two bytes of the three-byte "€".
    client.send(&client_frame(true, TEXT, b"price: \xE2\x82"));
    client.expect_close(1007);
}

#[test]
fn invalid_byte_in_a_later_fragment_is_1007() {
    let (_server, mut client) = upgraded();
    client.send(&client_frame(false, TEXT, "κόσ".as_bytes()));
    let bad = [&[0xFF][..], "με".as_bytes()].concat();
    client.send(&client_frame(true, CONTINUATION, &bad));
    client.expect_close(1007);
}

#[test]
fn invalid_byte_fails_before_the_rest_of_the_frame_arrives() {
    let (_server, mut client) = upgraded();
    // A 1000-byte text frame, of which only the first 10 bytes are sent; byte 5 is invalid.
    let mut bytes = frame_header(true, 0, TEXT, Some(MASK), 1000);
    bytes.extend_from_slice(&masked(b"hello\xFFworl", MASK));
    client.send(&bytes);
    // The other 990 bytes never come: the close must not wait for them.
    client.expect_close(1007);
}

#[test]
fn invalid_byte_deep_in_a_large_frame_fails_before_the_rest_arrives() {
    let (_server, mut client) = upgraded();
    // A 4 MiB text frame of which the first 600,000 bytes are sent, the last of them invalid:
    // the bytes read straight into the message buffer are checked as they arrive.
    let mut text = "a".repeat(599_999).into_bytes();
    text.push(0xFF);
    let mut bytes = frame_header(true, 0, TEXT, Some(MASK), 4 << 20);
    bytes.extend_from_slice(&masked(&text, MASK));
    client.send(&bytes);
    client.expect_close(1007);
}

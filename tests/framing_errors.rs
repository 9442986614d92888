//! Frames that break RFC 6455 §5 fail the connection with 1002, and nothing follows the close.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use common::{
    client_frame, raw_frame, RawClient, TestServer, BINARY, CONTINUATION, MASK, PING, TEXT,
};

/// Upgrades, sends `bytes` and expects close 1002, then the end of the connection.
fn fails_with_1002(bytes: &[u8]) {
    let server = TestServer::start();
    let mut client = RawClient::upgrade(server.addr(), "/echo");
    client.send(bytes);
    client.expect_close(1002);
}

#[test]
fn unmasked_client_frame() {
    fails_with_1002(&raw_frame(true, 0, TEXT, None, b"hello"));
}

#[test]
fn rsv1_set() {
    fails_with_1002(&raw_frame(true, 0b100, TEXT, Some(MASK), b"hello"));
}

#[test]
fn reserved_opcode_3() {
    fails_with_1002(&raw_frame(true, 0, 0x3, Some(MASK), b"hello"));
}

#[test]
fn ping_with_126_bytes() {
    fails_with_1002(&client_frame(true, PING, &[b'p'; 126]));
}

#[test]
fn fragmented_ping() {
    fails_with_1002(&client_frame(false, PING, b"ping"));
}

#[test]
fn continuation_with_nothing_to_continue() {
    fails_with_1002(&client_frame(true, CONTINUATION, b"orphan"));
}

#[test]
fn new_text_frame_inside_a_fragmented_message() {
    let mut bytes = client_frame(false, BINARY, b"first half");
    bytes.extend_from_slice(&client_frame(true, TEXT, b"interloper"));
    fails_with_1002(&bytes);
}

#[test]
fn valid_frame_before_the_bad_one_is_still_echoed() {
    let server = TestServer::start();
    let mut client = RawClient::upgrade(server.addr(), "/echo");
    let mut bytes = client_frame(true, TEXT, b"fine");
    bytes.extend_from_slice(&raw_frame(true, 0b010, TEXT, Some(MASK), b"rsv2"));
    client.send(&bytes);
    assert_eq!(client.read_frame().payload, b"fine");
    client.expect_close(1002);
}

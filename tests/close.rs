//! The closing handshake, and close frames the server must refuse.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use common::{client_frame, close_frame, RawClient, TestServer, CLOSE};

/// Upgrades, sends `bytes` and expects a close with `code`, then the end of the connection.
fn answers_with(bytes: &[u8], code: u16) {
    let server = TestServer::start();
    let mut client = RawClient::upgrade(server.addr(), "/echo");
    client.send(bytes);
    client.expect_close(code);
}

#[test]
fn client_close_1000_is_echoed_then_the_connection_ends() {
    answers_with(&close_frame(1000, b"bye"), 1000);
}

#[test]
fn application_close_code_is_echoed() {
    answers_with(&close_frame(4000, b""), 4000);
}

#[test]
fn empty_close_is_answered_with_an_empty_close() {
    let server = TestServer::start();
    let mut client = RawClient::upgrade(server.addr(), "/echo");
    client.send(&client_frame(true, CLOSE, b""));
    let frame = client.read_frame();
    assert_eq!(frame.opcode, CLOSE);
    assert!(frame.payload.is_empty(), "got {:?}", frame.payload);
    assert!(client.read_to_eof().is_empty());
}

#[test]
fn close_with_a_one_byte_body_is_1002() {
    answers_with(&client_frame(true, CLOSE, &[0x03]), 1002);
}

#[test]
fn close_code_1005_is_1002() {
    answers_with(&close_frame(1005, b""), 1002);
}

#[test]
fn close_code_999_is_1002() {
    answers_with(&close_frame(999, b""), 1002);
}

#[test]
fn close_code_1004_is_1002() {
    answers_with(&close_frame(1004, b""), 1002);
}

#[test]
fn close_reason_that_is_not_utf8_is_1007() {
    answers_with(&close_frame(1000, &[b'o', 0xFF, b'k']), 1007);
}

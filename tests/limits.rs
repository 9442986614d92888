//! Messages over `max_message_size` fail with 1009 as soon as the header announces them.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use common::{client_frame, frame_header, RawClient, TestServer, BINARY, CONTINUATION, MASK, TEXT};
use wsloop::Config;

fn upgraded() -> (TestServer, RawClient) {
    let server = TestServer::new(
        Config::default()
            .max_message_size(1024)
            .max_frame_size(1024),
    );
    let client = RawClient::upgrade(server.addr(), "/echo");
    (server, client)
}

#[test]
fn message_at_the_limit_is_echoed() {
    let (_server, mut client) = upgraded();
    let payload = vec![b'x'; 1024];
    client.send(&client_frame(true, BINARY, &payload));
    let frame = client.read_frame();
    assert_eq!(frame.opcode, BINARY);
    assert_eq!(frame.payload, payload);
}

#[test]
fn frame_over_the_limit_is_1009_before_its_payload() {
    let (_server, mut client) = upgraded();
    // Only the header announcing 2000 bytes: no payload is ever sent.
    client.send(&frame_header(true, 0, TEXT, Some(MASK), 2000));
    client.expect_close(1009);
}

#[test]
fn fragments_adding_up_over_the_limit_are_1009() {
    let (_server, mut client) = upgraded();
    client.send(&client_frame(false, BINARY, &[7; 600]));
    // The second fragment's header takes the message to 1200 bytes; its payload never comes.
    client.send(&frame_header(true, 0, CONTINUATION, Some(MASK), 600));
    client.expect_close(1009);
}

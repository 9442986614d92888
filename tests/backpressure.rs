//! Backpressure: the server stops reading from a peer that leaves more than 1 MiB of echoes
//! unread, and must start again by itself once they are written, even though no new readiness
//! event announces the input that waited in the socket meanwhile. (Whether the pause happens
//! with the echo written in one go, the case no re-registration rescues, depends on the
//! kernel's socket buffers; the test checks that every echo arrives either way.)

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use common::{client_frame, RawClient, TestServer, BINARY};

#[test]
fn reading_resumes_after_a_pause_for_a_large_echo() {
    let server = TestServer::start();
    let mut client = RawClient::upgrade(server.addr(), "/echo");
    // One echo above the 1 MiB watermark pauses reading; the small messages behind it are
    // already in the socket when it does.
    let large = vec![7u8; 1_100_000];
    let mut burst = client_frame(true, BINARY, &large);
    let small: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 5_000]).collect();
    for message in &small {
        burst.extend(client_frame(true, BINARY, message));
    }
    client.send(&burst);

    let echo = client.read_frame();
    assert_eq!(echo.payload.len(), large.len());
    for (i, expected) in small.iter().enumerate() {
        let echo = client.read_frame();
        assert_eq!(&echo.payload, expected, "small echo {i}");
    }
}

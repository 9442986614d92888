//! In-process shutdown through `ShutdownHandle`: open clients get 1001 and `run` returns `Ok`.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::time::{Duration, Instant};

use common::{close_frame, RawClient, TestServer, TIMEOUT};
use wsloop::Config;

#[test]
fn open_clients_get_1001_and_run_returns_ok() {
    let server = TestServer::start();
    let mut first = RawClient::upgrade(server.addr(), "/echo");
    let mut second = RawClient::upgrade(server.addr(), "/");
    server.begin_shutdown();
    for client in [&mut first, &mut second] {
        assert_eq!(client.read_frame().close_code(), 1001);
        // Finish the closing handshake; the server then ends the connection.
        client.send(&close_frame(1001, b""));
        assert!(client.read_to_eof().is_empty());
    }
    drop((first, second));
    server.wait().expect("run returns Ok");
}

#[test]
fn idle_server_stops_at_once() {
    let server = TestServer::start();
    let start = Instant::now();
    server.begin_shutdown();
    server.wait().expect("run returns Ok");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn unresponsive_client_does_not_hold_shutdown_past_the_close_timeout() {
    let server = TestServer::new(Config::default().close_timeout(Duration::from_millis(300)));
    let mut client = RawClient::upgrade(server.addr(), "/echo");
    server.begin_shutdown();
    assert_eq!(client.read_frame().close_code(), 1001);
    // The client never answers; the server gives up after its close timeout.
    let start = Instant::now();
    server.wait().expect("run returns Ok");
    assert!(start.elapsed() < TIMEOUT);
    assert!(client.read_to_eof().is_empty());
}

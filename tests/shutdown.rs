//! In-process stopping through `ShutdownHandle`: `shutdown` closes open clients with 1001 at
//! once, `drain` with 1012 spread over the drain window; either way `run` returns `Ok`.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::time::{Duration, Instant};

use common::{client_frame, close_frame, RawClient, TestServer, TEXT, TIMEOUT};
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

/// Expects close 1012 `service restart`, answers it, and sees the server end the connection.
fn restarted(client: &mut RawClient) {
    let close = client.read_frame();
    assert_eq!(close.close_code(), 1012);
    assert_eq!(&close.payload[2..], b"service restart");
    client.send(&close_frame(1012, b""));
    assert!(client.read_to_eof().is_empty());
}

/// A drain closes the oldest connection at once and the next one later in the window; until
/// its turn, the younger one is served as usual. Then `run` returns `Ok`.
#[test]
fn a_drain_closes_with_1012_oldest_first_serving_the_others_until_their_turn() {
    let server = TestServer::new(Config::default().drain_window(Duration::from_secs(2)));
    let mut older = RawClient::upgrade(server.addr(), "/echo");
    let mut younger = RawClient::upgrade(server.addr(), "/");
    let began = Instant::now();
    server.begin_drain();
    restarted(&mut older);

    younger.send(&client_frame(true, TEXT, b"still here"));
    let echo = younger.read_frame();
    assert_eq!(
        (echo.opcode, echo.payload.as_slice()),
        (TEXT, &b"still here"[..])
    );
    restarted(&mut younger);
    // Its turn: 1 s into the 2 s window (give or take a loop turn).
    assert!(
        began.elapsed() >= Duration::from_millis(900),
        "the second close came {:?} after the drain began",
        began.elapsed()
    );
    drop((older, younger));
    server.wait().expect("run returns Ok");
}

/// A zero drain window closes everyone at once, and `run` returns as soon as the closing
/// handshakes are done.
#[test]
fn a_zero_drain_window_closes_everyone_at_once() {
    let server = TestServer::new(Config::default().drain_window(Duration::ZERO));
    let mut clients: Vec<RawClient> = (0..5)
        .map(|_| RawClient::upgrade(server.addr(), "/echo"))
        .collect();
    let began = Instant::now();
    server.begin_drain();
    for client in &mut clients {
        restarted(client);
    }
    drop(clients);
    server.wait().expect("run returns Ok");
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
}

/// `shutdown` during a drain cuts it short: those whose turn has not come get 1001 at once.
#[test]
fn shutdown_cuts_a_drain_short() {
    let server = TestServer::new(Config::default().drain_window(Duration::from_secs(60)));
    let mut older = RawClient::upgrade(server.addr(), "/echo");
    let mut younger = RawClient::upgrade(server.addr(), "/echo");
    server.begin_drain();
    restarted(&mut older);
    server.begin_shutdown();
    assert_eq!(younger.read_frame().close_code(), 1001);
    younger.send(&close_frame(1001, b""));
    assert!(younger.read_to_eof().is_empty());
    drop((older, younger));
    server.wait().expect("run returns Ok");
}

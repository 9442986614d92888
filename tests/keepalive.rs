//! Keepalive: a quiet connection is pinged, and closed with 1001 if it stays silent.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::time::{Duration, Instant};

use common::{client_frame, upgrade_request, RawClient, TestServer, CLOSE, PING, PONG, TEXT};
use wsloop::Config;

const PING_INTERVAL: Duration = Duration::from_millis(200);
const IDLE_TIMEOUT: Duration = Duration::from_millis(600);

fn server() -> TestServer {
    TestServer::new(
        Config::default()
            .ping_interval(PING_INTERVAL)
            .idle_timeout(IDLE_TIMEOUT),
    )
}

/// Upgrades on `/echo`; returns the client and when the request was sent (no earlier than
/// the server's idle clock starts).
fn upgrade(server: &TestServer) -> (RawClient, Instant) {
    let mut client = RawClient::connect(server.addr());
    let start = Instant::now();
    client.send(upgrade_request("/echo", "").as_bytes());
    assert_eq!(client.read_head().status, 101);
    (client, start)
}

#[test]
fn silent_client_is_pinged_then_closed_with_1001() {
    let server = server();
    let (mut client, start) = upgrade(&server);

    let ping = client.read_frame();
    assert_eq!(ping.opcode, PING, "expected a ping, got {ping:?}");
    let pinged_after = start.elapsed();
    assert!(
        pinged_after >= PING_INTERVAL,
        "pinged after {pinged_after:?}"
    );

    // Never answered: the idle timeout closes the connection.
    let close = client.read_frame();
    let closed_after = start.elapsed();
    assert_eq!(close.close_code(), 1001);
    assert!(
        closed_after >= IDLE_TIMEOUT,
        "closed after {closed_after:?}"
    );
    assert!(client.read_to_eof().is_empty());
}

#[test]
fn client_that_answers_pings_stays_open_past_the_idle_timeout() {
    let server = server();
    let (mut client, start) = upgrade(&server);
    let deadline = start + Duration::from_millis(1500);
    let mut pings = 0;
    // Bounded: at most one frame per iteration, and a ping takes 200 ms to come.
    for _ in 0..100 {
        let Some(frame) = client.read_frame_by(deadline) else {
            break;
        };
        assert_ne!(frame.opcode, CLOSE, "closed after {:?}", start.elapsed());
        assert_eq!(frame.opcode, PING, "unexpected {frame:?}");
        pings += 1;
        client.send(&client_frame(true, PONG, &frame.payload));
    }
    assert!(Instant::now() >= deadline, "too many frames");
    assert!(pings >= 2, "only {pings} pings in 1.5 s");

    // Still open: an echo comes back (perhaps after a ping already on its way).
    client.send(&client_frame(true, TEXT, b"still here"));
    let mut echo = client.read_frame();
    for _ in 0..3 {
        if echo.opcode != PING {
            break;
        }
        echo = client.read_frame();
    }
    assert_eq!(
        (echo.opcode, echo.payload.as_slice()),
        (TEXT, &b"still here"[..])
    );
}

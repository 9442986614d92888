//! Two instances joined through a real redis-server (`ServerBuilder::cluster`): broadcasts
//! cross both ways, once each and in order, and Redis going away stops only what crosses.
//!
//! Needs `redis-server` on the PATH (Debian's package; `.ci/run` installs it); skipped with a
//! message where it is missing, unless `WSLOOP_REQUIRE_REDIS` is set (as in CI).

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::redis::{self, Redis};
use common::{client_frame, RawClient, TestServer, TEXT};
use wsloop::apps::Broadcast;
use wsloop::{ClusterUrl, Config};

fn instance(redis: &Redis) -> TestServer {
    let url = redis.url();
    TestServer::with_routes(Config::default(), move |builder| {
        builder.cluster(url).route("/broadcast", Broadcast)
    })
}

fn send(client: &mut RawClient, text: &str) {
    client.send(&client_frame(true, TEXT, text.as_bytes()));
}

fn text(client: &mut RawClient) -> String {
    let frame = client.read_frame();
    assert_eq!(frame.opcode, TEXT, "{frame:?}");
    String::from_utf8(frame.payload).unwrap()
}

/// Sends probes from `from` until one reaches `to` through Redis (the bridge connects and
/// subscribes on its own time), then a marker, and reads `to` and every `local` client up to
/// the marker: afterwards all of them have nothing pending.
fn until_crossing(from: &mut RawClient, to: &mut RawClient, local: &mut [&mut RawClient]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut sent = 0;
    loop {
        send(from, &format!("probe {sent}"));
        sent += 1;
        if to
            .read_frame_by(Instant::now() + Duration::from_millis(100))
            .is_some()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing crossed through Redis in 15 s"
        );
    }
    send(from, "synced");
    while text(to) != "synced" {}
    for client in local {
        while text(client) != "synced" {}
    }
}

/// Two instances on `redis`, and clients on /broadcast: `a` and `c` on the first, `b` on the
/// second, with messages already crossing and nothing pending.
fn joined(redis: &Redis) -> ((TestServer, TestServer), RawClient, RawClient, RawClient) {
    let (one, two) = (instance(redis), instance(redis));
    let mut a = RawClient::upgrade(one.addr(), "/broadcast");
    let mut c = RawClient::upgrade(one.addr(), "/broadcast");
    let mut b = RawClient::upgrade(two.addr(), "/broadcast");
    until_crossing(&mut a, &mut b, &mut [&mut c]);
    ((one, two), a, b, c)
}

#[test]
fn broadcasts_cross_instances_both_ways_once_and_in_order() {
    if !redis::available() {
        return;
    }
    let redis = Redis::start();
    let (_instances, mut a, mut b, mut c) = joined(&redis);

    for i in 0..300 {
        send(&mut a, &format!("a{i}"));
    }
    send(&mut a, "end");
    // Across Redis and on the publisher's own instance: each message once, in order.
    for client in [&mut b, &mut c] {
        for i in 0..300 {
            assert_eq!(text(client), format!("a{i}"));
        }
        assert_eq!(text(client), "end");
    }
    // After a quiet second, the bridge still carries messages.
    std::thread::sleep(Duration::from_secs(1));
    send(&mut b, "from two");
    assert_eq!(text(&mut a), "from two");
    assert_eq!(text(&mut c), "from two");
}

#[test]
fn without_redis_local_delivery_goes_on_and_crossing_resumes_when_it_returns() {
    if !redis::available() {
        return;
    }
    let redis = Redis::start();
    let (_instances, mut a, mut b, mut c) = joined(&redis);

    let port = redis.stop();
    for i in 0..20 {
        send(&mut a, &format!("while down {i}"));
        assert_eq!(text(&mut c), format!("while down {i}"));
    }
    // Nothing of that reaches the other instance while Redis is down (it waits in the bounded
    // queue to Redis, and goes out when Redis is back).
    assert_eq!(
        b.read_frame_by(Instant::now() + Duration::from_millis(300)),
        None
    );

    let _redis = Redis::start_on(port);
    until_crossing(&mut a, &mut b, &mut [&mut c]);
    send(&mut b, "back");
    assert_eq!(text(&mut a), "back");
}

#[test]
fn an_unreachable_redis_does_not_stop_the_server() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = ClusterUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap();
    let server = TestServer::with_routes(Config::default(), move |builder| {
        builder.cluster(url).route("/broadcast", Broadcast)
    });
    let addr: SocketAddr = server.addr();
    let mut a = RawClient::upgrade(addr, "/broadcast");
    let mut b = RawClient::upgrade(addr, "/broadcast");
    send(&mut a, "local");
    assert_eq!(text(&mut b), "local");
}

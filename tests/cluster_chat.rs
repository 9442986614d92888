//! The chat across instances joined through a real redis-server: names unique cluster-wide,
//! private messages and lists reaching users on any instance, joins and leaves crossing, and
//! the names of an instance that was killed freed within the cluster TTL.
//!
//! Needs `redis-server` on the PATH (Debian's package; `.ci/run` installs it); skipped with a
//! message where it is missing, unless `WSLOOP_REQUIRE_REDIS` is set (as in CI).

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::chat::ChatClient;
use common::redis::{self, Redis};
use common::{client_frame, spawn_wsloop, RawClient, TestServer, TEXT, TIMEOUT};
use serde_json::json;
use wsloop::apps::{Broadcast, Chat};
use wsloop::Config;

fn instance(redis: &Redis, ttl: Duration) -> TestServer {
    let url = redis.url();
    TestServer::with_routes(Config::default(), move |builder| {
        (builder.cluster(url).cluster_ttl(ttl))
            .route("/broadcast", Broadcast)
            .route("/chat", Chat::default())
    })
}

/// Waits until a broadcast from `from` reaches `to`: both instances' bridges are connected
/// and subscribed, so claims are decided by Redis from here on.
fn until_connected(from: SocketAddr, to: SocketAddr) {
    let mut sender = RawClient::upgrade(from, "/broadcast");
    let mut receiver = RawClient::upgrade(to, "/broadcast");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        sender.send(&client_frame(true, TEXT, b"probe"));
        let soon = Instant::now() + Duration::from_millis(100);
        if receiver.read_frame_by(soon).is_some() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing crossed through Redis in 15 s"
        );
    }
}

/// Asks for the member list until it is `expected`: what another instance holds arrives on
/// its own time (bounded: a few seconds).
fn until_listed(client: &mut ChatClient, expected: &[&str]) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        client.request(json!({"type": "list"}));
        // A join or leave heard from the other instance may come before the answer: Redis
        // carries it, so it can arrive after this client's own join.
        let users = loop {
            let event = client.event();
            if event["type"] == "users" {
                break event;
            }
            assert!(
                ["joined", "left"].contains(&event["type"].as_str().unwrap_or_default()),
                "{event}"
            );
        };
        let names = common::chat::names(&users);
        if names == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "list stayed {names:?}, not {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Joins as `name` on `addr`, trying again while the name is taken, until `deadline`; returns
/// the client and how many tries it took.
fn join_when_free(addr: SocketAddr, name: &str, deadline: Instant) -> (ChatClient, u32) {
    let mut client = ChatClient::connect(addr);
    for tries in 1.. {
        client.request(json!({"type": "join", "name": name, "room": "room"}));
        let event = client.event();
        if event["type"] == "history" {
            client.expect_joined(name, "room");
            client.expect("users");
            return (client, tries);
        }
        assert_eq!(event["code"], "name_taken", "{event}");
        assert!(Instant::now() < deadline, "{name} was not freed in time");
        std::thread::sleep(Duration::from_millis(50));
    }
    unreachable!()
}

#[test]
fn chat_names_pm_lists_joins_and_leaves_span_instances() {
    if !redis::available() {
        return;
    }
    let redis = Redis::start();
    let ttl = Duration::from_secs(15);
    let (one, two) = (instance(&redis, ttl), instance(&redis, ttl));
    until_connected(one.addr(), two.addr());
    until_connected(two.addr(), one.addr());

    let mut alice = ChatClient::join(one.addr(), "alice", "room");
    // The name is taken on the other instance too, whatever its case.
    let mut bob = ChatClient::connect(two.addr());
    bob.request(json!({"type": "join", "name": "ALICE", "room": "room"}));
    bob.expect_error("name_taken");
    bob.enter("bob", "room");
    alice.expect_joined("bob", "room");
    until_listed(&mut bob, &["alice", "bob"]);
    until_listed(&mut alice, &["alice", "bob"]);

    // Room messages, typing and private messages, both ways.
    bob.request(json!({"type": "message", "text": "hi from two"}));
    bob.expect_message("bob", "room", "hi from two");
    alice.expect_message("bob", "room", "hi from two");
    alice.request(json!({"type": "typing", "active": true}));
    assert_eq!(bob.expect("typing")["name"], "alice");
    alice.request(json!({"type": "pm", "to": "BOB", "text": "psst"}));
    let pm = bob.expect("pm");
    assert_eq!(
        (&pm["from"], &pm["to"], &pm["text"]),
        (&json!("alice"), &json!("bob"), &json!("psst"))
    );
    assert_eq!(alice.expect("pm")["text"], "psst", "the sender's copy");
    bob.request(json!({"type": "pm", "to": "alice", "text": "back"}));
    assert_eq!(alice.expect("pm")["text"], "back");
    assert_eq!(bob.expect("pm")["text"], "back");
    alice.request(json!({"type": "pm", "to": "nobody", "text": "?"}));
    alice.expect_error("unknown_user");

    // A room change is seen from the other instance.
    bob.request(json!({"type": "room", "room": "attic"}));
    alice.expect_left("bob", "room");
    until_listed(&mut alice, &["alice"]);

    // Bob leaves: his name is free on every instance.
    drop(bob);
    let (mut bob_again, _) = join_when_free(one.addr(), "Bob", Instant::now() + TIMEOUT);
    alice.expect_joined("Bob", "room");
    until_listed(&mut bob_again, &["alice", "Bob"]);
}

#[test]
fn a_killed_instance_frees_its_names_within_the_ttl() {
    if !redis::available() {
        return;
    }
    let redis = Redis::start();
    let ttl = Duration::from_secs(1);
    let survivor = instance(&redis, ttl);

    // The other instance is a process, to be killed without a goodbye.
    let redis_url = format!("redis://127.0.0.1:{}", redis.port);
    let (mut child, addr) = spawn_wsloop(&["--cluster", &redis_url, "--cluster-ttl", "1s"]);
    let doomed: SocketAddr = addr.parse().unwrap();
    until_connected(doomed, survivor.addr());
    until_connected(survivor.addr(), doomed);

    let mut dave = ChatClient::join(survivor.addr(), "dave", "room");
    let _carol = ChatClient::join(doomed, "carol", "room");
    dave.expect_joined("carol", "room");
    until_listed(&mut dave, &["carol", "dave"]);
    // Alive, the instance keeps the name past the TTL (it renews it).
    std::thread::sleep(ttl + ttl / 2);
    let mut impostor = ChatClient::connect(survivor.addr());
    impostor.request(json!({"type": "join", "name": "Carol", "room": "room"}));
    impostor.expect_error("name_taken");
    until_listed(&mut dave, &["carol", "dave"]);

    let _ = child.kill();
    let _ = child.wait();
    let killed = Instant::now();
    let (_carol_again, tries) = join_when_free(survivor.addr(), "Carol", killed + ttl * 4);
    let freed = killed.elapsed();
    assert!(tries > 1, "the name was taken right after the kill");
    assert!(freed <= ttl * 3, "freed after {freed:?}");
    dave.expect_joined("Carol", "room");
    until_listed(&mut dave, &["Carol", "dave"]);
}

/// Whether `key` exists in the Redis on `port` (one RESP command over a plain socket).
fn redis_has(port: u16, key: &str) -> bool {
    use std::io::{Read, Write};
    let mut redis = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to redis");
    redis.set_read_timeout(Some(TIMEOUT)).unwrap();
    let command = format!("*2\r\n$6\r\nEXISTS\r\n${}\r\n{key}\r\n", key.len());
    redis.write_all(command.as_bytes()).unwrap();
    let mut reply = [0u8; 16];
    let n = redis.read(&mut reply).expect("a reply from redis");
    match &reply[..n] {
        b":1\r\n" => true,
        b":0\r\n" => false,
        other => panic!("unexpected reply {:?}", String::from_utf8_lossy(other)),
    }
}

#[test]
fn names_are_claimed_again_after_redis_restarts_empty() {
    if !redis::available() {
        return;
    }
    let redis = Redis::start();
    let ttl = Duration::from_secs(1);
    let (one, two) = (instance(&redis, ttl), instance(&redis, ttl));
    until_connected(one.addr(), two.addr());
    let _alice = ChatClient::join(one.addr(), "Alice", "room");
    let key = "wsloop:n:/chat:alice";
    assert!(redis_has(redis.port, key), "the name is claimed in Redis");

    // A Redis without persistence comes back empty: the instance claims its names again.
    let port = redis.stop();
    let redis = Redis::start_on(port);
    let deadline = Instant::now() + TIMEOUT;
    while !redis_has(redis.port, key) {
        assert!(Instant::now() < deadline, "{key} was not claimed again");
        std::thread::sleep(Duration::from_millis(50));
    }
    until_connected(two.addr(), one.addr());
    let mut bob = ChatClient::connect(two.addr());
    bob.request(json!({"type": "join", "name": "alice", "room": "room"}));
    bob.expect_error("name_taken");
}

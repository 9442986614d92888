//! Presence, disconnects and liveness across two instances joined through a real
//! redis-server: the API of either instance counts the subscribers of both, a disconnect
//! reaches a user on the other, and when an instance is SIGKILLed its presence, its chat
//! names and its users' private messages are let go within a few seconds (its heartbeat
//! stops), long before the cluster TTL (15 s by default).
//!
//! Needs `redis-server` on the PATH (Debian's package; `.ci/run` installs it); skipped with a
//! message where it is missing, unless `WSLOOP_REQUIRE_REDIS` is set (as in CI).

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::chat::ChatClient;
use common::http::Http;
use common::pubsub::Client;
use common::redis::{self, Redis};
use common::tokens::{for_user, secret_file};
use common::{client_frame, spawn_wsloop, upgrade_request, RawClient, TEXT};
use serde_json::{json, Value};

const AUTH: &str = "Authorization: apikey cluster-test-key-0123456789";

fn key_file() -> PathBuf {
    let path = std::env::temp_dir().join(format!("wsloop-test-apikey-c-{}", std::process::id()));
    std::fs::write(&path, "cluster-test-key-0123456789\n").expect("write the key");
    path
}

/// An instance of the binary in the cluster on `redis`; killed when dropped.
struct Instance(std::process::Child, SocketAddr);

impl Instance {
    fn start(redis: &Redis, key: &std::path::Path) -> Instance {
        let url = format!("redis://127.0.0.1:{}", redis.port);
        let secret = secret_file();
        let (child, addr) = spawn_wsloop(&[
            "--cluster",
            &url,
            "--api-key-file",
            key.to_str().unwrap(),
            "--auth-jwt-secret-file",
            secret.to_str().unwrap(),
            "--auth",
            "optional",
        ]);
        Instance(child, addr.parse().unwrap())
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until a broadcast from `from` reaches `to`: both bridges are up.
fn until_connected(from: SocketAddr, to: SocketAddr) {
    let mut sender = RawClient::upgrade(from, "/broadcast");
    let mut receiver = RawClient::upgrade(to, "/broadcast");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        sender.send(&client_frame(true, TEXT, b"probe"));
        if (receiver.read_frame_by(Instant::now() + Duration::from_millis(100))).is_some() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nothing crossed through Redis in 15 s"
        );
    }
}

fn open_as(addr: SocketAddr, path: &str, user: &str) -> RawClient {
    let mut raw = RawClient::connect(addr);
    let token = for_user(user, json!({}));
    raw.send(upgrade_request(&format!("{path}?token={token}"), "").as_bytes());
    assert_eq!(raw.read_head().status, 101);
    raw
}

fn pubsub_as(addr: SocketAddr, user: &str) -> Client {
    Client::on(open_as(addr, "/pubsub", user))
}

/// A chat connection as `user` (names come from tokens here), joined to `room`.
fn chat_as(addr: SocketAddr, user: &str, room: &str) -> ChatClient {
    let mut client = ChatClient {
        raw: open_as(addr, "/chat", user),
    };
    client.enter(user, room);
    client
}

/// Asks `addr`'s API for `channel`'s presence stats until `check` accepts them (bounded);
/// returns them and when they were accepted.
fn until_stats(
    api: &mut Http,
    channel: &str,
    within: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let path = format!("/api/presence_stats?channel={channel}");
        let stats = api.ask("GET", &path, &[AUTH], None).json();
        if check(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "presence stayed {stats}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn presence_and_disconnects_span_instances_and_a_killed_instance_is_let_go_in_seconds() {
    if !redis::available() {
        return;
    }
    let redis = Redis::start();
    let key = key_file();
    let survivor = Instance::start(&redis, &key);
    let doomed = Instance::start(&redis, &key); // killed without a goodbye below
    until_connected(doomed.1, survivor.1);
    until_connected(survivor.1, doomed.1);

    // Two users here, three connections there (one of them anonymous).
    let mut here: Vec<Client> = ["ann", "bob"]
        .iter()
        .map(|u| pubsub_as(survivor.1, u))
        .collect();
    let mut there: Vec<Client> = ["carl", "carl"]
        .iter()
        .map(|u| pubsub_as(doomed.1, u))
        .collect();
    there.push(Client::connect(doomed.1));
    for (n, client) in here.iter_mut().chain(there.iter_mut()).enumerate() {
        let reply = client.ask(json!({"type": "subscribe", "channel": "room"}), n as u64);
        assert_eq!(reply["type"], "subscribed");
    }
    let mut api = Http::connect(survivor.1);
    let both = |s: &Value| s["connections"] == 5 && s["users"] == 3;
    until_stats(&mut api, "room", Duration::from_secs(5), both);
    let list = api
        .ask("GET", "/api/presence?channel=room", &[AUTH], None)
        .json();
    let instances: std::collections::HashSet<&str> = (list["presence"].as_array().unwrap().iter())
        .map(|p| p["instance"].as_str().expect("an instance"))
        .collect();
    assert_eq!(instances.len(), 2, "{list}");

    // A disconnect on one instance reaches the user on the other.
    let body = r#"{"user":"carl","code":4001,"reason":"moved"}"#;
    assert_eq!(
        api.ask("POST", "/api/disconnect", &[AUTH], Some(body))
            .status,
        200
    );
    for carl in &mut there[..2] {
        let close = carl.0.read_frame();
        assert_eq!(
            (close.close_code(), &close.payload[2..]),
            (4001, &b"moved"[..])
        );
    }
    let after = |s: &Value| s["connections"] == 3 && s["users"] == 2;
    until_stats(&mut api, "room", Duration::from_secs(5), after);
    // By connection and instance: the anonymous one, on the other instance.
    let list = api
        .ask("GET", "/api/presence?channel=room", &[AUTH], None)
        .json();
    let anonymous = (list["presence"].as_array().unwrap().iter())
        .find(|p| p.get("user").is_none())
        .expect("the anonymous connection")
        .clone();
    let body = json!({"connection": anonymous["connection"], "instance": anonymous["instance"],
                      "code": 4002, "reason": "bye"})
    .to_string();
    assert_eq!(
        api.ask("POST", "/api/disconnect", &[AUTH], Some(&body))
            .status,
        200
    );
    assert_eq!(there[2].0.read_frame().close_code(), 4002);
    drop(there);

    // A chat user on the doomed instance; then it dies without a goodbye.
    let mut dave = chat_as(survivor.1, "dave", "lobby");
    let _erin = chat_as(doomed.1, "erin", "lobby");
    dave.expect_joined("erin", "lobby");
    let _frank = chat_as(doomed.1, "frank", "lobby");
    dave.expect_joined("frank", "lobby");
    dave.request(json!({"type": "pm", "to": "frank", "text": "still there?"}));
    assert_eq!(
        dave.event()["type"],
        "pm",
        "a pm reaches frank while his instance lives"
    );
    let mut dan = pubsub_as(doomed.1, "dan");
    dan.ask(json!({"type": "subscribe", "channel": "room"}), 9);
    until_stats(&mut api, "room", Duration::from_secs(5), |s| {
        s["connections"] == 3
    });
    let mut doomed = doomed;
    let _ = doomed.0.kill();
    let _ = doomed.0.wait();
    let killed = Instant::now();
    // Its subscribers leave the count, its names are free, a pm to them is refused: all
    // within seconds (the heartbeat's 3 s), not the 15 s TTL.
    until_stats(&mut api, "room", Duration::from_secs(8), |s| {
        s["connections"] == 2
    });
    let mut erin = ChatClient {
        raw: open_as(survivor.1, "/chat", "erin"),
    };
    loop {
        erin.request(json!({"type": "join", "room": "lobby"}));
        let event = erin.event();
        if event["type"] == "history" {
            break;
        }
        assert_eq!(event["code"], "name_taken", "{event}");
        assert!(
            killed.elapsed() < Duration::from_secs(8),
            "erin was not freed in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let freed = killed.elapsed();
    assert!(freed < Duration::from_secs(8), "freed after {freed:?}");
    // Dave sees her come back (through Redis, so maybe after his own next reply: wait for it).
    dave.expect_joined("erin", "lobby");
    drop(erin);
    // Frank joined on the doomed instance too; a pm to him after the kill is refused.
    dave.request(json!({"type": "pm", "to": "frank", "text": "hi"}));
    dave.expect_error("unknown_user");
    drop(here);
}

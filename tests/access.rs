//! What a token allows: the /pubsub permission matrix, chat names and rooms; and the flood
//! limits (message rate, connections per IP and per user) across two loops, with metrics.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::chat::ChatClient;
use common::pubsub::Client;
use common::tokens::{for_user, secret_file};
use common::{client_frame, spawn_wsloop, upgrade_request, RawClient, TEXT};
use serde_json::{json, Value};

fn upgrade_with(addr: SocketAddr, target: &str) -> (RawClient, common::Head) {
    let mut client = RawClient::connect(addr);
    client.send(upgrade_request(target, "").as_bytes());
    let head = client.read_head();
    (client, head)
}

fn open(addr: SocketAddr, path: &str, token: Option<&str>) -> RawClient {
    let target = match token {
        Some(token) => format!("{path}?token={token}"),
        None => path.to_string(),
    };
    let (client, head) = upgrade_with(addr, &target);
    assert_eq!(head.status, 101, "{target}");
    client
}

/// The binary with a secret file and `args`; killed when dropped.
struct Wsloop(std::process::Child, SocketAddr);

impl Wsloop {
    fn start(args: &[&str]) -> Wsloop {
        let secret = secret_file();
        let mut all = vec!["--auth-jwt-secret-file", secret.to_str().unwrap()];
        all.extend_from_slice(args);
        let (child, addr) = spawn_wsloop(&all);
        Wsloop(child, addr.parse().unwrap())
    }
}

impl Drop for Wsloop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pubsub_permissions_follow_the_token_and_a_refusal_keeps_the_connection() {
    let server = Wsloop::start(&["--auth", "optional"]);
    let token = for_user(
        "ann",
        json!({"subs": ["news", "room:*"], "pubs": ["room:*"]}),
    );
    let mut ann = Client::on(open(server.1, "/pubsub", Some(&token)));
    let mut guest = Client::on(open(server.1, "/pubsub", None));
    let no_claims = for_user("bob", json!({}));
    let mut bob = Client::on(open(server.1, "/pubsub", Some(&no_claims)));
    let subscribe = |channel: &str| json!({"type": "subscribe", "channel": channel});
    let publish = |channel: &str| json!({"type": "publish", "channel": channel, "data": 1});
    let history = |channel: &str| json!({"type": "history", "channel": channel});
    // (client, command, allowed)
    let mut id = 0;
    let mut check = |client: &mut Client, command: Value, allowed: bool| {
        id += 1;
        let reply = client.ask(command.clone(), id);
        if allowed {
            assert_ne!(reply["type"], "error", "{command} -> {reply}");
        } else {
            assert_eq!(reply["code"], "forbidden", "{command} -> {reply}");
            assert!(reply["message"]
                .as_str()
                .unwrap()
                .starts_with("not allowed to"));
        }
    };
    check(&mut ann, subscribe("news"), true);
    check(&mut ann, subscribe("room:7"), true);
    check(&mut ann, subscribe("secret"), false);
    check(&mut ann, history("secret"), false);
    check(&mut ann, publish("news"), false);
    check(&mut ann, publish("room:7"), true);
    // Without claims: the defaults (everything).
    check(&mut bob, subscribe("secret"), true);
    check(&mut bob, publish("secret"), true);
    // Anonymous: may subscribe, may not publish.
    check(&mut guest, subscribe("news"), true);
    check(&mut guest, publish("news"), false);
    // Nothing was published where it was refused: ann's news subscription saw nothing, and
    // the guest's did not either.
    check(&mut ann, publish("room:7"), true);
    let reply = guest.ask(json!({"type": "unsubscribe", "channel": "news"}), 100);
    assert_eq!(reply["type"], "unsubscribed", "{reply}");
}

#[test]
fn chat_names_and_rooms_come_from_the_token() {
    let server = Wsloop::start(&["--auth", "optional"]);
    let alice = for_user(
        "u-1",
        json!({"name": "Alice", "subs": ["chat:lobby"], "pubs": []}),
    );
    let mut a = ChatClient {
        raw: open(server.1, "/chat", Some(&alice)),
    };
    // Another name than the token's: refused; the token's, in any case: taken.
    a.request(json!({"type": "join", "name": "Mallory"}));
    a.expect_error("forbidden");
    a.request(json!({"type": "join", "room": "secret"}));
    a.expect_error("forbidden");
    a.request(json!({"type": "join"}));
    a.expect_history("lobby");
    a.expect_joined("Alice", "lobby");
    a.expect("users");
    // May listen in the lobby, not speak.
    a.request(json!({"type": "message", "text": "hi"}));
    a.expect_error("forbidden");
    a.request(json!({"type": "typing", "active": true}));
    a.expect_error("forbidden");
    // A guest cannot take a name where names come from tokens.
    let mut guest = ChatClient::connect(server.1);
    guest.request(json!({"type": "join", "name": "Alice"}));
    guest.expect_error("forbidden");
    // A second user with full rights speaks, and alice hears it.
    let bob = for_user("u-2", json!({}));
    let mut b = ChatClient {
        raw: open(server.1, "/chat", Some(&bob)),
    };
    b.request(json!({"type": "join", "name": "u-2"}));
    b.expect_history("lobby");
    b.expect_joined("u-2", "lobby");
    b.expect("users");
    a.expect_joined("u-2", "lobby");
    b.request(json!({"type": "message", "text": "hello"}));
    b.expect_message("u-2", "lobby", "hello");
    a.expect_message("u-2", "lobby", "hello");
}

#[test]
fn over_the_rate_a_pubsub_client_is_told_then_closed_and_echo_is_closed_at_once() {
    let server = Wsloop::start(&[
        "--auth",
        "optional",
        "--max-message-rate",
        "5",
        "--metrics",
        "--threads",
        "2",
    ]);
    let mut client = Client::on(open(server.1, "/pubsub", None));
    for id in 0..12 {
        client.send(json!({"type": "history", "channel": "c", "id": id}));
    }
    let mut replies = Vec::new();
    let close = loop {
        let frame = client.0.read_frame();
        if frame.opcode != TEXT {
            break frame;
        }
        replies.push(serde_json::from_slice::<Value>(&frame.payload).unwrap());
    };
    // A burst of 5 served, 5 answered rate_limit with their ids, then the close.
    assert_eq!(replies.len(), 10, "{replies:?}");
    for (id, reply) in replies.iter().enumerate() {
        let served = reply["type"] == "history";
        assert_eq!(served, id < 5, "{reply}");
        if !served {
            assert_eq!(
                (reply["code"].as_str(), reply["id"].as_u64()),
                (Some("rate_limit"), Some(id as u64))
            );
        }
    }
    assert_eq!(
        (close.close_code(), &close.payload[2..]),
        (1008, &b"rate limit"[..])
    );
    // Echo has no error to send: over the rate is a close.
    let mut echo = open(server.1, "/echo", None);
    for _ in 0..6 {
        echo.send(&client_frame(true, TEXT, b"x"));
    }
    let frames: Vec<u8> = (0..6).map(|_| echo.read_frame().opcode).collect();
    assert_eq!(frames, [TEXT, TEXT, TEXT, TEXT, TEXT, 0x8]);
    // 5 answered and 1 closed on /pubsub, 1 closed on /echo, perhaps on the other loop, whose
    // counters the scrape sums within a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut metrics = scrape(server.1);
    while !metrics.contains("wsloop_rate_limited_total 7\n") {
        assert!(Instant::now() < deadline, "{metrics}");
        std::thread::sleep(Duration::from_millis(100));
        metrics = scrape(server.1);
    }
}

fn scrape(addr: SocketAddr) -> String {
    let mut client = RawClient::connect(addr);
    client.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    String::from_utf8(client.read_response().body).unwrap()
}

/// Opens connections until one is refused or `deadline` passes; the open ones and the
/// refusal's head.
fn fill(addr: SocketAddr, target: &str, deadline: Instant) -> (Vec<RawClient>, common::Head) {
    let mut open = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no refusal after {} connections",
            open.len()
        );
        let (client, head) = upgrade_with(addr, target);
        if head.status != 101 {
            return (open, head);
        }
        open.push(client);
    }
}

#[test]
fn connections_per_ip_and_per_user_are_counted_across_loops() {
    let server = Wsloop::start(&[
        "--threads",
        "2",
        "--max-connections-per-ip",
        "6",
        "--max-connections-per-user",
        "2",
        "--metrics",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let alice = format!("/echo?token={}", for_user("alice", json!({})));
    let (mut alices, refused) = fill(server.1, &alice, deadline);
    assert_eq!((alices.len(), refused.status), (2, 429));
    assert_eq!(refused.header("Retry-After"), Some("5"));
    let bob = format!("/echo?token={}", for_user("bob", json!({})));
    let (bobs, refused) = fill(server.1, &bob, deadline);
    assert_eq!((bobs.len(), refused.status), (2, 429));
    let carol = format!("/echo?token={}", for_user("carol", json!({})));
    let (carols, refused) = fill(server.1, &carol, deadline);
    // Six from this address in all, whichever loop took them.
    assert_eq!((carols.len(), refused.status), (2, 429));
    // Each loop leaves its counters for the others once a second: the sum shows within that.
    let lines = [
        "wsloop_access_refused_total{reason=\"per_user\"} 2\n",
        "wsloop_access_refused_total{reason=\"per_ip\"} 1\n",
    ];
    let mut metrics = scrape(server.1);
    while !lines.iter().all(|line| metrics.contains(line)) {
        assert!(Instant::now() < deadline, "{lines:?} in {metrics}");
        std::thread::sleep(Duration::from_millis(100));
        metrics = scrape(server.1);
    }
    // A closed connection gives its place back, on whichever loop it was.
    let mut leaving = alices.pop().unwrap();
    leaving.send(&common::close_frame(1000, b""));
    leaving.expect_close(1000);
    let (again, _) = fill(server.1, &alice, deadline);
    assert_eq!(again.len(), 1);
    drop((bobs, carols));
}

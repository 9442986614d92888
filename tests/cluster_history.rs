//! History across instances (`ServerBuilder::cluster` with `ServerBuilder::history`): Redis
//! orders every kept channel, so a client that comes back to another instance recovers exactly
//! what it missed, and a Redis that lost its data starts new epochs instead of reusing offsets.
//!
//! Needs `redis-server` on the PATH (skipped with a message where it is missing, unless
//! `WSLOOP_REQUIRE_REDIS` is set, as in CI).

#![cfg(feature = "cli")]

mod common;

use std::time::{Duration, Instant};

use common::pubsub::Client;
use common::redis::{self, Redis};
use common::{TestServer, TIMEOUT};
use serde_json::{json, Value};
use wsloop::apps::PubSub;
use wsloop::{Config, HistoryOptions};

fn instance(redis: &Redis) -> TestServer {
    let url = redis.url();
    TestServer::with_routes(Config::default(), move |builder| {
        (builder.cluster(url))
            .route("/pubsub", PubSub)
            .history(HistoryOptions::default().size(5000))
    })
}

/// Subscribes `client` to `channel` (from `since`, if given) and reads every kept publication
/// it is owed, page by page: their offsets and data, and the channel's epoch.
fn subscribe(
    client: &mut Client,
    channel: &str,
    since: Option<Value>,
) -> (Vec<(u64, Value)>, Value) {
    let mut command = json!({"type": "subscribe", "channel": channel});
    let recovering = since.is_some();
    if let Some(since) = since {
        command["since"] = since;
    }
    let reply = client.ask(command, 1);
    assert_eq!(reply["type"], "subscribed", "{reply}");
    if recovering {
        assert_eq!(reply["recovered"], true, "{reply}");
    }
    let epoch = reply["epoch"].clone();
    let mut got = offsets(&reply["publications"]);
    let mut more = reply["more"].as_bool().unwrap_or(false);
    while more {
        let last = got.last().map_or(0, |(offset, _)| *offset);
        let since = json!({"offset": last, "epoch": epoch});
        let page = client.ask(
            json!({"type": "history", "channel": channel, "since": since}),
            2,
        );
        assert_eq!(page["type"], "history", "{page}");
        got.extend(offsets(&page["publications"]));
        more = page["more"].as_bool().unwrap();
    }
    (got, epoch)
}

fn offsets(list: &Value) -> Vec<(u64, Value)> {
    (list.as_array().expect("a list").iter())
        .map(|p| (p["offset"].as_u64().unwrap(), p["data"].clone()))
        .collect()
}

/// The next publication `client` receives.
fn publication(client: &mut Client) -> Value {
    let next = client.next();
    assert_eq!(next["type"], "publication", "{next}");
    next
}

#[test]
fn a_client_that_comes_back_to_the_other_instance_gets_exactly_what_it_missed() {
    if !redis::available() {
        return;
    }
    let redis = Redis::start();
    let (one, two) = (instance(&redis), instance(&redis));
    let mut publisher = Client::connect(one.addr());
    subscribe(&mut publisher, "orders", None);
    let mut reader = Client::connect(two.addr());
    subscribe(&mut reader, "orders", None);
    publisher.publish("orders", json!("first"), 3);
    let first = publication(&mut reader);
    assert_eq!(
        (first["offset"].as_u64(), &first["data"]),
        (Some(1), &json!("first"))
    );
    let epoch = first["epoch"].clone();
    assert_eq!(
        publication(&mut publisher)["offset"],
        1,
        "Redis sends it back to its publisher too"
    );
    drop(reader);

    for n in 0..1000 {
        publisher.send(json!({"type": "publish", "channel": "orders", "data": n}));
    }
    // The publisher's own copies come back through Redis, in offset order, once each.
    let mut echoed = 0;
    while echoed < 1000 {
        let next = publisher.read();
        if next["type"] == "publication" {
            assert_eq!(next["offset"], 2 + echoed, "{next}");
            assert_eq!(next["epoch"], epoch);
            echoed += 1;
        }
    }

    // Back, on the other instance than before.
    let mut back = Client::connect(one.addr());
    let since = json!({"offset": 1, "epoch": epoch});
    let (got, now) = subscribe(&mut back, "orders", Some(since));
    assert_eq!(now, epoch);
    let expected: Vec<(u64, Value)> = (0..1000u64).map(|n| (n + 2, json!(n))).collect();
    assert_eq!(got.len(), 1000, "exactly the 1,000 it missed");
    assert!(got == expected, "in order, none twice, none lost");

    // And a new publication reaches it live with the next offset.
    publisher.publish("orders", json!("after"), 4);
    let live = publication(&mut back);
    assert_eq!(
        (live["offset"].as_u64(), &live["data"]),
        (Some(1002), &json!("after"))
    );
}

#[test]
fn a_redis_that_lost_its_data_starts_a_new_epoch_and_never_reuses_offsets() {
    if !redis::available() {
        return;
    }
    let redis = Redis::start();
    let server = instance(&redis);
    let mut client = Client::connect(server.addr());
    subscribe(&mut client, "news", None);
    for n in 0..3 {
        client.publish("news", json!(n), 10 + n);
    }
    let mut last = Value::Null;
    for _ in 0..3 {
        last = publication(&mut client);
    }
    assert_eq!(last["offset"], 3);
    let old_epoch = last["epoch"].clone();

    // Redis goes away. Once the bridge has noticed, publications still reach this instance's
    // subscribers, without a position: they are not kept. (Another channel shows it, so that
    // "news" has no append in flight, which the bridge would send again once Redis is back.)
    let port = redis.stop();
    let mut prober = Client::connect(server.addr());
    subscribe(&mut prober, "probe", None);
    let deadline = Instant::now() + 2 * TIMEOUT;
    let unkept = loop {
        assert!(
            Instant::now() < deadline,
            "no publication while Redis was down"
        );
        prober.publish("probe", json!("while down"), 20);
        if let Some(next) = prober.next_by(Instant::now() + Duration::from_millis(300)) {
            break next;
        }
    };
    assert_eq!(unkept["type"], "publication", "{unkept}");
    assert_eq!(unkept["data"], "while down", "{unkept}");
    assert!(
        unkept.get("offset").is_none() && unkept.get("epoch").is_none(),
        "no position for what is not kept: {unkept}"
    );

    // Redis restarts empty (no persistence): the stream and its epoch are gone. Once the
    // bridge is back, the instance no longer serves the old stream, even before anything
    // new is published.
    let _redis = Redis::start_on(port);
    let mut early = Client::connect(server.addr());
    let deadline = Instant::now() + 2 * TIMEOUT;
    let since = json!({"offset": 3, "epoch": old_epoch});
    loop {
        assert!(Instant::now() < deadline, "the old stream is still served");
        let command = json!({"type": "subscribe", "channel": "news", "since": since});
        let reply = early.ask(command, 30);
        if reply["recovered"] == false {
            assert_eq!(reply["reason"], "epoch changed", "{reply}");
            break;
        }
        early.ask(json!({"type": "unsubscribe", "channel": "news"}), 31);
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + 2 * TIMEOUT;
    let fresh = loop {
        assert!(Instant::now() < deadline, "the bridge did not come back");
        client.publish("news", json!("again"), 21);
        let next = client.next_by(Instant::now() + Duration::from_millis(300));
        if let Some(next) = next.filter(|next| next.get("offset").is_some()) {
            assert_eq!(next["type"], "publication", "{next}");
            break next;
        }
    };
    assert_eq!(fresh["offset"], 1, "{fresh}");
    assert_ne!(
        fresh["epoch"], old_epoch,
        "a new epoch, not old offsets again"
    );

    let mut back = Client::connect(server.addr());
    let since = json!({"offset": 3, "epoch": old_epoch});
    let reply = back.ask(
        json!({"type": "subscribe", "channel": "news", "since": since}),
        5,
    );
    assert_eq!(reply["recovered"], false, "{reply}");
    assert_eq!(reply["reason"], "epoch changed", "{reply}");
    assert_eq!(reply["epoch"], fresh["epoch"], "{reply}");
}

#[test]
fn connections_to_redis_lost_mid_stream_lose_no_acknowledged_publish() {
    if !redis::available() {
        return;
    }
    let redis = Redis::start();
    let server = instance(&redis);
    let mut subscriber = Client::connect(server.addr());
    subscribe(&mut subscriber, "blips", None);
    let mut publisher = Client::connect(server.addr());
    const COUNT: u64 = 3000;
    // Publishes as fast as they go, and Redis drops every connection twice meanwhile (what
    // a failover or a network blip does): appends are in flight on the bridge each time.
    for n in 0..COUNT {
        publisher.send(json!({"type": "publish", "channel": "blips", "data": n}));
        if n == COUNT / 3 || n == 2 * COUNT / 3 {
            for kind in ["pubsub", "normal"] {
                let killed = redis.command(&["CLIENT", "KILL", "TYPE", kind]);
                assert!(killed.starts_with(':'), "{killed}");
            }
        }
    }
    for _ in 0..COUNT {
        let reply = publisher.read();
        assert_eq!(reply["type"], "published", "{reply}");
    }
    // Every acknowledged publish reaches the subscriber once: through Redis with its
    // position, or, while the bridge was away, from this instance without one.
    let mut seen = vec![0u32; COUNT as usize];
    let mut last_offset = 0;
    let (mut kept, mut unkept) = (0, 0);
    let deadline = Instant::now() + 2 * TIMEOUT;
    while seen.contains(&0) {
        let Some(next) = subscriber.next_by(deadline) else {
            let missing: Vec<usize> = (0..seen.len()).filter(|&n| seen[n] == 0).collect();
            panic!("{} publications never arrived: {missing:?}", missing.len());
        };
        assert_eq!(next["type"], "publication", "{next}");
        seen[next["data"].as_u64().unwrap() as usize] += 1;
        // (Offset 0: made for Redis just as the bridge lost it, so sent unkept after all.)
        match next["offset"].as_u64().filter(|&offset| offset > 0) {
            Some(offset) => {
                assert_eq!(offset, last_offset + 1, "kept ones in offset order: {next}");
                last_offset = offset;
                kept += 1;
            }
            None => unkept += 1,
        }
    }
    assert!(seen.iter().all(|&times| times == 1), "none twice");
    assert!(kept > 0, "some went through Redis ({unkept} did not)");
}

#[test]
fn an_instance_without_redis_says_history_is_unavailable_not_that_the_epoch_changed() {
    // No redis-server needed: nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = wsloop::ClusterUrl::parse(&format!("redis://127.0.0.1:{port}")).unwrap();
    let server = TestServer::with_routes(Config::default(), move |builder| {
        (builder.cluster(url))
            .route("/pubsub", PubSub)
            .history(HistoryOptions::default())
    });
    let mut client = Client::connect(server.addr());
    // Neither a position in a stream nor the start of one (offset 0) can be answered for.
    for (n, since) in [
        json!({"offset": 0, "epoch": ""}),
        json!({"offset": 3, "epoch": "8f3a09c1"}),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = client.ask(
            json!({"type": "subscribe", "channel": "news", "since": since}),
            1,
        );
        assert_eq!(reply["recovered"], false, "{reply}");
        assert_eq!(
            reply["reason"], "history unavailable: Redis is unreachable",
            "{reply}"
        );
        if n == 0 {
            client.ask(json!({"type": "unsubscribe", "channel": "news"}), 9);
        }
    }
    // Live delivery on this instance goes on, unkept.
    client.publish("news", json!("here"), 2);
    let live = publication(&mut client);
    assert_eq!(live["data"], "here", "{live}");
    assert!(live.get("offset").is_none(), "{live}");
}

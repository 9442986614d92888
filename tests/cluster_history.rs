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

    // Redis goes away. Once the bridge has noticed (a publication handed to it as Redis went
    // may be lost), publications still reach this instance's subscribers, without a position:
    // they are not kept.
    let port = redis.stop();
    let deadline = Instant::now() + 2 * TIMEOUT;
    let unkept = loop {
        assert!(
            Instant::now() < deadline,
            "no publication while Redis was down"
        );
        client.publish("news", json!("while down"), 20);
        if let Some(next) = client.next_by(Instant::now() + Duration::from_millis(300)) {
            break next;
        }
    };
    assert_eq!(unkept["type"], "publication", "{unkept}");
    assert_eq!(unkept["data"], "while down", "{unkept}");
    assert!(
        unkept.get("offset").is_none() && unkept.get("epoch").is_none(),
        "no position for what is not kept: {unkept}"
    );

    // Redis restarts empty (no persistence): the stream and its epoch are gone.
    let _redis = Redis::start_on(port);
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

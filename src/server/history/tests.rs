//! The history log with simulated time: positions, recovery, and every bound.

use std::sync::Arc;

use super::log::{Bounds, Log};
use super::{NotRecovered, StreamPosition};
use crate::protocol::outbound::{Message, Prepared};

const BOUNDS: Bounds = Bounds {
    per_topic: 100,
    ttl_ms: 60_000,
    total_bytes: 1 << 20,
};

fn epoch(name: &'static str) -> impl FnOnce() -> Arc<str> {
    move || name.into()
}

/// Appends "<topic> <offset>" to `topic` at time `now`.
fn append(log: &mut Log, topic: &str, now: u64, bounds: Bounds) -> StreamPosition {
    let (position, kept) = log.append(topic, now, bounds, epoch("e1"), |p| {
        Prepared::new(Message::Text(&format!("{topic} {}", p.offset)))
    });
    assert_eq!(
        kept.message().as_bytes(),
        format!("{topic} {}", position.offset).as_bytes()
    );
    position
}

fn offsets(
    log: &Log,
    topic: &str,
    since: Option<&StreamPosition>,
    limit: usize,
    now: u64,
) -> Result<Vec<u64>, NotRecovered> {
    log.read(topic, since, limit, now, BOUNDS)
        .map(|page| page.messages.iter().map(|kept| kept.offset()).collect())
}

fn at(offset: u64) -> StreamPosition {
    StreamPosition {
        offset,
        epoch: "e1".into(),
    }
}

#[test]
fn offsets_count_up_from_one_per_topic_and_since_gets_exactly_what_followed() {
    let mut log = Log::default();
    for n in 1..=10 {
        assert_eq!(append(&mut log, "a", 0, BOUNDS).offset, n);
    }
    assert_eq!(
        append(&mut log, "b", 0, BOUNDS).offset,
        1,
        "each topic has its own stream"
    );
    assert_eq!(offsets(&log, "a", Some(&at(7)), 100, 0), Ok(vec![8, 9, 10]));
    assert_eq!(
        offsets(&log, "a", Some(&at(10)), 100, 0),
        Ok(vec![]),
        "up to date"
    );
    assert_eq!(
        offsets(&log, "a", Some(&at(0)), 100, 0),
        Ok((1..=10).collect())
    );
    assert_eq!(
        offsets(&log, "a", Some(&at(2)), 3, 0),
        Ok(vec![3, 4, 5]),
        "a page"
    );
    assert_eq!(
        offsets(&log, "a", None, 3, 0),
        Ok(vec![8, 9, 10]),
        "the latest"
    );
    assert_eq!(log.position("a"), Some(at(10)));
}

#[test]
fn a_position_that_cannot_be_served_says_why_and_where_the_stream_is() {
    let mut log = Log::default();
    for _ in 0..5 {
        append(&mut log, "a", 0, BOUNDS);
    }
    let other = StreamPosition {
        offset: 3,
        epoch: "e0".into(),
    };
    assert_eq!(
        offsets(&log, "a", Some(&other), 10, 0),
        Err(NotRecovered::OtherEpoch(at(5)))
    );
    assert_eq!(
        offsets(&log, "a", Some(&at(6)), 10, 0),
        Err(NotRecovered::Ahead(at(5)))
    );
    let none = StreamPosition::none();
    let from_before = StreamPosition {
        offset: 0,
        epoch: "".into(),
    };
    assert_eq!(
        offsets(&log, "a", Some(&from_before), 10, 0),
        Ok(vec![1, 2, 3, 4, 5]),
        "offset 0: nothing yet, any epoch"
    );
    assert_eq!(
        offsets(&log, "nothing", Some(&at(1)), 10, 0),
        Err(NotRecovered::OtherEpoch(none))
    );
    assert_eq!(offsets(&log, "nothing", None, 10, 0), Ok(vec![]));
}

#[test]
fn each_topic_keeps_its_last_messages_and_older_positions_are_not_recovered() {
    let mut log = Log::default();
    let bounds = Bounds {
        per_topic: 3,
        ..BOUNDS
    };
    for _ in 0..10 {
        append(&mut log, "a", 0, bounds);
    }
    assert_eq!(
        log.read("a", Some(&at(7)), 10, 0, bounds)
            .unwrap()
            .messages
            .len(),
        3
    );
    assert!(matches!(
        log.read("a", Some(&at(6)), 10, 0, bounds),
        Err(NotRecovered::Evicted(_))
    ));
    assert_eq!(log.size().0, 3);
}

#[test]
fn messages_expire_and_a_silent_topic_is_forgotten_after_two_ttls() {
    let mut log = Log::default();
    append(&mut log, "a", 0, BOUNDS);
    append(&mut log, "a", 30_000, BOUNDS);
    // Past the first's TTL: it is not served, even before anything sweeps it.
    assert_eq!(offsets(&log, "a", Some(&at(1)), 10, 60_001), Ok(vec![2]));
    assert!(matches!(
        offsets(&log, "a", Some(&at(0)), 10, 60_001),
        Err(NotRecovered::Evicted(_))
    ));
    log.expire(60_001, BOUNDS);
    assert_eq!(log.size().0, 1);
    log.expire(90_001, BOUNDS);
    assert_eq!(log.size(), (0, 0));
    assert_eq!(
        log.position("a"),
        Some(at(2)),
        "an empty stream keeps its place a while"
    );
    log.expire(30_000 + 2 * 60_000 + 1, BOUNDS);
    assert_eq!(log.position("a"), None, "forgotten");
    let (position, _) = log.append("a", 200_000, BOUNDS, epoch("e2"), |_| {
        Prepared::new(Message::Text("x"))
    });
    assert_eq!(
        (position.offset, &*position.epoch),
        (1, "e2"),
        "a new stream, a new epoch"
    );
}

#[test]
fn the_byte_bound_lets_the_oldest_go_first_across_topics() {
    let mut log = Log::default();
    let frame = Prepared::new(Message::Binary(&[0; 1000])).frame_len();
    let bounds = Bounds {
        total_bytes: 10 * frame,
        ..BOUNDS
    };
    for i in 0..20 {
        let topic = ["a", "b"][i % 2];
        log.append(topic, i as u64, bounds, epoch("e1"), |_| {
            Prepared::new(Message::Binary(&[0; 1000]))
        });
    }
    assert_eq!(log.size(), (10, 10 * frame));
    assert_eq!(offsets(&log, "a", None, 100, 20), Ok(vec![6, 7, 8, 9, 10]));
    assert_eq!(offsets(&log, "b", None, 100, 20), Ok(vec![6, 7, 8, 9, 10]));
}

#[test]
fn the_append_order_stays_bounded_when_topics_trim_themselves() {
    let mut log = Log::default();
    let bounds = Bounds {
        per_topic: 2,
        ..BOUNDS
    };
    append(&mut log, "slow", 0, bounds);
    for _ in 0..100_000 {
        append(&mut log, "fast", 0, bounds);
    }
    assert_eq!(log.size().0, 3);
    assert_eq!(offsets(&log, "slow", Some(&at(0)), 10, 0), Ok(vec![1]));
    assert!(
        log.order_len() <= 2 * 3 + 1024,
        "{} entries",
        log.order_len()
    );
}

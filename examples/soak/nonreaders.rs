//! Non-readers: connections subscribed to /broadcast that never read, held for 20 to 40 s
//! while the flood fills their queues; the server must close them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::raw::{count_upgrade_error, raw_upgrade, RawWs, ReadEnd};
use crate::rng::Rng;
use crate::shared::Shared;

pub fn nonreaders(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let target = shared.settings.nonreaders;
    // (the connection, when it is let go)
    let mut held: Vec<(RawWs, Instant)> = Vec::new();
    while shared.running() {
        // Top up a few at a time, so their ends are spread out.
        for _ in 0..4 {
            if held.len() >= target || !shared.running() {
                break;
            }
            match raw_upgrade(&shared, "/broadcast", &mut rng) {
                Ok(ws) => {
                    shared.stats.inc("upgrades");
                    shared.stats.inc("nonreader_upgrades");
                    shared.stats.inc("abusive_connections");
                    let hold = Duration::from_millis(rng.range(20_000, 40_000));
                    held.push((ws, Instant::now() + hold));
                }
                Err(e) => count_upgrade_error(&shared, "nonreader", &e),
            }
        }
        let now = Instant::now();
        let mut i = 0;
        while i < held.len() {
            if held[i].1 <= now && shared.running() {
                let (ws, _) = held.swap_remove(i);
                nonreader_verdict(&shared, ws);
            } else {
                i += 1;
            }
        }
        shared.sleep(Duration::from_millis(200));
    }
    shared
        .stats
        .add("nonreader_dropped_at_deadline", held.len() as u64);
}

/// Reads what a non-reader was sent, to see whether the server closed it.
fn nonreader_verdict(shared: &Shared, mut ws: RawWs) {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut bytes = 0u64;
    let mut close = None;
    let end = loop {
        match ws.reader.next(&mut ws.tcp, deadline) {
            ReadEnd::Frame(frame) => {
                bytes += frame.payload.len() as u64;
                if frame.opcode == 0x8 {
                    close = Some(frame.close_code());
                }
            }
            end => break end,
        }
    };
    shared.stats.max("nonreader_max_unread_bytes", bytes);
    match (close, &end) {
        (Some(code), _) => shared
            .stats
            .inc(&format!("nonreader_closed_by_server_{code}")),
        (None, ReadEnd::Eof | ReadEnd::Reset) => shared
            .stats
            .inc("nonreader_dropped_by_server_without_close"),
        // Still open after its hold: the server kept queueing for a client that never reads.
        (None, _) => shared.stats.inc("nonreader_still_open_after_hold"),
    }
}

//! Garbage: random bytes instead of a request head, an oversized request head, and random
//! bytes after a valid upgrade (sometimes after a valid message); counts how the server
//! answered and whether it closed.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::raw::{
    classify, client_frame, count_upgrade_error, expect_close, raw_upgrade, tcp_connect,
    write_counted, ReadEnd,
};
use crate::rng::Rng;
use crate::shared::{Pacer, Shared};

pub fn garbage(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let settle = shared.settings.handshake_timeout + Duration::from_secs(3);
    let mut pacer = Pacer::new(
        shared.settings.garbage_rate,
        shared.settings.garbage_threads,
    );
    while shared.running() {
        pacer.wait(&shared, 1);
        if !shared.running() {
            break;
        }
        match rng.range(0, 3) {
            0 => {
                let len = rng.range(1, 2048) as usize;
                let bytes = rng.bytes(len);
                garbage_head(&shared, &bytes, "garbage_pre", settle);
            }
            1 => {
                let mut head = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
                while head.len() < 16 << 10 {
                    head.extend_from_slice(
                        b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
                    );
                }
                garbage_head(&shared, &head, "garbage_big_head", settle);
            }
            variant => {
                let path = if rng.chance(50) { "/" } else { "/broadcast" };
                let mut ws = match raw_upgrade(&shared, path, &mut rng) {
                    Ok(ws) => ws,
                    Err(e) => {
                        count_upgrade_error(&shared, "garbage_post", &e);
                        continue;
                    }
                };
                shared.stats.inc("upgrades");
                shared.stats.inc("garbage_post_upgrades");
                shared.stats.inc("abusive_connections");
                let mut bytes = Vec::new();
                if variant == 3 && path == "/" {
                    // A valid message first: it must still be echoed before the garbage hits.
                    bytes = client_frame(0x1, true, b"valid before garbage", &mut rng);
                }
                let len = rng.range(1, 4096) as usize;
                bytes.extend(rng.bytes(len));
                if write_counted(&shared, &mut ws.tcp, &bytes, "garbage_post") {
                    // Random bytes may be a frame header waiting for a payload that never
                    // comes: then the server rightly waits, and the connection is dropped here.
                    expect_close(
                        &shared,
                        &mut ws,
                        Instant::now() + Duration::from_secs(3),
                        "garbage_post",
                    );
                }
            }
        }
    }
}

/// Sends a bad request head and sees how the server answers.
fn garbage_head(shared: &Shared, bytes: &[u8], prefix: &str, settle: Duration) {
    let mut tcp = match tcp_connect(shared.settings.addr) {
        Ok(tcp) => tcp,
        Err(e) => {
            shared
                .stats
                .inc(&format!("{prefix}_connect_failed_{:?}", e.kind()));
            return;
        }
    };
    shared.stats.inc(&format!("{prefix}_sent"));
    shared.stats.inc("abusive_connections");
    // The server may answer and close before everything is written: that is fine.
    let _ = tcp.write_all(bytes);
    let deadline = Instant::now() + settle;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || tcp.set_read_timeout(Some(left)).is_err() {
            break ReadEnd::Timeout;
        }
        match tcp.read(&mut chunk) {
            Ok(0) => break ReadEnd::Eof,
            Ok(n) if reply.len() < 4096 => reply.extend_from_slice(&chunk[..n]),
            Ok(_) => {}
            Err(e) => break classify(&e),
        }
    };
    if reply.starts_with(b"HTTP/1.1 ") && reply.len() >= 12 {
        let status = String::from_utf8_lossy(&reply[9..12]).into_owned();
        shared.stats.inc(&format!("{prefix}_answered_{status}"));
    }
    match end {
        ReadEnd::Eof | ReadEnd::Reset => shared.stats.inc(&format!("{prefix}_closed_by_server")),
        ReadEnd::Timeout => shared.stats.inc(&format!("{prefix}_not_closed_in_time")),
        _ => shared.stats.inc(&format!("{prefix}_read_error")),
    }
}

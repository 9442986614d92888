//! Oversize: frame headers claiming more than the server's message limit (one past it, or
//! 2^62), and fragments each within the limit that add up past it; the server must close.

use std::sync::Arc;
use std::time::Instant;

use crate::raw::{
    client_frame, count_upgrade_error, expect_close, frame_header, raw_upgrade, write_counted,
};
use crate::rng::Rng;
use crate::shared::{Pacer, Shared, IO_TIMEOUT};

pub fn oversize(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let max = shared.settings.max_message_size;
    let mut pacer = Pacer::new(
        shared.settings.oversize_rate,
        shared.settings.oversize_threads,
    );
    while shared.running() {
        pacer.wait(&shared, 1);
        if !shared.running() {
            break;
        }
        let variant = rng.range(0, 3);
        let path = if variant == 3 { "/broadcast" } else { "/" };
        let mut ws = match raw_upgrade(&shared, path, &mut rng) {
            Ok(ws) => ws,
            Err(e) => {
                count_upgrade_error(&shared, "oversize", &e);
                continue;
            }
        };
        shared.stats.inc("upgrades");
        shared.stats.inc("oversize_upgrades");
        shared.stats.inc("abusive_connections");
        let mask = (rng.next() as u32).to_le_bytes();
        let sent = match variant {
            // One past the limit, with part of the payload following.
            0 | 3 => {
                let mut bytes = frame_header(0x2, true, max + 1, mask);
                bytes.extend(rng.bytes(1024));
                write_counted(&shared, &mut ws.tcp, &bytes, "oversize")
            }
            // A 64-bit length of 2^62.
            1 => {
                let bytes = frame_header(0x2, true, 1 << 62, mask);
                write_counted(&shared, &mut ws.tcp, &bytes, "oversize")
            }
            // Fragments each within the limit, together past it.
            _ => {
                let part = rng.bytes((max / 2 + 1) as usize);
                let mut ok = true;
                for (i, opcode) in [0x2, 0x0, 0x0].into_iter().enumerate() {
                    let frame = client_frame(opcode, i == 2, &part, &mut rng);
                    ok = write_counted(&shared, &mut ws.tcp, &frame, "oversize_fragmented");
                    if !ok {
                        break;
                    }
                }
                ok
            }
        };
        if sent {
            let kind = [
                "oversize_header",
                "oversize_huge",
                "oversize_fragmented",
                "oversize_broadcast",
            ][variant as usize];
            expect_close(&shared, &mut ws, Instant::now() + IO_TIMEOUT, kind);
        }
    }
}

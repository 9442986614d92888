//! The broadcast flood: what fills the non-readers' queues. Flood messages carry a pattern the
//! checker verifies; the discarding broadcaster (also the checker's sender) reads and throws
//! away what it is sent, so it never becomes a slow consumer itself.

use std::io::{ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::raw::{client_frame, count_upgrade_error, raw_upgrade, write_counted};
use crate::rng::Rng;
use crate::shared::{Pacer, Shared};

/// A flood message: "FLD", its sequence number, then a pattern the checker verifies.
fn flood_payload(seq: u64, size: usize) -> Vec<u8> {
    let mut payload = b"FLD".to_vec();
    payload.extend_from_slice(&seq.to_le_bytes());
    let start = payload.len();
    payload.extend((start..size).map(|i| (seq as u8).wrapping_add(i as u8)));
    payload
}

pub fn flood_payload_intact(payload: &[u8]) -> bool {
    if payload.len() < 11 {
        return false;
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&payload[3..11]);
    let seq = u64::from_le_bytes(seq);
    payload[11..]
        .iter()
        .enumerate()
        .all(|(i, b)| *b == (seq as u8).wrapping_add((i + 11) as u8))
}

/// A raw /broadcast connection whose incoming messages are read and thrown away by a thread,
/// so it never becomes a slow consumer itself. Returns the writing half.
pub fn discarding_broadcaster(
    shared: &Arc<Shared>,
    rng: &mut Rng,
    prefix: &'static str,
) -> Option<(TcpStream, thread::JoinHandle<()>)> {
    let ws = match raw_upgrade(shared, "/broadcast", rng) {
        Ok(ws) => ws,
        Err(e) => {
            count_upgrade_error(shared, prefix, &e);
            return None;
        }
    };
    shared.stats.inc("upgrades");
    shared.stats.inc(&format!("{prefix}_upgrades"));
    let mut reader = ws.tcp.try_clone().ok()?;
    let shared2 = shared.clone();
    let handle = thread::spawn(move || {
        let mut sink = vec![0u8; 64 << 10];
        let _ = reader.set_read_timeout(Some(Duration::from_millis(500)));
        while shared2.running() {
            match reader.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => break,
            }
        }
    });
    Some((ws.tcp, handle))
}

pub fn flood(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let mut pacer = Pacer::new(shared.settings.flood_rate, 1);
    while shared.running() {
        let Some((mut tcp, reader)) = discarding_broadcaster(&shared, &mut rng, "flood") else {
            shared.sleep(Duration::from_millis(500));
            continue;
        };
        while shared.running() {
            let seq = shared.flood_seq.fetch_add(1, Ordering::Relaxed);
            let frame = client_frame(
                0x2,
                true,
                &flood_payload(seq, shared.settings.flood_size),
                &mut rng,
            );
            if !write_counted(&shared, &mut tcp, &frame, "flood") {
                shared.stats.inc("flood_reconnects");
                break;
            }
            shared.stats.inc("flood_messages");
            pacer.wait(&shared, 1);
        }
        let _ = tcp.shutdown(Shutdown::Both);
        let _ = reader.join();
    }
}

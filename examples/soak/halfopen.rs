//! Half-open handshakes: silent, partial and drip-fed upgrade requests, held in batches; the
//! server must close each within its handshake timeout.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::raw::{tcp_connect, upgrade_request};
use crate::rng::Rng;
use crate::shared::Shared;

pub fn halfopen(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let timeout = shared.settings.handshake_timeout;
    let slack = Duration::from_millis(2000);
    while shared.running() {
        struct Held {
            tcp: TcpStream,
            kind: &'static str,
            opened: Instant,
            request: Vec<u8>,
            sent: usize,
            reply: Vec<u8>,
            done: bool,
        }
        let mut batch = Vec::new();
        for _ in 0..shared.settings.halfopen_batch {
            if !shared.running() {
                break;
            }
            let mut tcp = match tcp_connect(shared.settings.addr) {
                Ok(tcp) => tcp,
                Err(e) => {
                    shared
                        .stats
                        .inc(&format!("halfopen_connect_failed_{:?}", e.kind()));
                    continue;
                }
            };
            let request =
                upgrade_request("/broadcast", shared.settings.addr, &mut rng).into_bytes();
            let (kind, sent) = match rng.range(0, 2) {
                0 => ("halfopen_silent", 0),
                1 => ("halfopen_partial", request.len() / 2),
                _ => ("halfopen_drip", 0),
            };
            if tcp.write_all(&request[..sent]).is_err() || tcp.set_nonblocking(true).is_err() {
                shared.stats.inc("halfopen_write_failed");
                continue;
            }
            shared.stats.inc(&format!("{kind}_opened"));
            shared.stats.inc("abusive_connections");
            batch.push(Held {
                tcp,
                kind,
                opened: Instant::now(),
                request,
                sent,
                reply: Vec::new(),
                done: false,
            });
        }
        if batch.is_empty() {
            shared.sleep(Duration::from_millis(200)); // the server is gone: do not spin
            continue;
        }
        let bound = Instant::now() + timeout + slack + Duration::from_secs(3);
        let mut last_drip = Instant::now();
        let mut chunk = [0u8; 1024];
        while batch.iter().any(|h| !h.done) && Instant::now() < bound && shared.running() {
            let drip = last_drip.elapsed() >= Duration::from_millis(300);
            if drip {
                last_drip = Instant::now();
            }
            for h in batch.iter_mut().filter(|h| !h.done) {
                // One byte every 300 ms: the whole request would take about a minute.
                if drip
                    && h.kind == "halfopen_drip"
                    && h.sent < h.request.len() - 1
                    && h.tcp.write(&h.request[h.sent..h.sent + 1]).is_ok()
                {
                    h.sent += 1;
                }
                let closed = match h.tcp.read(&mut chunk) {
                    Ok(0) => true,
                    Ok(n) => {
                        if h.reply.len() < 1024 {
                            h.reply.extend_from_slice(&chunk[..n]);
                        }
                        false
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => false,
                    Err(_) => true,
                };
                if closed {
                    h.done = true;
                    let took = h.opened.elapsed();
                    shared
                        .stats
                        .max("halfopen_slowest_close_ms", took.as_millis() as u64);
                    if took <= timeout + slack {
                        shared.stats.inc(&format!("{}_closed_in_time", h.kind));
                    } else {
                        shared.stats.inc(&format!("{}_closed_late", h.kind));
                    }
                    if h.reply.starts_with(b"HTTP/1.1 ") && h.reply.len() >= 12 {
                        let status = String::from_utf8_lossy(&h.reply[9..12]).into_owned();
                        shared.stats.inc(&format!("halfopen_answered_{status}"));
                    }
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
        for h in &batch {
            if !h.done {
                if shared.running() {
                    shared.stats.inc(&format!("{}_never_closed", h.kind));
                } else {
                    shared.stats.inc("halfopen_dropped_at_deadline");
                }
            }
        }
        for h in batch {
            let _ = h.tcp.shutdown(Shutdown::Both);
        }
    }
}

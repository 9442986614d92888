//! A connection-rate load: threads that each open a WebSocket, wait for the 101, close it
//! with a close handshake (1000) and start again, for a while. What the server pays per
//! connection (the handshake, the token check when the URL carries one, the close) is its CPU
//! time over the connections this counts (scripts/bench.sh --only auth).
//!
//! Run: `cargo run --release --example connect-rate -- ws://127.0.0.1:9001/echo?token=T
//! --threads 4 --duration 5s`; prints one JSON line: connections, refused, seconds, rate.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A masked close frame, code 1000, no reason (RFC 6455 §5.5.1).
const CLOSE: [u8; 8] = [0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xE8 ^ 2];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: connect-rate ws://HOST:PORT/PATH[?token=T] [--threads N] [--duration SECS]";
    let url = args
        .first()
        .filter(|u| u.starts_with("ws://"))
        .expect(usage);
    let flag = |name: &str, default: u64| -> u64 {
        (args.iter().position(|a| a == name))
            .and_then(|i| args.get(i + 1))
            .map(|v| v.trim_end_matches('s').parse().expect(usage))
            .unwrap_or(default)
    };
    let (threads, seconds) = (flag("--threads", 4), flag("--duration", 5));
    let rest = &url["ws://".len()..];
    let (host, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let target = if target.is_empty() { "/" } else { target };
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let (done, refused, stop) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (host, request) = (host.to_string(), request.clone());
            let (done, refused, stop) = (done.clone(), refused.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match cycle(&host, request.as_bytes()) {
                        Ok(true) => done.fetch_add(1, Ordering::Relaxed),
                        Ok(false) => refused.fetch_add(1, Ordering::Relaxed),
                        Err(e) => panic!("connect-rate: {e}"),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().expect("a worker failed");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let connections = done.load(Ordering::Relaxed);
    println!(
        "{{\"connections\":{connections},\"refused\":{},\"seconds\":{elapsed:.3},\"rate\":{:.0}}}",
        refused.load(Ordering::Relaxed),
        connections as f64 / elapsed
    );
}

/// One connection: upgrade, then a close handshake. `Ok(false)` when the upgrade was refused.
fn cycle(host: &str, request: &[u8]) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect(host)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request)?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(false);
        }
        head.extend_from_slice(&buf[..n]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Ok(false);
    }
    stream.write_all(&CLOSE)?;
    // The server's close, then its end of the connection.
    while stream.read(&mut buf)? > 0 {}
    Ok(true)
}

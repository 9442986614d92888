//! How fast a `Publisher` publishes from another thread: a server with one subscriber of a
//! topic, a thread that publishes 64-byte messages to it as fast as the server takes them
//! (a full inbox is waited out, never counted), and a reader that drains the subscriber's
//! socket. Prints one JSON line: publishes, seconds, publishes per second, and the bytes the
//! subscriber read (each delivered message is a 66-byte frame).
//!
//! Run: `cargo run --release --example publisher-rate -- --duration 5`
//! (scripts/bench.sh --only api runs it.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsloop::{Context, Handler, Message, PublishError, Server};

/// Subscribes every connection to "t".
struct Subscriber;

impl Handler for Subscriber {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.subscribe("t");
        ctx.send_text("ready");
    }

    fn on_message(&mut self, _ctx: &mut Context<'_>, _message: Message<'_>) {}
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = (args.iter().position(|a| a == "--duration"))
        .and_then(|i| args.get(i + 1))
        .map_or(5, |v| {
            v.trim_end_matches('s').parse().expect("--duration SECONDS")
        });
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .route("/t", Subscriber)
        .build()
        .expect("the server builds");
    let (addr, publisher, stop) = (
        server.local_addr(),
        server.publisher(),
        server.shutdown_handle(),
    );
    let serving = std::thread::spawn(move || server.run());

    let mut socket = TcpStream::connect(addr).expect("connect");
    let request = format!(
        "GET /t HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).unwrap();
    // The 101 and the "ready" frame: the subscription is in place.
    let mut seen = Vec::new();
    let mut buffer = vec![0; 64 * 1024];
    while !seen.windows(5).any(|w| w == b"ready") {
        let n = socket.read(&mut buffer).expect("read");
        assert!(n > 0, "the server closed");
        seen.extend_from_slice(&buffer[..n]);
    }
    let read = Arc::new(AtomicU64::new(0));
    let reader = {
        let read = read.clone();
        std::thread::spawn(move || loop {
            match socket.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => read.fetch_add(n as u64, Ordering::Relaxed),
            };
        })
    };

    let payload = "x".repeat(64);
    let (published, full) = (AtomicU64::new(0), AtomicU64::new(0));
    let running = AtomicBool::new(true);
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while running.load(Ordering::Relaxed) {
                for _ in 0..1024 {
                    loop {
                        match publisher.publish("t", Message::Text(&payload)) {
                            Ok(_) => break,
                            Err(PublishError::Full) => {
                                full.fetch_add(1, Ordering::Relaxed);
                                std::thread::yield_now();
                            }
                            Err(e) => panic!("publish: {e}"),
                        }
                    }
                }
                published.fetch_add(1024, Ordering::Relaxed);
            }
        });
        std::thread::sleep(Duration::from_secs(seconds));
        running.store(false, Ordering::Relaxed);
    });
    let elapsed = started.elapsed().as_secs_f64();
    let published = published.load(Ordering::Relaxed);
    stop.shutdown();
    serving.join().unwrap().unwrap();
    reader.join().unwrap();
    println!(
        "{{\"publishes\":{published},\"seconds\":{elapsed:.3},\"rate\":{:.0},\"full_waits\":{},\"bytes_read\":{}}}",
        published as f64 / elapsed,
        full.load(Ordering::Relaxed),
        read.load(Ordering::Relaxed)
    );
}

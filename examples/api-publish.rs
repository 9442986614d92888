//! A load on the HTTP API: `--subscribers` WebSockets on /pubsub subscribed to one channel
//! (read on one thread and discarded), and `--clients` kept-alive HTTP connections, each on
//! its own thread, that `POST /api/publish` a 64-byte message with `--pipeline` requests in
//! flight (default 1: send, wait for the answer, again), a new one sent as each answer comes. Prints one JSON line: publishes, seconds, publishes per second, and the bytes
//! the subscribers read. The server's CPU per request is its CPU time over `publishes`
//! (scripts/bench.sh --only api measures it). With `--via ws`, the clients publish through
//! /pubsub WebSockets instead (the same message, acknowledged by the server's `published`
//! reply), for comparison: what the HTTP request path costs over a WebSocket's.
//!
//! Run against `wsloop --api-key-file KEYFILE`:
//! `cargo run --release --example api-publish -- 127.0.0.1:9001 KEYFILE --subscribers 1000
//! --clients 10 --duration 5`

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: api-publish HOST:PORT KEYFILE [--subscribers N] [--clients N] \
                 [--pipeline N] [--duration SECS]";
    let addr: SocketAddr = args.first().and_then(|a| a.parse().ok()).expect(usage);
    let key = std::fs::read_to_string(args.get(1).expect(usage)).expect("read the key file");
    let key = key.trim_end().to_string();
    let flag = |name: &str, default: u64| -> u64 {
        (args.iter().position(|a| a == name))
            .and_then(|i| args.get(i + 1))
            .map(|v| v.trim_end_matches('s').parse().expect(usage))
            .unwrap_or(default)
    };
    let (subscribers, clients, seconds) = (
        flag("--subscribers", 1000),
        flag("--clients", 10),
        flag("--duration", 5),
    );
    let pipeline = flag("--pipeline", 1).max(1);
    let via_ws = (args.iter().position(|a| a == "--via"))
        .and_then(|i| args.get(i + 1))
        .is_some_and(|via| via == "ws");
    let read = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sockets: Vec<TcpStream> = (0..subscribers).map(|_| subscribe(addr)).collect();
    let reader = {
        let (read, stop) = (read.clone(), stop.clone());
        std::thread::spawn(move || drain(sockets, &read, &stop))
    };
    let published = Arc::new(AtomicU64::new(0));
    let data = format!("\"{}\"", "x".repeat(62)); // 64 bytes of JSON
    let body = format!("{{\"channel\":\"bench\",\"data\":{data}}}");
    let request = format!(
        "POST /api/publish HTTP/1.1\r\nHost: {addr}\r\nAuthorization: apikey {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (request, published, stop) = (request.clone(), published.clone(), stop.clone());
            let data = data.clone();
            let command = format!("{{\"type\":\"publish\",\"channel\":\"bench\",\"data\":{data}}}");
            std::thread::spawn(move || match via_ws {
                true => ws_publish_loop(addr, command.as_bytes(), pipeline, &published, &stop),
                false => publish_loop(addr, request.as_bytes(), pipeline, &published, &stop),
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    reader.join().unwrap();
    let published = published.load(Ordering::Relaxed);
    println!(
        "{{\"publishes\":{published},\"seconds\":{elapsed:.3},\"rate\":{:.0},\"bytes_read\":{}}}",
        published as f64 / elapsed,
        read.load(Ordering::Relaxed)
    );
}

/// A /pubsub connection subscribed to "bench", once the server said so.
fn subscribe(addr: SocketAddr) -> TcpStream {
    let mut socket = TcpStream::connect(addr).expect("connect");
    let request = format!(
        "GET /pubsub HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).unwrap();
    let command = br#"{"type":"subscribe","channel":"bench"}"#;
    let mut frame = vec![0x81, 0x80 | command.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(command); // masked with a zero key
    socket.write_all(&frame).unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0; 4096];
    while !seen.windows(12).any(|w| w == b"\"subscribed\"") {
        let n = socket.read(&mut buffer).expect("read");
        assert!(n > 0, "the server closed a subscriber");
        seen.extend_from_slice(&buffer[..n]);
    }
    socket
}

/// Reads every subscriber until told to stop, counting bytes.
fn drain(sockets: Vec<TcpStream>, read: &AtomicU64, stop: &AtomicBool) {
    let mut poll = Poll::new().unwrap();
    let mut streams: Vec<MioStream> = Vec::new();
    for (i, socket) in sockets.into_iter().enumerate() {
        socket.set_nonblocking(true).unwrap();
        let mut stream = MioStream::from_std(socket);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)
            .unwrap();
        streams.push(stream);
    }
    let mut events = Events::with_capacity(1024);
    let mut buffer = vec![0; 256 * 1024];
    while !stop.load(Ordering::Relaxed) {
        poll.poll(&mut events, Some(Duration::from_millis(50)))
            .unwrap();
        for event in events.iter() {
            let stream = &mut streams[event.token().0];
            loop {
                match stream.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => read.fetch_add(n as u64, Ordering::Relaxed),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => panic!("a subscriber failed: {e}"),
                };
            }
        }
    }
}

/// Publishes with `pipeline` requests in flight, a new one as each answer comes, until told
/// to stop; then reads the answers still due.
fn publish_loop(
    addr: SocketAddr,
    request: &[u8],
    pipeline: u64,
    published: &AtomicU64,
    stop: &AtomicBool,
) {
    let socket = TcpStream::connect(addr).expect("connect");
    socket.set_nodelay(true).unwrap();
    let mut writer = socket.try_clone().unwrap();
    let mut reader = BufReader::new(socket);
    let mut line = String::new();
    writer
        .write_all(&request.repeat(pipeline as usize))
        .unwrap();
    let mut in_flight = pipeline;
    while in_flight > 0 {
        if stop.load(Ordering::Relaxed) {
            in_flight -= 1;
        } else {
            writer.write_all(request).unwrap();
        }
        let mut length = 0;
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "{line}");
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(value) = line.strip_prefix("Content-Length: ") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        published.fetch_add(1, Ordering::Relaxed);
    }
}

/// [`publish_loop`] through a /pubsub WebSocket: each publish command (a masked text frame)
/// answered by a `published` reply.
fn ws_publish_loop(
    addr: SocketAddr,
    command: &[u8],
    pipeline: u64,
    published: &AtomicU64,
    stop: &AtomicBool,
) {
    let mut socket = TcpStream::connect(addr).expect("connect");
    socket.set_nodelay(true).unwrap();
    let request = format!(
        "GET /pubsub HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(socket.try_clone().unwrap());
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    assert!(command.len() < 126);
    let mut frame = vec![0x81, 0x80 | command.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(command); // masked with a zero key
    socket.write_all(&frame.repeat(pipeline as usize)).unwrap();
    let mut in_flight = pipeline;
    let mut payload = Vec::new();
    while in_flight > 0 {
        if stop.load(Ordering::Relaxed) {
            in_flight -= 1;
        } else {
            socket.write_all(&frame).unwrap();
        }
        let mut head = [0; 2];
        reader.read_exact(&mut head).unwrap();
        let length = match head[1] & 0x7f {
            126 => {
                let mut extended = [0; 2];
                reader.read_exact(&mut extended).unwrap();
                u16::from_be_bytes(extended) as usize
            }
            n => n as usize,
        };
        payload.resize(length, 0);
        reader.read_exact(&mut payload).unwrap();
        assert!(
            payload.starts_with(b"{\"type\":\"published\""),
            "{:?}",
            String::from_utf8_lossy(&payload)
        );
        published.fetch_add(1, Ordering::Relaxed);
    }
}

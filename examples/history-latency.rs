//! Delivery latency of /pubsub with history kept in memory or written behind to SQLite
//! (`--history-store`): one client subscribes to a channel and publishes to it at a steady
//! rate, and times each publication from the moment it sent it to the moment it came back.
//! The SQLite store must not move this: its writes are off the loop.
//!
//! The server runs in this process on a thread of its own (one loop, as `wsloop` runs by
//! default); the client writes from one thread and reads on another, so a late reply never
//! delays the next publish.
//!
//! Run: `cargo run --release --example history-latency -- --store sqlite:/tmp/h.sqlite`
//! (`--store memory` for the baseline; `--rate N` messages/s, default 1000; `--seconds N`,
//! default 10, after 1 s of warm-up; `--payload BYTES`, default 100).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};
use wsloop::apps::PubSub;
use wsloop::{Config, HistoryOptions, Server};

struct Args {
    store: Option<String>,
    rate: u64,
    seconds: u64,
    payload: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        store: None,
        rate: 1000,
        seconds: 10,
        payload: 100,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--store" if value == "memory" => args.store = None,
            "--store" => match value.strip_prefix("sqlite:") {
                Some(path) => args.store = Some(path.to_string()),
                None => return Err("--store is memory or sqlite:PATH".into()),
            },
            "--rate" => args.rate = number()?.max(1),
            "--seconds" => args.seconds = number()?.max(1),
            "--payload" => args.payload = number()? as usize,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("history-latency: {e}");
            return ExitCode::from(2);
        }
    };
    let mut history = HistoryOptions::default();
    if let Some(path) = &args.store {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{path}{suffix}"));
        }
        history = history.sqlite(path);
    }
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .config(Config::default().metrics(true))
        .route("/pubsub", PubSub)
        .history(history)
        .build();
    let server = match server {
        Ok(server) => server,
        Err(e) => {
            eprintln!("history-latency: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.local_addr();
    let stop = server.shutdown_handle();
    let serving = std::thread::spawn(move || server.run());

    let latencies = measure(addr, &args);
    let store_lines = scrape(addr);
    stop.shutdown();
    let _ = serving.join();

    let store = args
        .store
        .as_deref()
        .map_or("memory".into(), |p| format!("sqlite:{p}"));
    // A reader that stops early (`| head -1`) ends the output, not the run.
    let mut out = std::io::stdout();
    let _ = writeln!(out, "{}", report(&store, &args, latencies));
    for line in store_lines {
        let _ = writeln!(out, "  {line}");
    }
    ExitCode::SUCCESS
}

/// Publishes at the rate for the warm-up and the run; returns each publication's latency
/// after the warm-up, in microseconds.
fn measure(addr: SocketAddr, args: &Args) -> Vec<u64> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).unwrap();
    let (mut reader, _) =
        tungstenite::client(format!("ws://{addr}/pubsub"), stream).expect("upgrade");
    let subscribe = r#"{"type":"subscribe","channel":"bench","id":0}"#;
    reader.send(Message::text(subscribe)).unwrap();
    reader.read().unwrap(); // the reply: nothing else is buffered past it
    let socket = reader.get_ref().try_clone().unwrap();
    let mut writer = WebSocket::from_raw_socket(socket, Role::Client, None);

    let start = Instant::now();
    let warmup = args.rate;
    let total = warmup + args.rate * args.seconds;
    let (rate, pad) = (args.rate, "x".repeat(args.payload));
    let publisher = std::thread::spawn(move || {
        for n in 0..total {
            let due = start + Duration::from_nanos(n * 1_000_000_000 / rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let sent = start.elapsed().as_micros();
            let command = format!(
                r#"{{"type":"publish","channel":"bench","data":{{"n":{n},"t":{sent},"pad":"{pad}"}}}}"#
            );
            writer.send(Message::text(command)).expect("publish");
        }
    });
    let mut latencies = Vec::with_capacity(total as usize);
    let mut seen = 0;
    while seen < total {
        let Message::Text(text) = reader.read().expect("read") else {
            continue;
        };
        let received = start.elapsed().as_micros() as u64;
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        if value["type"] != "publication" {
            continue; // the acknowledgements
        }
        seen += 1;
        if value["data"]["n"].as_u64().unwrap() >= warmup {
            latencies.push(received - value["data"]["t"].as_u64().unwrap());
        }
    }
    publisher.join().unwrap();
    latencies
}

/// The store's lines of `/metrics`.
fn scrape(addr: SocketAddr) -> Vec<String> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    let _ = stream.read_to_string(&mut body);
    body.lines()
        .filter(|line| {
            line.starts_with("wsloop_history_store_rows_total")
                || line.starts_with("wsloop_history_store_write_seconds_sum")
                || line.starts_with("wsloop_history_store_write_seconds_count")
        })
        .map(str::to_string)
        .collect()
}

/// The run's line: its percentiles.
fn report(store: &str, args: &Args, mut latencies: Vec<u64>) -> String {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    format!(
        "{store}: {} msgs at {}/s, {} B payload: p50 {} us, p99 {} us, p99.9 {} us, max {} us",
        latencies.len(),
        args.rate,
        args.payload,
        at(0.5),
        at(0.99),
        at(0.999),
        at(1.0)
    )
}

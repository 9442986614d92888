//! How fast a client that comes back gets what it missed on /pubsub: 10,000 publications of
//! 100 B, recovered with `since` (README: "The pub/sub protocol").
//!
//! Each run takes a fresh channel. A client subscribes, sees one publication (its last
//! position, offset N), and disconnects; another client publishes the messages it misses and
//! waits for every `published`; once the recovering server holds them all, the first client
//! reconnects, and the time from sending `subscribe` with `since` until it holds every missed
//! publication (the `subscribed` reply's page, then `history` pages from the last offset while
//! `"more":true`) is measured, JSON parsing included. It checks they are offsets N+1 to
//! N+10,000, in order, once each. Connecting is not timed.
//!
//! Servers run in this process, one loop each on a thread of its own. `--store memory` and
//! `--store sqlite:PATH` run one (recovery is served from memory either way; the file is
//! written behind). `--cluster redis://HOST:PORT` runs two instances joined through that Redis
//! (history in Redis Streams): the client subscribes and the messages are published on one,
//! and the client comes back to the other, which serves it from its copy of the streams (kept
//! up by Redis; how long that copy took to catch up after the last `published` is shown per
//! run, not timed). With `--cold` as well, the other instance starts only after the messages
//! were published, so its copy is read from Redis's streams (XRANGE, 500 a page) while it
//! starts: the time from starting it to its being ready is shown and added to the recovery
//! (each run then uses its own Redis database, 1 to 15, so a start reads that run's stream
//! only). Redis is not started here: give a running one.
//!
//! Run: `cargo run --release --example history-recovery -- --store memory` (`--runs N`,
//! default 9; `--count N`, default 10000; `--payload BYTES`, default 100; `--json` for one
//! JSON line, as scripts/bench.py reads it).

use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tungstenite::{Message, WebSocket};
use wsloop::apps::PubSub;
use wsloop::{ClusterUrl, HistoryOptions, Server, ShutdownHandle};

enum Store {
    Memory,
    Sqlite(String),
    Cluster(ClusterUrl, String),
}

struct Args {
    store: Store,
    runs: usize,
    count: u64,
    payload: usize,
    json: bool,
    cold: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        store: Store::Memory,
        runs: 9,
        count: 10_000,
        payload: 100,
        json: false,
        cold: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--json" || flag == "--cold" {
            args.json |= flag == "--json";
            args.cold |= flag == "--cold";
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--store" if value == "memory" => args.store = Store::Memory,
            "--store" => match value.strip_prefix("sqlite:") {
                Some(path) => args.store = Store::Sqlite(path.to_string()),
                None => return Err("--store is memory or sqlite:PATH".into()),
            },
            "--cluster" => args.store = Store::Cluster(ClusterUrl::parse(&value)?, value),
            "--runs" => args.runs = number()?.max(1) as usize,
            "--count" => args.count = number()?.max(1),
            "--payload" => args.payload = number()? as usize,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.cold && !matches!(args.store, Store::Cluster(..)) {
        return Err("--cold needs --cluster".into());
    }
    if args.cold && args.runs > 15 {
        return Err("--cold runs each in its own Redis database: at most 15 runs".into());
    }
    Ok(args)
}

/// A server on a thread of its own.
struct Running {
    addr: SocketAddr,
    stop: ShutdownHandle,
    thread: JoinHandle<Result<(), wsloop::Error>>,
}

/// The servers a run needs: one, or with a cluster two (the first only with `--cold`, on
/// Redis database `db`).
fn start(args: &Args, instances: usize, db: Option<usize>) -> Result<Vec<Running>, String> {
    // Room for every run's messages: nothing is evicted before it is recovered.
    let history = HistoryOptions::default()
        .size(args.count as usize * 2)
        .memory(256 << 20);
    let mut servers = Vec::new();
    for _ in 0..instances {
        let mut builder = Server::builder()
            .bind("127.0.0.1:0")
            .route("/pubsub", PubSub);
        builder = match &args.store {
            Store::Memory => builder.history(history.clone()),
            Store::Sqlite(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
                builder.history(history.clone().sqlite(path))
            }
            Store::Cluster(url, text) => {
                let url = match db {
                    Some(db) => ClusterUrl::parse(&format!("{text}/{db}"))
                        .map_err(|e| format!("--cluster {text} with a database: {e}"))?,
                    None => url.clone(),
                };
                builder.cluster(url).history(history.clone())
            }
        };
        let server = builder.build().map_err(|e| e.to_string())?;
        let (addr, stop) = (server.local_addr(), server.shutdown_handle());
        let thread = std::thread::spawn(move || server.run());
        servers.push(Running { addr, stop, thread });
    }
    Ok(servers)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("history-recovery: {e}");
            return ExitCode::from(2);
        }
    };
    let instances = match args.store {
        Store::Cluster(..) if !args.cold => 2,
        _ => 1,
    };
    let mut servers = Vec::new();
    if !args.cold {
        match start(&args, instances, None) {
            Ok(started) => servers = started,
            Err(e) => {
                eprintln!("history-recovery: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let unique = std::process::id();
    let mut times = Vec::new();
    for run in 0..args.runs {
        let channel = format!("recovery-{unique}-{run}");
        let db = args.cold.then_some(run + 1);
        if args.cold {
            match start(&args, 1, db) {
                Ok(started) => servers = started,
                Err(e) => {
                    eprintln!("history-recovery: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        // Publish on the first instance, recover on the last (the other one, with a
        // cluster; with --cold, one started once the messages are in Redis).
        let here = servers[0].addr;
        let mut there = || match db {
            None => Ok((servers[servers.len() - 1].addr, 0.0)),
            Some(db) => {
                let started = Instant::now();
                let cold = start(&args, 1, Some(db))?;
                let ready = started.elapsed().as_secs_f64() * 1000.0;
                let addr = cold[0].addr;
                servers.extend(cold);
                Ok((addr, ready))
            }
        };
        match recover(here, &mut there, &channel, &args) {
            Ok(ms) => times.push(ms),
            Err(e) => {
                eprintln!("history-recovery: run {run}: {e}");
                return ExitCode::FAILURE;
            }
        }
        if args.cold {
            stop(std::mem::take(&mut servers));
        }
    }
    stop(servers);

    let store = match &args.store {
        Store::Memory => "memory".to_string(),
        Store::Sqlite(path) => format!("sqlite:{path}"),
        Store::Cluster(_, url) if args.cold => format!("cluster {url}, started cold"),
        Store::Cluster(_, url) => format!("cluster {url}"),
    };
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let (median, max) = (sorted[sorted.len() / 2], sorted[sorted.len() - 1]);
    if args.json {
        println!(
            "{{\"store\":\"{store}\",\"count\":{},\"payload\":{},\"median_ms\":{median:.2},\
             \"max_ms\":{max:.2},\"runs_ms\":{times:.2?}}}",
            args.count, args.payload
        );
    } else {
        println!(
            "{store}: {} missed x {} B recovered in median {median:.1} ms, max {max:.1} ms \
             ({} runs: {times:.1?})",
            args.count, args.payload, args.runs
        );
    }
    ExitCode::SUCCESS
}

fn stop(servers: Vec<Running>) {
    for server in servers {
        server.stop.shutdown();
        let _ = server.thread.join();
    }
}

/// What this needs of a reply: unknown fields (a publication's `data`) are skipped.
#[derive(Deserialize)]
struct Reply {
    #[serde(rename = "type")]
    kind: String,
    offset: Option<u64>,
    epoch: Option<String>,
    recovered: Option<bool>,
    reason: Option<String>,
    #[serde(default)]
    publications: Vec<Publication>,
    #[serde(default)]
    more: bool,
}

#[derive(Deserialize)]
struct Publication {
    offset: u64,
}

struct Client(WebSocket<TcpStream>);

impl Client {
    fn connect(addr: SocketAddr) -> Result<Client, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        let (socket, _) = tungstenite::client(format!("ws://{addr}/pubsub"), stream)
            .map_err(|e| format!("upgrade: {e}"))?;
        Ok(Client(socket))
    }

    /// Queues a command; `flush` sends what is queued.
    fn write(&mut self, command: String) -> Result<(), String> {
        self.0
            .write(Message::text(command))
            .map_err(|e| format!("write: {e}"))
    }

    fn flush(&mut self) -> Result<(), String> {
        self.0.flush().map_err(|e| format!("flush: {e}"))
    }

    fn send(&mut self, command: String) -> Result<(), String> {
        self.write(command)?;
        self.flush()
    }

    /// The next reply, parsed.
    fn read(&mut self) -> Result<Reply, String> {
        loop {
            match self.0.read().map_err(|e| format!("read: {e}"))? {
                Message::Text(text) => {
                    return serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))
                }
                _ => continue,
            }
        }
    }
}

/// One run on `channel`; the recovery's duration in milliseconds.
/// One run; `there` gives the server to recover on, and how long it took to start (with
/// `--cold`), which is counted in the time returned.
fn recover(
    here: SocketAddr,
    there: &mut dyn FnMut() -> Result<(SocketAddr, f64), String>,
    channel: &str,
    args: &Args,
) -> Result<f64, String> {
    // The subscriber sees one publication: its last position.
    let mut subscriber = Client::connect(here)?;
    subscriber.send(format!(
        r#"{{"type":"subscribe","channel":"{channel}","id":0}}"#
    ))?;
    subscriber.read()?;
    let mut publisher = Client::connect(here)?;
    let data = format!("\"{}\"", "x".repeat(args.payload.saturating_sub(2)));
    let publish = format!(r#"{{"type":"publish","channel":"{channel}","data":{data}}}"#);
    let (last, epoch) = loop {
        publisher.send(publish.clone())?;
        let seen = subscriber.read()?;
        // No offset: the cluster's bridge is not connected yet, and it went out unkept.
        match (seen.kind.as_str(), seen.offset, seen.epoch) {
            ("publication", Some(offset), Some(epoch)) if offset > 0 => break (offset, epoch),
            ("publication", ..) => std::thread::sleep(Duration::from_millis(100)),
            _ => return Err(format!("unexpected {} for the subscriber", seen.kind)),
        }
    };
    drop(subscriber);

    // What it misses, in batches of 500, each answered before the next.
    let mut acked = 0;
    while acked < args.count {
        let batch = (args.count - acked).min(500);
        for _ in 0..batch {
            publisher.write(publish.clone())?;
        }
        publisher.flush()?;
        for _ in 0..batch {
            let reply = publisher.read()?;
            if reply.kind != "published" {
                return Err(format!("{} for a publish", reply.kind));
            }
        }
        acked += batch;
    }
    // Acknowledged is not yet on the other instance: wait until it has them all.
    let acknowledged = Instant::now();
    let (there, start_ms) = there()?;
    let end = last + args.count;
    let mut probe = Client::connect(there)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        probe.send(format!(
            r#"{{"type":"history","channel":"{channel}","limit":1}}"#
        ))?;
        if probe.read()?.offset.unwrap_or(0) >= end {
            break;
        }
        if Instant::now() > deadline {
            return Err("the recovering server never got every message".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let caught_up = acknowledged.elapsed().as_secs_f64() * 1000.0;

    // Back: timed from the subscribe to the last missed publication.
    let mut back = Client::connect(there)?;
    let since = format!(r#"{{"offset":{last},"epoch":"{epoch}"}}"#);
    let started = Instant::now();
    back.send(format!(
        r#"{{"type":"subscribe","channel":"{channel}","since":{since},"id":1}}"#
    ))?;
    let mut reply = back.read()?;
    if reply.kind != "subscribed" || reply.recovered != Some(true) {
        return Err(format!(
            "{} with recovered {:?}: {:?}",
            reply.kind, reply.recovered, reply.reason
        ));
    }
    let mut offsets = Vec::with_capacity(args.count as usize);
    let mut replies = 1;
    loop {
        offsets.extend(reply.publications.iter().map(|p| p.offset));
        if !reply.more {
            break;
        }
        let from = offsets.last().copied().unwrap_or(last);
        back.send(format!(
            r#"{{"type":"history","channel":"{channel}","since":{{"offset":{from},"epoch":"{epoch}"}},"limit":1000,"id":2}}"#
        ))?;
        reply = back.read()?;
        replies += 1;
        if reply.kind != "history" {
            return Err(format!("{} for a history request", reply.kind));
        }
    }
    let elapsed = started.elapsed().as_secs_f64() * 1000.0 + start_ms;
    if !offsets.iter().copied().eq(last + 1..=end) {
        return Err(format!(
            "recovered {} publications, not offsets {}..={end} in order",
            offsets.len(),
            last + 1
        ));
    }
    if !args.json {
        eprintln!(
            "  {channel}: {elapsed:.1} ms, {replies} replies (the recovering server had them \
             all {caught_up:.1} ms after the last `published`; {start_ms:.1} ms of it its start)"
        );
    }
    Ok(elapsed)
}

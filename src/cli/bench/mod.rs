//! `wsloop bench URL`: a load generator on one mio loop, built on the protocol core.
//!
//! - echo: N connections each keep `--pipeline` messages in flight; a message completes when
//!   its echo arrives, and its round trip is timed from when it was queued.
//! - broadcast: N receivers and one sender on the URL (a broadcast endpoint). The sender keeps
//!   `--pipeline` messages in flight; a message completes when every receiver has it. Each
//!   delivery counts, and its fan-out latency is timed from the send. Because one sender's
//!   messages reach every receiver in order, a receiver's k-th message is the sender's k-th.
//! - `--idle`: open N connections, hold them for the duration, send nothing (for memory and
//!   scale): it times each message that reaches them all, and ends early once the server has
//!   closed every one (how a shutdown is timed).

mod conn;
mod driver;
mod hold;
mod measure;
mod payload;
mod scale;
mod stats;
mod stream;

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use mio::Poll;
use wsloop::client::WsUrl;

use super::units;
use conn::BenchConn;
use hold::Hold;
use measure::FanOut;
use payload::{encode, json_message, message};
use scale::{ConnectFigures, Connecting, ProcessSample};
use stats::Stats;

/// The load generator's flags.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The server: an echo URL such as ws://127.0.0.1:9001/, or a broadcast one with --mode
    /// broadcast.
    url: String,
    /// Connections (in broadcast mode: receivers, plus one sender unless --idle).
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Message payload size.
    #[arg(long, value_name = "SIZE", default_value = "20", value_parser = units::parse_size)]
    size: usize,
    /// How long to measure (after all connections are up).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = units::parse_duration)]
    duration: Duration,
    /// What to measure.
    #[arg(long, value_enum, default_value = "echo")]
    mode: Mode,
    /// Messages in flight per connection (broadcast: for the sender).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Echo with --pipeline N: write N messages in one write and wait for all N to come back
    /// before the next N, so the server's reads hold up to N frames (instead of one more
    /// message sent as each one comes back).
    #[arg(long)]
    burst: bool,
    /// Only open the connections and hold them for the duration, sending nothing (for memory
    /// and scale figures). Each message that arrives is reported once every connection has
    /// it, with the Unix times of its first and last arrival (to set against when it was
    /// sent); the run ends early once the server has closed them all. With --mode broadcast,
    /// all are receivers (no sender).
    #[arg(long)]
    idle: bool,
    /// With --idle: this share of the connections (spread evenly) stop reading once upgraded,
    /// with a 4 KiB receive buffer, as stalled clients do. Messages need reach only the
    /// others; the server closing one of these is expected (its slow-consumer limit, its
    /// idle timeout) and is reported, with when the first and the last went, apart from the
    /// closes that fail a run.
    #[arg(long, value_name = "PERCENT", default_value_t = 0,
          value_parser = clap::value_parser!(u8).range(0..100), requires = "idle")]
    non_readers: u8,
    /// The server's process id (on this machine): report its resident memory before and
    /// after connecting (per connection) and the CPU time it spent on the upgrades.
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// Also print the summary as one JSON line; with --idle, a JSON line after each event's
    /// text line instead: "up" (the connecting), "reached" (a message reached every
    /// connection), "cut_off" (the server has closed every --non-readers connection: when its
    /// reset or FIN came), "lost" and "overdue" (see the text lines), then "closed" (the server
    /// closed them all) or "held" (the duration ended).
    #[arg(long)]
    json: bool,
    /// Offer permessage-deflate, and send every message compressed if the server agrees.
    #[arg(long)]
    compression: bool,
    /// What the messages carry: binary filler, or JSON text shaped like chat messages (which
    /// compresses the way chat does).
    #[arg(long, value_enum, default_value = "binary")]
    payload: Payload,
    /// For wss://: also trust the CA certificate(s) in this PEM file.
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// For wss://: do not verify the server's certificate (testing only).
    #[arg(long)]
    insecure: bool,
}

/// What the bench's messages carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Payload {
    /// `x` repeated, sent as binary.
    Binary,
    /// Chat-like JSON text.
    Json,
}

/// What `wsloop bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Round trips through an echo endpoint.
    Echo,
    /// Fan-out from one sender to all other connections.
    Broadcast,
}

/// The most connections in the connecting/handshaking phases at once, so a big run does not
/// overflow the server's accept backlog.
const CONNECT_WINDOW: usize = 256;
/// How long the connections' close handshakes may take at the end of a run.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// `n` things, in the singular for one.
fn count(n: usize, thing: &str) -> String {
    format!("{n} {thing}{}", if n == 1 { "" } else { "s" })
}

/// Runs the benchmark and prints its progress and summary.
pub fn run(args: &BenchArgs) -> ExitCode {
    match Bench::new(args).and_then(|bench| bench.run()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wsloop bench: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Bench<'a> {
    args: &'a BenchArgs,
    url: WsUrl,
    addr: SocketAddr,
    poll: Poll,
    frame: Arc<[u8]>,
    /// The frame's payload, which every echo must carry back.
    payload: Arc<[u8]>,
    conns: Vec<BenchConn>,
    /// Per connection: whether WRITABLE is registered.
    writable: Vec<bool>,
    /// Echo mode: per connection, the queue times of messages in flight.
    sent_at: Vec<VecDeque<Instant>>,
    fan_out: FanOut,
    /// The sender, in broadcast mode.
    sender: Option<usize>,
    stats: Stats,
    started: usize,
    open: usize,
    measuring: bool,
    /// Connections that sent their close and wait for the server's.
    closing: usize,
    read_buffer: Vec<u8>,
    /// For wss:// URLs.
    tls: Option<Arc<wsloop::rustls::ClientConfig>>,
    /// The connecting phase's times.
    connecting: Connecting,
    /// In an idle run, once every connection is up: arrivals and the server's closes.
    hold: Option<Hold>,
    /// Open connections that do not read (--non-readers).
    stalled: usize,
}

impl<'a> Bench<'a> {
    fn new(args: &'a BenchArgs) -> Result<Bench<'a>, String> {
        let url = WsUrl::parse(&args.url)?;
        let addr = std::net::ToSocketAddrs::to_socket_addrs(&(url.host.as_str(), url.port))
            .map_err(|e| format!("cannot resolve {}: {e}", url.host))?
            .next()
            .ok_or_else(|| format!("{} has no address", url.host))?;
        if args.connections == 0 || args.pipeline == 0 {
            return Err("--connections and --pipeline must be at least 1".into());
        }
        if args.duration.is_zero() {
            return Err("--duration must be longer than 0".into());
        }
        let payload = match args.payload {
            Payload::Binary => vec![b'x'; args.size],
            Payload::Json => json_message(args.size, 0),
        };
        let frame = encode(message(&payload, args.payload == Payload::Json), None);
        let total = args.connections + usize::from(args.mode == Mode::Broadcast && !args.idle);
        let tls = if url.secure {
            if args.insecure {
                eprintln!("warning: --insecure: the server's certificate is not verified");
            }
            let config = wsloop::tls::client_config(args.ca.as_deref(), args.insecure);
            Some(config.map_err(|e| e.to_string())?)
        } else {
            None
        };
        Ok(Bench {
            args,
            url,
            addr,
            poll: Poll::new().map_err(|e| e.to_string())?,
            frame,
            payload: Arc::from(payload),
            conns: Vec::with_capacity(total),
            writable: Vec::with_capacity(total),
            sent_at: Vec::new(),
            fan_out: FanOut::default(),
            sender: None,
            stats: Stats::default(),
            started: 0,
            open: 0,
            measuring: false,
            closing: 0,
            read_buffer: vec![0; 256 * 1024],
            tls,
            connecting: Connecting::new(Instant::now(), total),
            hold: None,
            stalled: 0,
        })
    }

    fn receivers(&self) -> usize {
        self.args.connections
    }

    /// Whether connection `key` is one of the --non-readers: every one that takes the share
    /// of the first `key + 1` connections to the next whole number.
    fn reads(&self, key: usize) -> bool {
        let share = usize::from(self.args.non_readers);
        (key + 1) * share / 100 == key * share / 100
    }

    fn run(mut self) -> Result<ExitCode, String> {
        let args = self.args;
        let mode = if args.idle {
            "idle".to_string()
        } else {
            format!("{:?}", args.mode).to_lowercase()
        };
        if args.idle {
            let non_readers = match args.non_readers {
                0 => String::new(),
                share => format!(" non-readers={share}%"),
            };
            println!(
                "wsloop bench {} mode=idle connections={}{non_readers} duration={:?}",
                self.url, args.connections, args.duration
            );
        } else {
            println!(
                "wsloop bench {} mode={mode} connections={} size={} pipeline={}{} duration={:?}",
                self.url,
                args.connections,
                args.size,
                args.pipeline,
                if args.burst { " burst" } else { "" },
                args.duration
            );
        }
        if let Some(pid) = args.server_pid {
            scale::check_serves(pid, self.addr)?;
        }
        let server_before = args.server_pid.map(ProcessSample::of).transpose()?;
        let figures = self.connect_all()?;
        println!(
            "{} up in {} ms: {:.0}/s, handshake p50 {:.2} ms p99 {:.2} ms",
            count(self.open, "connection"),
            figures.elapsed.as_millis(),
            figures.rate,
            figures.handshake_p50.as_secs_f64() * 1e3,
            figures.handshake_p99.as_secs_f64() * 1e3,
        );
        let server = match (args.server_pid, server_before) {
            (Some(pid), Some(before)) => Some((pid, before, ProcessSample::of(pid)?)),
            _ => None,
        };
        if let Some((pid, before, after)) = server {
            println!("{}", server_line(pid, before, after, self.open));
        }
        if args.json && args.idle {
            println!("{}", up_json(self.open, &figures, server));
        }
        if args.idle {
            let not_reading = match self.stalled {
                0 => String::new(),
                n => format!(" ({n} of them not reading)"),
            };
            println!(
                "holding {}{not_reading} for {:?}, or until the server closes them",
                count(self.open, "idle connection"),
                args.duration
            );
            let _ = std::io::stdout().flush();
            let code = self.hold(args.duration)?;
            self.close_all()?;
            return Ok(code);
        }
        self.measure()
    }
}

/// What the upgrades cost the server: its memory and CPU time before and after connecting.
fn server_line(pid: u32, before: ProcessSample, after: ProcessSample, open: usize) -> String {
    let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
    let grown = after.rss_bytes.saturating_sub(before.rss_bytes);
    let cpu = after.cpu.saturating_sub(before.cpu);
    format!(
        "server pid {pid}: RSS {:.1} MiB -> {:.1} MiB, {:.0} B per connection; \
         CPU {:.2} s, {:.1} µs per upgrade",
        mib(before.rss_bytes),
        mib(after.rss_bytes),
        grown as f64 / open.max(1) as f64,
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / open.max(1) as f64
    )
}

/// The connecting phase as one JSON line (`"event": "up"`).
fn up_json(
    open: usize,
    figures: &ConnectFigures,
    server: Option<(u32, ProcessSample, ProcessSample)>,
) -> serde_json::Value {
    let mut line = serde_json::json!({
        "event": "up",
        "connections": open,
        "seconds": rounded(figures.elapsed.as_secs_f64(), 3),
        "rate": figures.rate.round(),
        "handshake_p50_ms": rounded(figures.handshake_p50.as_secs_f64() * 1e3, 3),
        "handshake_p99_ms": rounded(figures.handshake_p99.as_secs_f64() * 1e3, 3),
    });
    if let Some((pid, before, after)) = server {
        line["server_pid"] = pid.into();
        line["server_rss_before"] = before.rss_bytes.into();
        line["server_rss_after"] = after.rss_bytes.into();
        let cpu = after.cpu.saturating_sub(before.cpu).as_secs_f64();
        line["server_cpu_seconds"] = rounded(cpu, 2).into();
    }
    line
}

/// `x` to `places` decimals, for JSON a person reads.
pub(crate) fn rounded(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

//! `wsloop bench URL`: a load generator on one mio loop, built on the protocol core.
//!
//! - echo: N connections each keep `--pipeline` messages in flight; a message completes when
//!   its echo arrives, and its round trip is timed from when it was queued.
//! - broadcast: N receivers and one sender on the URL (a broadcast endpoint). The sender keeps
//!   `--pipeline` messages in flight; a message completes when every receiver has it. Each
//!   delivery counts, and its fan-out latency is timed from the send. Because one sender's
//!   messages reach every receiver in order, a receiver's k-th message is the sender's k-th.
//! - `--idle`: open N connections, hold them for the duration, send nothing (for memory).

mod conn;
mod stats;
mod stream;

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use wsloop::client::WsUrl;
use wsloop::protocol::deflate::Deflater;
use wsloop::protocol::frame::{encode_frame, OpCode};

use super::units;
use conn::{BenchConn, Phase};
use stats::{cpu_time, Stats};
use stream::BenchStream;

/// The load generator's flags.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The server: an echo URL such as ws://127.0.0.1:9001/, or a broadcast one with --mode
    /// broadcast.
    url: String,
    /// Connections (in broadcast mode: receivers, plus one sender).
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
    /// Only open the connections and hold them for the duration (for memory figures).
    #[arg(long)]
    idle: bool,
    /// Also print the summary as one JSON line.
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

/// A chat-like JSON text message of exactly `size` bytes (at least the JSON around the text),
/// whose `id` field is `key` (so one connection's message is told from another's).
fn json_message(size: usize, key: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the",
        "build",
        "is",
        "green",
        "again",
        "shipping",
        "this",
        "afternoon",
        "thanks",
        "review",
        "looks",
        "good",
        "merge",
        "when",
        "ready",
        "alice",
        "bob",
        "lobby",
    ];
    let head = format!("{{\"id\":\"{key:08x}\",\"type\":\"message\",\"from\":\"alice\",\"room\":\"lobby\",\"ts\":1796097505051,\"text\":\"");
    let mut text = String::new();
    let mut i = key;
    while head.len() + text.len() + 2 < size {
        text.push_str(WORDS[i % WORDS.len()]);
        text.push(' ');
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    text.truncate(size.saturating_sub(head.len() + 2));
    format!("{head}{text}\"}}").into_bytes()
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

/// In broadcast mode: the sender's messages still travelling, oldest first.
#[derive(Debug, Default)]
struct FanOut {
    /// Send time and receivers still to get it, for messages `first..`.
    in_flight: VecDeque<(Instant, usize)>,
    /// The sequence number of `in_flight[0]`.
    first: u64,
    /// Per connection: how many broadcast messages it has received.
    received: Vec<u64>,
    /// Receivers still connected.
    live_receivers: usize,
}

struct Bench<'a> {
    args: &'a BenchArgs,
    url: WsUrl,
    addr: SocketAddr,
    poll: Poll,
    frame: Arc<[u8]>,
    /// The frame's payload, which every echo must carry back.
    payload: Arc<[u8]>,
    /// The masking key of every frame sent (one per run: the server does the unmasking work
    /// all the same).
    mask: [u8; 4],
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
        let mut key = [0u8; 4];
        getrandom::fill(&mut key).map_err(|e| e.to_string())?;
        let (payload, opcode) = match args.payload {
            Payload::Binary => (vec![b'x'; args.size], OpCode::Binary),
            Payload::Json => (json_message(args.size, 0), OpCode::Text),
        };
        let mut frame = Vec::new();
        encode_frame(&mut frame, false, opcode, &payload, Some(key));
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
            frame: Arc::from(frame),
            payload: Arc::from(payload),
            mask: key,
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
        })
    }

    /// The frame connection `key` sends and the payload it must get back. In echo mode, a
    /// payload of 8 to 64 KiB bytes starts with the connection's number, so a message from
    /// another connection (a broadcast URL given for an echo run) is told from an echo; larger
    /// ones share one frame, to spare the memory.
    fn frame_for(&self, key: usize) -> (Arc<[u8]>, Arc<[u8]>) {
        let size = self.payload.len();
        if self.args.mode != Mode::Echo || !(8..=64 << 10).contains(&size) {
            return (self.frame.clone(), self.payload.clone());
        }
        let payload = match self.args.payload {
            Payload::Json => json_message(size, key),
            Payload::Binary => {
                let mut payload = self.payload.to_vec();
                payload[..8].copy_from_slice(&(key as u64).to_be_bytes());
                payload
            }
        };
        let mut frame = Vec::with_capacity(self.frame.len());
        encode_frame(&mut frame, false, self.opcode(), &payload, Some(self.mask));
        (Arc::from(frame), Arc::from(payload))
    }

    /// The opcode of every message sent.
    fn opcode(&self) -> OpCode {
        match self.args.payload {
            Payload::Binary => OpCode::Binary,
            Payload::Json => OpCode::Text,
        }
    }

    /// `payload` compressed once (a fresh context, so it can be sent again and again), framed
    /// and masked, RSV1 set.
    fn deflated(&self, payload: &[u8]) -> Arc<[u8]> {
        let mut compressed = Vec::new();
        Deflater::new(15, true).compress(payload, &mut compressed);
        let mut frame = Vec::new();
        encode_frame(
            &mut frame,
            true,
            self.opcode(),
            &compressed,
            Some(self.mask),
        );
        Arc::from(frame)
    }

    fn receivers(&self) -> usize {
        self.args.connections
    }

    fn run(mut self) -> Result<ExitCode, String> {
        let args = self.args;
        let mode = if args.idle {
            "idle".to_string()
        } else {
            format!("{:?}", args.mode).to_lowercase()
        };
        println!(
            "wsloop bench {} mode={mode} connections={} size={} pipeline={} duration={:?}",
            self.url, args.connections, args.size, args.pipeline, args.duration
        );
        let setup_started = Instant::now();
        self.connect_all()?;
        println!(
            "{} up in {} ms",
            count(self.open, "connection"),
            setup_started.elapsed().as_millis()
        );
        if args.idle {
            println!(
                "holding {} for {:?}",
                count(self.open, "idle connection"),
                args.duration
            );
            let _ = std::io::stdout().flush();
            self.hold(args.duration)?;
            self.close_all()?;
            return Ok(ExitCode::SUCCESS);
        }
        self.measure()
    }

    /// Opens every connection (receivers first, then the sender in broadcast mode).
    fn connect_all(&mut self) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        let deadline = Instant::now() + Duration::from_secs(60);
        let wanted = self.conns.capacity();
        while self.open + self.failed() < wanted {
            while self.started < wanted && self.started - self.open - self.failed() < CONNECT_WINDOW
            {
                // The sender connects last, once every receiver is a member.
                if self.args.mode == Mode::Broadcast
                    && self.started == self.receivers()
                    && self.open < self.receivers()
                {
                    break;
                }
                self.start_connection()?;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "only {} of {wanted} connections opened within 60 s",
                    self.open
                ));
            }
            self.turn(&mut events, Some(Duration::from_millis(100)))?;
        }
        if self.open < wanted {
            return Err(format!("{} of {wanted} connections failed", self.failed()));
        }
        Ok(())
    }

    fn failed(&self) -> usize {
        self.stats.errors as usize
    }

    fn start_connection(&mut self) -> Result<(), String> {
        let tcp = TcpStream::connect(self.addr).map_err(|e| format!("connect: {e}"))?;
        let (frame, payload) = self.frame_for(self.conns.len());
        let deflated = self.args.compression.then(|| self.deflated(&payload));
        let mut stream = match &self.tls {
            Some(config) => BenchStream::tls(tcp, &self.url.host, config.clone())?,
            None => BenchStream::Plain(tcp),
        };
        let key = self.conns.len();
        self.poll
            .registry()
            .register(
                stream.tcp(),
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| e.to_string())?;
        self.conns.push(BenchConn::new(
            stream,
            &self.url,
            frame,
            deflated,
            payload,
            self.opcode(),
        ));
        self.writable.push(true);
        self.sent_at.push(VecDeque::new());
        self.fan_out.received.push(0);
        self.started += 1;
        Ok(())
    }

    fn hold(&mut self, duration: Duration) -> Result<(), String> {
        let mut events = Events::with_capacity(1024);
        let end = Instant::now() + duration;
        while Instant::now() < end {
            self.turn(
                &mut events,
                Some(end.saturating_duration_since(Instant::now())),
            )?;
        }
        Ok(())
    }

    fn measure(&mut self) -> Result<ExitCode, String> {
        let mut events = Events::with_capacity(1024);
        self.measuring = true;
        let cpu_start = cpu_time();
        let start = Instant::now();
        self.kick_off();
        let mut next_tick = start + Duration::from_secs(1);
        let end = start + self.args.duration;
        loop {
            let now = Instant::now();
            if now >= next_tick {
                let rate = self.stats.tick();
                let second = self.stats.per_second.len();
                let unit = if self.args.mode == Mode::Echo {
                    "msgs/s"
                } else {
                    "deliveries/s"
                };
                println!(
                    "[{second:>3}s] {rate} {unit}  {} up  {}",
                    count(self.open, "connection"),
                    count(self.stats.errors as usize, "error")
                );
                if next_tick >= end {
                    break;
                }
                next_tick += Duration::from_secs(1);
            }
            self.turn(
                &mut events,
                Some(next_tick.saturating_duration_since(Instant::now())),
            )?;
        }
        let wall = start.elapsed();
        let cpu = cpu_start.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
        self.report(wall, cpu);
        let errors = self.stats.errors;
        self.close_all()?;
        Ok(if errors == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    }

    /// Queues the first messages.
    fn kick_off(&mut self) {
        let now = Instant::now();
        match self.args.mode {
            Mode::Echo => {
                for key in 0..self.conns.len() {
                    for _ in 0..self.args.pipeline {
                        self.queue_send(key, now);
                    }
                    self.flush(key);
                }
            }
            Mode::Broadcast => {
                for _ in 0..self.args.pipeline {
                    self.publish(now);
                }
            }
        }
    }

    /// Queues one more copy of the connection's message; [`Bench::flush`] writes every copy
    /// queued with one system call.
    fn queue_send(&mut self, key: usize, now: Instant) {
        if self.conns[key].phase == Phase::Open {
            self.conns[key].to_send += 1;
            self.sent_at[key].push_back(now);
        }
    }

    fn publish(&mut self, now: Instant) {
        let Some(sender) = self.sender else { return };
        if self.fan_out.live_receivers == 0 {
            return;
        }
        self.fan_out
            .in_flight
            .push_back((now, self.fan_out.live_receivers));
        self.conns[sender].to_send += 1;
        self.flush(sender);
    }

    /// Writes what the connection has queued and keeps WRITABLE registered only while needed.
    fn flush(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        if let Err(e) = conn.write() {
            self.fail(key, &e);
            return;
        }
        let wants = conn.wants_write();
        if wants != self.writable[key] {
            let interest = if wants {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let _ = self
                .poll
                .registry()
                .reregister(conn.stream.tcp(), Token(key), interest);
            self.writable[key] = wants;
        }
    }

    fn fail(&mut self, key: usize, why: &str) {
        let conn = &mut self.conns[key];
        if conn.phase == Phase::Closing {
            // The run is over: a connection that ends badly now changes no figure.
            self.finish_close(key);
            return;
        }
        if conn.phase == Phase::Open {
            self.open -= 1;
            if self.args.mode == Mode::Broadcast && Some(key) != self.sender {
                self.lose_receiver(key);
            }
        }
        let conn = &mut self.conns[key];
        if conn.phase != Phase::Closed {
            conn.phase = Phase::Closed;
            let _ = self.poll.registry().deregister(conn.stream.tcp());
            self.stats.errors += 1;
            if self.stats.errors <= 5 {
                eprintln!("connection {key}: {why}");
            }
        }
    }

    /// One poll and the handling of its events.
    fn turn(&mut self, events: &mut Events, timeout: Option<Duration>) -> Result<(), String> {
        if let Err(e) = self.poll.poll(events, timeout) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(format!("poll: {e}"));
            }
        }
        let mut buffer = std::mem::take(&mut self.read_buffer);
        for event in events.iter() {
            let key = event.token().0;
            if self.conns[key].phase == Phase::Closed {
                continue;
            }
            if event.is_writable() {
                self.flush(key);
            }
            let hung_up = event.is_read_closed() || event.is_error();
            if event.is_readable() || hung_up {
                let outcome = self.conns[key].read(&mut buffer, !hung_up);
                if self.measuring {
                    self.stats.bytes_in += outcome.bytes as u64;
                }
                if let Some(why) = outcome.mismatch {
                    return Err(format!(
                        "connection {key}: not an echo of what was sent: {why}"
                    ));
                }
                if outcome.opened {
                    self.on_open(key);
                }
                if outcome.messages > 0 {
                    self.on_messages(key, outcome.messages)?;
                }
                if outcome.wants_write {
                    self.flush(key);
                }
                if let Some(why) = outcome.failed {
                    self.fail(key, &why);
                } else if outcome.closed {
                    self.finish_close(key);
                }
            }
        }
        self.read_buffer = buffer;
        Ok(())
    }

    /// Closes every open connection with a close handshake, so the server sees clean closes
    /// (1000), not dropped connections; gives up on the stragglers after [`CLOSE_WAIT`].
    fn close_all(&mut self) -> Result<(), String> {
        self.measuring = false;
        for key in 0..self.conns.len() {
            if self.conns[key].phase == Phase::Open {
                self.conns[key].start_close();
                self.closing += 1;
                self.flush(key);
            }
        }
        let mut events = Events::with_capacity(1024);
        let deadline = Instant::now() + CLOSE_WAIT;
        while self.closing > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.turn(&mut events, Some(left))?;
        }
        Ok(())
    }

    /// A closing connection is done.
    fn finish_close(&mut self, key: usize) {
        let conn = &mut self.conns[key];
        conn.phase = Phase::Closed;
        let _ = self.poll.registry().deregister(conn.stream.tcp());
        self.closing -= 1;
    }

    /// A broadcast receiver is gone: the messages still travelling no longer wait for it, and
    /// later ones are sent to one receiver fewer.
    fn lose_receiver(&mut self, key: usize) {
        let fan = &mut self.fan_out;
        fan.live_receivers = fan.live_receivers.saturating_sub(1);
        let got = fan.received[key];
        for (i, (_, remaining)) in fan.in_flight.iter_mut().enumerate() {
            if fan.first + i as u64 >= got {
                *remaining = remaining.saturating_sub(1);
            }
        }
        self.complete_fan_out(Instant::now());
    }

    fn on_open(&mut self, key: usize) {
        self.open += 1;
        if self.args.mode == Mode::Broadcast && key == self.receivers() {
            self.sender = Some(key);
            self.fan_out.live_receivers = self.receivers();
        }
        self.flush(key);
    }

    /// Messages came back. In echo mode each must answer one in flight: more is an error (the
    /// URL is not an echo endpoint).
    fn on_messages(&mut self, key: usize, count: usize) -> Result<(), String> {
        if !self.measuring {
            return Ok(());
        }
        let now = Instant::now();
        match self.args.mode {
            Mode::Echo => {
                for _ in 0..count {
                    let Some(sent) = self.sent_at[key].pop_front() else {
                        return Err(format!(
                            "connection {key}: more messages came back than were sent: \
                             not an echo endpoint?"
                        ));
                    };
                    self.stats.record(now - sent);
                    self.queue_send(key, now);
                }
                // Every reply this read completed is answered with one write.
                self.flush(key);
            }
            Mode::Broadcast => {
                for _ in 0..count {
                    self.on_delivery(key, now);
                }
            }
        }
        Ok(())
    }

    fn on_delivery(&mut self, key: usize, now: Instant) {
        let fan = &mut self.fan_out;
        let seq = fan.received[key];
        fan.received[key] += 1;
        let Some(index) = seq.checked_sub(fan.first) else {
            return;
        };
        let Some((sent, remaining)) = fan.in_flight.get_mut(index as usize) else {
            return;
        };
        let latency = now - *sent;
        *remaining = remaining.saturating_sub(1);
        self.stats.record(latency);
        self.complete_fan_out(now);
    }

    /// Completed messages leave from the front; each frees a slot for the next one.
    fn complete_fan_out(&mut self, now: Instant) {
        while let Some(&(_, 0)) = self.fan_out.in_flight.front() {
            self.fan_out.in_flight.pop_front();
            self.fan_out.first += 1;
            self.publish(now);
        }
    }

    fn report(&mut self, wall: Duration, cpu: Option<Duration>) {
        let summary = self.stats.summary();
        let unit = if self.args.mode == Mode::Echo {
            "msgs/s"
        } else {
            "deliveries/s"
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let cpu_share = cpu.map(|c| c.as_secs_f64() / wall.as_secs_f64() * 100.0);
        let cpu_text = cpu_share.map_or("unknown".to_string(), |p| format!("{p:.0}% of one core"));
        println!(
            "summary: median {} {unit} | latency p50 {:.3} ms p99 {:.3} ms max {:.3} ms | {} | {} | bench cpu {cpu_text}",
            summary.median_rate,
            ms(summary.p50),
            ms(summary.p99),
            ms(summary.max),
            count(summary.total as usize, "message"),
            count(summary.errors as usize, "error")
        );
        if self.args.json {
            println!(
                "{}",
                serde_json::json!({
                    "mode": format!("{:?}", self.args.mode).to_lowercase(),
                    "connections": self.args.connections,
                    "size": self.args.size,
                    "pipeline": self.args.pipeline,
                    "median_rate": summary.median_rate,
                    "p50_ms": ms(summary.p50),
                    "p99_ms": ms(summary.p99),
                    "max_ms": ms(summary.max),
                    "total": summary.total,
                    "errors": summary.errors,
                    "wire_bytes_per_message": self.stats.bytes_in as f64 / summary.total.max(1) as f64,
                    "bench_cpu_percent": cpu_share,
                })
            );
        }
    }
}

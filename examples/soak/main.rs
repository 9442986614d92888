//! A bounded soak of a running wsloop server on loopback: churning connections, garbage,
//! non-readers, half-open handshakes and oversize frames, while a checker verifies echo and
//! broadcast round trips and records their latency. `scripts/soak.sh` builds and starts the
//! server, runs this against it and watches the server's memory and descriptors.
//!
//! ```sh
//! target/release/wsloop --bind 127.0.0.1:9001 --max-message-size 64KiB \
//!     --max-frame-size 64KiB --max-buffered 256KiB --handshake-timeout 2s &
//! cargo run --release --example soak -- --addr 127.0.0.1:9001 --duration 60 \
//!     --max-message-size 65536 --handshake-timeout 2
//! cargo run --release --example soak -- --self-test   # the checker must catch a broken server
//! ```
//!
//! Every actor stops at the deadline (every blocking call has a timeout of a few seconds), and
//! the counts are printed as one block at the end. The exit status is non-zero when the
//! checker saw a wrong echo, a wrong or missing broadcast, or could not do its round trips.
//! Server closes and resets met by the abusers are counted, never fatal.
//!
//! Flags, orchestration and the final report are here; each actor is a module: `checker`
//! (echo and broadcast round trips), `churn`, `garbage`, `oversize`, `nonreaders`, `halfopen`,
//! `flood`; `selftest` is the deliberately broken server. `raw` is the raw WebSocket the
//! abusers speak, `shared`, `stats` and `rng` what every actor uses.

mod checker;
mod churn;
mod flood;
mod garbage;
mod halfopen;
mod nonreaders;
mod oversize;
mod raw;
mod rng;
mod selftest;
mod shared;
mod stats;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use checker::{check_broadcast, check_echo};
use churn::churn;
use flood::flood;
use garbage::garbage;
use halfopen::halfopen;
use nonreaders::nonreaders;
use oversize::oversize;
use selftest::self_test;
use shared::{new_shared, Shared};

/// The counters of wrong bytes: any of them fails the run.
const WRONG_BYTES: [&str; 4] = [
    "checker_echo_mismatches",
    "checker_broadcast_mismatches",
    "checker_flood_corrupt",
    "churn_echo_mismatches",
];
/// The counters of round trips the checker could not do: any of them fails the run.
const FAILED_ROUND_TRIPS: [&str; 3] = [
    "checker_echo_failures",
    "checker_broadcast_failures",
    "checker_connect_failures",
];
const CHECKER_PROBLEMS: [&str; 7] = [
    WRONG_BYTES[0],
    WRONG_BYTES[1],
    WRONG_BYTES[2],
    WRONG_BYTES[3],
    FAILED_ROUND_TRIPS[0],
    FAILED_ROUND_TRIPS[1],
    FAILED_ROUND_TRIPS[2],
];

// ---------------------------------------------------------------------------------------------
// Settings

#[derive(Debug, Clone)]
struct Settings {
    addr: SocketAddr,
    duration: Duration,
    /// The server's --max-message-size (and frame size), in bytes.
    max_message_size: u64,
    /// The server's --handshake-timeout.
    handshake_timeout: Duration,
    churn_threads: usize,
    /// New churn connections per second, over all churn threads.
    churn_rate: f64,
    garbage_threads: usize,
    /// Garbage connections per second, over all garbage threads.
    garbage_rate: f64,
    oversize_threads: usize,
    /// Oversize connections per second, over all oversize threads.
    oversize_rate: f64,
    /// Non-readers held at once.
    nonreaders: usize,
    halfopen_threads: usize,
    /// Half-open handshakes each half-open thread holds at once.
    halfopen_batch: usize,
    /// Broadcast flood: bytes per message and messages per second.
    flood_size: usize,
    flood_rate: f64,
    self_test: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            addr: "127.0.0.1:9001".parse().expect("a valid address"),
            duration: Duration::from_secs(600),
            max_message_size: 64 << 10,
            handshake_timeout: Duration::from_secs(2),
            churn_threads: 8,
            churn_rate: 100.0,
            garbage_threads: 3,
            garbage_rate: 30.0,
            oversize_threads: 2,
            oversize_rate: 20.0,
            nonreaders: 32,
            halfopen_threads: 2,
            halfopen_batch: 64,
            flood_size: 8192,
            flood_rate: 100.0,
            self_test: false,
        }
    }
}

const USAGE: &str = "\
usage: soak [--addr HOST:PORT] [--duration SECS] [--max-message-size BYTES]
            [--handshake-timeout SECS] [--churn-threads N] [--churn-rate CONNS_PER_SEC]
            [--garbage-threads N] [--garbage-rate CONNS_PER_SEC]
            [--oversize-threads N] [--oversize-rate CONNS_PER_SEC] [--nonreaders N]
            [--halfopen-threads N] [--halfopen-batch N] [--flood-size BYTES]
            [--flood-rate MSGS_PER_SEC]
       soak --self-test   (the checker against a deliberately broken in-process server)
Only loopback addresses are accepted.";

fn parse_args() -> Result<Settings, String> {
    let mut s = Settings::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--self-test" {
            s.self_test = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        let num = |v: &str| v.parse::<f64>().map_err(|e| bad(&e));
        let count = |v: &str| v.parse::<usize>().map_err(|e| bad(&e));
        match flag.as_str() {
            "--addr" => s.addr = value.parse().map_err(|e| bad(&e))?,
            "--duration" => s.duration = Duration::from_secs_f64(num(&value)?),
            "--max-message-size" => s.max_message_size = value.parse().map_err(|e| bad(&e))?,
            "--handshake-timeout" => s.handshake_timeout = Duration::from_secs_f64(num(&value)?),
            "--churn-threads" => s.churn_threads = count(&value)?,
            "--churn-rate" => s.churn_rate = num(&value)?,
            "--garbage-threads" => s.garbage_threads = count(&value)?,
            "--garbage-rate" => s.garbage_rate = num(&value)?,
            "--oversize-threads" => s.oversize_threads = count(&value)?,
            "--oversize-rate" => s.oversize_rate = num(&value)?,
            "--nonreaders" => s.nonreaders = count(&value)?,
            "--halfopen-threads" => s.halfopen_threads = count(&value)?,
            "--halfopen-batch" => s.halfopen_batch = count(&value)?,
            "--flood-size" => s.flood_size = count(&value)?.max(16),
            "--flood-rate" => s.flood_rate = num(&value)?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if !s.addr.ip().is_loopback() {
        return Err(format!("{}: only loopback addresses are soaked", s.addr));
    }
    let rates = [s.churn_rate, s.garbage_rate, s.oversize_rate, s.flood_rate];
    if rates.iter().any(|r| !r.is_finite() || *r <= 0.0) {
        return Err("rates must be positive".into());
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// The report

fn percentile(sorted: &[u64], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = (sorted.len() * p / 100).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

fn latency_line(name: &str, latencies: &Mutex<Vec<u64>>) -> (usize, String) {
    let mut v = latencies.lock().unwrap_or_else(|e| e.into_inner()).clone();
    v.sort_unstable();
    let line = format!(
        "{name:<34} {:>8} round trips   p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        v.len(),
        percentile(&v, 50),
        percentile(&v, 99),
        v.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    (v.len(), line)
}

/// Prints the one final block; returns the number of checker errors.
fn report(shared: &Shared, elapsed: Duration) -> u64 {
    let counts = shared.stats.snapshot();
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    let (echo_n, echo_line) = latency_line("checker echo (/)", &shared.echo_latency);
    let (bcast_n, bcast_line) =
        latency_line("checker broadcast (/broadcast)", &shared.broadcast_latency);
    let mismatches: u64 = WRONG_BYTES.iter().map(|k| get(k)).sum();
    let failures: u64 = FAILED_ROUND_TRIPS.iter().map(|k| get(k)).sum();
    let errors = mismatches + failures + u64::from(echo_n == 0) + u64::from(bcast_n == 0);
    println!(
        "=== soak tool: {} against ws://{} ===",
        if shared.settings.self_test {
            "self-test"
        } else {
            "soak"
        },
        shared.settings.addr
    );
    println!("{:<34} {}", "load", describe(&shared.settings));
    println!("{:<34} {:.1} s", "ran for", elapsed.as_secs_f64());
    println!(
        "{:<34} {}",
        "connections served (upgrades)",
        get("upgrades")
    );
    println!("{echo_line}");
    println!("{bcast_line}");
    println!(
        "{:<34} {} (wrong bytes: {mismatches}, failed round trips: {failures})",
        "checker errors", errors
    );
    println!("{:<34} {}", "churn connections", get("churn_upgrades"));
    println!(
        "{:<34} {}",
        "abusive connections",
        get("abusive_connections")
    );
    println!("counts:");
    for (key, value) in &counts {
        println!("  {key:<52} {value}");
    }
    println!(
        "RESULT upgrades={} checker_round_trips={} echo_round_trips={echo_n} broadcast_round_trips={bcast_n} checker_errors={errors}",
        get("upgrades"),
        echo_n + bcast_n
    );
    errors
}

// ---------------------------------------------------------------------------------------------

/// The load, in one line.
fn describe(s: &Settings) -> String {
    format!(
        "{} s against ws://{}: churn {} threads at {}/s; garbage {} threads at {}/s; \
         oversize {} threads at {}/s; {} non-readers; half-open {}x{}; flood {} B x {}/s",
        s.duration.as_secs_f64(),
        s.addr,
        s.churn_threads,
        s.churn_rate,
        s.garbage_threads,
        s.garbage_rate,
        s.oversize_threads,
        s.oversize_rate,
        s.nonreaders,
        s.halfopen_threads,
        s.halfopen_batch,
        s.flood_size,
        s.flood_rate,
    )
}

/// A thread's body: runs until the deadline.
type Actor = fn(Arc<Shared>);

fn spawn(name: &str, shared: &Arc<Shared>, actor: Actor) -> thread::JoinHandle<()> {
    let shared = shared.clone();
    let name = name.to_string();
    thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            // An actor that panics is a bug in this tool: count it, never take the run down.
            let caught =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| actor(shared.clone())));
            if caught.is_err() {
                shared.stats.inc(&format!("tool_panics_{name}"));
            }
        })
        .expect("a thread can be started")
}

fn main() -> ExitCode {
    let mut settings = match parse_args() {
        Ok(settings) => settings,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("soak: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if settings.self_test {
        return self_test(&mut settings);
    }
    eprintln!("soak: {}", describe(&settings));
    let shared = new_shared(settings.clone());
    let started = Instant::now();
    let mut threads = vec![
        spawn("check-echo", &shared, check_echo),
        spawn("check-broadcast", &shared, check_broadcast),
        spawn("flood", &shared, flood),
    ];
    if settings.nonreaders > 0 {
        threads.push(spawn("nonreaders", &shared, nonreaders));
    }
    let groups: [(usize, &str, Actor); 4] = [
        (settings.churn_threads, "churn", churn),
        (settings.garbage_threads, "garbage", garbage),
        (settings.oversize_threads, "oversize", oversize),
        (settings.halfopen_threads, "halfopen", halfopen),
    ];
    for (n, name, actor) in groups {
        for i in 0..n {
            threads.push(spawn(&format!("{name}-{i}"), &shared, actor));
        }
    }
    // A progress line every 30 s, on stderr.
    let mut next_progress = started + Duration::from_secs(30);
    while shared.running() {
        thread::sleep(Duration::from_millis(200).min(shared.left().max(Duration::from_millis(1))));
        if Instant::now() >= next_progress && shared.running() {
            next_progress += Duration::from_secs(30);
            eprintln!(
                "soak: {:>4.0} s: {} upgrades, {} echo + {} broadcast round trips, {} checker problems",
                started.elapsed().as_secs_f64(),
                shared.stats.get("upgrades"),
                shared.echo_latency.lock().map(|v| v.len()).unwrap_or(0),
                shared.broadcast_latency.lock().map(|v| v.len()).unwrap_or(0),
                CHECKER_PROBLEMS.iter().map(|k| shared.stats.get(k)).sum::<u64>(),
            );
        }
    }
    for t in threads {
        let _ = t.join();
    }
    let errors = report(&shared, started.elapsed());
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

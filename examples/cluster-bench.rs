//! Cross-instance delivery through Redis (`--cluster`): latency at a steady rate, then the rate
//! one instance sustains to another. Run by `scripts/cluster-bench.sh`, which starts
//! redis-server and two wsloop instances; by hand:
//!
//! ```text
//! cargo run --release --example cluster-bench -- ws://127.0.0.1:9101/broadcast ws://127.0.0.1:9102/broadcast
//! ```
//!
//! A sender on the first instance's `/broadcast` and a receiver on the second's: every
//! message carries its send time, so the receiver measures how long it took to cross (both
//! clients run in this process, on one clock). Messages are 100 bytes.

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wsloop::client::{Client, Incoming};
use wsloop::Message;

const SIZE: usize = 100;
const RATE: u64 = 1_000;
const STEADY: Duration = Duration::from_secs(10);
const BURST: u64 = 200_000;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [from, to] = args.as_slice() else {
        eprintln!("usage: cluster-bench ws://A/broadcast ws://B/broadcast");
        return ExitCode::from(2);
    };
    match run(from, to) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cluster-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A 100-byte text message: its number and send time (µs since `start`), padded.
fn message(seq: u64, start: Instant) -> String {
    let mut text = format!("{seq} {}", start.elapsed().as_micros());
    text.push(' ');
    text.extend(std::iter::repeat_n('x', SIZE - text.len()));
    text
}

fn run(from: &str, to: &str) -> Result<(), String> {
    let mut sender = Client::connect(from).map_err(|e| format!("{from}: {e}"))?;
    let mut receiver = Client::connect(to).map_err(|e| format!("{to}: {e}"))?;
    let start = Instant::now();
    // Probe until a message crosses: the instances' bridges subscribe on their own time.
    receiver
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let mut crossed = false;
    for _ in 0..100 {
        sender
            .send(Message::Text("probe"))
            .map_err(|e| e.to_string())?;
        if matches!(receiver.recv(), Ok(Incoming::Text(_))) {
            crossed = true;
            break;
        }
    }
    if !crossed {
        return Err("nothing crossed from the first instance to the second in 20 s".into());
    }
    receiver
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    let (done, results) = mpsc::channel();
    let counting = std::thread::spawn(move || {
        let mut latencies = Vec::new();
        let mut burst = 0u64;
        let mut burst_start = None;
        loop {
            match receiver.recv() {
                Ok(Incoming::Text(text)) if text.starts_with("probe") => {}
                Ok(Incoming::Text(text)) => {
                    let mut fields = text.split(' ');
                    let seq: u64 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                    let sent: u128 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
                    if seq < 1_000_000 {
                        latencies.push(start.elapsed().as_micros() - sent);
                    } else {
                        burst_start.get_or_insert_with(Instant::now);
                        burst += 1;
                        if burst == BURST {
                            break;
                        }
                    }
                }
                _ => break,
            }
        }
        let burst_time = burst_start.map(|at| at.elapsed());
        let _ = done.send((latencies, burst, burst_time));
    });

    // Steady: RATE messages a second for STEADY.
    let total = RATE * STEADY.as_secs();
    for seq in 0..total {
        let due = start + Duration::from_micros(seq * 1_000_000 / RATE) + Duration::from_secs(1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        sender
            .send(Message::Text(&message(seq, start)))
            .map_err(|e| e.to_string())?;
    }
    std::thread::sleep(Duration::from_millis(500));
    // Burst: as fast as the sender goes.
    let burst_started = Instant::now();
    for seq in 0..BURST {
        sender
            .send(Message::Text(&message(1_000_000 + seq, start)))
            .map_err(|e| e.to_string())?;
    }
    let sending = burst_started.elapsed();
    let _ = counting.join();
    let (mut latencies, burst, burst_time) = results.recv().map_err(|e| e.to_string())?;
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "steady {RATE} msgs/s x {SIZE} B for {} s: {} of {total} crossed; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        STEADY.as_secs(),
        latencies.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    );
    let rate = |n: u64, d: Duration| n as f64 / d.as_secs_f64();
    match burst_time {
        Some(took) => println!(
            "burst {BURST} x {SIZE} B: sent at {:.0} msgs/s; {burst} crossed at {:.0} msgs/s",
            rate(BURST, sending),
            rate(burst, took)
        ),
        None => println!("burst: nothing crossed"),
    }
    Ok(())
}

//! What keeping history costs a broadcast: wsloop's own `/broadcast` (each connection
//! subscribes to the route's topic on open, and every message it sends is published to that
//! topic with `Context::publish`, to every subscriber but itself), on a server whose topics
//! keep memory history (`--history on`: `HistoryOptions::default()`, the
//! last 1,000 messages) or keep none (`--history off`).
//!
//! Both run the same handler; the only difference is whether the server was built with
//! `ServerBuilder::history` (which keeps every topic by default). Without it, `publish` is
//! the plain topic delivery (as `publish_ephemeral`), so `off` is exactly `on` minus the
//! append to the topic's stream (and its eviction of the oldest message): the honest "same
//! work, minus history". (The `wsloop` command keeps no history for `/broadcast`.)
//!
//! It runs as a process of its own so that `scripts/bench.py --only history` can pin it to
//! a core and read its CPU time from /proc, like the other servers it measures.
//!
//! Run: `cargo run --release --example history-broadcast-server -- --history on --port 9001`
//! (`--history off` for the baseline), then `wsloop bench ws://127.0.0.1:9001/broadcast --mode
//! broadcast --connections 1000 --size 64 --pipeline 32`.

use std::io::Write;
use std::process::ExitCode;

use wsloop::apps::Broadcast;
use wsloop::{Config, HistoryOptions, Server};

/// `--history on|off` (default on) and `--port N` (default 9001).
fn parse_args() -> Result<(bool, u16), String> {
    let (mut history, mut port) = (true, 9001);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--history" if value == "on" => history = true,
            "--history" if value == "off" => history = false,
            "--history" => return Err("--history is on or off".into()),
            "--port" => port = value.parse().map_err(|e| format!("--port: {e}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok((history, port))
}

fn main() -> ExitCode {
    let (history, port) = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("history-broadcast-server: {e}");
            return ExitCode::from(2);
        }
    };
    let mut builder = Server::builder()
        .bind(format!("127.0.0.1:{port}"))
        .config(Config::default())
        .route("/broadcast", Broadcast)
        .handle_signals(true);
    if history {
        builder = builder.history(HistoryOptions::default());
    }
    let server = match builder.build() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("history-broadcast-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    // bench.py reads this line to know the server is up.
    let on = if history { "on" } else { "off" };
    let _ = writeln!(
        std::io::stdout(),
        "listening on ws://{} (history {on})",
        server.local_addr()
    );
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("history-broadcast-server: {e}");
            ExitCode::FAILURE
        }
    }
}

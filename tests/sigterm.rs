//! The `wsloop` binary on SIGTERM: every client gets close 1001 and the process exits with 0.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::net::TcpStream;
use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::time::Duration;

use common::{spawn_wsloop_logged, TIMEOUT};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

/// Sends `signal` to `pid` with the `kill` command.
fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {pid} failed");
}

/// Kills the child with SIGKILL unless it was seen to exit, so a failing test leaves no server
/// behind.
struct KillOnDrop {
    pid: u32,
    exited: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.exited {
            let _ = Command::new("kill")
                .args(["-KILL", &self.pid.to_string()])
                .status();
        }
    }
}

fn connect(addr: &str, path: &str) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let (mut ws, _) = tungstenite::client(format!("ws://{addr}{path}"), stream).expect("upgrade");
    // Make sure the connection is open and served before the signal.
    ws.send(Message::text("ready?")).unwrap();
    assert_eq!(ws.read().unwrap(), Message::text("ready?"));
    ws
}

#[test]
fn sigterm_closes_every_client_with_1001_and_exits_0() {
    sigterm_closes_clients(&[], 1);
}

/// With two loops the signal reaches one of them, which stops the other: clients on both get
/// 1001. The kernel spreads clients over the loops; the server's log says which loop each
/// landed on (`open #N` on loop 0, `open #1.N` on loop 1), and clients are added until both
/// loops hold some.
#[test]
fn sigterm_stops_every_loop() {
    sigterm_closes_clients(&["--threads", "2"], 2);
}

/// The loop a new connection landed on, from the server's `open` log line.
fn loop_of_next_open(log: &mpsc::Receiver<String>) -> usize {
    loop {
        let line = log
            .recv_timeout(TIMEOUT)
            .expect("the server logged no open line");
        if let Some((_, id)) = line.split_once(" open #") {
            return match id.split_once('.') {
                Some((index, _)) => index.parse().expect("a loop index"),
                None => 0,
            };
        }
    }
}

/// Connects clients until every one of `loops` holds at least one (bounded), then sends
/// SIGTERM and checks that each gets 1001 and that the server exits 0.
fn sigterm_closes_clients(flags: &[&str], loops: usize) {
    let args: Vec<&str> = ["--log-level", "info"]
        .iter()
        .chain(flags)
        .copied()
        .collect();
    let (mut child, addr, log) = spawn_wsloop_logged(&args);
    let mut guard = KillOnDrop {
        pid: child.id(),
        exited: false,
    };

    let paths = ["/", "/echo"];
    let mut clients = Vec::new();
    let mut per_loop = vec![0; loops];
    while per_loop.contains(&0) {
        assert!(clients.len() < 200, "200 clients, per loop: {per_loop:?}");
        clients.push(connect(&addr, paths[clients.len() % 2]));
        per_loop[loop_of_next_open(&log)] += 1;
    }

    // Wait for the exit on a thread, so the wait is bounded by a channel timeout.
    let (exit_tx, exit_rx) = mpsc::channel::<ExitStatus>();
    std::thread::spawn(move || {
        if let Ok(status) = child.wait() {
            let _ = exit_tx.send(status);
        }
    });

    kill("-TERM", guard.pid);

    for ws in &mut clients {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Away),
            other => panic!("expected close 1001, got {other:?}"),
        }
        // Reading on sends tungstenite's close reply and ends when the server closes.
        match ws.read() {
            Err(tungstenite::Error::ConnectionClosed) => {}
            other => panic!("expected the connection to end after close, got {other:?}"),
        }
    }
    drop(clients);

    let status = exit_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("wsloop did not exit within 5 s of SIGTERM");
    guard.exited = true;
    assert!(status.success(), "wsloop exited with {status}");
}

//! The `wsloop` binary stopped by a signal. SIGTERM drains: every client gets close 1012,
//! spread over `--drain-window`, `/readyz` answers 503 meanwhile, and the process exits 0.
//! SIGINT closes every client at once with 1001 and exits 0.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{spawn_wsloop_logged, upgrade_request, RawClient, TIMEOUT};
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

/// A running `wsloop`, its log, and its exit status once it comes (waited for on a thread, so
/// the wait is bounded by a channel timeout).
struct Wsloop {
    guard: KillOnDrop,
    addr: String,
    log: mpsc::Receiver<String>,
    exit: mpsc::Receiver<ExitStatus>,
}

impl Wsloop {
    fn start(flags: &[&str]) -> Wsloop {
        let args: Vec<&str> = ["--log-level", "info"]
            .iter()
            .chain(flags)
            .copied()
            .collect();
        let (mut child, addr, log): (Child, _, _) = spawn_wsloop_logged(&args);
        let guard = KillOnDrop {
            pid: child.id(),
            exited: false,
        };
        let (exit_tx, exit) = mpsc::channel::<ExitStatus>();
        std::thread::spawn(move || {
            if let Ok(status) = child.wait() {
                let _ = exit_tx.send(status);
            }
        });
        Wsloop {
            guard,
            addr,
            log,
            exit,
        }
    }

    fn signal(&self, signal: &str) {
        kill(signal, self.guard.pid);
    }

    /// The first log line (after those read already) that contains `what`.
    fn logged(&self, what: &str) -> String {
        loop {
            let line = (self.log.recv_timeout(TIMEOUT))
                .unwrap_or_else(|_| panic!("the server did not log {what:?}"));
            if line.contains(what) {
                return line;
            }
        }
    }

    /// The loop a new connection landed on, from the server's `open` log line (`open #N` on
    /// loop 0, `open #1.N` on loop 1).
    fn loop_of_next_open(&self) -> usize {
        let line = self.logged(" open #");
        let (_, id) = line.split_once(" open #").expect("an open line");
        match id.split_once('.') {
            Some((index, _)) => index.parse().expect("a loop index"),
            None => 0,
        }
    }

    /// Connects clients until there are `at_least` and every one of `loops` holds some
    /// (bounded).
    fn clients(&self, at_least: usize, loops: usize) -> Vec<WebSocket<TcpStream>> {
        let paths = ["/", "/echo"];
        let mut clients = Vec::new();
        let mut per_loop = vec![0; loops];
        while clients.len() < at_least || per_loop.contains(&0) {
            assert!(clients.len() < 200, "200 clients, per loop: {per_loop:?}");
            clients.push(connect(&self.addr, paths[clients.len() % 2]));
            per_loop[self.loop_of_next_open()] += 1;
        }
        clients
    }

    fn socket_addr(&self) -> SocketAddr {
        self.addr.parse().expect("a socket address")
    }

    /// Waits (bounded by `within`) for the exit, and checks it is 0.
    fn exits_0(mut self, within: Duration) {
        let status = (self.exit.recv_timeout(within))
            .unwrap_or_else(|_| panic!("wsloop did not exit within {within:?}"));
        self.guard.exited = true;
        assert!(status.success(), "wsloop exited with {status}");
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

/// Reads the server's close frame, noting when it arrived; then reads on, which sends
/// tungstenite's close reply, until the server ends the connection; then closes the socket,
/// so the server does not wait for the client's end of it.
fn await_close(mut ws: WebSocket<TcpStream>) -> (Instant, CloseCode, String) {
    let (at, code, reason) = match ws.read() {
        Ok(Message::Close(Some(frame))) => (Instant::now(), frame.code, frame.reason.to_string()),
        other => panic!("expected a close frame, got {other:?}"),
    };
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("expected the connection to end after close, got {other:?}"),
    }
    (at, code, reason)
}

/// Every client waits for its close on its own thread, so each close's arrival is seen when
/// it comes, whatever the order. Each read is bounded by the socket's timeout.
fn closes(clients: Vec<WebSocket<TcpStream>>) -> Vec<(Instant, CloseCode, String)> {
    let waiting: Vec<_> = (clients.into_iter())
        .map(|ws| std::thread::spawn(move || await_close(ws)))
        .collect();
    (waiting.into_iter())
        .map(|thread| thread.join().expect("a client thread panicked"))
        .collect()
}

/// One plain HTTP GET: the status and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut client = RawClient::connect(addr);
    client.send(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes());
    let response = client.read_response();
    let body = String::from_utf8(response.body).expect("a UTF-8 body");
    (response.head.status, body)
}

/// SIGTERM: 40 clients all get 1012 `service restart`, and not in one burst: their closes
/// arrive over a good part of the 400 ms window (the server sends one every 10 ms).
#[test]
fn sigterm_drains_every_client_with_1012_spread_over_the_window() {
    let server = Wsloop::start(&["--drain-window", "400ms"]);
    let clients = server.clients(40, 1);
    server.signal("-TERM");
    let closes = closes(clients);
    for (_, code, reason) in &closes {
        assert_eq!(*code, CloseCode::Restart, "{reason}");
        assert_eq!(reason, "service restart");
    }
    let first = closes.iter().map(|c| c.0).min().unwrap();
    let last = closes.iter().map(|c| c.0).max().unwrap();
    let span = last - first;
    assert!(
        span >= Duration::from_millis(150),
        "40 closes over a 400 ms window arrived within {span:?}"
    );
    assert!(
        span < Duration::from_millis(1400),
        "closes spread over {span:?}, far past the 400 ms window"
    );
    server.logged("SIGTERM: draining 40 connections over 400ms");
    server.logged("drain done: 40 connections closed with 1012");
    server.exits_0(TIMEOUT);
}

/// With two loops the signal reaches one of them, which tells the other: clients on both get
/// 1012. The kernel spreads clients over the loops; the server's log says which loop each
/// landed on, and clients are added until both loops hold some.
#[test]
fn sigterm_drains_every_loop() {
    let server = Wsloop::start(&["--threads", "2", "--drain-window", "200ms"]);
    let clients = server.clients(4, 2);
    server.signal("-TERM");
    for (_, code, reason) in closes(clients) {
        assert_eq!(code, CloseCode::Restart, "{reason}");
    }
    server.exits_0(TIMEOUT);
}

/// While the drain runs, the listener stays open: `/readyz` says 503 to the load balancer,
/// `/healthz` still 200, a new WebSocket is refused with 503, and a client whose turn has not
/// come yet is still served.
#[test]
fn readyz_fails_while_draining_and_open_clients_are_served_until_their_turn() {
    let server = Wsloop::start(&["--drain-window", "3s"]);
    let addr = server.socket_addr();
    assert_eq!(get(addr, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(get(addr, "/readyz"), (200, "ok\n".to_string()));
    // Oldest first: `first` gets its close at once, `second` 1.5 s into the window.
    let mut clients = server.clients(2, 1);
    let mut second = clients.pop().unwrap();
    let first = clients.pop().unwrap();

    server.signal("-TERM");
    server.logged("SIGTERM: draining 2 connections over 3s");
    let (_, code, _) = await_close(first);
    assert_eq!(code, CloseCode::Restart);

    assert_eq!(get(addr, "/readyz"), (503, "draining\n".to_string()));
    assert_eq!(get(addr, "/healthz"), (200, "ok\n".to_string()));
    let mut late = RawClient::connect(addr);
    late.send(upgrade_request("/echo", "").as_bytes());
    assert_eq!(
        late.read_head().status,
        503,
        "no new WebSocket while draining"
    );
    drop(late);

    second.send(Message::text("still served?")).unwrap();
    assert_eq!(second.read().unwrap(), Message::text("still served?"));
    let (_, code, _) = await_close(second);
    assert_eq!(code, CloseCode::Restart);
    server.exits_0(TIMEOUT);
}

/// SIGINT (Ctrl+C) does not drain: every client gets 1001 at once, and the process exits 0,
/// even with a long drain window.
#[test]
fn sigint_closes_every_client_at_once_with_1001() {
    let server = Wsloop::start(&["--drain-window", "1m"]);
    let clients = server.clients(3, 1);
    let signalled = Instant::now();
    server.signal("-INT");
    for (at, code, reason) in closes(clients) {
        assert_eq!(code, CloseCode::Away, "{reason}");
        assert_eq!(reason, "server shutting down");
        assert!(
            at - signalled < Duration::from_secs(2),
            "{:?}",
            at - signalled
        );
    }
    server.exits_0(TIMEOUT);
}

/// SIGINT during a drain cuts it short: the clients whose turn has not come get 1001 at once.
#[test]
fn sigint_cuts_a_drain_short() {
    let server = Wsloop::start(&["--drain-window", "1m"]);
    let mut clients = server.clients(2, 1);
    let second = clients.pop().unwrap();
    let first = clients.pop().unwrap();
    server.signal("-TERM");
    assert_eq!(await_close(first).1, CloseCode::Restart);
    server.signal("-INT");
    assert_eq!(await_close(second).1, CloseCode::Away);
    server.exits_0(TIMEOUT);
}

//! The console client (`wsloop client URL`) against a running server: what a person typing
//! into it would see.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Instant;

use common::{RawClient, TestServer, TIMEOUT};
use wsloop::apps::{Chat, Echo};
use wsloop::{CompressionMode, Config};

/// Which stream a line came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Stdout,
    Stderr,
}

/// A running `wsloop client` whose stdout and stderr lines arrive on a channel.
struct Console {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<(Out, String)>,
    seen: Vec<(Out, String)>,
}

impl Console {
    fn start(args: &[&str]) -> Console {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsloop"))
            .arg("client")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsloop client");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let forward = |out: Out, stream: Box<dyn std::io::Read + Send>| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send((out, line)).is_err() {
                        break;
                    }
                }
            });
        };
        forward(Out::Stdout, Box::new(stdout));
        forward(Out::Stderr, Box::new(stderr));
        let stdin = child.stdin.take();
        let mut console = Console {
            child: Some(child),
            stdin,
            lines,
            seen: Vec::new(),
        };
        console.expect_on(Out::Stderr, "connected to");
        console
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("type into the client");
    }

    /// Waits for a stdout line containing `text` (a message); returns it.
    fn expect(&mut self, text: &str) -> String {
        self.expect_on(Out::Stdout, text)
    }

    /// Waits for a line on `out` containing `text` (or finds it among those that arrived while
    /// another was awaited: stdout and stderr race each other); returns it.
    fn expect_on(&mut self, out: Out, text: &str) -> String {
        let earlier = self
            .seen
            .iter()
            .position(|(on, line)| *on == out && line.contains(text));
        if let Some(at) = earlier {
            return self.seen.remove(at).1;
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((on, line)) if on == out && line.contains(text) => return line,
                Ok(seen) => self.seen.push(seen),
                Err(_) => panic!("no {out:?} line with {text:?}; saw {:?}", self.seen),
            }
        }
    }

    /// Waits for the process to exit by itself.
    fn wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("not waited for yet");
        let pid = child.id();
        let (tx, exited) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match exited.recv_timeout(TIMEOUT) {
            Ok(status) => status.expect("wait for the client"),
            Err(_) => {
                kill(pid);
                panic!("the client did not exit");
            }
        }
    }
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

impl Console {
    /// Sends SIGINT, as Ctrl+C in a terminal does.
    fn interrupt(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn server() -> TestServer {
    TestServer::with_routes(Config::default().metrics(true), |b| {
        b.route("/echo", Echo).route("/chat", Chat::default())
    })
}

/// Waits (bounded) until the server's `/metrics` counts `want` closes with `code`; panics with
/// the last scrape if it never does.
fn expect_closes(server: &TestServer, code: u16, want: u64) {
    let series = format!("wsloop_closes_total{{code=\"{code}\"}} ");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut client = RawClient::connect(server.addr());
        client.send(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
        let body = String::from_utf8(client.read_response().body).expect("UTF-8 metrics");
        let count = body
            .lines()
            .find_map(|line| line.strip_prefix(&series)?.parse::<u64>().ok());
        if count == Some(want) {
            return;
        }
        // The server counts a close when its handshake completes, which the client's exit
        // may precede by a moment: scrape again, within the deadline.
        assert!(
            Instant::now() < deadline,
            "no {want} closes {code}:\n{body}"
        );
        std::thread::yield_now();
    }
}

#[test]
fn echo_lines_and_ctrl_d_exits_cleanly() {
    let server = server();
    let url = format!("ws://{}/echo", server.addr());
    let mut console = Console::start(&[&url]);
    console.type_line("hello there");
    // A reply is marked, so it is not mistaken for the line typed.
    assert_eq!(console.expect("hello"), "< hello there");
    console.stdin = None; // Ctrl+D
    console.expect_on(Out::Stderr, "closed");
    assert!(console.wait().success());
    // Status lines went to stderr: stdout carries only what the server sent.
    let stdout: Vec<_> = console
        .seen
        .iter()
        .filter(|(on, _)| *on == Out::Stdout)
        .collect();
    assert!(stdout.is_empty(), "{stdout:?}");
}

#[test]
fn ctrl_c_closes_with_1000_and_exits_0() {
    let server = server();
    let url = format!("ws://{}/chat", server.addr());
    let mut alice = Console::start(&[&url, "--name", "alice"]);
    alice.expect("* in lobby: alice");
    alice.interrupt();
    alice.expect_on(Out::Stderr, "closed");
    let status = alice.wait();
    assert!(status.success(), "{status:?}; saw {:?}", alice.seen);
    let errors: Vec<_> = alice
        .seen
        .iter()
        .filter(|(_, l)| l.contains("error"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    expect_closes(&server, 1000, 1);
}

#[test]
fn piped_lines_are_all_answered_before_the_client_exits() {
    let server = server();
    let url = format!("ws://{}/echo", server.addr());
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(["client", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsloop client");
    // `printf 'one\ntwo\n' | wsloop client URL`: the input ends at once, so the client closes
    // right after sending, while the echoes are on their way.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"one\ntwo\n").unwrap();
    drop(stdin);
    let (tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = done
        .recv_timeout(TIMEOUT)
        .expect("the client exits")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout, "< one\n< two\n", "stderr: {stderr}");
    expect_closes(&server, 1000, 1);
}

#[test]
fn with_compression_offered_one_line_says_whether_it_was_agreed() {
    let compressing = TestServer::with_routes(
        Config::default().compression(CompressionMode::Shared),
        |b| b.route("/echo", Echo),
    );
    let url = format!("ws://{}/echo", compressing.addr());
    let mut console = Console::start(&[&url, "--compression"]);
    let line = console.expect_on(Out::Stderr, "compression:");
    assert_eq!(
        line,
        "compression: permessage-deflate agreed \
         (server_no_context_takeover, client_no_context_takeover)"
    );
    console.type_line(&"compressible ".repeat(20));
    console.expect("< compressible compressible");

    let plain = server();
    let url = format!("ws://{}/echo", plain.addr());
    let mut console = Console::start(&[&url, "--compression"]);
    let line = console.expect_on(Out::Stderr, "compression:");
    assert!(line.contains("declined"), "{line}");
    // Not offered: not a word about it.
    let mut console = Console::start(&[&url]);
    console.type_line("hi");
    console.expect("< hi");
    assert!(!console.seen.iter().any(|(_, l)| l.contains("compression")));
}

#[test]
fn a_closed_stdout_ends_the_session_with_a_close_not_a_panic() {
    let server = server();
    let url = format!("ws://{}/echo", server.addr());
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(["client", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsloop client");
    // `wsloop client URL | head -0`: no one reads what it prints.
    drop(child.stdout.take());
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "into the void").unwrap();
    let (tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = done
        .recv_timeout(TIMEOUT)
        .expect("the client exits")
        .unwrap();
    drop(stdin);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    expect_closes(&server, 1000, 1);
}

#[test]
fn a_taken_name_can_be_replaced_with_slash_name() {
    let server = server();
    let url = format!("ws://{}/chat", server.addr());
    let mut alice = Console::start(&[&url, "--name", "alice"]);
    alice.expect("* in lobby: alice");
    let mut bob = Console::start(&[&url, "--name", "ALICE"]);
    bob.expect("! name_taken");
    bob.expect_on(Out::Stderr, "/name NAME");
    // A line typed now has nowhere to go: the console says what to do, not the chat's
    // "not_joined: send join first".
    bob.type_line("hello?");
    let line = bob.expect_on(Out::Stderr, "not in the chat yet");
    assert!(line.contains("/name NAME"), "{line}");
    bob.type_line("/name bob");
    bob.expect("* in lobby: alice, bob");
    bob.type_line("hello!");
    bob.expect("<bob> hello!");
    assert!(
        !bob.seen.iter().any(|(_, line)| line.contains("not_joined")),
        "{:?}",
        bob.seen
    );
    bob.type_line("/name carol");
    bob.expect_on(Out::Stderr, "already joined");
    bob.type_line("/dance");
    bob.expect_on(Out::Stderr, "unknown command /dance");
}

#[test]
fn two_consoles_chat() {
    let server = server();
    let url = format!("ws://{}/chat", server.addr());
    let mut alice = Console::start(&[&url, "--name", "alice"]);
    alice.expect("* in lobby: alice");
    let mut bob = Console::start(&[&url, "--name", "bob", "--room", "lobby"]);
    bob.expect("* in lobby: alice, bob");
    alice.expect("* bob joined lobby");

    alice.type_line("hi bob");
    assert!(bob.expect("<alice>").ends_with("<alice> hi bob"));
    bob.type_line("/pm alice just you");
    assert!(alice.expect("[pm bob -> alice]").ends_with("just you"));
    bob.type_line("/users");
    bob.expect("* in lobby: alice, bob");
    bob.type_line("/nonsense");
    bob.expect_on(Out::Stderr, "commands: /pm NAME TEXT");

    alice.type_line("/quit");
    alice.expect_on(Out::Stderr, "closed");
    assert!(alice.wait().success());
    bob.expect("* alice left lobby");
}

#[test]
fn failed_connection_is_one_clear_line() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(["client", &format!("ws://127.0.0.1:{port}/echo")])
        .stdin(Stdio::null())
        .output()
        .expect("run wsloop client");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert_eq!(stderr.matches("connect").count(), 1, "said twice: {stderr}");
}

#[test]
fn chat_url_without_a_name_is_refused() {
    let server = server();
    let output = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(["client", &format!("ws://{}/chat", server.addr())])
        .stdin(Stdio::null())
        .output()
        .expect("run wsloop client");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--name"));
}

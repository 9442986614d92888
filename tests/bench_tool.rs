//! `wsloop bench` against a running server: its counts must be right and its errors counted.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output};
use std::sync::{Arc, Mutex};

use common::TestServer;
use serde_json::Value;
use wsloop::apps::{Broadcast, Chat, Echo};
use wsloop::{CloseCode, CompressionMode, Config, Context, Handler, Message};

/// Closes every connection on its first message.
struct Refuse;

impl Handler for Refuse {
    fn on_message(&mut self, ctx: &mut Context<'_>, _message: Message<'_>) {
        ctx.close(CloseCode::POLICY_VIOLATION, "no thanks");
    }
}

/// Echoes, and notes how each connection ended.
struct CloseRecorder(Arc<Mutex<Vec<(u16, String)>>>);

impl Handler for CloseRecorder {
    fn on_message(&mut self, ctx: &mut Context<'_>, _message: Message<'_>) {
        ctx.echo();
    }

    fn on_close(&mut self, _ctx: &mut Context<'_>, code: CloseCode, reason: &str) {
        self.0.lock().unwrap().push((code.0, reason.to_string()));
    }
}

fn server() -> TestServer {
    server_recording_closes(Arc::default())
}

fn server_recording_closes(closes: Arc<Mutex<Vec<(u16, String)>>>) -> TestServer {
    TestServer::with_routes(Config::default(), |b| {
        b.route("/", Echo)
            .route("/broadcast", Broadcast)
            .route("/refuse", Refuse)
            .route("/recorded", CloseRecorder(closes))
            .route("/chat", Chat::default())
    })
}

fn bench(args: &[&str]) -> (Output, Option<Value>) {
    let output = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .arg("bench")
        .args(args)
        .args(["--duration", "1s", "--json"])
        .output()
        .expect("run wsloop bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok());
    (output, summary)
}

/// Checks that a run succeeded without errors; returns its summary.
fn clean_run(output: &Output, summary: Option<Value>) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = summary.expect("a JSON summary");
    assert_eq!(summary["errors"], 0);
    summary
}

#[test]
fn echo_counts_every_round_trip() {
    let server = server();
    let url = format!("ws://{}/", server.addr());
    let (output, summary) = bench(&[
        &url,
        "--connections",
        "4",
        "--size",
        "100",
        "--pipeline",
        "2",
    ]);
    let summary = clean_run(&output, summary);
    let total = summary["total"].as_u64().unwrap();
    assert!(total > 100, "only {total} round trips in a second");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("4 connections up"), "{stdout}");
    assert!(
        stdout.contains("[  1s]"),
        "a progress line per second: {stdout}"
    );
    assert!(summary["p50_ms"].as_f64().unwrap() <= summary["p99_ms"].as_f64().unwrap());
}

#[test]
fn a_burst_sends_the_next_n_once_all_n_came_back() {
    let server = server();
    let url = format!("ws://{}/", server.addr());
    let args = [
        "--connections",
        "4",
        "--size",
        "20",
        "--pipeline",
        "8",
        "--burst",
    ];
    let (output, summary) = bench(&[&[url.as_str()][..], &args].concat());
    let summary = clean_run(&output, summary);
    assert_eq!(summary["burst"], true);
    // Bursts keep going: far more than the first 4 x 8.
    let total = summary["total"].as_u64().unwrap();
    assert!(total > 320, "only {total} round trips in a second");
}

#[test]
fn compressed_echoes_are_counted_and_smaller_on_the_wire() {
    let compressing = Config::default().compression(CompressionMode::Shared);
    let server = TestServer::with_routes(compressing, |b| b.route("/", Echo));
    let url = format!("ws://{}/", server.addr());
    let args = ["--connections", "3", "--size", "2KiB", "--payload", "json"];
    let (output, summary) = bench(&[&[url.as_str(), "--compression"][..], &args].concat());
    let summary = clean_run(&output, summary);
    assert!(summary["total"].as_u64().unwrap() > 10, "{summary}");
    // The server's echoes came back compressed: far fewer bytes than the 2 KiB messages.
    let wire = summary["wire_bytes_per_message"].as_f64().unwrap();
    assert!(wire < 1024.0, "{summary}");
    // Without --compression, the same run is uncompressed.
    let (output, summary) = bench(&[&[url.as_str()][..], &args].concat());
    let wire = clean_run(&output, summary)["wire_bytes_per_message"]
        .as_f64()
        .unwrap();
    assert!(wire > 2048.0, "{wire}");
}

#[test]
fn broadcast_counts_deliveries_to_every_receiver() {
    let server = server();
    let url = format!("ws://{}/broadcast", server.addr());
    let (output, summary) = bench(&[
        &url,
        "--mode",
        "broadcast",
        "--connections",
        "3",
        "--size",
        "64",
        "--pipeline",
        "4",
    ]);
    let summary = clean_run(&output, summary);
    let total = summary["total"].as_u64().unwrap();
    assert!(total >= 30, "only {total} deliveries");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("4 connections up"),
        "3 receivers and the sender: {stdout}"
    );
}

#[test]
fn a_run_ends_with_a_close_handshake_on_every_connection() {
    let closes = Arc::default();
    let server = server_recording_closes(Arc::clone(&closes));
    let url = format!("ws://{}/recorded", server.addr());
    let (output, summary) = bench(&[&url, "--connections", "4"]);
    clean_run(&output, summary);
    // The tool waits for the server's close reply, which comes after on_close.
    let closes = closes.lock().unwrap().clone();
    assert_eq!(closes, vec![(1000, "bench done".to_string()); 4]);
}

#[test]
fn closed_connections_are_counted_as_errors() {
    let server = server();
    let url = format!("ws://{}/refuse", server.addr());
    let (output, summary) = bench(&[&url, "--connections", "3"]);
    assert!(!output.status.success(), "a run with errors must fail");
    assert_eq!(summary.expect("a JSON summary")["errors"], 3);
}

#[test]
fn unreachable_server_is_one_clear_line() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The default 100 connections: one line for them all, not one per connection.
    let (output, _) = bench(&[&format!("ws://127.0.0.1:{port}/")]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("wsloop bench: 100 of 100 connections failed: connect failed: "),
        "{stderr}"
    );
}

/// The run fails with one line on stderr containing `says`.
fn fails_saying(args: &[&str], says: &str) {
    let (output, _) = bench(args);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(says), "{stderr}");
}

#[test]
fn replies_that_are_not_echoes_fail_the_run() {
    let server = server();
    // Every chat reply is an error event: text, not the binary sent.
    let chat = format!("ws://{}/chat", server.addr());
    fails_saying(
        &[&chat, "--connections", "2"],
        "not an echo of what was sent",
    );
    // Broadcast sends each message to the others: more comes back than was sent.
    let broadcast = format!("ws://{}/broadcast", server.addr());
    fails_saying(&[&broadcast, "--connections", "3"], "not an echo endpoint");
}

#[test]
fn a_close_by_the_server_is_reported_with_its_code_and_reason() {
    let server = server();
    let url = format!("ws://{}/refuse", server.addr());
    let (output, _) = bench(&[&url, "--connections", "3"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Once for the three.
    assert_eq!(
        stderr.trim_end(),
        "wsloop bench: 3 connections failed: the server closed with 1008 \"no thanks\"",
    );
}

#[test]
fn a_zero_duration_is_refused_and_one_is_singular() {
    let server = server();
    let url = format!("ws://{}/", server.addr());
    let output = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(["bench", &url, "--duration", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--duration"));
    let (output, _) = bench(&[&url, "--connections", "1"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("1 connection up"), "{stdout}");
    assert!(!stdout.contains("1 connections"), "{stdout}");
}

/// Reads the child's stdout lines until one contains `wanted`; panics with what came if the
/// output ends first.
fn read_until(lines: &mut impl Iterator<Item = String>, wanted: &str) -> String {
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        if line.contains(wanted) {
            return line;
        }
        seen.push(line);
    }
    panic!("no line with {wanted:?}; got {seen:#?}");
}

/// `wsloop bench URL --mode broadcast --idle --json` with `args`, and its stdout's lines as
/// they come.
fn idle_bench(url: &str, args: &[&str]) -> (Child, impl Iterator<Item = String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(["bench", url, "--mode", "broadcast", "--idle", "--json"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = BufReader::new(stdout).lines().map_while(Result::ok);
    (child, lines)
}

#[test]
fn an_idle_run_times_a_broadcast_to_all_and_ends_when_the_server_closes_them() {
    let server = server();
    let url = format!("ws://{}/broadcast", server.addr());
    let (mut child, mut lines) = idle_bench(&url, &["--connections", "5", "--duration", "60s"]);
    let up = read_until(&mut lines, "\"event\":\"up\"");
    let up: Value = serde_json::from_str(&up).unwrap();
    assert_eq!(up["connections"], 5);
    assert!(up["rate"].as_f64().unwrap() > 0.0, "{up}");
    read_until(&mut lines, "holding 5 idle connections");
    // One message from a sixth client reaches the five held ones.
    let mut sender = common::RawClient::upgrade(server.addr(), "/broadcast");
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    sender.send(&common::client_frame(true, 1, b"to everyone"));
    let reached = read_until(&mut lines, "\"event\":\"reached\"");
    let reached: Value = serde_json::from_str(&reached).unwrap();
    assert_eq!(reached["message"], 1);
    assert_eq!(reached["connections"], 5);
    assert!(
        reached["last_unix"].as_f64().unwrap() >= before,
        "{reached}"
    );
    // A shutdown closes them all with 1001, which ends the run, successfully.
    server.begin_shutdown();
    let closed = read_until(&mut lines, "\"event\":\"closed\"");
    let closed: Value = serde_json::from_str(&closed).unwrap();
    assert_eq!(closed["closed"], 5);
    let reasons = closed["reasons"].as_str().unwrap();
    assert!(
        reasons.starts_with("the server closed with 1001"),
        "{reasons}"
    );
    assert!(child.wait().unwrap().success());
}

/// `--non-readers 20` of 10 connections: the 5th and 10th stop reading once upgraded. A paced
/// flood reaches the 8 others, the server's slow-consumer limit ends the 2 (reported as such,
/// not as failures), and a shutdown then closes the 8.
#[test]
fn non_readers_are_left_out_of_the_reach_and_their_closes_are_told_apart() {
    use std::time::Duration;
    let config = Config::default()
        .max_buffered(16 * 1024)
        .send_buffer(Some(8 * 1024))
        .close_timeout(Duration::from_millis(300));
    let server = TestServer::with_routes(config, |b| b.route("/broadcast", Broadcast));
    let url = format!("ws://{}/broadcast", server.addr());
    let args = [
        "--connections",
        "10",
        "--non-readers",
        "20",
        "--duration",
        "20s",
    ];
    let (mut child, mut lines) = idle_bench(&url, &args);
    read_until(
        &mut lines,
        "holding 10 idle connections (2 of them not reading)",
    );
    let mut sender = common::RawClient::upgrade(server.addr(), "/broadcast");
    for message in 1..=8 {
        sender.send(&common::client_frame(true, 2, &[message as u8; 8 * 1024]));
        let reached = read_until(&mut lines, "\"event\":\"reached\"");
        let reached: Value = serde_json::from_str(&reached).unwrap();
        assert_eq!(reached["message"], message, "{reached}");
        assert_eq!(reached["connections"], 8, "{reached}");
    }
    let cut_off = read_until(&mut lines, "\"event\":\"cut_off\"");
    let cut_off: Value = serde_json::from_str(&cut_off).unwrap();
    assert_eq!(cut_off["connections"], 2, "{cut_off}");
    server.begin_shutdown();
    let closed = read_until(&mut lines, "\"event\":\"closed\"");
    let closed: Value = serde_json::from_str(&closed).unwrap();
    assert_eq!(
        (&closed["closed"], &closed["non_readers_closed"]),
        (&Value::from(8), &Value::from(2)),
        "{closed}"
    );
    let reasons = closed["reasons"].as_str().unwrap();
    assert!(
        reasons.starts_with("the server closed with 1001") && !reasons.contains(';'),
        "{reasons}"
    );
    assert!(child.wait().unwrap().success());
}

#[test]
fn more_connections_than_the_descriptor_limit_are_refused_before_connecting() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let soft: usize = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    let server = server();
    let url = format!("ws://{}/", server.addr());
    let too_many = (soft + 1).to_string();
    let (output, _) = bench(&[&url, "--idle", "--connections", &too_many]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("but this process may open {soft} (ulimit -n)")),
        "{stderr}"
    );
    assert!(stderr.contains("several bench processes"), "{stderr}");
}

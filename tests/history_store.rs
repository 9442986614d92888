//! History that survives a restart (`--history-store sqlite:PATH`, `HistoryOptions::sqlite`):
//! a client that comes back after the server restarted gets exactly what it missed, under the
//! same epoch; a crash changes the epoch instead of reusing offsets; files that cannot be used
//! are refused at start with one line naming them.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::pubsub::Client;
use common::{spawn_wsloop, RawClient, TestServer};
use serde_json::{json, Value};
use wsloop::apps::PubSub;
use wsloop::{Config, HistoryOptions};

/// A scratch file in the target directory, removed (with its WAL) when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("history-{name}.sqlite"));
        remove(&path);
        Scratch(path)
    }

    fn flag(&self) -> String {
        format!("sqlite:{}", self.0.display())
    }
}

fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove(&self.0);
    }
}

/// The offsets and data of a list of publications.
fn publications(list: &Value) -> Vec<(u64, Value)> {
    (list.as_array().expect("a list").iter())
        .map(|p| (p["offset"].as_u64().unwrap(), p["data"].clone()))
        .collect()
}

fn pubsub_server(history: HistoryOptions) -> TestServer {
    TestServer::with_routes(Config::default().metrics(true), |builder| {
        builder.route("/pubsub", PubSub).history(history)
    })
}

#[test]
fn after_a_clean_restart_a_client_gets_exactly_what_it_missed_under_the_same_epoch() {
    let file = Scratch::new("restart");
    let server = pubsub_server(HistoryOptions::default().sqlite(&file.0));
    let mut subscriber = Client::connect(server.addr());
    subscriber.ask(json!({"type": "subscribe", "channel": "feed"}), 1);
    let mut publisher = Client::connect(server.addr());
    for n in 1..=30 {
        publisher.publish("feed", json!({"n": n}), n);
    }
    publisher.publish("other", json!("x"), 31);
    let mut seen = None;
    for n in 1..=10 {
        let publication = subscriber.next();
        assert_eq!(publication["data"], json!({"n": n}));
        seen = Some((publication["offset"].clone(), publication["epoch"].clone()));
    }
    let (offset, epoch) = seen.unwrap();
    assert_eq!(offset, 10);
    drop((subscriber, publisher));
    server.begin_shutdown();
    server.wait().expect("a clean stop");

    let server = pubsub_server(HistoryOptions::default().sqlite(&file.0));
    let mut back = Client::connect(server.addr());
    let all = back.ask(json!({"type": "history", "channel": "feed"}), 1);
    assert_eq!(
        (&all["offset"], &all["epoch"]),
        (&json!(30), &epoch),
        "{all}"
    );
    let expected: Vec<(u64, Value)> = (1..=30).map(|n| (n, json!({"n": n}))).collect();
    assert_eq!(publications(&all["publications"]), expected);
    let since = json!({"offset": offset, "epoch": epoch});
    let reply = back.ask(
        json!({"type": "subscribe", "channel": "feed", "since": since}),
        2,
    );
    assert_eq!(reply["recovered"], true, "{reply}");
    assert_eq!(reply["epoch"], epoch);
    assert_eq!(publications(&reply["publications"]), expected[10..]);
    let published = back.publish("feed", json!("after"), 3);
    assert_eq!(
        (&published["offset"], &published["epoch"]),
        (&json!(31), &epoch)
    );
    let live = back.next();
    assert_eq!(
        (&live["offset"], &live["data"]),
        (&json!(31), &json!("after"))
    );
    let other = back.ask(json!({"type": "history", "channel": "other"}), 4);
    assert_eq!(other["offset"], 1);

    let scrape = metrics(server.addr());
    for line in [
        "wsloop_history_store_rows_total{outcome=\"dropped\"} 0",
        "wsloop_history_store_rows_total{outcome=\"failed\"} 0",
        "# TYPE wsloop_history_store_write_seconds histogram",
    ] {
        assert!(scrape.lines().any(|l| l == line), "{line} in\n{scrape}");
    }
}

fn metrics(addr: SocketAddr) -> String {
    let mut client = RawClient::connect(addr);
    client.send(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    String::from_utf8(client.read_response().body).expect("UTF-8 metrics")
}

/// The binary's stderr when it refuses to start: exit code 2, and one line.
fn refused(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run wsloop");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty(), "it never listened");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    lines[0].to_string()
}

#[test]
fn files_that_cannot_be_used_are_refused_at_start_with_one_line_naming_them() {
    let text = Scratch::new("text");
    std::fs::write(&text.0, "a page of notes, not a database\n".repeat(200)).unwrap();
    assert_eq!(
        refused(&["--history-store", &text.flag()]),
        format!(
            "wsloop: history store {}: not an SQLite database",
            text.0.display()
        )
    );

    let missing = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-dir/history.sqlite");
    let line = refused(&["--history-store", &format!("sqlite:{}", missing.display())]);
    let named = format!("wsloop: history store {}: ", missing.display());
    assert!(line.starts_with(&named), "{line}");
    assert!(line.contains("no directory"), "{line}");

    let taken = Scratch::new("taken");
    let first = Running::spawn(&["--history-store", &taken.flag()]);
    let line = refused(&["--history-store", &taken.flag()]);
    drop(first);
    assert_eq!(
        line,
        format!(
            "wsloop: history store {}: in use by another process (another wsloop with the \
             same file?)",
            taken.0.display()
        )
    );
}

/// Publishes `count` messages on `channel` through the binary at `addr`; returns the last
/// acknowledgement's epoch.
fn publish_through(addr: SocketAddr, channel: &str, count: u64) -> Value {
    let mut client = Client::connect(addr);
    let mut epoch = Value::Null;
    for n in 1..=count {
        epoch = client.publish(channel, json!(n), n)["epoch"].clone();
    }
    epoch
}

/// A `wsloop` process, killed when dropped unless it already exited.
struct Running(Child, String);

impl Running {
    fn spawn(args: &[&str]) -> Running {
        let (child, addr) = spawn_wsloop(args);
        Running(child, addr)
    }

    fn addr(&self) -> SocketAddr {
        self.1.parse().unwrap()
    }

    fn sigterm(mut self) {
        let pid = self.0.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
        assert!(self.0.wait().unwrap().success(), "a clean exit");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_binary_flushes_on_sigterm_and_a_crash_changes_the_epoch_instead_of_reusing_offsets() {
    let file = Scratch::new("binary");
    // SIGTERM drains over --drain-window: none here, the test has no clients left by then.
    let flag = ["--history-store", &file.flag(), "--drain-window", "0"];
    let server = Running::spawn(&flag);
    let epoch = publish_through(server.addr(), "news", 5);
    server.sigterm();

    let server = Running::spawn(&flag);
    let mut client = Client::connect(server.addr());
    let next = client.publish("news", json!("after SIGTERM"), 1);
    assert_eq!((&next["offset"], &next["epoch"]), (&json!(6), &epoch));
    drop(client);
    // SIGKILL: what was queued for the file may be lost, so the stream cannot go on as if not.
    drop(server);

    let server = Running::spawn(&flag);
    let mut client = Client::connect(server.addr());
    let after = client.publish("news", json!("after a crash"), 1);
    assert_ne!(after["epoch"], epoch, "a new epoch: {after}");
    let since = json!({"offset": 6, "epoch": epoch});
    let reply = client.ask(
        json!({"type": "subscribe", "channel": "news", "since": since}),
        2,
    );
    assert_eq!(
        (&reply["recovered"], &reply["reason"]),
        (&json!(false), &json!("epoch changed"))
    );
    drop(client);
    server.sigterm();
}

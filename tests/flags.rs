//! The `wsloop` command line as a new user meets it: defaults that work together, and one clear
//! line (exit 2) for each kind of mistake.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use common::spawn_wsloop;

fn wsloop(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run wsloop")
}

/// The flags are refused with exit 2 and an error that says `says`.
fn refused(args: &[&str], says: &str) {
    let output = wsloop(args);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(says), "{stderr}");
}

/// The server starts with `args` (and a free port), then is stopped.
fn starts(args: &[&str]) {
    let (mut child, addr) = spawn_wsloop(args);
    let _ = child.kill();
    let _ = child.wait();
    assert!(addr.starts_with("127.0.0.1:"), "{args:?}: {addr:?}");
}

#[test]
fn a_smaller_message_limit_alone_is_accepted_and_sizes_take_decimals() {
    starts(&["--max-message-size", "64KiB"]);
    starts(&["--max-message-size", "1.5MiB", "--max-buffered", "0.5MiB"]);
    starts(&["--threads", "2"]);
}

#[test]
fn mistakes_are_one_line_that_says_what_is_expected() {
    refused(&["--bind", "127.0.0.1"], "HOST:PORT");
    refused(
        &["--log-level", "verbose"],
        "possible values: off, error, warn, info, debug, trace",
    );
    refused(
        &["--max-message-size", "lots"],
        "like 512KiB, 1.5MiB or 16MiB",
    );
    refused(&["--max-buffered", "100"], "got 100B");
    refused(
        &["--ping-interval", "90s"],
        "must be shorter than idle-timeout",
    );
    refused(&["--tls-cert", "cert.pem"], "--tls-key");
    refused(&["--log-format", "xml"], "possible values: text, json");
    refused(&["--threads", "0"], "0 is not in 1..=256");
}

/// `--log-format json`: every line one JSON object, and a connection's close carries its
/// peer, path, connection id, code and reason as fields.
#[test]
fn json_logs_are_one_object_per_line_with_the_connection_fields() {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    let (child, addr) = start_logging(&["--log-format", "json"]);
    // Open a WebSocket on /echo and close it with 1000 "bye"; wait for the server's close.
    let mut socket = TcpStream::connect(&addr).expect("connect");
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).unwrap();
    let mut close = vec![0x88, 0x85, 0, 0, 0, 0, 0x03, 0xE8];
    close.extend_from_slice(b"bye");
    socket.write_all(&close).unwrap();
    let mut received = Vec::new();
    let _ = socket.read_to_end(&mut received);
    assert!(received.starts_with(b"HTTP/1.1 101"), "{received:?}");
    let stderr = stop_for_log(child);

    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let closed = lines
        .iter()
        .find(|l| l["msg"].as_str().is_some_and(|m| m.contains("closed")))
        .unwrap_or_else(|| panic!("no close line in {stderr}"));
    assert_eq!(closed["level"], "INFO");
    assert_eq!(closed["path"], "/echo");
    assert_eq!(closed["code"], 1000);
    assert_eq!(closed["reason"], "bye");
    assert!(closed["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(
        closed["id"].is_string() && closed["ts"].is_string(),
        "{closed}"
    );
}

#[test]
fn help_lists_every_flag_and_one_short_line_per_subcommand() {
    let output = wsloop(&["--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--bind",
        "--log-level",
        "--max-message-size",
        "--tls-cert",
        "--close-timeout",
        "--log-format",
        "--metrics",
        "--threads",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    for command in ["client", "bench"] {
        let line = help
            .lines()
            .find(|l| l.trim_start().starts_with(command))
            .unwrap_or_else(|| panic!("no {command} line"));
        assert!(line.len() < 100, "{line:?}");
    }
}

/// The open-files hard limit of this process (and so of the servers it starts), or `None`
/// where it is unlimited.
fn hard_open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(4)?.parse().ok()
}

/// The server started with `args` on a free port, its stderr kept: the child and its address.
fn start_logging(args: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start wsloop");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening on ws://"), "{line:?}");
    let addr = line.trim().trim_start_matches("listening on ws://");
    (child, addr.to_string())
}

/// Stops the server and returns all it logged.
fn stop_for_log(mut child: std::process::Child) -> String {
    use std::io::Read;
    let _ = child.kill();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = child.wait();
    stderr
}

/// The server's stderr from start until it listens, then it is stopped.
fn start_log(args: &[&str]) -> String {
    stop_for_log(start_logging(args).0)
}

/// A `--max-connections` past what the open-files limit allows would leave the connections
/// past it unaccepted in the kernel's queue: the server lowers its limit to the room it has
/// (so they are answered 503) and says so in one line. The default says nothing.
#[test]
fn a_connection_limit_past_the_open_files_limit_is_lowered_with_one_line_saying_so() {
    let Some(hard) = hard_open_files_limit() else {
        return; // unlimited: there is no limit to go past
    };
    let asked = (hard + 1_000).to_string();
    let log = start_log(&["--max-connections", &asked]);
    let said: Vec<&str> = log.lines().filter(|l| l.contains("room for")).collect();
    assert_eq!(said.len(), 1, "{log}");
    assert!(
        said[0].contains(&format!("may open {hard} files"))
            && said[0].contains(&format!("room for {} connections", hard - 64))
            && said[0].contains(&format!("not --max-connections {asked}")),
        "{log}"
    );
    let quiet = start_log(&[]);
    assert!(!quiet.contains("room for"), "{quiet}");
}

//! The configuration file (`--config`), `WSLOOP_*` variables and flags, as a user runs them:
//! which wins, what `wsloop config check` says, and what SIGHUP changes.

// These tests use the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use common::{client_frame, upgrade_request, RawClient, CLOSE, TEXT, TIMEOUT};

fn scratch(name: &str, text: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "wsloop-test-config-{name}-{}.toml",
        std::process::id()
    ));
    std::fs::write(&path, text).expect("write the file");
    path
}

/// The server with `args` and `env`, its address and its log.
struct Running {
    child: Child,
    addr: SocketAddr,
    log: mpsc::Receiver<String>,
}

impl Running {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_wsloop"))
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start wsloop");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let addr = (first.trim().strip_prefix("listening on ws://"))
            .unwrap_or_else(|| panic!("{first:?}"))
            .parse()
            .unwrap();
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Running { child, addr, log }
    }

    /// Log lines until one contains `text`, all of them.
    fn log_until(&self, text: &str) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut lines = Vec::new();
        while let Ok(line) =
            (self.log).recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            let found = line.contains(text);
            lines.push(line);
            if found {
                return lines;
            }
        }
        panic!("no log line with {text:?} in {lines:#?}");
    }

    fn hang_up(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The status an upgrade to /echo from `origin` gets.
    fn upgrade_status(&self, origin: &str) -> u16 {
        let mut client = RawClient::connect(self.addr);
        client.send(upgrade_request("/echo", &format!("Origin: {origin}\r\n")).as_bytes());
        client.read_head().status
    }

    /// The close code a text message of `len` bytes to /echo gets (0: echoed).
    fn send_text(&self, len: usize) -> u16 {
        let mut client = RawClient::connect(self.addr);
        client.send(upgrade_request("/echo", "").as_bytes());
        assert_eq!(client.read_head().status, 101);
        client.send(&client_frame(true, TEXT, &vec![b'a'; len]));
        let frame = client.read_frame();
        if frame.opcode == CLOSE {
            frame.close_code()
        } else {
            0
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_flag_beats_a_variable_which_beats_the_file() {
    let file = scratch(
        "precedence",
        "bind = \"127.0.0.1:0\"\nmax-message-size = \"1KiB\"\nmax-frame-size = \"4KiB\"\n",
    );
    let config = file.to_str().unwrap();
    // The file alone: 1 KiB.
    let server = Running::start(&["--config", config], &[]);
    assert_eq!((server.send_text(1000), server.send_text(1500)), (0, 1009));
    drop(server);
    // A variable over it: 2 KiB.
    let env = [("WSLOOP_MAX_MESSAGE_SIZE", "2KiB")];
    let server = Running::start(&["--config", config], &env);
    assert_eq!((server.send_text(1500), server.send_text(2500)), (0, 1009));
    drop(server);
    // A flag over both: 3 KiB.
    let server = Running::start(&["--config", config, "--max-message-size", "3KiB"], &env);
    assert_eq!((server.send_text(2500), server.send_text(3500)), (0, 1009));
    drop(server);
    // WSLOOP_CONFIG names the file too.
    let server = Running::start(&[], &[("WSLOOP_CONFIG", config)]);
    assert_eq!(server.send_text(1500), 1009);
    let _ = std::fs::remove_file(file);
}

#[test]
fn sighup_without_anything_to_reload_is_logged_not_fatal() {
    let server = Running::start(&["--bind", "127.0.0.1:0"], &[]);
    server.hang_up();
    server.log_until("SIGHUP: nothing to reload");
    assert_eq!(server.upgrade_status("https://any.example"), 101);
}

#[test]
fn a_bad_file_or_variable_stops_the_start_with_where_and_why() {
    let file = scratch("bad", "bind = \"127.0.0.1:0\"\n\nidle-timeuot = \"5m\"\n");
    let config = file.to_str().unwrap();
    let output = common::run_wsloop(&["--config", config], &[], "");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{config}:3: unknown key \"idle-timeuot\"; did you mean \"idle-timeout\"?"
        )),
        "{err}"
    );
    let output = common::run_wsloop(
        &["--bind", "127.0.0.1:0"],
        &[("WSLOOP_MAX_CONNECTIONS", "lots")],
        "",
    );
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(
        err.contains("WSLOOP_MAX_CONNECTIONS: \"lots\": expected a whole number"),
        "{err}"
    );
    let _ = std::fs::remove_file(file);
}

#[test]
fn config_check_shows_each_value_with_its_source_and_exits_2_on_a_bad_file() {
    let file = scratch("check", "max-connections = 500\n[tls]\n");
    let config = file.to_str().unwrap();
    let output = common::run_wsloop(
        &["config", "check", config],
        &[("WSLOOP_MAX_CONNECTIONS", "700")],
        "",
    );
    let out = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("max-connections"))
        .unwrap();
    assert!(
        line.contains("= 700") && line.contains("WSLOOP_MAX_CONNECTIONS"),
        "{line}"
    );
    assert!(
        line.contains(&format!("overrides {config}:1 500")),
        "{line}"
    );
    let line = out
        .lines()
        .find(|l| l.starts_with("# idle-timeout"))
        .unwrap();
    assert!(
        line.contains("\"60s\"") && line.ends_with("# default"),
        "{line}"
    );
    // A file the server would not start with: 2, and why (here a certificate it cannot read).
    std::fs::write(
        &file,
        "[tls]\ncert = \"/nonexistent.pem\"\nkey = \"/nonexistent.key\"\n",
    )
    .unwrap();
    let output = common::run_wsloop(&["config", "check", config], &[], "");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains("/nonexistent.pem"), "{err}");
    // Not TOML: file:line:column.
    std::fs::write(&file, "bind = \"127.0.0.1:0\"\nthreads = = 2\n").unwrap();
    let output = common::run_wsloop(&["config", "check", config], &[], "");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("{config}:2:11: ")), "{err}");
    let _ = std::fs::remove_file(file);
}

#[test]
fn sighup_applies_new_limits_and_names_what_needs_a_restart() {
    let file = scratch(
        "reload",
        "bind = \"127.0.0.1:0\"\nallow-origin = [\"https://a.example\"]\n",
    );
    let server = Running::start(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(server.upgrade_status("https://a.example"), 101);
    assert_eq!(server.upgrade_status("https://b.example"), 403);
    std::fs::write(
        &file,
        "bind = \"127.0.0.1:1\"\nallow-origin = [\"https://b.example\"]\nthreads = 2\n",
    )
    .unwrap();
    server.hang_up();
    let lines = server.log_until("apply to new connections");
    for says in [
        "allow-origin = \"https://b.example\" (was \"https://a.example\")",
        "bind = \"127.0.0.1:1\" needs a restart",
        "threads = \"2\" needs a restart",
    ] {
        assert!(lines.iter().any(|l| l.contains(says)), "{says}: {lines:#?}");
    }
    assert_eq!(server.upgrade_status("https://a.example"), 403);
    assert_eq!(server.upgrade_status("https://b.example"), 101);
    // A file the server refuses (a ping interval past the idle timeout): nothing of it is
    // taken, or logged as taken; fixed, the change then shows against what was in effect.
    std::fs::write(
        &file,
        "allow-origin = [\"https://c.example\"]\nping-interval = \"5m\"\n",
    )
    .unwrap();
    server.hang_up();
    let lines = server.log_until("keeping the configuration");
    assert!(lines.iter().all(|l| !l.contains("(was ")), "{lines:#?}");
    assert_eq!(server.upgrade_status("https://c.example"), 403);
    std::fs::write(&file, "allow-origin = [\"https://c.example\"]\n").unwrap();
    server.hang_up();
    let lines = server.log_until("apply to new connections");
    let says = "allow-origin = \"https://c.example\" (was \"https://b.example\")";
    assert!(lines.iter().any(|l| l.contains(says)), "{lines:#?}");
    assert_eq!(server.upgrade_status("https://c.example"), 101);
    // A file that cannot be used: logged, the old configuration kept.
    std::fs::write(&file, "max-message-size = \"lots\"\n").unwrap();
    server.hang_up();
    server.log_until("keeping the configuration");
    assert_eq!(server.upgrade_status("https://c.example"), 101);
    let _ = std::fs::remove_file(file);
}

//! `wsloop send` and `wsloop sub` against a live server, as a shell script uses them: what
//! they print on stdout, and their exit statuses.

// These tests use the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// The server, killed when dropped.
struct Server(Child, String);

impl Server {
    fn start(args: &[&str]) -> Server {
        let (child, addr) = common::spawn_wsloop(args);
        Server(child, addr)
    }

    fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.1)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wsloop(args: &[&str], stdin: &str) -> Output {
    common::run_wsloop(args, &[], stdin)
}

fn lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn send_prints_the_replies_to_each_stdin_line_and_exits_with_how_it_ended() {
    let server = Server::start(&["--max-message-size", "1KiB"]);
    let echo = server.url("/echo");
    let output = wsloop(&["send", "--count", "3", &echo], "one\ntwo\nthree\n");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(lines(&output), ["one", "two", "three"]);
    // One message from the command line; binary replies print as base64.
    let output = wsloop(&["send", "--count", "1", "--binary", &echo, "hi"], "");
    assert_eq!(lines(&output), ["aGk="]);
    // Bytes that are not UTF-8 go as they are with --binary; without it, exit 2 and where.
    let output = wsloop(
        &["send", "--count", "1", "--binary", &echo],
        "\u{0}\u{7f}\n",
    );
    assert_eq!(lines(&output), ["AH8="]);
    let mut bad = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(["send", &echo])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut bad.stdin.take().unwrap(), b"ok\n\xff\xfe\n").unwrap();
    let output = bad.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("line 2 is not UTF-8"),
        "{}",
        stderr(&output)
    );
    // The server closes with 1009: 3, and the code on stderr.
    let big = "x".repeat(2000);
    let output = wsloop(&["send", &echo, &big], "");
    assert_eq!(output.status.code(), Some(3));
    assert!(stderr(&output).contains("1009"), "{}", stderr(&output));
    // No WebSocket there: 1, and why.
    let output = wsloop(&["send", &server.url("/nothing"), "hi"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("404"), "{}", stderr(&output));
}

#[test]
fn sub_prints_publications_once_in_order_and_recovers_from_since() {
    let server = Server::start(&[]);
    let pubsub = server.url("/pubsub");
    let publish = |n: u32| {
        let message =
            format!(r#"{{"type":"publish","channel":"jobs","data":{{"n":{n},"x":1.50}}}}"#);
        let output = wsloop(&["send", "--count", "1", &pubsub, &message], "");
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    };
    for n in 1..=5 {
        publish(n);
    }
    // From offset 2 of that epoch: exactly 3, 4 and 5, as the server wrote them.
    let epoch = {
        let output = wsloop(
            &[
                "send",
                "--count",
                "1",
                &pubsub,
                r#"{"type":"history","channel":"jobs","limit":1}"#,
            ],
            "",
        );
        let reply: Value = serde_json::from_str(&lines(&output)[0]).unwrap();
        reply["epoch"].as_str().unwrap().to_string()
    };
    let since = format!("2:{epoch}");
    let output = wsloop(
        &["sub", &pubsub, "jobs", "--since", &since, "--count", "3"],
        "",
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = lines(&output);
    let offsets: Vec<u64> = (printed.iter())
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["offset"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(offsets, [3, 4, 5]);
    assert!(
        printed[0].contains(r#""data":{"n":3,"x":1.50}"#),
        "{}",
        printed[0]
    );
    // Live: a subscriber sees what is published after it subscribed.
    let mut sub = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(["sub", &pubsub, "jobs", "--count", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(sub.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut err, &mut line).unwrap();
    assert!(line.contains("subscribed to jobs"), "{line}");
    publish(6);
    let mut out = String::new();
    std::io::Read::read_to_string(&mut sub.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).unwrap()["data"]["n"],
        6
    );
    assert!(sub.wait().unwrap().success());
    // Pretty-printed JSON from a publisher still prints as one line.
    let pretty = "{\"type\":\"publish\",\"channel\":\"jobs\",\"data\":{\n  \"n\": 7\n}}";
    let output = wsloop(&["send", "--count", "1", &pubsub, pretty], "");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let output = wsloop(
        &["sub", &pubsub, "jobs", "--since", &since, "--count", "5"],
        "",
    );
    let printed = lines(&output);
    assert_eq!(printed.len(), 5, "{printed:?}");
    let last: Value = serde_json::from_str(&printed[4]).unwrap();
    assert_eq!(last["data"]["n"], 7);
    // Not a /pubsub endpoint (one that answers, one that never does), a refused channel: 1,
    // and why.
    let output = wsloop(&["sub", &server.url("/broadcast"), "jobs"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("no answer to subscribe"),
        "{}",
        stderr(&output)
    );
    let output = wsloop(&["sub", &server.url("/echo"), "jobs", "--count", "1"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("/pubsub endpoint"),
        "{}",
        stderr(&output)
    );
    let output = wsloop(&["sub", &pubsub, "/jobs"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("bad_channel"),
        "{}",
        stderr(&output)
    );
}

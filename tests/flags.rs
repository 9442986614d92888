//! The `wsloop` command line as a new user meets it: defaults that work together, and one clear
//! line (exit 2) for each kind of mistake.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_wsloop"))
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start wsloop");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("listening on ws://127.0.0.1:"),
        "{args:?}: {line:?}"
    );
}

#[test]
fn a_smaller_message_limit_alone_is_accepted_and_sizes_take_decimals() {
    starts(&["--max-message-size", "64KiB"]);
    starts(&["--max-message-size", "1.5MiB", "--max-buffered", "0.5MiB"]);
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

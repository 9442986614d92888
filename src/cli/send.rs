//! `wsloop send URL [MESSAGE]`: send one message (or each line of standard input) to a
//! WebSocket server, print what comes back, close with 1000. For scripts: no prompts, what
//! the server sent on stdout (a text message per line), status on stderr, and an exit status
//! that says how it went.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use base64::Engine as _;
use clap::Args;
use wsloop::client::{Client, ClientError, Incoming};
use wsloop::{CloseCode, Message};

use super::console::connect;
use super::units;

/// `wsloop send`'s arguments.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// The server, such as ws://127.0.0.1:9001/echo.
    url: String,
    /// The message (text); without it, each line of standard input is sent as one.
    message: Option<String>,
    /// After the last message, print what arrives for this long, then close.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = units::parse_duration)]
    wait: Duration,
    /// Close as soon as this many messages have arrived (or --wait passed).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Send each message as binary instead of text (its bytes as given).
    #[arg(long)]
    binary: bool,
    /// For wss://: also trust the CA certificate(s) in this PEM file.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// For wss://: do not verify the server's certificate at all (testing only).
    #[arg(long)]
    insecure: bool,
}

/// Exit statuses: 0 done and closed 1000, 1 the connection failed or was refused, 2 bad
/// usage (a line that is not UTF-8 without --binary), 3 the server closed with another code
/// (printed on stderr).
const FAILED: u8 = 1;
const USAGE: u8 = 2;
const CLOSED_BY_SERVER: u8 = 3;

/// How long a read waits before the next message is sent.
const GLANCE: Duration = Duration::from_millis(1);

/// Runs `wsloop send`.
pub fn run(args: &SendArgs) -> ExitCode {
    let mut client = match connect(&args.url, args.ca.as_deref(), args.insecure) {
        Ok(client) => client,
        Err(e) => return fail(FAILED, &e),
    };
    let mut session = Session {
        client: &mut client,
        received: 0,
        count: args.count,
    };
    let sent = match &args.message {
        Some(message) => session.send(message.as_bytes(), args.binary),
        None => {
            let mut sent = Ok(());
            // Lines of bytes: with --binary they go as they are (less the newline).
            for (n, line) in std::io::stdin().lock().split(b'\n').enumerate() {
                sent = match line {
                    Ok(mut line) => {
                        if !args.binary && line.last() == Some(&b'\r') {
                            line.pop();
                        }
                        session.send(&line, args.binary).map_err(|code| {
                            if code == ExitCode::from(USAGE) {
                                fail(
                                    USAGE,
                                    &format!("line {} is not UTF-8: send it with --binary", n + 1),
                                )
                            } else {
                                code
                            }
                        })
                    }
                    Err(e) => Err(fail(FAILED, &format!("reading standard input: {e}"))),
                };
                if sent.is_err() {
                    break;
                }
            }
            sent
        }
    };
    if let Err(code) = sent.and_then(|()| session.listen(Instant::now() + args.wait)) {
        return code;
    }
    match client.close(CloseCode::NORMAL, "") {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(FAILED, &format!("closing: {e}")),
    }
}

struct Session<'a> {
    client: &'a mut Client,
    received: u64,
    count: Option<u64>,
}

impl Session<'_> {
    /// Sends one message, then prints what has arrived meanwhile. Text that is not UTF-8 is
    /// not sent: `Err(USAGE)`, for the caller to say where it was.
    fn send(&mut self, message: &[u8], binary: bool) -> Result<(), ExitCode> {
        let message = if binary {
            Message::Binary(message)
        } else {
            Message::Text(std::str::from_utf8(message).map_err(|_| ExitCode::from(USAGE))?)
        };
        self.client.send(message).map_err(|e| self.lost(&e))?;
        self.listen(Instant::now() + GLANCE)
    }

    /// Prints messages until `until` (or `count` of them); `Err` with the exit status if
    /// the connection ended.
    fn listen(&mut self, until: Instant) -> Result<(), ExitCode> {
        while self.count.is_none_or(|count| self.received < count) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            self.client
                .set_read_timeout(Some(left))
                .map_err(|e| self.lost(&e))?;
            match self.client.recv() {
                Ok(Incoming::Text(text)) => println!("{text}"),
                Ok(Incoming::Binary(bytes)) => {
                    // One line per message on stdout, whatever its bytes.
                    println!(
                        "{}",
                        base64::engine::general_purpose::STANDARD.encode(bytes)
                    );
                }
                Ok(Incoming::Close(code, reason)) => {
                    let status = if code == CloseCode::NORMAL {
                        0
                    } else {
                        CLOSED_BY_SERVER
                    };
                    let message = format!("the server closed the connection: {} {reason}", code.0);
                    return Err(fail(status, message.trim_end()));
                }
                Ok(_) => continue,
                Err(e) if e.is_timeout() => return Ok(()),
                Err(e) => return Err(self.lost(&e)),
            }
            self.received += 1;
        }
        Ok(())
    }

    fn lost(&self, error: &ClientError) -> ExitCode {
        fail(FAILED, &error.to_string())
    }
}

fn fail(status: u8, message: &str) -> ExitCode {
    if status != 0 {
        eprintln!("wsloop send: {message}");
    }
    ExitCode::from(status)
}

//! `wsloop sub URL CHANNEL...`: subscribe to /pubsub channels and print each publication as
//! one JSON line, in order and once, with what was missed first when `--since` gives the
//! last position seen (a script that prints the last line's `offset` and `epoch` can come
//! back from there). Status goes to stderr.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use wsloop::client::{Client, ClientError, Incoming};
use wsloop::{CloseCode, Message};

use super::console::connect;

/// `wsloop sub`'s arguments.
#[derive(Debug, Args)]
pub struct SubArgs {
    /// The server's /pubsub endpoint, such as ws://127.0.0.1:9001/pubsub (add ?token=... with
    /// auth).
    url: String,
    /// The channels.
    #[arg(required = true)]
    channels: Vec<String>,
    /// Start after this position: OFFSET:EPOCH for the only channel, or CHANNEL=OFFSET:EPOCH
    /// (repeatable); the publications that followed it print first.
    #[arg(long, value_name = "POSITION", value_parser = parse_since)]
    since: Vec<Since>,
    /// Exit (closing with 1000) after printing this many publications.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// For wss://: also trust the CA certificate(s) in this PEM file.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// For wss://: do not verify the server's certificate at all (testing only).
    #[arg(long)]
    insecure: bool,
}

/// A `--since` position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    channel: Option<String>,
    offset: u64,
    epoch: String,
}

fn parse_since(text: &str) -> Result<Since, String> {
    let (channel, position) = match text.rsplit_once('=') {
        Some((channel, position)) => (Some(channel.to_string()), position),
        None => (None, text),
    };
    let (offset, epoch) = (position.split_once(':'))
        .ok_or("expected OFFSET:EPOCH or CHANNEL=OFFSET:EPOCH (as a publication shows them)")?;
    let offset = offset
        .parse()
        .map_err(|_| format!("{offset:?} is not an offset (a whole number)"))?;
    Ok(Since {
        channel,
        offset,
        epoch: epoch.to_string(),
    })
}

/// Exit statuses: 0 --count reached or interrupted (closed 1000), 1 the connection failed, a
/// subscription was refused or history was lost, 2 bad usage, 3 the server closed the
/// connection.
const FAILED: u8 = 1;
const USAGE: u8 = 2;
const CLOSED_BY_SERVER: u8 = 3;

/// How long a read waits before the interrupt flag is looked at again.
const POLL: Duration = Duration::from_millis(100);

/// How long the server has to confirm the subscriptions (an endpoint that is not /pubsub
/// may never answer).
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// One channel's state.
#[derive(Default)]
struct Channel {
    /// The last position printed (or started from): a publication at or before it is old.
    epoch: String,
    offset: u64,
    /// Reading history pages: live publications wait here until the pages are done.
    paging: bool,
    held: Vec<String>,
}

/// Runs `wsloop sub`.
pub fn run(args: &SubArgs) -> ExitCode {
    let mut channels: HashMap<String, Channel> = HashMap::new();
    for name in &args.channels {
        channels.insert(name.clone(), Channel::default());
    }
    let mut starts: HashMap<String, Since> = HashMap::new();
    for since in &args.since {
        let channel = match (&since.channel, args.channels.as_slice()) {
            (Some(channel), _) if channels.contains_key(channel) => channel.clone(),
            (Some(channel), _) => {
                return fail(
                    USAGE,
                    &format!("--since {channel}=...: {channel} is not one of the channels"),
                )
            }
            (None, [only]) => only.clone(),
            (None, _) => {
                return fail(
                    USAGE,
                    "with several channels, --since takes CHANNEL=OFFSET:EPOCH",
                )
            }
        };
        starts.insert(channel, since.clone());
    }
    let mut client = match connect(&args.url, args.ca.as_deref(), args.insecure) {
        Ok(client) => client,
        Err(e) => return fail(FAILED, &e),
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, interrupted.clone()) {
            return fail(FAILED, &format!("cannot handle signals: {e}"));
        }
    }
    for name in &args.channels {
        let mut subscribe = json!({"type": "subscribe", "channel": name, "id": name});
        if let Some(since) = starts.get(name) {
            subscribe["since"] = json!({"offset": since.offset, "epoch": since.epoch});
            let channel = channels.get_mut(name).expect("listed");
            (channel.epoch, channel.offset) = (since.epoch.clone(), since.offset);
        }
        if let Err(e) = client.send(Message::Text(&subscribe.to_string())) {
            return lost(&e);
        }
    }
    let mut session = Session {
        client,
        pending: args.channels.iter().cloned().collect(),
        answer_by: Instant::now() + ANSWER_WITHIN,
        channels,
        printed: 0,
        count: args.count,
    };
    session.run(&interrupted)
}

struct Session {
    client: Client,
    /// The channels whose subscription is not confirmed yet, and by when it must be.
    pending: HashSet<String>,
    answer_by: Instant,
    channels: HashMap<String, Channel>,
    printed: u64,
    count: Option<u64>,
}

impl Session {
    fn run(&mut self, interrupted: &AtomicBool) -> ExitCode {
        if let Err(e) = self.client.set_read_timeout(Some(POLL)) {
            return lost(&e);
        }
        loop {
            if interrupted.load(Ordering::Relaxed) || self.done() {
                return match self.client.close(CloseCode::NORMAL, "") {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => lost(&e),
                };
            }
            let text = match self.client.recv() {
                Ok(Incoming::Text(text)) => text,
                Ok(Incoming::Close(code, reason)) => {
                    let message = format!("the server closed the connection: {} {reason}", code.0);
                    return fail(CLOSED_BY_SERVER, message.trim_end());
                }
                Ok(_) => continue,
                Err(e) if e.is_timeout() => {
                    if !self.pending.is_empty() && Instant::now() > self.answer_by {
                        let hint = "is the URL a /pubsub endpoint?";
                        let waited = ANSWER_WITHIN.as_secs();
                        return fail(
                            FAILED,
                            &format!("no answer to subscribe within {waited} s: {hint}"),
                        );
                    }
                    continue;
                }
                Err(e) => return lost(&e),
            };
            let known = |message: &Value| {
                let kinds = [
                    "publication",
                    "subscribed",
                    "history",
                    "error",
                    "join",
                    "leave",
                    "presence",
                    "unsubscribed",
                    "published",
                ];
                kinds.contains(&message["type"].as_str().unwrap_or(""))
            };
            let message = match serde_json::from_str::<Value>(&text) {
                Ok(message) if known(&message) => message,
                _ => {
                    let hint = "is the URL a /pubsub endpoint?";
                    let shown = cut(&text);
                    return fail(FAILED, &format!("the server sent {shown:?}: {hint}"));
                }
            };
            if let Err(code) = self.on_message(&text, message) {
                return code;
            }
        }
    }

    fn done(&self) -> bool {
        self.count.is_some_and(|count| self.printed >= count)
    }

    /// A message from the server: `text` as sent, and parsed.
    fn on_message(&mut self, text: &str, message: Value) -> Result<(), ExitCode> {
        let channel = message["channel"].as_str().unwrap_or("").to_string();
        match message["type"].as_str().unwrap_or("") {
            "publication" => {
                let state = self.channels.get_mut(&channel);
                match state {
                    Some(state) if state.paging => state.held.push(text.to_string()),
                    Some(_) => self.print(&channel, text),
                    None => {}
                }
            }
            "subscribed" | "history" => {
                if message["recovered"] == json!(false) {
                    let why = message["reason"].as_str().unwrap_or("lost");
                    eprintln!("wsloop sub: {channel}: what followed --since is not all kept ({why}); from now on");
                }
                // Each publication as the server wrote it (numbers, key order and all).
                #[derive(serde::Deserialize)]
                struct Page {
                    #[serde(default)]
                    publications: Vec<Box<RawValue>>,
                }
                let publications = (serde_json::from_str::<Page>(text))
                    .map(|page| page.publications)
                    .unwrap_or_default();
                for publication in &publications {
                    self.print(&channel, publication.get());
                }
                let Some(state) = self.channels.get_mut(&channel) else {
                    return Ok(());
                };
                if message["type"] == "subscribed"
                    && publications.is_empty()
                    && message["recovered"] != json!(true)
                {
                    // Now is the starting point.
                    state.epoch = message["epoch"].as_str().unwrap_or("").to_string();
                    state.offset = message["offset"].as_u64().unwrap_or(0);
                }
                if message["more"] == json!(true) {
                    state.paging = true;
                    let since = json!({"offset": state.offset, "epoch": state.epoch});
                    let ask = json!({"type": "history", "channel": channel, "since": since, "id": channel});
                    self.client
                        .send(Message::Text(&ask.to_string()))
                        .map_err(|e| lost(&e))?;
                } else if state.paging {
                    state.paging = false;
                    for publication in std::mem::take(&mut state.held) {
                        self.print(&channel, &publication);
                    }
                }
                if message["type"] == "subscribed" {
                    self.pending.remove(&channel);
                    eprintln!("wsloop sub: subscribed to {channel}");
                }
            }
            "error" => {
                let text = message["message"].as_str().unwrap_or("");
                let code = message["code"].as_str().unwrap_or("error");
                let id = message["id"].as_str().unwrap_or("");
                if id.is_empty() {
                    // Not an answer to a subscribe of ours: another kind of endpoint.
                    let hint = "is the URL a /pubsub endpoint?";
                    return Err(fail(FAILED, &format!("{code}: {text} ({hint})")));
                }
                return Err(fail(FAILED, &format!("{id}: {code}: {text}")));
            }
            _ => {}
        }
        Ok(())
    }

    /// Prints a publication of `channel` (its JSON text) unless it is at or before the last
    /// one printed.
    fn print(&mut self, channel: &str, publication: &str) {
        if self.done() {
            return;
        }
        let Some(state) = self.channels.get_mut(channel) else {
            return;
        };
        #[derive(serde::Deserialize)]
        struct Position {
            epoch: Option<String>,
            offset: Option<u64>,
        }
        let position = serde_json::from_str::<Position>(publication).ok();
        let (epoch, offset) = position.map_or((None, None), |p| (p.epoch, p.offset));
        if let (Some(epoch), Some(offset)) = (epoch, offset) {
            if epoch == state.epoch && offset <= state.offset {
                return; // seen
            }
            (state.epoch, state.offset) = (epoch, offset);
        }
        // One line whatever the publisher sent: JSON strings hold no raw line breaks, so
        // those are whitespace between tokens, and go.
        println!("{}", publication.replace(['\n', '\r'], ""));
        self.printed += 1;
    }
}

fn cut(text: &str) -> String {
    text.chars().take(60).collect()
}

fn lost(error: &ClientError) -> ExitCode {
    fail(FAILED, &error.to_string())
}

fn fail(status: u8, message: &str) -> ExitCode {
    eprintln!("wsloop sub: {message}");
    ExitCode::from(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_since_position_is_offset_colon_epoch_with_an_optional_channel() {
        let since = |channel: Option<&str>, offset, epoch: &str| Since {
            channel: channel.map(str::to_string),
            offset,
            epoch: epoch.to_string(),
        };
        assert_eq!(parse_since("41:8f3a"), Ok(since(None, 41, "8f3a")));
        assert_eq!(
            parse_since("news=41:8f3a"),
            Ok(since(Some("news"), 41, "8f3a"))
        );
        assert_eq!(parse_since("0:"), Ok(since(None, 0, "")));
        assert!(parse_since("41").is_err());
        assert!(parse_since("x:8f3a").is_err());
    }
}

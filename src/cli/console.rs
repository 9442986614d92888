//! `wsloop client URL`: a console client on the library's client core.
//!
//! Typed lines go out as text and messages print as they arrive. On a `/chat` URL with
//! `--name` it speaks the chat protocol: plain lines are room messages, and `/pm NAME TEXT`,
//! `/room NAME`, `/users`, `/quit` and `/help` are commands. Ctrl+D, Ctrl+C and `/quit` send a
//! close frame and wait for the server's.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};
use wsloop::client::{Client, ClientError, Incoming, WsUrl};
use wsloop::{CloseCode, Message};

use super::chat_view::describe_event;

/// The client's flags.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The server, such as ws://127.0.0.1:9001/echo or ws://127.0.0.1:9001/chat.
    url: String,
    /// Chat name (joins the chat on a /chat URL).
    #[arg(long)]
    name: Option<String>,
    /// Chat room to join.
    #[arg(long, default_value = "lobby")]
    room: String,
    /// Offer permessage-deflate (compressed messages, if the server agrees).
    #[arg(long)]
    compression: bool,
    /// For wss://: also trust the CA certificate(s) in this PEM file.
    #[arg(long, value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// For wss://: do not verify the server's certificate at all (testing only).
    #[arg(long)]
    insecure: bool,
}

/// How long one wait for the server lasts before input is checked again.
const POLL: Duration = Duration::from_millis(20);

const CHAT_HELP: &str = "commands: /pm NAME TEXT, /room NAME, /users, /name NAME, /quit \
    (anything else is a room message)";

/// What the user did.
enum Input {
    Line(String),
    End,
}

/// Client options for `--ca` and `--insecure` (a warning line for the latter).
pub fn tls_options(
    ca: Option<&std::path::Path>,
    insecure: bool,
) -> Result<wsloop::client::ClientOptions<'static>, String> {
    if ca.is_none() && !insecure {
        return Ok(Default::default());
    }
    if insecure {
        eprintln!("warning: --insecure: the server's certificate is not verified");
    }
    let tls = wsloop::tls::client_config(ca, insecure).map_err(|e| e.to_string())?;
    Ok(wsloop::client::ClientOptions::default().tls(tls))
}

/// Connects to `url` for a script (`send`, `sub`): `--ca`/`--insecure` as given; on failure
/// one line that says why (and, for a certificate, how to trust it).
pub(super) fn connect(
    url: &str,
    ca: Option<&std::path::Path>,
    insecure: bool,
) -> Result<Client, String> {
    let options = tls_options(ca, insecure)?;
    Client::connect_with(url, &options).map_err(|e| format!("{}: {e}{}", shown(url), hint(&e)))
}

/// Runs the console client; the exit status says whether it ended cleanly.
pub fn run(args: &ClientArgs) -> ExitCode {
    let chat = match WsUrl::parse(&args.url) {
        Ok(url) => url.path() == "/chat",
        Err(e) => return fail(&format!("bad URL {}: {e}", shown(&args.url))),
    };
    if chat && args.name.is_none() {
        return fail("a /chat URL needs --name NAME");
    }
    if !chat && args.name.is_some() {
        eprintln!("warning: --name and --room are for /chat URLs; ignored");
    }
    let options = match tls_options(args.ca.as_deref(), args.insecure) {
        Ok(options) => options.compression(args.compression),
        Err(e) => return fail(&e),
    };
    let mut client = match Client::connect_with(&args.url, &options) {
        Ok(client) => client,
        Err(e) => return fail(&format!("{}: {e}{}", shown(&args.url), hint(&e))),
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, interrupted.clone()) {
            return fail(&format!("cannot handle signals: {e}"));
        }
    }
    let input = spawn_stdin_reader();
    if let Err(e) = client.set_read_timeout(Some(POLL)) {
        return fail(&e.to_string());
    }
    // Status goes to stderr, so stdout carries only what the server sent.
    eprintln!(
        "connected to {} (Ctrl+D or Ctrl+C to quit)",
        shown(&args.url)
    );
    if args.compression {
        eprintln!("{}", compression_status(client.compression()));
    }
    let mut session = Session {
        client: &mut client,
        chat,
        room: args.room.clone(),
        name: NameState::Joining,
    };
    if let (true, Some(name)) = (chat, &args.name) {
        eprintln!("{CHAT_HELP}");
        if let Flow::Ended(code) = session.join(name) {
            return code;
        }
    }
    session.run(&input, &interrupted)
}

/// Whether the permessage-deflate offered was agreed, and how, in one line.
fn compression_status(agreed: Option<&wsloop::client::DeflateParams>) -> String {
    let Some(params) = agreed else {
        return "compression: the server declined permessage-deflate; messages go uncompressed"
            .into();
    };
    let header = params.header();
    let details: Vec<&str> = header.split(';').skip(1).map(str::trim).collect();
    match details.is_empty() {
        true => "compression: permessage-deflate agreed (no parameters)".into(),
        false => format!(
            "compression: permessage-deflate agreed ({})",
            details.join(", ")
        ),
    }
}

/// What the user can do about a failed connect, when a flag helps.
pub(super) fn hint(error: &ClientError) -> &'static str {
    match error {
        ClientError::Certificate(_) => {
            "; --ca FILE trusts the CA that signed it (--insecure skips the check, for testing only)"
        }
        ClientError::TlsSetup(_) => {
            "; --ca FILE trusts the server's CA (--insecure skips the check, for testing only)"
        }
        _ => "",
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("wsloop client: {message}");
    ExitCode::FAILURE
}

/// Reads stdin lines on a thread of their own, so the socket is served while the user types.
fn spawn_stdin_reader() -> mpsc::Receiver<Input> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(Input::Line(line)).is_err() {
                break;
            }
        }
        let _ = tx.send(Input::End);
    });
    rx
}

struct Session<'a> {
    client: &'a mut Client,
    chat: bool,
    /// The room to join.
    room: String,
    /// Where our name is: until the chat took it, `/name NEW` tries another.
    name: NameState,
}

/// Where the chat is with our name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameState {
    /// A join is on its way (or none was sent yet: not a chat URL).
    Joining,
    /// The chat took it.
    Joined,
    /// The chat refused it (or the room): until `/name NAME`, lines have nowhere to go.
    Refused,
}

/// What a line typed before the chat took our name gets.
const CHOOSE_A_NAME: &str = "not in the chat yet: choose a name with /name NAME (or /quit)";

/// Whether the session goes on after a step.
enum Flow {
    Continue,
    Quit,
    Ended(ExitCode),
}

impl Session<'_> {
    fn run(mut self, input: &mpsc::Receiver<Input>, interrupted: &AtomicBool) -> ExitCode {
        loop {
            if interrupted.load(Ordering::Relaxed) {
                return self.quit(interrupted);
            }
            loop {
                let flow = match input.try_recv() {
                    Ok(Input::Line(line)) => self.on_line(&line),
                    Ok(Input::End) | Err(mpsc::TryRecvError::Disconnected) => Flow::Quit,
                    Err(mpsc::TryRecvError::Empty) => break,
                };
                match flow {
                    Flow::Continue => {}
                    Flow::Quit => return self.quit(interrupted),
                    Flow::Ended(code) => return code,
                }
            }
            match self.client.recv() {
                Ok(incoming) => match self.show(incoming) {
                    Flow::Continue => {}
                    Flow::Quit => return self.quit(interrupted),
                    Flow::Ended(code) => return code,
                },
                Err(e) if e.is_timeout() => {}
                Err(ClientError::Closed) => return ExitCode::SUCCESS,
                Err(e) => return fail(&e.to_string()),
            }
        }
    }

    /// Sends a close, shows what the server still sends before its own close, then waits for
    /// the server to end the connection (bounded by the client's 5 s close wait).
    /// A second Ctrl+C while waiting ends the client at once.
    fn quit(mut self, interrupted: &AtomicBool) -> ExitCode {
        if interrupted.swap(false, Ordering::Relaxed) {
            eprintln!(); // past the ^C the terminal echoed
        }
        if let Err(e) = self.client.start_close(CloseCode::NORMAL, "bye") {
            return fail(&e.to_string());
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if interrupted.load(Ordering::Relaxed) {
                return fail("interrupted while closing");
            }
            match self.client.recv() {
                Ok(Incoming::Close(..)) => break,
                Ok(incoming) => {
                    self.show(incoming);
                }
                Err(e) if e.is_timeout() => {}
                Err(_) => break,
            }
        }
        match self.client.close(CloseCode::NORMAL, "bye") {
            Ok(()) => {
                eprintln!("closed");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e.to_string()),
        }
    }

    fn send(&mut self, text: &str) -> Flow {
        match self.client.send(Message::Text(text)) {
            Ok(()) => Flow::Continue,
            Err(e) => Flow::Ended(fail(&e.to_string())),
        }
    }

    fn on_line(&mut self, line: &str) -> Flow {
        if line.trim() == "/quit" {
            return Flow::Quit;
        }
        if !self.chat {
            return self.send(line);
        }
        let request = match chat_request(line) {
            Ok(Some(Typed::Request(_))) if self.name == NameState::Refused => {
                eprintln!("{CHOOSE_A_NAME}");
                return Flow::Continue;
            }
            Ok(Some(Typed::Request(request))) => request,
            Ok(Some(Typed::Name(_))) if self.name == NameState::Joined => {
                eprintln!("already joined: a name is chosen once per connection");
                return Flow::Continue;
            }
            Ok(Some(Typed::Name(_))) if self.name == NameState::Joining => {
                eprintln!("a join is on its way: wait for its answer");
                return Flow::Continue;
            }
            Ok(Some(Typed::Name(name))) => return self.join(&name),
            Ok(None) => return Flow::Continue,
            Err(help) => {
                eprintln!("{help}");
                return Flow::Continue;
            }
        };
        self.send(&request.to_string())
    }

    /// Asks to join the chat as `name`.
    fn join(&mut self, name: &str) -> Flow {
        self.name = NameState::Joining;
        let join = json!({"type": "join", "name": name, "room": self.room});
        self.send(&join.to_string())
    }

    /// Prints what arrived. Stdout gone (`wsloop client URL | head -1`) ends the session
    /// with a close, as the end of the input does: there is no one left to show anything to.
    fn show(&mut self, incoming: Incoming) -> Flow {
        let line = match incoming {
            Incoming::Text(text) if self.chat => match serde_json::from_str::<Value>(&text) {
                // The chat's words are for a program ("send join first"); a person types /name.
                Ok(event) if event["code"] == "not_joined" => {
                    eprintln!("{CHOOSE_A_NAME}");
                    return Flow::Continue;
                }
                Ok(event) => {
                    self.after_event(&event);
                    let lines = describe_event(&event);
                    if lines.is_empty() {
                        return Flow::Continue; // an empty history
                    }
                    lines
                }
                Err(_) => text,
            },
            // Marked, so a reply is not mistaken for the line just typed.
            Incoming::Text(text) => format!("< {text}"),
            Incoming::Binary(bytes) => format!("< <binary message, {} bytes>", bytes.len()),
            Incoming::Close(code, reason) => {
                eprintln!("closed by the server: {code} {reason}");
                return Flow::Ended(ExitCode::SUCCESS);
            }
            // Pings and pongs are not asked for (ClientOptions::report_pings).
            _ => return Flow::Continue,
        };
        let mut stdout = std::io::stdout().lock();
        match writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Quit,
        }
    }
}

impl Session<'_> {
    /// Keeps track of whether the chat took our name, and says how to try another.
    fn after_event(&mut self, event: &Value) {
        match event["type"].as_str() {
            Some("joined") if self.name != NameState::Joined => self.name = NameState::Joined,
            Some("error") if self.name == NameState::Joining => match event["code"].as_str() {
                Some("name_taken" | "bad_name") => {
                    self.name = NameState::Refused;
                    eprintln!("pick another name with /name NAME (or /quit)");
                }
                Some("bad_room") => {
                    self.name = NameState::Refused;
                    eprintln!("pick another room with --room (/quit, then start again)");
                }
                _ => {}
            },
            _ => {}
        }
    }
}

/// What a typed chat line asks for.
#[derive(Debug, PartialEq)]
enum Typed {
    /// A request to send as it is.
    Request(Value),
    /// Join under this name (after the first one was refused).
    Name(String),
}

/// Turns a typed chat line into a request; `Ok(None)` for an empty line, `Err` with help for a
/// command that is not understood.
fn chat_request(line: &str) -> Result<Option<Typed>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Some(Typed::Request(
            json!({"type": "message", "text": line}),
        )));
    };
    let (verb, rest) = command.split_once(' ').unwrap_or((command, ""));
    let rest = rest.trim();
    let request = match verb {
        "pm" => match rest.split_once(' ') {
            Some((to, text)) => json!({"type": "pm", "to": to, "text": text.trim()}),
            None => return Err("usage: /pm NAME TEXT".into()),
        },
        "room" if !rest.is_empty() => json!({"type": "room", "room": rest}),
        "room" => return Err("usage: /room NAME".into()),
        "users" => json!({"type": "list"}),
        "name" if !rest.is_empty() => return Ok(Some(Typed::Name(rest.to_string()))),
        "name" => return Err("usage: /name NAME".into()),
        _ => return Err(format!("unknown command /{verb}; {CHAT_HELP}")),
    };
    Ok(Some(Typed::Request(request)))
}

/// The URL as the console shows it: without its query, where a token would be (the terminal,
/// and whatever records it, never sees one).
pub(super) fn shown(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?…"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_lines_become_requests() {
        let request = |value| Some(Typed::Request(value));
        assert_eq!(
            chat_request("hi all").unwrap(),
            request(json!({"type": "message", "text": "hi all"}))
        );
        assert_eq!(
            chat_request("/pm bob see you later").unwrap(),
            request(json!({"type": "pm", "to": "bob", "text": "see you later"}))
        );
        assert_eq!(
            chat_request("/room rust").unwrap(),
            request(json!({"type": "room", "room": "rust"}))
        );
        assert_eq!(
            chat_request("/users").unwrap(),
            request(json!({"type": "list"}))
        );
        assert_eq!(
            chat_request("/name carol").unwrap(),
            Some(Typed::Name("carol".into()))
        );
        assert_eq!(chat_request("  ").unwrap(), None);
        assert!(chat_request("/pm bob").is_err());
        assert!(chat_request("/dance")
            .unwrap_err()
            .starts_with("unknown command /dance"));
    }
}

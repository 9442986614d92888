//! `wsloop publish`: publish to a channel through a server's HTTP API (`--api-key-file`), from
//! a shell script: one message from the command line, or one per line of standard input over
//! one kept-alive connection. Each answer prints as one JSON line on stdout; errors go to
//! stderr, and the exit status says how it went (0 all published, 1 a request refused or the
//! server unreachable, 2 bad usage).

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use rustls::pki_types::ServerName;
use serde_json::Value;

/// `wsloop publish`'s arguments.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The server's address: http://HOST:PORT or https://HOST:PORT.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:9001")]
    api: String,
    /// The file holding the API key the server was started with (--api-key-file).
    #[arg(long, value_name = "FILE")]
    key_file: PathBuf,
    /// Send DATA as a JSON string instead of reading it as JSON.
    #[arg(long)]
    text: bool,
    /// How long to wait for each answer; a request with none in time is not sent again
    /// (the server may have published it) and the command exits 1.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = super::units::parse_duration)]
    timeout: Duration,
    /// Trust this CA certificate (PEM) for https, besides the system's.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// The channel.
    channel: String,
    /// The message: a JSON value (`'{"state":"done"}'`, `'"a string"'`, `42`), or `-` to
    /// publish each line of standard input as one message.
    #[arg(allow_hyphen_values = true)]
    data: String,
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// One kept-alive connection to the API.
struct Api {
    reader: BufReader<Box<dyn Stream>>,
    host: String,
    key: String,
    /// Where it connected, to connect again.
    url: String,
    ca: Option<PathBuf>,
    /// Whether it speaks TLS.
    tls: bool,
    /// How long an answer may take.
    timeout: Duration,
}

/// Runs `wsloop publish`.
pub fn run(args: &PublishArgs) -> ExitCode {
    let key = match wsloop::apps::read_key_file(&args.key_file) {
        Ok(key) => key,
        Err(e) => return fail(2, &format!("--key-file {e}")),
    };
    let mut api = match Api::connect(&args.api, key, args.ca.as_deref(), args.timeout) {
        Ok(api) => api,
        Err(e) => return fail(1, &e),
    };
    if args.data != "-" {
        return match publish(&mut api, args, &args.data) {
            Ok(()) => ExitCode::SUCCESS,
            Err((status, e)) => fail(status, &e),
        };
    }
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(e) => return fail(1, &format!("reading standard input: {e}")),
        };
        if line.trim().is_empty() {
            continue;
        }
        if let Err((status, e)) = publish(&mut api, args, &line) {
            return fail(status, &format!("line {}: {e}", n + 1));
        }
    }
    ExitCode::SUCCESS
}

fn fail(status: u8, message: &str) -> ExitCode {
    eprintln!("wsloop publish: {message}");
    ExitCode::from(status)
}

/// Publishes one message and prints the answer.
fn publish(api: &mut Api, args: &PublishArgs, data: &str) -> Result<(), (u8, String)> {
    let data = if args.text {
        Value::String(data.to_string())
    } else {
        serde_json::from_str::<Value>(data).map_err(|e| {
            let hint = "quote a string ('\"hello\"') or use --text";
            (2, format!("the message is not JSON ({e}); {hint}"))
        })?
    };
    let body = serde_json::json!({"channel": args.channel, "data": data}).to_string();
    let (status, reply) = api.post("/api/publish", &body).map_err(|e| (1, e))?;
    if status != 200 {
        let answer = serde_json::from_str::<Value>(&reply).ok();
        let why = (answer.as_ref())
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(reply);
        let mut message = format!("{status}: {}", why.trim());
        // Not the API answering (a JSON error is): a server without --api-key-file.
        if answer.is_none() && matches!(status, 404 | 405) {
            message += " (is the server started with --api-key-file, and is --api its address?)";
        }
        return Err((1, message));
    }
    println!("{reply}");
    Ok(())
}

impl Api {
    fn connect(
        url: &str,
        key: String,
        ca: Option<&std::path::Path>,
        timeout: Duration,
    ) -> Result<Api, String> {
        let (tls, rest) = match url.split_once("://") {
            Some(("http", rest)) => (false, rest),
            Some(("https", rest)) => (true, rest),
            _ => {
                return Err(format!(
                    "--api {url}: expected http://HOST:PORT or https://HOST:PORT"
                ))
            }
        };
        let authority = rest.split('/').next().unwrap_or("");
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host);
        let address = if authority.contains(':') {
            authority.to_string()
        } else {
            format!("{authority}:{}", if tls { 443 } else { 80 })
        };
        let tcp =
            TcpStream::connect(&address).map_err(|e| format!("cannot reach {address}: {e}"))?;
        tcp.set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let stream: Box<dyn Stream> = if tls {
            let config = wsloop::tls::client_config(ca, false).map_err(|e| e.to_string())?;
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|e| format!("--api {url}: {e}"))?;
            let conn = rustls::ClientConnection::new(Arc::clone(&config), name)
                .map_err(|e| e.to_string())?;
            Box::new(rustls::StreamOwned::new(conn, tcp))
        } else {
            Box::new(tcp)
        };
        Ok(Api {
            reader: BufReader::new(stream),
            host: authority.to_string(),
            key,
            url: url.to_string(),
            ca: ca.map(PathBuf::from),
            tls,
            timeout,
        })
    }

    /// POSTs `body` (JSON) to `path`; the status and the body of the answer. A kept-alive
    /// connection the server closed meanwhile (it closes idle ones) is opened again, once:
    /// the server read nothing of a request on a connection it had closed. A request that
    /// had no answer in time is not sent again: the server may have published it.
    fn post(&mut self, path: &str, body: &str) -> Result<(u16, String), String> {
        match self.exchange(path, body) {
            Err(Exchange::Closed(_)) => {
                let key = std::mem::take(&mut self.key);
                *self = Api::connect(&self.url, key, self.ca.as_deref(), self.timeout)?;
                self.exchange(path, body).map_err(Exchange::into_message)
            }
            done => done.map_err(Exchange::into_message),
        }
    }

    fn exchange(&mut self, path: &str, body: &str) -> Result<(u16, String), Exchange> {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: apikey {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            self.key,
            body.len()
        );
        let lost = |e: std::io::Error| match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => Exchange::Failed(format!(
                "no answer within {:?} (it may have been published; not sent again)",
                self.timeout
            )),
            _ if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => Exchange::Failed(
                format!("TLS: {e} (--ca names the CA of a private certificate)"),
            ),
            _ => Exchange::Failed(format!("the server went away: {e}")),
        };
        // Closed before it answered: the connection was closed while idle, or refused the
        // request unread; anything else (a timeout, TLS) is what `lost` says.
        let closed = |e: std::io::Error| match e.kind() {
            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::UnexpectedEof => {
                Exchange::Closed(format!("the server went away: {e}"))
            }
            _ => lost(e),
        };
        let stream = self.reader.get_mut();
        stream.write_all(request.as_bytes()).map_err(closed)?;
        stream.flush().map_err(closed)?;
        let mut line = String::new();
        if self.reader.read_line(&mut line).map_err(closed)? == 0 {
            return Err(Exchange::Closed("the server closed the connection".into()));
        }
        let status = (line.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                let hint = if self.tls {
                    ""
                } else {
                    " (a TLS port? use https://)"
                };
                let shown: String = line.trim().chars().take(40).collect();
                Exchange::Failed(format!("not an HTTP answer: {shown:?}{hint}"))
            })?;
        let mut length = 0;
        loop {
            let mut header = String::new();
            self.reader.read_line(&mut header).map_err(lost)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = (value.trim().parse())
                        .map_err(|_| Exchange::Failed("a bad Content-Length".into()))?;
                }
            }
        }
        let mut reply = vec![0; length];
        self.reader.read_exact(&mut reply).map_err(lost)?;
        Ok((status, String::from_utf8_lossy(&reply).into_owned()))
    }
}

/// Why an exchange failed.
enum Exchange {
    /// Before any answer began: the connection was closed (the server closes idle ones).
    Closed(String),
    /// Anything else.
    Failed(String),
}

impl Exchange {
    fn into_message(self) -> String {
        match self {
            Exchange::Closed(why) | Exchange::Failed(why) => why,
        }
    }
}

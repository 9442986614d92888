//! `wsloop` (no subcommand): the server, with echo, broadcast, chat and the browser client.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use clap::Args;
use log::LevelFilter;
use wsloop::apps::{Api, Broadcast, Chat, Echo, PubSub};
use wsloop::protocol::deflate::CompressionMode;
use wsloop::{ClusterUrl, Config, HistoryOptions, Server};

use super::access_args::AccessArgs;
use super::units;

/// The server's flags.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Read settings from this TOML file (every flag is a key: see `wsloop config default`);
    /// WSLOOP_* variables override it and flags override both (WSLOOP_CONFIG names the file
    /// too). SIGHUP reads it again.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, HOST:PORT (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9001", value_parser = units::parse_bind)]
    bind: String,
    /// How much to log (to stderr).
    #[arg(long, value_name = "LEVEL", default_value = "info", value_parser = log_level())]
    log_level: LevelFilter,
    /// Log lines as text, or as JSON objects (ts, level, msg, and peer, path, id, status,
    /// code, reason where they apply) for log pipelines.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,
    /// Serve Prometheus metrics (text format 0.0.4) at GET /metrics on the same port, and the
    /// page's Server view; without it /metrics is 404.
    #[arg(long)]
    metrics: bool,
    /// Largest message after reassembly; larger ones are closed with 1009.
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = units::parse_size)]
    max_message_size: usize,
    /// Largest single frame payload; larger ones are closed with 1009 (never more than
    /// --max-message-size).
    #[arg(long, value_name = "SIZE", default_value = "16MiB", value_parser = units::parse_size)]
    max_frame_size: usize,
    /// Largest HTTP request head; larger ones get 431.
    #[arg(long, value_name = "SIZE", default_value = "8KiB", value_parser = units::parse_size)]
    max_header_size: usize,
    /// Most bytes a client may leave unread of what others send it (broadcasts, chat); past
    /// it the client is closed with 1008.
    #[arg(long, value_name = "SIZE", default_value = "4MiB", value_parser = units::parse_size)]
    max_buffered: usize,
    /// The kernel's send buffer for each connection (SO_SNDBUF; Linux caps it at
    /// net.core.wmem_max, then doubles it). Smaller: a client that stopped reading reaches
    /// --max-buffered, and is closed, sooner; so does one a burst outruns [default: the
    /// kernel's own sizing].
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size)]
    send_buffer: Option<usize>,
    /// Most connections at once; more are refused with 503.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    max_connections: usize,
    /// Time a client has to send its whole upgrade request.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = units::parse_duration)]
    handshake_timeout: Duration,
    /// Ping a connection that sent nothing for this long.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = units::parse_duration)]
    ping_interval: Duration,
    /// Close (1001) a connection that sent nothing for this long.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = units::parse_duration)]
    idle_timeout: Duration,
    /// Only pages from this origin may open WebSockets, e.g. https://example.com (repeatable,
    /// exact match); others get 403. Requests without Origin (not browsers) are let through.
    #[arg(long, value_name = "ORIGIN")]
    allow_origin: Vec<String>,
    /// permessage-deflate (RFC 7692): off; shared (no context takeover, one compressor per
    /// loop, a broadcast compressed once); or dedicated (context takeover, per connection).
    #[arg(long, value_enum, default_value = "off")]
    compression: Compression,
    /// With --compression dedicated: the largest window, 9 to 15 bits (memory per connection).
    #[arg(long, value_name = "BITS", default_value_t = 15, value_parser = clap::value_parser!(u8).range(9..=15))]
    compression_window_bits: u8,
    /// Messages shorter than this are sent uncompressed.
    #[arg(long, value_name = "SIZE", default_value = "64B", value_parser = units::parse_size)]
    compression_threshold: usize,
    /// Serve wss:// and https:// with this PEM certificate (chain) instead of plain ws://;
    /// SIGHUP reloads it and the key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Event loops, each on its own thread with its own listening socket on --bind (the kernel
    /// spreads connections); broadcast and chat span them all. One is the fastest per core.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Join other instances through Redis pub/sub (redis://HOST:PORT[/DB]): broadcast, topics
    /// and chat (names, pm, list) reach their clients too; local delivery goes on while Redis
    /// is down.
    #[arg(long, value_name = "URL", value_parser = ClusterUrl::parse)]
    cluster: Option<ClusterUrl>,
    /// With --cluster: how long a vanished instance's chat names stay taken (it renews them
    /// every third of this while it runs).
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = units::parse_duration, requires = "cluster")]
    cluster_ttl: Duration,
    /// Messages each channel (a /pubsub channel, a chat room) keeps for clients that come back
    /// (recovery with `since`) and for `history`.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    history_size: u64,
    /// How long a kept message stays.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = units::parse_duration)]
    history_ttl: Duration,
    /// Memory all channels' kept messages may take together; past it the oldest go first.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = units::parse_size)]
    history_memory: usize,
    /// Where kept messages live: memory (lost when the server stops), or sqlite:PATH, an
    /// SQLite file (created if new) written behind memory by a thread of its own and loaded
    /// at start, so clients recover across a restart with the same positions. The file is
    /// this server's alone while it runs; a clean stop writes what is queued first. With
    /// --cluster, history lives in Redis Streams (shared by every instance) and this stays
    /// memory.
    #[arg(long, value_name = "STORE", default_value = "memory", value_parser = parse_store)]
    history_store: HistoryStore,
    /// How many of a chat room's last events a joiner gets.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u64).range(0..=1000))]
    chat_history: u64,
    /// Time a closing handshake may take before the TCP connection is dropped.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = units::parse_duration)]
    close_timeout: Duration,
    /// On SIGTERM, close open connections with 1012 (service restart) spread evenly over this
    /// window (0: all at once), with /readyz answering 503 meanwhile; SIGINT closes at once (1001).
    ///
    /// Spread out, their clients do not all reconnect in the same instant. The listener stays
    /// open for the window, so load balancers see /readyz fail (new WebSocket upgrades get 503
    /// too); then the closing handshakes get --close-timeout, and the server exits 0.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = units::parse_duration)]
    drain_window: Duration,
    #[command(flatten)]
    access: AccessArgs,
    /// Serve the HTTP API for backends on /api/ (publish, broadcast, history, presence,
    /// presence_stats, disconnect, info; see README), for clients sending `Authorization:
    /// apikey KEY` with the key in FILE (at least 16 printable ASCII bytes without spaces, such
    /// as base64; whitespace around it is not part of it).
    #[arg(long, value_name = "FILE", help_heading = "HTTP API")]
    api_key_file: Option<PathBuf>,
    /// Serve the HTTP API on this address instead of --bind's (a private interface, say):
    /// there only the API is served, and --bind's address no longer serves it.
    #[arg(
        long,
        value_name = "ADDR",
        help_heading = "HTTP API",
        requires = "api_key_file"
    )]
    api_bind: Option<String>,
    /// The largest body of an API request; larger ones get 413 [default: 1MiB].
    #[arg(long, value_name = "SIZE", value_parser = units::parse_size, help_heading = "HTTP API", requires = "api_key_file")]
    api_max_body: Option<usize>,
}

/// `--history-store`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HistoryStore {
    Memory,
    Sqlite(PathBuf),
}

fn parse_store(value: &str) -> Result<HistoryStore, String> {
    match value.split_once(':') {
        _ if value == "memory" => Ok(HistoryStore::Memory),
        Some(("sqlite", path)) if !path.is_empty() => Ok(HistoryStore::Sqlite(path.into())),
        _ => Err("expected memory or sqlite:PATH".into()),
    }
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `--compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Compression {
    Off,
    Shared,
    Dedicated,
}

/// The log levels, listed by `--help` and by the error for any other word.
fn log_level() -> impl clap::builder::TypedValueParser<Value = LevelFilter> {
    let levels = ["off", "error", "warn", "info", "debug", "trace"];
    clap::builder::PossibleValuesParser::new(levels)
        .map(|level| level.parse().expect("one of the listed levels"))
}

impl ServeArgs {
    /// Whether the server would start with these settings: everything `run` checks before it
    /// binds (token keys, the API key, TLS files, the limits), with the reason if not.
    pub fn check(&self) -> Result<(), String> {
        if let Some(auth) = self.access.auth()? {
            auth.load().map_err(|e| e.to_string())?;
        }
        if let Some(path) = &self.api_key_file {
            Api::from_key_file(path).map_err(|e| format!("--api-key-file {e}"))?;
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            wsloop::tls::server_config(cert, key)
                .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?;
        }
        self.config().validate().map_err(|e| e.to_string())
    }

    /// What keeps history: /pubsub channels (topics not starting with `/`) and chat rooms
    /// (`/chat:ROOM`); not `/broadcast`, nor private messages (`/chat@NAME`).
    fn history(&self) -> HistoryOptions {
        let options = HistoryOptions::default()
            .size(self.history_size as usize)
            .ttl(self.history_ttl)
            .memory(self.history_memory)
            .topics(|topic| !topic.starts_with('/') || topic.starts_with("/chat:"));
        match &self.history_store {
            HistoryStore::Memory => options,
            HistoryStore::Sqlite(path) => options.sqlite(path),
        }
    }

    pub fn config(&self) -> Config {
        let config = Config::default()
            .max_message_size(self.max_message_size)
            .max_frame_size(self.max_frame_size)
            .max_header_size(self.max_header_size)
            .max_connections(self.max_connections)
            .max_buffered(self.max_buffered)
            .send_buffer(self.send_buffer)
            .handshake_timeout(self.handshake_timeout)
            .ping_interval(self.ping_interval)
            .idle_timeout(self.idle_timeout)
            .close_timeout(self.close_timeout)
            .drain_window(self.drain_window)
            .compression(match self.compression {
                Compression::Off => CompressionMode::Off,
                Compression::Shared => CompressionMode::Shared,
                Compression::Dedicated => CompressionMode::Dedicated {
                    window_bits: self.compression_window_bits,
                },
            })
            .compression_threshold(self.compression_threshold)
            .allowed_origins(self.allow_origin.clone())
            .metrics(self.metrics)
            .max_http_body(self.api_max_body.unwrap_or(1 << 20));
        self.access.limits(config)
    }
}

/// How much of rustls' own log to let through at `level`. Its warnings are about what a
/// client sent (an IP address as SNI, say), so any client could fill the log with them;
/// wsloop logs each TLS failure itself, once. Below debug, only rustls' errors pass.
pub(super) fn rustls_log_level(level: LevelFilter) -> LevelFilter {
    if level >= LevelFilter::Debug {
        level
    } else {
        level.min(LevelFilter::Error)
    }
}

/// Runs the server until SIGINT, or SIGTERM and a drain; with `reloader`, SIGHUP reads the
/// configuration file again.
pub fn run(cli: &ServeArgs, reloader: Option<super::reload::Reloader>) -> ExitCode {
    let logged = match cli.log_format {
        LogFormat::Text => simple_logger::SimpleLogger::new()
            .with_level(cli.log_level)
            .with_module_level("rustls", rustls_log_level(cli.log_level))
            .with_utc_timestamps()
            .init(),
        LogFormat::Json => super::json_log::JsonLogger::init(cli.log_level),
    };
    if let Err(e) = logged {
        eprintln!("wsloop: cannot start logging: {e}");
    }
    let mut config = cli.config();
    if let Some(room) = super::open_files::raise_for_server(config.max_connections) {
        config = config.max_connections(room);
    }
    let chat_history = cli.chat_history as usize;
    let mut builder = Server::builder();
    if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        builder = builder.tls_files(cert, key);
    }
    if let Some(redis) = &cli.cluster {
        builder = builder.cluster(redis.clone()).cluster_ttl(cli.cluster_ttl);
    }
    match cli.access.auth() {
        Ok(Some(auth)) => builder = builder.auth(auth),
        Ok(None) => {}
        Err(e) => {
            eprintln!("wsloop: {e}");
            return ExitCode::from(2);
        }
    }
    if let Some(path) = &cli.api_key_file {
        match Api::from_key_file(path) {
            Ok(api) => builder = builder.http_route_each("/api/", move || api.clone()),
            Err(e) => {
                eprintln!("wsloop: --api-key-file {e}");
                return ExitCode::from(2);
            }
        }
    }
    if let Some(addr) = &cli.api_bind {
        builder = builder.http_bind(addr.clone());
    }
    if let Some(mut reloader) = reloader {
        builder = builder.on_reload(move || reloader.reload());
    }
    let server = builder
        .bind(cli.bind.clone())
        .config(config)
        .threads(cli.threads.into())
        .route_each("/", || Echo)
        .route_each("/echo", || Echo)
        .route_each("/broadcast", || Broadcast)
        .route_each("/chat", move || Chat::with_history(chat_history))
        .route_each("/pubsub", || PubSub)
        .history(cli.history())
        .presence(|topic| !topic.starts_with('/'))
        .index_page(wsloop::INDEX_HTML)
        .handle_signals(true)
        .build();
    let server = match server {
        Ok(server) => server,
        Err(e) => {
            eprintln!("wsloop: {e}");
            return ExitCode::from(2);
        }
    };
    // Tools and tests read this line to learn the port; a closed stdout must not stop the server.
    let scheme = if cli.tls_cert.is_some() { "wss" } else { "ws" };
    let _ = writeln!(
        std::io::stdout(),
        "listening on {scheme}://{}",
        server.local_addr()
    );
    if let Some(addr) = server.http_addr() {
        let scheme = if cli.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let _ = writeln!(std::io::stdout(), "API on {scheme}://{addr}/api/");
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wsloop: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_store_is_memory_or_an_sqlite_path() {
        assert_eq!(parse_store("memory"), Ok(HistoryStore::Memory));
        assert_eq!(
            parse_store("sqlite:/var/lib/wsloop/history.db"),
            Ok(HistoryStore::Sqlite("/var/lib/wsloop/history.db".into()))
        );
        assert_eq!(
            parse_store("sqlite:a:b"),
            Ok(HistoryStore::Sqlite("a:b".into()))
        );
        for bad in ["", "sqlite:", "sqlite", "redis://x", "Memory"] {
            assert!(parse_store(bad).is_err(), "{bad:?}");
        }
    }
}

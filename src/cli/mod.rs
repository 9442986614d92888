//! Command-line parsing and dispatch.

mod access_args;
mod bench;
mod chat_view;
mod console;
mod json_log;
mod publish;
mod serve;
mod token;
mod units;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A single-threaded WebSocket (RFC 6455) server.
///
/// Without a subcommand, serves echo on ws://ADDR/ and ws://ADDR/echo, broadcast on
/// ws://ADDR/broadcast, JSON chat on ws://ADDR/chat, JSON publish/subscribe with history on
/// ws://ADDR/pubsub, the browser test client and its JavaScript client library at
/// http://ADDR/ (and /wsloop.js), the probes http://ADDR/healthz and /readyz, and with
/// --api-key-file the HTTP API for backends at http://ADDR/api/. Sizes take a unit (B, KiB,
/// MiB, GiB; K, M, G are the same); durations take ms, s, m or h (a bare number is seconds; 0
/// turns ping-interval and idle-timeout off).
#[derive(Debug, Parser)]
#[command(name = "wsloop", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: serve::ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Talk to a WebSocket server from the console (chat on a /chat URL).
    ///
    /// Typed lines are sent as text, messages print as they arrive. On a /chat URL with
    /// --name, speaks the chat protocol.
    Client(console::ClientArgs),
    /// Load-test a WebSocket server: echo round trips or broadcast fan-out.
    ///
    /// Many connections on one loop, with a progress line every second and a summary at the
    /// end; every connection then ends with a close handshake (1000 "bench done").
    Bench(bench::BenchArgs),
    /// Sign a token (JWT) for a server with --auth-jwt-secret-file or --auth-jwt-key.
    ///
    /// Prints the token; connect with ws://ADDR/chat?token=TOKEN.
    Token(token::TokenArgs),
    /// Publish to a channel through a server's HTTP API (one started with --api-key-file).
    ///
    /// Prints each answer (the message's position, when the channel keeps history) as one
    /// JSON line. With `-` as the message, publishes each line of standard input.
    Publish(publish::PublishArgs),
}

/// Parses the command line and runs what it asks for.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => serve::run(&cli.serve),
        Some(Command::Client(args)) => console::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Token(args)) => token::run(&args),
        Some(Command::Publish(args)) => publish::run(&args),
    }
}

//! Command-line parsing and dispatch.

mod access_args;
mod bench;
mod chat_view;
mod config_cmd;
mod config_file;
mod console;
mod json_log;
mod layers;
mod open_files;
mod publish;
mod reload;
mod send;
mod serve;
mod sub;
mod token;
mod units;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// Send a message (or each line of stdin) to a WebSocket server and print the replies.
    ///
    /// Prints each message that arrives (text as a line, binary as a base64 line) until
    /// --wait has passed after the last one sent, then closes with 1000. Exit status: 0 done,
    /// 1 the connection failed or was refused, 3 the server closed with another code.
    Send(send::SendArgs),
    /// Subscribe to /pubsub channels and print each publication as one JSON line.
    ///
    /// With --since OFFSET:EPOCH (a publication's `offset` and `epoch`), what followed that
    /// position prints first, in order and once. Status goes to stderr. Exit status: 0 after
    /// --count publications or Ctrl+C, 1 the connection failed or a subscription was refused,
    /// 3 the server closed the connection.
    Sub(sub::SubArgs),
    /// Check a configuration file, or print one with every key (see --config).
    Config(config_cmd::ConfigArgs),
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    ///
    /// For bash: `wsloop completions bash > /etc/bash_completion.d/wsloop` (the Debian package
    /// installs them).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), or write it and one per subcommand (wsloop-send.1, ...)
    /// into DIR, as the Debian package installs them.
    #[command(hide = true)]
    Manpage { dir: Option<std::path::PathBuf> },
}

/// Parses the command line and runs what it asks for. The server's settings come from flags,
/// `WSLOOP_*` variables and `--config`'s file (see `layers`).
pub fn run() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let first = Cli::command()
        .ignore_errors(true)
        .try_get_matches_from(&argv);
    let serving = first.as_ref().is_ok_and(|m| m.subcommand().is_none());
    if !serving {
        return match Cli::parse_from(&argv).command {
            None => unreachable!("a subcommand was given"),
            Some(Command::Client(args)) => console::run(&args),
            Some(Command::Bench(args)) => bench::run(&args),
            Some(Command::Token(args)) => token::run(&args),
            Some(Command::Publish(args)) => publish::run(&args),
            Some(Command::Send(args)) => send::run(&args),
            Some(Command::Sub(args)) => sub::run(&args),
            Some(Command::Config(args)) => config_cmd::run(&args),
            Some(Command::Completions { shell }) => {
                let mut command = Cli::command();
                clap_complete::generate(shell, &mut command, "wsloop", &mut std::io::stdout());
                ExitCode::SUCCESS
            }
            Some(Command::Manpage { dir }) => {
                let written = match dir {
                    None => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()),
                    Some(dir) => write_man_pages(Cli::command(), "wsloop", &dir),
                };
                match written {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("wsloop: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
        };
    }
    let env = |name: &str| std::env::var(name).ok();
    let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
    for warning in layers::misspelt_variables(&Cli::command(), names) {
        eprintln!("wsloop: warning: {warning}");
    }
    let layered = match config_cmd::layered(&argv, &env) {
        Ok(layered) => layered,
        Err(e) => {
            eprintln!("wsloop: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::from_arg_matches(&layered.matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Limits that do not fit together, with where each came from.
    if let Err(e) = cli.serve.config().validate() {
        eprintln!(
            "wsloop: invalid configuration: {}",
            layered.with_sources(&e.to_string())
        );
        return ExitCode::from(2);
    }
    // With a file, SIGHUP reads it again.
    let reloader = (layered.file.is_some()).then(|| reload::Reloader::new(argv, layered.settings));
    serve::run(&cli.serve, reloader)
}

/// Writes `command`'s manual page as `DIR/NAME.1`, and its subcommands' as `NAME-SUB.1`
/// (the names its SEE ALSO section gives them).
fn write_man_pages(
    command: clap::Command,
    name: &str,
    dir: &std::path::Path,
) -> std::io::Result<()> {
    let command = command.name(name.to_string());
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    std::fs::write(dir.join(format!("{name}.1")), page)?;
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        let sub_name = format!("{name}-{}", sub.get_name());
        write_man_pages(sub.clone(), &sub_name, dir)?;
    }
    Ok(())
}

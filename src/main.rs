//! The `wsloop` command: the server by default, `wsloop client` for a console client.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}

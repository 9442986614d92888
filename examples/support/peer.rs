//! What the benchmark peers share: the command line (`--bind ADDR` only), a single-threaded
//! tokio runtime with a `LocalSet` for `spawn_local`, and a listener that announces its address
//! the way `wsloop serve` does, since tools read that line to learn the port.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::LocalSet;

/// Parses the command line, binds, prints `listening on ws://ADDR` and runs `serve` on a
/// current_thread runtime. `name` prefixes every error line.
pub fn run<Serve, Served>(name: &str, default_bind: &str, serve: Serve) -> ExitCode
where
    Serve: FnOnce(TcpListener) -> Served,
    Served: Future<Output = std::io::Result<()>>,
{
    let bind = match parse_args(default_bind) {
        Ok(bind) => bind,
        Err(message) => {
            eprintln!("{name}: {message}");
            eprintln!("usage: {name} [--bind ADDR]   (default {default_bind})");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = LocalSet::new().block_on(&runtime, async {
        let listener = TcpListener::bind(&bind).await?;
        let mut stdout = std::io::stdout();
        // A closed stdout must not stop the server.
        let _ = writeln!(stdout, "listening on ws://{}", listener.local_addr()?);
        let _ = stdout.flush();
        serve(listener).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--bind ADDR` (or `--bind=ADDR`) is the only flag.
fn parse_args(default_bind: &str) -> Result<String, String> {
    let mut bind = default_bind.to_string();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => bind = args.next().ok_or("--bind needs an address")?,
            _ => match arg.strip_prefix("--bind=") {
                Some(addr) => bind = addr.to_string(),
                None => return Err(format!("unexpected argument '{arg}'")),
            },
        }
    }
    Ok(bind)
}

/// The next connection, with TCP_NODELAY set. Accept errors (such as EMFILE) are logged and
/// skipped, so the connections already open keep being served.
pub async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((socket, peer)) => {
                if let Err(e) = socket.set_nodelay(true) {
                    eprintln!("{peer}: TCP_NODELAY: {e}");
                }
                return (socket, peer);
            }
            Err(e) => eprintln!("accept: {e}"),
        }
    }
}

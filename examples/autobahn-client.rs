//! Drives the Autobahn TestSuite's client cases with wsloop's client core: echo every message
//! of every case, then ask the fuzzing server to write its report.
//!
//! ```sh
//! kosoku -m fuzzingserver 127.0.0.1:9001 &
//! cargo run --release --example autobahn-client -- ws://127.0.0.1:9001
//! ```

use std::process::ExitCode;

use wsloop::client::{Client, ClientError, ClientOptions, Incoming};
use wsloop::Message;

const AGENT: &str = "wsloop";

/// Echoes everything until the server closes; returns how many messages were echoed.
fn echo_until_closed(client: &mut Client) -> usize {
    let mut echoed = 0;
    loop {
        let sent = match client.recv() {
            Ok(Incoming::Text(text)) => client.send(Message::Text(&text)),
            Ok(Incoming::Binary(bytes)) => client.send(Message::Binary(&bytes)),
            Ok(Incoming::Close(..)) | Err(_) => return echoed,
            // Pings are answered by the client; nothing else is asked for.
            Ok(_) => continue,
        };
        if sent.is_err() {
            return echoed;
        }
        echoed += 1;
    }
}

fn case_count(base: &str) -> Result<u32, ClientError> {
    let mut client = Client::connect(&format!("{base}/getCaseCount"))?;
    let count = match client.recv()? {
        Incoming::Text(text) => text.trim().parse().unwrap_or(0),
        _ => 0,
    };
    let _ = client.close(wsloop::CloseCode::NORMAL, "");
    Ok(count)
}

fn main() -> ExitCode {
    let base = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let base = base.trim_end_matches('/');
    let count = match case_count(base) {
        Ok(count) => count,
        Err(e) => {
            eprintln!("autobahn-client: cannot get the case count from {base}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("running {count} cases against {base}");
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={AGENT}");
        // Every case offers permessage-deflate; the fuzzing server accepts it in 12.* and 13.*.
        let options = ClientOptions::default().compression(true);
        match Client::connect_with(&url, &options) {
            Ok(mut client) => {
                echo_until_closed(&mut client);
            }
            // Some cases fail the handshake on purpose; the server records the outcome.
            Err(e) => eprintln!("case {case}: {e}"),
        }
    }
    match Client::connect(&format!("{base}/updateReports?agent={AGENT}")) {
        Ok(mut client) => {
            echo_until_closed(&mut client);
            println!("reports updated");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("autobahn-client: cannot update reports: {e}");
            ExitCode::FAILURE
        }
    }
}

//! The listening socket: its accept queue holds a crowd connecting at once.

// TestServer serves the bundled apps: `--no-default-features` skips this.
#![cfg(feature = "cli")]

mod common;

use std::process::Command;

use common::TestServer;

/// The accept queue the kernel gave a listening socket on `port` (what `ss` shows as Send-Q).
fn accept_queue(port: u16) -> Option<u32> {
    let output = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{port}")])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace().nth(2)?.parse().ok()
}

#[test]
fn the_accept_queue_is_as_long_as_the_kernel_allows() {
    let server = TestServer::start();
    let Some(queue) = accept_queue(server.addr().port()) else {
        eprintln!("skipped: `ss` (iproute2) is not installed");
        return;
    };
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // mio's own bind asks for 128: thousands connecting at once would lose SYNs to it, each
    // retried only a second later.
    assert_eq!(queue, somaxconn);
}

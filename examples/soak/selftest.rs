//! The self-test: an in-process server that echoes and broadcasts wrongly on purpose, run
//! against the checker for 3 s; it passes only when the checker catches both.

use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

use wsloop::{Context, Handler, Message, Publish, Server};

use crate::checker::{check_broadcast, check_echo};
use crate::shared::new_shared;
use crate::{report, spawn, Settings};

/// Echoes, but changes one byte of every fifth message.
struct BrokenEcho(u64);

impl Handler for BrokenEcho {
    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        self.0 += 1;
        if !self.0.is_multiple_of(5) {
            ctx.echo();
            return;
        }
        match message {
            Message::Text(text) => {
                let mut changed = text.to_string();
                changed.push('!');
                ctx.send_text(&changed);
            }
            Message::Binary(bytes) => {
                let mut changed = bytes.to_vec();
                if let Some(last) = changed.last_mut() {
                    *last ^= 0x20;
                }
                ctx.send_binary(&changed);
            }
        }
    }
}

/// Broadcasts, but changes every fifth message and drops every seventh.
struct BrokenBroadcast(u64);

impl Handler for BrokenBroadcast {
    fn on_open(&mut self, ctx: &mut Context<'_>) {
        ctx.subscribe("all");
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, message: Message<'_>) {
        self.0 += 1;
        if self.0.is_multiple_of(7) {
            return;
        }
        match message {
            Message::Text(text) if self.0.is_multiple_of(5) => {
                let changed = format!("{text}?");
                ctx.publish("all", Message::Text(&changed), Publish::ToOthers);
            }
            _ => {
                ctx.publish("all", message, Publish::ToOthers);
            }
        }
    }
}

pub fn self_test(settings: &mut Settings) -> ExitCode {
    let server = Server::builder()
        .bind("127.0.0.1:0")
        .route("/", BrokenEcho(0))
        .route("/broadcast", BrokenBroadcast(0))
        .build();
    let server = match server {
        Ok(server) => server,
        Err(e) => {
            eprintln!("soak: self-test server: {e}");
            return ExitCode::FAILURE;
        }
    };
    settings.addr = server.local_addr();
    settings.duration = Duration::from_secs(3);
    let handle = server.shutdown_handle();
    let runner = thread::spawn(move || server.run());
    let shared = new_shared(settings.clone());
    let started = Instant::now();
    let threads = [
        spawn("check-echo", &shared, check_echo),
        spawn("check-broadcast", &shared, check_broadcast),
    ];
    for t in threads {
        let _ = t.join();
    }
    let errors = report(&shared, started.elapsed());
    handle.shutdown();
    let _ = runner.join();
    let echo_caught = shared.stats.get("checker_echo_mismatches") > 0;
    let broadcast_caught = shared.stats.get("checker_broadcast_mismatches") > 0
        && shared.stats.get("checker_broadcast_failures") > 0;
    if errors > 0 && echo_caught && broadcast_caught {
        println!("self-test PASSED: the checker caught the broken server ({errors} errors)");
        ExitCode::SUCCESS
    } else {
        println!(
            "self-test FAILED: echo caught {echo_caught}, broadcast caught {broadcast_caught}"
        );
        ExitCode::FAILURE
    }
}

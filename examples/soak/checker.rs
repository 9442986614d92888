//! The checker: echo round trips on `/` and broadcast round trips on `/broadcast`, verified
//! byte for byte while the abusers run, with their latencies recorded. Its mismatches and
//! failed round trips are what fail the run.

use std::io::Write;
use std::net::Shutdown;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use wsloop::client::{Client, ClientOptions, Incoming};
use wsloop::{CloseCode, Message};

use crate::flood::{discarding_broadcaster, flood_payload_intact};
use crate::raw::client_frame;
use crate::rng::Rng;
use crate::shared::Shared;

/// How long the checker waits for one round trip before counting a failure.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause between two checker round trips (each checker).
const CHECK_INTERVAL: Duration = Duration::from_millis(20);
/// Checker failures printed in full (the rest are only counted).
const FAILURES_SHOWN: u64 = 10;

fn report_failure(shared: &Shared, key: &str, detail: String) {
    shared.stats.inc(key);
    if shared.stats.get(key) <= FAILURES_SHOWN {
        eprintln!("soak: checker: {key}: {detail}");
    }
}

fn checker_connect(shared: &Shared, path: &str) -> Option<Client> {
    let options = ClientOptions::default().timeout(CHECK_TIMEOUT);
    while shared.running() {
        match Client::connect_with(&shared.url(path), &options) {
            Ok(client) => {
                shared.stats.inc("upgrades");
                return Some(client);
            }
            Err(e) => {
                report_failure(shared, "checker_connect_failures", format!("{path}: {e}"));
                shared.sleep(Duration::from_millis(200));
            }
        }
    }
    None
}

/// Echo round trips on `/`: text and binary, verified byte for byte.
pub fn check_echo(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let mut seq = 0u64;
    'connection: while shared.running() {
        let Some(mut client) = checker_connect(&shared, "/") else {
            return;
        };
        while shared.running() {
            seq += 1;
            // Mostly small, sometimes near the server's limit.
            let len = if rng.chance(2) {
                rng.range(
                    1024,
                    shared
                        .settings
                        .max_message_size
                        .saturating_sub(1024)
                        .max(1024),
                )
            } else {
                rng.range(1, 2048)
            } as usize;
            let expected = if seq.is_multiple_of(2) {
                let mut text = format!("echo {} {seq} ", shared.nonce);
                text.push_str(&rng.text(len));
                Incoming::Text(text)
            } else {
                let mut bytes = seq.to_le_bytes().to_vec();
                bytes.extend(rng.bytes(len));
                Incoming::Binary(bytes)
            };
            let started = Instant::now();
            let sent = match &expected {
                Incoming::Text(text) => client.send(Message::Text(text)),
                Incoming::Binary(bytes) => client.send(Message::Binary(bytes)),
                _ => unreachable!("only messages are sent"),
            };
            if let Err(e) = sent {
                report_failure(
                    &shared,
                    "checker_echo_failures",
                    format!("send #{seq}: {e}"),
                );
                continue 'connection;
            }
            let _ = client.set_read_timeout(Some(CHECK_TIMEOUT));
            match client.recv() {
                Ok(got) if got == expected => {
                    let micros = started.elapsed().as_micros() as u64;
                    shared
                        .echo_latency
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(micros);
                }
                Ok(Incoming::Close(code, reason)) => {
                    report_failure(
                        &shared,
                        "checker_echo_failures",
                        format!("#{seq}: server closed {code} {reason:?}"),
                    );
                    continue 'connection;
                }
                Ok(got) => {
                    let describe = |m: &Incoming| match m {
                        Incoming::Text(t) => format!("text of {} bytes", t.len()),
                        Incoming::Binary(b) => format!("binary of {} bytes", b.len()),
                        Incoming::Close(..) => "close".into(),
                        _ => "ping or pong".into(),
                    };
                    report_failure(
                        &shared,
                        "checker_echo_mismatches",
                        format!(
                            "#{seq}: sent {}, got a different {}",
                            describe(&expected),
                            describe(&got)
                        ),
                    );
                }
                Err(e) => {
                    report_failure(
                        &shared,
                        "checker_echo_failures",
                        format!("recv #{seq}: {e}"),
                    );
                    continue 'connection;
                }
            }
            shared.sleep(CHECK_INTERVAL);
        }
        let _ = client.close(CloseCode::NORMAL, "checker done");
    }
}

/// Broadcast round trips on `/broadcast`: a message sent on one connection must arrive,
/// unchanged, on the other (the broadcast goes to everyone but its sender). Flood messages
/// seen on the way are verified too.
pub fn check_broadcast(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let mut seq = 0u64;
    'connection: while shared.running() {
        let Some(mut rx) = checker_connect(&shared, "/broadcast") else {
            return;
        };
        let Some((mut tx, tx_reader)) = discarding_broadcaster(&shared, &mut rng, "checker_tx")
        else {
            report_failure(
                &shared,
                "checker_connect_failures",
                "/broadcast sender".into(),
            );
            shared.sleep(Duration::from_millis(200));
            continue;
        };
        // Both are subscribed once the upgrade answers have been sent; give the loop a turn.
        thread::sleep(Duration::from_millis(50));
        let prefix = format!("bcast {} ", shared.nonce);
        let mut failed = false;
        while shared.running() && !failed {
            seq += 1;
            let len = rng.range(1, 512) as usize;
            let text = format!("{prefix}{seq} {}", rng.text(len));
            let started = Instant::now();
            let frame = client_frame(0x1, true, text.as_bytes(), &mut rng);
            if tx.write_all(&frame).is_err() {
                report_failure(
                    &shared,
                    "checker_broadcast_failures",
                    format!("send #{seq}: the server closed the sender"),
                );
                break;
            }
            let deadline = started + CHECK_TIMEOUT;
            let mut arrived = false;
            while !arrived {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    report_failure(
                        &shared,
                        "checker_broadcast_failures",
                        format!("#{seq}: not received within {CHECK_TIMEOUT:?}"),
                    );
                    break;
                }
                let _ = rx.set_read_timeout(Some(left));
                match rx.recv() {
                    Ok(Incoming::Text(got)) if got == text => {
                        arrived = true;
                        let micros = started.elapsed().as_micros() as u64;
                        shared
                            .broadcast_latency
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(micros);
                    }
                    Ok(Incoming::Text(got)) if got.starts_with(&prefix) => {
                        let got_seq = got[prefix.len()..]
                            .split(' ')
                            .next()
                            .and_then(|s| s.parse::<u64>().ok());
                        if got_seq == Some(seq) {
                            report_failure(
                                &shared,
                                "checker_broadcast_mismatches",
                                format!(
                                    "#{seq}: arrived changed ({} bytes sent, {} received)",
                                    text.len(),
                                    got.len()
                                ),
                            );
                            arrived = true;
                        } else {
                            shared.stats.inc("checker_broadcast_late_arrivals");
                        }
                    }
                    Ok(Incoming::Binary(got)) if got.starts_with(b"FLD") => {
                        if flood_payload_intact(&got) {
                            shared.stats.inc("checker_flood_messages_verified");
                        } else {
                            report_failure(
                                &shared,
                                "checker_flood_corrupt",
                                format!("{} bytes", got.len()),
                            );
                        }
                    }
                    Ok(Incoming::Close(code, reason)) => {
                        report_failure(
                            &shared,
                            "checker_broadcast_failures",
                            format!("#{seq}: server closed the receiver {code} {reason:?}"),
                        );
                        failed = true;
                        break;
                    }
                    Ok(_) => shared.stats.inc("checker_broadcast_other_messages"),
                    Err(e) if e.is_timeout() => {}
                    Err(e) => {
                        report_failure(
                            &shared,
                            "checker_broadcast_failures",
                            format!("recv #{seq}: {e}"),
                        );
                        failed = true;
                        break;
                    }
                }
            }
            // Keep reading floods until the next round trip, so rx never falls behind.
            let next = Instant::now() + CHECK_INTERVAL;
            while !failed && Instant::now() < next {
                let _ = rx.set_read_timeout(Some(
                    next.saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1)),
                ));
                match rx.recv() {
                    Ok(Incoming::Binary(got)) if got.starts_with(b"FLD") => {
                        if flood_payload_intact(&got) {
                            shared.stats.inc("checker_flood_messages_verified");
                        } else {
                            report_failure(
                                &shared,
                                "checker_flood_corrupt",
                                format!("{} bytes", got.len()),
                            );
                        }
                    }
                    Ok(Incoming::Text(got)) if got.starts_with(&prefix) => {
                        shared.stats.inc("checker_broadcast_late_arrivals")
                    }
                    Ok(Incoming::Close(code, reason)) => {
                        report_failure(
                            &shared,
                            "checker_broadcast_failures",
                            format!("server closed the receiver {code} {reason:?}"),
                        );
                        failed = true;
                    }
                    Ok(_) => shared.stats.inc("checker_broadcast_other_messages"),
                    Err(e) if e.is_timeout() => {}
                    Err(e) => {
                        report_failure(&shared, "checker_broadcast_failures", format!("recv: {e}"));
                        failed = true;
                    }
                }
            }
        }
        let _ = tx.shutdown(Shutdown::Write);
        let _ = rx.close(CloseCode::NORMAL, "checker done");
        drop(tx);
        let _ = tx_reader.join();
        if failed {
            continue 'connection;
        }
    }
}

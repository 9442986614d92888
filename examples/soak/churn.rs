//! Churn: connections opened and upgraded in batches, a few echoes verified on each, then
//! closed cleanly or dropped (sometimes with unread data on the way, so the kernel resets).

use std::sync::Arc;
use std::time::Duration;

use wsloop::client::{Client, ClientError, ClientOptions, Incoming};
use wsloop::{CloseCode, Message};

use crate::rng::Rng;
use crate::shared::{Pacer, Shared, IO_TIMEOUT};

pub fn churn(shared: Arc<Shared>) {
    let mut rng = Rng::new();
    let mut pacer = Pacer::new(shared.settings.churn_rate, shared.settings.churn_threads);
    let options = ClientOptions::default().timeout(IO_TIMEOUT);
    while shared.running() {
        let batch = rng.range(1, 16);
        let mut clients = Vec::new();
        for _ in 0..batch {
            if !shared.running() {
                break;
            }
            let path = if rng.chance(20) { "/broadcast" } else { "/" };
            match Client::connect_with(&shared.url(path), &options) {
                Ok(client) => {
                    shared.stats.inc("upgrades");
                    shared.stats.inc("churn_upgrades");
                    clients.push((client, path));
                }
                Err(e) => shared
                    .stats
                    .inc(&format!("churn_connect_failed_{}", error_kind(&e))),
            }
        }
        for (client, path) in &mut clients {
            if *path == "/" {
                churn_echoes(&shared, client, &mut rng);
            }
        }
        shared.sleep(Duration::from_millis(rng.range(0, 200)));
        for (mut client, _) in clients {
            match rng.range(0, 3) {
                0 | 1 => match client.close(CloseCode::NORMAL, "churn") {
                    Ok(()) => shared.stats.inc("churn_closed_clean"),
                    Err(e) => shared
                        .stats
                        .inc(&format!("churn_close_failed_{}", error_kind(&e))),
                },
                2 => {
                    // Something unread is on its way when the socket goes: the kernel resets.
                    let _ = client.send(Message::Text("bye"));
                    drop(client);
                    shared.stats.inc("churn_dropped_with_unread");
                }
                _ => {
                    drop(client);
                    shared.stats.inc("churn_dropped");
                }
            }
        }
        pacer.wait(&shared, batch as u32);
    }
}

fn churn_echoes(shared: &Shared, client: &mut Client, rng: &mut Rng) {
    let _ = client.set_read_timeout(Some(IO_TIMEOUT));
    for _ in 0..rng.range(1, 4) {
        let len = rng.range(0, 2048) as usize;
        let (sent, expected) = if rng.chance(50) {
            let text = rng.text(len);
            (
                client.send(Message::Text(&text)),
                Incoming::Text(text.clone()),
            )
        } else {
            let bytes = rng.bytes(len);
            (
                client.send(Message::Binary(&bytes)),
                Incoming::Binary(bytes.clone()),
            )
        };
        if let Err(e) = sent {
            shared
                .stats
                .inc(&format!("churn_echo_failed_{}", error_kind(&e)));
            return;
        }
        match client.recv() {
            Ok(got) if got == expected => shared.stats.inc("churn_echoes"),
            Ok(Incoming::Close(code, _)) => {
                shared
                    .stats
                    .inc(&format!("churn_echo_server_closed_{code}"));
                return;
            }
            Ok(_) => shared.stats.inc("churn_echo_mismatches"),
            Err(e) => {
                shared
                    .stats
                    .inc(&format!("churn_echo_failed_{}", error_kind(&e)));
                return;
            }
        }
    }
}

fn error_kind(e: &ClientError) -> String {
    match e {
        ClientError::Io(e) | ClientError::Connect(e) => format!("{:?}", e.kind()),
        ClientError::Handshake(e) => format!("handshake({e})").replace(' ', "_"),
        ClientError::Refused { status, .. } => format!("refused({status})"),
        ClientError::Protocol(_) => "protocol".into(),
        ClientError::Closed => "closed".into(),
        _ => "other".into(),
    }
}

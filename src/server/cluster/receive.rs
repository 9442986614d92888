//! The bridge's reading ends: pushes on the subscriber connection (other instances' messages
//! and directory news), and replies on the publisher connection (Redis's answers to claims).

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use log::{error, info, warn};

use super::publish::Expect;
use super::record::{self, Heard, News};
use super::resp::{parse, Value};
use super::streams::{deliver_to_loops, Commands, Copy};
use super::{Expected, Outgoing, Shared};
use crate::ids::ConnectionId;
use crate::protocol::outbound::Prepared;
use crate::server::context::Target;
use crate::server::mailbox::{Mail, Postbox};

/// Reads `stream` value by value until it fails, `failed` is set, or the server stops.
fn read_values(
    shared: &Shared,
    mut stream: TcpStream,
    failed: &AtomicBool,
    mut each: impl FnMut(Value) -> io::Result<()>,
) -> io::Result<()> {
    let mut buffer = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if shared.stopping() || failed.load(Ordering::Acquire) {
            return Ok(());
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            // The read timeout (TICK): a quiet connection is not a failed one.
            Err(e) if super::quiet(&e) => continue,
            Err(e) => return Err(e),
        };
        buffer.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        while let Some((value, n)) = parse(&buffer[used..]).map_err(io::Error::other)? {
            used += n;
            each(value)?;
        }
        buffer.drain(..used);
    }
}

/// Reads the subscriber connection: posts other instances' messages to every loop and applies
/// their directory news, until the connection fails or the server stops.
///
/// With kept topics, `commands` reads their streams: once subscribed, every copy is brought up
/// to Redis's streams (what it appends delivered, but on the first connection, before any
/// client), and later whenever a message shows a gap.
pub(super) fn pushes(
    shared: &Shared,
    stream: TcpStream,
    mut commands: Commands,
    failed: &AtomicBool,
) -> io::Result<()> {
    let mut postbox = Postbox::outside(shared.inboxes.clone());
    read_values(shared, stream, failed, |value| {
        if let Value::Error(said) = value {
            // NOAUTH, or a Redis that refuses pub/sub: nothing crosses instances.
            return Err(io::Error::other(format!(
                "Redis refused to subscribe: {said}"
            )));
        }
        if is_subscribed(&value) {
            if let Some(history) = &shared.history {
                let first = !shared.synced.swap(true, Ordering::AcqRel);
                let mut copy = Copy {
                    shared,
                    history,
                    postbox: &mut postbox,
                    commands: &mut commands,
                };
                let topics = copy.sync_all(!first)?;
                if first {
                    info!("cluster: history of {topics} kept topic(s) read from Redis");
                }
                history.set_cluster_up(true);
            }
            shared.ready();
            return Ok(());
        }
        let Some((channel, body)) = pattern_message(value) else {
            return Ok(());
        };
        let Some(channel) = std::str::from_utf8(&channel)
            .ok()
            .and_then(|c| c.strip_prefix(&*shared.prefix))
        else {
            return Ok(());
        };
        let Some((from, heard)) = record::read(&body) else {
            return Ok(());
        };
        if from == shared.id && !matches!(heard, Heard::Kept(_)) {
            return Ok(()); // our own, delivered by our loops already
        }
        if from != shared.id {
            shared.heard_from(from);
        }
        match heard {
            Heard::Kept(record) => {
                let Some(topic) = channel.strip_prefix("k:") else {
                    return Ok(());
                };
                match shared.history.as_deref().filter(|h| h.keeps(topic)) {
                    Some(history) => {
                        let mut copy = Copy {
                            shared,
                            history,
                            postbox: &mut postbox,
                            commands: &mut commands,
                        };
                        copy.heard(topic, &from, record)?;
                    }
                    // An instance that keeps no history of the topic delivers it as it is.
                    None if from != shared.id => {
                        if let Some(prepared) = record.template.render(&record.position) {
                            deliver_to_loops(&mut postbox, topic, ConnectionId::NOBODY, prepared);
                        }
                    }
                    None => {}
                }
            }
            Heard::Message(message) => {
                if let Some(target) = target_of(shared, channel) {
                    let mail = Mail::Deliver(target, Prepared::new(message));
                    for other in postbox.others() {
                        postbox.post(other, mail.clone());
                    }
                }
            }
            Heard::News(News::Hello) => {
                let _ = shared.sender.try_send(Outgoing::Snapshot);
            }
            Heard::News(News::Hold { entries, whole }) => {
                shared.directory.theirs(from, entries, whole);
            }
            Heard::News(News::Release { keys }) => shared.directory.released(from, keys),
            Heard::News(News::Alive) => {}
            Heard::News(News::Join {
                channel,
                connection,
                user,
            }) => {
                if let Some(presence) = &shared.presence {
                    presence.their_join(from, &channel, connection, &user);
                }
            }
            Heard::News(News::Leave {
                channel,
                connection,
            }) => {
                if let Some(presence) = &shared.presence {
                    presence.their_leave(from, &channel, connection);
                }
            }
            Heard::News(News::Present { entries }) => {
                if let Some(presence) = &shared.presence {
                    presence.their_whole(from, entries);
                }
            }
            Heard::News(News::Disconnect {
                user,
                instance,
                connection,
                code,
                reason,
            }) => disconnect(
                shared,
                &mut postbox,
                &user,
                &instance,
                connection,
                code,
                &reason,
            ),
        }
        Ok(())
    })
}

/// Another instance asks to close `user`'s connections here (if not empty), or connection
/// `connection` if `instance` is this one.
fn disconnect(
    shared: &Shared,
    postbox: &mut Postbox,
    user: &str,
    instance: &str,
    connection: u64,
    code: u16,
    reason: &str,
) {
    let code = crate::CloseCode(code);
    if !user.is_empty() {
        let (user, reason): (Arc<str>, Arc<str>) = (Arc::from(user), Arc::from(reason));
        for other in postbox.others() {
            let mail = Mail::CloseUser {
                user: user.clone(),
                code,
                reason: reason.clone(),
            };
            postbox.post(other, mail);
        }
    } else if instance == shared.id_hex {
        let id = ConnectionId::from_u64(connection);
        let reason = reason.to_string();
        postbox.post(id.loop_index(), Mail::Close { id, code, reason });
    }
}

/// Whether `value` confirms the pattern subscription.
fn is_subscribed(value: &Value) -> bool {
    matches!(value, Value::Array(Some(parts))
        if matches!(parts.first(), Some(Value::Bulk(Some(kind))) if kind == b"psubscribe"))
}

/// The channel and body of a pattern subscription's message.
fn pattern_message(value: Value) -> Option<(Vec<u8>, Vec<u8>)> {
    let Value::Array(Some(parts)) = value else {
        return None;
    };
    let [Value::Bulk(Some(kind)), _pattern, Value::Bulk(Some(channel)), Value::Bulk(Some(body))] =
        <[Value; 4]>::try_from(parts).ok()?
    else {
        return None;
    };
    (kind == b"pmessage").then_some((channel, body))
}

/// Who on this instance a message on `channel` (without the prefix) is for.
fn target_of(shared: &Shared, channel: &str) -> Option<Target> {
    let except = ConnectionId::NOBODY;
    if let Some(topic) = channel.strip_prefix("t:") {
        return Some(Target::Topic {
            topic: Arc::from(topic),
            except,
        });
    }
    let path = channel.strip_prefix("r:")?;
    let route = shared.paths.iter().position(|p| p == path)?;
    Some(Target::RouteExcept { route, except })
}

/// Reads the publisher connection's replies, each answering the oldest expectation, until it
/// fails or the server stops.
pub(super) fn replies(
    shared: &Shared,
    stream: TcpStream,
    failed: &AtomicBool,
    expected: &Expected,
) {
    let mut postbox = Postbox::outside(shared.inboxes.clone());
    let mut complained = false;
    let result = read_values(shared, stream, failed, |value| {
        let expect = expected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        match (expect, value) {
            (Some(Expect::Claim { key, id }), Value::Simple(_)) => {
                decide(shared, &mut postbox, id, key, true)
            }
            (Some(Expect::Claim { key, id }), Value::Bulk(None)) => {
                decide(shared, &mut postbox, id, key, false)
            }
            (Some(Expect::Renew { key }), Value::Bulk(None)) => {
                warn!("cluster: another instance took {key:?} while Redis was unreachable; both hold it now");
            }
            (expect, Value::Error(said)) => {
                if !complained {
                    complained = true;
                    error!("cluster: Redis refused a command: {said}");
                }
                if let (Some(Expect::Append { .. }), Some(history)) = (&expect, &shared.history) {
                    history.count_unkept(); // Redis will not keep it
                }
                // Redis will not decide: decided here.
                if let Some(Expect::Claim { key, id }) = expect {
                    decide(shared, &mut postbox, id, key, true);
                }
            }
            _ => {}
        }
        Ok(())
    });
    if let Err(e) = result {
        if !failed.load(Ordering::Acquire) && !shared.stopping() {
            warn!("cluster: publisher connection: {e}");
        }
    }
}

/// What Redis will not answer (the connection ended). Claims: granted here, where they are
/// unique, and claimed in Redis again by the next heartbeat after reconnecting. Appends: sent
/// again, first, on the next connection (Redis skips those it appended after all).
pub(super) fn unanswered(shared: &Shared, expected: &Expected) {
    let mut postbox = Postbox::outside(shared.inboxes.clone());
    let left = std::mem::take(&mut *expected.lock().unwrap_or_else(|e| e.into_inner()));
    let mut resend = shared.resend.lock().unwrap_or_else(|e| e.into_inner());
    for expect in left {
        match expect {
            Expect::Claim { key, id } => decide(shared, &mut postbox, id, key, true),
            Expect::Append { seq, append } => resend.push_back((seq, append)),
            Expect::Nothing | Expect::Renew { .. } => {}
        }
    }
}

/// Tells the loop of `id` what became of its claim of `key`, and the other instances when it
/// was granted.
fn decide(shared: &Shared, postbox: &mut Postbox, id: ConnectionId, key: String, granted: bool) {
    if !shared.directory.decided(id, &key, granted) {
        return; // the connection let go of it (or closed) meanwhile
    }
    if granted {
        let _ = shared
            .sender
            .try_send(Outgoing::Announce { key: key.clone() });
    }
    postbox.post(id.loop_index(), Mail::Decided { id, key, granted });
}

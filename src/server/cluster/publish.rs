//! The publisher connection: every command the bridge sends, pipelined, and the heartbeat that
//! keeps this instance's claims alive.

use std::io::{self, BufWriter, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use super::record::{self, News};
use super::resp::encode_command;
use super::streams;
use super::{Append, Expected, Outgoing, Shared, DEAD_AFTER, LIVENESS, TICK};
use crate::ids::ConnectionId;
use crate::server::presence::PresenceNews;

/// Renews a key this instance holds, or claims it again when it expired (Redis was away
/// longer than the TTL); answers nil when another instance took it meanwhile.
const RENEW: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
    return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])";
/// Claims a key that is free, or whose holder is dead (its liveness key `ARGV[3]..holder` is
/// gone: it has not said it is alive for a few seconds); answers nil when a live instance
/// holds it.
const CLAIM: &str = "local holder = redis.call('GET', KEYS[1]) \
    if holder and redis.call('EXISTS', ARGV[3] .. holder) == 1 then return false end \
    return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])";
/// Deletes a key only if this instance holds it.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) end return 0";

/// What a reply answers.
#[derive(Debug)]
pub(super) enum Expect {
    /// Nothing anyone waits for (a PUBLISH's receiver count, a release).
    Nothing,
    /// Whether `id` may hold `key`.
    Claim { key: String, id: ConnectionId },
    /// Whether this instance still holds `key`.
    Renew { key: String },
    /// A kept message's append, numbered `seq`: sent again on the next connection if this one
    /// ends before Redis answers (the script skips it if it was appended after all).
    Append { seq: u64, append: Append },
}

/// Writes every command as it comes, and a heartbeat every TTL/3, until the server stops
/// (`Ok`, once what is queued went out) or the connection fails.
pub(super) fn commands(
    shared: &Shared,
    outgoing: &Receiver<Outgoing>,
    publisher: &mut TcpStream,
    failed: &AtomicBool,
    expected: &Expected,
) -> io::Result<()> {
    let mut out = Commands {
        shared,
        expected,
        stream: BufWriter::with_capacity(64 * 1024, publisher),
        command: Vec::new(),
    };
    let every = shared.ttl / 3;
    // Back or new: say we are alive, ask the others what they hold, and tell them what we do.
    out.alive()?;
    out.news(&News::Hello)?;
    out.presence_snapshot()?;
    out.resend()?;
    let mut next_beat = Instant::now();
    let mut next_alive = Instant::now() + LIVENESS;
    loop {
        if failed.load(Ordering::Acquire) {
            return Err(io::Error::other("the connection ended"));
        }
        let now = Instant::now();
        if now >= next_alive {
            out.alive()?;
            out.stream.flush()?;
            shared.bury_the_quiet();
            next_alive = now + LIVENESS;
        }
        if now >= next_beat {
            out.heartbeat()?;
            out.stream.flush()?;
            next_beat = now + every;
        }
        let next_beat = next_beat.min(next_alive);
        let first = if shared.stopping() {
            match outgoing.try_recv() {
                Ok(first) => first,
                Err(_) => return Ok(()), // all sent
            }
        } else {
            match outgoing.recv_timeout(TICK.min(next_beat.saturating_duration_since(now))) {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        };
        for next in std::iter::once(first).chain(outgoing.try_iter()) {
            out.send(next)?;
        }
        out.stream.flush()?;
    }
}

/// The publisher's writing end.
struct Commands<'a> {
    shared: &'a Shared,
    expected: &'a Expected,
    stream: BufWriter<&'a mut TcpStream>,
    command: Vec<u8>,
}

impl Commands<'_> {
    /// Writes one command whose reply answers `expect`: noted first, since a full buffer may
    /// go out (and be answered) before the rest of the batch.
    fn write(&mut self, args: &[&[u8]], expect: Expect) -> io::Result<()> {
        self.command.clear();
        encode_command(&mut self.command, args);
        self.write_encoded(expect)
    }

    /// Writes `self.command`, already encoded, as [`Commands::write`] does.
    fn write_encoded(&mut self, expect: Expect) -> io::Result<()> {
        let mut expected = self.expected.lock().unwrap_or_else(|e| e.into_inner());
        expected.push_back(expect);
        drop(expected);
        self.stream.write_all(&self.command)
    }

    fn key(&self, key: &str) -> String {
        format!("{}n:{key}", self.shared.prefix)
    }

    fn news(&mut self, news: &News) -> io::Result<()> {
        let channel = format!("{}d", self.shared.prefix);
        let body = record::news(&self.shared.id, news);
        self.write(&[b"PUBLISH", channel.as_bytes(), &body], Expect::Nothing)
    }

    fn send(&mut self, what: Outgoing) -> io::Result<()> {
        let id = &self.shared.id;
        match what {
            Outgoing::Publish { channel, message } => {
                let body = record::message(id, &message);
                self.write(&[b"PUBLISH", channel.as_bytes(), &body], Expect::Nothing)
            }
            Outgoing::Claim { key, id: holder } => {
                let ttl = self.shared.ttl.as_millis().to_string();
                let name = self.key(&key);
                let alive = format!("{}i:", self.shared.prefix);
                let args: [&[u8]; 7] = [
                    b"EVAL",
                    CLAIM.as_bytes(),
                    b"1",
                    name.as_bytes(),
                    id,
                    ttl.as_bytes(),
                    alive.as_bytes(),
                ];
                self.write(&args, Expect::Claim { key, id: holder })
            }
            Outgoing::Presence(news) => self.news(&match news {
                PresenceNews::Join {
                    channel,
                    connection,
                    user,
                } => News::Join {
                    channel,
                    connection,
                    user,
                },
                PresenceNews::Leave {
                    channel,
                    connection,
                } => News::Leave {
                    channel,
                    connection,
                },
            }),
            Outgoing::Disconnect {
                user,
                instance,
                connection,
                code,
                reason,
            } => self.news(&News::Disconnect {
                user,
                instance,
                connection,
                code,
                reason,
            }),
            Outgoing::Announce { key } => match self.shared.directory.our_value(&key) {
                Some(value) => self.news(&News::Hold {
                    entries: vec![(key, value)],
                    whole: false,
                }),
                None => Ok(()), // let go of since
            },
            Outgoing::Release { key } => {
                let name = self.key(&key);
                let args: [&[u8]; 5] = [b"EVAL", RELEASE.as_bytes(), b"1", name.as_bytes(), id];
                self.write(&args, Expect::Nothing)?;
                self.news(&News::Release { keys: vec![key] })
            }
            Outgoing::Append(append) => {
                let seq = self.shared.appends.fetch_add(1, Ordering::Relaxed) + 1;
                self.append(seq, append)
            }
            Outgoing::Snapshot => {
                let entries = self.shared.directory.ours();
                self.news(&News::Hold {
                    entries,
                    whole: true,
                })?;
                self.presence_snapshot()
            }
        }
    }

    /// Says this instance is alive: to the others (news), and to Redis (a key that lives
    /// [`DEAD_AFTER`], which the claim script looks at).
    fn alive(&mut self) -> io::Result<()> {
        self.news(&News::Alive)?;
        let mut key = format!("{}i:", self.shared.prefix).into_bytes();
        key.extend_from_slice(&self.shared.id);
        let ttl = DEAD_AFTER.as_millis().to_string();
        let args: [&[u8]; 5] = [b"SET", &key, b"1", b"PX", ttl.as_bytes()];
        self.write(&args, Expect::Nothing)
    }

    /// Tells the others everyone here on channels that keep presence (they replace what they
    /// knew of this instance).
    fn presence_snapshot(&mut self) -> io::Result<()> {
        let Some(presence) = &self.shared.presence else {
            return Ok(());
        };
        let entries = presence.ours();
        self.news(&News::Present { entries })
    }

    /// `EVAL APPEND` for a kept message (see `streams::APPEND`), numbered `seq`.
    fn append(&mut self, seq: u64, append: Append) -> io::Result<()> {
        let Some(history) = &self.shared.history else {
            return Ok(());
        };
        let [hash, stream, channel] = streams::keys(&self.shared.prefix, &append.topic);
        let length = history.per_topic().to_string();
        let ttl = history.stream_ttl_ms().to_string();
        let at = append.at.to_string();
        let header = record::kept_header(&self.shared.id, append.except, append.at);
        let mut template = Vec::new();
        append.template.encode(&mut template);
        let number = seq.to_string();
        let args: [&[u8]; 14] = [
            b"EVAL",
            streams::APPEND.as_bytes(),
            b"2",
            hash.as_bytes(),
            stream.as_bytes(),
            channel.as_bytes(),
            append.epoch.as_bytes(),
            length.as_bytes(),
            ttl.as_bytes(),
            at.as_bytes(),
            &header,
            &template,
            self.shared.id_hex.as_bytes(),
            number.as_bytes(),
        ];
        self.command.clear();
        encode_command(&mut self.command, &args);
        self.write_encoded(Expect::Append { seq, append })
    }

    /// Sends again the appends a lost connection left unanswered, in their order.
    fn resend(&mut self) -> io::Result<()> {
        let again =
            std::mem::take(&mut *self.shared.resend.lock().unwrap_or_else(|e| e.into_inner()));
        for (seq, append) in again {
            self.append(seq, append)?;
        }
        Ok(())
    }

    /// Renews every key this instance holds and tells the others all of them; forgets other
    /// instances not heard of within the TTL.
    fn heartbeat(&mut self) -> io::Result<()> {
        let entries = self.shared.directory.ours();
        let ttl = self.shared.ttl.as_millis().to_string();
        for (key, _) in &entries {
            let name = self.key(key);
            let args: [&[u8]; 6] = [
                b"EVAL",
                RENEW.as_bytes(),
                b"1",
                name.as_bytes(),
                &self.shared.id,
                ttl.as_bytes(),
            ];
            self.write(&args, Expect::Renew { key: key.clone() })?;
        }
        self.news(&News::Hold {
            entries,
            whole: true,
        })?;
        self.shared.directory.expire();
        Ok(())
    }
}

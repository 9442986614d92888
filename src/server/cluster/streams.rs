//! Kept topics on Redis Streams (see `history::cluster`): the script that orders a publish
//! (the topic's next offset, the append to its stream and the publish to every instance, in
//! one step), and the reads that fill this instance's copy from the streams.
//!
//! Keys, for a topic `T`: `wsloop:hm:T`, a hash with the stream's `epoch` and its last
//! `offset`; `wsloop:hs:T`, the stream, whose entry ids are `OFFSET-0` (fields: `h` the
//! record's header, `m` the template). Both expire two TTLs after the last message; a topic
//! without its hash (new, expired, or a Redis that lost its data) starts a new epoch, so an
//! offset is never given twice within one epoch.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use super::record::{self, KeptRecord};
use super::resp::{encode_command, parse, Value};
use super::Shared;
use crate::ids::ConnectionId;
use crate::server::context::Target;
use crate::server::history::{History, Mirrored, StreamPosition, Template};
use crate::server::mailbox::{Mail, Postbox};

/// KEYS: the hash, the stream. ARGV: the channel, an epoch for a new stream, the stream's
/// length, its TTL in ms, the time, the record's header, the template, the instance's id and
/// the append's number. An instance numbers its appends in the order it sends them and sends
/// again those a lost connection left unanswered; the hash keeps each instance's last
/// number (`seq:ID`), so one that was appended before is not appended twice (answer 0).
pub(super) const APPEND: &str = "\
    local seen = 'seq:' .. ARGV[8] \
    if tonumber(redis.call('HGET', KEYS[1], seen) or '0') >= tonumber(ARGV[9]) then \
      return 0 \
    end \
    local epoch = redis.call('HGET', KEYS[1], 'epoch') \
    if not epoch then \
      epoch = ARGV[2] \
      redis.call('DEL', KEYS[2]) \
      redis.call('HSET', KEYS[1], 'epoch', epoch) \
    end \
    redis.call('HSET', KEYS[1], seen, ARGV[9]) \
    local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1) \
    redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], offset .. '-0', \
      'h', ARGV[6], 'm', ARGV[7]) \
    redis.call('PEXPIRE', KEYS[1], ARGV[4]) \
    redis.call('PEXPIRE', KEYS[2], ARGV[4]) \
    redis.call('PUBLISH', ARGV[1], ARGV[6] .. epoch .. '\\n' .. offset .. '\\n' .. ARGV[7]) \
    return offset";

/// KEYS: the hash, the stream. ARGV: the copy's epoch, the copy's next offset, how many.
/// Answers nil (no stream), or the epoch, the last offset and the entries from the copy's next
/// (from the first kept, when the epochs differ).
const READ: &str = "\
    local epoch = redis.call('HGET', KEYS[1], 'epoch') \
    if not epoch then return false end \
    local last = redis.call('HGET', KEYS[1], 'offset') or '0' \
    local start = '-' \
    if epoch == ARGV[1] then start = ARGV[2] .. '-0' end \
    return {epoch, last, redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', ARGV[3])}";

/// Entries per read at most.
const PAGE: usize = 500;

/// The hash, the stream and the channel of `topic`.
pub(super) fn keys(prefix: &str, topic: &str) -> [String; 3] {
    [
        format!("{prefix}hm:{topic}"),
        format!("{prefix}hs:{topic}"),
        format!("{prefix}k:{topic}"),
    ]
}

/// A connection for commands, one at a time.
pub(super) struct Commands {
    stream: TcpStream,
    buffer: Vec<u8>,
    out: Vec<u8>,
}

impl Commands {
    pub(super) fn new(stream: TcpStream) -> Commands {
        Commands {
            stream,
            buffer: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Sends `args` and waits for the reply (each read bounded by the socket's timeout; a
    /// quiet Redis is waited for while `shared` runs).
    fn call(&mut self, shared: &Shared, args: &[&[u8]]) -> io::Result<Value> {
        self.out.clear();
        encode_command(&mut self.out, args);
        self.stream.write_all(&self.out)?;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some((value, used)) = parse(&self.buffer).map_err(io::Error::other)? {
                self.buffer.drain(..used);
                return match value {
                    Value::Error(said) => Err(io::Error::other(format!("Redis: {said}"))),
                    value => Ok(value),
                };
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if super::quiet(&e) && !shared.stopping() => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// What an instance does with a kept message Redis gave a position.
pub(super) struct Copy<'a> {
    pub(super) shared: &'a Shared,
    pub(super) history: &'a History,
    pub(super) postbox: &'a mut Postbox,
    pub(super) commands: &'a mut Commands,
}

impl Copy<'_> {
    /// Appends `record` (heard on `topic`'s channel from `from`) to the copy and delivers it;
    /// when messages before it are missing from the copy, reads them from Redis first.
    pub(super) fn heard(
        &mut self,
        topic: &str,
        from: &super::InstanceId,
        record: KeptRecord,
    ) -> io::Result<()> {
        let except = self.except(from, record.except);
        let Some(prepared) = record.template.render(&record.position) else {
            return Ok(());
        };
        match (self.history).mirror(topic, &record.position, record.at, prepared.clone()) {
            Mirrored::Appended => self.deliver(topic, except, prepared),
            Mirrored::Duplicate => {}
            Mirrored::Missing => self.sync(topic, true)?,
        }
        Ok(())
    }

    /// Who on this instance does not get a message: the publisher's choice, if it is ours.
    fn except(&self, from: &super::InstanceId, except: ConnectionId) -> ConnectionId {
        match *from == self.shared.id {
            true => except,
            false => ConnectionId::NOBODY,
        }
    }

    fn deliver(
        &mut self,
        topic: &str,
        except: ConnectionId,
        prepared: crate::protocol::outbound::Prepared,
    ) {
        deliver_to_loops(self.postbox, topic, except, prepared);
    }

    /// Brings every kept topic's copy up to Redis's streams; with `deliver`, what it appends
    /// goes to the subscribers too (they missed it while the bridge was away).
    pub(super) fn sync_all(&mut self, deliver: bool) -> io::Result<usize> {
        let pattern = format!("{}hm:*", self.shared.prefix);
        let mut cursor = b"0".to_vec();
        let mut topics = Vec::new();
        loop {
            let args: [&[u8]; 6] = [
                b"SCAN",
                &cursor,
                b"MATCH",
                pattern.as_bytes(),
                b"COUNT",
                b"1000",
            ];
            let reply = self.commands.call(self.shared, &args)?;
            let Value::Array(Some(parts)) = reply else {
                return Err(io::Error::other("SCAN: not an array"));
            };
            let [Value::Bulk(Some(next)), Value::Array(Some(keys))] =
                <[Value; 2]>::try_from(parts).map_err(|_| io::Error::other("SCAN: not 2 parts"))?
            else {
                return Err(io::Error::other("SCAN: unexpected reply"));
            };
            let start = pattern.len() - 1;
            for key in keys {
                if let Value::Bulk(Some(key)) = key {
                    if let Ok(topic) = String::from_utf8(key[start..].to_vec()) {
                        topics.push(topic);
                    }
                }
            }
            if next == b"0" {
                break;
            }
            cursor = next;
        }
        for topic in &topics {
            if self.history.keeps(topic) {
                self.sync(topic, deliver)?;
            }
        }
        // What Redis no longer has, the copy must not serve (it would answer for positions
        // the next publish gives out again under a new epoch).
        let count = topics.len();
        self.history.forget_all_but(&topics.into_iter().collect());
        Ok(count)
    }

    /// Brings `topic`'s copy up to its stream in Redis, page by page.
    pub(super) fn sync(&mut self, topic: &str, deliver: bool) -> io::Result<()> {
        let [hash, stream, _] = keys(&self.shared.prefix, topic);
        loop {
            let copy = self.history.position(topic);
            let next = (copy.offset + 1).to_string();
            let page = PAGE.min(self.history.per_topic()).to_string();
            let args: [&[u8]; 8] = [
                b"EVAL",
                READ.as_bytes(),
                b"2",
                hash.as_bytes(),
                stream.as_bytes(),
                copy.epoch.as_bytes(),
                next.as_bytes(),
                page.as_bytes(),
            ];
            let read = match self.commands.call(self.shared, &args)? {
                Value::Bulk(None) | Value::Array(None) => return Ok(()), // no stream in Redis
                Value::Array(Some(parts)) => read_page(parts)?,
                _ => return Err(io::Error::other("stream read: unexpected reply")),
            };
            let epoch: Arc<str> = read.epoch.into();
            let first = read.entries.first().map_or(read.last + 1, |e| e.0);
            if *epoch != *copy.epoch || first > copy.offset + 1 {
                // Another stream, or one whose messages the copy lacks are gone: start over.
                self.history.reset(topic, epoch.clone(), first);
            }
            let full = read.entries.len() >= PAGE.min(self.history.per_topic());
            let before = self.history.position(topic);
            for (offset, header, template) in read.entries {
                let Some((from, except, at)) = record::read_kept_header(&header) else {
                    continue;
                };
                let position = StreamPosition {
                    offset,
                    epoch: epoch.clone(),
                };
                let Some(prepared) = template.render(&position) else {
                    continue;
                };
                let except = self.except(&from, except);
                if self.history.mirror(topic, &position, at, prepared.clone()) == Mirrored::Appended
                    && deliver
                {
                    self.deliver(topic, except, prepared);
                }
            }
            if !full || self.history.position(topic) == before {
                return Ok(()); // all read (or nothing more this copy can take)
            }
        }
    }
}

/// Posts a kept message to `topic`'s subscribers on every loop (but `except`).
pub(super) fn deliver_to_loops(
    postbox: &mut Postbox,
    topic: &str,
    except: ConnectionId,
    prepared: crate::protocol::outbound::Prepared,
) {
    let target = Target::Topic {
        topic: Arc::from(topic),
        except,
    };
    let mail = Mail::Deliver(target, prepared);
    for other in postbox.others() {
        postbox.post(other, mail.clone());
    }
}

/// One read of a stream.
struct Page {
    epoch: String,
    last: u64,
    /// Offset, header, template.
    entries: Vec<(u64, Vec<u8>, Template)>,
}

fn read_page(parts: Vec<Value>) -> io::Result<Page> {
    let bad = || io::Error::other("stream read: unexpected reply");
    let [Value::Bulk(Some(epoch)), Value::Bulk(Some(last)), Value::Array(Some(entries))] =
        <[Value; 3]>::try_from(parts).map_err(|_| bad())?
    else {
        return Err(bad());
    };
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).map_err(|_| bad());
    let epoch = text(epoch)?;
    let last = text(last)?.parse().map_err(|_| bad())?;
    let mut read = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(Some(entry)) = entry else {
            return Err(bad());
        };
        let [Value::Bulk(Some(id)), Value::Array(Some(fields))] =
            <[Value; 2]>::try_from(entry).map_err(|_| bad())?
        else {
            return Err(bad());
        };
        let id = text(id)?;
        let offset = (id.strip_suffix("-0").and_then(|o| o.parse().ok())).ok_or_else(bad)?;
        let (mut header, mut template) = (None, None);
        let mut fields = fields.into_iter();
        while let (Some(Value::Bulk(Some(name))), Some(Value::Bulk(Some(value)))) =
            (fields.next(), fields.next())
        {
            match &name[..] {
                b"h" => header = Some(value),
                b"m" => template = Template::decode(&value),
                _ => {}
            }
        }
        if let (Some(header), Some(template)) = (header, template) {
            read.push((offset, header, template));
        }
    }
    Ok(Page {
        epoch,
        last,
        entries: read,
    })
}

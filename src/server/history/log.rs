//! The kept messages of every topic, in memory: each topic's stream is a run of consecutive
//! offsets under one epoch, bounded by count and age per topic and by bytes in all. Plain
//! data: time comes in as an argument (Unix milliseconds), so tests need no clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::{Kept, NotRecovered, StreamPosition};
use crate::protocol::outbound::Prepared;

/// The bounds of what is kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Messages per topic.
    pub(crate) per_topic: usize,
    /// How long a message is kept, in milliseconds.
    pub(crate) ttl_ms: u64,
    /// Bytes of messages in all topics.
    pub(crate) total_bytes: usize,
}

/// One topic's stream.
#[derive(Debug)]
struct Stream {
    epoch: Arc<str>,
    /// The offset the next message gets; the first is 1.
    next: u64,
    kept: VecDeque<Kept>,
    /// When the last message was appended.
    last_at: u64,
}

impl Stream {
    fn position(&self) -> StreamPosition {
        StreamPosition {
            offset: self.next - 1,
            epoch: self.epoch.clone(),
        }
    }

    /// Whether the message at `offset` is still kept.
    fn keeps(&self, offset: u64) -> bool {
        self.kept
            .front()
            .is_some_and(|first| first.offset <= offset)
            && offset < self.next
    }
}

/// Every topic's stream, and the order messages were appended in (for the byte bound and
/// expiry across topics).
#[derive(Debug, Default)]
pub(crate) struct Log {
    streams: HashMap<Arc<str>, Stream>,
    /// (topic, offset, appended at), oldest first; entries for messages a topic has already
    /// let go of are skipped, and dropped when they outnumber the kept ones.
    order: VecDeque<(Arc<str>, u64, u64)>,
    /// Messages kept, and their bytes.
    count: usize,
    bytes: usize,
}

/// What a page of history holds.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) messages: Vec<Kept>,
    /// The topic's latest position.
    pub(crate) position: StreamPosition,
}

/// What became of a message [`Log::mirror`] was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mirrored {
    /// It was the next: appended.
    Appended,
    /// The copy has it already.
    Duplicate,
    /// Messages before it (or its epoch's start) are missing from the copy.
    Missing,
}

/// A stream as a store gives it back at start.
#[cfg(feature = "sqlite")]
#[derive(Debug)]
pub(crate) struct Restored {
    pub(crate) topic: Arc<str>,
    pub(crate) epoch: Arc<str>,
    /// The offset its next message gets.
    pub(crate) next: u64,
    /// When its last message was appended.
    pub(crate) last_at: u64,
    /// Its newest messages, oldest first: consecutive offsets ending at `next - 1` (or none).
    pub(crate) kept: Vec<Kept>,
}

/// Where a stream stands, as a store records it.
#[cfg(feature = "sqlite")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) topic: Arc<str>,
    pub(crate) epoch: Arc<str>,
    pub(crate) next: u64,
    pub(crate) last_at: u64,
}

#[cfg(feature = "sqlite")]
impl Log {
    /// A log holding the streams a store kept. The append order across topics follows the
    /// messages' times (within a topic, their offsets: a clock that went back cannot reorder
    /// a stream).
    pub(crate) fn restore(streams: Vec<Restored>) -> Log {
        let mut log = Log::default();
        let mut order = Vec::new();
        for restored in streams {
            debug_assert!(restored
                .kept
                .last()
                .is_none_or(|last| last.offset + 1 == restored.next));
            let mut at = 0;
            for kept in &restored.kept {
                at = at.max(kept.at);
                order.push((at, restored.topic.clone(), kept.offset));
                log.count += 1;
                log.bytes += kept.message.frame_len();
            }
            let stream = Stream {
                epoch: restored.epoch,
                next: restored.next,
                kept: restored.kept.into(),
                last_at: restored.last_at,
            };
            log.streams.insert(restored.topic, stream);
        }
        order.sort_by_key(|(at, ..)| *at); // stable: a topic's own order stays
        log.order = (order.into_iter())
            .map(|(at, topic, offset)| (topic, offset, at))
            .collect();
        log
    }

    /// Where every stream stands.
    pub(crate) fn marks(&self) -> Vec<Mark> {
        (self.streams.iter())
            .map(|(topic, stream)| Mark {
                topic: topic.clone(),
                epoch: stream.epoch.clone(),
                next: stream.next,
                last_at: stream.last_at,
            })
            .collect()
    }
}

impl Log {
    /// The latest position of `topic`, if it has a stream.
    pub(crate) fn position(&self, topic: &str) -> Option<StreamPosition> {
        self.streams.get(topic).map(Stream::position)
    }

    /// Appends the message `make` builds from its position. A topic without a stream starts
    /// one with the epoch `new_epoch` gives.
    pub(crate) fn append(
        &mut self,
        topic: &str,
        now: u64,
        bounds: Bounds,
        new_epoch: impl FnOnce() -> Arc<str>,
        make: impl FnOnce(&StreamPosition) -> Prepared,
    ) -> (StreamPosition, Kept) {
        let (name, stream) = match self.streams.get_key_value(topic) {
            Some((name, _)) => (name.clone(), self.streams.get_mut(topic).unwrap()),
            None => {
                let name: Arc<str> = topic.into();
                let stream = Stream {
                    epoch: new_epoch(),
                    next: 1,
                    kept: VecDeque::new(),
                    last_at: now,
                };
                (name.clone(), self.streams.entry(name).or_insert(stream))
            }
        };
        let position = StreamPosition {
            offset: stream.next,
            epoch: stream.epoch.clone(),
        };
        let kept = Kept {
            offset: position.offset,
            at: now,
            message: make(&position),
        };
        self.push(name, kept.clone(), now, bounds);
        (position, kept)
    }

    /// Appends `kept`, the next message of `topic`'s stream (which exists), and applies the
    /// bounds.
    fn push(&mut self, name: Arc<str>, kept: Kept, now: u64, bounds: Bounds) {
        let stream = self.streams.get_mut(&name).expect("the stream exists");
        debug_assert_eq!(kept.offset, stream.next);
        let offset = kept.offset;
        stream.next += 1;
        stream.last_at = stream.last_at.max(kept.at);
        self.count += 1;
        self.bytes += kept.message.frame_len();
        stream.kept.push_back(kept);
        let mut dropped = 0;
        while stream.kept.len() > bounds.per_topic {
            let old = stream.kept.pop_front().expect("longer than the bound");
            dropped += old.message.frame_len();
            self.count -= 1;
        }
        self.bytes -= dropped;
        self.order.push_back((name, offset, now));
        self.expire(now, bounds);
        while self.bytes > bounds.total_bytes && self.drop_oldest() {}
        if self.order.len() > 2 * self.count + 1024 {
            let streams = &self.streams;
            self.order
                .retain(|(topic, offset, _)| streams.get(topic).is_some_and(|s| s.keeps(*offset)));
        }
    }

    /// With a cluster, the log is this instance's copy of the streams Redis orders: appends
    /// the message Redis placed at `offset` of `epoch`, if it is the next one of the copy.
    pub(crate) fn mirror(
        &mut self,
        topic: &str,
        at: &StreamPosition,
        published_at: u64,
        message: Prepared,
        now: u64,
        bounds: Bounds,
    ) -> Mirrored {
        let name = match self.streams.get_key_value(topic) {
            Some((_, stream)) if stream.epoch != at.epoch => return Mirrored::Missing,
            Some((_, stream)) if at.offset < stream.next => return Mirrored::Duplicate,
            Some((_, stream)) if at.offset > stream.next => return Mirrored::Missing,
            Some((name, _)) => name.clone(),
            None if at.offset != 1 => return Mirrored::Missing,
            None => {
                self.reset(topic, at.epoch.clone(), 1, now);
                self.streams.get_key_value(topic).expect("made").0.clone()
            }
        };
        let kept = Kept {
            offset: at.offset,
            at: published_at,
            message,
        };
        self.push(name, kept, now, bounds);
        Mirrored::Appended
    }

    /// Starts `topic`'s stream anew under `epoch`, its next message at `next`; what it kept
    /// goes.
    pub(crate) fn reset(&mut self, topic: &str, epoch: Arc<str>, next: u64, now: u64) {
        self.forget(topic);
        let stream = Stream {
            epoch,
            next,
            kept: VecDeque::new(),
            last_at: now,
        };
        self.streams.insert(topic.into(), stream);
    }

    /// Lets go of `topic`'s stream, as if it never had one.
    pub(crate) fn forget(&mut self, topic: &str) {
        if let Some(old) = self.streams.remove(topic) {
            self.count -= old.kept.len();
            self.bytes -= old
                .kept
                .iter()
                .map(|k| k.message.frame_len())
                .sum::<usize>();
            // Entries of the old stream must not stand for a new one's messages.
            self.order.retain(|(name, ..)| **name != *topic);
        }
    }

    /// The topics that have a stream.
    pub(crate) fn topics(&self) -> Vec<Arc<str>> {
        self.streams.keys().cloned().collect()
    }

    /// Lets go of messages older than the TTL, and of streams that kept nothing for two TTLs.
    pub(crate) fn expire(&mut self, now: u64, bounds: Bounds) {
        let horizon = now.saturating_sub(bounds.ttl_ms);
        while self.order.front().is_some_and(|(_, _, at)| *at < horizon) {
            self.drop_oldest();
        }
        if self.streams.len() > self.count {
            let forget = now.saturating_sub(2 * bounds.ttl_ms);
            self.streams
                .retain(|_, stream| !stream.kept.is_empty() || stream.last_at >= forget);
        }
    }

    /// Drops the oldest kept message of all topics; false when none is kept.
    fn drop_oldest(&mut self) -> bool {
        while let Some((topic, offset, _)) = self.order.pop_front() {
            let Some(stream) = self.streams.get_mut(&topic) else {
                continue;
            };
            if !stream.keeps(offset) {
                continue;
            }
            let old = stream.kept.pop_front().expect("kept");
            debug_assert_eq!(old.offset, offset);
            if stream.kept.is_empty() {
                stream.kept = VecDeque::new(); // an idle topic keeps no buffer
            }
            self.count -= 1;
            self.bytes -= old.message.frame_len();
            return true;
        }
        false
    }

    /// The messages of `topic` after `since` (all kept, when `None`), at most `limit`, oldest
    /// first; `limit` counts from the newest when `since` is `None`.
    pub(crate) fn read(
        &self,
        topic: &str,
        since: Option<&StreamPosition>,
        limit: usize,
        now: u64,
        bounds: Bounds,
    ) -> Result<Page, NotRecovered> {
        let horizon = now.saturating_sub(bounds.ttl_ms);
        let Some(stream) = self.streams.get(topic) else {
            return match since {
                None | Some(StreamPosition { offset: 0, .. }) => Ok(Page {
                    messages: Vec::new(),
                    position: StreamPosition::none(),
                }),
                Some(_) => Err(NotRecovered::OtherEpoch(StreamPosition::none())),
            };
        };
        let position = stream.position();
        let live = stream.kept.iter().filter(|kept| kept.at >= horizon);
        let messages = match since {
            None => {
                let live: Vec<&Kept> = live.collect();
                let skip = live.len().saturating_sub(limit);
                live[skip..].iter().map(|kept| (*kept).clone()).collect()
            }
            // Offset 0 is "nothing yet" in any epoch: a subscriber from before the stream began.
            Some(since) if since.offset > 0 && *since.epoch != *stream.epoch => {
                return Err(NotRecovered::OtherEpoch(position))
            }
            Some(since) if since.offset > position.offset => {
                return Err(NotRecovered::Ahead(position))
            }
            Some(since) => {
                let mut after = live
                    .skip_while(|kept| kept.offset <= since.offset)
                    .peekable();
                // The first message after `since` must still be here, or some were lost.
                let first = after.peek().map_or(stream.next, |kept| kept.offset);
                if first != since.offset + 1 {
                    return Err(NotRecovered::Evicted(position));
                }
                after.take(limit).cloned().collect()
            }
        };
        Ok(Page { messages, position })
    }

    /// Messages and bytes kept, in all topics.
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.count, self.bytes)
    }
}

#[cfg(test)]
impl Log {
    /// Entries in the append order, live or not.
    pub(crate) fn order_len(&self) -> usize {
        self.order.len()
    }
}

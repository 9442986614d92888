//! Topics that remember ([`HistoryOptions`]): each message published to a topic that keeps
//! history gets a [`StreamPosition`] (an offset, one more than the last, and the topic's
//! epoch), and a client that comes back with the last position it saw gets exactly what it
//! missed ([`Context::history`](crate::Context::history)), or is told it cannot
//! ([`NotRecovered`]).
//!
//! One history serves every loop of a server: a topic's order is decided under its lock, in
//! the loop that publishes. Kept messages are the frames that went out (shared, not copied),
//! so replaying them encodes nothing again.
//!
//! With [`HistoryOptions::sqlite`], it survives a restart: the memory log is still all that
//! reads and appends touch, and a thread of its own writes each kept message behind them to an
//! SQLite file ([`store`]) that the next start loads, with the same epochs and offsets.

mod cluster;
mod log;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod store;
mod template;

pub(crate) use cluster::Append;
pub(crate) use log::Mirrored;
pub(crate) use template::Template;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::protocol::outbound::{Message, Prepared};
use log::{Bounds, Log};

/// Where a message stands in its topic's stream: its `offset` (1 for the first message, one
/// more for each next; 0 before any) under the stream's `epoch`, which changes whenever the
/// stream's past is lost (a memory store restarted, a stream forgotten after a long silence),
/// so that a position is never mistaken for one of another stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamPosition {
    /// The message's offset in its stream.
    pub offset: u64,
    /// The stream's epoch.
    pub epoch: Arc<str>,
}

impl StreamPosition {
    /// The position of a topic that has no stream (nothing published, or all forgotten).
    pub fn none() -> StreamPosition {
        StreamPosition {
            offset: 0,
            epoch: "".into(),
        }
    }
}

impl fmt::Display for StreamPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.offset, self.epoch)
    }
}

/// Why a position could not be served; each carries the topic's current position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRecovered {
    /// The position is of another epoch: the stream it was in is gone.
    OtherEpoch(StreamPosition),
    /// Messages after the position are no longer kept (past the count, age or memory bound).
    Evicted(StreamPosition),
    /// The position is ahead of the stream: no such message was ever published.
    Ahead(StreamPosition),
    /// With a cluster whose Redis is unreachable: this instance has no copy of the stream
    /// (it started, or the stream was new, while Redis was away), so it cannot tell.
    Unavailable(StreamPosition),
}

impl NotRecovered {
    /// The topic's current position.
    pub fn position(&self) -> &StreamPosition {
        match self {
            NotRecovered::OtherEpoch(p)
            | NotRecovered::Evicted(p)
            | NotRecovered::Ahead(p)
            | NotRecovered::Unavailable(p) => p,
        }
    }

    /// A short reason, for a reply or a log line.
    pub fn reason(&self) -> &'static str {
        match self {
            NotRecovered::OtherEpoch(_) => "epoch changed",
            NotRecovered::Evicted(_) => "no longer kept",
            NotRecovered::Ahead(_) => "offset ahead of the stream",
            NotRecovered::Unavailable(_) => "history unavailable: Redis is unreachable",
        }
    }
}

/// A message a topic kept.
#[derive(Debug, Clone)]
pub struct Kept {
    offset: u64,
    /// When it was published, in Unix milliseconds.
    at: u64,
    message: Prepared,
}

impl Kept {
    /// Its offset in the topic's stream.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// When it was published, in milliseconds since the Unix epoch.
    pub fn timestamp_ms(&self) -> u64 {
        self.at
    }

    /// The message as it was published.
    pub fn message(&self) -> Message<'_> {
        self.message.message()
    }

    /// The message, framed once, as every receiver shares it.
    pub(crate) fn prepared(&self) -> &Prepared {
        &self.message
    }
}

/// What [`Context::history`](crate::Context::history) found: kept messages, oldest first, and
/// the topic's latest position.
#[derive(Debug)]
pub struct HistoryPage {
    /// The messages, oldest first.
    pub messages: Vec<Kept>,
    /// The topic's latest position (offset 0 when it has no stream).
    pub position: StreamPosition,
}

impl HistoryPage {
    /// Whether messages after this page are kept too (a page stops at its limit).
    pub fn has_more(&self) -> bool {
        self.messages
            .last()
            .is_some_and(|last| last.offset < self.position.offset)
    }
}

/// Which topics keep history, how much, and where (see [`ServerBuilder::history`](crate::ServerBuilder::history)).
#[derive(Clone)]
pub struct HistoryOptions {
    pub(crate) per_topic: usize,
    pub(crate) ttl: Duration,
    pub(crate) memory: usize,
    pub(crate) topics: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    /// The SQLite file it is also written to, if any.
    #[cfg(feature = "sqlite")]
    pub(crate) sqlite: Option<std::path::PathBuf>,
}

impl fmt::Debug for HistoryOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryOptions")
            .field("per_topic", &self.per_topic)
            .field("ttl", &self.ttl)
            .field("memory", &self.memory)
            .field("store", &self.store_name())
            .finish_non_exhaustive()
    }
}

impl Default for HistoryOptions {
    /// Every topic keeps its last 1,000 messages for 10 minutes, 64 MiB in all.
    fn default() -> HistoryOptions {
        HistoryOptions {
            per_topic: 1000,
            ttl: Duration::from_secs(600),
            memory: 64 << 20,
            topics: Arc::new(|_| true),
            #[cfg(feature = "sqlite")]
            sqlite: None,
        }
    }
}

impl HistoryOptions {
    /// How many messages each topic keeps (default 1,000; at least 1).
    pub fn size(mut self, messages: usize) -> Self {
        self.per_topic = messages;
        self
    }

    /// How long a message is kept (default 10 minutes).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The bytes all topics' messages may take together; past it the oldest go first
    /// (default 64 MiB).
    pub fn memory(mut self, bytes: usize) -> Self {
        self.memory = bytes;
        self
    }

    /// Which topics keep history (default: all).
    pub fn topics(mut self, keeps: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.topics = Arc::new(keeps);
        self
    }

    /// Keeps history in the SQLite file at `path` too (created if new), so that it survives a
    /// restart: the next server on the file serves recovery with the same epochs and offsets
    /// (each topic's last [`size`](Self::size) messages younger than the
    /// [`ttl`](Self::ttl), within the [`memory`](Self::memory) bound), and a client that comes
    /// back after the restart gets exactly what it missed.
    ///
    /// Reads and appends still touch only memory: a thread of the store's own writes each
    /// kept message behind them, in batches, so the event loop never waits for the disk. A
    /// disk that falls behind or fails is logged; messages go on live and recovery is served
    /// from memory, but what was not written is not there after a restart. A clean shutdown
    /// writes what is queued first. After an unclean one (a crash, a kill), whose last
    /// messages may never have reached the file, every stream goes on under a new epoch.
    ///
    /// The file is the server's alone while it runs: [`ServerBuilder::build`](crate::ServerBuilder::build)
    /// refuses one that another process has open, or that is not a wsloop history file
    /// ([`Error::HistoryStore`](crate::Error::HistoryStore)).
    #[cfg(feature = "sqlite")]
    pub fn sqlite(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.sqlite = Some(path.into());
        self
    }

    /// Where history is kept, in words: `memory`, or `sqlite:PATH`.
    fn store_name(&self) -> String {
        #[cfg(feature = "sqlite")]
        if let Some(path) = &self.sqlite {
            return format!("sqlite:{}", path.display());
        }
        "memory".into()
    }

    /// Why these options cannot work, if they cannot.
    pub(crate) fn invalid(&self) -> Option<String> {
        if self.per_topic == 0 {
            return Some("history size must be at least 1 message".into());
        }
        if self.ttl < Duration::from_secs(1) {
            return Some(format!("history TTL ({:?}) must be at least 1s", self.ttl));
        }
        if self.memory < 64 << 10 {
            return Some("history memory must be at least 64KiB".into());
        }
        None
    }

    fn bounds(&self) -> Bounds {
        Bounds {
            per_topic: self.per_topic,
            ttl_ms: self.ttl.as_millis() as u64,
            total_bytes: self.memory,
        }
    }
}

/// The history of a server (see the module docs).
pub(crate) struct History {
    options: HistoryOptions,
    log: Mutex<Log>,
    /// Reads with a position: served, then refused by [`NotRecovered::label`] order.
    recoveries: [AtomicU64; 5],
    /// The file it is written to, with [`HistoryOptions::sqlite`].
    #[cfg(feature = "sqlite")]
    store: Option<store::Store>,
    /// With a cluster: Redis orders the topics ([`cluster`]).
    cluster: cluster::Cell,
}

/// What `/metrics` shows of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistoryStats {
    pub(crate) messages: usize,
    pub(crate) bytes: usize,
    /// Reads with a position, by outcome ([`OUTCOMES`]).
    pub(crate) recoveries: [u64; 5],
    /// With a cluster: kept messages Redis could not take.
    pub(crate) unkept: Option<u64>,
    /// With a store: what it wrote.
    pub(crate) store: Option<StoreStats>,
}

/// What `/metrics` shows of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct StoreStats {
    /// Messages written to the file.
    pub(crate) written: u64,
    /// Messages not queued for the file (the queue was full).
    pub(crate) dropped: u64,
    /// Messages whose write failed (disk full, I/O error).
    pub(crate) failed: u64,
    /// Committed batches by duration: per bucket of [`WRITE_BUCKETS`], then `+Inf`.
    pub(crate) batches: [u64; WRITE_BUCKETS.len() + 1],
    /// The sum of their durations, in nanoseconds.
    pub(crate) batch_nanos: u64,
}

/// Upper bounds of the store's batch-write histogram's buckets, in seconds (`+Inf` implied).
pub(crate) const WRITE_BUCKETS: [f64; 10] = [
    0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0,
];

/// The outcomes of a read with a position, as `/metrics` labels them.
pub(crate) const OUTCOMES: [&str; 5] = [
    "recovered",
    "other_epoch",
    "evicted",
    "ahead",
    "unavailable",
];

impl fmt::Debug for History {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A new epoch: 8 random hexadecimal digits.
fn new_epoch() -> Arc<str> {
    let mut bytes = [0u8; 4];
    if getrandom::fill(&mut bytes).is_err() {
        bytes = (unix_ms() as u32).to_be_bytes(); // still differs from one start to the next
    }
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into()
}

impl History {
    /// A history in memory only (whatever `options` say of a store).
    pub(crate) fn new(options: HistoryOptions) -> History {
        History {
            options,
            log: Mutex::new(Log::default()),
            recoveries: Default::default(),
            #[cfg(feature = "sqlite")]
            store: None,
            cluster: Default::default(),
        }
    }

    /// The history `options` ask for: with a store, what it kept is loaded and its writer
    /// started. An error names the file and says why it cannot be used, in one line.
    pub(crate) fn open(options: HistoryOptions) -> Result<History, crate::Error> {
        #[cfg(feature = "sqlite")]
        if let Some(path) = options.sqlite.clone() {
            let (store, log) = store::Store::open(&path, options.bounds(), &mut new_epoch)
                .map_err(|reason| crate::Error::HistoryStore { path, reason })?;
            return Ok(History {
                options,
                log: Mutex::new(log),
                recoveries: Default::default(),
                store: Some(store),
                cluster: Default::default(),
            });
        }
        Ok(History::new(options))
    }

    /// Lets the store write what is queued and where every stream stands, and close its file
    /// cleanly (bounded in time); call once the loops are done. Without a store, nothing.
    pub(crate) fn close(&self) {
        #[cfg(feature = "sqlite")]
        if let Some(store) = &self.store {
            let marks = self.log().marks();
            store.close(marks);
        }
    }

    /// A panic elsewhere while the lock was held cannot leave the log invalid.
    fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `topic` keeps history.
    pub(crate) fn keeps(&self, topic: &str) -> bool {
        (self.options.topics)(topic)
    }

    /// Appends the message `make` builds from its position to `topic`'s stream.
    pub(crate) fn append(
        &self,
        topic: &str,
        make: impl FnOnce(&StreamPosition) -> Prepared,
    ) -> (StreamPosition, Prepared) {
        let bounds = self.options.bounds();
        let mut log = self.log();
        let (position, kept) = log.append(topic, unix_ms(), bounds, new_epoch, make);
        #[cfg(feature = "sqlite")]
        if let Some(store) = &self.store {
            // Under the lock: the writer gets every topic's messages in their order.
            store.push(sqlite::Row {
                topic: topic.into(),
                epoch: position.epoch.clone(),
                offset: position.offset,
                at: kept.at,
                message: kept.message.clone(),
            });
        }
        drop(log);
        (position, kept.message)
    }

    /// `topic`'s messages after `since` (see [`Log::read`]).
    pub(crate) fn read(
        &self,
        topic: &str,
        since: Option<&StreamPosition>,
        limit: usize,
    ) -> Result<HistoryPage, NotRecovered> {
        let page = self
            .log()
            .read(topic, since, limit, unix_ms(), self.options.bounds());
        // No copy of the stream here and no Redis to ask: say so, neither "epoch changed" nor
        // (from offset 0) "nothing missed".
        let cannot_tell = || self.cluster().is_some_and(|c| !c.is_up());
        let page = match page {
            Err(NotRecovered::OtherEpoch(at)) if at.epoch.is_empty() && cannot_tell() => {
                Err(NotRecovered::Unavailable(at))
            }
            Ok(page) if since.is_some() && page.position.epoch.is_empty() && cannot_tell() => {
                Err(NotRecovered::Unavailable(page.position))
            }
            page => page,
        };
        if since.is_some() {
            let outcome = match &page {
                Ok(_) => 0,
                Err(NotRecovered::OtherEpoch(_)) => 1,
                Err(NotRecovered::Evicted(_)) => 2,
                Err(NotRecovered::Ahead(_)) => 3,
                Err(NotRecovered::Unavailable(_)) => 4,
            };
            self.recoveries[outcome].fetch_add(1, Ordering::Relaxed);
        }
        let page = page?;
        Ok(HistoryPage {
            messages: page.messages,
            position: page.position,
        })
    }

    /// `topic`'s latest position.
    pub(crate) fn position(&self, topic: &str) -> StreamPosition {
        self.log()
            .position(topic)
            .unwrap_or_else(StreamPosition::none)
    }

    /// Lets go of what expired; called about once a second.
    pub(crate) fn expire(&self) {
        self.log().expire(unix_ms(), self.options.bounds());
    }

    /// What `/metrics` shows.
    pub(crate) fn stats(&self) -> HistoryStats {
        let (messages, bytes) = self.log().size();
        HistoryStats {
            messages,
            bytes,
            recoveries: self
                .recoveries
                .each_ref()
                .map(|n| n.load(Ordering::Relaxed)),
            unkept: self.cluster().is_some().then(|| self.unkept()),
            #[cfg(feature = "sqlite")]
            store: self.store.as_ref().map(store::Store::stats),
            #[cfg(not(feature = "sqlite"))]
            store: None,
        }
    }
}

impl Drop for History {
    /// A server dropped without running (or a history of a test) closes its file too.
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod sqlite_tests;
#[cfg(test)]
mod tests;

//! With a cluster (`--cluster`), Redis orders every kept topic: a publish goes to Redis, whose
//! script gives it the topic's next offset, appends it to the topic's stream and publishes it
//! with its position, and every instance, the publishing one too, appends it to its copy (the
//! memory [`Log`](super::log::Log)) and delivers it. Reads are served from the copy, which
//! the bridge fills from Redis's streams when it connects and whenever a gap shows
//! ([`Mirrored::Missing`]). The bridge lives in `server::cluster`; this is the history's side.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::log::Mirrored;
use super::template::{Marker, Template};
use super::{new_epoch, unix_ms, History, StreamPosition};
use crate::ids::ConnectionId;
use crate::protocol::outbound::Prepared;

/// A kept message on its way to Redis.
#[derive(Debug)]
pub(crate) struct Append {
    pub(crate) topic: Arc<str>,
    /// Who on this instance does not get it (the publisher, for `Publish::ToOthers`).
    pub(crate) except: ConnectionId,
    pub(crate) template: Template,
    /// The epoch the topic's stream takes if Redis has none for it.
    pub(crate) epoch: Arc<str>,
    /// When it was published, in Unix milliseconds.
    pub(crate) at: u64,
}

/// Hands an [`Append`] to the bridge; false if its queue is full.
type AppendSink = Box<dyn Fn(Append) -> bool + Send + Sync>;

/// What the history holds for the cluster.
pub(crate) struct Shared {
    sink: AppendSink,
    /// Whether the bridge is connected to Redis (and has filled the copy).
    up: AtomicBool,
    marker: Marker,
    /// Kept messages that went out on this instance only, unkept (Redis unreachable).
    unkept: AtomicU64,
    /// The outage's first unkept message was logged.
    warned: AtomicBool,
}

impl History {
    /// Makes Redis order this history's topics; `sink` reaches the bridge.
    pub(crate) fn join_cluster(&self, sink: AppendSink) {
        let shared = Shared {
            sink,
            up: AtomicBool::new(false),
            marker: Marker::new(),
            unkept: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        };
        if self.cluster.set(shared).is_err() {
            unreachable!("one cluster per history");
        }
    }

    pub(crate) fn cluster(&self) -> Option<&Shared> {
        self.cluster.get()
    }

    /// The bridge connected to Redis and filled the copy (`true`), or lost Redis.
    pub(crate) fn set_cluster_up(&self, up: bool) {
        if let Some(shared) = self.cluster.get() {
            shared.up.store(up, Ordering::Release);
            if up && shared.warned.swap(false, Ordering::Relaxed) {
                log::info!(
                    "history: Redis is back: kept topics are kept again ({} messages went out \
                     unkept so far)",
                    shared.unkept.load(Ordering::Relaxed)
                );
            }
        }
    }

    /// Appends `message` (made with this position, see [`Shared::marker`]) to `topic`'s stream
    /// in Redis; `false` when Redis is unreachable, and the caller delivers it on this instance
    /// only (counted; see the README's guarantees).
    pub(crate) fn append_shared(
        &self,
        topic: &str,
        except: ConnectionId,
        template: Template,
    ) -> bool {
        let Some(shared) = self.cluster.get() else {
            return false;
        };
        let sent = shared.up.load(Ordering::Acquire)
            && (shared.sink)(Append {
                topic: topic.into(),
                except,
                template,
                epoch: new_epoch(),
                at: unix_ms(),
            });
        if !sent {
            self.count_unkept();
        }
        sent
    }

    /// One more kept message that went to this instance's subscribers only (or nowhere: Redis
    /// refused it); the first of each outage is logged.
    pub(crate) fn count_unkept(&self) {
        let Some(shared) = self.cluster.get() else {
            return;
        };
        shared.unkept.fetch_add(1, Ordering::Relaxed);
        if !shared.warned.swap(true, Ordering::Relaxed) {
            log::warn!(
                "history: Redis is unreachable: messages on kept topics go to this instance's \
                 subscribers only, and are not kept (wsloop_history_unkept_total)"
            );
        }
    }

    /// Appends to this instance's copy a message Redis placed at `at`.
    pub(crate) fn mirror(
        &self,
        topic: &str,
        at: &StreamPosition,
        published_at: u64,
        message: Prepared,
    ) -> Mirrored {
        let bounds = self.options.bounds();
        self.log()
            .mirror(topic, at, published_at, message, unix_ms(), bounds)
    }

    /// Starts `topic`'s copy anew under `epoch`, its next message at `next`.
    pub(crate) fn reset(&self, topic: &str, epoch: Arc<str>, next: u64) {
        self.log().reset(topic, epoch, next, unix_ms());
    }

    /// Lets go of the copy of every topic but those in `kept` (the streams Redis holds): a
    /// Redis that lost its data, or let a stream expire, has no position for them any more.
    pub(crate) fn forget_all_but(&self, kept: &std::collections::HashSet<String>) {
        let mut log = self.log();
        for topic in log.topics() {
            if !kept.contains(&*topic) {
                log.forget(&topic);
            }
        }
    }

    /// How many messages each topic keeps.
    pub(crate) fn per_topic(&self) -> usize {
        self.options.per_topic
    }

    /// How long a topic's stream outlives its last message in Redis (two TTLs, as in memory).
    pub(crate) fn stream_ttl_ms(&self) -> u64 {
        2 * self.options.ttl.as_millis() as u64
    }

    /// Kept messages that went to this instance's subscribers only.
    pub(crate) fn unkept(&self) -> u64 {
        self.cluster
            .get()
            .map_or(0, |shared| shared.unkept.load(Ordering::Relaxed))
    }
}

impl Shared {
    /// Whether Redis is reachable, as far as the bridge knows.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The position to make a kept message's text with (see `template`).
    pub(crate) fn marker(&self) -> &Marker {
        &self.marker
    }
}

/// Declared here so that `History` can name it.
pub(crate) type Cell = OnceLock<Shared>;

//! The cluster bridge (`ServerBuilder::cluster`, `--cluster redis://HOST:PORT[/DB]`): several
//! wsloop instances behind a load balancer share topics, route broadcasts and the directory
//! of claimed names through Redis.
//!
//! The bridge runs on its own threads with blocking sockets, so no event loop ever waits on
//! Redis: loops hand it what their handlers published and claimed (a bounded channel: past
//! [`OUTBOX_CAPACITY`] waiting messages, messages for other instances are dropped and counted,
//! never the server's memory), and it posts what other instances published, and Redis's
//! answers to claims, to the loops' mailboxes.
//!
//! - Channels: a topic `T` is the Redis channel `wsloop:t:T`; a broadcast to a route's path `P`
//!   is `wsloop:r:P`; the directory's news is `wsloop:d`. The bridge subscribes with one
//!   `PSUBSCRIBE wsloop:*` and drops what no local client listens to. With a database other
//!   than 0, `wsloop/DB:` replaces `wsloop:` (pub/sub ignores databases; instances on
//!   different databases stay apart).
//! - Each message on Redis starts with the publishing instance's random id and its kind (text,
//!   binary, or directory news); an instance skips its own, which its loops have already
//!   delivered: every receiver gets a message once.
//! - One publisher connection, so one instance's messages reach the others in the order it
//!   published them; commands are pipelined, as many as wait, in one write.
//! - Claims (`directory`): a key `K` is the Redis key `wsloop:n:K`, set with `NX` and the
//!   cluster TTL to the claiming instance's id. Every TTL/3 the bridge renews its keys (or
//!   claims them again after an outage) and tells the other instances everything it holds;
//!   a new instance says hello and hears from all the others at once.
//! - Redis down or unreachable: local delivery goes on untouched; the bridge logs the loss once,
//!   reconnects with backoff (100 ms doubling to 2 s), subscribes again, and cross-instance
//!   delivery resumes. Delivery across instances is at most once.

mod publish;
mod receive;
mod record;
mod resp;
mod streams;

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{info, warn};

use super::context::Target;
use super::directory::Directory;
use super::history::{Append, History};
use super::mailbox::Inbox;
use super::presence::{Presence, PresenceNews, PresenceSink};
use crate::app::Router;
use crate::ids::ConnectionId;
use crate::protocol::outbound::Prepared;
use resp::encode_command;

/// Messages waiting for Redis at most; more are dropped (and counted).
pub(crate) const OUTBOX_CAPACITY: usize = 64 * 1024;
/// How long an instance's claims outlive it by default (`--cluster-ttl`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(15);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// How often blocked threads look up to see whether the server is stopping.
const TICK: Duration = Duration::from_millis(200);
/// How long a server's start waits for the bridge to read the history from Redis.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// An instance's random id, in front of everything it publishes and in every key it claims.
pub(crate) use super::directory::InstanceId;
use super::directory::{News, NewsSink};

/// Where Redis is: `redis://HOST:PORT[/DB]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterUrl {
    addr: String,
    db: u32,
}

impl ClusterUrl {
    /// Parses `redis://HOST:PORT[/DB]` (the port defaults to 6379, the database to 0).
    pub fn parse(url: &str) -> Result<ClusterUrl, String> {
        let usage = || format!("{url:?} is not redis://HOST:PORT[/DB]");
        let rest = url.strip_prefix("redis://").ok_or_else(usage)?;
        let (host_port, db) = match rest.split_once('/') {
            Some((hp, "")) => (hp, 0),
            Some((hp, db)) => (hp, db.parse().map_err(|_| usage())?),
            None => (rest, 0),
        };
        if host_port.is_empty() || host_port.contains('@') {
            return Err(usage());
        }
        let addr = if host_port
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host_port.to_string()
        } else {
            format!("{host_port}:6379")
        };
        Ok(ClusterUrl { addr, db })
    }

    /// What every channel and key of this cluster starts with.
    fn prefix(&self) -> String {
        match self.db {
            0 => "wsloop:".into(),
            db => format!("wsloop/{db}:"),
        }
    }
}

/// What loops (and the bridge's own threads) hand the publisher.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A message for other instances' subscribers.
    Publish { channel: String, message: Prepared },
    /// Ask Redis whether connection `id` may hold `key`.
    Claim { key: String, id: ConnectionId },
    /// Tell other instances the value of a key this instance holds.
    Announce { key: String },
    /// This instance let go of `key`.
    Release { key: String },
    /// Another instance said hello: tell everyone what this instance holds.
    Snapshot,
    /// A message for a kept topic: Redis orders it (see `streams`).
    Append(Append),
    /// A join or leave on a channel that keeps presence.
    Presence(PresenceNews),
    /// Close connections on every instance (see `record::News::Disconnect`).
    Disconnect {
        user: String,
        instance: String,
        connection: u64,
        code: u16,
        reason: String,
    },
}

impl From<News> for Outgoing {
    fn from(news: News) -> Outgoing {
        match news {
            News::Claim { key, id } => Outgoing::Claim { key, id },
            News::Announce { key } => Outgoing::Announce { key },
            News::Release { key } => Outgoing::Release { key },
        }
    }
}

/// How often an instance says it is alive.
pub(crate) const LIVENESS: Duration = Duration::from_secs(1);
/// How long after its last word an instance is taken for dead: its names can be claimed
/// again, its presence is forgotten.
pub(crate) const DEAD_AFTER: Duration = Duration::from_secs(3);

/// A loop's end of the bridge.
pub(crate) struct ClusterLink {
    sender: SyncSender<Outgoing>,
    dropped: Arc<AtomicU64>,
    prefix: Arc<str>,
    instance: Arc<str>,
}

impl ClusterLink {
    /// Hands other instances the part of a delivery that concerns them (topics and route
    /// broadcasts); `router` names the routes.
    pub(crate) fn forward(&self, target: &Target, prepared: &Prepared, router: &Router) {
        let prefix = &self.prefix;
        let channel = match target {
            Target::Topic { topic, .. } => format!("{prefix}t:{topic}"),
            Target::RouteExcept { route, .. } => {
                format!("{prefix}r:{}", router.routes[*route].path)
            }
            Target::One(_) | Target::Many(_) | Target::TopicHere { .. } => return,
        };
        self.send(channel, prepared);
    }

    /// Hands other instances a message published to `topic`.
    pub(crate) fn forward_topic(&self, topic: &str, prepared: &Prepared) {
        self.send(format!("{}t:{topic}", self.prefix), prepared);
    }

    fn send(&self, channel: String, prepared: &Prepared) {
        let message = prepared.clone();
        match self.sender.try_send(Outgoing::Publish { channel, message }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    warn!("cluster: the queue to Redis is full; messages for other instances are dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {} // the bridge has stopped: so is the server
        }
    }

    /// Asks every other instance to close connections: `user`'s (if not empty), or
    /// `connection` of `instance`.
    pub(crate) fn disconnect(
        &self,
        user: &str,
        instance: &str,
        connection: u64,
        code: u16,
        reason: &str,
    ) {
        let what = Outgoing::Disconnect {
            user: user.to_string(),
            instance: instance.to_string(),
            connection,
            code,
            reason: reason.to_string(),
        };
        if self.sender.try_send(what).is_err() {
            warn!(
                "cluster: the queue to Redis is full; a disconnect did not reach other instances"
            );
        }
    }

    /// This instance's id in hex.
    pub(crate) fn instance(&self) -> &str {
        &self.instance
    }

    /// The count of messages for other instances dropped, for `/metrics`.
    pub(crate) fn dropped(&self) -> Arc<AtomicU64> {
        self.dropped.clone()
    }
}

/// The bridge: its threads stop when it is stopped or dropped.
pub(crate) struct Bridge {
    sender: SyncSender<Outgoing>,
    dropped: Arc<AtomicU64>,
    prefix: Arc<str>,
    instance: Arc<str>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Bridge {
    /// Starts the bridge to `url` for a server whose loops' inboxes are `inboxes`, whose
    /// routes are `paths`, whose claims live `ttl` past their instance, and whose kept topics
    /// (if `history`) Redis orders. Returns once the history has been read from Redis, or
    /// Redis could not be reached (at most [`READY_TIMEOUT`]), so that the first clients find
    /// what was kept.
    pub(crate) fn start(
        url: ClusterUrl,
        ttl: Duration,
        inboxes: Arc<[Inbox]>,
        paths: Vec<String>,
        directory: Arc<Directory>,
        history: Option<Arc<History>>,
        presence: Option<Arc<Presence>>,
    ) -> io::Result<Bridge> {
        let (sender, outgoing) = std::sync::mpsc::sync_channel(OUTBOX_CAPACITY);
        let mut id = InstanceId::default();
        getrandom::fill(&mut id).map_err(|e| io::Error::other(e.to_string()))?;
        let stopping = Arc::new(AtomicBool::new(false));
        let prefix: Arc<str> = url.prefix().into();
        let queue = sender.clone();
        let news: NewsSink = Box::new(move |news| queue.try_send(Outgoing::from(news)).is_ok());
        directory.join_cluster(news, ttl);
        if let Some(history) = &history {
            let queue = sender.clone();
            history.join_cluster(Box::new(move |append| {
                queue.try_send(Outgoing::Append(append)).is_ok()
            }));
        }
        let id_hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        if let Some(presence) = &presence {
            let queue = sender.clone();
            let news: PresenceSink =
                Box::new(move |news| queue.try_send(Outgoing::Presence(news)).is_ok());
            presence.join_cluster(news, &id_hex);
        }
        let (ready, started) = std::sync::mpsc::sync_channel(1);
        let shared = Arc::new(Shared {
            url,
            prefix: prefix.clone(),
            id,
            ttl,
            paths,
            stopping: stopping.clone(),
            inboxes,
            directory,
            sender: sender.clone(),
            history,
            synced: AtomicBool::new(false),
            id_hex: id_hex.clone(),
            presence,
            heard: Mutex::default(),
            appends: AtomicU64::new(0),
            resend: Mutex::default(),
            ready: Mutex::new(Some(ready)),
        });
        let thread = std::thread::Builder::new()
            .name("wsloop-cluster".into())
            .spawn(move || run(&shared, &outgoing))?;
        let _ = started.recv_timeout(READY_TIMEOUT);
        Ok(Bridge {
            sender,
            dropped: Arc::new(AtomicU64::new(0)),
            prefix,
            instance: id_hex.into(),
            stopping,
            thread: Some(thread),
        })
    }

    /// A link for one loop.
    pub(crate) fn link(&self) -> ClusterLink {
        ClusterLink {
            sender: self.sender.clone(),
            dropped: self.dropped.clone(),
            prefix: self.prefix.clone(),
            instance: self.instance.clone(),
        }
    }

    /// Once every loop is done: sends what is still queued (the releases of the names the
    /// closing connections held), and waits for the bridge's threads.
    pub(crate) fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stopping.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Bridge {
    /// A server built and never run stops its bridge too.
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// What the bridge's threads share.
struct Shared {
    url: ClusterUrl,
    prefix: Arc<str>,
    /// This instance's id, in front of everything it publishes.
    id: InstanceId,
    ttl: Duration,
    paths: Vec<String>,
    stopping: Arc<AtomicBool>,
    inboxes: Arc<[Inbox]>,
    directory: Arc<Directory>,
    /// For the reading threads to queue what they make the publisher say.
    sender: SyncSender<Outgoing>,
    /// The history whose kept topics Redis orders, if topics keep any.
    history: Option<Arc<History>>,
    /// The history was read from Redis once.
    synced: AtomicBool,
    /// `id` in hex, as the append script records it.
    id_hex: String,
    /// Appends numbered so far (see `streams::APPEND`).
    appends: AtomicU64,
    /// Appends a lost connection left unanswered, for the next one to send first.
    resend: Mutex<VecDeque<(u64, Append)>>,
    /// Tells `Bridge::start` the bridge is ready (or Redis unreachable), once.
    ready: Mutex<Option<SyncSender<()>>>,
    /// Who subscribes to the topics that keep presence, if any do.
    presence: Option<Arc<Presence>>,
    /// When each other instance was last heard from (any message).
    heard: Mutex<HashMap<InstanceId, Instant>>,
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Another instance said something: it is alive.
    fn heard_from(&self, instance: InstanceId) {
        let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
        heard.insert(instance, Instant::now());
    }

    /// Forgets the instances not heard from for [`DEAD_AFTER`]: their names are free and
    /// their presence gone, on this instance at once (Redis frees their keys for claims as
    /// their liveness keys expire).
    fn bury_the_quiet(&self) {
        let now = Instant::now();
        let dead: Vec<InstanceId> = {
            let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
            let dead = (heard.iter())
                .filter(|(_, &at)| now.duration_since(at) >= DEAD_AFTER)
                .map(|(&id, _)| id)
                .collect();
            heard.retain(|_, at| now.duration_since(*at) < DEAD_AFTER);
            dead
        };
        for instance in dead {
            let hex: String = instance.iter().map(|b| format!("{b:02x}")).collect();
            info!("cluster: instance {hex} went quiet: its names and presence are let go");
            self.directory.forget_instance(&instance);
            if let Some(presence) = &self.presence {
                presence.forget(&instance);
            }
        }
    }

    /// The first connection is ready, or failed: the server may start.
    fn ready(&self) {
        if let Some(ready) = self.ready.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = ready.try_send(());
        }
    }
}

/// Connects, bridges until the connection fails, and again with backoff, until the server
/// stops.
fn run(shared: &Arc<Shared>, outgoing: &Receiver<Outgoing>) {
    let mut backoff = FIRST_BACKOFF;
    let mut was_up = false;
    let mut failures = 0u32;
    while !shared.stopping() {
        match bridge(shared, outgoing, &mut was_up) {
            Ok(()) => return, // stopping
            // The server stopping ends the connections too: not an outage.
            Err(_) if shared.stopping() => return,
            Err(e) => {
                shared.ready();
                if was_up || failures == 0 {
                    warn!(
                        "cluster: Redis at {} unreachable ({e}); local delivery goes on, retrying",
                        shared.url.addr
                    );
                }
                if was_up {
                    backoff = FIRST_BACKOFF;
                }
                was_up = false;
                failures += 1;
            }
        }
        let mut slept = Duration::ZERO;
        while slept < backoff && !shared.stopping() {
            std::thread::sleep(TICK.min(backoff - slept));
            slept += TICK;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// What the publisher expects Redis to answer, in the order it sent the commands.
type Expected = Arc<Mutex<VecDeque<publish::Expect>>>;

/// One connected stretch: a subscriber connection read on its own thread, and a publisher
/// connection written here whose replies another thread reads. Returns `Ok` when the server
/// stops, `Err` when Redis goes away.
fn bridge(
    shared: &Arc<Shared>,
    outgoing: &Receiver<Outgoing>,
    was_up: &mut bool,
) -> io::Result<()> {
    let mut publisher = connect(&shared.url)?;
    let mut subscriber = connect(&shared.url)?;
    let commands = streams::Commands::new(connect(&shared.url)?);
    let mut command = Vec::new();
    let pattern = format!("{}*", shared.prefix);
    encode_command(&mut command, &[b"PSUBSCRIBE", pattern.as_bytes()]);
    subscriber.write_all(&command)?;
    let failed = Arc::new(AtomicBool::new(false));
    let expected = Expected::default();
    let reader = {
        let (shared, failed) = (shared.clone(), failed.clone());
        std::thread::Builder::new()
            .name("wsloop-cluster-sub".into())
            .spawn(move || {
                if let Err(e) = receive::pushes(&shared, subscriber, commands, &failed) {
                    if !failed.load(Ordering::Acquire) {
                        warn!("cluster: subscriber connection: {e}");
                    }
                }
                failed.store(true, Ordering::Release);
            })?
    };
    let replies = {
        let stream = publisher.try_clone()?;
        let (shared, failed, expected) = (shared.clone(), failed.clone(), expected.clone());
        std::thread::Builder::new()
            .name("wsloop-cluster-pub".into())
            .spawn(move || {
                receive::replies(&shared, stream, &failed, &expected);
                failed.store(true, Ordering::Release);
                // What Redis will never answer now is decided here.
                receive::unanswered(&shared, &expected);
            })?
    };
    info!("cluster: connected to Redis at {}", shared.url.addr);
    *was_up = true;
    shared.directory.set_connected(true);
    let result = publish::commands(shared, outgoing, &mut publisher, &failed, &expected);
    shared.directory.set_connected(false);
    if let Some(history) = &shared.history {
        history.set_cluster_up(false);
    }
    let _ = publisher.shutdown(std::net::Shutdown::Both);
    failed.store(true, Ordering::Release);
    let _ = reader.join();
    let _ = replies.join();
    // What was noted after the reply reader ended will not be answered either.
    receive::unanswered(shared, &expected);
    result
}

/// Whether a read error only says the socket was quiet for its timeout (or a signal came):
/// not a failed connection.
fn quiet(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A connection to Redis, on the configured database.
fn connect(url: &ClusterUrl) -> io::Result<TcpStream> {
    let addr = (url.addr.to_socket_addrs()?.next())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address"))?;
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_nodelay(true)?;
    // A Redis that stops reading must not hold the bridge (and shutdown) forever.
    stream.set_write_timeout(Some(Duration::from_secs(1)))?;
    stream.set_read_timeout(Some(TICK))?;
    if url.db != 0 {
        let mut command = Vec::new();
        encode_command(&mut command, &[b"SELECT", url.db.to_string().as_bytes()]);
        (&stream).write_all(&command)?;
        let mut reply = [0u8; 64];
        let n = (&stream).read(&mut reply)?;
        if !reply[..n].starts_with(b"+OK") {
            let said = String::from_utf8_lossy(&reply[..n]).trim().to_string();
            return Err(io::Error::other(format!("SELECT {}: {said}", url.db)));
        }
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_host_a_port_and_a_database() {
        let parsed = |url| ClusterUrl::parse(url).map(|u| (u.addr, u.db));
        assert_eq!(
            parsed("redis://127.0.0.1:6380/2"),
            Ok(("127.0.0.1:6380".into(), 2))
        );
        assert_eq!(parsed("redis://cache"), Ok(("cache:6379".into(), 0)));
        assert_eq!(parsed("redis://cache:7000/"), Ok(("cache:7000".into(), 0)));
        for bad in ["cache:6379", "redis://", "redis://h:1/x", "redis://u:p@h:1"] {
            assert!(ClusterUrl::parse(bad).is_err(), "{bad}");
        }
    }
}

//! The cluster bridge (`ServerBuilder::cluster`, `--cluster redis://HOST:PORT[/DB]`): several
//! wsloop instances behind a load balancer share topics and route broadcasts through Redis
//! pub/sub.
//!
//! The bridge runs on its own threads with blocking sockets, so no event loop ever waits on
//! Redis: loops hand it what their handlers published (a bounded channel: past
//! [`OUTBOX_CAPACITY`] waiting messages, messages for other instances are dropped and counted,
//! never the server's memory), and it posts what other instances published to every loop's
//! mailbox, to be delivered like a publish from another loop.
//!
//! - Channels: a topic `T` is the Redis channel `wsloop:t:T`; a broadcast to a route's path `P`
//!   is `wsloop:r:P`. The bridge subscribes with one `PSUBSCRIBE wsloop:*` and drops what no
//!   local client listens to.
//! - Each message on Redis starts with the publishing instance's random id and its kind (text
//!   or binary); an instance skips its own, which its loops have already delivered: every
//!   receiver gets a message once.
//! - One publisher connection, so one instance's messages reach the others in the order it
//!   published them; PUBLISH commands are pipelined, as many as wait, in one write.
//! - Redis down or unreachable: local delivery goes on untouched; the bridge logs the loss once,
//!   reconnects with backoff (100 ms doubling to 2 s), subscribes again, and cross-instance
//!   delivery resumes. Delivery across instances is at most once.

mod resp;

use std::io::{self, BufWriter, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use log::{info, warn};

use super::context::Target;
use super::mailbox::{Inbox, Postbox};
use super::ShutdownHandle;
use crate::app::Router;
use crate::handler::ConnectionId;
use crate::protocol::frame::OpCode;
use crate::protocol::outbound::{Message, Prepared};
use resp::{encode_command, parse, Value};

/// Messages waiting for Redis at most; more are dropped (and counted).
pub(crate) const OUTBOX_CAPACITY: usize = 64 * 1024;
/// Every channel the bridge uses starts with this.
const PREFIX: &str = "wsloop:";
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// How often blocked threads look up to see whether the server is stopping.
const TICK: Duration = Duration::from_millis(200);
const INSTANCE_ID_LEN: usize = 16;

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
}

/// What a loop hands the bridge: the Redis channel and the message.
pub(crate) type Outgoing = (String, Prepared);

/// A loop's end of the bridge.
pub(crate) struct ClusterLink {
    sender: SyncSender<Outgoing>,
    dropped: Arc<AtomicU64>,
}

impl ClusterLink {
    /// Hands other instances the part of a delivery that concerns them (topics and route
    /// broadcasts); `router` names the routes.
    pub(crate) fn forward(&self, target: &Target, prepared: &Prepared, router: &Router) {
        let channel = match target {
            Target::Topic { topic, .. } => format!("{PREFIX}t:{topic}"),
            Target::RouteExcept { route, .. } => {
                format!("{PREFIX}r:{}", router.routes[*route].path)
            }
            Target::One(_) | Target::Many(_) => return,
        };
        match self.sender.try_send((channel, prepared.clone())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    warn!("cluster: the queue to Redis is full; messages for other instances are dropped");
                }
            }
        }
    }
}

/// The bridge: its threads stop when the server does.
pub(crate) struct Bridge {
    sender: SyncSender<Outgoing>,
    dropped: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Bridge {
    /// Starts the bridge to `url` for a server whose loops' inboxes are `inboxes` and whose
    /// routes are `paths`.
    pub(crate) fn start(
        url: ClusterUrl,
        inboxes: Arc<[Inbox]>,
        paths: Vec<String>,
        stop: ShutdownHandle,
    ) -> io::Result<Bridge> {
        let (sender, outgoing) = std::sync::mpsc::sync_channel(OUTBOX_CAPACITY);
        let mut id = [0u8; INSTANCE_ID_LEN];
        getrandom::fill(&mut id).map_err(|e| io::Error::other(e.to_string()))?;
        let shared = Arc::new(Shared {
            url,
            id,
            paths,
            stop,
            inboxes,
        });
        let thread = std::thread::Builder::new()
            .name("wsloop-cluster".into())
            .spawn(move || run(&shared, &outgoing))?;
        Ok(Bridge {
            sender,
            dropped: Arc::new(AtomicU64::new(0)),
            thread: Some(thread),
        })
    }

    /// A link for one loop.
    pub(crate) fn link(&self) -> ClusterLink {
        ClusterLink {
            sender: self.sender.clone(),
            dropped: self.dropped.clone(),
        }
    }

    /// Waits for the bridge's threads once the server is stopping.
    pub(crate) fn join(mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the bridge's threads share.
struct Shared {
    url: ClusterUrl,
    /// This instance's id, in front of everything it publishes.
    id: [u8; INSTANCE_ID_LEN],
    paths: Vec<String>,
    stop: ShutdownHandle,
    inboxes: Arc<[Inbox]>,
}

/// Connects, bridges until the connection fails, and again with backoff, until the server
/// stops.
fn run(shared: &Arc<Shared>, outgoing: &Receiver<Outgoing>) {
    let mut backoff = FIRST_BACKOFF;
    let mut was_up = false;
    let mut failures = 0u32;
    while !shared.stop.is_requested() {
        match bridge(shared, outgoing, &mut was_up) {
            Ok(()) => return, // stopping
            Err(e) => {
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
        while slept < backoff && !shared.stop.is_requested() {
            std::thread::sleep(TICK.min(backoff - slept));
            slept += TICK;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connected stretch: a subscriber connection read on its own thread, and a publisher
/// connection written here. Returns `Ok` when the server stops, `Err` when Redis goes away.
fn bridge(
    shared: &Arc<Shared>,
    outgoing: &Receiver<Outgoing>,
    was_up: &mut bool,
) -> io::Result<()> {
    let mut publisher = connect(&shared.url)?;
    let mut subscriber = connect(&shared.url)?;
    let mut command = Vec::new();
    encode_command(
        &mut command,
        &[b"PSUBSCRIBE", format!("{PREFIX}*").as_bytes()],
    );
    subscriber.write_all(&command)?;
    let failed = Arc::new(AtomicBool::new(false));
    let reader = {
        let (shared, failed) = (shared.clone(), failed.clone());
        std::thread::Builder::new()
            .name("wsloop-cluster-sub".into())
            .spawn(move || {
                let _ = receive(&shared, subscriber, &failed);
                failed.store(true, Ordering::Release);
            })?
    };
    // Replies to PUBLISH only say how many received it: read and dropped on their own thread,
    // which also notices when the connection ends.
    let replies = {
        let (mut stream, failed) = (publisher.try_clone()?, failed.clone());
        std::thread::Builder::new()
            .name("wsloop-cluster-pub".into())
            .spawn(move || {
                let mut sink = [0u8; 16 * 1024];
                while !failed.load(Ordering::Acquire) {
                    match stream.read(&mut sink) {
                        Ok(0) => break,
                        Ok(_) => {}
                        // The read timeout (TICK): no reply for a while is not a failure.
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock
                                    | io::ErrorKind::TimedOut
                                    | io::ErrorKind::Interrupted
                            ) => {}
                        Err(_) => break,
                    }
                }
                failed.store(true, Ordering::Release);
            })?
    };
    info!("cluster: connected to Redis at {}", shared.url.addr);
    *was_up = true;
    let result = publish(shared, outgoing, &mut publisher, &failed);
    let _ = publisher.shutdown(std::net::Shutdown::Both);
    failed.store(true, Ordering::Release);
    let _ = reader.join();
    let _ = replies.join();
    result
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

/// Writes every waiting message as a pipelined PUBLISH until the server stops (`Ok`) or the
/// connection fails.
fn publish(
    shared: &Shared,
    outgoing: &Receiver<Outgoing>,
    publisher: &mut TcpStream,
    failed: &AtomicBool,
) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(64 * 1024, publisher);
    let mut command = Vec::new();
    loop {
        if shared.stop.is_requested() {
            return Ok(());
        }
        if failed.load(Ordering::Acquire) {
            return Err(io::Error::other("the connection ended"));
        }
        let first = match outgoing.recv_timeout(TICK) {
            Ok(first) => first,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        for (channel, prepared) in std::iter::once(first).chain(outgoing.try_iter()) {
            command.clear();
            let message = envelope(&shared.id, &prepared);
            encode_command(&mut command, &[b"PUBLISH", channel.as_bytes(), &message]);
            out.write_all(&command)?;
        }
        out.flush()?;
    }
}

/// What goes on Redis: this instance's id, the kind (`t` text, `b` binary), the payload.
fn envelope(id: &[u8; INSTANCE_ID_LEN], prepared: &Prepared) -> Vec<u8> {
    let message = prepared.message();
    let kind = if message.opcode() == OpCode::Text {
        b't'
    } else {
        b'b'
    };
    let mut bytes = Vec::with_capacity(INSTANCE_ID_LEN + 1 + message.as_bytes().len());
    bytes.extend_from_slice(id);
    bytes.push(kind);
    bytes.extend_from_slice(message.as_bytes());
    bytes
}

/// Reads pushes from the subscriber connection and posts other instances' messages to every
/// loop, until the connection fails or the server stops.
fn receive(shared: &Shared, mut stream: TcpStream, failed: &AtomicBool) -> io::Result<()> {
    let mut postbox = Postbox::outside(shared.inboxes.clone());
    let mut buffer = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if shared.stop.is_requested() {
            return Ok(());
        }
        if failed.load(Ordering::Acquire) {
            return Err(io::Error::other("the publisher connection ended"));
        }
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buffer.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        while let Some((value, n)) = parse(&buffer[used..]).map_err(io::Error::other)? {
            used += n;
            if let Some(mail) = mail_of(shared, value) {
                for other in postbox.others() {
                    postbox.post(other, mail.clone());
                }
            }
        }
        buffer.drain(..used);
    }
}

/// The delivery a push from Redis asks for: another instance's message on one of our channels.
fn mail_of(shared: &Shared, value: Value) -> Option<(Target, Prepared)> {
    let Value::Array(Some(parts)) = value else {
        return None;
    };
    let [Value::Bulk(Some(kind)), _pattern, Value::Bulk(Some(channel)), Value::Bulk(Some(body))] =
        <[Value; 4]>::try_from(parts).ok()?
    else {
        return None; // the subscription's confirmation, or not a pattern message
    };
    if kind != b"pmessage" || body.len() <= INSTANCE_ID_LEN || body[..INSTANCE_ID_LEN] == shared.id
    {
        return None;
    }
    let payload = &body[INSTANCE_ID_LEN + 1..];
    let message = match body[INSTANCE_ID_LEN] {
        b't' => Message::Text(std::str::from_utf8(payload).ok()?),
        b'b' => Message::Binary(payload),
        _ => return None,
    };
    let channel = std::str::from_utf8(&channel).ok()?.strip_prefix(PREFIX)?;
    let except = ConnectionId::NOBODY;
    let target = if let Some(topic) = channel.strip_prefix("t:") {
        Target::Topic {
            topic: Arc::from(topic),
            except,
        }
    } else {
        let path = channel.strip_prefix("r:")?;
        let route = shared.paths.iter().position(|p| p == path)?;
        Target::RouteExcept { route, except }
    };
    Some((target, Prepared::new(message)))
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

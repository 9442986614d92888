//! [`Publisher`]: sending into a running server from any thread. It does what a handler's
//! [`Context`](crate::Context) does with topics and other connections, without a connection
//! of its own: the message is framed once here, kept in the topic's history (the position is
//! decided under the history's lock, as for a handler), handed to Redis with a cluster, and
//! posted to every loop's inbox, which wakes the loop; each loop delivers it like its own
//! outbox. Closes go the same way, as mail for the loop that owns the connection.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cluster::ClusterLink;
use super::context::Target;
use super::history::{History, HistoryPage, NotRecovered, StreamPosition, Template};
use super::mailbox::{Inbox, Mail, Posted};
use super::presence::{Presence, PresenceStats, Present};
use crate::ids::ConnectionId;
use crate::protocol::close::CloseCode;
use crate::protocol::outbound::{Message, Prepared};

/// A handle that publishes to topics, sends to connections and closes them from any thread,
/// while the server runs ([`Server::publisher`](crate::Server::publisher)). Cheap to clone;
/// every clone reaches the same server.
///
/// Each call frames the message once and posts it to the event loops' inboxes; the loops
/// deliver it on their next turn, in the order this handle posted (one thread's calls keep
/// their order for every receiver). A loop that cannot keep up refuses mail past its inbox's
/// bound: a call that needs every loop (a publish, [`Publisher::close_user`]) then does
/// nothing at all and answers [`PublishError::Full`] (nothing kept in history, nothing
/// delivered anywhere: try again later, without duplicates); a server that has stopped
/// answers [`PublishError::Gone`].
///
/// ```
/// use wsloop::{Message, Server};
/// # use wsloop::{Context, Handler};
/// # struct Sub;
/// # impl Handler for Sub {
/// #     fn on_open(&mut self, ctx: &mut Context<'_>) { ctx.subscribe("news"); }
/// #     fn on_message(&mut self, _: &mut Context<'_>, _: Message<'_>) {}
/// # }
///
/// let server = Server::builder().bind("127.0.0.1:0").route("/news", Sub).build()?;
/// let publisher = server.publisher();
/// let stop = server.shutdown_handle();
/// let thread = std::thread::spawn(move || server.run());
///
/// // From any thread: every subscriber of "news" gets it.
/// publisher.publish("news", Message::Text("hello")).expect("the server runs");
///
/// stop.shutdown();
/// thread.join().expect("no panic")?;
/// assert!(publisher.publish("news", Message::Text("late")).is_err());
/// # Ok::<(), wsloop::Error>(())
/// ```
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
}

struct Shared {
    inboxes: Arc<[Inbox]>,
    history: Option<Arc<History>>,
    cluster: Option<ClusterLink>,
    /// Who subscribes to the topics that keep presence.
    presence: Option<Arc<Presence>>,
    /// The connections each loop holds, as it last said.
    held: Box<[AtomicUsize]>,
    started: Instant,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("loops", &self.shared.inboxes.len())
            .field("running", &self.is_running())
            .finish_non_exhaustive()
    }
}

/// Why a [`Publisher`] call did not reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// An event loop's inbox is full: it is not keeping up. The call did nothing.
    Full,
    /// The server has stopped (or its loops have).
    Gone,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PublishError::Full => "the server is not keeping up: its inbox is full",
            PublishError::Gone => "the server has stopped",
        })
    }
}

impl std::error::Error for PublishError {}

impl Publisher {
    pub(crate) fn new(
        inboxes: Arc<[Inbox]>,
        history: Option<Arc<History>>,
        cluster: Option<ClusterLink>,
    ) -> Publisher {
        Publisher {
            shared: Arc::new(Shared {
                held: inboxes.iter().map(|_| AtomicUsize::new(0)).collect(),
                inboxes,
                history,
                cluster,
                presence: None,
                started: Instant::now(),
            }),
        }
    }

    /// The same publisher, answering presence from `presence`.
    pub(crate) fn with_presence(self, presence: Option<Arc<Presence>>) -> Publisher {
        let mut shared = Arc::try_unwrap(self.shared)
            .unwrap_or_else(|_| unreachable!("set before it is shared"));
        shared.presence = presence;
        Publisher {
            shared: Arc::new(shared),
        }
    }

    /// Who subscribes to `topic` on this server (every loop), in the order of their ids;
    /// empty when the topic keeps no presence
    /// ([`ServerBuilder::presence`](crate::ServerBuilder::presence)).
    pub fn presence(&self, topic: &str) -> Vec<Present> {
        (self.shared.presence.as_ref()).map_or(Vec::new(), |presence| presence.list(topic))
    }

    /// How many subscribe to `topic` on this server (connections, and distinct users).
    pub fn presence_stats(&self, topic: &str) -> PresenceStats {
        (self.shared.presence.as_ref()).map_or(PresenceStats::default(), |p| p.stats(topic))
    }

    /// Whether `topic` keeps presence.
    pub fn keeps_presence(&self, topic: &str) -> bool {
        (self.shared.presence.as_ref()).is_some_and(|presence| presence.keeps(topic))
    }

    /// Loop `index` holds `n` connections now.
    pub(crate) fn count(&self, index: usize, n: usize) {
        if let Some(held) = self.shared.held.get(index) {
            held.store(n, Ordering::Relaxed);
        }
    }

    /// The connections the server holds (WebSockets, and HTTP connections), summed over its
    /// loops.
    pub fn connections(&self) -> usize {
        (self.shared.held.iter())
            .map(|n| n.load(Ordering::Relaxed))
            .sum()
    }

    /// How many event loops the server runs.
    pub fn loops(&self) -> usize {
        self.shared.inboxes.len()
    }

    /// How long since the server was built.
    pub fn uptime(&self) -> Duration {
        self.shared.started.elapsed()
    }

    /// What `topic` kept, as [`Context::history`](crate::Context::history) reads it.
    pub fn history(
        &self,
        topic: &str,
        since: Option<&StreamPosition>,
        limit: usize,
    ) -> Result<HistoryPage, NotRecovered> {
        match self.kept(topic) {
            Some(history) => history.read(topic, since, limit),
            None if since.is_some() => Err(NotRecovered::OtherEpoch(StreamPosition::none())),
            None => Ok(HistoryPage {
                messages: Vec::new(),
                position: StreamPosition::none(),
            }),
        }
    }

    /// Whether `topic` keeps history.
    pub fn keeps_history(&self, topic: &str) -> bool {
        self.kept(topic).is_some()
    }

    /// Whether the server still runs (some loop takes mail).
    pub fn is_running(&self) -> bool {
        !self.shared.inboxes.iter().all(Inbox::is_closed)
    }

    /// Publishes `message` to `topic`'s subscribers on every loop (and, with a cluster, every
    /// instance), as [`Context::publish`](crate::Context::publish) does; a topic that keeps
    /// history keeps it. Returns its position when this server decided it (with a cluster,
    /// Redis decides it later).
    pub fn publish(
        &self,
        topic: &str,
        message: Message<'_>,
    ) -> Result<Option<StreamPosition>, PublishError> {
        self.check_room()?;
        self.deliver(route_message(
            self.shared.history.as_deref(),
            topic,
            message,
        ))
    }

    /// Publishes the text `make` builds from the message's position in `topic`'s stream
    /// (`None` when the topic keeps none), so the message can carry its own offset, as
    /// [`Context::publish_with`](crate::Context::publish_with) does.
    pub fn publish_with(
        &self,
        topic: &str,
        make: impl FnOnce(Option<&StreamPosition>) -> String,
    ) -> Result<Option<StreamPosition>, PublishError> {
        self.check_room()?;
        self.deliver(route_text(self.shared.history.as_deref(), topic, make))
    }

    /// The history, if it keeps `topic`.
    fn kept(&self, topic: &str) -> Option<&History> {
        (self.shared.history.as_deref()).filter(|history| history.keeps(topic))
    }

    /// Posts a routed publish to every loop (and hands a topic's to other instances).
    fn deliver(&self, routed: Routed) -> Result<Option<StreamPosition>, PublishError> {
        let Routed::Deliver {
            target,
            prepared,
            position,
        } = routed
        else {
            return Ok(None); // Redis orders it and sends it to every instance
        };
        if let (Target::Topic { topic, .. }, Some(cluster)) = (&target, &self.shared.cluster) {
            cluster.forward_topic(topic, &prepared);
        }
        self.post_all(|| Mail::Deliver(target.clone(), prepared.clone()))?;
        Ok(position)
    }

    /// Sends `message` to connection `to`, if it is still open.
    pub fn send(&self, to: ConnectionId, message: Message<'_>) -> Result<(), PublishError> {
        let mail = Mail::Deliver(Target::One(to), Prepared::new(message));
        self.post(to.loop_index(), mail)
    }

    /// Starts the closing handshake of connection `id` with `code` and `reason`, if it is
    /// open.
    pub fn close(
        &self,
        id: ConnectionId,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), PublishError> {
        let reason = reason.to_string();
        self.post(id.loop_index(), Mail::Close { id, code, reason })
    }

    /// Closes every connection of `user` (the `sub` of its token: see
    /// [`ServerBuilder::auth`](crate::ServerBuilder::auth)) with `code` and `reason`: on every
    /// loop of this server and, with a cluster, of every instance.
    pub fn close_user(
        &self,
        user: &str,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), PublishError> {
        self.check_room()?;
        let user: Arc<str> = Arc::from(user);
        let reason: Arc<str> = Arc::from(reason);
        self.post_all(|| Mail::CloseUser {
            user: user.clone(),
            code,
            reason: reason.clone(),
        })?;
        if let Some(cluster) = &self.shared.cluster {
            cluster.disconnect(&user, "", 0, code.0, &reason);
        }
        Ok(())
    }

    /// Closes connection `id` of instance `instance` (as [`Present::instance`] names it; this
    /// one, or with a cluster another), as [`Publisher::close`] does.
    pub fn close_on(
        &self,
        instance: &str,
        id: ConnectionId,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), PublishError> {
        match &self.shared.cluster {
            Some(cluster) if cluster.instance() != instance => {
                cluster.disconnect("", instance, id.to_u64(), code.0, reason);
                Ok(())
            }
            _ => self.close(id, code, reason),
        }
    }

    /// With a cluster, this instance's id in hex (as [`Present::instance`] shows it).
    pub fn instance(&self) -> Option<&str> {
        self.shared.cluster.as_ref().map(ClusterLink::instance)
    }

    fn post(&self, to: usize, mail: Mail) -> Result<(), PublishError> {
        match self.shared.inboxes.get(to).map(|inbox| inbox.post(mail)) {
            Some(Posted::Sent) => Ok(()),
            Some(Posted::Full) => Err(PublishError::Full),
            // A loop index this server does not have: no such connection, nothing to do.
            None => Ok(()),
            Some(Posted::Gone) => Err(PublishError::Gone),
        }
    }

    /// Whether a mail for every loop may be posted: `Gone` once no loop runs, `Full` while a
    /// running loop's inbox is full (so that the caller does nothing yet).
    fn check_room(&self) -> Result<(), PublishError> {
        let mut running = (self.shared.inboxes.iter()).filter(|inbox| !inbox.is_closed());
        match running.next() {
            None => Err(PublishError::Gone),
            Some(first) if first.has_room() && running.all(Inbox::has_room) => Ok(()),
            Some(_) => Err(PublishError::Full),
        }
    }

    /// Posts a mail to every running loop, after [`Publisher::check_room`] found room.
    fn post_all(&self, mail: impl Fn() -> Mail) -> Result<(), PublishError> {
        let mut running = false;
        for inbox in self.shared.inboxes.iter() {
            // Full only past twice the bound: only if as many senders raced past the check.
            running |= inbox.post_reserved(mail()) != Posted::Gone;
        }
        if running {
            Ok(())
        } else {
            Err(PublishError::Gone)
        }
    }
}

/// What a publish to a topic becomes.
pub(crate) enum Routed {
    /// Handed to Redis, which orders it and sends it to every instance (this one too).
    ToRedis,
    /// A delivery to make: to the topic's subscribers everywhere (`Topic`), or, for a kept
    /// topic while Redis is unreachable, on this instance only (`TopicHere`); with the
    /// position this server gave it, if it did.
    Deliver {
        target: Target,
        prepared: Prepared,
        position: Option<StreamPosition>,
    },
}

/// Routes `message` published to `topic` from outside any connection: kept in `history` if
/// it keeps the topic (under its lock, or by Redis with a cluster).
pub(crate) fn route_message(
    history: Option<&History>,
    topic: &str,
    message: Message<'_>,
) -> Routed {
    match history.filter(|history| history.keeps(topic)) {
        Some(history) if history.cluster().is_some() => {
            route_shared(history, topic, Template::plain(message))
        }
        _ => route_here(history, topic, |_| Prepared::new(message)),
    }
}

/// Routes the text `make` builds from its position in `topic`'s stream, as
/// [`route_message`].
pub(crate) fn route_text(
    history: Option<&History>,
    topic: &str,
    make: impl FnOnce(Option<&StreamPosition>) -> String,
) -> Routed {
    let history = history.filter(|history| history.keeps(topic));
    match history.and_then(|history| Some((history, history.cluster()?))) {
        Some((history, shared)) if shared.is_up() => {
            let text = make(Some(shared.marker().position()));
            let template = Template::from_text(&text, shared.marker());
            route_shared(history, topic, template)
        }
        Some((history, _)) => {
            let template = Template::plain(Message::Text(&make(None)));
            route_shared(history, topic, template)
        }
        None => route_here(history, topic, |at| Prepared::new(Message::Text(&make(at)))),
    }
}

/// A kept topic with a cluster: to Redis; while it is unreachable, this instance's
/// subscribers get it, without a position.
fn route_shared(history: &History, topic: &str, template: Template) -> Routed {
    let unsent = template.clone();
    if history.append_shared(topic, ConnectionId::NOBODY, template) {
        return Routed::ToRedis;
    }
    match unsent.render(&StreamPosition::none()) {
        Some(prepared) => Routed::Deliver {
            target: Target::TopicHere {
                topic: Arc::from(topic),
                except: ConnectionId::NOBODY,
            },
            prepared,
            position: None,
        },
        None => Routed::ToRedis, // nothing to send
    }
}

/// Any other topic: `make` frames the message (from its position, in a topic `history`
/// keeps here).
fn route_here(
    history: Option<&History>,
    topic: &str,
    make: impl FnOnce(Option<&StreamPosition>) -> Prepared,
) -> Routed {
    let (position, prepared) = match history.filter(|history| history.keeps(topic)) {
        Some(history) => {
            let (position, prepared) = history.append(topic, |at| make(Some(at)));
            (Some(position), prepared)
        }
        None => (None, make(None)),
    };
    Routed::Deliver {
        target: Target::Topic {
            topic: Arc::from(topic),
            except: ConnectionId::NOBODY,
        },
        prepared,
        position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::mailbox::{Postbox, INBOX_CAPACITY};

    #[test]
    fn a_publish_that_one_loop_has_no_room_for_reaches_no_loop() {
        // A poll per loop: mio allows one waker per poll.
        let polls = [mio::Poll::new().unwrap(), mio::Poll::new().unwrap()];
        let waker =
            |poll: &mio::Poll| Arc::new(mio::Waker::new(poll.registry(), mio::Token(1)).unwrap());
        let inboxes: Arc<[Inbox]> = Arc::from(vec![
            Inbox::new(waker(&polls[0])),
            Inbox::new(waker(&polls[1])),
        ]);
        let publisher = Publisher::new(Arc::clone(&inboxes), None, None);
        let topic = Target::Topic {
            topic: "t".into(),
            except: ConnectionId::NOBODY,
        };
        let mail = || Mail::Deliver(topic.clone(), Prepared::new(Message::Text("x")));
        // The loops' own views (a postbox closes its inbox when dropped).
        let (mut first, mut second) = (
            Postbox::new(Arc::clone(&inboxes), 0),
            Postbox::new(Arc::clone(&inboxes), 1),
        );
        while inboxes[1].post(mail()) == Posted::Sent {}
        assert_eq!(
            publisher.publish("t", Message::Text("hello")),
            Err(PublishError::Full)
        );
        assert!(first.drain().is_empty());
        // Once the busy loop catches up, the same call goes to both.
        assert_eq!(second.drain().len(), INBOX_CAPACITY);
        assert_eq!(publisher.publish("t", Message::Text("hello")), Ok(None));
        assert_eq!((first.drain().len(), second.drain().len()), (1, 1));
    }
}

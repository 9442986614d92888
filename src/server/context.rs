//! What a [`Handler`](crate::Handler) callback is handed: the connection it is about, its
//! sending half, the topic hub, and the outbox for messages to other connections (delivered by
//! the loop once the callback returns, since the callback holds this connection, not theirs).

use std::net::SocketAddr;
use std::sync::Arc;

use super::directory::{Claim, Directory};
use super::history::{History, HistoryPage, Kept, NotRecovered, StreamPosition, Template};
use super::hub::Hub;
use super::presence::{Presence, Present};
use crate::app::{Backpressure, SlowConsumer};
use crate::auth::Verifier;
use crate::connection::{Attached, RouteId};
use crate::ids::{ConnectionId, SendStatus};
use crate::protocol::close::CloseCode;
use crate::protocol::outbound::{Message, Outbound, Prepared};

/// Echoes from this size up are written from the loop's read buffer instead of copied into
/// the queue: a copy of less is cheaper than another piece in the vectored write.
const ECHO_IN_PLACE: usize = 2048;

/// Who receives a message published to a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// Every subscriber but the publishing connection.
    ToOthers,
    /// Every subscriber, the publishing connection too if it subscribed.
    ToAll,
}

/// Where a deferred delivery goes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Every open connection on a route but one.
    RouteExcept {
        route: RouteId,
        except: ConnectionId,
    },
    /// One connection.
    One(ConnectionId),
    /// Several connections.
    Many(Vec<ConnectionId>),
    /// A topic's subscribers, but one.
    Topic {
        topic: Arc<str>,
        except: ConnectionId,
    },
    /// A topic's subscribers on this instance only (with a cluster: a kept message Redis
    /// could not take), but one.
    TopicHere {
        topic: Arc<str>,
        except: ConnectionId,
    },
}

/// Messages for other connections, delivered by the event loop once the callback returns, in
/// the order they were sent.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    pub(crate) deliveries: Vec<(Target, Prepared)>,
    /// Other event loops or (with a cluster) other instances exist, whose connections may
    /// subscribe to topics too: a publish goes out even with no subscriber here.
    pub(crate) spans_loops: bool,
    /// Timers callbacks set: for which connection, after how long, with which token.
    pub(crate) timers: Vec<(ConnectionId, std::time::Duration, u64)>,
}

/// The message a callback is handling, for [`Context::echo`].
///
/// It refers to the message rather than holding a copy: a context is built once per
/// message, and copying the message's words into it, right after they were stored one by
/// one, made the copy wait on those stores (failed store-to-load forwards, measured as the
/// hottest instruction of a pipelined echo's handler call).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Current<'a> {
    /// Not a message callback.
    None,
    /// A message that arrived in one piece, borrowed from what was read.
    Borrowed(&'a Message<'a>),
    /// Likewise, at this offset in the loop's read buffer.
    InInput(&'a Message<'a>, usize),
    /// A message gathered from pieces; its bytes also shared, so it can be queued without a
    /// copy.
    Gathered(&'a Message<'a>, &'a Arc<Vec<u8>>),
}

/// What every callback may reach beyond its own connection, kept together so that a context
/// refers to it with one pointer (a context is built for every message).
pub(crate) struct Services {
    pub(crate) hub: Hub,
    pub(crate) outbox: Outbox,
    /// The server's directory of claimed keys.
    pub(crate) directory: Arc<Directory>,
    /// The server's history, if topics keep any.
    pub(crate) history: Option<Arc<History>>,
    /// The server's presence, if topics keep any.
    pub(crate) presence: Option<Arc<Presence>>,
    /// With auth: the keys and rules every upgrade's token is checked with.
    pub(crate) auth: Option<Arc<Verifier>>,
}

/// Handed to every [`Handler`](crate::Handler) callback: the connection it is about, and ways
/// to act. Each receiver gets its messages in the order of the calls that sent them.
pub struct Context<'a> {
    pub(crate) id: ConnectionId,
    pub(crate) route: RouteId,
    pub(crate) path: &'a str,
    pub(crate) peer: &'a SocketAddr,
    pub(crate) out: &'a mut Outbound,
    /// What the connection carries (identity, data, ...): see `server::access`.
    pub(crate) attached: &'a mut Option<Box<Attached>>,
    pub(crate) backpressure: &'a Backpressure,
    pub(crate) services: &'a mut Services,
    pub(crate) current: Current<'a>,
    /// The loop's count of messages sent, for `/metrics`.
    pub(crate) sent: &'a mut u64,
}

impl<'a> Context<'a> {
    /// This connection.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The path of the route serving this connection.
    pub fn path(&self) -> &'a str {
        self.path
    }

    /// Bytes queued for this connection that it has not read yet.
    pub fn buffered(&self) -> usize {
        self.out.buffered()
    }

    /// Sends a message to this connection.
    #[inline]
    pub fn send(&mut self, message: Message<'_>) -> SendStatus {
        if self.over_limit(message.as_bytes().len()) || !self.out.send(message) {
            return SendStatus::Dropped;
        }
        *self.sent += 1;
        self.status()
    }

    /// Whether the route drops a message of `len` bytes for this connection.
    fn over_limit(&self, len: usize) -> bool {
        self.backpressure.slow_consumer == SlowConsumer::DropMessages
            && self.out.buffered() > 0
            && self.out.buffered() + len > self.backpressure.max_buffered
    }

    /// What a send just did, judged by the queue.
    fn status(&self) -> SendStatus {
        if self.out.buffered() > self.backpressure.high_watermark {
            SendStatus::Backpressured
        } else {
            SendStatus::Queued
        }
    }

    /// Sends the message being handled back to this connection with its opcode. A large
    /// message gathered from fragments or several reads is queued without being copied.
    /// Outside `on_message` there is no such message: [`SendStatus::Dropped`].
    #[inline]
    pub fn echo(&mut self) -> SendStatus {
        match self.current {
            Current::None => SendStatus::Dropped,
            // A large payload goes out from the loop's read buffer, where it was unmasked.
            Current::InInput(message, offset) if message.as_bytes().len() >= ECHO_IN_PLACE => {
                let len = message.as_bytes().len();
                if self.over_limit(len) || !self.out.send_from_input(*message, offset) {
                    return SendStatus::Dropped;
                }
                *self.sent += 1;
                self.status()
            }
            Current::Borrowed(message) | Current::InInput(message, _) => self.send(*message),
            Current::Gathered(message, payload) => {
                let opcode = message.opcode();
                if self.over_limit(payload.len()) || !self.out.send_shared(opcode, payload) {
                    return SendStatus::Dropped;
                }
                *self.sent += 1;
                self.status()
            }
        }
    }

    /// Sends a text message to this connection.
    pub fn send_text(&mut self, text: &str) -> SendStatus {
        self.send(Message::Text(text))
    }

    /// Sends a binary message to this connection.
    pub fn send_binary(&mut self, bytes: &[u8]) -> SendStatus {
        self.send(Message::Binary(bytes))
    }

    /// Sends a message to another connection, if it is still open. Sends to other
    /// connections are delivered after this callback returns; a send to this connection's own
    /// id is queued at once, like [`Context::send`], so every receiver gets its messages in the
    /// order of the calls that sent them.
    pub fn send_to(&mut self, to: ConnectionId, message: Message<'_>) {
        if to == self.id {
            self.send(message);
        } else {
            let prepared = Prepared::new(message);
            self.services
                .outbox
                .deliveries
                .push((Target::One(to), prepared));
        }
    }

    /// Sends one message to each of `to` that is still open: encoded once, shared by all their
    /// queues. Ordered as for [`Context::send_to`].
    pub fn send_to_many(
        &mut self,
        to: impl IntoIterator<Item = ConnectionId>,
        message: Message<'_>,
    ) {
        let prepared = Prepared::new(message);
        let mut others = Vec::new();
        for id in to {
            if id != self.id {
                others.push(id);
            } else {
                self.send_prepared(&prepared);
            }
        }
        if !others.is_empty() {
            self.services
                .outbox
                .deliveries
                .push((Target::Many(others), prepared));
        }
    }

    fn send_prepared(&mut self, prepared: &Prepared) -> SendStatus {
        if self.over_limit(prepared.frame_len()) || !self.out.send_prepared(prepared) {
            return SendStatus::Dropped;
        }
        *self.sent += 1;
        self.status()
    }

    /// Sends a message to every other open connection on this connection's path. The frame is
    /// encoded once and shared by every receiver's queue.
    pub fn broadcast(&mut self, message: Message<'_>) {
        let target = Target::RouteExcept {
            route: self.route,
            except: self.id,
        };
        self.services
            .outbox
            .deliveries
            .push((target, Prepared::new(message)));
    }

    /// Subscribes this connection to `topic` until it unsubscribes or closes. Returns false if
    /// it already was.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        if !(self.out.is_open() && self.services.hub.subscribe(topic, self.id)) {
            return false;
        }
        if let Some(presence) = self.services.presence.as_deref() {
            let user = (self.attached.as_ref()).and_then(|a| a.identity.as_deref());
            presence.join(topic, self.id, user.map(|identity| identity.user()));
        }
        true
    }

    /// Unsubscribes this connection from `topic`. Returns false if it was not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        if !self.services.hub.unsubscribe(topic, self.id) {
            return false;
        }
        if let Some(presence) = self.services.presence.as_deref() {
            presence.leave(&[topic], self.id);
        }
        true
    }

    /// The topics this connection subscribes to, in the order it subscribed (in
    /// [`Handler::on_close`](crate::Handler::on_close) still all of them: they are left after
    /// it returns).
    pub fn subscriptions(&self) -> impl Iterator<Item = &str> + '_ {
        self.services.hub.topics_of(self.id).map(|topic| &**topic)
    }

    /// Who subscribes to `topic` on this server (every loop), in the order of their ids;
    /// empty unless the topic keeps presence
    /// ([`ServerBuilder::presence`](crate::ServerBuilder::presence)).
    pub fn presence(&self, topic: &str) -> Vec<Present> {
        self.services
            .presence
            .as_deref()
            .map_or(Vec::new(), |presence| presence.list(topic))
    }

    /// With a cluster, this instance's id in hex (as [`Present::instance`] shows it).
    pub fn instance(&self) -> Option<Arc<str>> {
        self.services
            .presence
            .as_deref()
            .and_then(Presence::instance)
    }

    /// Whether `topic` keeps presence.
    pub fn keeps_presence(&self, topic: &str) -> bool {
        self.services
            .presence
            .as_deref()
            .is_some_and(|presence| presence.keeps(topic))
    }

    /// Whether this connection is subscribed to `topic`.
    pub fn is_subscribed(&self, topic: &str) -> bool {
        self.services.hub.is_subscribed(topic, self.id)
    }

    /// Publishes a message to `topic`'s subscribers, on this connection's own route or any
    /// other: encoded once and shared by every receiver's queue. A copy to this connection
    /// itself ([`Publish::ToAll`], if it subscribed) is queued at once, the others are
    /// delivered when the callback returns. Returns how many subscribers on this event loop
    /// it goes to; with several loops ([`ServerBuilder::threads`](crate::ServerBuilder)), the
    /// other loops' subscribers get it too. A topic that keeps history
    /// ([`ServerBuilder::history`](crate::ServerBuilder::history)) keeps it, at the next
    /// position of its stream ([`Context::publish_with`] tells the message its position).
    pub fn publish(&mut self, topic: &str, message: Message<'_>, to: Publish) -> usize {
        match self
            .services
            .history
            .as_ref()
            .filter(|history| history.keeps(topic))
        {
            Some(history) if history.cluster().is_some() => {
                let history = Arc::clone(history);
                self.publish_shared(&history, topic, Template::plain(message), to)
            }
            Some(history) => {
                let (_, prepared) = history.append(topic, |_| Prepared::new(message));
                self.deliver_published(topic, prepared, to)
            }
            None => self.publish_ephemeral(topic, message, to),
        }
    }

    /// Like [`Context::publish`], but never kept, even on a topic that keeps history: for what
    /// matters only now (typing indicators, presence), which a client that comes back should
    /// not be replayed, and which takes no position in the stream.
    pub fn publish_ephemeral(&mut self, topic: &str, message: Message<'_>, to: Publish) -> usize {
        if self.services.hub.subscriber_count(topic) == 0 && !self.services.outbox.spans_loops {
            return 0;
        }
        self.deliver_published(topic, Prepared::new(message), to)
    }

    /// Publishes to `topic` the text `make` builds from the message's position in the topic's
    /// stream (`None` when the topic keeps no history), so the message can carry its own
    /// offset; otherwise as [`Context::publish`]. Returns the position; with a cluster
    /// ([`ServerBuilder::cluster`](crate::ServerBuilder::cluster)) Redis decides it after the
    /// callback returns, so it is `None` here and the message carries it (`make` runs once,
    /// with a stand-in position, and every instance writes the real one in where the stand-in's
    /// offset and epoch appear; while Redis is unreachable, `make` gets `None` and the message
    /// reaches this instance's subscribers only).
    pub fn publish_with(
        &mut self,
        topic: &str,
        to: Publish,
        make: impl FnOnce(Option<&StreamPosition>) -> String,
    ) -> Option<StreamPosition> {
        match self
            .services
            .history
            .as_ref()
            .filter(|history| history.keeps(topic))
        {
            Some(history) => match history.cluster() {
                Some(shared) if shared.is_up() => {
                    let text = make(Some(shared.marker().position()));
                    let template = Template::from_text(&text, shared.marker());
                    let history = Arc::clone(history);
                    self.publish_shared(&history, topic, template, to);
                    None
                }
                Some(_) => {
                    // Redis is unreachable: the message goes out here only, with no position.
                    let template = Template::plain(Message::Text(&make(None)));
                    let history = Arc::clone(history);
                    self.publish_shared(&history, topic, template, to);
                    None
                }
                None => {
                    let (position, prepared) = history.append(topic, |position| {
                        Prepared::new(Message::Text(&make(Some(position))))
                    });
                    self.deliver_published(topic, prepared, to);
                    Some(position)
                }
            },
            None => {
                self.publish(topic, Message::Text(&make(None)), to);
                None
            }
        }
    }

    /// With a cluster: hands a kept message to Redis, which orders it and sends it back to every
    /// instance (this one too) with its position. Without Redis, this instance's subscribers
    /// get it at once, unkept and without a position (if Redis was lost after the text was
    /// made with the stand-in, its offset is written out as 0, which no kept message has, and
    /// its epoch as ""). Returns how many subscribers on this loop it goes to.
    fn publish_shared(
        &mut self,
        history: &History,
        topic: &str,
        template: Template,
        to: Publish,
    ) -> usize {
        let subscribed = self.services.hub.is_subscribed(topic, self.id);
        let to_self = to == Publish::ToAll && subscribed;
        let here = self.services.hub.subscriber_count(topic) - usize::from(subscribed && !to_self);
        let except = if to_self {
            ConnectionId::NOBODY
        } else {
            self.id
        };
        let unsent = template.clone();
        if history.append_shared(topic, except, template) {
            return here;
        }
        let Some(prepared) = unsent.render(&StreamPosition::none()) else {
            return 0;
        };
        if to_self {
            self.send_prepared(&prepared);
        }
        let target = Target::TopicHere {
            topic: Arc::from(topic),
            except: self.id,
        };
        self.services.outbox.deliveries.push((target, prepared));
        here
    }

    /// Queues a published message for this connection (if it subscribed and `to` says so) and
    /// for the topic's other subscribers; returns how many on this loop get it.
    fn deliver_published(&mut self, topic: &str, prepared: Prepared, to: Publish) -> usize {
        let subscribed = self.services.hub.is_subscribed(topic, self.id);
        let others = self.services.hub.subscriber_count(topic) - usize::from(subscribed);
        let to_self = to == Publish::ToAll && subscribed;
        if to_self {
            self.send_prepared(&prepared);
        }
        if others > 0 || self.services.outbox.spans_loops {
            let target = Target::Topic {
                topic: Arc::from(topic),
                except: self.id,
            };
            self.services.outbox.deliveries.push((target, prepared));
        }
        others + usize::from(to_self)
    }

    /// The messages `topic` kept after `since` (oldest first, at most `limit`), or, without
    /// `since`, its latest `limit` messages; with the topic's latest position. A position that
    /// cannot be served says why ([`NotRecovered`]): another epoch, messages no longer kept,
    /// or an offset the stream never reached. A topic that keeps no history has no stream.
    pub fn history(
        &self,
        topic: &str,
        since: Option<&StreamPosition>,
        limit: usize,
    ) -> Result<HistoryPage, NotRecovered> {
        match self
            .services
            .history
            .as_deref()
            .filter(|history| history.keeps(topic))
        {
            Some(history) => history.read(topic, since, limit),
            None if since.is_some() => Err(NotRecovered::OtherEpoch(StreamPosition::none())),
            None => Ok(HistoryPage {
                messages: Vec::new(),
                position: StreamPosition::none(),
            }),
        }
    }

    /// `topic`'s latest position (offset 0 when it has no stream).
    pub fn position(&self, topic: &str) -> StreamPosition {
        match self
            .services
            .history
            .as_deref()
            .filter(|history| history.keeps(topic))
        {
            Some(history) => history.position(topic),
            None => StreamPosition::none(),
        }
    }

    /// Sends a kept message (from [`Context::history`]) to this connection as it was
    /// published: its frame is shared, not encoded again.
    pub fn send_kept(&mut self, kept: &Kept) -> SendStatus {
        self.send_prepared(kept.prepared())
    }

    /// Claims `key` for this connection, with `value` for anyone to [`lookup`](Self::lookup):
    /// a key is held by one connection at a time across every loop of the server and, with a
    /// cluster ([`ServerBuilder::cluster`](crate::ServerBuilder::cluster)), every instance.
    /// [`Claim::Pending`] (only with a cluster) means Redis decides, and the answer comes as
    /// [`Handler::on_claim`](crate::Handler::on_claim). The connection holds the key until it
    /// [releases](Self::release) it or closes; an instance that dies loses its keys after the
    /// cluster TTL.
    pub fn claim(&mut self, key: &str, value: &str) -> Claim {
        self.services.directory.claim(self.id, key, value)
    }

    /// Changes the value of a key this connection holds (or asked for). Returns false if it
    /// does not.
    pub fn set_claim_value(&mut self, key: &str, value: &str) -> bool {
        self.services.directory.set_value(self.id, key, value)
    }

    /// Lets go of a key this connection holds (or asked for). Returns false if it did not.
    pub fn release(&mut self, key: &str) -> bool {
        self.services.directory.release(self.id, key)
    }

    /// The value of `key`, if a connection holds it, here or on another instance.
    pub fn lookup(&self, key: &str) -> Option<String> {
        self.services.directory.lookup(key)
    }

    /// Every held key that starts with `prefix`, with its value, in no particular order.
    pub fn claimed_with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        self.services.directory.with_prefix(prefix)
    }

    /// Calls [`Handler::on_timer`](crate::Handler::on_timer) for this connection with `token`
    /// once `after` has passed, on this loop, if the connection is still open then: periodic
    /// work without a thread (set the next one from `on_timer`). Timers are not cancelled;
    /// a token of the application's choosing tells a stale one from a current one. Each timer
    /// takes a few bytes until it is due, closed connection or not.
    pub fn set_timer(&mut self, after: std::time::Duration, token: u64) {
        self.services.outbox.timers.push((self.id, after, token));
    }

    /// Starts the closing handshake (§7.1.2) with `code` and `reason`: nothing sent to this
    /// connection after it goes out. Codes that may not be sent (§7.4.1) become 1000.
    pub fn close(&mut self, code: CloseCode, reason: &str) {
        self.out.close(code, reason);
    }
}

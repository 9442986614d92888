//! The hub: who receives what is sent to many. Two kinds of membership:
//! - routes: every open connection of a route, for [`Context::broadcast`]. Not announced by
//!   the connections: the loop reconciles it with each touched connection's state at the end
//!   of every turn, so it can never drift from the state it is derived from;
//! - topics: named groups a connection joins with [`Context::subscribe`] (chat rooms, the
//!   broadcast endpoint), left on [`Context::unsubscribe`] or when the connection closes.
//!
//! A message sent to either is prepared once and every receiver's queue shares its frame. Only
//! the hub knows where a topic's subscribers live (today: this loop's slab keys).
//!
//! [`Context::broadcast`]: super::context::Context::broadcast
//! [`Context::subscribe`]: super::context::Context::subscribe
//! [`Context::unsubscribe`]: super::context::Context::unsubscribe

use std::collections::HashMap;
use std::sync::Arc;

use crate::ids::ConnectionId;

/// Where a connection sits in its route's member list. Kept in every connection's slot, hence
/// `u32`s: a loop has far fewer than 2^32 routes, or connections (each holds a descriptor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Membership {
    route: u32,
    index: u32,
}

impl Membership {
    /// The route whose member list it is in.
    pub(crate) fn route(self) -> usize {
        self.route as usize
    }
}

/// `n` as a [`Membership`] field.
fn narrow(n: usize) -> u32 {
    u32::try_from(n).expect("fewer than 2^32 routes and members")
}

/// Route member lists and topics.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    routes: Vec<Vec<usize>>,
    /// Each topic's subscribers, in a dense list for delivery.
    topics: HashMap<Arc<str>, Vec<ConnectionId>>,
    /// By slab slot: the topics of the connection there, each with its place in that topic's
    /// list (so leaving is O(1) without a map per topic), and so closing leaves them all.
    /// Indexed by slot rather than hashed by id: at tens of thousands of subscribers the hash
    /// maps this replaces cost about 100 bytes a connection, this 40.
    subscriptions: Vec<Option<Subscriber>>,
}

/// The subscriptions of the connection in one slot.
#[derive(Debug)]
struct Subscriber {
    id: ConnectionId,
    topics: Topics,
}

/// A connection's topics: most have one, kept without an allocation of its own.
#[derive(Debug)]
enum Topics {
    One(Subscription),
    Many(Vec<Subscription>),
}

/// One topic a connection subscribes to, and its place in the topic's subscriber list.
#[derive(Debug)]
struct Subscription {
    topic: Arc<str>,
    place: u32,
}

impl Topics {
    fn as_slice(&self) -> &[Subscription] {
        match self {
            Topics::One(one) => std::slice::from_ref(one),
            Topics::Many(many) => many,
        }
    }

    fn find_mut(&mut self, topic: &str) -> Option<&mut Subscription> {
        match self {
            Topics::One(one) => (&*one.topic == topic).then_some(one),
            Topics::Many(many) => many.iter_mut().find(|s| &*s.topic == topic),
        }
    }

    fn push(&mut self, subscription: Subscription) {
        match std::mem::replace(self, Topics::Many(Vec::new())) {
            Topics::One(one) => *self = Topics::Many(vec![one, subscription]),
            Topics::Many(mut many) => {
                many.push(subscription);
                *self = Topics::Many(many);
            }
        }
    }

    /// Removes `topic`'s subscription; returns its place, and whether none are left.
    fn remove(&mut self, topic: &str) -> Option<(u32, bool)> {
        match self {
            Topics::One(one) => (&*one.topic == topic).then_some((one.place, true)),
            Topics::Many(many) => {
                let at = many.iter().position(|s| &*s.topic == topic)?;
                let place = many.swap_remove(at).place;
                Some((place, many.is_empty()))
            }
        }
    }
}

impl Hub {
    /// Adds `key` to `route`'s members.
    pub(crate) fn join(&mut self, route: usize, key: usize) -> Membership {
        if self.routes.len() <= route {
            self.routes.resize_with(route + 1, Vec::new);
        }
        let members = &mut self.routes[route];
        members.push(key);
        Membership {
            route: narrow(route),
            index: narrow(members.len() - 1),
        }
    }

    /// Removes a member in O(1). The last member takes the leaver's place: returns its key and
    /// its new membership, which the caller must store.
    pub(crate) fn leave(&mut self, membership: Membership) -> Option<(usize, Membership)> {
        let members = &mut self.routes[membership.route()];
        let index = membership.index as usize;
        members.swap_remove(index);
        members.get(index).map(|&moved| (moved, membership))
    }

    /// The slab keys of `route`'s members.
    pub(crate) fn members(&self, route: usize) -> &[usize] {
        self.routes.get(route).map_or(&[], Vec::as_slice)
    }

    /// The subscriptions of `id`, if its slot holds any.
    fn subscriber(&self, id: ConnectionId) -> Option<&Subscriber> {
        let subscriber = self.subscriptions.get(id.slot())?.as_ref()?;
        (subscriber.id == id).then_some(subscriber)
    }

    /// Subscribes `id` to `topic`; false if it already was.
    pub(crate) fn subscribe(&mut self, topic: &str, id: ConnectionId) -> bool {
        if self.is_subscribed(topic, id) {
            return false;
        }
        let name = match self.topics.get_key_value(topic) {
            Some((name, _)) => name.clone(),
            None => Arc::from(topic),
        };
        let subscribers = self.topics.entry(name.clone()).or_default();
        let subscription = Subscription {
            topic: name,
            place: narrow(subscribers.len()),
        };
        subscribers.push(id);
        let slot = id.slot();
        if self.subscriptions.len() <= slot {
            self.subscriptions.resize_with(slot + 1, || None);
        }
        match &mut self.subscriptions[slot] {
            Some(subscriber) if subscriber.id == id => subscriber.topics.push(subscription),
            other => {
                // A slot's last connection left every topic when it closed.
                debug_assert!(
                    other.is_none(),
                    "a closed connection's subscriptions remain"
                );
                *other = Some(Subscriber {
                    id,
                    topics: Topics::One(subscription),
                });
            }
        }
        true
    }

    /// Unsubscribes `id` from `topic`; false if it was not subscribed.
    pub(crate) fn unsubscribe(&mut self, topic: &str, id: ConnectionId) -> bool {
        let Some(slot) = self.subscriptions.get_mut(id.slot()) else {
            return false;
        };
        let Some(subscriber) = slot.as_mut().filter(|s| s.id == id) else {
            return false;
        };
        let Some((place, none_left)) = subscriber.topics.remove(topic) else {
            return false;
        };
        if none_left {
            *slot = None;
        }
        self.remove_subscriber(topic, place);
        true
    }

    /// Takes `id` out of every topic (it closed); returns them.
    pub(crate) fn unsubscribe_all(&mut self, id: ConnectionId) -> Vec<Arc<str>> {
        let Some(slot) = self.subscriptions.get_mut(id.slot()) else {
            return Vec::new();
        };
        let Some(subscriber) = slot.take_if(|s| s.id == id) else {
            return Vec::new();
        };
        let subscriptions = match subscriber.topics {
            Topics::One(one) => vec![one],
            Topics::Many(many) => many,
        };
        let mut topics = Vec::with_capacity(subscriptions.len());
        for Subscription { topic, place } in subscriptions {
            self.remove_subscriber(&topic, place);
            topics.push(topic);
        }
        topics
    }

    /// The topics `id` subscribes to, in the order it subscribed (until it leaves one: then
    /// its last takes that one's place).
    pub(crate) fn topics_of(&self, id: ConnectionId) -> impl Iterator<Item = &Arc<str>> {
        let subscriptions = self.subscriber(id).map_or(&[][..], |s| s.topics.as_slice());
        subscriptions.iter().map(|s| &s.topic)
    }

    /// Removes the subscriber at `place` from `topic`'s list in O(1): the last one takes its
    /// place and is told so. A topic nobody subscribes to is forgotten.
    fn remove_subscriber(&mut self, topic: &str, place: u32) {
        let Some(subscribers) = self.topics.get_mut(topic) else {
            return;
        };
        let place = place as usize;
        subscribers.swap_remove(place);
        if let Some(&moved) = subscribers.get(place) {
            let subscriber = self.subscriptions[moved.slot()].as_mut();
            if let Some(subscription) = subscriber.and_then(|s| s.topics.find_mut(topic)) {
                subscription.place = narrow(place);
            }
        }
        if subscribers.is_empty() {
            self.topics.remove(topic);
        }
    }

    /// Whether `id` subscribes to `topic`.
    pub(crate) fn is_subscribed(&self, topic: &str, id: ConnectionId) -> bool {
        self.subscriber(id)
            .is_some_and(|s| s.topics.as_slice().iter().any(|s| &*s.topic == topic))
    }

    /// How many connections subscribe to `topic`.
    pub(crate) fn subscriber_count(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, Vec::len)
    }

    /// `topic`'s subscribers.
    pub(crate) fn subscribers(&self, topic: &str) -> &[ConnectionId] {
        self.topics.get(topic).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_and_leave_keep_indexes_right() {
        let mut hub = Hub::default();
        let a = hub.join(1, 10);
        let _b = hub.join(1, 11);
        let c = hub.join(1, 12);
        assert_eq!(hub.members(1), [10, 11, 12]);
        assert_eq!(hub.members(0), [] as [usize; 0]);
        // 12 moves into 10's place and is told its new membership.
        let moved = hub.leave(a);
        assert_eq!(moved, Some((12, a)));
        assert_eq!(hub.members(1), [12, 11]);
        let c = moved.map_or(c, |(_, m)| m);
        assert_eq!(hub.leave(c), Some((11, c)));
        assert_eq!(hub.members(1), [11]);
    }

    #[test]
    fn leaving_last_moves_nobody() {
        let mut hub = Hub::default();
        let a = hub.join(0, 1);
        let b = hub.join(0, 2);
        assert_eq!(hub.leave(b), None);
        assert_eq!(hub.leave(a), None);
        assert!(hub.members(0).is_empty());
    }

    #[test]
    fn topics_track_subscribers_through_unsubscribes_and_closes() {
        let mut hub = Hub::default();
        let [a, b, c] = [1, 2, 3].map(|n| ConnectionId(n << 32 | n));
        assert!(hub.subscribe("lobby", a));
        assert!(!hub.subscribe("lobby", a));
        assert!(hub.subscribe("lobby", b));
        assert!(hub.subscribe("lobby", c));
        assert!(hub.subscribe("rust", a));
        assert_eq!(hub.subscribers("lobby"), [a, b, c]);
        assert!(hub.unsubscribe("lobby", a));
        assert!(!hub.unsubscribe("lobby", a));
        assert_eq!(hub.subscribers("lobby"), [c, b]);
        assert!(hub.is_subscribed("rust", a));
        hub.unsubscribe_all(a);
        assert_eq!(hub.subscriber_count("rust"), 0);
        hub.unsubscribe_all(c);
        assert_eq!(hub.subscribers("lobby"), [b]);
        assert!(hub.unsubscribe("lobby", b));
        assert!(hub.topics.is_empty());
        assert!(hub.subscriptions.iter().all(Option::is_none));
    }
}

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

/// One topic's subscribers, in a dense list for delivery, with each one's place in it.
#[derive(Debug, Default)]
struct Topic {
    subscribers: Vec<ConnectionId>,
    places: HashMap<ConnectionId, usize>,
}

/// Route member lists and topics.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    routes: Vec<Vec<usize>>,
    topics: HashMap<Arc<str>, Topic>,
    /// The topics of each connection that has any, so closing leaves them all.
    subscriptions: HashMap<ConnectionId, Vec<Arc<str>>>,
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

    /// Subscribes `id` to `topic`; false if it already was.
    pub(crate) fn subscribe(&mut self, topic: &str, id: ConnectionId) -> bool {
        let name = match self.topics.get_key_value(topic) {
            Some((name, _)) => name.clone(),
            None => Arc::from(topic),
        };
        let entry = self.topics.entry(name.clone()).or_default();
        if entry.places.contains_key(&id) {
            return false;
        }
        entry.places.insert(id, entry.subscribers.len());
        entry.subscribers.push(id);
        self.subscriptions.entry(id).or_default().push(name);
        true
    }

    /// Unsubscribes `id` from `topic`; false if it was not subscribed.
    pub(crate) fn unsubscribe(&mut self, topic: &str, id: ConnectionId) -> bool {
        if !self.remove_subscriber(topic, id) {
            return false;
        }
        if let Some(topics) = self.subscriptions.get_mut(&id) {
            topics.retain(|name| &**name != topic);
            if topics.is_empty() {
                self.subscriptions.remove(&id);
            }
        }
        true
    }

    /// Takes `id` out of every topic (it closed); returns them.
    pub(crate) fn unsubscribe_all(&mut self, id: ConnectionId) -> Vec<Arc<str>> {
        let topics = self.subscriptions.remove(&id).unwrap_or_default();
        for topic in &topics {
            self.remove_subscriber(topic, id);
        }
        topics
    }

    /// The topics `id` subscribes to, in the order it subscribed.
    pub(crate) fn topics_of(&self, id: ConnectionId) -> &[Arc<str>] {
        self.subscriptions.get(&id).map_or(&[], Vec::as_slice)
    }

    /// Removes `id` from `topic`'s list in O(1): the last subscriber takes its place. A topic
    /// nobody subscribes to is forgotten.
    fn remove_subscriber(&mut self, topic: &str, id: ConnectionId) -> bool {
        let Some(entry) = self.topics.get_mut(topic) else {
            return false;
        };
        let Some(place) = entry.places.remove(&id) else {
            return false;
        };
        entry.subscribers.swap_remove(place);
        if let Some(&moved) = entry.subscribers.get(place) {
            entry.places.insert(moved, place);
        }
        if entry.subscribers.is_empty() {
            self.topics.remove(topic);
        }
        true
    }

    /// Whether `id` subscribes to `topic`.
    pub(crate) fn is_subscribed(&self, topic: &str, id: ConnectionId) -> bool {
        self.topics
            .get(topic)
            .is_some_and(|entry| entry.places.contains_key(&id))
    }

    /// How many connections subscribe to `topic`.
    pub(crate) fn subscriber_count(&self, topic: &str) -> usize {
        self.topics
            .get(topic)
            .map_or(0, |entry| entry.subscribers.len())
    }

    /// `topic`'s subscribers.
    pub(crate) fn subscribers(&self, topic: &str) -> &[ConnectionId] {
        self.topics
            .get(topic)
            .map_or(&[], |entry| entry.subscribers.as_slice())
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
        assert!(hub.topics.is_empty() && hub.subscriptions.is_empty());
    }
}

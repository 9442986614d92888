//! Who is subscribed to which channel, across every loop of the server
//! ([`ServerBuilder::presence`](crate::ServerBuilder::presence)): the hub of each loop knows
//! only its own connections, so the topics that keep presence also note each subscription
//! here, with the user its token names. One mutex for the server, taken once per subscribe,
//! unsubscribe and close of such a topic, and per query; never on the message path.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::ids::ConnectionId;

/// One connection subscribed to a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Present {
    /// The connection.
    pub connection: ConnectionId,
    /// The user its token names (`sub`), if it had one.
    pub user: Option<Arc<str>>,
}

/// How many are subscribed to a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PresenceStats {
    /// Connections.
    pub connections: usize,
    /// Distinct users among them (connections without a token not counted).
    pub users: usize,
}

/// Which topics keep presence.
pub(crate) type Keeps = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// Each channel's subscribers, with the user each one's token names.
type Channels = HashMap<Arc<str>, BTreeMap<ConnectionId, Option<Arc<str>>>>;

/// The server's presence (see the module docs).
pub(crate) struct Presence {
    keeps: Keeps,
    channels: Mutex<Channels>,
}

impl Presence {
    pub(crate) fn new(keeps: Keeps) -> Presence {
        Presence {
            keeps,
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn channels(&self) -> MutexGuard<'_, Channels> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `topic` keeps presence.
    pub(crate) fn keeps(&self, topic: &str) -> bool {
        (self.keeps)(topic)
    }

    /// `id` (of `user`) subscribed to `topic`.
    pub(crate) fn join(&self, topic: &str, id: ConnectionId, user: Option<&str>) {
        if self.keeps(topic) {
            let user = user.map(Arc::from);
            let mut channels = self.channels();
            match channels.get_mut(topic) {
                Some(present) => present.insert(id, user),
                None => (channels.entry(Arc::from(topic)).or_default()).insert(id, user),
            };
        }
    }

    /// `id` left `topics` (unsubscribed, or closed).
    pub(crate) fn leave(&self, topics: &[impl AsRef<str>], id: ConnectionId) {
        let kept = topics
            .iter()
            .map(AsRef::as_ref)
            .filter(|topic| self.keeps(topic));
        let mut kept = kept.peekable();
        if kept.peek().is_none() {
            return;
        }
        let mut channels = self.channels();
        for topic in kept {
            if let Some(present) = channels.get_mut(topic) {
                present.remove(&id);
                if present.is_empty() {
                    channels.remove(topic);
                }
            }
        }
    }

    /// Who is subscribed to `topic`, in the order of their ids.
    pub(crate) fn list(&self, topic: &str) -> Vec<Present> {
        let channels = self.channels();
        let Some(present) = channels.get(topic) else {
            return Vec::new();
        };
        (present.iter())
            .map(|(&connection, user)| Present {
                connection,
                user: user.clone(),
            })
            .collect()
    }

    /// How many are subscribed to `topic`.
    pub(crate) fn stats(&self, topic: &str) -> PresenceStats {
        let channels = self.channels();
        let Some(present) = channels.get(topic) else {
            return PresenceStats::default();
        };
        let mut users: Vec<&str> = present.values().flatten().map(|u| &**u).collect();
        users.sort_unstable();
        users.dedup();
        PresenceStats {
            connections: present.len(),
            users: users.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ConnectionId {
        ConnectionId::from_u64(n)
    }

    #[test]
    fn joins_and_leaves_are_counted_by_connection_and_by_user() {
        let presence = Presence::new(Box::new(|topic| !topic.starts_with('/')));
        let (news, sport): (Arc<str>, Arc<str>) = ("news".into(), "sport".into());
        presence.join(&news, id(1), Some("ann"));
        presence.join(&news, id(2), Some("ann"));
        presence.join(&news, id(3), None);
        presence.join(&sport, id(3), None);
        presence.join("/broadcast", id(1), Some("ann"));
        let stats = presence.stats("news");
        assert_eq!((stats.connections, stats.users), (3, 1));
        assert!(presence.list("/broadcast").is_empty());
        presence.leave(&[news.clone(), sport.clone()], id(3));
        assert_eq!(presence.stats("sport"), PresenceStats::default());
        let list = presence.list("news");
        let who: Vec<(u64, Option<&str>)> = (list.iter())
            .map(|p| (p.connection.to_u64(), p.user.as_deref()))
            .collect();
        assert_eq!(who, [(1, Some("ann")), (2, Some("ann"))]);
        presence.leave(&["news"], id(1));
        presence.leave(&[news], id(2));
        assert!(
            presence.channels().is_empty(),
            "an empty channel is forgotten"
        );
    }
}

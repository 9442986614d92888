//! Who is subscribed to which channel, across every loop of the server
//! ([`ServerBuilder::presence`](crate::ServerBuilder::presence)): the hub of each loop knows
//! only its own connections, so the topics that keep presence also note each subscription
//! here, with the user its token names. One mutex for the server, taken once per subscribe,
//! unsubscribe and close of such a topic, and per query; never on the message path.
//!
//! With a cluster, each instance tells the others its joins and leaves (and all it has when
//! one says hello), and keeps what they told it beside its own, so a query sums every
//! instance without asking Redis; what an instance that went quiet had is forgotten with it
//! (see `cluster`: an instance is dead a few seconds after its last heartbeat).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use crate::ids::ConnectionId;
use crate::server::directory::InstanceId;

/// One connection subscribed to a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Present {
    /// The connection.
    pub connection: ConnectionId,
    /// The user its token names (`sub`), if it had one.
    pub user: Option<Arc<str>>,
    /// With a cluster: the instance that holds it (its id in hex); `None` without one.
    pub instance: Option<Arc<str>>,
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

/// What this instance tells the others (the cluster bridge sends it).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PresenceNews {
    Join {
        channel: String,
        connection: u64,
        user: String,
    },
    Leave {
        channel: String,
        connection: u64,
    },
}

/// Where presence news goes: false when it cannot be taken now (a full queue).
pub(crate) type PresenceSink = Box<dyn Fn(PresenceNews) -> bool + Send + Sync>;

/// The server's presence (see the module docs).
pub(crate) struct Presence {
    keeps: Keeps,
    channels: Mutex<Channels>,
    /// What other instances have, by instance.
    remote: Mutex<HashMap<InstanceId, Channels>>,
    /// With a cluster: where news goes, and this instance's id in hex.
    cluster: OnceLock<(PresenceSink, Arc<str>)>,
}

impl Presence {
    pub(crate) fn new(keeps: Keeps) -> Presence {
        Presence {
            keeps,
            channels: Mutex::new(HashMap::new()),
            remote: Mutex::new(HashMap::new()),
            cluster: OnceLock::new(),
        }
    }

    /// From now on joins and leaves are told to other instances through `news`.
    pub(crate) fn join_cluster(&self, news: PresenceSink, instance: &str) {
        let _ = self.cluster.set((news, Arc::from(instance)));
    }

    /// With a cluster, this instance's id in hex.
    pub(crate) fn instance(&self) -> Option<Arc<str>> {
        self.cluster.get().map(|(_, instance)| instance.clone())
    }

    fn tell(&self, news: PresenceNews) {
        if let Some((sink, _)) = self.cluster.get() {
            // Past the queue's bound, the others learn it with the next hello.
            let _ = sink(news);
        }
    }

    fn channels(&self) -> MutexGuard<'_, Channels> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn remote(&self) -> MutexGuard<'_, HashMap<InstanceId, Channels>> {
        self.remote.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `topic` keeps presence.
    pub(crate) fn keeps(&self, topic: &str) -> bool {
        (self.keeps)(topic)
    }

    /// `id` (of `user`) subscribed to `topic`.
    pub(crate) fn join(&self, topic: &str, id: ConnectionId, user: Option<&str>) {
        if self.keeps(topic) {
            insert(&mut self.channels(), topic, id, user.map(Arc::from));
            self.tell(PresenceNews::Join {
                channel: topic.to_string(),
                connection: id.to_u64(),
                user: user.unwrap_or("").to_string(),
            });
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
            remove(&mut channels, topic, id);
            self.tell(PresenceNews::Leave {
                channel: topic.to_string(),
                connection: id.to_u64(),
            });
        }
    }

    // The bridge's side.

    /// Everyone here on a channel that keeps presence: (channel, connection, user).
    pub(crate) fn ours(&self) -> Vec<(String, u64, String)> {
        let channels = self.channels();
        let mut all = Vec::new();
        for (channel, present) in channels.iter() {
            for (id, user) in present {
                let user = user.as_deref().unwrap_or("").to_string();
                all.push((channel.to_string(), id.to_u64(), user));
            }
        }
        all
    }

    /// Another instance's connection joined a channel.
    pub(crate) fn their_join(
        &self,
        instance: InstanceId,
        channel: &str,
        connection: u64,
        user: &str,
    ) {
        let user = (!user.is_empty()).then(|| Arc::from(user));
        let mut remote = self.remote();
        let theirs = remote.entry(instance).or_default();
        insert(theirs, channel, ConnectionId::from_u64(connection), user);
    }

    /// Another instance's connection left a channel.
    pub(crate) fn their_leave(&self, instance: InstanceId, channel: &str, connection: u64) {
        if let Some(theirs) = self.remote().get_mut(&instance) {
            remove(theirs, channel, ConnectionId::from_u64(connection));
        }
    }

    /// Everyone another instance has: what it had before is replaced.
    pub(crate) fn their_whole(&self, instance: InstanceId, entries: Vec<(String, u64, String)>) {
        let mut theirs = Channels::new();
        for (channel, connection, user) in entries {
            let user = (!user.is_empty()).then(|| Arc::from(user.as_str()));
            insert(
                &mut theirs,
                &channel,
                ConnectionId::from_u64(connection),
                user,
            );
        }
        self.remote().insert(instance, theirs);
    }

    /// An instance went quiet: what it had is gone.
    pub(crate) fn forget(&self, instance: &InstanceId) {
        self.remote().remove(instance);
    }

    /// Who is subscribed to `topic`: this instance's connections in the order of their ids,
    /// then other instances'.
    pub(crate) fn list(&self, topic: &str) -> Vec<Present> {
        let ours = self.cluster.get().map(|(_, instance)| instance.clone());
        let mut list = Vec::new();
        if let Some(present) = self.channels().get(topic) {
            list.extend(present.iter().map(|(&connection, user)| Present {
                connection,
                user: user.clone(),
                instance: ours.clone(),
            }));
        }
        for (instance, theirs) in self.remote().iter() {
            let Some(present) = theirs.get(topic) else {
                continue;
            };
            let instance: Arc<str> = Arc::from(hex(instance).as_str());
            list.extend(present.iter().map(|(&connection, user)| Present {
                connection,
                user: user.clone(),
                instance: Some(instance.clone()),
            }));
        }
        list
    }

    /// How many are subscribed to `topic`, on every instance.
    pub(crate) fn stats(&self, topic: &str) -> PresenceStats {
        let mut connections = 0;
        let mut users: Vec<Arc<str>> = Vec::new();
        let mut count = |present: &BTreeMap<ConnectionId, Option<Arc<str>>>| {
            connections += present.len();
            users.extend(present.values().flatten().cloned());
        };
        if let Some(present) = self.channels().get(topic) {
            count(present);
        }
        for theirs in self.remote().values() {
            if let Some(present) = theirs.get(topic) {
                count(present);
            }
        }
        users.sort_unstable();
        users.dedup();
        PresenceStats {
            connections,
            users: users.len(),
        }
    }
}

/// An instance's id in hex, as [`Present::instance`] shows it.
pub(crate) fn hex(instance: &InstanceId) -> String {
    instance.iter().map(|b| format!("{b:02x}")).collect()
}

fn insert(channels: &mut Channels, topic: &str, id: ConnectionId, user: Option<Arc<str>>) {
    match channels.get_mut(topic) {
        Some(present) => present.insert(id, user),
        None => (channels.entry(Arc::from(topic)).or_default()).insert(id, user),
    };
}

fn remove(channels: &mut Channels, topic: &str, id: ConnectionId) {
    if let Some(present) = channels.get_mut(topic) {
        present.remove(&id);
        if present.is_empty() {
            channels.remove(topic);
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

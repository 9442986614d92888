//! The directory ([`Context::claim`](crate::Context::claim)): keys unique across every loop of
//! a server and, with a cluster, across every instance, each held by one connection with a
//! value anyone may look up. The chat keeps its user names here.
//!
//! One directory serves all of a server's loops (a mutex around a map: claims are rare next to
//! messages). Without a cluster it decides every claim at once. With one, Redis decides: a
//! claim no instance is known to hold is asked of Redis (`SET NX` with the cluster's TTL) and
//! answered later ([`Handler::on_claim`](crate::Handler::on_claim)); the bridge keeps what this
//! instance holds alive in Redis, and tells other instances what it holds, so every instance
//! can look up every key without asking Redis. Entries of an instance that stops being heard
//! from expire after the TTL, as its keys in Redis do. While Redis is unreachable, claims are
//! decided here (unique on this instance), and claimed in Redis again once it is back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::ids::ConnectionId;

/// Another instance of the cluster, as the bridge names it.
pub(crate) type InstanceId = [u8; 16];

/// What the directory tells the other instances, in its own words; the cluster bridge turns
/// it into Redis commands and messages.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum News {
    /// Ask whether connection `id` may hold `key`.
    Claim { key: String, id: ConnectionId },
    /// This instance holds `key`, with a new value.
    Announce { key: String },
    /// This instance let go of `key`.
    Release { key: String },
}

/// Where the directory's news goes: false when it cannot be taken now (a full queue).
pub(crate) type NewsSink = Box<dyn Fn(News) -> bool + Send + Sync>;

/// What [`Context::claim`](crate::Context::claim) decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The key is this connection's until it releases it or closes.
    Granted,
    /// Another connection (here or on another instance) holds it.
    Taken,
    /// Redis decides: the answer comes as [`Handler::on_claim`](crate::Handler::on_claim).
    Pending,
}

/// Who holds a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// A connection of this instance.
    Here(ConnectionId),
    /// A connection of this instance, while Redis decides.
    Asking(ConnectionId),
    /// Another instance, last heard of at `seen`.
    There { instance: InstanceId, seen: Instant },
}

#[derive(Debug)]
struct Entry {
    value: String,
    holder: Holder,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    /// The keys each connection of this instance holds or asked for.
    held: HashMap<ConnectionId, Vec<String>>,
}

/// The server's directory (see the module docs).
pub(crate) struct Directory {
    state: Mutex<State>,
    /// With a cluster: where news goes, and how long an unheard-of instance's keys live.
    cluster: OnceLock<(NewsSink, Duration)>,
    /// The bridge is connected to Redis: claims are asked of it.
    connected: AtomicBool,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let clustered = self.cluster.get().is_some();
        f.debug_struct("Directory")
            .field("state", &self.state)
            .field("clustered", &clustered)
            .finish()
    }
}

impl Directory {
    pub(crate) fn new() -> Directory {
        Directory {
            state: Mutex::new(State::default()),
            cluster: OnceLock::new(),
            connected: AtomicBool::new(false),
        }
    }

    /// From now on Redis decides claims, asked through `news`.
    pub(crate) fn join_cluster(&self, news: NewsSink, ttl: Duration) {
        let _ = self.cluster.set((news, ttl));
    }

    /// The bridge got (or lost) its connection to Redis.
    pub(crate) fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::Release);
    }

    /// A panic elsewhere while the lock was held cannot leave the map invalid.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn live(&self, holder: &Holder, now: Instant) -> bool {
        match (holder, self.cluster.get()) {
            (Holder::There { seen, .. }, Some((_, ttl))) => now.duration_since(*seen) < *ttl,
            _ => true,
        }
    }

    /// `id` asks for `key`, to hold with `value`.
    pub(crate) fn claim(&self, id: ConnectionId, key: &str, value: &str) -> Claim {
        let now = Instant::now();
        let mut state = self.state();
        if let Some(entry) = state.entries.get(key) {
            if self.live(&entry.holder, now) {
                return match entry.holder {
                    Holder::Here(holder) if holder == id => Claim::Granted,
                    _ => Claim::Taken,
                };
            }
        }
        let mut answer = Claim::Granted;
        let redis = self
            .cluster
            .get()
            .filter(|_| self.connected.load(Ordering::Acquire));
        if let Some((news, _)) = redis {
            let ask = News::Claim {
                key: key.to_string(),
                id,
            };
            // A full queue (Redis unreachable for long): decided here, claimed in Redis later.
            if news(ask) {
                answer = Claim::Pending;
            }
        }
        let holder = match answer {
            Claim::Pending => Holder::Asking(id),
            _ => Holder::Here(id),
        };
        let entry = Entry {
            value: value.to_string(),
            holder,
        };
        state.entries.insert(key.to_string(), entry);
        state.held.entry(id).or_default().push(key.to_string());
        answer
    }

    /// Redis answered `id`'s claim of `key`. Returns false when `id` no longer asks for it.
    pub(crate) fn decided(&self, id: ConnectionId, key: &str, granted: bool) -> bool {
        let mut state = self.state();
        let Some(entry) = state.entries.get_mut(key) else {
            return false;
        };
        if entry.holder != Holder::Asking(id) {
            return false;
        }
        if granted {
            entry.holder = Holder::Here(id);
        } else {
            state.entries.remove(key);
            forget(&mut state.held, id, key);
        }
        true
    }

    /// Changes the value of a key `id` holds or asked for. Returns false when it does neither.
    pub(crate) fn set_value(&self, id: ConnectionId, key: &str, value: &str) -> bool {
        let mut state = self.state();
        let Some(entry) = state.entries.get_mut(key) else {
            return false;
        };
        match entry.holder {
            Holder::Here(holder) | Holder::Asking(holder) if holder == id => {
                entry.value = value.to_string();
            }
            _ => return false,
        }
        // Once Redis grants a key asked for, the grant's news carries the value then current.
        if entry.holder == Holder::Here(id) {
            self.tell(News::Announce {
                key: key.to_string(),
            });
        }
        true
    }

    /// `id` lets go of `key`. Returns false when it did not hold it.
    pub(crate) fn release(&self, id: ConnectionId, key: &str) -> bool {
        let mut state = self.state();
        let held = state.entries.get(key).is_some_and(|entry| {
            entry.holder == Holder::Here(id) || entry.holder == Holder::Asking(id)
        });
        if held {
            state.entries.remove(key);
            forget(&mut state.held, id, key);
            self.tell(News::Release {
                key: key.to_string(),
            });
        }
        held
    }

    /// `id` closed: it lets go of everything it held.
    pub(crate) fn release_all(&self, id: ConnectionId) {
        let mut state = self.state();
        let Some(keys) = state.held.remove(&id) else {
            return;
        };
        for key in keys {
            state.entries.remove(&key);
            self.tell(News::Release { key });
        }
    }

    /// The value of `key`, if a connection anywhere holds it.
    pub(crate) fn lookup(&self, key: &str) -> Option<String> {
        let now = Instant::now();
        let state = self.state();
        let entry = state.entries.get(key)?;
        (self.granted(&entry.holder, now)).then(|| entry.value.clone())
    }

    /// Every held key that starts with `prefix`, with its value, in no particular order.
    pub(crate) fn with_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let now = Instant::now();
        let state = self.state();
        (state.entries.iter())
            .filter(|(key, entry)| key.starts_with(prefix) && self.granted(&entry.holder, now))
            .map(|(key, entry)| (key.clone(), entry.value.clone()))
            .collect()
    }

    fn granted(&self, holder: &Holder, now: Instant) -> bool {
        !matches!(holder, Holder::Asking(_)) && self.live(holder, now)
    }

    fn tell(&self, what: News) {
        if let Some((news, _)) = self.cluster.get() {
            // Past the queue's bound, other instances learn it at the next heartbeat.
            let _ = news(what);
        }
    }

    // The bridge's side.

    /// What this instance holds: every granted key with its value.
    pub(crate) fn ours(&self) -> Vec<(String, String)> {
        let state = self.state();
        (state.entries.iter())
            .filter(|(_, entry)| matches!(entry.holder, Holder::Here(_)))
            .map(|(key, entry)| (key.clone(), entry.value.clone()))
            .collect()
    }

    /// The value of a key this instance holds.
    pub(crate) fn our_value(&self, key: &str) -> Option<String> {
        let state = self.state();
        let entry = state.entries.get(key)?;
        matches!(entry.holder, Holder::Here(_)).then(|| entry.value.clone())
    }

    /// Another instance holds `entries`; with `whole`, those are all it holds.
    pub(crate) fn theirs(&self, instance: InstanceId, entries: Vec<(String, String)>, whole: bool) {
        let seen = Instant::now();
        let mut state = self.state();
        if whole {
            state.entries.retain(|_, entry| {
                !matches!(entry.holder, Holder::There { instance: i, .. } if i == instance)
            });
        }
        for (key, value) in entries {
            let ours = state
                .entries
                .get(&key)
                .is_some_and(|entry| matches!(entry.holder, Holder::Here(_) | Holder::Asking(_)));
            // Both holding a key happens only across a Redis outage: each keeps its own.
            if !ours {
                let holder = Holder::There { instance, seen };
                state.entries.insert(key, Entry { value, holder });
            }
        }
    }

    /// Another instance let go of `keys`.
    pub(crate) fn released(&self, instance: InstanceId, keys: Vec<String>) {
        let mut state = self.state();
        for key in keys {
            let theirs = state.entries.get(&key).is_some_and(
                |entry| matches!(entry.holder, Holder::There { instance: i, .. } if i == instance),
            );
            if theirs {
                state.entries.remove(&key);
            }
        }
    }

    /// An instance went quiet (no heartbeat): its keys are free here, and Redis lets them be
    /// claimed again (its liveness key is gone).
    pub(crate) fn forget_instance(&self, instance: &InstanceId) {
        let mut state = self.state();
        state.entries.retain(
            |_, entry| !matches!(entry.holder, Holder::There { instance: i, .. } if i == *instance),
        );
    }

    /// Forgets other instances' entries not heard of within the TTL.
    pub(crate) fn expire(&self) {
        let now = Instant::now();
        let mut state = self.state();
        state
            .entries
            .retain(|_, entry| self.live(&entry.holder, now));
    }
}

fn forget(held: &mut HashMap<ConnectionId, Vec<String>>, id: ConnectionId, key: &str) {
    if let Some(keys) = held.get_mut(&id) {
        keys.retain(|k| k != key);
        if keys.is_empty() {
            held.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> ConnectionId {
        ConnectionId::new(n, 0, n as usize)
    }

    #[test]
    fn a_key_is_held_by_one_connection_until_it_lets_go() {
        let directory = Directory::new();
        assert_eq!(
            directory.claim(id(1), "/chat:ann", "lobby\nAnn"),
            Claim::Granted
        );
        assert_eq!(directory.claim(id(2), "/chat:ann", "x\nann"), Claim::Taken);
        assert_eq!(
            directory.claim(id(1), "/chat:ann", "lobby\nAnn"),
            Claim::Granted
        );
        assert_eq!(directory.lookup("/chat:ann").as_deref(), Some("lobby\nAnn"));
        assert!(!directory.set_value(id(2), "/chat:ann", "stolen"));
        assert!(directory.set_value(id(1), "/chat:ann", "attic\nAnn"));
        assert_eq!(
            directory.with_prefix("/chat:"),
            vec![("/chat:ann".to_string(), "attic\nAnn".to_string())]
        );
        assert!(!directory.release(id(2), "/chat:ann"));
        directory.release_all(id(1));
        assert_eq!(directory.lookup("/chat:ann"), None);
        assert_eq!(
            directory.claim(id(2), "/chat:ann", "x\nann"),
            Claim::Granted
        );
    }

    #[test]
    fn with_a_cluster_redis_decides_and_other_instances_entries_expire() {
        let directory = Directory::new();
        let (bridge, asked) = std::sync::mpsc::sync_channel(8);
        let news: NewsSink = Box::new(move |news| bridge.try_send(news).is_ok());
        directory.join_cluster(news, Duration::from_millis(50));
        assert_eq!(
            directory.claim(id(1), "a", "v"),
            Claim::Granted,
            "Redis is down"
        );
        directory.set_connected(true);
        assert_eq!(directory.claim(id(1), "k", "v"), Claim::Pending);
        assert!(matches!(asked.try_recv(), Ok(News::Claim { .. })));
        // Asked for, not yet held: nobody else gets it, nobody sees it.
        assert_eq!(directory.claim(id(2), "k", "w"), Claim::Taken);
        assert_eq!(directory.lookup("k"), None);
        assert!(directory.decided(id(1), "k", false));
        assert!(!directory.decided(id(1), "k", true), "answered once");
        assert_eq!(directory.lookup("k"), None);

        let other = [7; 16];
        directory.theirs(other, vec![("k".into(), "theirs".into())], false);
        assert_eq!(directory.lookup("k").as_deref(), Some("theirs"));
        assert_eq!(directory.claim(id(2), "k", "w"), Claim::Taken);
        directory.theirs(other, Vec::new(), true);
        assert_eq!(
            directory.lookup("k"),
            None,
            "a whole list replaces the last"
        );
        directory.theirs(other, vec![("k".into(), "theirs".into())], false);
        std::thread::sleep(Duration::from_millis(60)); // the TTL itself is under test
        assert_eq!(directory.lookup("k"), None, "not heard of within the TTL");
        directory.expire();
        assert!(!directory.state().entries.contains_key("k"), "swept");
        assert!(directory.state().entries.contains_key("a"), "ours stay");
    }
}

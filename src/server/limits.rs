//! Connection limits per client IP and per user, counted across every loop of a server: one
//! map behind a mutex, touched once when a WebSocket opens and once when it ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

use crate::protocol::handshake::HttpError;

/// How long a refused client is asked to wait before trying again.
const RETRY_AFTER_SECONDS: u32 = 5;

/// Which limit refused an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    PerIp,
    PerUser,
}

impl Limit {
    /// The metrics label.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Limit::PerIp => "per_ip",
            Limit::PerUser => "per_user",
        }
    }

    /// 429 with `Retry-After`.
    pub(crate) fn http_error(self) -> HttpError {
        let reason = match self {
            Limit::PerIp => "too many connections from this address",
            Limit::PerUser => "too many connections for this user",
        };
        HttpError::new(429, reason).header("Retry-After", RETRY_AFTER_SECONDS.to_string())
    }
}

#[derive(Debug, Default)]
struct Counts {
    ips: HashMap<IpAddr, u32>,
    users: HashMap<String, u32>,
}

/// The server's open connections per IP and per user, and their limits.
#[derive(Debug)]
pub(crate) struct Gate {
    per_ip: Option<u32>,
    per_user: Option<u32>,
    counts: Mutex<Counts>,
}

impl Gate {
    /// A gate when either limit is set.
    pub(crate) fn new(per_ip: Option<u32>, per_user: Option<u32>) -> Option<Gate> {
        (per_ip.is_some() || per_user.is_some()).then(|| Gate {
            per_ip,
            per_user,
            counts: Mutex::default(),
        })
    }

    /// Counts one more connection from `ip` (of `user`, if known), or says which limit it
    /// would pass.
    pub(crate) fn admit(&self, ip: IpAddr, user: Option<&str>) -> Result<(), Limit> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let ip_count = counts.ips.get(&ip).copied().unwrap_or(0);
        if self.per_ip.is_some_and(|max| ip_count >= max) {
            return Err(Limit::PerIp);
        }
        let user = user.filter(|_| self.per_user.is_some());
        if let Some(user) = user {
            let user_count = counts.users.get(user).copied().unwrap_or(0);
            if self.per_user.is_some_and(|max| user_count >= max) {
                return Err(Limit::PerUser);
            }
            *counts.users.entry(user.to_string()).or_default() += 1;
        }
        if self.per_ip.is_some() {
            *counts.ips.entry(ip).or_default() += 1;
        }
        Ok(())
    }

    /// One connection [`Gate::admit`] counted has ended.
    pub(crate) fn release(&self, ip: IpAddr, user: Option<&str>) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if self.per_ip.is_some() {
            forget_one(&mut counts.ips, &ip);
        }
        if let Some(user) = user.filter(|_| self.per_user.is_some()) {
            forget_one(&mut counts.users, user);
        }
    }
}

fn forget_one<K, Q>(map: &mut HashMap<K, u32>, key: &Q)
where
    K: std::borrow::Borrow<Q> + std::hash::Hash + Eq,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(count) = map.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_count_per_ip_and_per_user_and_free_on_release() {
        let gate = Gate::new(Some(2), Some(1)).unwrap();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert_eq!(gate.admit(a, None), Ok(()));
        assert_eq!(gate.admit(a, Some("alice")), Ok(()));
        assert_eq!(gate.admit(a, None), Err(Limit::PerIp));
        assert_eq!(gate.admit(b, Some("alice")), Err(Limit::PerUser));
        assert_eq!(gate.admit(b, Some("bob")), Ok(()));
        gate.release(a, Some("alice"));
        assert_eq!(gate.admit(b, Some("alice")), Ok(()));
        assert_eq!(gate.admit(a, None), Ok(()));
        let counts = gate.counts.lock().unwrap();
        assert_eq!(
            (counts.ips[&a], counts.ips[&b], counts.users.len()),
            (2, 2, 2)
        );
    }

    #[test]
    fn no_limits_no_gate() {
        assert!(Gate::new(None, None).is_none());
    }
}

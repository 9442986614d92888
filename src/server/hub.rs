//! The broadcast hub: which open connections each route has, so a broadcast visits exactly its
//! receivers instead of every connection, and hands each the same encoded frame.
//!
//! Membership is not announced by the connections: the loop reconciles it with each touched
//! connection's state (open on a route, accepting messages) at the end of every turn, so it
//! can never drift from the state it is derived from.

/// Where a connection sits in the hub: its route and its index in that route's member list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Membership {
    pub(crate) route: usize,
    index: usize,
}

/// Member lists, one per route, of slab keys.
#[derive(Debug, Default)]
pub(crate) struct Hub {
    routes: Vec<Vec<usize>>,
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
            route,
            index: members.len() - 1,
        }
    }

    /// Removes a member in O(1). The last member takes the leaver's place: returns its key and
    /// its new membership, which the caller must store.
    pub(crate) fn leave(&mut self, membership: Membership) -> Option<(usize, Membership)> {
        let members = &mut self.routes[membership.route];
        members.swap_remove(membership.index);
        members
            .get(membership.index)
            .map(|&moved| (moved, membership))
    }

    /// The slab keys of `route`'s members.
    pub(crate) fn members(&self, route: usize) -> &[usize] {
        self.routes.get(route).map_or(&[], Vec::as_slice)
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
}

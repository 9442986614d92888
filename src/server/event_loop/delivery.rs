//! Delivery of messages a callback addressed to other connections: private sends, sends to a
//! list, broadcasts to a route and publishes to a topic. Each message was prepared once; every
//! receiver's queue holds the same frame. A receiver that would hold more than its route's
//! `max_buffered` unread bytes is a slow consumer: closed, or the message is dropped for it,
//! as its route's [`SlowConsumer`] rule says.

use std::sync::Arc;
use std::time::Instant;

use log::info;

use super::dispatch::Dispatch;
use super::EventLoop;
use crate::app::SlowConsumer;
use crate::connection::Connection;
use crate::ids::ConnectionId;
use crate::protocol::close::CloseCode;
use crate::protocol::outbound::Prepared;
use crate::server::context::{Current, Target};
use crate::server::mailbox::Mail;
use crate::server::transport::Transport;

impl EventLoop {
    /// Delivers everything in the outbox, and whatever the callbacks that delivery causes (a
    /// slow consumer's `on_close`) add to it. What is for other loops' connections is posted
    /// to their inboxes.
    // Called after every read, with an outbox empty most of the time: the checks are inlined
    // into the caller, the work is not.
    #[inline]
    pub(super) fn deliver_outbox(&mut self, now: Instant) {
        let outbox = &self.app.services.outbox;
        if !(outbox.timers.is_empty() && outbox.deliveries.is_empty()) {
            self.deliver_outbox_now(now);
        }
    }

    #[inline(never)]
    fn deliver_outbox_now(&mut self, now: Instant) {
        if !self.app.services.outbox.timers.is_empty() {
            self.take_timers(now);
        }
        while !self.app.services.outbox.deliveries.is_empty() {
            let deliveries = std::mem::take(&mut self.app.services.outbox.deliveries);
            for (target, prepared) in &deliveries {
                if self.postbox.has_others() {
                    self.forward(target, prepared);
                }
                if let Some(cluster) = &self.cluster {
                    cluster.forward(target, prepared, &self.app.router);
                }
            }
            let mut rest = &deliveries[..];
            while let Some(((target, _), _)) = rest.split_first() {
                // Publishes in a row to one topic go to each receiver together, while its
                // state is in the cache: one pass over the subscribers, not one per message.
                let run = rest.iter().take_while(|(next, _)| same_topic(next, target));
                let run = run.count().max(1);
                let (batch, after) = rest.split_at(run);
                if let [(_, prepared)] = batch {
                    self.deliver_here(target, &[prepared], now); // no list for one
                } else {
                    let batch: Vec<&Prepared> = batch.iter().map(|(_, p)| p).collect();
                    self.deliver_here(target, &batch, now);
                }
                rest = after;
            }
        }
    }

    /// Delivers what other loops (and the cluster bridge) posted to this one (see `mailbox`).
    pub(super) fn deliver_mail(&mut self, now: Instant) {
        for mail in self.postbox.drain() {
            match mail {
                Mail::Deliver(target, prepared) => self.deliver_here(&target, &[&prepared], now),
                Mail::Decided { id, key, granted } => self.claim_decided(id, &key, granted),
                Mail::Reconfigure(config) => self.reconfigure(&config),
                Mail::Close { id, code, reason } => {
                    let found = self
                        .entries
                        .get(id.slot())
                        .is_some_and(|e| e.conn.id() == id);
                    if found {
                        self.close_by_server(id.slot(), code, &reason, now);
                    }
                }
                Mail::CloseUser { user, code, reason } => {
                    let keys: Vec<usize> = (self.entries.iter())
                        .filter(|(_, entry)| entry.conn.user() == Some(&*user))
                        .map(|(key, _)| key)
                        .collect();
                    for key in keys {
                        self.close_by_server(key, code, &reason, now);
                    }
                }
            }
        }
        // Callbacks the delivery caused (a slow consumer's close) may have sent more.
        self.deliver_outbox(now);
    }

    /// Closes the open connection in slot `key` with `code` and `reason`, asked from outside
    /// its callbacks (a [`Publisher`](crate::Publisher), the HTTP API).
    fn close_by_server(&mut self, key: usize, code: CloseCode, reason: &str, now: Instant) {
        let entry = &mut self.entries[key];
        let mut events = Dispatch::new(&mut self.app, entry.conn.peer(), now);
        entry
            .conn
            .close(now, &self.conn_config, (code, reason), &mut events);
        self.mark_dirty(key);
    }

    /// Posts to every other loop the part of a delivery that may concern its connections.
    fn forward(&mut self, target: &Target, prepared: &Prepared) {
        let me = self.postbox.me();
        match target {
            Target::One(id) if id.loop_index() != me => {
                let mail = Mail::Deliver(target.clone(), prepared.clone());
                self.postbox.post(id.loop_index(), mail);
            }
            Target::One(_) => {}
            Target::Many(ids) => {
                for other in self.postbox.others() {
                    let theirs: Vec<ConnectionId> = ids
                        .iter()
                        .copied()
                        .filter(|id| id.loop_index() == other)
                        .collect();
                    if !theirs.is_empty() {
                        let mail = Mail::Deliver(Target::Many(theirs), prepared.clone());
                        self.postbox.post(other, mail);
                    }
                }
            }
            Target::RouteExcept { .. } | Target::Topic { .. } | Target::TopicHere { .. } => {
                for other in self.postbox.others() {
                    let mail = Mail::Deliver(target.clone(), prepared.clone());
                    self.postbox.post(other, mail);
                }
            }
        }
    }

    /// Tells the handler of connection `id` what Redis decided about its claim of `key`; lets
    /// go of the key if the connection has closed meanwhile.
    fn claim_decided(&mut self, id: ConnectionId, key: &str, granted: bool) {
        let entry = (self.entries.get_mut(id.slot())).filter(|entry| entry.conn.id() == id);
        let Some(entry) = entry else {
            self.app.services.directory.release(id, key);
            return;
        };
        let (route, peer) = (entry.conn.route(), entry.conn.peer());
        let (Some(route), Some(open)) = (route, entry.conn.open()) else {
            self.app.services.directory.release(id, key); // closing
            return;
        };
        let mut events = Dispatch::new(&mut self.app, peer, Instant::now());
        events.call(id, route, open, Current::None, |handler, ctx| {
            handler.on_claim(ctx, key, granted)
        });
        self.mark_dirty(id.slot());
    }

    /// Delivers to this loop's connections among `target` each of `batch`, in order.
    fn deliver_here(&mut self, target: &Target, batch: &[&Prepared], now: Instant) {
        match target {
            Target::One(id) => self.deliver(id.slot(), Some(*id), batch, now),
            Target::Many(ids) => {
                for &id in ids {
                    self.deliver(id.slot(), Some(id), batch, now);
                }
            }
            Target::RouteExcept { route, except } => {
                // Membership changes only in `flush`, never during delivery.
                for i in 0..self.app.services.hub.members(*route).len() {
                    let key = self.app.services.hub.members(*route)[i];
                    if key != except.slot() || except.loop_index() != self.postbox.me() {
                        self.deliver(key, None, batch, now);
                    }
                }
            }
            Target::Topic { topic, except } | Target::TopicHere { topic, except } => {
                // A slow consumer's on_close may change the topic while it is served.
                let mut receivers = std::mem::take(&mut self.scratch);
                receivers.extend_from_slice(self.app.services.hub.subscribers(topic));
                for &id in &receivers {
                    if id != *except {
                        self.deliver(id.slot(), Some(id), batch, now);
                    }
                }
                receivers.clear();
                self.scratch = receivers;
            }
        }
    }

    /// Queues each of `batch` for the connection in slot `key` (if it is `expected`, when
    /// given), as far as its backpressure policy lets it.
    fn deliver(
        &mut self,
        key: usize,
        expected: Option<ConnectionId>,
        batch: &[&Prepared],
        now: Instant,
    ) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        let conn = &mut entry.conn;
        if expected.is_some_and(|id| id != conn.id()) {
            return;
        }
        let Some(policy) = self.app.router.backpressure(conn.route()).copied() else {
            return; // not open
        };
        let mut events = Dispatch::new(&mut self.app, conn.peer(), now);
        for prepared in batch {
            let len = prepared.frame_len();
            if conn.buffered() + len > policy.max_buffered {
                // What was queued this turn has not been offered to the socket yet: offer it
                // now, so only what the peer really leaves unread counts against the limit.
                write_now(conn, &mut entry.transport, &mut events);
            }
            // (A failed write above has closed the connection: then nothing is queued.) A
            // message larger than the limit still goes to a receiver that has read
            // everything, so a queue holds at most `max_buffered` plus one message.
            let buffered = conn.buffered();
            let Some(out) = conn.outbound() else {
                break; // closed
            };
            if buffered == 0 || buffered + len <= policy.max_buffered {
                if out.send_prepared(prepared) {
                    events.app.metrics.messages_sent += 1;
                }
            } else if policy.slow_consumer == SlowConsumer::DropMessages {
                if !entry.dropping {
                    entry.dropping = true;
                    info!(
                        peer:% = conn.peer(), id:% = conn.id();
                        "{} {} slow consumer: dropping messages",
                        conn.peer(),
                        conn.id()
                    );
                }
            } else {
                events.app.metrics.slow_consumers_closed += 1;
                conn.on_slow_consumer(now, &self.conn_config, policy.max_buffered, &mut events);
                if conn.is_closed() {
                    entry.transport.reset_on_close(); // dropped: even its close did not fit
                }
                break;
            }
        }
        if !entry.dirty {
            entry.dirty = true;
            self.dirty.push(key);
            // A delivery to thousands: past the first receivers of the turn, each one's bytes
            // go to its socket at once, so a broadcast to everyone holds a few hundred queues
            // (each with its record and buffer) at a time, not one per receiver. The turn's
            // flush then only updates its registration and deadline.
            if self.dirty.len() > WRITE_THROUGH_AFTER {
                write_now(conn, &mut entry.transport, &mut events);
            }
        }
    }
}

/// How many connections a turn may leave with queued bytes for its closing flush before
/// deliveries write through (see `deliver`): enough that a turn's messages to a few hundred
/// receivers still go out as one write each, few enough that their queues cost little.
const WRITE_THROUGH_AFTER: usize = 256;

/// Offers what `conn` has queued to its socket now.
fn write_now(conn: &mut Connection, transport: &mut Transport, events: &mut Dispatch<'_>) {
    if let Some(queue) = conn.queue() {
        match transport.flush(Some(queue)) {
            Ok(sent) => events.app.metrics.bytes_sent += sent as u64,
            Err(e) => conn.on_io_error(&e, events),
        }
    }
}

/// Whether `next` goes to the same topic's subscribers as `target`, leaving out the same one.
fn same_topic(next: &Target, target: &Target) -> bool {
    match (next, target) {
        (
            Target::Topic {
                topic: a,
                except: x,
            },
            Target::Topic {
                topic: b,
                except: y,
            },
        )
        | (
            Target::TopicHere {
                topic: a,
                except: x,
            },
            Target::TopicHere {
                topic: b,
                except: y,
            },
        ) => x == y && (Arc::ptr_eq(a, b) || a == b),
        _ => false,
    }
}

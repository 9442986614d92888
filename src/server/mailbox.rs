//! Mailboxes between event loops (`ServerBuilder::threads`): how a message sent on one loop
//! reaches connections owned by another.
//!
//! Each loop has an inbox: a bounded channel and the loop's mio `Waker`. A loop posts a
//! delivery (a [`Target`] and the message, framed once: [`Prepared`] shares its bytes) to
//! another loop's inbox and wakes it, at most once until that loop drains its inbox. The
//! receiving loop delivers the mail to its own connections exactly as it delivers its own
//! outbox, without forwarding it again. One sender's mail arrives in the order it was posted,
//! so every receiver gets one publisher's messages in order. Loops share nothing else mutable.
//!
//! The channel is bounded: a loop that cannot keep up loses the mail past
//! [`INBOX_CAPACITY`] (counted and logged once per burst), and a sender never blocks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use log::warn;
use mio::Waker;

use super::context::Target;
use crate::ids::ConnectionId;
use crate::protocol::outbound::Prepared;

/// Deliveries waiting in one loop's inbox at most.
pub(crate) const INBOX_CAPACITY: usize = 64 * 1024;

/// What a loop finds in its inbox.
#[derive(Debug, Clone)]
pub(crate) enum Mail {
    /// A message for some of its connections.
    Deliver(Target, Prepared),
    /// Redis decided a claim one of its connections made (see `directory`).
    Decided {
        id: ConnectionId,
        key: String,
        granted: bool,
    },
}

/// One loop's inbox, as every loop sees it.
pub(crate) struct Inbox {
    sender: SyncSender<Mail>,
    waker: Arc<Waker>,
    /// The loop was woken and has not drained its inbox since.
    notified: AtomicBool,
}

impl Inbox {
    /// An inbox waking `waker`, and the receiving end its loop drains.
    pub(crate) fn new(waker: Arc<Waker>) -> (Inbox, Receiver<Mail>) {
        let (sender, receiver) = std::sync::mpsc::sync_channel(INBOX_CAPACITY);
        let inbox = Inbox {
            sender,
            waker,
            notified: AtomicBool::new(false),
        };
        (inbox, receiver)
    }
}

/// A loop's view of every inbox: its own (to drain) and the others' (to post to).
pub(crate) struct Postbox {
    inboxes: Arc<[Inbox]>,
    /// This loop's index.
    me: usize,
    mine: Option<Receiver<Mail>>,
    /// Mail this loop lost to full inboxes since the last post that got through.
    lost: u64,
}

impl Postbox {
    /// Loop `me`'s postbox over `inboxes`, draining `mine`.
    pub(crate) fn new(inboxes: Arc<[Inbox]>, me: usize, mine: Receiver<Mail>) -> Postbox {
        Postbox {
            inboxes,
            me,
            mine: Some(mine),
            lost: 0,
        }
    }

    /// Posting from outside the loops (the cluster bridge): every loop is another.
    pub(crate) fn outside(inboxes: Arc<[Inbox]>) -> Postbox {
        Postbox {
            me: inboxes.len(),
            inboxes,
            mine: None,
            lost: 0,
        }
    }

    /// A single loop's: nobody to post to.
    pub(crate) fn alone() -> Postbox {
        Postbox {
            inboxes: Arc::from([]),
            me: 0,
            mine: None,
            lost: 0,
        }
    }

    /// This loop's index.
    pub(crate) fn me(&self) -> usize {
        self.me
    }

    /// Whether other loops exist.
    pub(crate) fn has_others(&self) -> bool {
        self.inboxes.len() > 1
    }

    /// The other loops' indexes.
    pub(crate) fn others(&self) -> impl Iterator<Item = usize> + use<> {
        let me = self.me;
        (0..self.inboxes.len()).filter(move |&i| i != me)
    }

    /// Posts `mail` to loop `to`, waking it unless it already was; lost (and counted) if its
    /// inbox is full.
    pub(crate) fn post(&mut self, to: usize, mail: Mail) {
        let inbox = &self.inboxes[to];
        match inbox.sender.try_send(mail) {
            Ok(()) => {
                if !inbox.notified.swap(true, Ordering::AcqRel) {
                    let _ = inbox.waker.wake();
                }
                if self.lost > 0 {
                    warn!(
                        "{} messages for other loops' connections were dropped",
                        self.lost
                    );
                    self.lost = 0;
                }
            }
            Err(TrySendError::Full(_)) => {
                if self.lost == 0 {
                    warn!("loop {to} is not keeping up: messages for its connections are dropped");
                }
                self.lost += 1;
            }
            Err(TrySendError::Disconnected(_)) => {} // that loop has stopped
        }
    }

    /// Takes everything in this loop's inbox, in the order it was posted.
    pub(crate) fn drain(&mut self) -> Vec<Mail> {
        let Some(mine) = &self.mine else {
            return Vec::new();
        };
        // Cleared first: mail posted from now on wakes the loop again.
        self.inboxes[self.me]
            .notified
            .store(false, Ordering::Release);
        mine.try_iter().collect()
    }
}

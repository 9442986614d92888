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
//! An inbox is a vector behind a mutex: a sender pushes one mail, the loop takes the whole
//! vector at once. An empty inbox holds no memory, so every loop has one (a [`Publisher`]
//! (crate::Publisher) posts to a single loop too). It is bounded: a loop that cannot keep up
//! loses the mail past [`INBOX_CAPACITY`] (counted and logged once per burst), and a sender
//! never blocks. A `Publisher` checks every inbox for room before it posts a mail meant for
//! all ([`Inbox::has_room`], then [`Inbox::post_reserved`]), so that its caller learns that
//! nothing was done rather than that some loops took it. Once its loop has stopped, an inbox
//! refuses mail ([`Posted::Gone`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use log::warn;
use mio::Waker;

use super::context::Target;
use crate::ids::ConnectionId;
use crate::protocol::close::CloseCode;
use crate::protocol::outbound::Prepared;

/// Deliveries waiting in one loop's inbox at most.
pub(crate) const INBOX_CAPACITY: usize = 64 * 1024;

/// What a loop finds in its inbox.
#[derive(Debug, Clone)]
pub(crate) enum Mail {
    /// A message for some of its connections.
    Deliver(Target, Prepared),
    /// Close one of its connections ([`Publisher::close`](crate::Publisher::close)).
    Close {
        id: ConnectionId,
        code: CloseCode,
        reason: String,
    },
    /// Close its connections of this user ([`Publisher::close_user`](crate::Publisher)).
    CloseUser {
        user: Arc<str>,
        code: CloseCode,
        reason: Arc<str>,
    },
    /// A new configuration, for what can change while the loop runs
    /// ([`ServerBuilder::on_reload`](crate::ServerBuilder::on_reload)).
    Reconfigure(Arc<crate::Config>),
    /// Redis decided a claim one of its connections made (see `directory`).
    Decided {
        id: ConnectionId,
        key: String,
        granted: bool,
    },
}

/// One loop's inbox, as every loop sees it.
pub(crate) struct Inbox {
    mail: Mutex<Vec<Mail>>,
    waker: Arc<Waker>,
    /// The loop was woken and has not drained its inbox since.
    notified: AtomicBool,
    /// Its loop has stopped: nobody will read what is posted.
    closed: AtomicBool,
}

/// What became of a mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Posted {
    /// In the inbox; the loop is woken.
    Sent,
    /// The inbox is full: lost.
    Full,
    /// The loop has stopped.
    Gone,
}

impl Inbox {
    /// An inbox waking `waker`.
    pub(crate) fn new(waker: Arc<Waker>) -> Inbox {
        Inbox {
            mail: Mutex::new(Vec::new()),
            waker,
            notified: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    /// Posts `mail`, waking the loop unless it already was.
    pub(crate) fn post(&self, mail: Mail) -> Posted {
        self.post_within(mail, INBOX_CAPACITY)
    }

    /// Whether the inbox has room for another mail now.
    pub(crate) fn has_room(&self) -> bool {
        let queue = self.mail.lock().unwrap_or_else(PoisonError::into_inner);
        queue.len() < INBOX_CAPACITY
    }

    /// Posts `mail` that the sender found room for ([`Inbox::has_room`]) before it committed
    /// to sending it (kept it in history, posted it to other loops): taken even if other
    /// senders filled the inbox since, so that a mail is delivered to every loop or to none.
    /// Each concurrent sender overshoots the bound by one mail at most.
    pub(crate) fn post_reserved(&self, mail: Mail) -> Posted {
        self.post_within(mail, 2 * INBOX_CAPACITY)
    }

    fn post_within(&self, mail: Mail, capacity: usize) -> Posted {
        if self.closed.load(Ordering::Acquire) {
            return Posted::Gone;
        }
        {
            let mut queue = self.mail.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.len() >= capacity {
                return Posted::Full;
            }
            queue.push(mail);
        }
        if !self.notified.swap(true, Ordering::AcqRel) {
            let _ = self.waker.wake();
        }
        Posted::Sent
    }

    /// Whether its loop has stopped.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// A loop's view of every inbox: its own (to drain) and the others' (to post to).
pub(crate) struct Postbox {
    inboxes: Arc<[Inbox]>,
    /// This loop's index (`inboxes.len()` outside the loops).
    me: usize,
    /// Mail this loop lost to full inboxes since the last post that got through.
    lost: u64,
}

impl Postbox {
    /// Loop `me`'s postbox over `inboxes`.
    pub(crate) fn new(inboxes: Arc<[Inbox]>, me: usize) -> Postbox {
        Postbox {
            inboxes,
            me,
            lost: 0,
        }
    }

    /// Posting from outside the loops (the cluster bridge): every loop is another.
    pub(crate) fn outside(inboxes: Arc<[Inbox]>) -> Postbox {
        Postbox {
            me: inboxes.len(),
            inboxes,
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
        match self.inboxes[to].post(mail) {
            Posted::Sent => {
                if self.lost > 0 {
                    warn!(
                        "{} messages for other loops' connections were dropped",
                        self.lost
                    );
                    self.lost = 0;
                }
            }
            Posted::Full => {
                if self.lost == 0 {
                    warn!("loop {to} is not keeping up: messages for its connections are dropped");
                }
                self.lost += 1;
            }
            Posted::Gone => {} // that loop has stopped
        }
    }

    /// Takes everything in this loop's inbox, in the order it was posted.
    pub(crate) fn drain(&mut self) -> Vec<Mail> {
        let Some(mine) = self.inboxes.get(self.me) else {
            return Vec::new();
        };
        // Cleared first: mail posted from now on wakes the loop again.
        mine.notified.store(false, Ordering::Release);
        std::mem::take(&mut *mine.mail.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for Postbox {
    /// A loop's postbox goes with its loop: its inbox takes no more mail, and what waits in it
    /// is let go of.
    fn drop(&mut self) {
        if let Some(mine) = self.inboxes.get(self.me) {
            mine.closed.store(true, Ordering::Release);
            drop(std::mem::take(
                &mut *mine.mail.lock().unwrap_or_else(PoisonError::into_inner),
            ));
        }
    }
}

//! An idle run's hold: connections that send nothing, each message that arrives timed until
//! every connection has it, and the server's closes timed until the last (a shutdown). Times
//! are Unix seconds, so a script can set them against what it did itself (a publish, a
//! signal) in another process.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use mio::Events;

use super::scale::unix_now;
use super::{count, rounded, Bench};

/// The hold's record.
#[derive(Debug)]
pub(super) struct Hold {
    /// Per message (the first, the second, ...): how many connections have it, and when the
    /// first and the latest got it.
    reached: Vec<Reach>,
    /// Connections the server closed (or lost), and when the first and the last went.
    closed: usize,
    first_close: f64,
    last_close: f64,
    /// The connections that do not read (--non-readers), how many the server has closed, and
    /// when the first and the last went.
    non_readers: usize,
    cut_off: usize,
    first_cut: f64,
    last_cut: f64,
    json: bool,
}

#[derive(Debug)]
struct Reach {
    connections: usize,
    first: f64,
    last: f64,
    told: bool,
    /// Said to be late (see [`OVERDUE`]).
    overdue: bool,
}

/// How long after its first arrival a message that has not reached every connection is said
/// to be late, with how many it has reached.
const OVERDUE: f64 = 10.0;
/// How many of the connections lost during a hold are told one by one (all are counted).
const LOSSES_TOLD: usize = 3;

impl Hold {
    pub(super) fn new(json: bool, non_readers: usize) -> Hold {
        Hold {
            reached: Vec::new(),
            closed: 0,
            first_close: 0.0,
            last_close: 0.0,
            non_readers,
            cut_off: 0,
            first_cut: 0.0,
            last_cut: 0.0,
            json,
        }
    }

    /// `count` more messages reached a connection that had `received`; `open` connections
    /// that read are up. Says so once a message has reached every one.
    pub(super) fn arrived(&mut self, received: &mut u64, count: usize, open: usize) {
        let now = unix_now();
        for _ in 0..count {
            let index = *received as usize;
            *received += 1;
            if index == self.reached.len() {
                self.reached.push(Reach {
                    connections: 0,
                    first: now,
                    last: now,
                    told: false,
                    overdue: false,
                });
            }
            let Some(reach) = self.reached.get_mut(index) else {
                continue;
            };
            reach.connections += 1;
            reach.last = now;
            if reach.connections >= open && !reach.told {
                reach.told = true;
                self.tell_reached(index);
            }
        }
    }

    fn tell_reached(&self, index: usize) {
        let reach = &self.reached[index];
        println!(
            "message {} reached all {}: first at {:.6}, last at {:.6} ({:.1} ms apart)",
            index + 1,
            count(reach.connections, "connection"),
            reach.first,
            reach.last,
            (reach.last - reach.first) * 1e3
        );
        if self.json {
            println!(
                "{}",
                serde_json::json!({
                    "event": "reached",
                    "message": index + 1,
                    "connections": reach.connections,
                    "first_unix": rounded(reach.first, 6),
                    "last_unix": rounded(reach.last, 6),
                })
            );
        }
    }

    /// The server closed a connection that does not read; `left` are still open. Says so
    /// once it has closed them all.
    pub(super) fn cut_off(&mut self, left: usize) {
        let now = unix_now();
        if self.cut_off == 0 {
            self.first_cut = now;
        }
        self.cut_off += 1;
        self.last_cut = now;
        if left > 0 {
            return;
        }
        println!(
            "the server closed all {} that did not read: first at {:.6}, last at {:.6} \
             ({:.1} ms apart)",
            count(self.cut_off, "connection"),
            self.first_cut,
            self.last_cut,
            (self.last_cut - self.first_cut) * 1e3
        );
        if self.json {
            println!(
                "{}",
                serde_json::json!({
                    "event": "cut_off",
                    "connections": self.cut_off,
                    "first_unix": rounded(self.first_cut, 6),
                    "last_unix": rounded(self.last_cut, 6),
                })
            );
        }
    }

    /// An open connection that reads was closed by the server (or lost), for `why`; `open`
    /// that read are left. The first few are told as they happen. A message the lost one did
    /// not get may have reached all the others already: it is told now.
    pub(super) fn closed(&mut self, why: &str, open: usize) {
        let now = unix_now();
        if self.closed == 0 {
            self.first_close = now;
        }
        self.closed += 1;
        self.last_close = now;
        if self.closed <= LOSSES_TOLD {
            println!("a connection was closed during the hold: {why}");
            if self.json {
                println!("{}", serde_json::json!({"event": "lost", "reason": why}));
            }
        }
        for index in 0..self.reached.len() {
            let reach = &mut self.reached[index];
            if !reach.told && reach.connections >= open {
                reach.told = true;
                self.tell_reached(index);
            }
        }
    }

    /// Says which messages are late: some connections have had them for [`OVERDUE`], and
    /// not all `open` that read.
    pub(super) fn tell_overdue(&mut self, open: usize) {
        let now = unix_now();
        for (index, reach) in self.reached.iter_mut().enumerate() {
            if reach.told || reach.overdue || now - reach.first < OVERDUE {
                continue;
            }
            reach.overdue = true;
            println!(
                "message {} has reached {} of {open} connections, {OVERDUE} s after the first",
                index + 1,
                reach.connections
            );
            if self.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "event": "overdue",
                        "message": index + 1,
                        "connections": reach.connections,
                        "of": open,
                    })
                );
            }
        }
    }
}

impl Bench<'_> {
    /// Holds the open connections for `duration`, or until the server has closed them all.
    /// Success when none closed, or the server closed them all (a shutdown); a failure when
    /// some of them were lost.
    pub(super) fn hold(&mut self, duration: Duration) -> Result<ExitCode, String> {
        self.hold = Some(Hold::new(self.args.json, self.stalled));
        let held = self.open;
        let mut events = Events::with_capacity(1024);
        let end = Instant::now() + duration;
        while self.open > 0 {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            // Woken at least once a second, to say which messages are late.
            self.turn(&mut events, Some(left.min(Duration::from_secs(1))))?;
            let readers = self.open - self.stalled;
            if let Some(hold) = self.hold.as_mut() {
                hold.tell_overdue(readers);
            }
        }
        let hold = self.hold.take().expect("set above");
        let reasons = self.stats.failures();
        if self.args.json {
            println!(
                "{}",
                serde_json::json!({
                    "event": if self.open == 0 { "closed" } else { "held" },
                    "connections": held,
                    "closed": hold.closed,
                    "first_close_unix": (hold.closed > 0).then(|| rounded(hold.first_close, 6)),
                    "last_close_unix": (hold.closed > 0).then(|| rounded(hold.last_close, 6)),
                    "reasons": (!reasons.is_empty()).then_some(&reasons),
                    "non_readers": hold.non_readers,
                    "non_readers_closed": hold.cut_off,
                })
            );
        }
        if self.open == 0 {
            println!(
                "the server closed all {} within {:.1} ms (first at {:.6}, last at {:.6}): {reasons}",
                count(held, "connection"),
                (hold.last_close - hold.first_close) * 1e3,
                hold.first_close,
                hold.last_close
            );
            return Ok(ExitCode::SUCCESS);
        }
        println!("held {} for {duration:?}", count(self.open, "connection"));
        if hold.closed == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "wsloop bench: {} of {held} closed during the hold: {reasons}",
            count(hold.closed, "connection"),
        );
        Ok(ExitCode::FAILURE)
    }
}

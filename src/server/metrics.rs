//! What the loop counts about itself, and its rendering in the Prometheus text exposition format
//! (version 0.0.4) for `GET /metrics`.
//!
//! The counters are plain integers owned by the loop's thread: counting a message is an add to
//! a field the loop already has in cache, no atomics, no locks. Gauges that would cost a walk
//! over every connection (`wsloop_write_buffered_bytes`) are refreshed once a second while
//! metrics are served, and rendering happens only when someone asks.
//!
//! With several event loops, each loop leaves a copy of its counters on a shared
//! [`Board`] once a second; a scrape, answered by whichever loop accepted it, first leaves its
//! own live copy there, then sums every copy (so the other loops' figures are up to a second
//! old, and no counter goes back from one scrape to the next, whichever loop answers).

use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::history::{HistoryStats, OUTCOMES, WRITE_BUCKETS};

/// Upper bounds of the loop-turn histogram's buckets, in seconds (`+Inf` is implied).
const TURN_BUCKETS: [f64; 10] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5,
];

/// Every loop's latest copy of its counters, by loop index.
pub(crate) type Board = Arc<Mutex<Vec<Metrics>>>;

/// Every counter the loop keeps.
#[derive(Debug, Default, Clone)]
pub(crate) struct Metrics {
    /// TCP connections accepted (including those refused at the connection limit).
    pub(crate) accepted: u64,
    /// HTTP refusals by status: (status, count), few distinct statuses.
    pub(crate) refused: Vec<(u16, u64)>,
    /// Whole messages received from peers.
    pub(crate) messages_received: u64,
    /// Messages queued for peers: sends, echoes, and each receiver of a broadcast or publish.
    pub(crate) messages_sent: u64,
    /// Bytes read from peers (plaintext under TLS), HTTP heads included.
    pub(crate) bytes_received: u64,
    /// Bytes handed to the socket (or to TLS) for peers.
    pub(crate) bytes_sent: u64,
    /// Open connections that ended, by close code (1006 when dropped): (code, count).
    pub(crate) closes: Vec<(u16, u64)>,
    /// Receivers closed for leaving too much unread.
    pub(crate) slow_consumers_closed: u64,
    /// Bytes queued for peers and not yet written, summed over connections; refreshed by the
    /// loop (see [`Metrics::REFRESH`]).
    pub(crate) write_buffered: u64,
    /// Loop turns by duration: counts per bucket of [`TURN_BUCKETS`], then the `+Inf` one.
    turns: [u64; TURN_BUCKETS.len() + 1],
    /// The sum of every turn's duration, in seconds.
    turns_seconds: f64,
    /// Upgrades refused by auth (a token error's code) or a connection limit (`per_ip`,
    /// `per_user`): (reason, count).
    pub(crate) access_refused: Vec<(&'static str, u64)>,
    /// Messages over a connection's rate limit (not handed to its handler).
    pub(crate) rate_limited: u64,
    /// Open WebSocket connections by route, as of the copy left on the [`Board`].
    pub(crate) connections: Vec<usize>,
}

/// The figures the loop gives when rendering that it does not count itself.
pub(crate) struct Gauges<'a> {
    /// Open WebSocket connections per route path.
    pub(crate) connections: &'a [(&'a str, usize)],
    /// With a cluster: messages for other instances dropped at the full queue to Redis.
    pub(crate) cluster_dropped: Option<u64>,
    /// With history: what is kept, and how recoveries went.
    pub(crate) history: Option<HistoryStats>,
}

impl Metrics {
    /// How often the loop refreshes the gauges it has to walk its connections for.
    pub(crate) const REFRESH: Duration = Duration::from_secs(1);

    /// Counts one refusal with an HTTP `status`.
    pub(crate) fn refused(&mut self, status: u16) {
        bump(&mut self.refused, status);
    }

    /// Counts one upgrade refused by auth or a connection limit.
    pub(crate) fn access_refused(&mut self, reason: &'static str) {
        bump(&mut self.access_refused, reason);
    }

    /// Counts one open connection that ended with `code`.
    pub(crate) fn closed(&mut self, code: u16) {
        bump(&mut self.closes, code);
    }

    /// Adds another loop's counters to these.
    fn add(&mut self, other: &Metrics) {
        self.accepted += other.accepted;
        for &(status, count) in &other.refused {
            bump_by(&mut self.refused, status, count);
        }
        self.messages_received += other.messages_received;
        self.messages_sent += other.messages_sent;
        self.bytes_received += other.bytes_received;
        self.bytes_sent += other.bytes_sent;
        for &(code, count) in &other.closes {
            bump_by(&mut self.closes, code, count);
        }
        self.slow_consumers_closed += other.slow_consumers_closed;
        for &(reason, count) in &other.access_refused {
            bump_by(&mut self.access_refused, reason, count);
        }
        self.rate_limited += other.rate_limited;
        self.write_buffered += other.write_buffered;
        for (mine, theirs) in self.turns.iter_mut().zip(&other.turns) {
            *mine += theirs;
        }
        self.turns_seconds += other.turns_seconds;
    }

    /// Leaves `mine` (loop `me`'s live counters) on `board`, and returns the sum of every
    /// loop's copy there, with the open connections per route they reported.
    pub(crate) fn summed_on(mine: Metrics, board: &Board, me: usize) -> (Metrics, Vec<usize>) {
        let mut total = Metrics::default();
        let mut connections = Vec::new();
        let mut copies = board.lock().unwrap_or_else(PoisonError::into_inner);
        copies[me] = mine;
        for copy in copies.iter() {
            total.add(copy);
            connections.resize(connections.len().max(copy.connections.len()), 0);
            for (sum, open) in connections.iter_mut().zip(&copy.connections) {
                *sum += open;
            }
        }
        (total, connections)
    }

    /// Records how long one loop turn took.
    pub(crate) fn turn(&mut self, took: Duration) {
        let seconds = took.as_secs_f64();
        let bucket = TURN_BUCKETS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(TURN_BUCKETS.len());
        self.turns[bucket] += 1;
        self.turns_seconds += seconds;
    }

    /// The whole exposition, as served at `GET /metrics`.
    pub(crate) fn render(&self, gauges: &Gauges<'_>) -> String {
        let mut out = String::with_capacity(4096);
        family(
            &mut out,
            "wsloop_connections",
            "gauge",
            "Open WebSocket connections, by path.",
        );
        for (path, open) in gauges.connections {
            let path = escape(path);
            let _ = writeln!(out, "wsloop_connections{{path=\"{path}\"}} {open}");
        }
        counter(
            &mut out,
            "wsloop_connections_accepted_total",
            "TCP connections accepted.",
            self.accepted,
        );
        family(
            &mut out,
            "wsloop_handshakes_refused_total",
            "counter",
            "Requests refused with an HTTP error, by status.",
        );
        for (status, count) in sorted(&self.refused) {
            let _ = writeln!(
                out,
                "wsloop_handshakes_refused_total{{status=\"{status}\"}} {count}"
            );
        }
        counter(
            &mut out,
            "wsloop_messages_received_total",
            "Whole messages received from peers.",
            self.messages_received,
        );
        counter(
            &mut out,
            "wsloop_messages_sent_total",
            "Messages queued for peers (each receiver of a broadcast counts).",
            self.messages_sent,
        );
        counter(
            &mut out,
            "wsloop_bytes_received_total",
            "Bytes read from peers (plaintext under TLS).",
            self.bytes_received,
        );
        counter(
            &mut out,
            "wsloop_bytes_sent_total",
            "Bytes written to peers (plaintext under TLS).",
            self.bytes_sent,
        );
        family(
            &mut out,
            "wsloop_closes_total",
            "counter",
            "WebSocket connections that ended, by close code (1006: dropped).",
        );
        for (code, count) in sorted(&self.closes) {
            let _ = writeln!(out, "wsloop_closes_total{{code=\"{code}\"}} {count}");
        }
        counter(
            &mut out,
            "wsloop_slow_consumers_closed_total",
            "Connections closed for leaving too much unread.",
            self.slow_consumers_closed,
        );
        family(
            &mut out,
            "wsloop_access_refused_total",
            "counter",
            "Upgrades refused by token checks or connection limits, by reason.",
        );
        for (reason, count) in sorted(&self.access_refused) {
            let _ = writeln!(
                out,
                "wsloop_access_refused_total{{reason=\"{reason}\"}} {count}"
            );
        }
        counter(
            &mut out,
            "wsloop_rate_limited_total",
            "Messages over a connection's rate limit, not handed to the application.",
            self.rate_limited,
        );
        family(
            &mut out,
            "wsloop_write_buffered_bytes",
            "gauge",
            "Bytes queued for peers, not yet written (refreshed every second).",
        );
        let _ = writeln!(out, "wsloop_write_buffered_bytes {}", self.write_buffered);
        if let Some(dropped) = gauges.cluster_dropped {
            counter(
                &mut out,
                "wsloop_cluster_dropped_total",
                "Messages for other instances dropped because the queue to Redis was full.",
                dropped,
            );
        }
        if let Some(history) = gauges.history {
            family(
                &mut out,
                "wsloop_history_messages",
                "gauge",
                "Messages kept for recovery and history, in all topics.",
            );
            let _ = writeln!(out, "wsloop_history_messages {}", history.messages);
            family(
                &mut out,
                "wsloop_history_bytes",
                "gauge",
                "Bytes of the messages kept, in all topics.",
            );
            let _ = writeln!(out, "wsloop_history_bytes {}", history.bytes);
            family(
                &mut out,
                "wsloop_recoveries_total",
                "counter",
                "Reads of history from a position (recovery), by outcome.",
            );
            for (outcome, count) in OUTCOMES.iter().zip(history.recoveries) {
                let _ = writeln!(
                    out,
                    "wsloop_recoveries_total{{outcome=\"{outcome}\"}} {count}"
                );
            }
            if let Some(unkept) = history.unkept {
                family(
                    &mut out,
                    "wsloop_history_unkept_total",
                    "counter",
                    "With a cluster: messages on kept topics that Redis could not take, sent to \
                     this instance's subscribers only and not kept.",
                );
                let _ = writeln!(out, "wsloop_history_unkept_total {unkept}");
            }
            if let Some(store) = history.store {
                family(
                    &mut out,
                    "wsloop_history_store_rows_total",
                    "counter",
                    "Kept messages for the history store, by outcome: written to its file, \
                     dropped (its queue was full), failed (the write failed).",
                );
                for (outcome, count) in [
                    ("written", store.written),
                    ("dropped", store.dropped),
                    ("failed", store.failed),
                ] {
                    let _ = writeln!(
                        out,
                        "wsloop_history_store_rows_total{{outcome=\"{outcome}\"}} {count}"
                    );
                }
                histogram(
                    &mut out,
                    "wsloop_history_store_write_seconds",
                    "How long each batch written to the history store took (one transaction).",
                    (&WRITE_BUCKETS, &store.batches),
                    store.batch_nanos as f64 / 1e9,
                );
            }
        }
        histogram(
            &mut out,
            "wsloop_loop_turn_seconds",
            "How long each event-loop turn took, from wakeup to the last write.",
            (&TURN_BUCKETS, &self.turns),
            self.turns_seconds,
        );
        out
    }
}

/// A histogram: `counts` per bucket of `bounds`, then the `+Inf` one; `sum` in seconds.
fn histogram(
    out: &mut String,
    name: &str,
    help: &str,
    (bounds, counts): (&[f64], &[u64]),
    sum: f64,
) {
    family(out, name, "histogram", help);
    let mut cumulative = 0;
    for (bound, count) in bounds.iter().zip(counts) {
        cumulative += count;
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
    }
    cumulative += counts[bounds.len()];
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {cumulative}");
}

fn bump<K: PartialEq>(counts: &mut Vec<(K, u64)>, key: K) {
    bump_by(counts, key, 1);
}

fn bump_by<K: PartialEq>(counts: &mut Vec<(K, u64)>, key: K, by: u64) {
    match counts.iter_mut().find(|(k, _)| *k == key) {
        Some((_, count)) => *count += by,
        None => counts.push((key, by)),
    }
}

fn sorted<K: Ord + Copy>(counts: &[(K, u64)]) -> Vec<(K, u64)> {
    let mut counts = counts.to_vec();
    counts.sort_unstable();
    counts
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    family(out, name, "counter", help);
    let _ = writeln!(out, "{name} {value}");
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::history::StoreStats;

    #[test]
    fn renders_every_family_with_labels_sorted_and_cumulative_buckets() {
        let mut metrics = Metrics {
            accepted: 3,
            ..Metrics::default()
        };
        metrics.refused(404);
        metrics.refused(403);
        metrics.refused(404);
        metrics.closed(1000);
        metrics.closed(1006);
        metrics.turn(Duration::from_micros(5));
        metrics.turn(Duration::from_micros(200));
        metrics.turn(Duration::from_secs(2));
        let text = metrics.render(&Gauges {
            connections: &[("/", 2), ("/a\"b", 0)],
            cluster_dropped: Some(7),
            history: Some(HistoryStats {
                messages: 3,
                bytes: 120,
                recoveries: [5, 1, 0, 2, 0],
                unkept: Some(4),
                store: Some(StoreStats {
                    written: 40,
                    dropped: 2,
                    failed: 1,
                    batches: [0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 1],
                    batch_nanos: 2_500_000_000,
                }),
            }),
        });
        for line in [
            "wsloop_connections{path=\"/\"} 2",
            "wsloop_connections{path=\"/a\\\"b\"} 0",
            "wsloop_connections_accepted_total 3",
            "wsloop_handshakes_refused_total{status=\"403\"} 1",
            "wsloop_handshakes_refused_total{status=\"404\"} 2",
            "wsloop_closes_total{code=\"1006\"} 1",
            "wsloop_loop_turn_seconds_bucket{le=\"0.00001\"} 1",
            "wsloop_loop_turn_seconds_bucket{le=\"0.0005\"} 2",
            "wsloop_loop_turn_seconds_bucket{le=\"0.5\"} 2",
            "wsloop_loop_turn_seconds_bucket{le=\"+Inf\"} 3",
            "wsloop_loop_turn_seconds_count 3",
            "wsloop_cluster_dropped_total 7",
            "wsloop_history_messages 3",
            "wsloop_history_unkept_total 4",
            "wsloop_history_bytes 120",
            "wsloop_recoveries_total{outcome=\"recovered\"} 5",
            "wsloop_recoveries_total{outcome=\"ahead\"} 2",
            "wsloop_history_store_rows_total{outcome=\"written\"} 40",
            "wsloop_history_store_rows_total{outcome=\"dropped\"} 2",
            "wsloop_history_store_rows_total{outcome=\"failed\"} 1",
            "wsloop_history_store_write_seconds_bucket{le=\"0.0005\"} 0",
            "wsloop_history_store_write_seconds_bucket{le=\"0.001\"} 3",
            "wsloop_history_store_write_seconds_bucket{le=\"5\"} 3",
            "wsloop_history_store_write_seconds_bucket{le=\"+Inf\"} 4",
            "wsloop_history_store_write_seconds_sum 2.5",
            "wsloop_history_store_write_seconds_count 4",
            "# TYPE wsloop_history_store_write_seconds histogram",
            "# TYPE wsloop_loop_turn_seconds histogram",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in\n{text}"
            );
        }
        let refused_403 = text.find("status=\"403\"").unwrap();
        let refused_404 = text.find("status=\"404\"").unwrap();
        assert!(refused_403 < refused_404, "labels sorted");
    }
}

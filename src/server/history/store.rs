//! Write-behind persistence of the history: the loops hand each kept message to a bounded
//! queue ([`Store::push`], which never waits), and one thread of the store's own writes them
//! to the SQLite file ([`sqlite::Writer`]) in batches, one transaction each. The memory log
//! stays the only thing reads and appends touch, so a slow or failing disk delays nothing on
//! a loop: a full queue drops the message for the file (counted, logged once) while it goes
//! out live as always, and recovery is served from memory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::log::{Bounds, Log, Mark};
use super::sqlite::{self, Row, Writer};
use super::{unix_ms, StoreStats, WRITE_BUCKETS};

/// Messages waiting for the writer at most; past it (or past the history's memory bound in
/// bytes) they are dropped for the file.
pub(crate) const QUEUE: usize = 16_384;
/// Messages per transaction at most.
const MAX_BATCH: usize = 4096;
/// How long the writer lets a batch gather after its first message: one commit (a few pages
/// of WAL) for many messages instead of one each, at the cost of this much more delay before
/// they reach the file.
const LINGER: Duration = Duration::from_millis(10);
/// How often the writer lets go of what expired.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);
/// How long closing waits for the writer to write what is queued.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the writer and the loops count, for `/metrics`.
#[derive(Debug, Default)]
struct Counters {
    written: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    /// Committed batches by duration: per bucket of [`WRITE_BUCKETS`], then `+Inf`.
    batches: [AtomicU64; WRITE_BUCKETS.len() + 1],
    batch_nanos: AtomicU64,
}

impl Counters {
    fn committed(&self, took: Duration, rows: usize) {
        let seconds = took.as_secs_f64();
        let bucket = (WRITE_BUCKETS.iter())
            .position(|&bound| seconds <= bound)
            .unwrap_or(WRITE_BUCKETS.len());
        self.batches[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.batch_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.written.fetch_add(rows as u64, Ordering::Relaxed);
    }
}

/// The loops' handle on the store (see the module docs).
#[derive(Debug)]
pub(crate) struct Store {
    path: PathBuf,
    /// `None` once closed.
    queue: Mutex<Option<SyncSender<Row>>>,
    /// Where every stream stands at close, for the writer's last transaction.
    marks: Arc<Mutex<Option<Vec<Mark>>>>,
    counters: Arc<Counters>,
    /// Bytes of the messages queued, and the most there may be: a message evicted from memory
    /// but not yet written still takes its bytes.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    /// The last push found the queue full (logged once until it takes a message again).
    full: AtomicBool,
    /// The writer's thread, and a channel that disconnects when it ends.
    thread: Mutex<Option<(JoinHandle<()>, Receiver<()>)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// Opens the file at `path` (see [`sqlite::open`]) and starts its writer; returns the log
    /// of what it kept. The error is one line, without the path.
    pub(crate) fn open(
        path: &Path,
        bounds: Bounds,
        new_epoch: &mut dyn FnMut() -> std::sync::Arc<str>,
    ) -> Result<(Store, Log), String> {
        let (log, writer) = sqlite::open(path, bounds, unix_ms(), new_epoch)?;
        let (queue, rows) = mpsc::sync_channel(QUEUE);
        let (ended, done) = mpsc::sync_channel::<()>(0);
        let marks = Arc::new(Mutex::new(None));
        let counters = Arc::new(Counters::default());
        let queued = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::Builder::new()
            .name("wsloop-history".into())
            .spawn({
                let (marks, counters, queued) = (marks.clone(), counters.clone(), queued.clone());
                move || {
                    let _ended = ended; // dropped however this thread ends
                    run(writer, &rows, &marks, &counters, &queued);
                }
            })
            .map_err(|e| format!("cannot start its writer thread: {e}"))?;
        let store = Store {
            path: path.to_path_buf(),
            queue: Mutex::new(Some(queue)),
            marks,
            counters,
            queued,
            max_queued: bounds.total_bytes,
            full: AtomicBool::new(false),
            thread: Mutex::new(Some((thread, done))),
        };
        Ok((store, log))
    }

    /// Queues `row` for the file, or drops it there (counted) when the queue is full: called
    /// on a loop, under the history's lock (so the writer gets each topic's messages in
    /// order), and never waits.
    pub(crate) fn push(&self, row: Row) {
        let queue = lock(&self.queue);
        let bytes = row.message.frame_len();
        // Only the writer takes bytes off meanwhile: what fits now still fits when sent.
        let fits = self.queued.load(Ordering::Relaxed) + bytes <= self.max_queued;
        let sent = queue.as_ref().map(|queue| match fits {
            true => queue.try_send(row),
            false => Err(TrySendError::Full(row)),
        });
        let refused = match sent {
            Some(Ok(())) => {
                self.queued.fetch_add(bytes, Ordering::Relaxed);
                if self.full.load(Ordering::Relaxed) && self.full.swap(false, Ordering::Relaxed) {
                    log::info!(
                        "history store {}: the write queue takes messages again",
                        self.path.display()
                    );
                }
                return;
            }
            Some(Err(TrySendError::Full(_))) => "its write queue is full (the disk is behind)",
            Some(Err(TrySendError::Disconnected(_))) => "its writer stopped",
            None => "it is closed",
        };
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        if !self.full.swap(true, Ordering::Relaxed) {
            log::warn!(
                "history store {}: {refused}: messages go out live and recovery is served from \
                 memory, but some will not be there after a restart",
                self.path.display()
            );
        }
    }

    /// Lets the writer write what is queued, then `marks` (where every stream stands), and
    /// close the file cleanly; waits for it, at most [`CLOSE_TIMEOUT`]. Only the first call
    /// does anything.
    pub(crate) fn close(&self, marks: Vec<Mark>) {
        *lock(&self.marks) = Some(marks);
        self.stop();
    }

    /// Closes the queue and waits for the writer (bounded).
    fn stop(&self) {
        let Some(queue) = lock(&self.queue).take() else {
            return;
        };
        drop(queue); // the writer ends once it has written what was queued
        let Some((thread, done)) = lock(&self.thread).take() else {
            return;
        };
        match done.recv_timeout(CLOSE_TIMEOUT) {
            Err(RecvTimeoutError::Timeout) => log::warn!(
                "history store {}: still writing after {CLOSE_TIMEOUT:?}; not waiting longer \
                 (the next start gives its streams new epochs)",
                self.path.display()
            ),
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if thread.join().is_err() {
                    log::error!("history store {}: its writer panicked", self.path.display());
                }
            }
        }
    }

    /// What `/metrics` shows.
    pub(crate) fn stats(&self) -> StoreStats {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        StoreStats {
            written: load(&self.counters.written),
            dropped: load(&self.counters.dropped),
            failed: load(&self.counters.failed),
            batches: self.counters.batches.each_ref().map(load),
            batch_nanos: load(&self.counters.batch_nanos),
        }
    }
}

#[cfg(test)]
impl Store {
    /// Stops the writer after what is queued without closing the file cleanly: what a crash
    /// leaves (the file still says a server has it).
    pub(crate) fn abandon(&self) {
        self.stop();
    }
}

/// The writer's thread: batches until the queue closes, sweeps about once a second, and
/// closes the file cleanly when it was given the marks to close it with.
fn run(
    mut writer: Writer,
    rows: &Receiver<Row>,
    marks: &Mutex<Option<Vec<Mark>>>,
    counters: &Counters,
    queued: &AtomicUsize,
) {
    let mut trouble = Trouble::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut sweep_at = Instant::now() + SWEEP_PERIOD;
    loop {
        match rows.recv_timeout(sweep_at.saturating_duration_since(Instant::now())) {
            Ok(row) => {
                batch.push(row);
                batch.extend(rows.try_iter().take(MAX_BATCH - 1));
                if batch.len() < MAX_BATCH {
                    std::thread::sleep(LINGER); // the writer's own thread: no loop waits
                    batch.extend(rows.try_iter().take(MAX_BATCH - batch.len()));
                }
                let started = Instant::now();
                let result = writer.write(&batch);
                match result {
                    Ok(()) => counters.committed(started.elapsed(), batch.len()),
                    Err(_) => {
                        _ = counters
                            .failed
                            .fetch_add(batch.len() as u64, Ordering::Relaxed)
                    }
                }
                trouble.report(writer.path(), result, batch.len());
                let bytes = batch.iter().map(|row| row.message.frame_len()).sum();
                queued.fetch_sub(bytes, Ordering::Relaxed);
                batch.clear();
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if Instant::now() >= sweep_at {
            sweep_at = Instant::now() + SWEEP_PERIOD;
            let result = writer.sweep(unix_ms()).map(drop);
            trouble.report(writer.path(), result, 0);
        }
    }
    let Some(marks) = lock(marks).take() else {
        return;
    };
    if let Err(e) = writer.finish(&marks) {
        log::error!(
            "history store {}: cannot close it cleanly ({e}); the next start gives its streams \
             new epochs",
            writer.path().display()
        );
    }
}

/// Whether writes fail: logged when they start failing, and once more when they work again.
#[derive(Debug, Default)]
struct Trouble {
    /// Messages not written since writes began to fail.
    failing: Option<u64>,
}

impl Trouble {
    fn report(&mut self, path: &Path, result: rusqlite::Result<()>, rows: usize) {
        let rows = rows as u64;
        match (result, &mut self.failing) {
            (Ok(()), None) => {}
            (Ok(()), Some(lost)) => {
                log::info!(
                    "history store {}: writing again; {lost} message(s) were not stored",
                    path.display()
                );
                self.failing = None;
            }
            (Err(e), None) => {
                log::warn!(
                    "history store {}: cannot write ({e}): messages go out live and recovery \
                     is served from memory, but they will not be there after a restart",
                    path.display()
                );
                self.failing = Some(rows);
            }
            (Err(_), Some(lost)) => *lost += rows,
        }
    }
}

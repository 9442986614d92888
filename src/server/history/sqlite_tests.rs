//! The SQLite store with scratch files and simulated time: what a clean and an unclean close
//! leave, gaps, every bound in the file and at load, a failing disk, the files it refuses,
//! and the writer thread's flush at close.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::log::{Bounds, Log, Mark};
use super::sqlite::{self, Row, Writer};
use super::store::Store;
use super::{NotRecovered, StreamPosition};
use crate::protocol::outbound::{Message, Prepared};

const BOUNDS: Bounds = Bounds {
    per_topic: 100,
    ttl_ms: 60_000,
    total_bytes: 1 << 20,
};

/// A file in the temporary directory, removed (with its WAL) when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let path =
            std::env::temp_dir().join(format!("wsloop-unit-{name}-{}.sqlite", std::process::id()));
        remove(&path);
        Scratch(path)
    }
}

fn remove(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove(&self.0);
    }
}

/// Epochs "n1", "n2", ... for streams that need a new one.
fn fresh() -> impl FnMut() -> Arc<str> {
    let mut n = 0;
    move || {
        n += 1;
        format!("n{n}").into()
    }
}

fn open(path: &Path, bounds: Bounds, now: u64) -> (Log, Writer) {
    sqlite::open(path, bounds, now, &mut fresh()).expect("the file opens")
}

fn row(topic: &str, epoch: &str, offset: u64, at: u64) -> Row {
    Row {
        topic: topic.into(),
        epoch: epoch.into(),
        offset,
        at,
        message: Prepared::new(Message::Text(&format!("{topic} {offset}"))),
    }
}

fn rows(topic: &str, epoch: &str, offsets: impl IntoIterator<Item = u64>, at: u64) -> Vec<Row> {
    offsets
        .into_iter()
        .map(|n| row(topic, epoch, n, at))
        .collect()
}

fn mark(topic: &str, epoch: &str, next: u64, last_at: u64) -> Mark {
    Mark {
        topic: topic.into(),
        epoch: epoch.into(),
        next,
        last_at,
    }
}

fn at(offset: u64, epoch: &str) -> StreamPosition {
    StreamPosition {
        offset,
        epoch: epoch.into(),
    }
}

/// The offsets `log` serves of `topic` after `since` at `now`, checking each payload.
fn served(
    log: &Log,
    topic: &str,
    since: Option<&StreamPosition>,
    now: u64,
) -> Result<Vec<u64>, NotRecovered> {
    let page = log.read(topic, since, 1000, now, BOUNDS)?;
    for kept in &page.messages {
        let expected = format!("{topic} {}", kept.offset());
        assert_eq!(kept.message(), Message::Text(&expected));
    }
    Ok(page.messages.iter().map(|kept| kept.offset()).collect())
}

fn count(writer: &Writer, table: &str) -> u64 {
    let sql = format!("SELECT count(*) FROM {table}");
    writer.conn().query_row(&sql, [], |row| row.get(0)).unwrap()
}

#[test]
fn a_file_closed_cleanly_gives_back_every_stream_where_it_stood() {
    let file = Scratch::new("clean");
    let (log, mut writer) = open(&file.0, BOUNDS, 1000);
    assert_eq!(log.size(), (0, 0), "a new file keeps nothing");
    writer.write(&rows("a", "e1", 1..=3, 1000)).unwrap();
    let mut more = rows("b", "e2", 1..=2, 1001);
    more.extend(rows("a", "e1", 4..=5, 1002));
    writer.write(&more).unwrap();
    writer
        .finish(&[mark("a", "e1", 6, 1002), mark("b", "e2", 3, 1001)])
        .unwrap();
    drop(writer);

    let (log, _writer) = open(&file.0, BOUNDS, 2000);
    assert_eq!(log.position("a"), Some(at(5, "e1")), "the same epoch");
    assert_eq!(log.position("b"), Some(at(2, "e2")));
    assert_eq!(
        served(&log, "a", Some(&at(2, "e1")), 2000),
        Ok(vec![3, 4, 5])
    );
    assert_eq!(served(&log, "b", None, 2000), Ok(vec![1, 2]));
    assert_eq!(log.size().0, 7);
}

#[test]
fn after_an_unclean_close_streams_go_on_under_new_epochs() {
    let file = Scratch::new("unclean");
    let (_, mut writer) = open(&file.0, BOUNDS, 0);
    writer.write(&rows("a", "e1", 1..=4, 0)).unwrap();
    drop(writer); // a crash: what was still queued never came

    let (mut log, _writer) = open(&file.0, BOUNDS, 10);
    assert_eq!(log.position("a"), Some(at(4, "n1")));
    assert!(matches!(
        log.read("a", Some(&at(2, "e1")), 10, 10, BOUNDS),
        Err(NotRecovered::OtherEpoch(_))
    ));
    assert_eq!(
        served(&log, "a", Some(&at(2, "n1")), 10),
        Ok(vec![3, 4]),
        "the messages stay, under the new epoch"
    );
    let (next, _) = log.append("a", 20, BOUNDS, fresh(), |_| {
        Prepared::new(Message::Text("a 5"))
    });
    assert_eq!(next, at(5, "n1"), "offsets go on");
}

#[test]
fn messages_the_file_missed_leave_a_gap_that_is_never_served() {
    let file = Scratch::new("gaps");
    let (_, mut writer) = open(&file.0, BOUNDS, 0);
    // 8 was dropped at the full queue; the marks at close say where the streams truly stand.
    writer
        .write(&rows("a", "e1", (1..=10).filter(|n| *n != 8), 0))
        .unwrap();
    writer.write(&rows("tail", "e1", 1..=5, 0)).unwrap();
    writer
        .finish(&[mark("a", "e1", 11, 0), mark("tail", "e1", 8, 0)])
        .unwrap();
    drop(writer);

    let (log, _writer) = open(&file.0, BOUNDS, 0);
    assert_eq!(served(&log, "a", None, 0), Ok(vec![9, 10]));
    assert!(matches!(
        log.read("a", Some(&at(7, "e1")), 10, 0, BOUNDS),
        Err(NotRecovered::Evicted(_))
    ));
    assert_eq!(
        log.position("tail"),
        Some(at(7, "e1")),
        "6 and 7 never reached the file: none of it is served, no offset is reused"
    );
    assert_eq!(served(&log, "tail", None, 0), Ok(vec![]));
}

#[test]
fn the_file_keeps_the_per_topic_bound_and_forgets_as_memory_does() {
    let file = Scratch::new("bounds");
    let bounds = Bounds {
        per_topic: 3,
        ..BOUNDS
    };
    let (_, mut writer) = open(&file.0, bounds, 0);
    writer.write(&rows("a", "e1", 1..=10, 0)).unwrap();
    writer.write(&rows("b", "e1", 1..=2, 30_000)).unwrap();
    assert_eq!(count(&writer, "messages"), 5, "a keeps 3, b 2");
    writer.write(&rows("a", "e2", 1..=1, 30_000)).unwrap();
    assert_eq!(
        count(&writer, "messages"),
        3,
        "a new epoch lets go of the old"
    );
    writer.write(&rows("a", "e2", 2..=2, 30_000)).unwrap();
    writer.write(&rows("c", "e1", 1..=1, 0)).unwrap();
    assert_eq!(writer.sweep(60_001).unwrap(), 0);
    assert_eq!(count(&writer, "messages"), 4, "c's message expired");
    assert_eq!(writer.sweep(120_001).unwrap(), 1, "c forgotten");
    assert_eq!(count(&writer, "streams"), 2);
    drop(writer);

    // Loaded at 95 s: the TTL leaves nothing, yet the streams keep their places.
    let (mut log, writer) = open(&file.0, bounds, 95_000);
    assert_eq!(log.size().0, 0);
    assert_eq!(
        log.position("a"),
        Some(at(2, "n1")),
        "after an unclean close"
    );
    let (next, _) = log.append("a", 95_000, bounds, fresh(), |_| {
        Prepared::new(Message::Text("x"))
    });
    assert_eq!(next.offset, 3);
    drop((writer, log));
    // Loaded two TTLs after the streams last grew: forgotten, as memory forgets them. The
    // next message starts a new stream, and the old one's rows never come back under it.
    let (mut log, mut writer) = open(&file.0, bounds, 150_001);
    assert_eq!(log.position("a"), None);
    let (first, _) = log.append(
        "a",
        150_001,
        bounds,
        || "e3".into(),
        |_| Prepared::new(Message::Text("a 1")),
    );
    assert_eq!(first, at(1, "e3"));
    writer.write(&[row("a", "e3", 1, 150_001)]).unwrap();
    writer.finish(&log.marks()).unwrap();
    drop((writer, log));
    let (log, _writer) = open(&file.0, bounds, 150_002);
    assert_eq!(served(&log, "a", Some(&at(0, "e3")), 150_002), Ok(vec![1]));
    assert_eq!(log.position("a"), Some(at(1, "e3")));
}

#[test]
fn at_load_the_byte_bound_keeps_the_newest_across_topics() {
    let file = Scratch::new("bytes");
    let frame = Prepared::new(Message::Text("a 10")).frame_len();
    let (_, mut writer) = open(&file.0, BOUNDS, 0);
    // Offsets 1 to 9 are published and lost; 10 to 19 are kept, every frame the same size.
    for n in 10..=19 {
        writer.write(&[row("a", "e", n, 2 * n)]).unwrap();
        writer.write(&[row("b", "e", n, 2 * n + 1)]).unwrap();
    }
    writer
        .finish(&[mark("a", "e", 20, 38), mark("b", "e", 20, 39)])
        .unwrap();
    drop(writer);
    let bounds = Bounds {
        total_bytes: 9 * frame,
        ..BOUNDS
    };
    let (log, _writer) = open(&file.0, bounds, 100);
    assert_eq!(log.size().0, 9);
    assert_eq!(served(&log, "a", None, 100), Ok((16..=19).collect()));
    assert_eq!(served(&log, "b", None, 100), Ok((15..=19).collect()));
}

#[test]
fn a_full_disk_fails_the_batch_and_the_next_one_writes_again() {
    let file = Scratch::new("full");
    let (_, mut writer) = open(&file.0, BOUNDS, 0);
    writer.write(&rows("a", "e1", 1..=2, 0)).unwrap();
    let pages: u64 = (writer.conn())
        .query_row("PRAGMA page_count", [], |row| row.get(0))
        .unwrap();
    let set_max = |writer: &Writer, pages: u64| {
        let sql = format!("PRAGMA max_page_count = {pages}");
        writer.conn().query_row(&sql, [], |_| Ok(())).unwrap();
    };
    set_max(&writer, pages);
    let big = Row {
        message: Prepared::new(Message::Binary(&[7; 64 << 10])),
        ..row("a", "e1", 3, 0)
    };
    let full = writer.write(&[big]).unwrap_err();
    assert_eq!(
        full.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DiskFull)
    );
    set_max(&writer, 1 << 20);
    writer.write(&rows("a", "e1", 4..=5, 0)).unwrap();
    writer.finish(&[mark("a", "e1", 6, 0)]).unwrap();
    drop(writer);
    let (log, _writer) = open(&file.0, BOUNDS, 0);
    assert_eq!(served(&log, "a", None, 0), Ok(vec![4, 5]), "3 was lost");
}

fn refused(path: &Path) -> String {
    match sqlite::open(path, BOUNDS, 0, &mut fresh()) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(reason) => reason,
    }
}

#[test]
fn files_that_cannot_be_used_are_refused_saying_why() {
    let text = Scratch::new("text");
    std::fs::write(&text.0, "not a database, just some text\n".repeat(100)).unwrap();
    assert_eq!(refused(&text.0), "not an SQLite database");

    let file = Scratch::new("taken");
    let (_log, _writer) = open(&file.0, BOUNDS, 0);
    assert_eq!(
        refused(&file.0),
        "in use by another process (another wsloop with the same file?)"
    );

    let missing = std::env::temp_dir().join("wsloop-no-such-directory/history.sqlite");
    let reason = refused(&missing);
    assert!(reason.contains("no directory"), "{reason}");

    let other = Scratch::new("other");
    rusqlite::Connection::open(&other.0)
        .unwrap()
        .execute_batch("CREATE TABLE accounts (id INTEGER PRIMARY KEY)")
        .unwrap();
    assert_eq!(
        refused(&other.0),
        "an SQLite database, but not a wsloop history store"
    );
}

#[test]
fn the_store_writes_behind_and_close_writes_what_is_queued() {
    let file = Scratch::new("store");
    let (store, log) = Store::open(&file.0, BOUNDS, &mut fresh()).unwrap();
    assert_eq!(log.size(), (0, 0));
    let now = super::unix_ms();
    for n in 1..=2000 {
        store.push(row("a", "e1", n, now));
    }
    store.close(vec![mark("a", "e1", 2001, now)]);
    let stats = store.stats();
    assert_eq!((stats.written, stats.dropped, stats.failed), (2000, 0, 0));
    assert!(stats.batches.iter().sum::<u64>() >= 1);
    store.push(row("a", "e1", 2001, now));
    assert_eq!(store.stats().dropped, 1, "closed: counted, not written");
    drop(store);
    let (log, _writer) = open(&file.0, BOUNDS, now);
    assert_eq!(log.position("a"), Some(at(2000, "e1")));
    assert_eq!(log.size().0, 100, "the last 100");

    // The queue holds no more bytes than the history's memory bound.
    let file = Scratch::new("queue-bytes");
    let small = Bounds {
        total_bytes: 1000,
        ..BOUNDS
    };
    let (store, _) = Store::open(&file.0, small, &mut fresh()).unwrap();
    store.push(Row {
        message: Prepared::new(Message::Binary(&[0; 2000])),
        ..row("a", "e1", 1, now)
    });
    store.push(row("a", "e1", 2, now));
    store.close(vec![mark("a", "e1", 3, now)]);
    let stats = store.stats();
    assert_eq!((stats.written, stats.dropped), (1, 1));

    let file = Scratch::new("crash");
    let (store, _) = Store::open(&file.0, BOUNDS, &mut fresh()).unwrap();
    store.push(row("a", "e1", 1, now));
    store.abandon();
    let (log, _writer) = open(&file.0, BOUNDS, now);
    assert_eq!(log.position("a"), Some(at(1, "n1")));
}

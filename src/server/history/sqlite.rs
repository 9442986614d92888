//! The SQLite file behind the history ([`HistoryOptions::sqlite`](super::HistoryOptions::sqlite)):
//! opened and loaded once at start, then written by one thread ([`Writer`]) that owns the
//! connection. Nothing here runs on an event loop.
//!
//! The file holds each stream's place (`streams`: epoch, the next offset, when it last grew),
//! kept even when all its messages expired so that offsets never restart within an epoch, and
//! its newest messages (`messages`). A `meta` row says whether a server has the file open: a
//! file left "running" was not closed cleanly (a crash, a kill), so its last messages may never
//! have reached it; each of its streams then takes a new epoch at the next start, and no
//! client is told a position that another message may have had.
//!
//! The file is the server's alone while it runs (SQLite's exclusive locking mode): a second
//! server on the same file is refused at start instead of writing the same streams twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

use super::log::{Bounds, Log, Mark, Restored};
use super::Kept;
use crate::protocol::outbound::{Message, Prepared};

/// `PRAGMA application_id` of a wsloop history file ("wslp").
const APPLICATION_ID: i32 = 0x7773_6c70;
/// `PRAGMA user_version`: the schema below.
const SCHEMA_VERSION: i32 = 1;

const SCHEMA: &str = "
    CREATE TABLE streams (
        topic TEXT PRIMARY KEY,
        epoch TEXT NOT NULL,
        next INTEGER NOT NULL,
        last_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE messages (
        topic TEXT NOT NULL,
        offset INTEGER NOT NULL,
        at INTEGER NOT NULL,
        opcode INTEGER NOT NULL,
        payload BLOB NOT NULL,
        UNIQUE (topic, offset)
    );
    CREATE INDEX messages_at ON messages (at);
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
";

const UPSERT_STREAM: &str = "
    INSERT INTO streams (topic, epoch, next, last_at) VALUES (?1, ?2, ?3, ?4)
    ON CONFLICT (topic) DO UPDATE
    SET epoch = excluded.epoch, next = excluded.next, last_at = excluded.last_at";

/// A message on its way to the file.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) topic: Arc<str>,
    pub(crate) epoch: Arc<str>,
    pub(crate) offset: u64,
    /// When it was published, in Unix milliseconds.
    pub(crate) at: u64,
    pub(crate) message: Prepared,
}

/// Why the file cannot be used, in words for a one-line error naming it.
fn reason(path: &Path, e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => "not an SQLite database".into(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "in use by another process (another wsloop with the same file?)".into()
        }
        Some(ErrorCode::CannotOpen) => match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => {
                format!("cannot create it: no directory {}", dir.display())
            }
            _ => format!("cannot open or create it ({e})"),
        },
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            format!("cannot write to it ({e})")
        }
        _ => e.to_string(),
    }
}

/// Opens (or creates) the file at `path`, takes it for this server, and loads what it keeps
/// within `bounds` at `now` (Unix ms). Streams get their stored epochs, except after an
/// unclean close: then `new_epoch` names each one anew.
pub(crate) fn open(
    path: &Path,
    bounds: Bounds,
    now: u64,
    new_epoch: &mut dyn FnMut() -> Arc<str>,
) -> Result<(Log, Writer), String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(|e| reason(path, &e))?;
    let (streams, log, renamed) = take(&mut conn, bounds, now, new_epoch).map_err(|e| match e {
        Refused::Sqlite(e) => reason(path, &e),
        Refused::Foreign(why) => why,
    })?;
    if let Some(renamed) = renamed {
        log::warn!(
            "history store {}: the last server did not close it cleanly; its {renamed} \
             stream(s) go on under new epochs",
            path.display()
        );
    }
    let writer = Writer {
        conn,
        path: path.to_path_buf(),
        bounds,
        streams,
    };
    Ok((log, writer))
}

/// Why a file was refused.
enum Refused {
    Sqlite(rusqlite::Error),
    /// An SQLite file, but not ours (or of a schema this version does not know).
    Foreign(String),
}

impl From<rusqlite::Error> for Refused {
    fn from(e: rusqlite::Error) -> Refused {
        Refused::Sqlite(e)
    }
}

/// What the file holds of each stream: its epoch and next offset.
type Held = HashMap<Arc<str>, (Arc<str>, u64)>;

/// Locks the file for this connection, checks or creates the schema, marks it running and
/// loads it; with how many streams took a new epoch, if it was not closed cleanly.
fn take(
    conn: &mut Connection,
    bounds: Bounds,
    now: u64,
    new_epoch: &mut dyn FnMut() -> Arc<str>,
) -> Result<(Held, Log, Option<usize>), Refused> {
    conn.busy_timeout(Duration::ZERO)?; // another owner: refuse now, not in 5 s
    conn.pragma_update_and_check(None, "locking_mode", "EXCLUSIVE", |_| Ok(()))?;
    conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
    // The mark that a server has the file must be on the disk before any offset is given
    // out: a power loss must not take the file back to "closed cleanly" behind new messages.
    // After it, commits need not wait for the disk (WAL: a lost tail, never a torn file).
    conn.pragma_update(None, "synchronous", "FULL")?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
    let app: i32 = tx.pragma_query_value(None, "application_id", |row| row.get(0))?;
    let version: i32 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let objects: i64 = tx.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))?;
    match (app, objects) {
        (0, 0) => {
            tx.execute_batch(SCHEMA)?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        (APPLICATION_ID, _) if version == SCHEMA_VERSION => {}
        (APPLICATION_ID, _) => {
            return Err(Refused::Foreign(format!(
                "a wsloop history of schema version {version}; this wsloop reads version \
                 {SCHEMA_VERSION}"
            )))
        }
        _ => {
            return Err(Refused::Foreign(
                "an SQLite database, but not a wsloop history store".into(),
            ))
        }
    }
    let running: Option<i64> = tx
        .query_row("SELECT value FROM meta WHERE key = 'running'", [], |row| {
            row.get(0)
        })
        .optional()?;
    let unclean = running == Some(1);
    let mut streams = Vec::new();
    {
        let mut select = tx.prepare("SELECT topic, epoch, next, last_at FROM streams")?;
        let mut rows = select.query([])?;
        while let Some(row) = rows.next()? {
            let topic: String = row.get(0)?;
            let epoch: String = row.get(1)?;
            let mark = Mark {
                topic: topic.into(),
                epoch: epoch.into(),
                next: row.get(2)?,
                last_at: row.get(3)?,
            };
            streams.push(mark);
        }
    }
    if unclean {
        let mut rename = tx.prepare("UPDATE streams SET epoch = ?2 WHERE topic = ?1")?;
        for stream in &mut streams {
            stream.epoch = new_epoch();
            rename.execute(params![&*stream.topic, &*stream.epoch])?;
        }
    }
    let log = load(&tx, &streams, bounds, now)?;
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('running', 1)",
        [],
    )?;
    tx.commit()?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let renamed = unclean.then_some(streams.len());
    let held = (streams.into_iter())
        .map(|mark| (mark.topic, (mark.epoch, mark.next)))
        .collect();
    Ok((held, log, renamed))
}

/// The log of what `streams` keep within `bounds` at `now`: each stream's newest messages
/// younger than the TTL, at most the per-topic count, consecutive up to its last offset, and
/// in all no more bytes than the bound (the newest across topics first). Streams silent for
/// two TTLs are forgotten, as the memory log forgets them.
fn load(conn: &Connection, streams: &[Mark], bounds: Bounds, now: u64) -> rusqlite::Result<Log> {
    let horizon = now.saturating_sub(bounds.ttl_ms);
    let forget = now.saturating_sub(2 * bounds.ttl_ms);
    let mut select = conn.prepare(
        "SELECT offset, at, opcode, payload FROM messages
         WHERE topic = ?1 AND offset >= ?2 ORDER BY offset DESC",
    )?;
    // Each stream's messages, newest first.
    let mut found: Vec<(&Mark, Vec<Kept>)> = Vec::new();
    for mark in streams.iter().filter(|mark| mark.last_at >= forget) {
        let first = mark.next.saturating_sub(bounds.per_topic as u64);
        let mut rows = select.query(params![&*mark.topic, first])?;
        let mut kept = Vec::new();
        while let Some(row) = rows.next()? {
            let (offset, at, opcode): (u64, u64, u8) = (row.get(0)?, row.get(1)?, row.get(2)?);
            let payload = row.get_ref(3)?.as_blob()?;
            let message = match opcode {
                1 => std::str::from_utf8(payload).ok().map(Message::Text),
                _ => Some(Message::Binary(payload)),
            };
            // A gap (a message the queue or the disk lost) ends what can be served.
            let expected = mark.next.checked_sub(1 + kept.len() as u64);
            let (Some(message), true, true) = (message, Some(offset) == expected, at >= horizon)
            else {
                break;
            };
            let message = Prepared::new(message);
            kept.push(Kept {
                offset,
                at,
                message,
            });
        }
        found.push((mark, kept));
    }
    // The byte bound: the newest messages across topics first.
    let mut newest: Vec<(u64, usize, usize)> = Vec::new();
    for (index, (_, kept)) in found.iter().enumerate() {
        newest.extend(kept.iter().map(|k| (k.at, index, k.message.frame_len())));
    }
    newest.sort_by_key(|&(at, ..)| std::cmp::Reverse(at));
    let mut take = vec![0; found.len()];
    let mut bytes = 0;
    for (_, index, len) in newest {
        bytes += len;
        if bytes > bounds.total_bytes {
            break;
        }
        take[index] += 1;
    }
    let restored = (found.into_iter().zip(take))
        .map(|((mark, mut kept), take)| {
            kept.truncate(take);
            kept.reverse();
            Restored {
                topic: mark.topic.clone(),
                epoch: mark.epoch.clone(),
                next: mark.next,
                last_at: mark.last_at,
                kept,
            }
        })
        .collect();
    Ok(Log::restore(restored))
}

/// The connection, on the store's thread: writes messages in batches, lets go of what the
/// bounds no longer keep, and closes the file cleanly.
pub(crate) struct Writer {
    conn: Connection,
    path: PathBuf,
    bounds: Bounds,
    /// What the file holds of each stream (as of the last commit).
    streams: Held,
}

impl Writer {
    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `rows` (in the order they were appended) in one transaction, and trims each
    /// stream they touched to the per-topic bound. A stream under a new epoch first lets go
    /// of the old one's messages.
    pub(crate) fn write(&mut self, rows: &[Row]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        // What this batch changes: each stream's epoch, next offset and last time.
        let mut touched: HashMap<Arc<str>, (Arc<str>, u64, u64)> = HashMap::new();
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO messages (topic, offset, at, opcode, payload)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut clear = tx.prepare_cached("DELETE FROM messages WHERE topic = ?1")?;
            for row in rows {
                let held = match touched.get(&row.topic) {
                    Some((epoch, ..)) => Some(epoch),
                    None => self.streams.get(&row.topic).map(|(epoch, _)| epoch),
                };
                if held != Some(&row.epoch) {
                    clear.execute([&*row.topic])?;
                }
                let message = row.message.message();
                let opcode = match message {
                    Message::Text(_) => 1,
                    Message::Binary(_) => 2,
                };
                let payload = message.as_bytes();
                insert.execute(params![&*row.topic, row.offset, row.at, opcode, payload])?;
                let stream = (row.epoch.clone(), row.offset + 1, row.at);
                touched.insert(row.topic.clone(), stream);
            }
            let mut upsert = tx.prepare_cached(UPSERT_STREAM)?;
            let mut trim =
                tx.prepare_cached("DELETE FROM messages WHERE topic = ?1 AND offset < ?2")?;
            for (topic, (epoch, next, last_at)) in &touched {
                upsert.execute(params![&**topic, &**epoch, next, last_at])?;
                let first = next.saturating_sub(self.bounds.per_topic as u64);
                trim.execute(params![&**topic, first])?;
            }
        }
        tx.commit()?;
        for (topic, (epoch, next, _)) in touched {
            self.streams.insert(topic, (epoch, next));
        }
        Ok(())
    }

    /// Lets go of messages older than the TTL at `now`, and of streams silent for two TTLs
    /// (as the memory log does); returns how many streams it forgot.
    pub(crate) fn sweep(&mut self, now: u64) -> rusqlite::Result<usize> {
        let tx = self.conn.transaction()?;
        let horizon = now.saturating_sub(self.bounds.ttl_ms);
        tx.execute("DELETE FROM messages WHERE at < ?1", [horizon])?;
        let forget = now.saturating_sub(2 * self.bounds.ttl_ms);
        let forgotten: Vec<String> = tx
            .prepare("DELETE FROM streams WHERE last_at < ?1 RETURNING topic")?
            .query_map([forget], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        tx.commit()?;
        for topic in &forgotten {
            self.streams.remove(topic.as_str());
        }
        Ok(forgotten.len())
    }

    /// Records where every stream in memory stands (`marks`: messages the queue dropped
    /// leave the file behind, never ahead) and marks the file closed cleanly.
    pub(crate) fn finish(&mut self, marks: &[Mark]) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut clear = tx.prepare("DELETE FROM messages WHERE topic = ?1")?;
            let mut upsert = tx.prepare(UPSERT_STREAM)?;
            for mark in marks {
                let held = self.streams.get(&mark.topic).map(|(epoch, _)| epoch);
                if held != Some(&mark.epoch) {
                    clear.execute([&*mark.topic])?;
                }
                let Mark {
                    topic,
                    epoch,
                    next,
                    last_at,
                } = mark;
                upsert.execute(params![&**topic, &**epoch, next, last_at])?;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('running', 0)",
            [],
        )?;
        tx.commit()
    }
}

#[cfg(test)]
impl Writer {
    /// The connection, for tests that make the disk fail (`PRAGMA max_page_count`) or look.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

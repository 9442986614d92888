//! A connection's outgoing bytes: frames wait here until the socket takes them.
//!
//! Small frames are appended to the last owned chunk, so a burst of echoes costs one
//! allocation, not one per frame; a frame shared with other receivers (a broadcast) is queued
//! by reference, never copied. The loop writes a queue with one vectored write per turn.
//!
//! An echo's payload may stay where it was read: `WriteQueue::push_frame_from_input` queues
//! a range of the caller's input buffer instead of a copy, and the caller writes the queue with
//! that buffer (`WriteQueue::write_from_input`) and has what is left copied
//! (`WriteQueue::own_input`) before the buffer is read into again.
//!
//! The sink contract ([`WriteQueue::write_to`]): `Ok(n)` took the first `n` bytes;
//! `WouldBlock` means "full for now, try again when writable"; `Ok(0)` for a non-empty write
//! means the sink can never take more (a closed socket), and is reported as `WriteZero`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

use super::frame::{encode_header, short_header, OpCode, MAX_HEADER_LEN};
use super::mask::apply_mask;
use crate::buffer_pool::{give_back, recycle, take_buffer};

/// Frames smaller than this are appended to the previous owned chunk instead of starting one.
const COALESCE_LIMIT: usize = 16 * 1024;
/// Shared frames up to this size are copied into the queue rather than referenced.
const COPY_SHARED_LIMIT: usize = 1024;
/// The most chunks handed to one vectored write.
const MAX_IOVECS: usize = 64;

#[derive(Debug)]
enum Chunk {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
    /// A message payload shared with the connection that received it (an echo).
    Gathered(Arc<Vec<u8>>),
    /// A payload still in the input buffer it was read into: `len` bytes at `offset`.
    Input {
        offset: usize,
        len: usize,
    },
}

impl Chunk {
    /// Its bytes; those of an [`Chunk::Input`] are in `input`.
    fn bytes<'a>(&'a self, input: &'a [u8]) -> &'a [u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Shared(s) => s,
            Chunk::Gathered(v) => v,
            Chunk::Input { offset, len } => &input[*offset..*offset + *len],
        }
    }

    fn len(&self) -> usize {
        match self {
            Chunk::Input { len, .. } => *len,
            other => other.bytes(&[]).len(),
        }
    }
}

/// Bytes waiting to be written, in order.
#[derive(Debug, Default)]
pub struct WriteQueue {
    /// `None` while nothing waits: an idle connection's queue is one pointer.
    pending: Option<Box<Pending>>,
}

/// What a queue holds while bytes wait.
#[derive(Debug, Default)]
struct Pending {
    /// The bytes before `tail`, in order.
    chunks: VecDeque<Chunk>,
    /// Owned bytes after every chunk, where small frames are appended: kept out of the chunk
    /// list so an append (a frame per message) finds it without walking to the list's end.
    tail: Vec<u8>,
    /// How much of the front is already written: of the first chunk, or of `tail` when there
    /// is no chunk.
    front_written: usize,
    /// Unwritten bytes in the whole queue.
    len: usize,
}

impl WriteQueue {
    /// Unwritten bytes.
    pub fn len(&self) -> usize {
        self.pending.as_ref().map_or(0, |pending| pending.len)
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The waiting bytes, made room for when the queue was idle.
    #[inline]
    fn pending(&mut self) -> &mut Pending {
        self.pending.get_or_insert_with(take_record)
    }

    /// Queues one frame with FIN set: unmasked (a server's frame), or masked with `mask` (a
    /// client's frame, §5.3); `rsv1` for a compressed message (RFC 7692 §6).
    pub(crate) fn push_frame(
        &mut self,
        rsv1: bool,
        opcode: OpCode,
        payload: &[u8],
        mask: Option<[u8; 4]>,
    ) {
        if mask.is_none() {
            if let Some(header) = short_header(rsv1, opcode, payload.len()) {
                return self.push_short_frame(header, payload);
            }
        }
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut header, true, rsv1, opcode, payload.len() as u64, mask);
        let pending = self.pending();
        let tail = pending.tail_with_room(n + payload.len());
        tail.extend_from_slice(&header[..n]);
        let start = tail.len();
        tail.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut tail[start..], key, 0);
        }
        pending.len += n + payload.len();
    }

    /// Queues a server's frame whose payload is under 126 bytes, the most common, with its
    /// header from [`short_header`]: made in a register and stored in one go, not copied from
    /// a buffer written byte by byte.
    #[inline]
    pub(crate) fn push_short_frame(&mut self, header: [u8; 2], payload: &[u8]) {
        let pending = self.pending();
        let tail = pending.tail_with_room(2 + payload.len());
        tail.extend_from_slice(&header);
        tail.extend_from_slice(payload);
        pending.len += 2 + payload.len();
    }

    /// Queues one unmasked frame whose payload is shared, not copied: the header goes into an
    /// owned chunk, the payload follows as its own chunk.
    pub(crate) fn push_frame_shared(&mut self, opcode: OpCode, payload: Arc<Vec<u8>>) {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut header, true, false, opcode, payload.len() as u64, None);
        let pending = self.pending();
        pending.tail_with_room(n).extend_from_slice(&header[..n]);
        pending.len += n + payload.len();
        pending.push_chunk(Chunk::Gathered(payload));
    }

    /// Queues one unmasked frame whose payload is `input[offset..offset + len]` of the input
    /// buffer being received, not copied. Until [`WriteQueue::own_input`], the queue may only
    /// be written with that buffer ([`WriteQueue::write_from_input`]).
    pub(crate) fn push_frame_from_input(&mut self, opcode: OpCode, offset: usize, len: usize) {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut header, true, false, opcode, len as u64, None);
        let pending = self.pending();
        pending.tail_with_room(n).extend_from_slice(&header[..n]);
        pending.len += n + len;
        pending.push_chunk(Chunk::Input { offset, len });
    }

    /// Whether payloads of the input buffer wait in the queue.
    pub(crate) fn holds_input(&self) -> bool {
        self.pending.as_ref().is_some_and(|pending| {
            pending
                .chunks
                .iter()
                .any(|chunk| matches!(chunk, Chunk::Input { .. }))
        })
    }

    /// Copies what is still unwritten of the input buffer's payloads into the queue, so the
    /// buffer can be read into again.
    pub(crate) fn own_input(&mut self, input: &[u8]) {
        let Some(pending) = self.pending.as_mut() else {
            return;
        };
        for chunk in pending.chunks.iter_mut() {
            if let Chunk::Input { offset, len } = *chunk {
                let mut owned = take_buffer(len);
                owned.extend_from_slice(&input[offset..offset + len]);
                *chunk = Chunk::Owned(owned);
            }
        }
    }

    /// Queues raw bytes (an HTTP message).
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        let pending = self.pending();
        pending.tail_with_room(bytes.len()).extend_from_slice(bytes);
        pending.len += bytes.len();
    }

    /// Queues an encoded frame shared with other queues (a published message). A small one is
    /// copied after what is already queued instead: a receiver's frames of one turn then go
    /// out in one `send` from one buffer, where shared ones would be one iovec each.
    pub(crate) fn push_shared(&mut self, frame: &Arc<[u8]>) {
        let pending = self.pending();
        pending.len += frame.len();
        if frame.len() <= COPY_SHARED_LIMIT {
            pending.tail_with_room(frame.len()).extend_from_slice(frame);
        } else {
            pending.push_chunk(Chunk::Shared(Arc::clone(frame)));
        }
    }

    /// Writes as much as `sink` takes; returns bytes written. Stops at `WouldBlock` (not an
    /// error) or when the queue is empty.
    pub fn write_to(&mut self, sink: &mut impl Write) -> io::Result<usize> {
        debug_assert!(
            !self.holds_input(),
            "input payloads need their buffer to be written"
        );
        self.write_from_input(sink, &[])
    }

    /// Like [`WriteQueue::write_to`], with `input` the buffer the queued input payloads are in
    /// ([`WriteQueue::push_frame_from_input`]).
    pub(crate) fn write_from_input(
        &mut self,
        sink: &mut impl Write,
        input: &[u8],
    ) -> io::Result<usize> {
        let Some(pending) = self.pending.as_mut() else {
            return Ok(0);
        };
        let written = pending.write_to(sink, input);
        if pending.len == 0 {
            // An idle connection keeps no queue memory.
            if let Some(record) = self.pending.take() {
                give_back_record(record);
            }
        }
        written
    }
}

/// The records of queues that emptied on this thread, kept for the next queues that fill: a
/// broadcast to a thousand receivers fills and empties a thousand queues every turn, and would
/// otherwise allocate and free two blocks for each (the record and its chunk list).
struct SpareRecords {
    // Boxed: a queue holds its record boxed, and takes a spare one without allocating.
    #[allow(clippy::vec_box)]
    records: Vec<Box<Pending>>,
    /// The fewest records held since the last trim: that many sat unused throughout.
    low_water: usize,
    max: usize,
}

/// The most spare records a thread that never trims keeps (a blocking client's).
const SPARE_RECORDS_MAX: usize = 64;
/// The most spare records a thread that trims keeps (a server loop's).
const TRIMMED_RECORDS_MAX: usize = 1 << 16;
/// The longest chunk list a spare record keeps its room for.
const SPARE_CHUNKS_MAX: usize = 16;

/// The largest tail buffer the last record given back keeps (see `LAST_RECORD`).
const LAST_TAIL_MAX: usize = 64 * 1024;

thread_local! {
    static SPARE_RECORDS: RefCell<SpareRecords> = const {
        RefCell::new(SpareRecords { records: Vec::new(), low_water: 0, max: SPARE_RECORDS_MAX })
    };
    /// The record given back last on this thread, its tail's buffer still in it: the next
    /// queue to fill takes both in one step. Echoing, a loop fills and empties one queue per
    /// read, one connection after another; through the spare lists that moved two blocks each
    /// time (callgrind: about 150 instructions per read).
    static LAST_RECORD: Cell<Option<Box<Pending>>> = const { Cell::new(None) };
}

fn take_record() -> Box<Pending> {
    if let Some(record) = LAST_RECORD.try_with(Cell::take).ok().flatten() {
        return record;
    }
    let spare = SPARE_RECORDS.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        let record = spare.records.pop();
        spare.low_water = spare.low_water.min(spare.records.len());
        record
    });
    spare.ok().flatten().unwrap_or_default()
}

fn give_back_record(mut record: Box<Pending>) {
    debug_assert!(record.chunks.is_empty() && record.tail.is_empty() && record.len == 0);
    record.front_written = 0;
    if record.tail.capacity() <= LAST_TAIL_MAX && record.chunks.capacity() <= SPARE_CHUNKS_MAX {
        match LAST_RECORD.try_with(|last| last.replace(Some(record))) {
            Ok(Some(previous)) => record = previous,
            _ => return,
        }
    }
    keep_spare_record(record);
}

/// Keeps an emptied record in the thread's spare list, its tail's buffer among the spare
/// buffers.
fn keep_spare_record(mut record: Box<Pending>) {
    if record.tail.capacity() > 0 {
        give_back(std::mem::take(&mut record.tail));
    }
    if record.chunks.capacity() > SPARE_CHUNKS_MAX {
        record.chunks.shrink_to(SPARE_CHUNKS_MAX);
    }
    let _ = SPARE_RECORDS.try_with(|spare| {
        let mut spare = spare.borrow_mut();
        if spare.records.len() < spare.max {
            spare.records.push(record);
        }
    });
}

/// Lets go of the spare queue records no queue took since the last call, and from now on lets
/// this thread keep up to [`TRIMMED_RECORDS_MAX`] (see `buffer_pool::trim`). Returns whether
/// spare records remain.
pub(crate) fn trim_spare_records() -> bool {
    // The last record joins the others: let go like them once unused for a whole period.
    if let Some(last) = LAST_RECORD.with(Cell::take) {
        keep_spare_record(last);
    }
    SPARE_RECORDS.with(|spare| {
        let mut spare = spare.borrow_mut();
        spare.max = TRIMMED_RECORDS_MAX;
        let unused = spare.low_water.min(spare.records.len());
        spare.records.drain(..unused);
        spare.low_water = spare.records.len();
        !spare.records.is_empty()
    })
}

impl Pending {
    /// The owned bytes to append `extra` bytes to: the tail, unless that would grow it past
    /// [`COALESCE_LIMIT`]; then the tail becomes a chunk and a new one is started.
    #[inline]
    fn tail_with_room(&mut self, extra: usize) -> &mut Vec<u8> {
        if !self.tail.is_empty() && self.tail.len() + extra > COALESCE_LIMIT {
            self.seal_tail();
        }
        if self.tail.capacity() == 0 {
            self.tail = take_buffer(extra);
        }
        &mut self.tail
    }

    /// Queues `chunk` after everything queued so far, the tail included.
    fn push_chunk(&mut self, chunk: Chunk) {
        self.seal_tail();
        self.chunks.push_back(chunk);
    }

    /// Moves the tail's bytes, if any, to the end of the chunk list.
    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let tail = std::mem::take(&mut self.tail);
            self.chunks.push_back(Chunk::Owned(tail));
        }
    }

    /// [`WriteQueue::write_from_input`].
    fn write_to(&mut self, sink: &mut impl Write, input: &[u8]) -> io::Result<usize> {
        let mut total = 0;
        while self.len > 0 {
            let result = if self.chunks.is_empty() {
                // Only the tail: most echoes are small frames appended to it. One `send`, a
                // shorter path through the kernel than `writev` (no iovec import, no VFS
                // layer), and no iovec array to fill.
                sink.write(&self.tail[self.front_written..])
            } else {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                let pieces = self.chunks.iter().map(|chunk| chunk.bytes(input));
                let tail = Some(&self.tail[..]).filter(|tail| !tail.is_empty());
                for (i, bytes) in pieces.chain(tail).take(MAX_IOVECS).enumerate() {
                    let skip = if i == 0 { self.front_written } else { 0 };
                    slices[i] = IoSlice::new(&bytes[skip..]);
                    count += 1;
                }
                if count == 1 {
                    sink.write(&slices[0])
                } else {
                    sink.write_vectored(&slices[..count])
                }
            };
            let written = match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.advance(written);
            total += written;
        }
        Ok(total)
    }

    fn advance(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front() else {
                // Only the tail is left.
                self.front_written += n;
                if self.front_written == self.tail.len() {
                    // Its buffer stays for the next bytes, or goes with the emptied record.
                    self.tail.clear();
                    self.front_written = 0;
                }
                return;
            };
            let front_left = front.len() - self.front_written;
            if n < front_left {
                self.front_written += n;
                return;
            }
            n -= front_left;
            match self.chunks.pop_front() {
                Some(Chunk::Owned(buffer)) => give_back(buffer),
                Some(Chunk::Gathered(payload)) => recycle(payload),
                _ => {}
            }
            self.front_written = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that takes at most `limit` bytes per call, then reports WouldBlock when full.
    struct Trickle {
        got: Vec<u8>,
        limit: usize,
        capacity: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let room = self.capacity - self.got.len();
            if room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.limit).min(room);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn bytes_come_out_in_order_across_partial_writes() {
        let mut q = WriteQueue::default();
        q.push_bytes(b"HTTP");
        q.push_frame(false, OpCode::Text, b"hi", None);
        q.push_shared(&Arc::from(&b"shared"[..]));
        q.push_frame(false, OpCode::Binary, &[1u8; 20_000], None);
        let total = q.len();
        let mut sink = Trickle {
            got: Vec::new(),
            limit: 7,
            capacity: 100,
        };
        assert_eq!(q.write_to(&mut sink).unwrap(), 100);
        assert_eq!(q.len(), total - 100);
        sink.capacity = usize::MAX;
        q.write_to(&mut sink).unwrap();
        assert!(q.is_empty());
        let mut expected = b"HTTP\x81\x02hishared\x82\x7e\x4e\x20".to_vec();
        expected.extend_from_slice(&[1u8; 20_000]);
        assert_eq!(sink.got, expected);
    }

    /// Counts the writes it takes, each whole.
    #[derive(Default)]
    struct Counting {
        got: Vec<u8>,
        writes: usize,
    }

    impl Write for Counting {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes += 1;
            self.got.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            self.writes += 1;
            bufs.iter().for_each(|b| self.got.extend_from_slice(b));
            Ok(bufs.iter().map(|b| b.len()).sum())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn small_shared_frames_are_copied_so_a_turn_of_them_is_one_buffer() {
        let small: Arc<[u8]> = Arc::from(&b"\x81\x02hi"[..]);
        let large: Arc<[u8]> = Arc::from(vec![7u8; COPY_SHARED_LIMIT + 1]);
        let mut q = WriteQueue::default();
        for _ in 0..10 {
            q.push_shared(&small);
        }
        assert_eq!(Arc::strong_count(&small), 1, "small frames are copied");
        q.push_shared(&large);
        assert_eq!(Arc::strong_count(&large), 2, "a large frame is shared");
        let mut sink = Counting::default();
        q.write_to(&mut sink).unwrap();
        assert_eq!(sink.writes, 1);
        let mut expected = b"\x81\x02hi".repeat(10);
        expected.extend_from_slice(&large);
        assert_eq!(sink.got, expected);
        assert_eq!(Arc::strong_count(&large), 1, "written out, let go");
    }

    #[test]
    fn an_emptied_queue_record_is_kept_for_the_next_queue_and_trimmed_when_unused() {
        // Each test runs on its own thread: its spare records start empty.
        let spare = || {
            let last = LAST_RECORD.with(|last| {
                let record = last.take();
                let held = record.is_some();
                last.set(record);
                held
            });
            SPARE_RECORDS.with(|s| s.borrow().records.len()) + usize::from(last)
        };
        let mut q = WriteQueue::default();
        q.push_bytes(b"abc");
        q.write_to(&mut Counting::default()).unwrap();
        assert!(q.is_empty());
        assert_eq!(spare(), 1, "the record is kept, the queue holds none");
        let mut other = WriteQueue::default();
        other.push_bytes(b"d");
        assert_eq!(spare(), 0, "the next queue takes it");
        other.write_to(&mut Counting::default()).unwrap();
        assert!(trim_spare_records(), "used during the period: kept");
        assert!(
            !trim_spare_records(),
            "unused through a whole period: let go"
        );
        assert_eq!(spare(), 0);
    }

    #[test]
    fn a_shared_payload_follows_its_header_in_order() {
        let mut q = WriteQueue::default();
        q.push_frame(false, OpCode::Text, b"a", None);
        q.push_frame_shared(OpCode::Binary, Arc::new(vec![9u8; 300]));
        q.push_frame(false, OpCode::Text, b"b", None);
        let mut sink = Trickle {
            got: Vec::new(),
            limit: 50,
            capacity: usize::MAX,
        };
        q.write_to(&mut sink).unwrap();
        let mut expected = b"\x81\x01a\x82\x7e\x01\x2c".to_vec();
        expected.extend_from_slice(&[9u8; 300]);
        expected.extend_from_slice(b"\x81\x01b");
        assert_eq!(sink.got, expected);
    }

    #[test]
    fn rsv1_marks_the_frame_pushed_whether_or_not_it_shares_a_chunk() {
        let mut q = WriteQueue::default();
        q.push_frame(false, OpCode::Text, b"a", None);
        q.push_frame(true, OpCode::Text, b"b", None);
        q.push_frame(true, OpCode::Binary, &[0u8; 20_000], None);
        let mut sink = Trickle {
            got: Vec::new(),
            limit: usize::MAX,
            capacity: usize::MAX,
        };
        q.write_to(&mut sink).unwrap();
        assert_eq!(&sink.got[..6], b"\x81\x01a\xc1\x01b");
        assert_eq!(sink.got[6], 0xc2);
    }

    #[test]
    fn an_input_payload_goes_out_from_its_buffer_or_is_copied_before_the_buffer_is_reused() {
        let mut input = b"xxxx0123456789yy".to_vec();
        let mut q = WriteQueue::default();
        q.push_frame(false, OpCode::Text, b"a", None);
        q.push_frame_from_input(OpCode::Binary, 4, 10);
        q.push_frame(false, OpCode::Text, b"b", None);
        assert!(q.holds_input());
        assert_eq!(q.len(), 3 + 12 + 3);
        let mut sink = Trickle {
            got: Vec::new(),
            limit: usize::MAX,
            capacity: 8,
        };
        assert_eq!(q.write_from_input(&mut sink, &input).unwrap(), 8);
        q.own_input(&input);
        assert!(!q.holds_input());
        input.fill(b'!'); // the buffer is read into again
        sink.capacity = usize::MAX;
        q.write_to(&mut sink).unwrap();
        assert_eq!(sink.got, b"\x81\x01a\x82\x0a0123456789\x81\x01b");
    }

    /// Appends to the tail, chunks pushed behind it and partial writes, interleaved: the bytes
    /// still come out in the order they were queued.
    #[test]
    fn pushes_between_partial_writes_keep_their_order() {
        let frame_of = |payload: &[u8]| {
            let mut frame = Vec::new();
            crate::protocol::frame::encode_frame(&mut frame, false, OpCode::Binary, payload, None);
            frame
        };
        let mut q = WriteQueue::default();
        let mut expected = Vec::new();
        let mut sink = Trickle {
            got: Vec::new(),
            limit: 5,
            capacity: 0,
        };
        for round in 0..200usize {
            let payload = vec![round as u8; round * 37 % 300];
            match round % 4 {
                0 | 1 => q.push_frame(false, OpCode::Binary, &payload, None),
                2 => q.push_frame_shared(OpCode::Binary, Arc::new(payload.clone())),
                _ => q.push_shared(&Arc::from(frame_of(&payload))),
            }
            expected.extend_from_slice(&frame_of(&payload));
            sink.capacity += round * 7 % 31;
            let _ = q.write_to(&mut sink);
        }
        sink.capacity = usize::MAX;
        sink.limit = usize::MAX;
        q.write_to(&mut sink).unwrap();
        assert!(q.is_empty());
        assert_eq!(sink.got, expected);
    }

    #[test]
    fn small_frames_share_a_chunk() {
        let mut q = WriteQueue::default();
        for _ in 0..100 {
            q.push_frame(false, OpCode::Text, b"0123456789", None);
        }
        let pending = q.pending();
        assert!(pending.chunks.is_empty(), "all in the tail");
        assert_eq!(pending.tail.len(), 1200);
        assert_eq!(q.len(), 1200);
    }
}

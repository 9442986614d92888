//! Spare byte buffers shared by every connection on a thread (a server's loop runs on one):
//! write-queue chunks and message reassembly buffers are taken from here and given back when
//! done. Without it a connection echoing 16 KiB messages allocates and frees a chunk per
//! message, and the allocator grows and trims the heap with a `brk` call each time
//! (`strace -c`: one `brk` per echo; 64k -> 118k msgs/s at 100 x 16 KiB once reused). With it,
//! an idle connection still holds no buffer of its own.
//!
//! A thread that calls [`trim`] about once a second (the server's loop) may keep far more: up
//! to what it recently had in use at once, since every buffer that sat unused through a whole
//! trim period is let go at the next. Echoing 100 x 1 MiB needs about 100 MiB of buffers in
//! flight; allocating them afresh costs a page fault per 4 KiB and a `brk` trim when freed,
//! about a fifth of the server's time (`perf record`: `exc_page_fault` and friends). Other
//! threads, such as a blocking client's, keep at most [`SPARE_MAX_BYTES`].

use std::cell::RefCell;

/// The spare buffers of one thread, in two size classes so a small request (a frame header)
/// never takes a large buffer (a 1 MiB message's) that a large request then has to regrow.
#[derive(Debug)]
struct SparePool {
    classes: [SpareStack; 2],
    bytes: usize,
    max_bytes: usize,
}

/// Spare buffers of one size class, the least recently given back first.
#[derive(Debug)]
struct SpareStack {
    buffers: Vec<Vec<u8>>,
    /// The fewest buffers the stack held since the last trim: that many sat unused throughout.
    low_water: usize,
}

/// The most bytes of spare buffers a thread that never trims keeps, and the largest buffer
/// worth keeping.
const SPARE_MAX_BYTES: usize = 8 << 20;
const SPARE_MAX_BUFFER: usize = 2 << 20;
/// The most bytes of spare buffers a thread that trims keeps.
const TRIMMED_MAX_BYTES: usize = 256 << 20;
/// The largest capacity of the small class.
const SMALL_MAX: usize = 64 * 1024;

thread_local! {
    static SPARE: RefCell<SparePool> = const {
        RefCell::new(SparePool {
            classes: [
                SpareStack { buffers: Vec::new(), low_water: 0 },
                SpareStack { buffers: Vec::new(), low_water: 0 },
            ],
            bytes: 0,
            max_bytes: SPARE_MAX_BYTES,
        })
    };
}

/// The size class of a buffer with (or a request for) `capacity` bytes.
fn class(capacity: usize) -> usize {
    usize::from(capacity > SMALL_MAX)
}

/// An empty buffer with room for `capacity` bytes, reused when one is spare.
pub(crate) fn take_buffer(capacity: usize) -> Vec<u8> {
    let mut buffer = take_spare(capacity);
    buffer.clear();
    buffer
}

/// A buffer with room for at least `capacity` bytes whose contents are whatever its last user
/// left, reused when one is spare: a caller that writes into it in place need not zero again
/// what is already initialised.
pub(crate) fn take_spare(capacity: usize) -> Vec<u8> {
    let spare = SPARE.with(|pool| {
        let mut pool = pool.borrow_mut();
        let stack = &mut pool.classes[class(capacity)];
        let buffer = stack.buffers.pop()?;
        stack.low_water = stack.low_water.min(stack.buffers.len());
        pool.bytes -= buffer.capacity();
        Some(buffer)
    });
    match spare {
        Some(mut buffer) => {
            buffer.reserve(capacity.saturating_sub(buffer.len()));
            buffer
        }
        None => Vec::with_capacity(capacity.max(256)),
    }
}

/// Keeps a written-out buffer for reuse, within the pool's limits.
pub(crate) fn give_back(buffer: Vec<u8>) {
    if buffer.capacity() > SPARE_MAX_BUFFER {
        return;
    }
    SPARE.with(|pool| {
        let mut pool = pool.borrow_mut();
        if pool.bytes + buffer.capacity() <= pool.max_bytes {
            pool.bytes += buffer.capacity();
            pool.classes[class(buffer.capacity())].buffers.push(buffer);
        }
    });
}

/// Gives a shared buffer back once its last holder lets go of it.
pub(crate) fn recycle(buffer: std::sync::Arc<Vec<u8>>) {
    if let Ok(buffer) = std::sync::Arc::try_unwrap(buffer) {
        give_back(buffer);
    }
}

/// Lets go of the buffers no one took since the last call, and from now on lets this thread
/// keep up to [`TRIMMED_MAX_BYTES`]. Returns whether spare buffers remain (another call is due).
pub(crate) fn trim() -> bool {
    SPARE.with(|pool| {
        let mut pool = pool.borrow_mut();
        pool.max_bytes = TRIMMED_MAX_BYTES;
        let mut freed = 0;
        for stack in &mut pool.classes {
            let unused = stack.low_water.min(stack.buffers.len());
            freed += stack
                .buffers
                .drain(..unused)
                .map(|b| b.capacity())
                .sum::<usize>();
            stack.low_water = stack.buffers.len();
        }
        pool.bytes -= freed;
        pool.bytes > 0
    })
}

/// Bytes of spare buffers this thread holds.
#[cfg(test)]
pub(crate) fn spare_bytes() -> usize {
    SPARE.with(|pool| pool.borrow().bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_lets_go_of_buffers_unused_for_a_whole_period() {
        // Each test runs on its own thread, so this pool starts empty.
        assert!(!trim(), "an empty pool needs no further trim");
        for _ in 0..4 {
            give_back(Vec::with_capacity(1 << 20));
        }
        assert_eq!(spare_bytes(), 4 << 20);
        assert!(trim(), "buffers given back during the period are kept");
        assert_eq!(spare_bytes(), 4 << 20);

        // One buffer is in use at the busiest moment of the next period: three sat unused.
        let in_use = take_buffer(1 << 20);
        give_back(in_use);
        assert!(trim());
        assert_eq!(spare_bytes(), 1 << 20);

        assert!(!trim(), "the last one went unused through a period too");
        assert_eq!(spare_bytes(), 0);
    }

    #[test]
    fn a_small_request_does_not_take_a_large_buffer() {
        give_back(Vec::with_capacity(1 << 20));
        give_back(Vec::with_capacity(1024));
        give_back(Vec::with_capacity(1 << 20));
        assert_eq!(take_buffer(14).capacity(), 1024);
        assert_eq!(take_buffer(256 * 1024).capacity(), 1 << 20);
        assert!(
            take_buffer(14).capacity() < 1 << 20,
            "only large ones are left"
        );
        assert_eq!(spare_bytes(), 1 << 20);
    }

    #[test]
    fn a_thread_that_trims_keeps_more_than_one_that_does_not() {
        for _ in 0..16 {
            give_back(Vec::with_capacity(1 << 20));
        }
        assert_eq!(spare_bytes(), SPARE_MAX_BYTES);
        trim();
        for _ in 0..16 {
            give_back(Vec::with_capacity(1 << 20));
        }
        assert_eq!(spare_bytes(), SPARE_MAX_BYTES + (16 << 20));
    }
}

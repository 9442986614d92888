//! The buffer a message is gathered in: the message's bytes so far, then initialised room that
//! a caller may read the rest of a large frame straight into, so its payload is not copied a
//! second time on the way.

use crate::buffer_pool::{give_back, take_spare};

/// `bytes[..filled]` is the message so far; `bytes[filled..]` is room whose contents mean
/// nothing. The room stays initialised across messages, and across reuse from the thread's
/// spare pool, so it is zeroed only the first time a buffer grows into it.
#[derive(Debug, Default)]
pub(crate) struct Reassembly {
    bytes: Vec<u8>,
    filled: usize,
}

impl Reassembly {
    /// Bytes of the message so far.
    pub(crate) fn len(&self) -> usize {
        self.filled
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Whether a buffer is held at all (an idle connection holds none).
    pub(crate) fn holds_buffer(&self) -> bool {
        self.bytes.capacity() > 0
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Forgets the message; keeps the buffer.
    pub(crate) fn clear(&mut self) {
        self.filled = 0;
    }

    /// Makes sure `additional` more bytes fit without growing the buffer again.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let needed = self.filled + additional;
        if !self.holds_buffer() {
            self.bytes = take_spare(needed);
        } else {
            self.bytes.reserve(needed.saturating_sub(self.bytes.len()));
        }
    }

    /// Appends `data` to the message.
    pub(crate) fn append(&mut self, data: &[u8]) {
        let into_room = data.len().min(self.bytes.len() - self.filled);
        let end = self.filled + into_room;
        self.bytes[self.filled..end].copy_from_slice(&data[..into_room]);
        self.bytes.extend_from_slice(&data[into_room..]);
        self.filled += data.len();
    }

    /// The `len` bytes of room right after the message so far, for the caller to fill.
    pub(crate) fn room(&mut self, len: usize) -> &mut [u8] {
        let end = self.filled + len;
        if self.bytes.len() < end {
            self.reserve(len);
            self.bytes.resize(end, 0);
        }
        &mut self.bytes[self.filled..end]
    }

    /// The first `len` bytes of room, filled by the caller, now belong to the message.
    pub(crate) fn commit(&mut self, len: usize) {
        assert!(
            self.filled + len <= self.bytes.len(),
            "committed beyond the room"
        );
        self.filled += len;
    }

    /// The message's last `len` bytes.
    pub(crate) fn last(&self, len: usize) -> &[u8] {
        &self.bytes[self.filled - len..self.filled]
    }

    /// Hands out the message, leaving no buffer behind.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.truncate(self.filled);
        self.filled = 0;
        bytes
    }

    /// Gives the buffer to the thread's spare pool.
    pub(crate) fn release(&mut self) {
        if self.holds_buffer() {
            give_back(std::mem::take(&mut self.bytes));
            self.filled = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_and_read_in_bytes_make_one_message_in_order() {
        let mut buffer = Reassembly::default();
        buffer.append(b"hello ");
        buffer.room(5).copy_from_slice(b"world");
        buffer.commit(5);
        assert_eq!(buffer.last(5), b"world");
        buffer.append(b"!");
        assert_eq!(buffer.len(), 12);
        assert_eq!(buffer.take(), b"hello world!");
        assert!(!buffer.holds_buffer());
    }

    #[test]
    fn room_left_unused_is_not_part_of_the_message() {
        let mut buffer = Reassembly::default();
        buffer.append(b"ab");
        buffer.room(100).fill(b'x');
        buffer.commit(1);
        buffer.append(b"c");
        assert_eq!(buffer.take(), b"abxc");
    }

    #[test]
    fn a_cleared_buffer_starts_a_new_message_over_old_room() {
        let mut buffer = Reassembly::default();
        buffer.room(8).copy_from_slice(b"previous");
        buffer.commit(8);
        buffer.clear();
        assert!(buffer.is_empty());
        buffer.append(b"new");
        assert_eq!(buffer.take(), b"new");
    }

    #[test]
    #[should_panic(expected = "committed beyond the room")]
    fn committing_more_than_the_room_is_a_bug() {
        let mut buffer = Reassembly::default();
        buffer.room(4);
        buffer.commit(5);
    }
}

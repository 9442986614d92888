//! Streaming UTF-8 validation for text messages, RFC 6455 §8.1.
//!
//! A text message may be split anywhere: across frames, and across the reads that deliver one
//! frame. The validator carries at most three bytes of an unfinished code point between calls
//! and reports an error on the call that delivers the first byte that can never become valid,
//! without waiting for the frame or the message to end (Autobahn's "fail fast" cases).

/// `bytes` as text, if they are UTF-8: how the protocol core turns a message's bytes into
/// `&str`. Test builds count the bytes it and [`Utf8Validator::feed`] check
/// ([`checked_bytes`]), so tests can show what is checked more than once.
pub(crate) fn text(bytes: &[u8]) -> Result<&str, InvalidUtf8> {
    count(bytes.len());
    std::str::from_utf8(bytes).map_err(|_| InvalidUtf8)
}

#[cfg(test)]
thread_local! {
    static CHECKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Bytes checked as text on this thread so far (test builds only).
#[cfg(test)]
pub(crate) fn checked_bytes() -> usize {
    CHECKED.with(std::cell::Cell::get)
}

fn count(_len: usize) {
    #[cfg(test)]
    CHECKED.with(|checked| checked.set(checked.get() + _len));
}

/// Incremental UTF-8 validator.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// Bytes of a code point that started in an earlier chunk and is not finished yet.
    pending: [u8; 4],
    pending_len: u8,
}

/// The input is not UTF-8, and no continuation can make it so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// Checks the next chunk of the stream.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            chunk = self.finish_pending(chunk)?;
            if self.pending_len > 0 {
                return Ok(()); // the chunk ended inside the same code point
            }
        }
        count(chunk.len());
        match std::str::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                // A valid prefix of a code point is cut off at the end of the chunk.
                let tail = &chunk[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// True when the stream so far ends on a code point boundary: a message may end here.
    pub fn is_complete(&self) -> bool {
        self.pending_len == 0
    }

    /// Forgets any state, ready for the next message.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }

    /// Extends the pending code point with bytes from `chunk`; returns the rest of `chunk`.
    fn finish_pending<'a>(&mut self, chunk: &'a [u8]) -> Result<&'a [u8], InvalidUtf8> {
        let have = self.pending_len as usize;
        let need = sequence_len(self.pending[0]);
        let take = (need - have).min(chunk.len());
        self.pending[have..have + take].copy_from_slice(&chunk[..take]);
        let now = have + take;
        match std::str::from_utf8(&self.pending[..now]) {
            Ok(_) => self.pending_len = 0,
            Err(e) if e.error_len().is_none() => self.pending_len = now as u8,
            Err(_) => return Err(InvalidUtf8),
        }
        Ok(&chunk[take..])
    }
}

/// Length of the sequence a lead byte announces. Only called on bytes that `from_utf8` accepted
/// as the start of an incomplete sequence, so they are valid lead bytes.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_split(data: &[u8], split: usize) -> Result<bool, InvalidUtf8> {
        let mut v = Utf8Validator::default();
        for piece in data.chunks(split.max(1)) {
            v.feed(piece)?;
        }
        Ok(v.is_complete())
    }

    #[test]
    fn valid_text_in_every_split() {
        let text = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 𝄞 \u{10FFFF} \u{FFFF}".as_bytes();
        for split in 1..=text.len() {
            assert_eq!(feed_split(text, split), Ok(true), "split {split}");
        }
    }

    #[test]
    fn incomplete_end_is_not_complete() {
        assert_eq!(feed_split(&[0xF0, 0x9D, 0x84], 1), Ok(false));
        assert_eq!(feed_split(&[0xE2, 0x82], 2), Ok(false));
    }

    #[test]
    fn invalid_sequences_fail_whatever_the_split() {
        let cases: &[&[u8]] = &[
            &[0xFF],
            &[0xC0, 0x80],                   // overlong
            &[0xED, 0xA0, 0x80],             // surrogate
            &[0xF4, 0x90, 0x80, 0x80],       // above U+10FFFF
            &[0xCE, 0xBA, 0xE1, 0xBD, 0x41], // a 3-byte sequence cut by ASCII
            &[0x80],
        ];
        for case in cases {
            for split in 1..=case.len() {
                assert_eq!(
                    feed_split(case, split),
                    Err(InvalidUtf8),
                    "{case:x?} {split}"
                );
            }
        }
    }

    #[test]
    fn fails_on_the_chunk_holding_the_first_bad_byte() {
        // κόσμε followed by an invalid lead byte, then more valid text that never arrives.
        let mut v = Utf8Validator::default();
        assert!(v.feed("κόσ".as_bytes()).is_ok());
        assert!(v.feed(&[0xCE]).is_ok()); // a valid prefix
        assert_eq!(v.feed(&[0xF5]), Err(InvalidUtf8)); // cannot continue 0xCE
    }

    #[test]
    fn pending_prefix_that_can_never_complete_fails_early() {
        // F4 90 is already beyond U+10FFFF: fail on the second byte, not the fourth.
        let mut v = Utf8Validator::default();
        assert!(v.feed(&[0xF4]).is_ok());
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
    }
}

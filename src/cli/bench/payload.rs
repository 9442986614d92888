//! What the bench sends: the payloads (binary filler or chat-like JSON) and their frames.

use std::sync::Arc;

use wsloop::protocol::deflate::Deflater;
use wsloop::protocol::frame::{encode_frame, OpCode};

use super::{Bench, Mode, Payload};

/// A chat-like JSON text message of exactly `size` bytes (at least the JSON around the text),
/// whose `id` field is `key` (so one connection's message is told from another's).
pub(super) fn json_message(size: usize, key: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "the",
        "build",
        "is",
        "green",
        "again",
        "shipping",
        "this",
        "afternoon",
        "thanks",
        "review",
        "looks",
        "good",
        "merge",
        "when",
        "ready",
        "alice",
        "bob",
        "lobby",
    ];
    let head = format!("{{\"id\":\"{key:08x}\",\"type\":\"message\",\"from\":\"alice\",\"room\":\"lobby\",\"ts\":1796097505051,\"text\":\"");
    let mut text = String::new();
    let mut i = key;
    while head.len() + text.len() + 2 < size {
        text.push_str(WORDS[i % WORDS.len()]);
        text.push(' ');
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    text.truncate(size.saturating_sub(head.len() + 2));
    format!("{head}{text}\"}}").into_bytes()
}

impl Bench<'_> {
    /// The frame connection `key` sends and the payload it must get back. In echo mode, a
    /// payload of 8 to 64 KiB bytes starts with the connection's number, so a message from
    /// another connection (a broadcast URL given for an echo run) is told from an echo; larger
    /// ones share one frame, to spare the memory.
    pub(super) fn frame_for(&self, key: usize) -> (Arc<[u8]>, Arc<[u8]>) {
        let size = self.payload.len();
        if self.args.mode != Mode::Echo || !(8..=64 << 10).contains(&size) {
            return (self.frame.clone(), self.payload.clone());
        }
        let payload = match self.args.payload {
            Payload::Json => json_message(size, key),
            Payload::Binary => {
                let mut payload = self.payload.to_vec();
                payload[..8].copy_from_slice(&(key as u64).to_be_bytes());
                payload
            }
        };
        let mut frame = Vec::with_capacity(self.frame.len());
        encode_frame(&mut frame, self.opcode(), &payload, Some(self.mask));
        (Arc::from(frame), Arc::from(payload))
    }

    /// The opcode of every message sent.
    pub(super) fn opcode(&self) -> OpCode {
        match self.args.payload {
            Payload::Binary => OpCode::Binary,
            Payload::Json => OpCode::Text,
        }
    }

    /// `payload` compressed once (a fresh context, so it can be sent again and again), framed
    /// and masked, RSV1 set.
    pub(super) fn deflated(&self, payload: &[u8]) -> Arc<[u8]> {
        let mut compressed = Vec::new();
        Deflater::new(15, true).compress(payload, &mut compressed);
        let mut frame = Vec::new();
        encode_frame(&mut frame, self.opcode(), &compressed, Some(self.mask));
        frame[0] |= 0x40;
        Arc::from(frame)
    }
}

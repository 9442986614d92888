//! The event loop's read(), simulated over random client streams: however the bytes arrive,
//! and whichever go through the shared buffer or straight into a message buffer, the replies
//! are those of one read of the whole stream.

use super::*;
use crate::protocol::frame::{encode_header, MAX_HEADER_LEN};
use crate::protocol::mask::apply_mask;
use crate::test_rng::Rng;

/// A stream a client might send after the upgrade request: text, binary, fragments and control
/// frames, many payloads large enough to be read in place, the odd corrupted byte.
fn random_client_stream(rng: &mut Rng) -> Vec<u8> {
    let mut stream = REQUEST.as_bytes().to_vec();
    for _ in 0..rng.below(10) + 1 {
        let opcode = match rng.below(8) {
            0 => OpCode::Ping,
            1 => OpCode::Continuation,
            2..=4 => OpCode::Text,
            _ => OpCode::Binary,
        };
        let len = match rng.below(8) {
            _ if opcode.is_control() => rng.below(126) as usize,
            0 => 65_535,
            1 => 65_536,
            2 => 70_000 + rng.below(200_000) as usize,
            3 => 300_000,
            _ => rng.below(130) as usize,
        };
        let payload = if rng.below(2) == 0 {
            "héllo wörld ✓ 𝄞".repeat(len / 10 + 1).into_bytes()[..len].to_vec()
        } else {
            rng.bytes(len)
        };
        let fin = opcode.is_control() || rng.below(3) != 0;
        let key = [rng.next() as u8, 7, 42, rng.next() as u8];
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut header, fin, false, opcode, len as u64, Some(key));
        stream.extend_from_slice(&header[..n]);
        let start = stream.len();
        stream.extend_from_slice(&payload);
        apply_mask(&mut stream[start..], key, 0);
        if rng.below(25) == 0 && len > 0 {
            let at = start + rng.below(len as u64) as usize;
            stream[at] ^= 0x80;
        }
    }
    stream
}

/// What the server sends back when the event loop's read() runs over `stream`: at each
/// readiness event the socket has a random amount more available (then `WouldBlock`), a read
/// is sometimes `Interrupted`, the end is EOF; large payloads are read in place, the rest
/// through a shared buffer, exactly as the loop does.
fn replies_through_the_read_loop(stream: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut h = Harness::new();
    let now = h.at(1);
    let mut read_buffer = vec![0u8; 64 * 1024];
    let mut pos = 0;
    let mut replies = Vec::new();
    for _ in 0..100_000 {
        if h.conn.is_closed() {
            return replies;
        }
        let available = (pos + 1 + rng.below(200_000) as usize).min(stream.len());
        let mut interrupt = rng.below(10) == 0;
        for _ in 0..64 {
            if !h.wants_read() {
                break;
            }
            let mut socket = |into: &mut [u8]| -> std::io::Result<usize> {
                if std::mem::take(&mut interrupt) {
                    return Err(std::io::ErrorKind::Interrupted.into());
                }
                if pos == stream.len() {
                    return Ok(0);
                }
                if pos == available {
                    return Err(std::io::ErrorKind::WouldBlock.into());
                }
                let n = into.len().min(available - pos);
                into[..n].copy_from_slice(&stream[pos..pos + n]);
                pos += n;
                Ok(n)
            };
            let in_place = h
                .conn
                .receive_in_place(&mut socket, now, &h.config, &mut h.events);
            let result = in_place.map(|(result, _)| result).unwrap_or_else(|| {
                let result = socket(&mut read_buffer);
                if let Ok(n @ 1..) = result {
                    h.conn
                        .receive(&mut read_buffer[..n], now, &h.config, &mut h.events);
                }
                result
            });
            match result {
                Ok(0) => {
                    h.eof(1);
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        h.conn.end_of_batch();
        replies.extend(h.sent());
        h.conn.after_flush();
    }
    panic!("the connection never closed");
}

#[test]
fn the_read_loop_replies_as_if_the_stream_came_in_one_read() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for round in 0..150 {
        let stream = random_client_stream(&mut rng);
        let mut h = Harness::new();
        h.feed(&stream, 1);
        h.eof(1);
        let whole = h.sent();
        for attempt in 0..3 {
            let replies = replies_through_the_read_loop(&stream, &mut rng);
            assert!(
                replies == whole,
                "round {round}, attempt {attempt}: {} bytes of replies, {} expected",
                replies.len(),
                whole.len()
            );
        }
    }
}

use super::*;
use crate::protocol::frame::{encode_header, Decoded, FrameDecoder, Role, MAX_HEADER_LEN};
use crate::protocol::mask::apply_mask;

#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Message(DataKind, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(u16, String),
}

fn frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let key = [1, 2, 3, 4];
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encode_header(
        &mut header,
        fin,
        false,
        opcode,
        payload.len() as u64,
        Some(key),
    );
    let mut out = header[..n].to_vec();
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], key, 0);
    out
}

/// Runs `stream` through a decoder and an assembler in pieces of `split` bytes. Returns what
/// was received before the first error, and the error.
fn receive(stream: &[u8], split: usize, max: u64) -> (Vec<Owned>, Option<ProtocolError>) {
    let mut decoder = FrameDecoder::new(Role::Server, max);
    let mut assembler = MessageAssembler::new(max);
    let mut got = Vec::new();
    for piece in stream.chunks(split) {
        let mut piece = piece.to_vec();
        let mut pos = 0;
        loop {
            let step = decoder.decode(&mut piece[pos..]);
            let (n, decoded) = match step {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err(e) => return (got, Some(e)),
            };
            pos += n;
            let result = match decoded {
                Decoded::Header(h) => assembler.on_header(&h).map(|_| None),
                Decoded::Payload { data, end_of_frame } => {
                    match assembler.on_payload(data, end_of_frame) {
                        Ok(Some(Received::Gathered(kind))) => {
                            Ok(Some(Owned::Message(kind, assembler.take_message())))
                        }
                        other => other.map(|r| {
                            r.map(|r| match r {
                                Received::Text(t) => Owned::Message(DataKind::Text, t.into()),
                                Received::Binary(d) => Owned::Message(DataKind::Binary, d.to_vec()),
                                Received::Gathered(_) | Received::Compressed(_) => {
                                    unreachable!("gathered: matched above; never compressed")
                                }
                                Received::Ping(d) => Owned::Ping(d.to_vec()),
                                Received::Pong(d) => Owned::Pong(d.to_vec()),
                                Received::Close(c, r) => Owned::Close(c.0, r.to_string()),
                            })
                        }),
                    }
                }
            };
            match result {
                Ok(Some(owned)) => got.push(owned),
                Ok(None) => {}
                Err(e) => return (got, Some(e)),
            }
            if pos == piece.len() && n == 0 {
                break;
            }
        }
    }
    (got, None)
}

fn every_split(stream: &[u8], max: u64) -> (Vec<Owned>, Option<ProtocolError>) {
    let whole = receive(stream, stream.len().max(1), max);
    for split in 1..stream.len().min(200) {
        assert_eq!(receive(stream, split, max), whole, "split {split}");
    }
    whole
}

#[test]
fn fragmented_text_with_interleaved_ping() {
    let mut s = frame(false, OpCode::Text, "κό".as_bytes());
    s.extend(frame(true, OpCode::Ping, b"p"));
    s.extend(frame(false, OpCode::Continuation, &"σμε".as_bytes()[..3])); // splits a char
    s.extend(frame(true, OpCode::Continuation, &"σμε".as_bytes()[3..]));
    let (got, err) = every_split(&s, 1 << 20);
    assert_eq!(err, None);
    let text = "κόσμε".as_bytes().to_vec();
    assert_eq!(
        got,
        vec![
            Owned::Ping(b"p".to_vec()),
            Owned::Message(DataKind::Text, text)
        ]
    );
}

#[test]
fn binary_and_close() {
    let mut s = frame(true, OpCode::Binary, &[0, 255, 7]);
    s.extend(frame(true, OpCode::Close, &[0x03, 0xE8, b'b', b'y', b'e']));
    let (got, err) = every_split(&s, 1 << 20);
    assert_eq!(err, None);
    assert_eq!(got[0], Owned::Message(DataKind::Binary, vec![0, 255, 7]));
    assert_eq!(got[1], Owned::Close(1000, "bye".into()));
}

#[test]
fn sequencing_errors() {
    let continuation = frame(true, OpCode::Continuation, b"x");
    assert_eq!(
        every_split(&continuation, 100).1,
        Some(ProtocolError::UnexpectedContinuation)
    );
    let mut nested = frame(false, OpCode::Text, b"a");
    nested.extend(frame(true, OpCode::Text, b"b"));
    assert_eq!(
        every_split(&nested, 100).1,
        Some(ProtocolError::ExpectedContinuation)
    );
}

#[test]
fn invalid_utf8_fails_before_the_frame_ends() {
    // The bad byte is first in a 100-byte frame; only its first byte plus the header arrive.
    let mut payload = vec![b'a'; 100];
    payload[0] = 0xFF;
    let s = frame(true, OpCode::Text, &payload);
    let header_len = s.len() - 100;
    let (_, err) = receive(&s[..header_len + 1], header_len + 1, 1 << 20);
    assert_eq!(err, Some(ProtocolError::InvalidUtf8));
}

#[test]
fn text_ending_inside_a_character_fails() {
    let s = frame(true, OpCode::Text, &[0xE2, 0x82]);
    assert_eq!(every_split(&s, 100).1, Some(ProtocolError::InvalidUtf8));
}

#[test]
fn close_body_rules() {
    let short = frame(true, OpCode::Close, &[3]);
    assert_eq!(
        every_split(&short, 100).1,
        Some(ProtocolError::CloseBodyTooShort)
    );
    let bad_code = frame(true, OpCode::Close, &[0x03, 0xEE]);
    assert_eq!(
        every_split(&bad_code, 100).1,
        Some(ProtocolError::InvalidCloseCode(1006))
    );
    let bad_reason = frame(true, OpCode::Close, &[0x03, 0xE8, 0xC0]);
    assert_eq!(
        every_split(&bad_reason, 100).1,
        Some(ProtocolError::InvalidCloseReason)
    );
    let empty = frame(true, OpCode::Close, &[]);
    assert_eq!(
        every_split(&empty, 100).0,
        vec![Owned::Close(1005, String::new())]
    );
}

#[test]
fn message_limit_counts_all_fragments() {
    let mut s = frame(false, OpCode::Binary, &[0; 60]);
    s.extend(frame(true, OpCode::Continuation, &[0; 60]));
    assert_eq!(
        every_split(&s, 100).1,
        Some(ProtocolError::MessageTooBig(120))
    );
    assert_eq!(every_split(&s, 120).1, None);
}

#[test]
fn an_announced_length_alone_does_not_reserve_it() {
    // A header announcing 10 MiB and one byte of payload: the buffer grows with what arrives,
    // not with what a peer merely announces.
    let mut assembler = MessageAssembler::new(16 << 20);
    let header = FrameHeader {
        compressed: false,
        fin: true,
        opcode: OpCode::Binary,
        mask: None,
        payload_len: 10 << 20,
    };
    assembler.on_header(&header).unwrap();
    assert_eq!(assembler.on_payload(&[1], false), Ok(None));
    assert!(
        assembler.buffer.capacity() <= 2 << 20,
        "{}",
        assembler.buffer.capacity()
    );
}

fn binary_header(payload_len: u64, fin: bool) -> FrameHeader {
    FrameHeader {
        compressed: false,
        fin,
        opcode: OpCode::Binary,
        mask: None,
        payload_len,
    }
}

#[test]
fn room_is_offered_only_for_a_large_remaining_data_payload() {
    let mut assembler = MessageAssembler::new(16 << 20);
    assert!(assembler.payload_room(1 << 20).is_none(), "between frames");

    assembler.on_header(&binary_header(1 << 20, true)).unwrap();
    assert!(assembler.payload_room(ROOM_MIN as u64 - 1).is_none());
    assert_eq!(
        assembler.payload_room(1 << 20).map(|room| room.len()),
        Some(ROOM_MIN)
    );

    let mut assembler = MessageAssembler::new(16 << 20);
    let ping = FrameHeader {
        compressed: false,
        opcode: OpCode::Ping,
        ..binary_header(125, true)
    };
    assembler.on_header(&ping).unwrap();
    assert!(assembler.payload_room(1 << 20).is_none(), "control frame");
}

#[test]
fn room_grows_with_the_bytes_received_not_the_length_announced() {
    let mut assembler = MessageAssembler::new(16 << 20);
    assembler.on_header(&binary_header(10 << 20, true)).unwrap();
    let mut received = 0u64;
    for expected in [ROOM_MIN, ROOM_MIN, 2 * ROOM_MIN, 4 * ROOM_MIN] {
        let room = assembler.payload_room((10 << 20) - received).unwrap();
        assert_eq!(room.len(), expected, "after {received} bytes");
        room.fill(7);
        assert_eq!(assembler.on_payload_in_room(expected, false), Ok(None));
        received += expected as u64;
    }
    // Never beyond the frame's end.
    let room = assembler.payload_room(ROOM_MIN as u64 + 3).unwrap();
    assert_eq!(room.len(), ROOM_MIN + 3);
    // Never more than ROOM_MAX at once, however much has arrived.
    for _ in 0..4 {
        let room = assembler.payload_room(10 << 20).unwrap();
        let len = room.len();
        assert!(len <= ROOM_MAX, "{len}");
        assert_eq!(assembler.on_payload_in_room(len, false), Ok(None));
    }
    assert_eq!(assembler.payload_room(10 << 20).unwrap().len(), ROOM_MAX);
}

#[test]
fn a_message_read_partly_in_room_is_whole_and_in_order() {
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut assembler = MessageAssembler::new(16 << 20);
    assembler
        .on_header(&binary_header(payload.len() as u64, true))
        .unwrap();
    assert_eq!(assembler.on_payload(&payload[..1000], false), Ok(None));
    let mut at = 1000;
    while let Some(room) = assembler.payload_room((payload.len() - at) as u64) {
        let n = room.len().min(50_000);
        room[..n].copy_from_slice(&payload[at..at + n]);
        at += n;
        assert_eq!(assembler.on_payload_in_room(n, false), Ok(None));
    }
    let last = assembler.on_payload(&payload[at..], true);
    assert_eq!(last, Ok(Some(Received::Gathered(DataKind::Binary))));
    assert_eq!(assembler.take_message(), payload);
}

#[test]
fn bad_utf8_read_in_room_fails_at_once() {
    let mut assembler = MessageAssembler::new(16 << 20);
    let text = FrameHeader {
        compressed: false,
        opcode: OpCode::Text,
        ..binary_header(1 << 20, true)
    };
    assembler.on_header(&text).unwrap();
    let room = assembler.payload_room(1 << 20).unwrap();
    room[..4].copy_from_slice(b"ok\xFF!");
    assert_eq!(
        assembler.on_payload_in_room(4, false),
        Err(ProtocolError::InvalidUtf8)
    );
}

/// A compressed message is held to the limit once inflated (by the endpoint); what the
/// assembler gathers before is bounded by what DEFLATE may make of a message of the limit,
/// so one slightly larger compressed than the limit is gathered whole.
#[test]
fn a_compressed_message_is_gathered_up_to_deflate_s_bound() {
    const LIMIT: u64 = 1000;
    let bound = crate::protocol::deflate::max_compressed_len(LIMIT);
    let first = |len, fin| FrameHeader {
        compressed: true,
        ..binary_header(len, fin)
    };
    let continuation = |len| FrameHeader {
        opcode: OpCode::Continuation,
        ..binary_header(len, true)
    };
    let mut assembler = MessageAssembler::new(LIMIT);
    assembler.on_header(&first(LIMIT, false)).unwrap();
    assembler.on_payload(&[0; LIMIT as usize], true).unwrap();
    assembler.on_header(&continuation(bound - LIMIT)).unwrap();
    let rest = vec![0; (bound - LIMIT) as usize];
    assert_eq!(
        assembler.on_payload(&rest, true),
        Ok(Some(Received::Compressed(DataKind::Binary)))
    );
    assert_eq!(assembler.take_message().len() as u64, bound);

    let mut assembler = MessageAssembler::new(LIMIT);
    assembler.on_header(&first(bound, false)).unwrap();
    assembler
        .on_payload(&vec![0; bound as usize], true)
        .unwrap();
    assert_eq!(
        assembler.on_header(&continuation(1)),
        Err(ProtocolError::CompressedTooBig(bound + 1))
    );
    // Uncompressed, the limit itself.
    let mut assembler = MessageAssembler::new(LIMIT);
    assert_eq!(
        assembler.on_header(&binary_header(LIMIT + 1, true)),
        Err(ProtocolError::MessageTooBig(LIMIT + 1))
    );
}

/// The one-frame shortcut takes only what needs no state and breaks no rule; everything else
/// is left to `on_header`/`on_payload`, which report the violations.
#[test]
fn a_single_frame_message_is_only_a_whole_valid_data_frame() {
    let header = |fin, opcode, len, compressed| FrameHeader {
        fin,
        opcode,
        mask: None,
        compressed,
        payload_len: len,
    };
    let assembler = MessageAssembler::new(16);
    let ok = header(true, OpCode::Binary, 3, false);
    assert_eq!(
        assembler.single_frame_message(&ok, b"abc"),
        Some(Message::Binary(b"abc"))
    );
    let text = header(true, OpCode::Text, 3, false);
    assert_eq!(
        assembler.single_frame_message(&text, b"abc"),
        Some(Message::Text("abc"))
    );
    assert_eq!(
        assembler.single_frame_message(&text, b"a\xff"),
        None,
        "invalid UTF-8"
    );
    let first = header(false, OpCode::Text, 3, false);
    assert_eq!(
        assembler.single_frame_message(&first, b"abc"),
        None,
        "a first fragment"
    );
    let deflated = header(true, OpCode::Binary, 3, true);
    assert_eq!(
        assembler.single_frame_message(&deflated, b"abc"),
        None,
        "compressed"
    );
    let ping = header(true, OpCode::Ping, 3, false);
    assert_eq!(
        assembler.single_frame_message(&ping, b"abc"),
        None,
        "a control frame"
    );
    let big = header(true, OpCode::Binary, 17, false);
    assert_eq!(
        assembler.single_frame_message(&big, &[0; 17]),
        None,
        "over the limit"
    );

    // While a fragmented message is open, a new data frame is a violation, not a message.
    let mut open = MessageAssembler::new(16);
    open.on_header(&first).unwrap();
    open.on_payload(b"abc", true).unwrap();
    assert_eq!(
        open.single_frame_message(&ok, b"abc"),
        None,
        "inside a fragmented message"
    );
}

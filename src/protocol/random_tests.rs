//! Randomised tests of the whole receive path: whatever bytes a peer sends, in whatever pieces,
//! the core never panics, and the result does not depend on how the bytes were split.
//! Deterministic (a fixed-seed generator), so a failure reproduces.

use super::frame::{encode_header, Decoded, FrameDecoder, OpCode, Role, MAX_HEADER_LEN};
use super::handshake::{classify, parse_request, Parsed};
use super::mask::apply_mask;
use super::message::{MessageAssembler, Received};
use crate::test_rng::Rng;

/// A stream of mostly well-formed client frames with random opcodes, flags, payloads (some
/// valid UTF-8, some not) and the odd corrupted byte.
fn random_stream(rng: &mut Rng) -> Vec<u8> {
    const OPCODES: [u8; 8] = [0x0, 0x1, 0x2, 0x8, 0x9, 0xA, 0x3, 0xB];
    let mut stream = Vec::new();
    for _ in 0..rng.below(8) + 1 {
        let opcode = OPCODES[rng.below(8) as usize];
        let fin = rng.below(4) != 0;
        let len = match rng.below(10) {
            0 => 126 + rng.below(300) as usize,
            1 => 70_000,
            2 if rng.below(4) == 0 => 300_000,
            _ => rng.below(130) as usize,
        };
        let payload = if rng.below(2) == 0 {
            "héllo wörld ✓ ".repeat(len / 18 + 1).into_bytes()[..len].to_vec()
        } else {
            rng.bytes(len)
        };
        let key = [rng.next() as u8, 7, 42, rng.next() as u8];
        let mut header = [0u8; MAX_HEADER_LEN];
        let op = OpCode::from_bits(opcode).unwrap_or(OpCode::Binary);
        let n = encode_header(&mut header, fin, false, op, len as u64, Some(key));
        header[0] = (header[0] & 0xF0) | opcode;
        if rng.below(20) == 0 {
            header[0] |= 0x40; // RSV1
        }
        stream.extend_from_slice(&header[..n]);
        let start = stream.len();
        stream.extend_from_slice(&payload);
        apply_mask(&mut stream[start..], key, 0);
        if rng.below(15) == 0 && !stream.is_empty() {
            let at = rng.below(stream.len() as u64) as usize;
            stream[at] ^= 1 << rng.below(8);
        }
    }
    stream
}

/// Runs `stream` through decoder and assembler in pieces cut at `cuts`; returns a summary of
/// everything received, and the first error. With `in_place`, payload bytes go straight into
/// the assembler's room whenever it offers some, as the server's loop reads them.
fn receive(stream: &[u8], cuts: &[usize], in_place: bool) -> Vec<String> {
    let mut decoder = FrameDecoder::new(Role::Server, 1 << 20);
    let mut assembler = MessageAssembler::new(1 << 20);
    let mut seen = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&stream.len())) {
        let mut piece = stream[start..end.max(start)].to_vec();
        start = end.max(start);
        let mut pos = 0;
        loop {
            if let Some(room) = in_place
                .then(|| assembler.payload_room(decoder.payload_remaining()))
                .flatten()
            {
                let n = room.len().min(piece.len() - pos);
                if n == 0 {
                    break;
                }
                room[..n].copy_from_slice(&piece[pos..pos + n]);
                pos += n;
                let end_of_frame = decoder.unmask_read_payload(&mut room[..n]);
                match assembler.on_payload_in_room(n, end_of_frame) {
                    Ok(Some(Received::Gathered(kind))) => {
                        seen.push(format!("{kind:?} {:?}", assembler.take_message()));
                    }
                    Ok(Some(other)) => {
                        panic!("only a gathered message completes in room: {other:?}")
                    }
                    Ok(None) => {}
                    Err(e) => {
                        seen.push(format!("error {e:?}"));
                        return seen;
                    }
                }
                continue;
            }
            let (n, decoded) = match decoder.decode(&mut piece[pos..]) {
                Ok(Some(step)) => step,
                Ok(None) => break,
                Err(e) => {
                    seen.push(format!("error {e:?}"));
                    return seen;
                }
            };
            pos += n;
            let result = match decoded {
                Decoded::Header(h) => assembler.on_header(&h).map(|()| None),
                Decoded::Payload { data, end_of_frame } => {
                    match assembler.on_payload(data, end_of_frame) {
                        Ok(Some(Received::Gathered(kind))) => {
                            Ok(Some(format!("{kind:?} {:?}", assembler.take_message())))
                        }
                        Ok(Some(Received::Text(t))) => Ok(Some(format!("Text {:?}", t.as_bytes()))),
                        Ok(Some(Received::Binary(b))) => Ok(Some(format!("Binary {b:?}"))),
                        Ok(Some(other)) => Ok(Some(format!("{other:?}"))),
                        Ok(None) => Ok(None),
                        Err(e) => Err(e),
                    }
                }
            };
            match result {
                Ok(Some(event)) => seen.push(event),
                Ok(None) => {}
                Err(e) => {
                    seen.push(format!("error {e:?}"));
                    return seen;
                }
            }
            if pos == piece.len() && n == 0 {
                break;
            }
        }
    }
    seen
}

#[test]
fn random_streams_never_panic_and_ignore_how_they_are_split() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut read_in_place = 0;
    for round in 0..400 {
        let stream = random_stream(&mut rng);
        let whole = receive(&stream, &[], false);
        for attempt in 0..4 {
            let mut cuts: Vec<usize> = (0..rng.below(12))
                .map(|_| rng.below(stream.len() as u64 + 1) as usize)
                .collect();
            cuts.sort_unstable();
            let in_place = attempt % 2 == 1;
            read_in_place += usize::from(in_place && stream.len() > 200_000);
            assert_eq!(
                receive(&stream, &cuts, in_place),
                whole,
                "round {round}, cuts {cuts:?}, in place {in_place}"
            );
        }
    }
    assert!(
        read_in_place > 10,
        "few streams large enough to be read in place"
    );
}

#[test]
fn random_request_heads_never_panic() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let good = "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    for _ in 0..5000 {
        let mut bytes = good.as_bytes().to_vec();
        for _ in 0..rng.below(4) {
            let at = rng.below(bytes.len() as u64) as usize;
            match rng.below(3) {
                0 => bytes[at] = rng.next() as u8,
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, rng.next() as u8),
            }
        }
        if let Ok(Parsed::Complete { request, .. }) = parse_request(&bytes, 8192) {
            let _ = classify(&request);
        }
        let len = rng.below(200) as usize;
        let _ = parse_request(&rng.bytes(len), 8192);
    }
}

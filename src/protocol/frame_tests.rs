use super::*;
use crate::protocol::deflate::max_compressed_len;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Decodes `stream` fed in pieces of `split` bytes; returns each frame's header and payload.
fn decode_split(
    stream: &[u8],
    split: usize,
    role: Role,
) -> Result<Vec<(FrameHeader, Vec<u8>)>, ProtocolError> {
    let mut decoder = FrameDecoder::new(role, 1 << 20);
    let mut frames: Vec<(FrameHeader, Vec<u8>)> = Vec::new();
    let mut open = false;
    for piece in stream.chunks(split) {
        let mut piece = piece.to_vec();
        let mut pos = 0;
        while let Some((n, event)) = decoder.decode(&mut piece[pos..])? {
            pos += n;
            match event {
                Decoded::Header(h) => {
                    assert!(!open, "header inside a payload");
                    frames.push((h, Vec::new()));
                    open = true;
                }
                Decoded::Payload { data, end_of_frame } => {
                    frames
                        .last_mut()
                        .expect("payload after a header")
                        .1
                        .extend_from_slice(data);
                    open = !end_of_frame;
                }
            }
            if pos == piece.len() && !open {
                break;
            }
        }
    }
    assert!(!open, "stream ended inside a frame");
    Ok(frames)
}

fn client_frame(fin: bool, opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encode_header(
        &mut header,
        fin,
        false,
        opcode,
        payload.len() as u64,
        Some(KEY),
    );
    let mut out = header[..n].to_vec();
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], KEY, 0);
    out
}

#[test]
fn rfc_examples_decode() {
    // §5.7: a single-frame unmasked text message, as a client receives it.
    let frames = decode_split(&[0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], 7, Role::Client);
    let frames = frames.unwrap();
    assert_eq!(frames[0].0.opcode, OpCode::Text);
    assert_eq!(frames[0].1, b"Hello");
    // §5.7: a single-frame masked text message, as a server receives it.
    let masked = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(
        decode_split(&masked, 11, Role::Server).unwrap()[0].1,
        b"Hello"
    );
}

#[test]
fn same_result_at_every_split() {
    let mut stream = Vec::new();
    stream.extend(client_frame(false, OpCode::Text, b"Hel"));
    stream.extend(client_frame(true, OpCode::Ping, b"ping!"));
    stream.extend(client_frame(true, OpCode::Continuation, b"lo"));
    stream.extend(client_frame(true, OpCode::Binary, &[7u8; 300])); // 16-bit length
    stream.extend(client_frame(true, OpCode::Binary, &vec![9u8; 70_000])); // 64-bit length
    stream.extend(client_frame(true, OpCode::Pong, b""));
    stream.extend(client_frame(true, OpCode::Close, &[0x03, 0xE8]));
    let whole = decode_split(&stream, stream.len(), Role::Server).unwrap();
    assert_eq!(whole.len(), 7);
    assert_eq!(whole[3].1, vec![7u8; 300]);
    assert_eq!(whole[4].0.payload_len, 70_000);
    for split in (1..64).chain([1000, 4096, 65536]) {
        assert_eq!(
            decode_split(&stream, split, Role::Server).unwrap(),
            whole,
            "split {split}"
        );
    }
}

#[test]
fn header_errors() {
    let cases: &[(&[u8], ProtocolError)] = &[
        (&[0xC1, 0x80], ProtocolError::ReservedBits(0b100)),
        (&[0x91, 0x80], ProtocolError::ReservedBits(0b001)),
        (&[0x83, 0x80], ProtocolError::ReservedOpcode(3)),
        (&[0x8B, 0x80], ProtocolError::ReservedOpcode(0xB)),
        (&[0x09, 0x80], ProtocolError::FragmentedControl),
        (&[0x89, 0xFE], ProtocolError::ControlTooLong(126)),
        (&[0x81, 0x05], ProtocolError::BadMasking { masked: false }),
        (
            &[0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0],
            ProtocolError::LengthOverflow,
        ),
        (
            &[0x82, 0xFF, 0, 0, 0, 0, 0, 0x20, 0, 0],
            ProtocolError::FrameTooBig(0x20_0000),
        ),
    ];
    for (bytes, expected) in cases {
        // The error shows as soon as its bytes are in, whatever the split.
        for split in 1..=bytes.len() {
            assert_eq!(
                decode_split(bytes, split, Role::Server),
                Err(*expected),
                "{bytes:x?}"
            );
        }
    }
    // A client refuses masked frames.
    let err = decode_split(&[0x81, 0x80, 1, 2, 3, 4], 6, Role::Client);
    assert_eq!(err, Err(ProtocolError::BadMasking { masked: true }));
}

#[test]
fn control_frame_of_125_bytes_is_fine() {
    let frame = client_frame(true, OpCode::Ping, &[1u8; 125]);
    assert_eq!(
        decode_split(&frame, 3, Role::Server).unwrap()[0].1.len(),
        125
    );
}

#[test]
fn the_short_header_is_encode_headers_for_every_length_under_126() {
    for len in 0..300 {
        for (rsv1, opcode) in [
            (false, OpCode::Text),
            (true, OpCode::Binary),
            (false, OpCode::Pong),
        ] {
            let mut out = [0u8; MAX_HEADER_LEN];
            let n = encode_header(&mut out, true, rsv1, opcode, len as u64, None);
            let short = short_header(rsv1, opcode, len);
            assert_eq!(
                short.as_ref().map(|h| &h[..]),
                (n == 2).then_some(&out[..2]),
                "{len}"
            );
        }
    }
}

#[test]
fn encode_uses_shortest_length_form() {
    let mut out = [0u8; MAX_HEADER_LEN];
    assert_eq!(
        encode_header(&mut out, true, false, OpCode::Text, 125, None),
        2
    );
    assert_eq!(
        encode_header(&mut out, true, false, OpCode::Text, 126, None),
        4
    );
    assert_eq!(&out[..4], &[0x81, 126, 0, 126]);
    assert_eq!(
        encode_header(&mut out, true, false, OpCode::Binary, 65535, None),
        4
    );
    assert_eq!(
        encode_header(&mut out, true, false, OpCode::Binary, 65536, None),
        10
    );
    assert_eq!(
        encode_header(&mut out, false, false, OpCode::Binary, 65536, Some(KEY)),
        14
    );
    assert_eq!(out[0], 0x02);
    assert_eq!(&out[10..14], &KEY);
}

#[test]
fn encode_frame_round_trips() {
    let mut out = Vec::new();
    encode_frame(&mut out, false, OpCode::Binary, &[5u8; 200], Some(KEY));
    let frames = decode_split(&out, 5, Role::Server).unwrap();
    assert_eq!(frames[0].1, vec![5u8; 200]);
    let mut plain = Vec::new();
    encode_frame(&mut plain, false, OpCode::Text, b"Hello", None);
    assert_eq!(plain, [0x81, 0x05, b'H', b'e', b'l', b'l', b'o']);
}

/// RSV1 is a bit of the header the encoder writes, nothing patched in afterwards: it reads
/// back as a compressed message's frame, and without permessage-deflate as a reserved bit.
#[test]
fn rsv1_is_encoded_with_the_header() {
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encode_header(&mut header, false, true, OpCode::Binary, 70_000, Some(KEY));
    assert_eq!((header[0], n), (0x42, 14));
    let mut frame = Vec::new();
    encode_frame(&mut frame, true, OpCode::Text, b"deflated", Some(KEY));
    assert_eq!(frame[0], 0xc1);
    let mut decoder = FrameDecoder::new(Role::Server, 1 << 20);
    decoder.allow_rsv1();
    let Some((_, Step::Frame { header, payload })) = decoder.decode_whole(&mut frame).unwrap()
    else {
        panic!("one whole frame");
    };
    assert!(header.compressed && header.fin);
    assert_eq!(payload, b"deflated");
    let mut frame = Vec::new();
    encode_frame(&mut frame, true, OpCode::Text, b"deflated", Some(KEY));
    assert_eq!(
        FrameDecoder::new(Role::Server, 1 << 20).decode_whole(&mut frame),
        Err(ProtocolError::ReservedBits(0b100))
    );
}

/// `decode_whole` gives what `decode` gives, in one step when a frame lies whole in the input,
/// and piece by piece when it does not.
#[test]
fn whole_frames_in_one_step_and_split_ones_in_pieces() {
    let mut stream = Vec::new();
    encode_frame(&mut stream, false, OpCode::Text, b"hello", Some(KEY));
    encode_frame(&mut stream, false, OpCode::Ping, b"", Some(KEY));
    encode_frame(&mut stream, false, OpCode::Binary, &[7; 300], Some(KEY));
    let expected = decode_split(&stream, stream.len(), Role::Server).unwrap();
    for split in [1, 3, 7, 13, stream.len()] {
        let mut decoder = FrameDecoder::new(Role::Server, 1 << 20);
        let mut frames: Vec<(FrameHeader, Vec<u8>)> = Vec::new();
        let mut whole = 0;
        for piece in stream.chunks(split) {
            let mut piece = piece.to_vec();
            let mut pos = 0;
            while pos < piece.len() {
                let Some((n, step)) = decoder.decode_whole(&mut piece[pos..]).unwrap() else {
                    break;
                };
                pos += n;
                match step {
                    Step::Frame { header, payload } => {
                        whole += 1;
                        frames.push((header, payload.to_vec()));
                    }
                    Step::Piece(Decoded::Header(header)) => frames.push((header, Vec::new())),
                    Step::Piece(Decoded::Payload { data, .. }) => {
                        frames.last_mut().unwrap().1.extend_from_slice(data);
                    }
                }
            }
        }
        assert_eq!(frames, expected, "split {split}");
        if split == stream.len() {
            assert_eq!(whole, 3, "every frame in one step");
        }
    }
    // A bad header fails the same way.
    let mut bad = [0x81u8, 0x05, 1, 2, 3, 4, 5]; // unmasked, to a server
    assert_eq!(
        FrameDecoder::new(Role::Server, 1 << 20).decode_whole(&mut bad),
        Err(FrameDecoder::new(Role::Server, 1 << 20)
            .decode(&mut [0x81, 0x05, 1, 2, 3, 4, 5])
            .unwrap_err())
    );
}

/// With permessage-deflate, a compressed message's frames (the first has RSV1, the
/// continuations do not) may be as long as DEFLATE makes a frame's worth of data; an
/// uncompressed message's frames are held to the frame limit as before.
#[test]
fn a_compressed_message_s_frames_have_deflate_s_room() {
    const LIMIT: u64 = 1000;
    let bound = max_compressed_len(LIMIT);
    assert!(bound > LIMIT + 100);
    let header = |rsv1, opcode, fin, len| {
        let mut header = [0u8; MAX_HEADER_LEN];
        let n = encode_header(&mut header, fin, rsv1, opcode, len, Some(KEY));
        header[..n].to_vec()
    };
    // The frames' lengths as decoded, their payloads handed over as zeros.
    let decode = |headers: &[Vec<u8>]| {
        let mut decoder = FrameDecoder::new(Role::Server, LIMIT);
        decoder.allow_rsv1();
        let mut lens = Vec::new();
        for header in headers {
            let Some((_, Decoded::Header(h))) = decoder.decode(&mut header.clone())? else {
                panic!("a whole header");
            };
            lens.push(h.payload_len);
            let mut payload = vec![0; h.payload_len as usize];
            let mut pos = 0;
            loop {
                let (used, piece) = decoder.decode(&mut payload[pos..])?.unwrap();
                pos += used;
                if matches!(
                    piece,
                    Decoded::Payload {
                        end_of_frame: true,
                        ..
                    }
                ) {
                    break;
                }
            }
        }
        Ok(lens)
    };
    let (text, cont, ping) = (OpCode::Text, OpCode::Continuation, OpCode::Ping);
    // Compressed: the first frame and its continuations, with a ping between them.
    let frames = [
        header(true, text, false, bound),
        header(false, ping, true, 0),
        header(false, cont, true, bound),
    ];
    assert_eq!(decode(&frames), Ok(vec![bound, 0, bound]));
    assert_eq!(decode(&[header(false, text, true, LIMIT)]), Ok(vec![LIMIT]));
    let too_long = [
        (vec![header(true, text, true, bound + 1)], bound + 1),
        (
            vec![
                header(true, text, false, 1),
                header(false, cont, true, bound + 1),
            ],
            bound + 1,
        ),
        // Uncompressed, even with the extension agreed: the frame limit.
        (vec![header(false, text, true, LIMIT + 1)], LIMIT + 1),
        (
            vec![
                header(true, text, true, 1),
                header(false, text, false, 1),
                header(false, cont, true, LIMIT + 1),
            ],
            LIMIT + 1,
        ),
    ];
    for (frames, len) in too_long {
        assert_eq!(decode(&frames), Err(ProtocolError::FrameTooBig(len)));
    }
}

/// The one-test parse of a client's short frame agrees with the full parse wherever it gives a
/// header, and gives one for every final, masked, uncompressed text or binary frame under 126
/// bytes that the limits let through: every first two bytes, both roles, with and without
/// permessage-deflate, frame limits around the short lengths.
#[test]
fn the_short_header_parse_agrees_with_the_full_one() {
    let mut taken = 0;
    for role in [Role::Server, Role::Client] {
        for max_frame_size in [0, 20, 125, 1 << 20] {
            for deflate in [false, true] {
                let limits = Limits {
                    role,
                    max_frame_size,
                    max_compressed_frame: deflate.then(|| max_compressed_len(max_frame_size)),
                    continuing_compressed: false,
                };
                for b0 in 0..=255u8 {
                    for b1 in 0..=255u8 {
                        let bytes = [b0, b1, KEY[0], KEY[1], KEY[2], KEY[3], 0, 0];
                        let full = parse_header(&bytes, limits);
                        let short = parse_short_masked_header(&bytes, limits);
                        if let Some(short) = short {
                            assert_eq!(full, Ok(Some(short)), "{b0:#04x} {b1:#04x}");
                            taken += 1;
                        }
                        let common = matches!(b0, 0x81 | 0x82)
                            && (0x80..=0x80 + 125).contains(&b1)
                            && role == Role::Server
                            && u64::from(b1 & 0x7F) <= max_frame_size;
                        assert_eq!(short.is_some(), common, "{b0:#04x} {b1:#04x}");
                    }
                }
            }
        }
    }
    assert!(taken > 0);
}

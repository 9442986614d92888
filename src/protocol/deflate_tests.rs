use super::*;
use flate2::Compression;

fn server(offer: &str, mode: CompressionMode) -> Option<String> {
    negotiate([offer].into_iter(), mode).map(|params| params.header())
}

const DEDICATED: CompressionMode = CompressionMode::Dedicated { window_bits: 15 };

#[test]
fn negotiation_follows_rfc_7692() {
    let cases: &[(&str, CompressionMode, Option<&str>)] = &[
        ("permessage-deflate", CompressionMode::Off, None),
        (
            "permessage-deflate",
            CompressionMode::Shared,
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        ),
        ("permessage-deflate", DEDICATED, Some("permessage-deflate")),
        (
            "permessage-deflate; client_max_window_bits",
            DEDICATED,
            Some("permessage-deflate; client_max_window_bits=15"),
        ),
        (
            "permessage-deflate; client_max_window_bits",
            CompressionMode::Dedicated { window_bits: 10 },
            Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=10"),
        ),
        (
            "permessage-deflate; server_max_window_bits=12; server_no_context_takeover",
            DEDICATED,
            Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=12"),
        ),
        // Unacceptable offers: unknown or repeated parameters, bad values. The next one wins.
        (
            "permessage-deflate; foo, permessage-deflate",
            DEDICATED,
            Some("permessage-deflate"),
        ),
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            DEDICATED,
            None,
        ),
        (
            "permessage-deflate; server_max_window_bits=16",
            DEDICATED,
            None,
        ),
        (
            "permessage-deflate; server_max_window_bits",
            DEDICATED,
            None,
        ),
        (
            "permessage-deflate; server_max_window_bits=010",
            DEDICATED,
            None,
        ),
        (
            "permessage-deflate; client_no_context_takeover=1",
            DEDICATED,
            None,
        ),
        // 8 bits cannot be honoured with zlib: declined.
        (
            "permessage-deflate; server_max_window_bits=8",
            DEDICATED,
            None,
        ),
        // Other extensions are passed over.
        (
            "x-webkit-deflate-frame, permessage-deflate",
            DEDICATED,
            Some("permessage-deflate"),
        ),
    ];
    for &(offer, mode, expected) in cases {
        assert_eq!(
            server(offer, mode).as_deref(),
            expected,
            "{offer} ({mode:?})"
        );
    }
}

#[test]
fn the_client_accepts_only_what_it_offered() {
    let agreed = accept_response(["permessage-deflate; client_max_window_bits=10"].into_iter());
    assert_eq!(agreed.unwrap().unwrap().client_max_window_bits, Some(10));
    assert_eq!(accept_response(std::iter::empty()), Ok(None));
    assert!(accept_response(["x-other"].into_iter()).is_err());
    assert!(accept_response(["permessage-deflate; bogus"].into_iter()).is_err());
    assert!(accept_response(["permessage-deflate, permessage-deflate"].into_iter()).is_err());
}

#[test]
fn messages_round_trip_with_and_without_context_takeover() {
    for takeover in [false, true] {
        let mut deflater = Deflater::new(15, !takeover);
        let mut inflater = Inflater::new(15, !takeover);
        for round in 0..3 {
            let message = format!("{{\"type\":\"message\",\"text\":\"hello {round}\"}}").repeat(20);
            let mut compressed = Vec::new();
            deflater.compress(message.as_bytes(), &mut compressed);
            assert!(compressed.len() < message.len() / 3, "{}", compressed.len());
            assert!(!compressed.ends_with(&TAIL));
            assert_eq!(
                inflater.inflate(&compressed, 1 << 20).unwrap(),
                message.as_bytes()
            );
        }
    }
}

#[test]
fn inflation_stops_at_the_limit() {
    let bomb = vec![0u8; 64 << 20];
    let mut compressed = Vec::new();
    Deflater::new(15, true).compress(&bomb, &mut compressed);
    assert!(compressed.len() * 50 < bomb.len(), "{}", compressed.len());
    let mut inflater = Inflater::new(15, true);
    assert_eq!(
        inflater.inflate(&compressed, 1 << 20),
        Err(InflateError::TooBig)
    );
    // Still usable afterwards.
    let mut small = Vec::new();
    Deflater::new(15, true).compress(b"ok", &mut small);
    assert_eq!(inflater.inflate(&small, 1 << 20).unwrap(), b"ok");
    assert_eq!(
        inflater.inflate(&[0xff, 0xff, 0xff], 1 << 20),
        Err(InflateError::Corrupt)
    );
}

#[test]
fn a_message_ending_in_a_final_block_is_read() {
    // "Hello" as one final fixed-Huffman block (BFINAL set), as RFC 7692 §7.2.3.3 allows.
    let mut inflater = Inflater::new(15, false);
    assert_eq!(
        inflater
            .inflate(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], 100)
            .unwrap(),
        b"Hello"
    );
    // With padding after the end, and then a normal message on the same inflater.
    assert_eq!(
        inflater
            .inflate(&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00], 100)
            .unwrap(),
        b"Hello"
    );
    let mut compressed = Vec::new();
    Deflater::new(15, true).compress(b"after", &mut compressed);
    assert_eq!(inflater.inflate(&compressed, 100).unwrap(), b"after");
}

#[test]
fn inflating_never_holds_much_more_than_the_limit() {
    let mut compressed = Vec::new();
    Deflater::new(15, true).compress(&vec![0u8; 8 << 20], &mut compressed);
    let mut inflater = Inflater::new(15, true);
    // The output buffer is filled in steps of at most 64 KiB and never past limit + 1.
    let limit = 1 << 20;
    assert_eq!(
        inflater.inflate(&compressed, limit),
        Err(InflateError::TooBig)
    );
    let mut out = Vec::new();
    assert!(matches!(
        inflater.feed(&compressed, &mut out, limit),
        Err(InflateError::TooBig)
    ));
    assert!(out.capacity() <= limit + 1, "{}", out.capacity());
    // An unlimited client does not overflow.
    let mut small = Vec::new();
    Deflater::new(15, true).compress(b"ok", &mut small);
    assert_eq!(
        Inflater::new(15, true).inflate(&small, usize::MAX).unwrap(),
        b"ok"
    );
}

/// Found by fuzzing (fuzz/artifacts-found/): with context takeover, an empty message right
/// after another must still be the empty stored block 0x00 (§7.2.3.6), or the receiver's tail
/// opens a stored block and the next message does not inflate.
#[test]
fn an_empty_message_between_others_keeps_the_stream_in_step() {
    let mut deflater = Deflater::new(15, false);
    let mut inflater = Inflater::new(15, false);
    for message in [&b"Hello"[..], b"", b"", b"Hello", b""] {
        let mut compressed = Vec::new();
        deflater.compress(message, &mut compressed);
        assert!(!compressed.is_empty(), "{message:?} compressed to nothing");
        assert_eq!(inflater.inflate(&compressed, 1 << 20).unwrap(), message);
    }
}

/// `data` as raw DEFLATE in stored blocks of `block` bytes, ended by a sync flush whose tail is
/// removed: what zlib sends for incompressible data, in blocks as long as its memLevel allows.
pub(crate) fn stored_blocks(data: &[u8], block: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(block) {
        let len = chunk.len() as u16;
        out.push(0x00); // BFINAL 0, BTYPE 00, padding
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.push(0x00); // the sync flush's empty stored block, its LEN and NLEN removed
    out
}

#[test]
fn the_compressed_bound_holds_what_real_compressors_make() {
    let mut rng = crate::test_rng::Rng(42);
    for len in [0, 1, 126, 127, 128, 2048, 65_535, 65_536, 300_000] {
        let random = rng.bytes(len);
        let bound = max_compressed_len(len as u64);
        // zlib's stored blocks: 127 bytes at memLevel 1 (the worst), 2,047 at 5 (Python's
        // websockets), 16,383 at 8 (the default), 65,535 (DEFLATE's largest).
        for block in [127, 2047, 2048, 16_383, 65_535] {
            let stream = stored_blocks(&random, block);
            assert!(
                stream.len() as u64 <= bound,
                "{len} in {block}: {}",
                stream.len()
            );
            let inflated = Inflater::new(15, true).inflate(&stream, len).unwrap();
            assert!(inflated == random);
        }
        // Fixed-Huffman blocks, all 9-bit literals: zlib-rs' (and zlib-ng's) level 1 on
        // random bytes from 144 up.
        let high: Vec<u8> = random.iter().map(|b| 144 + b % 112).collect();
        for level in 0..=9 {
            let mut compress = Compress::new_with_window_bits(Compression::new(level), false, 15);
            let mut out = Vec::with_capacity(len * 2 + 64);
            compress
                .compress_vec(&high, &mut out, FlushCompress::Sync)
                .unwrap();
            assert!(out.len() < out.capacity() && out.ends_with(&TAIL));
            let wire = (out.len() - TAIL.len()) as u64;
            assert!(wire <= bound, "{len} at level {level}: {wire} > {bound}");
        }
    }
    // What Python's websockets sent for 65,536 random bytes fits a 64 KiB limit's bound.
    assert!(max_compressed_len(65_536) >= 65_697);
    // No limit, no bound, and no overflow.
    assert_eq!(max_compressed_len(u64::MAX), u64::MAX);
    assert!(max_compressed_len(u64::MAX >> 1) > u64::MAX >> 1);
}

/// A message that compressing would not shrink is left to go uncompressed: `out` untouched.
/// With context takeover the compressor is reset, because the peer's decompressor never sees
/// that message: the next one must not point back into it. Here the same random block comes
/// twice: kept in the compressor's window, the second would compress to a back-reference
/// the peer cannot follow.
#[test]
fn what_would_not_shrink_is_left_uncompressed_and_the_peer_stays_in_step() {
    let random = crate::test_rng::Rng(9).bytes(4096);
    let text = "{\"type\":\"message\",\"text\":\"hello hello hello\"}".repeat(40);
    for takeover in [true, false] {
        let mut deflater = Deflater::new(15, !takeover);
        let mut inflater = Inflater::new(15, !takeover);
        let messages = [
            text.as_bytes(),
            &random,
            &random,
            text.as_bytes(),
            b"",
            b"x",
        ];
        let mut sent_compressed = Vec::new();
        for message in messages {
            let mut out = b"before".to_vec();
            let smaller = deflater.compress_smaller(message, &mut out);
            sent_compressed.push(smaller);
            if !smaller {
                assert_eq!(out, b"before", "left as it was");
                continue; // sent as it is: the peer's decompressor does not see it
            }
            assert!(out.len() - 6 < message.len());
            let inflated = inflater.inflate(&out[6..], 1 << 20);
            assert!(inflated.as_deref() == Ok(message), "takeover {takeover}");
        }
        assert_eq!(sent_compressed, [true, false, false, true, false, false]);
    }
}

/// A message given up midway leaves the compressor as good as new: the messages after it
/// inflate, with context takeover in the peer's continuing stream. zlib-rs' reset alone,
/// midway, loses the next block's header (a block was open) or panics on a large message
/// (output was left undrained).
#[test]
fn a_message_given_up_midway_leaves_the_compressor_as_good_as_new() {
    let random = crate::test_rng::Rng(13).bytes(4 << 20);
    let hello = b"hello hello hello hello hello hello hello hello".repeat(10);
    let text: Vec<u8> = (0..1u64 << 20)
        .map(|i| b"abcdefgh"[(i * i % 7) as usize])
        .collect();
    for window in [9, 15] {
        let mut deflater = Deflater::new(window, false);
        let mut inflater = Inflater::new(window, false);
        let mut out = Vec::new();
        assert!(!deflater.compress_smaller(&random, &mut out));
        for message in [&hello, &hello, &text] {
            let mut out = Vec::new();
            assert!(deflater.compress_smaller(message, &mut out));
            let inflated = inflater.inflate(&out, 2 << 20);
            assert!(inflated.as_ref() == Ok(message), "window {window}");
        }
    }
}

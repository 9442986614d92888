//! Which zlib-rs level permessage-deflate should compress with: the size and speed of every
//! level on text (the README as one message; chat-sized JSON messages, each on its own as
//! without context takeover) and on random bytes. Not run by `cargo test`; figures with
//!
//! ```text
//! cargo test --release --test deflate_levels -- --ignored --nocapture
//! ```
//!
//! (flate2 offers levels only: zlib's strategies, Z_HUFFMAN_ONLY, Z_RLE, Z_FIXED, are not
//! reachable through it with the zlib-rs backend.)

use std::time::{Duration, Instant};

use flate2::{Compress, Compression, FlushCompress};

/// Compresses each message, sync-flushed as RFC 7692 §7.2.1 asks, on its own (the compressor
/// reset between them, as without context takeover) or with `takeover` in one stream; returns
/// the bytes made.
fn compress_each(
    compress: &mut Compress,
    messages: &[&[u8]],
    takeover: bool,
    out: &mut Vec<u8>,
) -> usize {
    let mut total = 0;
    for message in messages {
        out.clear();
        out.reserve(message.len() + message.len() / 8 + 64);
        compress
            .compress_vec(message, out, FlushCompress::Sync)
            .unwrap();
        assert!(
            out.len() < out.capacity(),
            "room left: the flush is complete"
        );
        total += out.len() - 4; // the tail is not sent
        if !takeover {
            compress.reset();
        }
    }
    compress.reset();
    total
}

/// The bytes made from `messages` at `level`, and the input's throughput in MB/s (the best of
/// a few runs of at least 200 ms).
fn measure(level: u32, messages: &[&[u8]], takeover: bool) -> (usize, f64) {
    let mut compress = Compress::new_with_window_bits(Compression::new(level), false, 15);
    let mut out = Vec::new();
    let input: usize = messages.iter().map(|m| m.len()).sum();
    let made = compress_each(&mut compress, messages, takeover, &mut out);
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let mut rounds = 0;
        while started.elapsed() < Duration::from_millis(200) {
            compress_each(&mut compress, messages, takeover, &mut out);
            rounds += 1;
        }
        best = best.min(started.elapsed().as_secs_f64() / f64::from(rounds));
    }
    (made, input as f64 / best / 1e6)
}

/// Chat-sized JSON messages, like the chat app's.
fn chat_messages() -> Vec<Vec<u8>> {
    let words = [
        "hello", "there", "anyone", "around", "the", "build", "is", "green", "again", "lunch",
        "at", "noon", "?", "sure", "see", "you", "in", "room", "two", "deploy", "went", "fine",
    ];
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    (0..1000)
        .map(|i| {
            let text: Vec<&str> = (0..5 + next(25))
                .map(|_| words[next(words.len())])
                .collect();
            format!(
                r#"{{"type":"message","room":"room-{}","from":"user{}","text":"{}","at":{}}}"#,
                next(8),
                next(500),
                text.join(" "),
                1_700_000_000_000u64 + i * 1373
            )
            .into_bytes()
        })
        .collect()
}

#[test]
#[ignore = "a measurement: run it in release with --nocapture"]
fn compression_levels() {
    let readme = include_bytes!("../README.md");
    let chat = chat_messages();
    let chat: Vec<&[u8]> = chat.iter().map(Vec::as_slice).collect();
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let random: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let corpora: [(&str, Vec<&[u8]>, bool); 4] = [
        ("README, one message", vec![&readme[..]], false),
        ("1,000 chat messages, each alone", chat.clone(), false),
        ("1,000 chat messages, context takeover", chat, true),
        ("1 MiB of random bytes", vec![&random[..]], false),
    ];
    for (name, messages, takeover) in &corpora {
        let input: usize = messages.iter().map(|m| m.len()).sum();
        println!("{name}: {input} bytes");
        println!("  level      bytes   of input      MB/s");
        for level in 0..=9 {
            let (made, speed) = measure(level, messages, *takeover);
            let ratio = made as f64 / input as f64 * 100.0;
            println!("  {level:>5} {made:>10} {ratio:>9.2}% {speed:>9.0}");
        }
    }
}

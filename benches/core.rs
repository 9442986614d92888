//! Micro-benchmarks of the sans-IO protocol core: `cargo bench --bench core`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use wsloop::protocol::endpoint::{Endpoint, EndpointConfig, Event};
use wsloop::protocol::frame::{
    encode_frame, encode_header, Decoded, FrameDecoder, OpCode, Role, MAX_HEADER_LEN,
};
use wsloop::protocol::handshake::{accept_key, classify, parse_request, Intent, Parsed};
use wsloop::protocol::mask::apply_mask;
use wsloop::protocol::utf8::Utf8Validator;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The header of a masked client frame announcing `payload_len` bytes.
fn masked_header(payload_len: u64) -> Vec<u8> {
    let mut header = [0u8; MAX_HEADER_LEN];
    let n = encode_header(
        &mut header,
        true,
        false,
        OpCode::Binary,
        payload_len,
        Some(KEY),
    );
    header[..n].to_vec()
}

/// A complete masked client frame carrying `len` bytes.
fn masked_frame(len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
    let mut frame = Vec::new();
    encode_frame(&mut frame, false, OpCode::Binary, &payload, Some(KEY));
    frame
}

/// Header step only: a fresh decoder parses one masked header (2+4, 4+4 and 10+4 bytes).
fn frame_header_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_header_parse");
    for (name, len) in [("len7", 100u64), ("len16", 1000), ("len64", 100_000)] {
        let mut buf = masked_header(len);
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut decoder = FrameDecoder::new(Role::Server, u64::MAX);
                match decoder.decode(black_box(&mut buf)) {
                    Ok(Some((n, Decoded::Header(header)))) => (n, header),
                    other => panic!("expected a header, got {other:?}"),
                }
            })
        });
    }
    group.finish();
}

/// In-place unmasking of a 20-byte chat-sized payload, 1 KiB and 1 MiB (target: >= 8 GB/s on
/// 1 MiB).
fn unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask");
    for (name, len) in [("20B", 20), ("1KiB", KIB), ("1MiB", MIB)] {
        let mut buf = vec![0xA5u8; len];
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_function(name, |b| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box(KEY), 0))
        });
    }
    group.finish();
}

/// 1 MiB of mixed 1- to 4-byte UTF-8, padded with ASCII to exactly 1 MiB.
fn mixed_text() -> Vec<u8> {
    let sample = "Hello-µ@ßöäüàá κόσμε 𝄞 日本語のテキスト Привет, мир! ";
    let mut text = sample.repeat(MIB / sample.len());
    text.push_str(&" ".repeat(MIB - text.len()));
    text.into_bytes()
}

/// `Utf8Validator::feed` over one 1 MiB chunk (target: >= 4 GB/s on ASCII).
fn utf8_validate(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8_validate");
    for (name, text) in [
        ("ascii_1MiB", vec![b'a'; MIB]),
        ("mixed_1MiB", mixed_text()),
    ] {
        assert_eq!(text.len(), MIB);
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| Utf8Validator::default().feed(black_box(&text)).unwrap())
        });
    }
    group.finish();
}

/// A Chrome-style upgrade request.
const UPGRADE_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
Host: localhost:9001\r\n\
Connection: Upgrade\r\n\
Upgrade: websocket\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Origin: http://localhost:9001\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
\r\n";

/// Server handshake on a browser request: each step, and parse + classify together
/// (`classify` computes the accept key itself).
fn handshake(c: &mut Criterion) {
    let parse = || match parse_request(black_box(UPGRADE_REQUEST), 8192) {
        Ok(Parsed::Complete { request, .. }) => request,
        other => panic!("expected a complete request, got {other:?}"),
    };
    let request = parse();
    let mut group = c.benchmark_group("handshake");
    group.bench_function("parse_request", |b| b.iter(parse));
    group.bench_function("classify", |b| {
        b.iter(|| classify(black_box(&request)).unwrap())
    });
    group.bench_function("accept_key", |b| {
        b.iter(|| accept_key(black_box("dGhlIHNhbXBsZSBub25jZQ==")))
    });
    group.bench_function("full", |b| {
        b.iter(|| match classify(&parse()) {
            Ok(Intent::Upgrade { accept }) => accept,
            other => panic!("expected an upgrade, got {other:?}"),
        })
    });
    group.finish();
}

/// Server-side (unmasked) `encode_frame` of 20 B and 16 KiB into a reused `Vec`.
fn frame_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame_encode");
    for len in [20, 16 * KIB] {
        let payload = vec![b'x'; len];
        let mut out = Vec::with_capacity(len + MAX_HEADER_LEN);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(len), &payload, |b, payload| {
            b.iter(|| {
                out.clear();
                encode_frame(&mut out, false, OpCode::Binary, black_box(payload), None);
                black_box(&out);
            })
        });
    }
    group.finish();
}

/// A whole 16 KiB masked frame through one reused decoder: header, then payload unmasked in
/// place. Unmasking toggles the payload each iteration; the header bytes are never touched.
fn frame_decode(c: &mut Criterion) {
    let len = 16 * KIB;
    let mut frame = masked_frame(len);
    let mut decoder = FrameDecoder::new(Role::Server, u64::MAX);
    let mut group = c.benchmark_group("frame_decode");
    group.throughput(Throughput::Bytes(frame.len() as u64));
    group.bench_function("16KiB_masked", |b| {
        b.iter(|| {
            let input = black_box(&mut frame[..]);
            let Ok(Some((n, Decoded::Header(_)))) = decoder.decode(input) else {
                panic!("expected a header");
            };
            match decoder.decode(&mut input[n..]) {
                Ok(Some((
                    taken,
                    Decoded::Payload {
                        data,
                        end_of_frame: true,
                    },
                ))) => {
                    black_box(data);
                    taken
                }
                _ => panic!("expected the whole payload"),
            }
        })
    });
    group.finish();
}

/// One echo through a server endpoint, as the loop does it: receive a masked frame and send
/// the message back, end the batch of reads, ask for the next deadline, write the queue out.
/// A 20 B message in one read, and a 64 KiB one in four reads (gathered).
fn endpoint_echo(c: &mut Criterion) {
    let config = EndpointConfig {
        max_frame_size: 16 << 20,
        max_message_size: 16 << 20,
        ping_interval: Some(Duration::from_secs(30)),
        idle_timeout: Some(Duration::from_secs(60)),
    };
    let now = Instant::now();
    let mut group = c.benchmark_group("endpoint_echo");
    // A read of 16 pipelined 20-byte frames is what `echo 100 x 20 B pipelined 16` hands it.
    let cases = [
        ("20B", 20, 1, 1),
        ("20B_x16_one_read", 20, 16, 1),
        ("64KiB_4_pieces", 64 * KIB, 1, 4),
    ];
    for (name, len, count, pieces) in cases {
        let frame = masked_frame(len).repeat(count);
        let mut input = frame.clone();
        let mut ws = Endpoint::server(&config, now);
        let mut sink = Vec::with_capacity(count * (len + MAX_HEADER_LEN));
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                input.copy_from_slice(&frame);
                let step = input.len().div_ceil(pieces);
                for piece in input.chunks_mut(step) {
                    ws.receive(black_box(piece), now, &mut |out, event| {
                        if let Event::Message { message, .. } = event {
                            out.send(message);
                        }
                    });
                }
                ws.release_idle_buffers();
                black_box(ws.poll_timeout());
                sink.clear();
                ws.outbound().queue().write_to(&mut sink).unwrap();
                black_box(sink.len())
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    frame_header_parse,
    unmask,
    utf8_validate,
    handshake,
    frame_encode,
    frame_decode,
    endpoint_echo
);
criterion_main!(benches);

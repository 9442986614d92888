//! permessage-deflate (RFC 7692) over a real socket: negotiation, compressed echo in both
//! modes and window sizes, the threshold, fragments, the inflate bomb, and RSV1 misuse.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use common::{
    client_frame, raw_frame, upgrade_request, RawClient, TestServer, BINARY, CONTINUATION, MASK,
    PING, TEXT,
};
use wsloop::client::{Client, ClientOptions, Incoming};
use wsloop::protocol::deflate::{CompressionMode, Deflater, Inflater};
use wsloop::{Config, Message};

const OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";

fn server(mode: CompressionMode) -> TestServer {
    TestServer::new(
        Config::default()
            .compression(mode)
            .max_message_size(1 << 20),
    )
}

/// Upgrades with `extra` headers; returns the client and the agreed extensions, if any.
fn upgrade(server: &TestServer, extra: &str) -> (RawClient, Option<String>) {
    let mut client = RawClient::connect(server.addr());
    client.send(upgrade_request("/echo", extra).as_bytes());
    let head = client.read_head();
    assert_eq!(head.status, 101);
    let extensions = head.header("Sec-WebSocket-Extensions").map(str::to_string);
    (client, extensions)
}

/// A masked client frame with RSV1 set, its payload compressed without context.
fn compressed_frame(opcode: u8, message: &[u8]) -> Vec<u8> {
    let mut compressed = Vec::new();
    Deflater::new(15, true).compress(message, &mut compressed);
    raw_frame(true, 0b100, opcode, Some(MASK), &compressed)
}

#[test]
fn the_response_names_exactly_what_was_agreed() {
    let shared = server(CompressionMode::Shared);
    let (_, agreed) = upgrade(&shared, OFFER);
    assert_eq!(
        agreed.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    // Every offer unacceptable: still upgraded, uncompressed.
    let bad = "Sec-WebSocket-Extensions: permessage-deflate; foo=1, permessage-deflate; \
               server_max_window_bits=99\r\n";
    assert_eq!(upgrade(&shared, bad).1, None);
    let dedicated = server(CompressionMode::Dedicated { window_bits: 10 });
    assert_eq!(
        upgrade(&dedicated, OFFER).1.as_deref(),
        Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=10")
    );
    let off = server(CompressionMode::Off);
    assert_eq!(upgrade(&off, OFFER).1, None);
}

#[test]
fn the_client_echoes_compressed_in_every_mode_and_window() {
    let modes = [
        CompressionMode::Shared,
        CompressionMode::Dedicated { window_bits: 9 },
        CompressionMode::Dedicated { window_bits: 15 },
    ];
    for mode in modes {
        let server = server(mode);
        let options = ClientOptions::default().compression(true);
        let url = format!("ws://{}/echo", server.addr());
        let mut client = Client::connect_with(&url, &options).unwrap();
        for round in 0..5 {
            let json = format!("{{\"type\":\"message\",\"text\":\"round {round}\"}}").repeat(100);
            client.send(Message::Text(&json)).unwrap();
            assert_eq!(client.recv().unwrap(), Incoming::Text(json), "{mode:?}");
        }
        let big: Vec<u8> = (0..16 << 10).map(|i| (i % 7) as u8).collect();
        client.send(Message::Binary(&big)).unwrap();
        assert_eq!(client.recv().unwrap(), Incoming::Binary(big), "{mode:?}");
    }
}

#[test]
fn small_messages_go_uncompressed_and_large_ones_compressed() {
    let server = server(CompressionMode::Shared);
    let (mut client, _) = upgrade(&server, OFFER);
    client.send(&client_frame(true, TEXT, b"tiny"));
    let frame = client.read_frame();
    assert!(!frame.compressed);
    assert_eq!(frame.payload, b"tiny");
    let text = "compress me ".repeat(50);
    client.send(&client_frame(true, TEXT, text.as_bytes()));
    let frame = client.read_frame();
    assert!(
        frame.compressed,
        "a {} B message went uncompressed",
        text.len()
    );
    assert!(frame.payload.len() < text.len() / 4);
    let inflated = Inflater::new(15, true)
        .inflate(&frame.payload, 1 << 20)
        .unwrap();
    assert_eq!(inflated, text.as_bytes());
}

#[test]
fn a_compressed_message_in_fragments_is_inflated_whole() {
    let server = server(CompressionMode::Shared);
    let (mut client, _) = upgrade(&server, OFFER);
    let message = "fragmented and compressed ✓ ".repeat(20);
    let mut compressed = Vec::new();
    Deflater::new(15, true).compress(message.as_bytes(), &mut compressed);
    let (first, rest) = compressed.split_at(compressed.len() / 2);
    let mut frames = raw_frame(false, 0b100, TEXT, Some(MASK), first);
    frames.extend(client_frame(true, PING, b"between"));
    frames.extend(raw_frame(true, 0, CONTINUATION, Some(MASK), rest));
    client.send(&frames);
    assert_eq!(client.read_frame().payload, b"between"); // the pong
    let echo = client.read_frame();
    let inflated = Inflater::new(15, true)
        .inflate(&echo.payload, 1 << 20)
        .unwrap();
    assert_eq!(String::from_utf8(inflated).unwrap(), message);
}

#[test]
fn a_message_that_inflates_past_the_limit_is_closed_1009() {
    let server = server(CompressionMode::Shared);
    let (mut client, _) = upgrade(&server, OFFER);
    // 64 MiB of zeros, a few KiB compressed; the limit is 1 MiB.
    let frame = compressed_frame(BINARY, &vec![0u8; 64 << 20]);
    assert!(frame.len() < 1 << 20);
    client.send(&frame);
    client.expect_close(1009);
}

#[test]
fn rsv1_misuse_and_bad_data_fail_the_connection() {
    let shared = server(CompressionMode::Shared);
    let cases: [(Vec<u8>, u16, &str); 4] = [
        (
            raw_frame(true, 0b100, PING, Some(MASK), b"x"),
            1002,
            "RSV1 on a control frame",
        ),
        (
            [
                raw_frame(false, 0b100, TEXT, Some(MASK), b"\x00"),
                raw_frame(true, 0b100, CONTINUATION, Some(MASK), b""),
            ]
            .concat(),
            1002,
            "RSV1 on a continuation",
        ),
        (
            raw_frame(true, 0b100, BINARY, Some(MASK), b"\xff\xff\xff\xff"),
            1002,
            "not DEFLATE",
        ),
        (
            compressed_frame(TEXT, b"\xff\xfe not UTF-8"),
            1007,
            "text not UTF-8 once inflated",
        ),
    ];
    for (bytes, code, what) in cases {
        let (mut client, _) = upgrade(&shared, OFFER);
        client.send(&bytes);
        let close = client.read_frame();
        assert_eq!(close.close_code(), code, "{what}");
    }
    // RSV1 without the extension agreed.
    let off = server(CompressionMode::Off);
    let (mut client, _) = upgrade(&off, OFFER);
    client.send(&compressed_frame(TEXT, b"hello hello hello"));
    client.expect_close(1002);
}

#[test]
fn a_route_can_choose_its_own_compression() {
    use wsloop::apps::Echo;
    use wsloop::RouteOptions;
    let server = TestServer::with_routes(Config::default(), |builder| {
        let compressed = RouteOptions::default().compression(CompressionMode::Shared);
        builder
            .route("/echo", Echo)
            .route_with("/compressed", Echo, compressed)
    });
    let agreed = |path: &str| {
        let mut client = RawClient::connect(server.addr());
        client.send(upgrade_request(path, OFFER).as_bytes());
        let head = client.read_head();
        head.header("Sec-WebSocket-Extensions").map(str::to_string)
    };
    assert_eq!(agreed("/echo"), None, "the server's default is off");
    assert!(agreed("/compressed").is_some_and(|e| e.starts_with("permessage-deflate")));
}

/// `data` as raw DEFLATE in stored blocks of `block` bytes, sync-flushed with the tail removed:
/// what zlib sends for incompressible data, in blocks as long as its memLevel allows.
fn stored_blocks(data: &[u8], block: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(block) {
        let len = chunk.len() as u16;
        out.push(0x00);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.push(0x00);
    out
}

/// Bytes no compressor can shrink (xorshift64*).
fn random_bytes(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// The message limit bounds the message, not its compressed form: random bytes of exactly the
/// limit, compressed as zlib compresses them (slightly larger), are taken and echoed.
#[test]
fn a_message_of_the_limit_is_taken_though_compressing_made_it_larger() {
    let cases = [
        // Python's websockets (memLevel 5): 65,536 random bytes in 65,697.
        (64 << 10, 2048),
        // zlib's default memLevel 8 (aiohttp, Chromium), at a 1 MiB limit.
        (1 << 20, 16_383),
    ];
    let modes = [
        CompressionMode::Shared,
        CompressionMode::Dedicated { window_bits: 15 },
    ];
    for mode in modes {
        for (limit, block) in cases {
            let server =
                TestServer::new(Config::default().compression(mode).max_message_size(limit));
            let (mut client, _) = upgrade(&server, OFFER);
            let message = random_bytes(limit, limit as u64);
            let compressed = stored_blocks(&message, block);
            assert!(compressed.len() > limit);
            client.send(&raw_frame(true, 0b100, BINARY, Some(MASK), &compressed));
            let echo = client.read_frame();
            assert_eq!(echo.opcode, BINARY, "{mode:?}, {limit}");
            // Compressing random bytes would make them larger: they come back as they are.
            assert!(!echo.compressed, "{mode:?}, {limit}");
            assert!(echo.payload == message, "{mode:?}, {limit}");
        }
    }
}

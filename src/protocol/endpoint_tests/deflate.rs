//! Section 10: permessage-deflate between the two endpoints: the size limits of compressed
//! messages, and what is sent compressed.

use super::*;
use crate::protocol::deflate::tests::stored_blocks;
use crate::protocol::deflate::{max_compressed_len, Deflater};
use crate::protocol::outbound::Prepared;
use crate::test_rng::Rng;

/// What `--compression shared` agrees: no context takeover either way, full windows.
const SHARED: DeflateParams = DeflateParams {
    server_no_context_takeover: true,
    client_no_context_takeover: true,
    server_max_window_bits: None,
    client_max_window_bits: None,
};

fn limits(max: u64) -> EndpointConfig {
    EndpointConfig {
        max_frame_size: max,
        max_message_size: max,
        ..config()
    }
}

/// A server with `config` that agreed `params`, compressing from 64 bytes up.
fn deflating_server(config: &EndpointConfig, params: &DeflateParams) -> Side {
    let mut server = Side::new(Role::Server, config, Instant::now());
    server.endpoint.enable_deflate(params, 64);
    server
}

/// Events as a failed assertion shows them: large payloads by their length.
fn brief(events: &[OwnedEvent]) -> Vec<String> {
    events
        .iter()
        .map(|event| match event {
            OwnedEvent::Binary(bytes) => format!("Binary({} bytes)", bytes.len()),
            OwnedEvent::Text(text) => format!("Text({} bytes)", text.len()),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Asserts that `side` reported exactly `expected`.
#[track_caller]
fn assert_events(side: &Side, expected: &[OwnedEvent]) {
    assert!(
        side.events == expected,
        "{:?}, expected {:?}",
        brief(&side.events),
        brief(expected)
    );
}

/// A masked frame with RSV1 set: a compressed message in one frame.
fn compressed_client_frame(opcode: OpCode, compressed: &[u8]) -> Vec<u8> {
    let mut frame = client_frame(true, opcode, compressed);
    frame[0] |= 0x40;
    frame
}

#[test]
fn a_message_within_the_limit_is_taken_however_it_was_compressed() {
    const LIMIT: u64 = 64 << 10;
    let message = Rng(3).bytes(LIMIT as usize);
    // 65,536 random bytes as Python's websockets sent them (stored blocks of 2 KiB): 65,697
    // bytes, more than the limit; then zlib's worst (127-byte blocks, memLevel 1).
    for block in [2048, 127] {
        let compressed = stored_blocks(&message, block);
        assert!(compressed.len() as u64 > LIMIT);
        let mut server = deflating_server(&limits(LIMIT), &SHARED);
        server.receive(
            &compressed_client_frame(OpCode::Binary, &compressed),
            Instant::now(),
        );
        assert_events(&server, &[OwnedEvent::Binary(message.clone())]);
        assert_eq!(server.phase(), Phase::Open);
    }
}

#[test]
fn a_compressed_message_over_the_limit_fails_with_1009() {
    const LIMIT: u64 = 64 << 10;
    let cases = [
        // Inflates to one byte more than the limit: caught as it inflates.
        (
            stored_blocks(&vec![7; LIMIT as usize + 1], 65_535),
            ProtocolError::MessageTooBig(LIMIT + 1),
        ),
        // More compressed bytes than any compressor makes of the limit: refused by its header,
        // before its payload is gathered.
        (
            vec![0; max_compressed_len(LIMIT) as usize + 1],
            ProtocolError::FrameTooBig(max_compressed_len(LIMIT) + 1),
        ),
    ];
    for (compressed, error) in cases {
        let mut server = deflating_server(&limits(LIMIT), &SHARED);
        server.receive(
            &compressed_client_frame(OpCode::Binary, &compressed),
            Instant::now(),
        );
        let reason = error.to_string();
        let by = ClosedBy::Violation(error);
        assert_eq!(server.events, [closed(1009, &reason, by)]);
        let sent = frames(&server.take_output());
        assert_eq!(sent.last().map(WireFrame::close_code), Some(1009));
    }
    // Fragments that each fit, together over the bound.
    let mut server = deflating_server(&limits(LIMIT), &SHARED);
    let mut bytes = compressed_client_frame(OpCode::Binary, &[0; 60_000]);
    bytes[0] &= 0x7f; // FIN clear
    bytes.extend(client_frame(true, OpCode::Continuation, &[0; 60_000]));
    server.receive(&bytes, Instant::now());
    let error = ProtocolError::CompressedTooBig(120_000);
    let reason = error.to_string();
    assert_eq!(
        server.events,
        [closed(1009, &reason, ClosedBy::Violation(error))]
    );
}

/// Compressed with our own Deflater: the message inflates to exactly what was sent.
#[test]
fn a_message_of_exactly_the_limit_compressed_by_us_is_taken() {
    const LIMIT: u64 = 64 << 10;
    let message = Rng(5).bytes(LIMIT as usize);
    let mut compressed = Vec::new();
    Deflater::new(15, true).compress(&message, &mut compressed);
    let mut server = deflating_server(&limits(LIMIT), &SHARED);
    server.receive(
        &compressed_client_frame(OpCode::Binary, &compressed),
        Instant::now(),
    );
    assert_events(&server, &[OwnedEvent::Binary(message)]);
}

/// Context takeover both ways, as `--compression dedicated` agrees with a client that allows
/// it.
const TAKEOVER: DeflateParams = DeflateParams {
    server_no_context_takeover: false,
    client_no_context_takeover: false,
    server_max_window_bits: None,
    client_max_window_bits: None,
};

/// A pair that agreed `params`, both compressing from 64 bytes up.
fn deflating_pair(params: &DeflateParams) -> Pair {
    let mut pair = Pair::new();
    pair.server.endpoint.enable_deflate(params, 64);
    pair.client.endpoint.enable_deflate(params, 64);
    pair
}

/// Whether each data frame `side` wrote was compressed (RSV1).
fn compressed_flags(side: &Side) -> Vec<bool> {
    let frames = side.wire_frames();
    frames.iter().map(|f| f.rsv1).collect()
}

/// A message that compressing would make larger (random bytes) goes uncompressed, RSV1 clear,
/// and the messages around it still compress; with context takeover the receiver's real
/// Inflater stays in step (the same random block twice would otherwise compress the second
/// time into a reference to bytes the receiver never inflated).
#[test]
fn what_compressing_would_not_shrink_goes_uncompressed_either_way() {
    let random = Rng(17).bytes(4096);
    let text = "{\"type\":\"message\",\"text\":\"compress me\"}".repeat(50);
    let messages = [
        OwnedEvent::Text(text.clone()),
        OwnedEvent::Binary(random.clone()),
        OwnedEvent::Binary(random),
        OwnedEvent::Text(text),
    ];
    for params in [SHARED, TAKEOVER] {
        let mut pair = deflating_pair(&params);
        for message in &messages {
            match message {
                OwnedEvent::Text(text) => pair.server.send(Message::Text(text)),
                OwnedEvent::Binary(bytes) => pair.server.send(Message::Binary(bytes)),
                _ => unreachable!(),
            };
        }
        pair.client.reply = Some(echo());
        pair.drive();
        assert_events(&pair.client, &messages);
        assert_events(&pair.server, &messages);
        let expected = [true, false, false, true];
        assert_eq!(compressed_flags(&pair.server), expected, "{params:?}");
        assert_eq!(compressed_flags(&pair.client), expected, "{params:?}");
    }
}

/// A message prepared once for many: compressed once if that makes it smaller, else its
/// uncompressed frame for every receiver, whether it shares the loop's compressor or has its
/// own.
#[test]
fn a_prepared_message_goes_uncompressed_when_compressing_would_not_shrink_it() {
    let random = Rng(19).bytes(4096);
    let text = "broadcast to everyone ".repeat(100);
    let prepared = [
        Prepared::new(Message::Binary(&random)),
        Prepared::new(Message::Text(&text)),
    ];
    for params in [SHARED, TAKEOVER] {
        let mut pair = deflating_pair(&params);
        for message in &prepared {
            pair.server.endpoint.outbound().send_prepared(message);
            pair.server.endpoint.outbound().send_prepared(message);
        }
        pair.drive();
        assert_events(
            &pair.client,
            &[
                OwnedEvent::Binary(random.clone()),
                OwnedEvent::Binary(random.clone()),
                OwnedEvent::Text(text.clone()),
                OwnedEvent::Text(text.clone()),
            ],
        );
        let flags = compressed_flags(&pair.server);
        assert_eq!(flags, [false, false, true, true], "{params:?}");
    }
}

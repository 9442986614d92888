//! Section 6: protocol violations, each failing the connection with its code.

use super::*;

// 6. Protocol violations.

/// Feeds `bytes` to a fresh server with `max_message_size` and checks it failed with `code`
/// and `error` right away, said so on the wire, and then reads nothing more.
fn server_fails(bytes: &[u8], max_message_size: u64, error: ProtocolError) {
    let mut server_config = config();
    server_config.max_message_size = max_message_size;
    let mut pair = Pair::with_configs(&config(), &server_config);
    pair.server.reply = Some(echo());
    pair.deliver_to_server(bytes);
    let code = error.close_code().0;
    let reason = error.to_string();
    assert_eq!(
        pair.server.events.last(),
        Some(&closed(code, &reason, ClosedBy::Violation(error))),
        "{:?}",
        pair.server.events
    );
    assert_eq!(
        pair.server
            .events
            .iter()
            .filter(|e| matches!(e, OwnedEvent::Closed(..)))
            .count(),
        1
    );
    assert_eq!(pair.server.phase(), Phase::Closed);
    let before = pair.server.events.len();

    // Nothing more is read: not data, not a ping, not a close.
    let mut more = client_frame(true, OpCode::Text, b"after");
    more.extend(client_frame(true, OpCode::Ping, b"p"));
    more.extend(client_frame(true, OpCode::Close, &close_payload(1000, "")));
    pair.deliver_to_server(&more);
    assert_eq!(pair.server.events.len(), before);

    // The close frame with the code is the last thing it sent.
    let sent = frames(&pair.server.take_output());
    let last = sent.last().expect("a close frame");
    assert_eq!(last.close_code(), code);
    assert_eq!(&last.payload[2..], reason.as_bytes());

    // The client learns the code.
    pair.deliver_to_client(&pair.server.wire.clone());
    assert_eq!(
        pair.client.events.last(),
        Some(&closed(code, &reason, ClosedBy::Peer))
    );
}

#[test]
fn an_unmasked_client_frame_fails_with_1002() {
    server_fails(
        b"\x81\x02hi",
        1 << 20,
        ProtocolError::BadMasking { masked: false },
    );
}

#[test]
fn a_masked_server_frame_fails_the_client_with_1002() {
    let mut pair = Pair::new();
    pair.deliver_to_client(&client_frame(true, OpCode::Text, b"hi"));
    let error = ProtocolError::BadMasking { masked: true };
    assert_eq!(
        pair.client.events,
        [closed(1002, &error.to_string(), ClosedBy::Violation(error))]
    );
    pair.deliver_to_client(&server_frame(true, OpCode::Text, b"ok"));
    assert_eq!(pair.client.events.len(), 1);
    let sent = frames(&pair.client.take_output());
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].close_code(), 1002);
}

#[test]
fn invalid_utf8_fails_with_1007() {
    server_fails(
        &client_frame(true, OpCode::Text, b"ok\xff"),
        1 << 20,
        ProtocolError::InvalidUtf8,
    );
    // A message that ends in the middle of a code point.
    server_fails(
        &client_frame(true, OpCode::Text, b"ok\xe2\x9c"),
        1 << 20,
        ProtocolError::InvalidUtf8,
    );
}

#[test]
fn invalid_utf8_fails_on_the_fragment_that_carries_it() {
    let mut pair = Pair::echoing_server();
    pair.deliver_to_server(&client_frame(false, OpCode::Text, b"fine so far"));
    assert!(pair.server.events.is_empty());
    // The bad byte arrives; the message has not ended, and the connection fails already.
    pair.deliver_to_server(&client_frame(false, OpCode::Continuation, b" \xc3\x28"));
    assert_eq!(
        pair.server.events,
        [closed(
            1007,
            &ProtocolError::InvalidUtf8.to_string(),
            ClosedBy::Violation(ProtocolError::InvalidUtf8)
        )]
    );
    assert_eq!(pair.server.phase(), Phase::Closed);
    pair.deliver_to_server(&client_frame(true, OpCode::Continuation, b"end"));
    assert_eq!(pair.server.events.len(), 1);
    let sent = frames(&pair.server.take_output());
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].close_code(), 1007);
}

#[test]
fn invalid_utf8_fails_mid_frame() {
    // Even inside one frame, the bad byte fails the connection before the frame ends.
    let mut pair = Pair::echoing_server();
    let frame = client_frame(true, OpCode::Text, b"abc\xffdefghij");
    pair.deliver_to_server(&frame[..6 + 4]);
    assert_eq!(pair.server.phase(), Phase::Closed);
    assert_eq!(pair.server.events.len(), 1);
}

#[test]
fn a_message_over_the_limit_fails_with_1009() {
    // At the limit is fine.
    let mut server_config = config();
    server_config.max_message_size = 16;
    let mut pair = Pair::with_configs(&config(), &server_config);
    pair.server.reply = Some(echo());
    let mut exact = client_frame(false, OpCode::Binary, &[1; 10]);
    exact.extend(client_frame(true, OpCode::Continuation, &[2; 6]));
    pair.deliver_to_server(&exact);
    let mut expected = vec![1; 10];
    expected.extend_from_slice(&[2; 6]);
    assert_eq!(pair.server.events, [OwnedEvent::Binary(expected)]);

    // One byte over, in one frame or across fragments.
    server_fails(
        &client_frame(true, OpCode::Binary, &[0; 17]),
        16,
        ProtocolError::MessageTooBig(17),
    );
    let mut fragments = client_frame(false, OpCode::Text, b"0123456789");
    fragments.extend(client_frame(false, OpCode::Continuation, b"abcdefg"));
    server_fails(&fragments, 16, ProtocolError::MessageTooBig(17));
}

#[test]
fn a_frame_over_the_frame_limit_fails_with_1009() {
    let mut server_config = config();
    server_config.max_frame_size = 8;
    let mut pair = Pair::with_configs(&config(), &server_config);
    pair.deliver_to_server(&client_frame(true, OpCode::Binary, &[0; 9]));
    assert_eq!(
        pair.server.events,
        [closed(
            1009,
            &ProtocolError::FrameTooBig(9).to_string(),
            ClosedBy::Violation(ProtocolError::FrameTooBig(9))
        )]
    );
}

#[test]
fn a_reserved_opcode_fails_with_1002() {
    let mut frame = client_frame(true, OpCode::Binary, b"x");
    frame[0] = 0x80 | 0x3;
    server_fails(&frame, 1 << 20, ProtocolError::ReservedOpcode(3));
    frame[0] = 0x80 | 0xB;
    server_fails(&frame, 1 << 20, ProtocolError::ReservedOpcode(0xB));
}

#[test]
fn a_close_with_a_one_byte_body_fails_with_1002() {
    server_fails(
        &client_frame(true, OpCode::Close, &[0x03]),
        1 << 20,
        ProtocolError::CloseBodyTooShort,
    );
}

#[test]
fn messages_before_a_violation_are_delivered() {
    let mut pair = Pair::echoing_server();
    let mut stream = client_frame(true, OpCode::Text, b"first");
    stream.extend_from_slice(b"\x81\x02hi"); // unmasked
    pair.deliver_to_server(&stream);
    let error = ProtocolError::BadMasking { masked: false };
    assert_eq!(
        pair.server.events,
        [
            text("first"),
            closed(1002, &error.to_string(), ClosedBy::Violation(error))
        ]
    );
    assert_eq!(opcodes_sent(&mut pair.server), [0x1, 0x8]);
}

#[test]
fn a_violation_after_our_close_is_not_reported_again() {
    let mut pair = Pair::new();
    pair.server.close(1000, "done");
    pair.server.take_output();
    pair.deliver_to_server(&client_frame(true, OpCode::Text, b"\xff"));
    assert_eq!(pair.server.events, [closed(1000, "done", ClosedBy::Local)]);
    assert_eq!(pair.server.phase(), Phase::Closed);
    assert_eq!(pair.server.take_output(), b"", "one close frame only");
}

#[test]
fn other_violations_fail_with_their_codes() {
    let mut rsv1 = client_frame(true, OpCode::Text, b"x");
    rsv1[0] |= 0x40;
    let mut long_ping = client_frame(true, OpCode::Ping, &[0; 125]);
    long_ping[1] = 0x80 | 126;
    let mut nested = client_frame(false, OpCode::Text, b"a");
    nested.extend(client_frame(true, OpCode::Text, b"b"));
    let cases = [
        (rsv1, ProtocolError::ReservedBits(4)),
        (long_ping, ProtocolError::ControlTooLong(126)),
        (
            client_frame(false, OpCode::Ping, b""),
            ProtocolError::FragmentedControl,
        ),
        (
            client_frame(true, OpCode::Continuation, b"x"),
            ProtocolError::UnexpectedContinuation,
        ),
        (nested, ProtocolError::ExpectedContinuation),
        // 1005 may not appear on the wire.
        (
            client_frame(true, OpCode::Close, &close_payload(1005, "")),
            ProtocolError::InvalidCloseCode(1005),
        ),
        (
            client_frame(true, OpCode::Close, b"\x03\xe8\xff"),
            ProtocolError::InvalidCloseReason,
        ),
    ];
    for (bytes, error) in cases {
        server_fails(&bytes, 1 << 20, error);
    }
}

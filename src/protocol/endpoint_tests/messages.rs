//! Sections 1 to 3: echo and masking on the wire, fragmentation, and the same events however
//! the bytes are split.

use super::*;

// 1. Echo, and masking on the wire.

#[test]
fn text_and_binary_echo_from_client_to_server() {
    let mut pair = Pair::echoing_server();
    assert!(pair.client.send(Message::Text("hello")));
    assert!(pair.client.send(Message::Binary(&[0, 1, 2, 255])));
    pair.drive();

    assert_eq!(
        pair.server.events,
        [text("hello"), OwnedEvent::Binary(vec![0, 1, 2, 255])]
    );
    assert_eq!(
        pair.client.events,
        [text("hello"), OwnedEvent::Binary(vec![0, 1, 2, 255])]
    );

    // The client masks every frame (§5.3): mask bit, key, masked payload.
    let client_wire = pair.client.wire_frames();
    assert_eq!(client_wire.len(), 2);
    for (frame, (opcode, payload)) in client_wire
        .iter()
        .zip([(0x1, &b"hello"[..]), (0x2, &[0, 1, 2, 255][..])])
    {
        assert!(frame.fin);
        assert_eq!(frame.opcode, opcode);
        assert!(frame.mask.is_some(), "a client frame is masked");
        assert_eq!(frame.payload, payload, "unmasked with its key");
    }
    assert_eq!(pair.client.wire[1], 0x80 | 5, "mask bit and length");
    // The server never masks (§5.1): the exact bytes.
    assert_eq!(pair.server.wire, b"\x81\x05hello\x82\x04\x00\x01\x02\xff");
    assert_eq!(pair.client.phase(), Phase::Open);
    assert_eq!(pair.server.phase(), Phase::Open);
}

/// A client masks each frame with the next key from the source its caller gave it, whatever
/// the frame (data, ping, pong, close): the endpoint draws no randomness of its own.
#[test]
fn a_client_masks_with_the_keys_its_caller_gives() {
    let keys = [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
        [9, 10, 11, 12],
        [13, 14, 15, 16],
    ];
    let mut next = keys.into_iter();
    let masks = MaskKeys::new(move || next.next().expect("one key per frame"));
    let mut client = Side::of(Endpoint::client(&config(), Instant::now(), masks));
    assert!(client.send(Message::Text("one")));
    client.endpoint.outbound().ping(b"p");
    client.receive(&server_frame(true, OpCode::Ping, b"q"), Instant::now());
    client.close(1000, "");
    let sent: Vec<_> = frames(&client.take_output())
        .into_iter()
        .map(|f| (f.opcode, f.mask))
        .collect();
    let expected: Vec<_> = [0x1, 0x9, 0xA, 0x8]
        .into_iter()
        .zip(keys.map(Some))
        .collect();
    assert_eq!(sent, expected);
}

#[test]
fn text_and_binary_echo_from_server_to_client() {
    let mut pair = Pair::new();
    pair.client.reply = Some(echo());
    assert!(pair.server.send(Message::Text("héllo")));
    assert!(pair.server.send(Message::Binary(&[9; 300])));
    pair.drive();

    assert_eq!(
        pair.client.events,
        [text("héllo"), OwnedEvent::Binary(vec![9; 300])]
    );
    assert_eq!(
        pair.server.events,
        [text("héllo"), OwnedEvent::Binary(vec![9; 300])]
    );
    let mut expected = b"\x81\x06h\xc3\xa9llo\x82\x7e\x01\x2c".to_vec();
    expected.extend_from_slice(&[9; 300]);
    assert_eq!(pair.server.wire, expected);
    let echoed = pair.client.wire_frames();
    assert!(echoed.iter().all(|f| f.mask.is_some()));
    assert_eq!(echoed[0].payload, "héllo".as_bytes());
    assert_eq!(echoed[1].payload, [9; 300]);
    // Masked, the bytes on the wire are not the plain payload (unless the key is all zeros,
    // one chance in 2^32).
    let on_wire = &pair.client.wire[pair.client.wire.len() - 300..];
    assert_ne!(on_wire, &[9; 300][..]);
}

// 2. Fragmentation.

#[test]
fn fragments_arrive_as_one_message_with_a_ping_answered_between_them() {
    let mut pair = Pair::echoing_server();
    let mut stream = client_frame(false, OpCode::Text, b"Hel");
    stream.extend(client_frame(true, OpCode::Ping, b"are you there"));
    // "✓" is split across fragments: valid once the message is whole.
    let check = "✓".as_bytes();
    let mut second = b"lo, ".to_vec();
    second.extend_from_slice(&check[..1]);
    stream.extend(client_frame(false, OpCode::Continuation, &second));
    let mut third = check[1..].to_vec();
    third.extend_from_slice(b" world");
    stream.extend(client_frame(true, OpCode::Continuation, &third));
    pair.deliver_to_server(&stream);
    pair.drive();

    assert_eq!(
        pair.server.events,
        [
            OwnedEvent::Ping(b"are you there".to_vec()),
            text("Hello, ✓ world")
        ]
    );
    // The pong went out as soon as the ping arrived, before the message was complete.
    let sent = pair.server.wire_frames();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        (sent[0].opcode, &sent[0].payload[..]),
        (0xA, &b"are you there"[..])
    );
    assert_eq!(sent[1].opcode, 0x1);
    assert_eq!(
        pair.client.events,
        [
            OwnedEvent::Pong(b"are you there".to_vec()),
            text("Hello, ✓ world")
        ]
    );
}

#[test]
fn a_client_gathers_a_fragmented_server_message_and_answers_its_ping() {
    let mut pair = Pair::new();
    let mut stream = server_frame(false, OpCode::Binary, &[1, 2]);
    stream.extend(server_frame(false, OpCode::Continuation, &[]));
    stream.extend(server_frame(true, OpCode::Ping, b"p"));
    stream.extend(server_frame(true, OpCode::Continuation, &[3]));
    pair.deliver_to_client(&stream);
    assert_eq!(
        pair.client.events,
        [
            OwnedEvent::Ping(b"p".to_vec()),
            OwnedEvent::Binary(vec![1, 2, 3])
        ]
    );
    let pong = frames(&pair.client.take_output());
    assert_eq!(pong.len(), 1);
    assert_eq!((pong[0].opcode, &pong[0].payload[..]), (0xA, &b"p"[..]));
    assert!(pong[0].mask.is_some(), "a client's pong is masked");
}

// 3. Delivery in pieces.

/// A client's stream exercising every path: single frames, a long frame, fragments with a ping
/// between them and a code point split across fragments, a pong, and a close.
fn client_stream() -> Vec<u8> {
    let mut stream = client_frame(true, OpCode::Text, "héllo".as_bytes());
    stream.extend(client_frame(
        true,
        OpCode::Binary,
        &(0..=200).collect::<Vec<u8>>(),
    ));
    stream.extend(client_frame(false, OpCode::Text, b"fra\xe2\x9c"));
    stream.extend(client_frame(true, OpCode::Ping, b"p"));
    stream.extend(client_frame(false, OpCode::Continuation, b"\x93g"));
    stream.extend(client_frame(true, OpCode::Continuation, b"ment"));
    stream.extend(client_frame(true, OpCode::Binary, b""));
    stream.extend(client_frame(true, OpCode::Pong, b"q"));
    stream.extend(client_frame(
        true,
        OpCode::Close,
        &close_payload(1000, "done"),
    ));
    stream
}

/// An echoing server fed `stream` in pieces ending at `cuts`, letting go of what it can after
/// each piece as the server's loop does after each batch of reads: its events and output.
fn server_fed(stream: &[u8], cuts: &[usize]) -> (Vec<OwnedEvent>, Vec<u8>) {
    let now = Instant::now();
    let mut server = Side::new(Role::Server, &config(), now);
    server.reply = Some(echo());
    let mut start = 0;
    for &end in cuts.iter().chain([stream.len()].iter()) {
        server.receive(&stream[start..end], now);
        server.endpoint.release_idle_buffers();
        start = end;
    }
    let output = server.take_output();
    (server.events, output)
}

#[test]
fn a_server_sees_the_same_events_however_the_bytes_are_split() {
    let stream = client_stream();
    let (events, output) = server_fed(&stream, &[]);
    assert_eq!(
        events,
        [
            text("héllo"),
            OwnedEvent::Binary((0..=200).collect()),
            OwnedEvent::Ping(b"p".to_vec()),
            text("fra✓gment"),
            OwnedEvent::Binary(Vec::new()),
            OwnedEvent::Pong(b"q".to_vec()),
            closed(1000, "done", ClosedBy::Peer),
        ]
    );
    let sent: Vec<_> = frames(&output)
        .into_iter()
        .map(|f| (f.opcode, f.payload))
        .collect();
    assert_eq!(
        sent,
        [
            (0x1, "héllo".as_bytes().to_vec()),
            (0x2, (0..=200).collect()),
            (0xA, b"p".to_vec()),
            (0x1, "fra✓gment".as_bytes().to_vec()),
            (0x2, Vec::new()),
            (0x8, close_payload(1000, "")),
        ]
    );

    for cut in 0..=stream.len() {
        assert_eq!(
            server_fed(&stream, &[cut]),
            (events.clone(), output.clone()),
            "split at {cut}"
        );
    }
    let every_byte: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(server_fed(&stream, &every_byte), (events, output));
}

#[test]
fn between_messages_an_endpoint_lets_go_of_its_reader() {
    let now = Instant::now();
    let mut server = Side::new(Role::Server, &config(), now);
    server.receive(&client_frame(true, OpCode::Text, b"one"), now);
    assert!(
        server.endpoint.reader.is_none(),
        "a whole short message is read without one"
    );
    server.endpoint.release_idle_buffers();
    assert!(server.endpoint.reader.is_none(), "idle: no reader");
    // Cut anywhere, this holds part of a header, a frame or a message across the batch.
    let mut stream = client_frame(false, OpCode::Text, b"tw");
    stream.extend(client_frame(true, OpCode::Ping, b"p"));
    stream.extend(client_frame(true, OpCode::Continuation, b"o"));
    let mut expected = vec![text("one")];
    for cut in 1..stream.len() {
        server.receive(&stream[..cut], now);
        server.endpoint.release_idle_buffers();
        assert!(server.endpoint.reader.is_some(), "cut at {cut}");
        server.receive(&stream[cut..], now);
        server.endpoint.release_idle_buffers();
        assert!(server.endpoint.reader.is_none(), "cut at {cut}");
        expected.extend([OwnedEvent::Ping(b"p".to_vec()), text("two")]);
    }
    assert_eq!(server.events, expected);
}

#[test]
fn a_client_sees_the_same_events_however_the_bytes_are_split() {
    let mut stream = server_frame(true, OpCode::Text, "✓ ok".as_bytes());
    stream.extend(server_frame(false, OpCode::Binary, &[7; 130]));
    stream.extend(server_frame(true, OpCode::Ping, b""));
    stream.extend(server_frame(true, OpCode::Continuation, &[8; 3]));
    stream.extend(server_frame(true, OpCode::Close, &[]));

    let fed = |cuts: &[usize]| {
        let now = Instant::now();
        let mut client = Side::new(Role::Client, &config(), now);
        let mut start = 0;
        for &end in cuts.iter().chain([stream.len()].iter()) {
            client.receive(&stream[start..end], now);
            start = end;
        }
        let output: Vec<WireFrame> = frames(&client.take_output())
            .into_iter()
            .map(WireFrame::unkeyed)
            .collect();
        (client.events, output)
    };
    let whole = fed(&[]);
    let mut gathered = vec![7; 130];
    gathered.extend_from_slice(&[8; 3]);
    assert_eq!(
        whole.0,
        [
            text("✓ ok"),
            OwnedEvent::Ping(Vec::new()),
            OwnedEvent::Binary(gathered),
            // An empty close is reported as 1005 and answered with an empty close.
            closed(1005, "", ClosedBy::Peer),
        ]
    );
    assert_eq!(
        whole
            .1
            .iter()
            .map(|f| (f.opcode, f.payload.len()))
            .collect::<Vec<_>>(),
        [(0xA, 0), (0x8, 0)]
    );
    for cut in 0..=stream.len() {
        assert_eq!(fed(&[cut]), whole, "split at {cut}");
    }
    let every_byte: Vec<usize> = (1..stream.len()).collect();
    assert_eq!(fed(&every_byte), whole);
}

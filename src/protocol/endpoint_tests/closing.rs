//! Sections 4, 5, 8 and 9: the closing handshake from either side, dropping the connection, and
//! a close requested by a handler.

use super::*;

// 4. and 5. The closing handshake.

#[test]
fn closing_handshake_started_by_the_client() {
    let mut pair = Pair::echoing_server();
    pair.client.close(1000, "bye");
    assert_eq!(pair.client.events, [closed(1000, "bye", ClosedBy::Local)]);
    assert_eq!(pair.client.phase(), Phase::CloseSent);
    assert!(
        !pair.client.send(Message::Text("late")),
        "nothing after a close"
    );
    assert_eq!(pair.client.endpoint.poll_timeout(), None);
    pair.drive();

    assert_eq!(pair.server.events, [closed(1000, "bye", ClosedBy::Peer)]);
    // The client sees the answer, but no second Closed event.
    assert_eq!(pair.client.events, [closed(1000, "bye", ClosedBy::Local)]);
    assert_eq!(pair.client.phase(), Phase::Closed);
    assert_eq!(pair.server.phase(), Phase::Closed);
    assert!(!pair.client.endpoint.reads_frames());
    assert!(!pair.server.endpoint.reads_frames());

    // The client's close on the wire: masked, 1000 "bye".
    let client_sent = pair.client.wire_frames();
    assert_eq!(client_sent.len(), 1);
    assert!(client_sent[0].mask.is_some());
    assert_eq!(client_sent[0].payload, close_payload(1000, "bye"));
    // The server answered with the code, and its close is the last thing it sent.
    assert_eq!(pair.server.wire, b"\x88\x02\x03\xe8");
    assert!(!pair.server.send(Message::Text("after")));
    pair.deliver_to_server(&client_frame(true, OpCode::Text, b"more"));
    pair.deliver_to_server(&client_frame(true, OpCode::Ping, b"x"));
    assert_eq!(pair.server.take_output(), b"");
    assert_eq!(pair.server.events.len(), 1);
}

#[test]
fn closing_handshake_started_by_the_server() {
    let mut pair = Pair::echoing_server();
    pair.client.reply = Some(echo());
    pair.server.close(1001, "shutting down");
    assert_eq!(
        pair.server.events,
        [closed(1001, "shutting down", ClosedBy::Local)]
    );
    assert_eq!(pair.server.phase(), Phase::CloseSent);
    let server_close = pair.server.take_output();

    // Before the close reaches it, the client sends data and a ping: the server reads them but
    // neither delivers the data nor answers the ping, and waits on.
    assert!(pair.client.send(Message::Text("in flight")));
    assert!(pair.client.endpoint.outbound().ping(b"hello?"));
    let from_client = pair.client.take_output();
    pair.deliver_to_server(&from_client);
    assert_eq!(pair.server.events.len(), 1, "{:?}", pair.server.events);
    assert_eq!(pair.server.phase(), Phase::CloseSent);
    assert!(pair.server.endpoint.reads_frames());
    assert_eq!(pair.server.take_output(), b"", "nothing after the close");

    pair.deliver_to_client(&server_close);
    assert_eq!(
        pair.client.events,
        [closed(1001, "shutting down", ClosedBy::Peer)]
    );
    assert_eq!(pair.client.phase(), Phase::Closed);
    pair.drive();
    assert_eq!(pair.server.phase(), Phase::Closed);
    assert_eq!(
        pair.server.events,
        [closed(1001, "shutting down", ClosedBy::Local)]
    );
    // The client answered with the same code; the server's close was all it sent.
    let answer = pair.client.wire_frames().pop().unwrap();
    assert_eq!(answer.payload, close_payload(1001, ""));
    assert_eq!(
        pair.server.wire_frames(),
        [WireFrame {
            fin: true,
            rsv1: false,
            opcode: 0x8,
            mask: None,
            payload: close_payload(1001, "shutting down"),
        }]
    );
}

#[test]
fn a_close_queued_outside_a_callback_is_reported_by_after_send() {
    let mut pair = Pair::new();
    assert!(pair
        .server
        .endpoint
        .outbound()
        .close(CloseCode(4000), "app"));
    assert!(pair.server.events.is_empty());
    pair.server.after_send();
    assert_eq!(pair.server.events, [closed(4000, "app", ClosedBy::Local)]);
    assert_eq!(pair.server.phase(), Phase::CloseSent);
    pair.server.after_send();
    assert_eq!(pair.server.events.len(), 1, "reported once");
    pair.drive();
    assert_eq!(pair.client.events, [closed(4000, "app", ClosedBy::Peer)]);
    assert_eq!(pair.server.phase(), Phase::Closed);
}

#[test]
fn an_unsendable_close_code_goes_out_as_1000() {
    let mut pair = Pair::new();
    pair.server.close(1006, "odd");
    assert_eq!(pair.server.events, [closed(1000, "odd", ClosedBy::Local)]);
    pair.drive();
    assert_eq!(pair.client.events, [closed(1000, "odd", ClosedBy::Peer)]);
}

#[test]
fn close_and_stop_reads_nothing_more() {
    let mut pair = Pair::new();
    pair.server.close_and_stop(1008, "go away");
    assert_eq!(
        pair.server.events,
        [closed(1008, "go away", ClosedBy::Local)]
    );
    assert_eq!(pair.server.phase(), Phase::Closed);
    pair.client.send(Message::Text("ignored"));
    pair.drive();
    assert_eq!(
        pair.client.events,
        [closed(1008, "go away", ClosedBy::Peer)]
    );
    assert_eq!(pair.server.events.len(), 1);
    assert_eq!(pair.server.wire_frames().len(), 1);
}

// 8. Dropping the connection.

#[test]
fn drop_connection_reports_1006_once_and_stops_sending() {
    let mut pair = Pair::echoing_server();
    pair.server.drop_connection(1006, "connection reset");
    assert_eq!(
        pair.server.events,
        [closed(1006, "connection reset", ClosedBy::Dropped)]
    );
    assert_eq!(pair.server.phase(), Phase::Closed);
    assert!(!pair.server.send(Message::Text("too late")));
    assert!(!pair.server.endpoint.outbound().ping(b""));
    assert!(!pair.server.endpoint.outbound().is_open());
    assert_eq!(pair.server.endpoint.buffered(), 0, "no close frame either");

    // Nothing reports it again: a second drop, a close, timers, incoming bytes.
    pair.server.drop_connection(1006, "again");
    pair.server.close(1000, "bye");
    pair.server
        .handle_timeout(pair.now() + Duration::from_secs(3600));
    pair.deliver_to_server(&client_frame(true, OpCode::Text, b"hello"));
    pair.deliver_to_server(&client_frame(true, OpCode::Close, &close_payload(1000, "")));
    assert_eq!(pair.server.events.len(), 1);
    assert_eq!(pair.server.take_output(), b"");
}

#[test]
fn drop_connection_after_a_close_reports_nothing() {
    let mut pair = Pair::new();
    pair.client.close(1000, "");
    pair.client.drop_connection(1006, "lost"); // while CloseSent
    assert_eq!(pair.client.events, [closed(1000, "", ClosedBy::Local)]);
    assert_eq!(pair.client.phase(), Phase::Closed);
}

// 9. A close requested by a handler.

/// A server that echoes, but closes when it reads "quit".
fn quitting_server() -> Pair {
    let mut pair = Pair::new();
    pair.server.reply = Some(Box::new(|out, event| match event {
        OwnedEvent::Text(text) if text == "quit" => {
            assert!(out.close(CloseCode(4001), "asked to"));
        }
        OwnedEvent::Text(text) => {
            out.send(Message::Text(text));
        }
        _ => {}
    }));
    pair
}

#[test]
fn a_close_from_a_handler_is_reported_right_after_its_event() {
    for fragmented in [false, true] {
        let mut pair = quitting_server();
        let mut stream = client_frame(true, OpCode::Text, b"a");
        if fragmented {
            stream.extend(client_frame(false, OpCode::Text, b"qu"));
            stream.extend(client_frame(true, OpCode::Continuation, b"it"));
        } else {
            stream.extend(client_frame(true, OpCode::Text, b"quit"));
        }
        stream.extend(client_frame(true, OpCode::Text, b"b"));
        stream.extend(client_frame(true, OpCode::Ping, b"p"));
        pair.deliver_to_server(&stream);

        assert_eq!(
            pair.server.events,
            [
                text("a"),
                text("quit"),
                closed(4001, "asked to", ClosedBy::Local)
            ],
            "fragmented: {fragmented}"
        );
        assert_eq!(pair.server.phase(), Phase::CloseSent);
        // The echo of "a", then the close: no echo of "b", no pong.
        let sent: Vec<_> = frames(&pair.server.take_output())
            .into_iter()
            .map(|f| (f.opcode, f.payload))
            .collect();
        assert_eq!(
            sent,
            [(0x1, b"a".to_vec()), (0x8, close_payload(4001, "asked to"))]
        );
        pair.deliver_to_client(&pair.server.wire.clone());

        // Later data from the client is not delivered either; its close ends the handshake.
        pair.client.send(Message::Text("c"));
        pair.drive();
        assert_eq!(pair.server.events.len(), 3);
        assert_eq!(pair.server.phase(), Phase::Closed);
        assert_eq!(
            pair.client.events,
            [text("a"), closed(4001, "asked to", ClosedBy::Peer)]
        );
    }
}

#[test]
fn a_close_from_a_ping_handler_follows_the_pong() {
    let mut pair = Pair::new();
    pair.server.reply = Some(Box::new(|out, event| {
        if let OwnedEvent::Ping(_) = event {
            out.close(CloseCode::NORMAL, "pinged");
        }
    }));
    let mut stream = client_frame(true, OpCode::Ping, b"1");
    stream.extend(client_frame(true, OpCode::Text, b"unseen"));
    pair.deliver_to_server(&stream);
    assert_eq!(
        pair.server.events,
        [
            OwnedEvent::Ping(b"1".to_vec()),
            closed(1000, "pinged", ClosedBy::Local)
        ]
    );
    assert_eq!(opcodes_sent(&mut pair.server), [0xA, 0x8]);
}

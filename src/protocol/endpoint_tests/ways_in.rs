//! The other ways in: one message at a time, and large payloads read in place.

use super::*;

// The other ways in.

#[test]
fn receive_one_stops_after_the_first_message() {
    let now = Instant::now();
    let mut server = Side::new(Role::Server, &config(), now);
    let first = client_frame(true, OpCode::Ping, b"p");
    let mut stream = first.clone();
    let message = client_frame(true, OpCode::Text, b"one");
    stream.extend_from_slice(&message);
    stream.extend(client_frame(true, OpCode::Text, b"two"));
    let mut input = stream.clone();
    let used = {
        let mut on_event = handler(&mut server.events, &mut server.reply);
        server.endpoint.receive_one(&mut input, now, &mut on_event)
    };
    assert_eq!(used, first.len() + message.len());
    assert_eq!(
        server.events,
        [OwnedEvent::Ping(b"p".to_vec()), text("one")]
    );
    let mut rest = stream[used..].to_vec();
    let used_again = {
        let mut on_event = handler(&mut server.events, &mut server.reply);
        server.endpoint.receive_one(&mut rest, now, &mut on_event)
    };
    assert_eq!(used_again, rest.len());
    assert_eq!(
        server.events,
        [OwnedEvent::Ping(b"p".to_vec()), text("one"), text("two")]
    );
}

#[test]
fn a_large_message_read_in_place_equals_one_received() {
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut stream = client_frame(false, OpCode::Binary, &payload[..100_000]);
    stream.extend(client_frame(
        true,
        OpCode::Continuation,
        &payload[100_000..],
    ));
    stream.extend(client_frame(true, OpCode::Text, b"after"));

    let now = Instant::now();
    let mut server = Side::new(Role::Server, &config(), now);
    let mut pos = 0;
    let mut in_place = 0;
    while pos < stream.len() {
        let rest = &stream[pos..];
        let mut on_event = handler(&mut server.events, &mut server.reply);
        let read = server.endpoint.receive_in_place(
            |room: &mut [u8]| {
                let n = room.len().min(rest.len());
                room[..n].copy_from_slice(&rest[..n]);
                Ok::<usize, ()>(n)
            },
            now,
            &mut on_event,
        );
        match read {
            Some((Ok(n), offered)) => {
                assert!(n <= offered);
                pos += n;
                in_place += n;
            }
            Some((Err(()), _)) => unreachable!(),
            None => {
                let n = rest.len().min(1000);
                let mut piece = rest[..n].to_vec();
                server.endpoint.receive(&mut piece, now, &mut on_event);
                pos += n;
            }
        }
    }
    assert!(
        in_place > 100_000,
        "most of it was read in place: {in_place}"
    );
    assert_eq!(server.events, [OwnedEvent::Binary(payload), text("after")]);
}

/// How often a text message's bytes are checked as UTF-8 on their way in: once, in one frame
/// or compressed (after inflating); twice when gathered from pieces. Its pieces are checked
/// as they arrive, so a bad byte fails at once (§8.1, Autobahn 6.4), and the whole again to
/// hand it out as `&str`, which only `unsafe` could do without a check.
#[test]
fn how_often_text_is_checked_on_its_way_in() {
    use crate::protocol::deflate::{DeflateParams, Deflater};
    use crate::protocol::utf8::checked_bytes;
    let text = "héllo, wörld ".repeat(100);
    let len = text.len();
    let checks = |bytes: &[u8], deflate: bool| {
        let mut server = Side::new(Role::Server, &config(), Instant::now());
        if deflate {
            let params = DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                server_max_window_bits: None,
                client_max_window_bits: None,
            };
            server.endpoint.enable_deflate(&params, 64);
        }
        let before = checked_bytes();
        server.receive(bytes, Instant::now());
        assert_eq!(server.events, [text.as_str()].map(super::text));
        checked_bytes() - before
    };
    let whole = client_frame(true, OpCode::Text, text.as_bytes());
    assert_eq!(checks(&whole, false), len);
    let mut compressed = Vec::new();
    Deflater::new(15, true).compress(text.as_bytes(), &mut compressed);
    let mut frame = client_frame(true, OpCode::Text, &compressed);
    frame[0] |= 0x40; // RSV1
    assert_eq!(checks(&frame, true), len);
    let (first, rest) = text.as_bytes().split_at(len / 2);
    let mut fragments = client_frame(false, OpCode::Text, first);
    fragments.extend(client_frame(true, OpCode::Continuation, rest));
    assert_eq!(checks(&fragments, false), 2 * len);
}

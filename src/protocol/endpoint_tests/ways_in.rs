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

//! Section 7: keepalive pings and the idle timeout, on the fake clock.

use super::*;

// 7. Keepalive.

#[test]
fn keepalive_pings_after_silence_and_a_pong_resets_the_idle_timer() {
    let mut server_config = config();
    server_config.ping_interval = Some(Duration::from_secs(10));
    server_config.idle_timeout = Some(Duration::from_secs(30));
    let mut pair = Pair::with_configs(&config(), &server_config);
    let t0 = pair.now();
    let secs = Duration::from_secs;

    assert_eq!(pair.client.endpoint.poll_timeout(), None, "no timers");
    assert_eq!(
        pair.server.endpoint.poll_timeout(),
        Some((t0 + secs(10), Timer::KeepAlive))
    );

    // Not due yet: nothing happens.
    pair.advance(secs(9));
    pair.server.handle_timeout(pair.now());
    assert_eq!(pair.server.endpoint.buffered(), 0);

    // Due: a ping goes out, and the next deadline is the idle one.
    pair.advance(secs(1));
    pair.server.handle_timeout(pair.now());
    let ping = frames(&pair.server.take_output());
    assert_eq!(ping.len(), 1);
    assert_eq!((ping[0].opcode, ping[0].payload.len()), (0x9, 0));
    assert_eq!(
        pair.server.endpoint.poll_timeout(),
        Some((t0 + secs(30), Timer::Idle))
    );
    // Firing again does not send another ping.
    pair.server.handle_timeout(pair.now());
    assert_eq!(pair.server.endpoint.buffered(), 0);

    // The ping arrives at t=15; the client answers by itself; the pong resets the timers.
    pair.advance(secs(5));
    pair.deliver_to_client(&frames_bytes(&ping));
    assert_eq!(pair.client.events, [OwnedEvent::Ping(Vec::new())]);
    pair.drive();
    assert_eq!(pair.server.events, [OwnedEvent::Pong(Vec::new())]);
    let t15 = t0 + secs(15);
    assert_eq!(
        pair.server.endpoint.poll_timeout(),
        Some((t15 + secs(10), Timer::KeepAlive))
    );
    assert_eq!(pair.server.phase(), Phase::Open);

    pair.advance(secs(10));
    pair.server.handle_timeout(pair.now()); // t=25: a second ping
    assert_eq!(
        pair.server.endpoint.poll_timeout(),
        Some((t15 + secs(30), Timer::Idle))
    );
    pair.drive(); // answered at t=25
    assert_eq!(
        pair.server.endpoint.poll_timeout(),
        Some((t0 + secs(35), Timer::KeepAlive))
    );
    // At t=44, well past the first idle deadline (t=30), the connection is still open.
    pair.advance(secs(19));
    pair.server.handle_timeout(pair.now());
    assert_eq!(pair.server.phase(), Phase::Open);
    assert_eq!(
        pair.server.events,
        [OwnedEvent::Pong(Vec::new()), OwnedEvent::Pong(Vec::new())]
    );
}

/// Frames back to bytes (unmasked, as a server sends them).
fn frames_bytes(frames: &[WireFrame]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in frames {
        assert!(f.mask.is_none());
        let opcode = OpCode::from_bits(f.opcode).unwrap();
        out.extend(server_frame(f.fin, opcode, &f.payload));
    }
    out
}

#[test]
fn a_silent_peer_is_closed_with_1001_at_the_idle_timeout() {
    let mut server_config = config();
    server_config.ping_interval = Some(Duration::from_secs(10));
    server_config.idle_timeout = Some(Duration::from_secs(30));
    let mut pair = Pair::with_configs(&config(), &server_config);
    let t0 = pair.now();
    let secs = Duration::from_secs;

    pair.advance(secs(10));
    pair.server.handle_timeout(pair.now());
    // The ping reaches the client, but its pong never reaches the server.
    let ping = pair.server.take_output();
    pair.deliver_to_client(&ping);
    let lost_pong = pair.client.take_output();
    assert!(!lost_pong.is_empty());
    assert_eq!(
        pair.server.endpoint.poll_timeout(),
        Some((t0 + secs(30), Timer::Idle))
    );

    pair.advance(secs(19)); // t=29
    pair.server.handle_timeout(pair.now());
    assert_eq!(pair.server.phase(), Phase::Open);
    assert!(pair.server.events.is_empty());

    pair.advance(secs(1)); // t=30
    pair.server.handle_timeout(pair.now());
    assert_eq!(
        pair.server.events,
        [closed(1001, "idle timeout", ClosedBy::Local)]
    );
    assert_eq!(pair.server.phase(), Phase::Closed);
    assert_eq!(pair.server.endpoint.poll_timeout(), None);
    let close = frames(&pair.server.take_output());
    assert_eq!(close.len(), 1);
    assert_eq!(close[0].payload, close_payload(1001, "idle timeout"));

    // The late pong, and the client's answer to the close, change nothing.
    pair.deliver_to_server(&lost_pong);
    pair.deliver_to_client(&frames_bytes(&close));
    pair.drive();
    assert_eq!(pair.server.events.len(), 1);
    assert_eq!(
        pair.client.events,
        [
            OwnedEvent::Ping(Vec::new()),
            closed(1001, "idle timeout", ClosedBy::Peer)
        ]
    );
    pair.advance(secs(100));
    pair.server.handle_timeout(pair.now());
    assert_eq!(pair.server.events.len(), 1);
    assert_eq!(pair.server.take_output(), b"");
}

#[test]
fn any_traffic_postpones_the_keepalive_ping() {
    let mut server_config = config();
    server_config.ping_interval = Some(Duration::from_secs(10));
    server_config.idle_timeout = Some(Duration::from_secs(30));
    let mut pair = Pair::with_configs(&config(), &server_config);
    pair.server.reply = Some(echo());
    let t0 = pair.now();
    for step in 1..=5u32 {
        pair.advance(Duration::from_secs(8));
        pair.server.handle_timeout(pair.now());
        pair.client.send(Message::Text("tick"));
        pair.drive();
        assert_eq!(
            pair.server.endpoint.poll_timeout(),
            Some((
                t0 + Duration::from_secs(8 * u64::from(step) + 10),
                Timer::KeepAlive
            ))
        );
    }
    assert!(pair.server.wire_frames().iter().all(|f| f.opcode == 0x1));
    assert_eq!(pair.server.events.len(), 5);
}

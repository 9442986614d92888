//! The `/broadcast` endpoint: fan-out to every other client, and the slow-consumer limit.
//!
//! When is a receiver a member? The hub is brought up to date in `flush`, at the end of the loop
//! turn in which the upgrade completed, right after that connection's queue (holding the 101)
//! was written. The loop is single-threaded, so bytes a client sends only after some receiver
//! has read its 101 are read in a later turn, when that receiver is already a member. So:
//! upgrade every receiver (reading its 101) first, then send.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::net::SocketAddr;
use std::thread;
use std::time::Instant;

use common::{client_frame, RawClient, ServerFrame, TestServer, BINARY, CLOSE, TEXT, TIMEOUT};
use wsloop::Config;

fn server(config: Config) -> TestServer {
    TestServer::with_routes(config, |builder| {
        builder.route("/broadcast", wsloop::apps::Broadcast)
    })
}

fn join(addr: SocketAddr) -> RawClient {
    RawClient::upgrade(addr, "/broadcast")
}

const CLIENTS: usize = 5;
const MESSAGES: usize = 20;

/// Message `seq` of `sender`: text for even `seq`, binary (not UTF-8) for odd.
fn numbered(sender: usize, seq: usize) -> (u8, Vec<u8>) {
    if seq.is_multiple_of(2) {
        (TEXT, format!("from {sender} #{seq}").into_bytes())
    } else {
        (BINARY, vec![0xFF, sender as u8, seq as u8])
    }
}

/// Which sender and number a received frame carries; checks its opcode against its number.
fn decode(frame: &ServerFrame) -> (usize, usize) {
    assert!(frame.fin, "broadcast frame is fragmented: {frame:?}");
    let (sender, seq) = match frame.opcode {
        TEXT => {
            let text = std::str::from_utf8(&frame.payload).expect("text is UTF-8");
            let rest = text.strip_prefix("from ").expect("a numbered text");
            let (sender, seq) = rest.split_once(" #").expect("a numbered text");
            (sender.parse().unwrap(), seq.parse().unwrap())
        }
        BINARY => {
            assert_eq!(
                frame.payload.len(),
                3,
                "binary payload: {:?}",
                frame.payload
            );
            assert_eq!(frame.payload[0], 0xFF);
            (frame.payload[1] as usize, frame.payload[2] as usize)
        }
        other => panic!("unexpected opcode {other}: {frame:?}"),
    };
    assert_eq!(
        (frame.opcode, frame.payload.clone()),
        numbered(sender, seq),
        "message kept neither its opcode nor its payload"
    );
    (sender, seq)
}

#[test]
fn every_client_gets_every_other_clients_messages_once_in_order() {
    let server = server(Config::default());
    let mut clients: Vec<RawClient> = (0..CLIENTS).map(|_| join(server.addr())).collect();

    // Interleave the senders, so each receiver's stream mixes them.
    for seq in 0..MESSAGES {
        for (sender, client) in clients.iter_mut().enumerate() {
            let (opcode, payload) = numbered(sender, seq);
            client.send(&client_frame(true, opcode, &payload));
        }
    }

    for (me, client) in clients.iter_mut().enumerate() {
        let mut next = [0usize; CLIENTS];
        for _ in 0..(CLIENTS - 1) * MESSAGES {
            let (sender, seq) = decode(&client.read_frame());
            assert_ne!(sender, me, "client {me} got its own message #{seq} back");
            assert_eq!(
                seq, next[sender],
                "client {me}: from {sender} expected #{} next",
                next[sender]
            );
            next[sender] += 1;
        }
        for (sender, &count) in next.iter().enumerate() {
            let expected = if sender == me { 0 } else { MESSAGES };
            assert_eq!(count, expected, "client {me}: messages from {sender}");
        }
    }

    // Nothing else is queued: every send above was handled (all were received), so an extra
    // copy or an echo would arrive before this marker.
    clients[0].send(&client_frame(true, TEXT, b"end"));
    clients[1].send(&client_frame(true, TEXT, b"end"));
    for (me, client) in clients.iter_mut().enumerate() {
        let frame = client.read_frame();
        assert_eq!(
            (frame.opcode, frame.payload.as_slice()),
            (TEXT, &b"end"[..]),
            "client {me}: expected only the end marker"
        );
    }
    // Clients other than 0 and 1 get both markers; 0 and 1 only the other's.
    for client in clients.iter_mut().skip(2) {
        assert_eq!(client.read_frame().payload, b"end");
    }
}

/// Messages small enough that two fit under the 64 KiB limit, so the limit means "behind", not
/// "one message too big": a 64 KiB payload plus its frame header is over 64 KiB by itself.
const BIG: usize = 32 * 1024;
const MAX_BUFFERED: usize = 64 * 1024;
/// 16 MiB in total: far more than the loopback socket buffers of a client that never reads.
const BIG_COUNT: u32 = (16 << 20) / BIG as u32;

fn big_message(seq: u32) -> Vec<u8> {
    let mut payload = vec![(seq % 251) as u8; BIG];
    payload[..4].copy_from_slice(&seq.to_be_bytes());
    payload
}

fn assert_big_message(frame: &ServerFrame, seq: u32, who: &str) {
    assert_eq!(frame.opcode, BINARY, "{who} #{seq}: {frame:?}");
    assert_eq!(frame.payload.len(), BIG, "{who} #{seq}: length");
    assert!(frame.payload == big_message(seq), "{who} #{seq}: payload");
}

#[test]
fn slow_receiver_is_closed_with_1008_while_the_others_go_on() {
    let server = server(Config::default().max_buffered(MAX_BUFFERED));
    let mut slow = join(server.addr());
    let mut fast = join(server.addr());
    let mut sender = join(server.addr());

    // The fast receiver reads each message before the next is sent, so it never has anything
    // unread at the server (a burst is the next test); the slow one never reads until the end.
    for seq in 0..BIG_COUNT {
        sender.send(&client_frame(true, BINARY, &big_message(seq)));
        assert_big_message(&fast.read_frame(), seq, "fast receiver");
    }

    // The sender was never closed: its next frame is a message, not a close.
    fast.send(&client_frame(true, TEXT, b"still there?"));
    let frame = sender.read_frame();
    assert_eq!(
        (frame.opcode, frame.payload.as_slice()),
        (TEXT, &b"still there?"[..])
    );

    assert_cut_off(&mut slow, BIG_COUNT);
}

/// The slow receiver finds an unbroken prefix of the `sent` messages, then the end: a 1008
/// close and EOF, or just EOF/reset when not even the close frame fitted.
fn assert_cut_off(slow: &mut RawClient, sent: u32) {
    let mut received = 0;
    let close = loop {
        assert!(
            received < sent,
            "the slow receiver got all {received} messages: it was never cut off"
        );
        match slow.read_frame_or_end() {
            Some(frame) if frame.opcode == CLOSE => break Some(frame),
            Some(frame) => {
                assert_big_message(&frame, received, "slow receiver");
                received += 1;
            }
            None => break None,
        }
    };
    if let Some(close) = close {
        assert_eq!(close.close_code(), 1008);
        let reason = String::from_utf8_lossy(&close.payload[2..]);
        assert!(reason.contains("slow consumer"), "close reason {reason:?}");
        assert!(
            slow.read_frame_or_end().is_none(),
            "the connection is still open after the close frame"
        );
    }
}

/// A receiver that reads everything as fast as it arrives is not a slow consumer, even when a
/// sender publishes in a burst: `max_buffered` bounds what a receiver leaves unread, so bytes
/// the server has not yet tried to write to it must not count.
#[test]
fn reader_keeping_up_with_a_burst_is_not_closed_as_slow() {
    let server = server(Config::default().max_buffered(MAX_BUFFERED));
    let mut fast = join(server.addr());
    let mut sender = join(server.addr());

    // The sender writes in bursts of BURST messages without waiting, at most one burst ahead
    // of the receiver, which reads concurrently. A burst is 8 times `max_buffered`, so the
    // server queues far more than the limit in one turn; and the receiver, however the test
    // threads are scheduled on a busy machine, is never more behind than loopback's socket
    // buffers hold: only the limit's arithmetic can close it.
    const BURST: u32 = 16;
    let (progress, caught_up) = std::sync::mpsc::channel::<u32>();
    let publisher = thread::spawn(move || {
        let mut received = 0;
        for seq in 0..BIG_COUNT {
            while seq >= received + 2 * BURST {
                match caught_up.recv() {
                    Ok(count) => received = count,
                    Err(_) => return sender, // the receiver failed; its panic says why
                }
            }
            sender.send(&client_frame(true, BINARY, &big_message(seq)));
        }
        sender
    });
    for seq in 0..BIG_COUNT {
        let frame = fast.read_frame();
        if frame.opcode == CLOSE {
            panic!(
                "receiver closed after {seq} messages: {} {:?}",
                frame.close_code(),
                String::from_utf8_lossy(&frame.payload[2..])
            );
        }
        assert_big_message(&frame, seq, "fast receiver");
        if (seq + 1) % BURST == 0 {
            let _ = progress.send(seq + 1);
        }
    }
    let _sender = publisher.join().expect("publisher thread");
}

/// Every client publishes 64 KiB messages as fast as it can while reading concurrently; the
/// limit is high enough that nobody is a slow consumer. Everyone must get everything: the
/// server pauses reading a publisher while that publisher's own queue is full, and must resume.
#[test]
fn concurrent_publishers_who_also_read_get_everything() {
    const PUBLISHERS: usize = 8;
    const EACH: u32 = 32;
    const SIZE: usize = 64 * 1024;
    let message = |sender: usize, seq: u32| {
        let mut payload = vec![sender as u8; SIZE];
        payload[1..5].copy_from_slice(&seq.to_be_bytes());
        payload
    };
    let server = server(Config::default().max_buffered(256 << 20));
    let clients: Vec<RawClient> = (0..PUBLISHERS).map(|_| join(server.addr())).collect();

    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for (me, mut writer) in clients.into_iter().enumerate() {
        let mut reader = writer.try_clone();
        writers.push(thread::spawn(move || {
            for seq in 0..EACH {
                writer.send(&client_frame(true, BINARY, &message(me, seq)));
            }
            writer
        }));
        readers.push(thread::spawn(move || {
            let mut next = [0u32; PUBLISHERS];
            let total = (PUBLISHERS as u32 - 1) * EACH;
            for got in 0..total {
                let frame = reader
                    .read_frame_by(Instant::now() + TIMEOUT)
                    .unwrap_or_else(|| {
                        panic!("client {me}: stalled after {got} of {total} messages ({next:?})")
                    });
                assert_eq!(frame.opcode, BINARY, "client {me}: {frame:?}");
                let sender = frame.payload[0] as usize;
                assert_ne!(sender, me, "client {me} got its own message");
                assert!(
                    frame.payload == message(sender, next[sender]),
                    "client {me}: message from {sender} is not #{}",
                    next[sender]
                );
                next[sender] += 1;
            }
        }));
    }
    for reader in readers {
        if let Err(panic) = reader.join() {
            std::panic::resume_unwind(panic);
        }
    }
    for writer in writers {
        drop(writer.join().expect("writer thread"));
    }
}

#[test]
fn message_larger_than_the_limit_reaches_a_receiver_that_keeps_up() {
    // A receiver with nothing unread gets any message, even one above --max-buffered: the limit
    // is on what it leaves unread, not on the size of one message.
    let server = server(Config::default().max_buffered(64 * 1024));
    let mut receiver = join(server.addr());
    let mut sender = join(server.addr());
    let big = vec![0x5A; 100 * 1024];
    sender.send(&client_frame(true, BINARY, &big));
    let frame = receiver.read_frame();
    assert_eq!(frame.opcode, BINARY, "got {frame:?}");
    assert_eq!(frame.payload, big);
}

/// A slow receiver that never reads again is dropped at the close timeout with a reset: the
/// server discards what it could not send instead of leaving its socket in the kernel, full
/// of unsent data, for minutes (a FIN would wait behind that data for a window that never
/// opens). The receiver's socket has a 4 KiB receive buffer and is watched, unread, with mio
/// until the connection ends.
#[test]
fn a_slow_receiver_dropped_at_the_close_timeout_is_reset_at_once() {
    use mio::{Events, Interest, Poll, Token};
    use std::io::ErrorKind;
    use std::time::Duration;

    let close_timeout = Duration::from_millis(300);
    let server = server(
        Config::default()
            .max_buffered(MAX_BUFFERED)
            .close_timeout(close_timeout),
    );
    let slow = join_with_small_receive_buffer(server.addr());
    let mut sender = join(server.addr());
    for seq in 0..BIG_COUNT {
        sender.send(&client_frame(true, BINARY, &big_message(seq)));
    }
    // The sender's own echo of nothing: a round trip proves every message was taken in.
    sender.send(&client_frame(true, common::PING, b"done?"));
    assert_eq!(sender.read_frame().payload, b"done?");

    let mut stream = mio::net::TcpStream::from_std(slow.stream.try_clone().unwrap());
    stream.set_nodelay(true).unwrap();
    slow.stream.set_nonblocking(true).unwrap();
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut stream, Token(0), Interest::READABLE)
        .unwrap();
    let mut events = Events::with_capacity(8);
    let deadline = Instant::now() + close_timeout + TIMEOUT;
    let ended = 'wait: loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        poll.poll(&mut events, Some(left)).unwrap();
        for event in events.iter() {
            if event.is_error() || event.is_read_closed() {
                break 'wait true;
            }
        }
    };
    assert!(
        ended,
        "the slow receiver's connection did not end within the close timeout"
    );
    let error = stream.take_error().unwrap();
    assert_eq!(
        error.map(|e| e.kind()),
        Some(ErrorKind::ConnectionReset),
        "the server ended the connection without a reset"
    );
}

/// A connection whose receive buffer is 4 KiB, upgraded to /broadcast.
fn join_with_small_receive_buffer(addr: SocketAddr) -> RawClient {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut client = RawClient::from_stream(socket.into());
    client.send(common::upgrade_request("/broadcast", "").as_bytes());
    assert_eq!(client.read_head().status, 101);
    client
}

/// `send_buffer` bounds what the kernel holds for a receiver that stopped reading, so 1 MiB of
/// broadcasts is enough to cut it off. With the kernel's own sizing, a loopback socket takes
/// in megabytes before the server's queue even starts to grow: this receiver would get them all.
#[test]
fn a_small_send_buffer_cuts_off_a_stalled_reader_within_a_megabyte() {
    const SENT: u32 = (1 << 20) / BIG as u32;
    let config = Config::default()
        .max_buffered(MAX_BUFFERED)
        .send_buffer(Some(16 * 1024));
    let server = server(config);
    let mut slow = join_with_small_receive_buffer(server.addr());
    let mut sender = join(server.addr());
    for seq in 0..SENT {
        sender.send(&client_frame(true, BINARY, &big_message(seq)));
    }
    // A round trip after the last message: every one was taken in and delivered.
    sender.send(&client_frame(true, common::PING, b"done?"));
    assert_eq!(sender.read_frame().payload, b"done?");
    assert_cut_off(&mut slow, SENT);
}

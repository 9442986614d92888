//! The echo endpoint with an independent client (tungstenite) and with raw frames.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use std::net::{SocketAddr, TcpStream};

use common::{
    client_frame, upgrade_request, RawClient, TestServer, CONTINUATION, PING, PONG, TEXT, TIMEOUT,
};
use tungstenite::{Message, WebSocket};

fn connect(addr: SocketAddr, path: &str) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    let (ws, response) =
        tungstenite::client(format!("ws://{addr}{path}"), stream).expect("handshake");
    assert_eq!(response.status(), 101);
    ws
}

/// Sends `message` and returns the next data message the server sends.
fn round_trip(ws: &mut WebSocket<TcpStream>, message: Message) -> Message {
    ws.send(message).expect("send");
    for _ in 0..10 {
        match ws.read().expect("read") {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
    panic!("no data message came back");
}

#[test]
fn text_comes_back_as_text() {
    let server = TestServer::start();
    let mut ws = connect(server.addr(), "/echo");
    let reply = round_trip(&mut ws, Message::text("Hello, κόσμε 𝄞"));
    assert_eq!(reply, Message::text("Hello, κόσμε 𝄞"));
}

#[test]
fn binary_comes_back_as_binary_on_the_root_path_too() {
    let server = TestServer::start();
    let mut ws = connect(server.addr(), "/");
    let bytes = vec![0u8, 159, 146, 150, 255];
    let reply = round_trip(&mut ws, Message::binary(bytes.clone()));
    assert_eq!(reply, Message::binary(bytes));
}

#[test]
fn one_mebibyte_binary_round_trips_byte_exact() {
    let server = TestServer::start();
    let mut ws = connect(server.addr(), "/echo");
    let bytes: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 + 7) as u8).collect();
    let reply = round_trip(&mut ws, Message::binary(bytes.clone()));
    assert!(reply.is_binary());
    let data = reply.into_data();
    assert_eq!(data.len(), bytes.len());
    assert!(data == bytes, "payload differs");
}

#[test]
fn large_messages_of_different_sizes_come_back_each_exact() {
    // Large payloads are read straight into a message buffer that is reused from one
    // message to the next: no byte of an earlier, longer message may leak into a later one.
    let server = TestServer::start();
    let mut ws = connect(server.addr(), "/echo");
    for (n, len) in [1_200_000usize, 300_000, 1_000_003, 70_000]
        .into_iter()
        .enumerate()
    {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + n * 13) as u8).collect();
        let reply = round_trip(&mut ws, Message::binary(bytes.clone()));
        assert!(
            reply.into_data() == bytes,
            "message {n} ({len} bytes) differs"
        );
    }
    let text = "ünïcödé ✓ ".repeat(100_000);
    let reply = round_trip(&mut ws, Message::text(text.clone()));
    assert!(reply == Message::text(text), "large text differs");
}

#[test]
fn several_messages_come_back_in_order() {
    let server = TestServer::start();
    let mut ws = connect(server.addr(), "/echo");
    for i in 0..20 {
        ws.send(Message::text(format!("message {i}"))).unwrap();
    }
    for i in 0..20 {
        assert_eq!(ws.read().unwrap(), Message::text(format!("message {i}")));
    }
}

#[test]
fn frame_in_the_same_packet_as_the_handshake_is_echoed() {
    let server = TestServer::start();
    let mut client = RawClient::connect(server.addr());
    let mut bytes = upgrade_request("/echo", "").into_bytes();
    bytes.extend_from_slice(&client_frame(true, TEXT, b"early bird"));
    client.send(&bytes);
    assert_eq!(client.read_head().status, 101);
    let frame = client.read_frame();
    assert_eq!((frame.fin, frame.opcode), (true, TEXT));
    assert_eq!(frame.payload, b"early bird");
}

#[test]
fn fragmented_text_with_a_ping_between_comes_back_whole_after_the_pong() {
    let server = TestServer::start();
    let mut client = RawClient::upgrade(server.addr(), "/echo");
    let text = "Hello, κόσμε!".as_bytes();
    // The first cut falls inside "κ" (a 2-byte character).
    let (first, rest) = text.split_at(8);
    let (second, third) = rest.split_at(3);
    client.send(&client_frame(false, TEXT, first));
    client.send(&client_frame(true, PING, b"are you there?"));
    client.send(&client_frame(false, CONTINUATION, second));
    client.send(&client_frame(true, CONTINUATION, third));

    let pong = client.read_frame();
    assert_eq!((pong.fin, pong.opcode), (true, PONG));
    assert_eq!(pong.payload, b"are you there?");
    let echo = client.read_frame();
    assert_eq!((echo.fin, echo.opcode), (true, TEXT));
    assert_eq!(echo.payload, text);
}

/// Echoes large enough to go out from the server's read buffer, sent much faster than they are
/// read: the server's writes come up short, so what the socket did not take must be kept (and
/// the buffer read into again meanwhile) without a byte changing or a message going missing.
#[test]
fn echoes_written_from_the_read_buffer_survive_a_slow_reader() {
    const COUNT: usize = 2000;
    const SIZE: usize = 9000;
    let server = TestServer::start();
    let mut client = RawClient::upgrade(server.addr(), "/");
    let mut writer = client.try_clone();
    let payload = |i: usize| -> Vec<u8> { (0..SIZE).map(|j| (i * 31 + j * 7) as u8).collect() };
    let (half_sent, wait_half) = std::sync::mpsc::channel();
    let sending = std::thread::spawn(move || {
        for i in 0..COUNT {
            writer.send(&client_frame(true, 0x2, &payload(i)));
            if i == COUNT / 4 {
                half_sent.send(()).unwrap();
            }
        }
    });
    // Nothing is read until 4.5 MB were sent: the server's echoes meet a full socket.
    wait_half
        .recv_timeout(TIMEOUT)
        .expect("half of the messages sent");
    for i in 0..COUNT {
        let frame = client.read_frame();
        assert_eq!(frame.opcode, 0x2);
        assert!(frame.payload == payload(i), "echo {i} differs");
    }
    sending.join().unwrap();
}

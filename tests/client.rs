//! The library's blocking client (`wsloop::client::Client`) against a running server: what a
//! program using it gets back.

// These tests use the bundled apps and the wsloop command: `--no-default-features` skips them.
#![cfg(feature = "cli")]

mod common;

use common::{TestServer, TIMEOUT};
use wsloop::client::{Client, ClientError, ClientOptions, Incoming};
use wsloop::{CloseCode, CompressionMode, Config, Message};

fn echo_url(server: &TestServer) -> String {
    format!("ws://{}/echo", server.addr())
}

#[test]
fn replies_sent_before_the_servers_close_arrive_after_start_close() {
    let server = TestServer::start();
    let mut client = Client::connect(&echo_url(&server)).unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    client.send(Message::Text("one")).unwrap();
    client.send(Message::Binary(b"two")).unwrap();
    client.start_close(CloseCode::NORMAL, "done").unwrap();
    // Sending is over, receiving is not: the server echoed both before its close.
    assert_eq!(client.recv().unwrap(), Incoming::Text("one".into()));
    assert_eq!(client.recv().unwrap(), Incoming::Binary(b"two".to_vec()));
    // Its close then ends the closing handshake.
    assert!(matches!(client.recv(), Err(ClientError::Closed)));
    assert!(matches!(
        client.send(Message::Text("late")),
        Err(ClientError::Closed)
    ));
}

/// A server on 127.0.0.1 that answers one request with `response`, then closes; returns its
/// address.
fn one_reply_server(response: Vec<u8>) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut request = Vec::new();
        let mut chunk = [0u8; 1024];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut chunk) {
                Ok(n @ 1..) => request.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        let _ = tcp.write_all(&response);
    });
    addr
}

#[test]
fn a_refusal_says_the_reason_the_server_gave() {
    let server = TestServer::start();
    let refused = Client::connect(&format!("ws://{}/nowhere", server.addr())).unwrap_err();
    assert!(
        matches!(&refused, ClientError::Refused { status: 404, message, .. } if message == "no WebSocket endpoint at this path"),
        "{refused:?}"
    );
    assert_eq!(
        refused.to_string(),
        "handshake refused: the server answered 404 Not Found: no WebSocket endpoint at this path"
    );
}

#[test]
fn a_refusal_reason_is_one_clean_bounded_line() {
    let mut body = b"\x1b[2J\x07go away\r\nsecond line".to_vec();
    body.extend_from_slice(&[b'x'; 5000]);
    let mut response = format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    let addr = one_reply_server(response);
    let refused = Client::connect(&format!("ws://{addr}/")).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "handshake refused: the server answered 403 Forbidden: [2Jgo away"
    );

    // An HTML page is not a reason; the status says it all.
    let page = "<html>\n<body>Forbidden</body>\n</html>\n";
    let response = format!(
        "HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{page}",
        page.len()
    );
    let addr = one_reply_server(response.into_bytes());
    let refused = Client::connect(&format!("ws://{addr}/")).unwrap_err();
    assert_eq!(
        refused.to_string(),
        "handshake refused: the server answered 403 Forbidden"
    );
}

#[test]
fn the_compression_agreed_is_known() {
    let compressing = Config::default().compression(CompressionMode::Shared);
    let server = TestServer::new(compressing);
    let options = ClientOptions::default().compression(true);
    let client = Client::connect_with(&echo_url(&server), &options).unwrap();
    let agreed = client.compression().expect("permessage-deflate agreed");
    assert_eq!(
        agreed.header(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    );
    // Not offered, or declined: none.
    assert!(Client::connect(&echo_url(&server))
        .unwrap()
        .compression()
        .is_none());
    let plain = TestServer::start();
    let client = Client::connect_with(&echo_url(&plain), &options).unwrap();
    assert!(client.compression().is_none());
}

#[test]
fn pings_and_pongs_are_reported_only_when_asked_for() {
    // The server pings a connection silent for 20 ms.
    let config = Config::default().ping_interval(std::time::Duration::from_millis(20));
    let server = TestServer::new(config);
    let options = ClientOptions::default().report_pings(true);
    let mut client = Client::connect_with(&echo_url(&server), &options).unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert_eq!(client.recv().unwrap(), Incoming::Ping(Vec::new()));
    client.ping(b"are you there").unwrap();
    assert_eq!(
        client.recv().unwrap(),
        Incoming::Pong(b"are you there".to_vec())
    );
    client.send(Message::Text("still here")).unwrap();
    let mut next = client.recv().unwrap();
    // A keepalive ping may come between.
    while next == Incoming::Ping(Vec::new()) {
        next = client.recv().unwrap();
    }
    assert_eq!(next, Incoming::Text("still here".into()));

    // By default they are answered and not reported: recv gives messages only.
    let mut client = Client::connect(&echo_url(&server)).unwrap();
    client.ping(b"ignored").unwrap();
    client.send(Message::Text("only this")).unwrap();
    client.set_read_timeout(Some(TIMEOUT)).unwrap();
    // The pong came first, unseen.
    assert_eq!(client.recv().unwrap(), Incoming::Text("only this".into()));
}

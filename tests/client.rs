//! The library's blocking client (`wsloop::client::Client`) against a running server: what a
//! program using it gets back.

mod common;

use common::{TestServer, TIMEOUT};
use wsloop::client::{Client, ClientError, Incoming};
use wsloop::{CloseCode, Message};

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
